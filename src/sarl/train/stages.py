"""The names of the training step's stages (the names in the code, the logs and the timings) and
the timer that measures them."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

STAGES = ("sync_weights", "generate", "old_logprobs", "ref_logprobs", "null_logprobs", "rewards", "values", "advantages",
          "update_critic", "update_actor", "validate", "checkpoint")



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
