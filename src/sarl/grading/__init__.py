"""Graders: one code path for the training reward and for evaluation.

``grade(response, gold, data_source)`` picks the grader registered for the data source (math by
default) and returns a :class:`~sarl.grading.math.Grade`; :func:`grade_all` grades a batch (the one
place training, the TRL adapter and ``sarl score`` grade). Every grader has one signature,
``fn(response, gold, *, data_source=None, metadata=None, choices=None) -> Grade``; graders that need
more than the gold string (the logic grader reads a problem's ``choices``, the reasoning-gym grader
its generator entry) read the keywords, which come from ``problem=`` (a :class:`sarl.data.Problem`)
or are given explicitly.

| grader          | data sources                                    | rule                                  |
|-----------------|-------------------------------------------------|---------------------------------------|
| ``math``        | everything not listed below (gsm8k, math, ...)  | :mod:`sarl.grading.math`              |
| ``logic``       | ``prontoqa``, ``LogicBench``, ``logic``, ``synth_logic`` | :mod:`sarl.grading.logic`             |
| ``reasoning_gym`` | ``reasoning_gym/<generator>``                 | :mod:`sarl.grading.rgym`              |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from sarl.grading.logic import grade_logic
from sarl.grading.math import Grade, extract_answer, grade_math
from sarl.grading.rgym import KNOWN_GENERATORS, RG_SOURCE_PREFIX, grade_reasoning_gym
from sarl.registry import Registry

if TYPE_CHECKING:
    from sarl.data.schema import Problem

GRADERS = Registry("grader")  # name -> fn(response, gold, *, data_source, metadata, choices) -> Grade
# data_source → grader name; anything not listed (and matching no prefix) is graded as math.
SOURCE_GRADER: dict[str, str] = {}
# data_source prefix → grader name, for families of sources ("reasoning_gym/<any generator>").
SOURCE_PREFIX_GRADER: dict[str, str] = {}


def register_grader(name: str, fn: Callable[..., Grade], sources: tuple[str, ...] = (), *,
                    prefixes: tuple[str, ...] = ()) -> None:
    """Register ``fn`` (the one grader signature, see above) as grader ``name`` for the exact
    ``sources`` and any source starting with one of ``prefixes``. Names register once."""
    GRADERS.add(name, fn, sources=tuple(sources), prefixes=tuple(prefixes))
    for s in sources:
        SOURCE_GRADER[s] = name
    for p in prefixes:
        SOURCE_PREFIX_GRADER[p] = name


def grader_for(data_source: str | None) -> str:
    """The grader name for a data source: exact match, then the longest matching prefix, else math."""
    ds = data_source or ""
    if ds in SOURCE_GRADER:
        return SOURCE_GRADER[ds]
    for prefix in sorted(SOURCE_PREFIX_GRADER, key=len, reverse=True):
        if ds.startswith(prefix):
            return SOURCE_PREFIX_GRADER[prefix]
    return "math"


def grade(response: str, gold: str, data_source: str | None = None, *, problem: Problem | None = None,
          metadata: dict[str, Any] | None = None, choices: Sequence[str] | None = None) -> Grade:
    """Grade one response. ``problem`` supplies ``data_source``, ``metadata`` and ``choices`` where
    they are not given explicitly."""
    if problem is not None:
        data_source = problem.data_source if data_source is None else data_source
        metadata = problem.metadata if metadata is None else metadata
        choices = problem.choices if choices is None else choices
    return GRADERS[grader_for(data_source)](response, gold, data_source=data_source, metadata=metadata,
                                            choices=choices)


def grade_all(responses: Sequence[str], golds: Sequence[str | None], data_sources: Sequence[str | None] | None = None,
              problems: Sequence[Problem] | None = None,
              metadata: Sequence[dict[str, Any] | None] | None = None) -> torch.Tensor:
    """``correct`` for a batch: 1.0 where :func:`grade` accepts the response, 0.0 where it does not or
    the gold is missing. ``[N]`` float32. ``problems`` (one per row) supply sources, metadata, choices."""
    none = [None] * len(responses)
    sources = data_sources if data_sources is not None else none
    rows = problems if problems is not None else none
    metas = metadata if metadata is not None else none
    vals = [float(grade(r, str(g), s, problem=p, metadata=m).correct) if g not in (None, "") else 0.0
            for r, g, s, p, m in zip(responses, golds, sources, rows, metas)]
    return torch.tensor(vals, dtype=torch.float32)


register_grader("math", grade_math)
register_grader("logic", grade_logic, ("prontoqa", "LogicBench", "logic", "synth_logic"))
register_grader("reasoning_gym", grade_reasoning_gym,
                tuple(RG_SOURCE_PREFIX + n for n in sorted(KNOWN_GENERATORS)), prefixes=(RG_SOURCE_PREFIX,))

__all__ = [
    "GRADERS",
    "SOURCE_GRADER",
    "SOURCE_PREFIX_GRADER",
    "Grade",
    "extract_answer",
    "grade",
    "grade_all",
    "grade_logic",
    "grade_math",
    "grade_reasoning_gym",
    "grader_for",
    "register_grader",
]
