"""Graders: one code path for the training reward and for evaluation.

``grade(response, gold, data_source)`` picks the grader registered for the data source (math by
default) and returns a :class:`~sarl.grading.math.Grade`.
"""

from __future__ import annotations

from collections.abc import Callable

from sarl.grading.math import Grade, extract_answer, grade_math

GRADERS: dict[str, Callable[[str, str], Grade]] = {"math": grade_math}
# data_source → grader name; anything not listed is graded as math.
SOURCE_GRADER: dict[str, str] = {}


def register_grader(name: str, fn: Callable[[str, str], Grade], sources: tuple[str, ...] = ()) -> None:
    if name in GRADERS:
        raise ValueError(f"grader {name!r} is registered twice")
    GRADERS[name] = fn
    for s in sources:
        SOURCE_GRADER[s] = name


def grade(response: str, gold: str, data_source: str | None = None) -> Grade:
    name = SOURCE_GRADER.get(data_source or "", "math")
    return GRADERS[name](response, gold)


__all__ = ["GRADERS", "Grade", "extract_answer", "grade", "grade_math", "register_grader"]
