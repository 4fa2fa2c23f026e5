"""Graders: one code path for the training reward and for evaluation.

``grade(response, gold, data_source)`` picks the grader registered for the data source (math by
default) and returns a :class:`~sarl.grading.math.Grade`. Graders that need more than the gold string
(the logic grader reads a problem's ``choices``, the reasoning-gym grader its generator entry) get it
from ``problem=`` (a :class:`sarl.data.Problem`) or ``metadata=``/``choices=``.

| grader          | data sources                                    | rule                                  |
|-----------------|-------------------------------------------------|---------------------------------------|
| ``math``        | everything not listed below (gsm8k, math, ...)  | :mod:`sarl.grading.math`              |
| ``logic``       | ``prontoqa``, ``LogicBench``, ``logic``, ``synth_logic`` | :mod:`sarl.grading.logic`             |
| ``reasoning_gym`` | ``reasoning_gym/<generator>``                 | :mod:`sarl.grading.rgym`              |
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sarl.grading.logic import grade_logic
from sarl.grading.math import Grade, extract_answer, grade_math
from sarl.grading.rgym import KNOWN_GENERATORS, RG_SOURCE_PREFIX, grade_reasoning_gym

if TYPE_CHECKING:
    from sarl.data.schema import Problem

GRADERS: dict[str, Callable[..., Grade]] = {"math": grade_math}
# data_source → grader name; anything not listed (and matching no prefix) is graded as math.
SOURCE_GRADER: dict[str, str] = {}
# data_source prefix → grader name, for families of sources ("reasoning_gym/<any generator>").
SOURCE_PREFIX_GRADER: dict[str, str] = {}
# Graders called as fn(response, gold, *, data_source=, metadata=, choices=).
CONTEXT_GRADERS: set[str] = set()


def register_grader(name: str, fn: Callable[..., Grade], sources: tuple[str, ...] = (), *,
                    prefixes: tuple[str, ...] = (), context: bool = False) -> None:
    """Register ``fn`` as grader ``name`` for the exact ``sources`` and any source starting with one of
    ``prefixes``. A plain grader is called ``fn(response, gold)``; with ``context=True`` it is called
    ``fn(response, gold, data_source=..., metadata=..., choices=...)``. Names register once."""
    if name in GRADERS:
        raise ValueError(f"grader {name!r} is registered twice")
    GRADERS[name] = fn
    if context:
        CONTEXT_GRADERS.add(name)
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
    name = grader_for(data_source)
    fn = GRADERS[name]
    if name in CONTEXT_GRADERS:
        return fn(response, gold, data_source=data_source, metadata=metadata, choices=choices)
    return fn(response, gold)


register_grader("logic", grade_logic, ("prontoqa", "LogicBench", "logic", "synth_logic"), context=True)
register_grader("reasoning_gym", grade_reasoning_gym,
                tuple(RG_SOURCE_PREFIX + n for n in sorted(KNOWN_GENERATORS)),
                prefixes=(RG_SOURCE_PREFIX,), context=True)

__all__ = [
    "CONTEXT_GRADERS",
    "GRADERS",
    "SOURCE_GRADER",
    "SOURCE_PREFIX_GRADER",
    "Grade",
    "extract_answer",
    "grade",
    "grade_logic",
    "grade_math",
    "grade_reasoning_gym",
    "grader_for",
    "register_grader",
]
