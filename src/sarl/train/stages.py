"""The names of the training step's stages (the names in the code, the logs and the timings), the
timer that measures them, and the process's peak memory."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

STAGES = ("sync_weights", "generate", "old_logprobs", "ref_logprobs", "grade", "null_logprobs", "rewards", "values",
          "advantages", "update_critic", "update_actor", "validate", "checkpoint")


def peak_memory_gb(device: str) -> float:
    """This process's peak memory so far, in GiB: ``torch.cuda.max_memory_allocated`` on a GPU (verl's
    ``perf/max_memory_allocated_gb``), the peak resident set size on a CPU (everything the process
    holds: weights, optimizer state, activations, the rollout engine)."""
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource
    import sys

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux, bytes on macOS
    return kb / (2**30 if sys.platform == "darwin" else 2**20)


class StageTimer:
    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, name: str):
        assert name in STAGES, name
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t
