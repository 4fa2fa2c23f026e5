"""A batch of rollouts: one object for what the trainer generates, ``sarl score`` reads and the TRL
adapter receives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class RolloutBatch:
    """N responses, row i = response i. Token ids are plain lists (no padding).

    ``contexts[i]``: the prompt the response was generated after (or is scored after): system prompt,
    question and chat template, as token ids. ``responses[i]``: the response's token ids (the stop token
    included when it was sampled). ``texts[i]``: its decoded text. ``group_ids [N]`` (long): rows that
    answer the same prompt share an id. ``problems[i]``: the row's problem (gold answer, data source,
    grader context), or None where there is none (``sarl score`` without a gold column).
    ``correct [N]``: 1.0 where the graded response is right, set by the caller that grades.
    """

    contexts: list[list[int]]
    responses: list[list[int]]
    texts: list[str]
    group_ids: torch.Tensor
    problems: list[Any] | None = None
    truncated: list[bool] | None = None
    correct: torch.Tensor | None = None
    rollout_logprobs: list[list[float]] | None = None  # per token, as the rollout engine reported them (vLLM)

    def __post_init__(self):
        n = len(self.responses)
        for name in ("contexts", "texts", "problems", "truncated", "rollout_logprobs"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"RolloutBatch: {len(v)} {name} for {n} responses")
        if self.group_ids.shape != (n,):
            raise ValueError(f"RolloutBatch: group_ids must be [{n}], got {tuple(self.group_ids.shape)}")

    def __len__(self) -> int:
        return len(self.responses)

    @property
    def lengths(self) -> torch.Tensor:
        """Response lengths in tokens, ``[N]`` float32."""
        return torch.tensor([len(r) for r in self.responses], dtype=torch.float32)

    @property
    def golds(self) -> list[Any]:
        return [None if p is None else p.answer for p in (self.problems or [None] * len(self))]

    @property
    def data_sources(self) -> list[Any]:
        return [None if p is None else p.data_source for p in (self.problems or [None] * len(self))]

    def rows(self, idx: Sequence[int]) -> tuple[list[list[int]], list[list[int]]]:
        """``(contexts, responses)`` of the rows ``idx`` (a micro-batch)."""
        return [self.contexts[i] for i in idx], [self.responses[i] for i in idx]

    def take_groups(self, groups: Sequence[int]) -> RolloutBatch:
        """The rows of the groups ``groups`` (group ids, in that order), renumbered 0..len(groups)-1."""
        rows = [i for g in groups for i in (self.group_ids == g).nonzero().flatten().tolist()]
        sizes = [int((self.group_ids == g).sum()) for g in groups]

        def pick(v):
            return None if v is None else [v[i] for i in rows]

        return RolloutBatch(contexts=pick(self.contexts), responses=pick(self.responses), texts=pick(self.texts),
                            group_ids=torch.arange(len(groups)).repeat_interleave(torch.tensor(sizes, dtype=torch.long)),
                            problems=pick(self.problems), truncated=pick(self.truncated),
                            correct=None if self.correct is None else self.correct[rows],
                            rollout_logprobs=pick(self.rollout_logprobs))

    @classmethod
    def concat(cls, batches: Sequence[RolloutBatch]) -> RolloutBatch:
        """The rows of ``batches`` one after the other, their groups renumbered in that order (a field
        stays ``None`` unless every batch has it)."""
        offsets, ids = 0, []
        for b in batches:
            ids.append(b.group_ids + offsets)
            offsets += int(b.group_ids.max()) + 1 if len(b) else 0

        def join(name):
            parts = [getattr(b, name) for b in batches]
            return None if any(p is None for p in parts) else [x for p in parts for x in p]

        correct = [b.correct for b in batches]
        return cls(contexts=join("contexts"), responses=join("responses"), texts=join("texts"),
                   group_ids=torch.cat(ids) if ids else torch.zeros(0, dtype=torch.long), problems=join("problems"),
                   truncated=join("truncated"),
                   correct=None if not batches or any(c is None for c in correct) else torch.cat(correct),
                   rollout_logprobs=join("rollout_logprobs"))

    @classmethod
    def from_groups(cls, prompts: Sequence[list[int]], outputs: Sequence[Sequence[Any]],
                    problems: Sequence[Any] | None = None) -> RolloutBatch:
        """Flatten ``outputs[p]`` (the samples of prompt ``p``, each with ``token_ids``, ``text`` and
        ``truncated``) into rows; group ``p`` gets id ``p``."""
        sizes = [len(o) for o in outputs]
        return cls(
            contexts=[list(prompts[p]) for p, k in enumerate(sizes) for _ in range(k)],
            responses=[list(s.token_ids) for o in outputs for s in o],
            texts=[s.text for o in outputs for s in o],
            group_ids=torch.arange(len(outputs)).repeat_interleave(torch.tensor(sizes, dtype=torch.long)),
            problems=None if problems is None else [problems[p] for p, k in enumerate(sizes) for _ in range(k)],
            truncated=[bool(s.truncated) for o in outputs for s in o],
            rollout_logprobs=(None if any(getattr(s, "logprobs", None) is None for o in outputs for s in o)
                              else [list(s.logprobs) for o in outputs for s in o]),
        )
