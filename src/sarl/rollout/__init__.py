"""Generation backends: transformers everywhere, vLLM where installed (same interface)."""

from __future__ import annotations

import importlib.util

from sarl.errors import SarlError
from sarl.rollout.base import Backend, GenerationConfig, Sample
from sarl.rollout.hf import HFBackend

BACKENDS = ("auto", "transformers", "vllm")


def make_backend(lm, name: str = "auto", model_path: str | None = None) -> Backend:
    """``auto``: vLLM when it is installed and the model is on a GPU, else transformers."""
    if name not in BACKENDS:
        raise SarlError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    use_vllm = name == "vllm" or (
        name == "auto" and importlib.util.find_spec("vllm") is not None and str(lm.device).startswith("cuda")
    )
    if use_vllm:
        if importlib.util.find_spec("vllm") is None:
            raise SarlError("backend 'vllm' was asked for but vLLM is not installed (pip install vllm, on a GPU machine)")
        from sarl.rollout.vllm_backend import VLLMBackend

        return VLLMBackend(model_path or lm.model.config.name_or_path, lm.tokenizer)
    return HFBackend(lm.model, lm.tokenizer)


__all__ = ["BACKENDS", "Backend", "GenerationConfig", "HFBackend", "Sample", "make_backend"]
