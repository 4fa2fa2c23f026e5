"""The one record type every dataset loader returns.

A :class:`Problem` is what evaluation and training need from a benchmark item: the question shown to
the model, the gold answer the grader compares against, and (through ``data_source``) which grader to
use. ``metadata`` carries whatever a grader needs beyond the gold string (for reasoning-gym, the
generator's entry that its ``score_answer`` reads); it must be JSON-serialisable so that problems can
be written to JSONL/Parquet and read back unchanged.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any


@dataclass
class Problem:
    """One benchmark item.

    - ``id``: unique within its dataset (``gsm8k-12``, ``math-algebra-0``, ``chain_sum-0-17``).
    - ``data_source``: selects the grader (:func:`sarl.grading.grade`); same meaning as verl's column.
    - ``question``: the problem text, without any instruction (the eval prompt appends one).
    - ``answer``: the gold answer as a string (``"18"``, ``"\\\\frac{1}{2}"``, ``"True"``).
    - ``solution``: a reference solution (chain of thought), when the source has one.
    - ``choices``: answer options for multiple-choice items, when the source has them.
    - ``metadata``: JSON-serialisable extras (level, subject, the reasoning-gym entry, ...).
    """

    id: str
    data_source: str
    question: str
    answer: str
    solution: str | None = None
    choices: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("id", "data_source", "question", "answer"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"Problem.{name} must be a str, got {type(getattr(self, name)).__name__}")
        if self.choices is not None and not all(isinstance(c, str) for c in self.choices):
            raise TypeError(f"Problem {self.id}: choices must be a list of str")
        try:
            json.dumps(self.metadata, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"Problem {self.id}: metadata is not JSON-serialisable ({exc}); "
                            f"pass it through sarl.data.schema.json_safe() first") from None

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON-ready) with every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Problem:
        """Inverse of :meth:`to_dict` (unknown keys raise ``TypeError``)."""
        return cls(**row)


def json_safe(obj: Any) -> Any:
    """A JSON-serialisable copy of ``obj``: tuples and sets become lists, ``Fraction``/``Decimal`` and
    other unknown objects become their ``str``, numpy scalars and arrays become Python numbers and
    lists, non-finite floats become strings (``"nan"``, ``"inf"``) and dict keys become strings.

    reasoning-gym entries hold tuples and ``Fraction`` objects; its scorers only read ``entry["answer"]``
    and plain metadata, which survive this conversion (checked in ``tests/test_data.py``)."""
    # subclasses (numpy's str_ and float64, IntEnum) become the plain type
    if obj is None or type(obj) is bool:
        return obj
    if isinstance(obj, str):
        return str(obj)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else str(obj)
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((json_safe(v) for v in obj), key=repr)
    if isinstance(obj, (Fraction, Decimal)):
        return str(obj)
    item = getattr(obj, "item", None)  # numpy scalar
    if callable(item) and getattr(obj, "shape", None) == ():
        return json_safe(item())
    tolist = getattr(obj, "tolist", None)  # numpy array
    if callable(tolist):
        return json_safe(tolist())
    return str(obj)
