"""The trainer's rollout engine (``rollout.backend``), built by the one factory
:func:`sarl.rollout.make_backend` from the recipe: sarl's transformers decode loop on the policy itself
or on a copy of it (:class:`~sarl.rollout.CopyBackend`: bf16 under ``bf16-mixed``; a full copy beside a
sharded policy), or vLLM colocated in the trainer's process; an engine with its own copy of the weights
gets the policy's in memory before each rollout that follows an update.

The weight-sync check: vLLM and a copy report each sampled token's log-prob (after temperature; the
decode loop on the policy itself too, when ``rollout.correction`` uses them); the trainer's old-policy
pass recomputes it with the policy. :func:`logprob_gap` logs their mean and largest absolute
difference (``rollout/logprob_diff_mean`` / ``_max``, verl logs the same as ``rollout_probs_diff``): a
gap of bf16 size means the engine samples from the policy being trained; a growing gap means it does
not. With ``rollout.top_p < 1`` vLLM's log-prob is renormalised over the nucleus and the policy's is
not, so the gap there includes the truncation.
"""

from __future__ import annotations

from pathlib import Path

import torch

from sarl.rollout import CopyBackend, make_backend, resolve_backend
from sarl.rollout.base import Backend

__all__ = ["CopyBackend", "logprob_gap", "make_rollout_backend", "policy_folder"]  # CopyBackend: re-exported


def policy_folder(name: str | None, out: Path, model=None, tokenizer=None) -> str:
    """A folder holding the policy's initial weights, for engines that load from disk (vLLM, TRL): the
    model's own folder, or, for built-ins that live only in memory (``tiny-random``), ``out/init_model``
    written from ``model`` (built when not given)."""
    from sarl.models import TINY_RANDOM, load_model, resolve_model_path
    from sarl.train.checkpoint import export_model

    if name != TINY_RANDOM:
        return resolve_model_path(name, False)
    folder = out / "init_model"
    if not (folder / "config.json").exists():
        if model is None:
            lm = load_model(name, dtype="float32", device="cpu")
            model, tokenizer = lm.model, lm.tokenizer
        folder.parent.mkdir(parents=True, exist_ok=True)
        export_model(model, tokenizer, folder)
    return str(folder)


def make_rollout_backend(cfg, policy, tokenizer, *, out: Path, precision: str, device: str, dist,
                         sharded: bool = False) -> Backend:
    """:func:`sarl.rollout.make_backend` for ``rollout.backend``: ``hf`` samples with the policy module
    itself (nothing to sync), or with a copy of it: in bf16 under ``bf16-mixed`` with
    ``rollout.bf16_copy``, and always when the policy is about to be ``sharded`` (bf16 or fp32 as the
    rollout's precision); ``vllm`` starts one engine per process on the policy's folder
    (:func:`policy_folder`), in bf16 under ``bf16-mixed`` and fp32 otherwise, with sleep mode on a GPU when
    ``rollout.free_cache_engine``. Called before the policy is sharded."""
    r = cfg.rollout
    name = resolve_backend(r.backend, device)
    path, options = None, None
    if name == "vllm":
        if dist.main:  # rank 0 writes an in-memory model's folder; the others read it
            policy_folder(cfg.model.name, out, policy, tokenizer)
        dist.barrier()
        path = policy_folder(cfg.model.name, out, policy, tokenizer)
        options = {"seed": cfg.trainer.seed, "gpu_memory_utilization": r.gpu_memory_utilization,
                   "max_model_len": cfg.data.max_prompt_length + cfg.data.max_response_length,
                   "sleep": str(device).startswith("cuda") and r.free_cache_engine, "logprobs": True,
                   "world_size": dist.world}
    return make_backend(policy, name, tokenizer=tokenizer, precision=precision, device=device,
                        bf16_copy=r.bf16_copy, sharded=sharded, model_path=path, vllm_options=options,
                        logprobs=r.correction.mode != "none" or r.correction.off_policy_mask_threshold is not None)


def logprob_gap(sampler_logp: torch.Tensor | None, logp: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """``rollout/logprob_diff_mean`` and ``_max``: |engine log-prob − policy log-prob| over the response
    tokens where the engine reported one (``sampler_logp``, ``logp``, ``mask``: ``[N, T]``, row i = response
    i; :func:`sarl.algos.rollout_correction.sampler_logp_tensor`). Empty where the engine reported none."""
    if sampler_logp is None:
        return {}
    m = mask * torch.isfinite(sampler_logp)
    gap = torch.nan_to_num(sampler_logp - logp).abs() * m
    n = m.sum().clamp(min=1)
    return {"rollout/logprob_diff_mean": float(gap.sum() / n), "rollout/logprob_diff_max": float(gap.max())}
