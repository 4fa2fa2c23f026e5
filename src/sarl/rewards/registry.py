"""The reward registry, keyed by the names users type, and the inputs every reward reads.

Every reward is a pure function ``fn(inputs: RewardInputs[, options]) -> Tensor[N]`` (it reads its
inputs and writes nothing) registered with what it needs, so a caller (the training loop,
``sarl score``, the TRL adapter) runs the expensive passes (the null-context forward, full-vocabulary
statistics) only when a chosen reward needs them. ``correct`` is graded once per response by the caller
(:func:`sarl.grading.grade_all`) and is a plain input. Each entry also declares whether the weight
schedule scales it (every reward but correctness).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from sarl.errors import SarlError
from sarl.registry import Registry

# What a reward may need from the caller; the training loop maps each to a stage.
NEEDS = frozenset({"correct", "lengths", "groups", "logp_qa", "logp_a", "self_certainty", "max_response_length",
                   "token_ids"})
# The needs that only passes of the policy (or its tokenizer) can fill: a caller without the model
# (a TRL reward function before it is bound to its trainer) cannot compute them.
POLICY_NEEDS = frozenset({"logp_qa", "logp_a", "self_certainty", "token_ids"})


@dataclass
class RewardInputs:
    """Everything a reward may read, for N responses. Tensors are ``[N]`` unless noted.

    ``logp_qa``/``logp_a``/``response_mask``/``token_self_certainty`` are ``[N, T]``
    per-token values from :func:`sarl.logprobs.answer_logprobs` (``logp_a`` with the null prompt).
    ``lengths`` are response lengths in tokens; ``group_ids`` say which responses share a prompt;
    ``correct`` is 1.0 where the graded response is right. ``context_ids`` / ``response_ids`` are each
    row's question-context and response token ids (the response aligned with ``response_mask``).
    """

    responses: list[str]
    correct: torch.Tensor | None = None
    lengths: torch.Tensor | None = None
    group_ids: torch.Tensor | None = None
    logp_qa: torch.Tensor | None = None
    logp_a: torch.Tensor | None = None
    response_mask: torch.Tensor | None = None
    token_self_certainty: torch.Tensor | None = None
    max_response_length: int | None = None
    context_ids: list[list[int]] | None = None
    response_ids: list[list[int]] | None = None

    def __len__(self) -> int:
        return len(self.responses)

    def require(self, reward: str, *names: str) -> None:
        missing = [n for n in names if getattr(self, n) is None]
        if missing:
            raise ValueError(f"reward {reward!r} needs {', '.join(missing)}, which the caller did not provide")


@dataclass(frozen=True)
class RewardSpec:
    name: str
    fn: Callable[..., torch.Tensor]
    needs: frozenset[str]
    group: bool  # computed over the rollouts of one prompt
    options: type | None  # a dataclass of the reward's options (None: no options)
    aliases: tuple[str, ...] = ()
    scheduled: bool = True  # the weight schedule (alpha) scales this reward
    needs_with: Callable[[Any], frozenset[str]] | None = None  # needs given the options, when they vary

    @property
    def doc(self) -> str:
        return (self.fn.__doc__ or "").strip()

    def needs_for(self, options=None) -> frozenset[str]:
        """The inputs this reward needs with these options (as declared at registration)."""
        if self.needs_with is None:
            return self.needs
        return self.needs_with(options if options is not None else self.make_options(None))

    def make_options(self, values: dict | None):
        values = dict(values or {})
        if self.options is None:
            if values:
                raise SarlError(f"reward {self.name!r} takes no options; got {sorted(values)}")
            return None
        allowed = {f.name for f in dataclasses.fields(self.options)}
        unknown = sorted(set(values) - allowed)
        if unknown:
            raise SarlError(f"reward {self.name!r} has no option(s) {unknown}; allowed: {sorted(allowed)}")
        return self.options(**values)

    def __call__(self, inputs: RewardInputs, options=None) -> torch.Tensor:
        if options is None or isinstance(options, dict):
            options = self.make_options(options)
        out = self.fn(inputs, options) if self.options is not None else self.fn(inputs)
        return out.to(torch.float32)


REWARDS = Registry("reward")  # name (and alias) -> RewardSpec
ALIASES = REWARDS.aliases


def register(name: str, *, needs: set[str] | frozenset[str], group: bool = False, options: type | None = None,
             aliases: tuple[str, ...] = (), scheduled: bool = True,
             needs_with: Callable[[Any], frozenset[str]] | None = None):
    """Decorator: register a reward under ``name`` (and reference-compatible ``aliases``) with what it
    needs, whether it is computed per group, its options dataclass, and whether the schedule scales it."""
    bad = set(needs) - NEEDS
    if bad:
        raise ValueError(f"reward {name!r}: unknown needs {sorted(bad)}; expected a subset of {sorted(NEEDS)}")

    def deco(fn):
        spec = RewardSpec(name, fn, frozenset(needs), group, options, tuple(aliases), scheduled, needs_with)
        REWARDS.add(name, spec, aliases=tuple(aliases))
        return fn

    return deco


def canonical_name(name: str) -> str:
    """Map a user's reward name (or a reference alias such as ``ppl_qa``) to its registry key."""
    return REWARDS.canonical(name)


def get_reward(name: str) -> RewardSpec:
    return REWARDS[name]
