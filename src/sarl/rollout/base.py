"""The generation interface shared by every backend (transformers everywhere, vLLM where installed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sarl.errors import SarlError


@dataclass(frozen=True)
class GenerationConfig:
    """How to sample responses. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = 512
    """Response length limit in tokens; a response that hits it is marked ``finish_reason="length"``."""
    temperature: float = 0.0
    """0 = greedy; > 0 samples from softmax(logits / temperature)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability sums to >= top_p."""
    top_k: int = 0
    """Keep only the k most likely tokens (0 = off)."""
    n: int = 1
    """Samples per prompt (greedy decoding requires n = 1)."""
    seed: int = 0
    """Sampling seed. Each (prompt key, sample index) gets its own generator, so a sample does not
    depend on which other prompts share its batch, and a resumed run reproduces an uninterrupted one."""
    batch_size: int = 32
    """Sequences decoded together (prompts x n). 32 measured fastest on 2 CPU cores."""

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise SarlError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise SarlError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise SarlError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.n < 1:
            raise SarlError(f"n must be >= 1, got {self.n}")
        if self.n > 1 and self.temperature == 0:
            raise SarlError("n > 1 with greedy decoding (temperature 0) gives n identical samples; set a temperature")
        if self.batch_size < 1:
            raise SarlError(f"batch_size must be >= 1, got {self.batch_size}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Sample:
    token_ids: list[int]  # the response tokens, including the stop token when it stopped
    text: str  # decoded without special tokens
    finish_reason: str  # "stop" or "length"

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


ProgressFn = Callable[[int, int], None]  # (prompts_done_in_this_call, tokens_generated_in_this_call)


class Backend:
    """A generation backend: ``generate(prompt_ids, cfg, keys) -> [[Sample] * n] * len(prompt_ids)``."""

    name = "base"

    def generate(self, prompt_ids: Sequence[Sequence[int]], cfg: GenerationConfig,
                 keys: Sequence[int] | None = None, progress: ProgressFn | None = None) -> list[list[Sample]]:
        raise NotImplementedError
