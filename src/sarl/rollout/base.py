"""The generation interface shared by every backend (transformers everywhere, vLLM where installed)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sarl.errors import ConfigError
from sarl.settings import Settings, non_negative, positive, setting


def _unit_interval(key: str, value: float) -> None:
    if not 0 < value <= 1:
        raise ConfigError(f"{key}: must be in (0, 1], got {value}")


@dataclass(frozen=True)
class GenerationConfig(Settings):
    """How to sample responses. ``temperature == 0`` means greedy decoding."""

    max_new_tokens: int = setting(512, "Response length limit in tokens; a response that hits it is marked "
                                       "finish_reason=length.", check=positive)
    temperature: float = setting(0.0, "0 = greedy; > 0 samples from softmax(logits / temperature).",
                                 check=non_negative)
    top_p: float = setting(1.0, "Nucleus sampling: keep the smallest set of tokens whose probability sums to >= "
                                "top_p (in (0, 1]).", check=_unit_interval)
    top_k: int = setting(0, "Keep only the k most likely tokens (0 = off).", check=non_negative)
    n: int = setting(1, "Samples per problem (hit@n); more than 1 needs a temperature > 0.", check=positive)
    seed: int = setting(0, "Sampling seed. Each (prompt key, sample index) gets its own random stream, so a sample "
                           "does not depend on which other prompts share its batch, and a resumed run reproduces "
                           "an uninterrupted one.")
    batch_size: int = setting(32, "Sequences decoded together (prompts x n); 32 measured fastest on 2 CPU cores.",
                              check=positive)

    def validate(self) -> None:
        if self.n > 1 and self.temperature == 0:
            raise ConfigError("n > 1 with greedy decoding (temperature 0) gives n identical samples; set a temperature")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass
class Sample:
    token_ids: list[int]  # the response tokens, including the stop token when it stopped
    text: str  # decoded without special tokens
    finish_reason: str  # "stop" or "length"
    logprobs: list[float] | None = None  # per token, when the backend reports them (vLLM with logprobs=True)

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

    def sync_weights(self, named_tensors) -> None:
        """Give the engine the policy's current weights (``(name, tensor)`` pairs). A no-op for backends
        that sample with the policy module itself."""

    def sleep(self) -> None:
        """Release the engine's memory while the trainer updates (a no-op where there is nothing to free);
        the next :meth:`sync_weights` restores it."""
