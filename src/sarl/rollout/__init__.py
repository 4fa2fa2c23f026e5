"""Generation backends: transformers everywhere, vLLM where installed (same interface), built by the one
factory :func:`make_backend` of training and evaluation (names ``hf`` / ``transformers``, ``vllm``,
``auto``)."""

from __future__ import annotations

from sarl.rollout.base import Backend, GenerationConfig, Sample
from sarl.rollout.factory import BACKENDS, ROLLOUT_BACKENDS, backend_help, make_backend, resolve_backend
from sarl.rollout.hf import CopyBackend, HFBackend

__all__ = ["BACKENDS", "ROLLOUT_BACKENDS", "Backend", "CopyBackend", "GenerationConfig", "HFBackend", "Sample",
           "backend_help", "make_backend", "resolve_backend"]
