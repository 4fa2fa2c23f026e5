"""Procedurally generated datasets from ``reasoning-gym==0.1.25`` (offline, deterministic for a seed).

Each problem keeps the generator's own entry (``question``, ``answer``, ``metadata``; made
JSON-serialisable by :func:`~sarl.data.schema.json_safe`) in ``metadata["reasoning_gym"]["entry"]``,
because the generator's ``score_answer(answer, entry)`` is the grader
(:mod:`sarl.grading.rgym`). Problems have ``data_source = "reasoning_gym/<generator>"`` and ids
``<generator>-<seed>-<index>``.

Item ``i`` depends only on ``(seed, i)``, not on ``size``: the first ``n`` items of a size-200 set are
the size-``n`` set. Timings for 200 items on one CPU core (0.1.25): every generator below takes under
0.2 s (knights_knaves 0.14 s, propositional_logic 0.03 s, the rest under 0.02 s); importing
``reasoning_gym`` itself takes about 1.5 s.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from sarl.data.schema import Problem, json_safe
from sarl.errors import SarlError, UnknownNameError
from sarl.grading.rgym import RG_SOURCE_PREFIX

REASONING_GYM_PIP = "reasoning-gym==0.1.25"
DEFAULT_SIZE = 200


@dataclass(frozen=True)
class Generator:
    name: str
    family: str  # "arithmetic" or "logic"
    description: str


# The built-in generators: fast (< 0.2 s per 200 items), no network, default configuration.
GENERATORS: tuple[Generator, ...] = (
    Generator("gsm_symbolic", "arithmetic", "GSM8K-style word problems from symbolic templates"),
    Generator("basic_arithmetic", "arithmetic", "integer expressions with + - * / and brackets"),
    Generator("chain_sum", "arithmetic", "sums and differences of integers"),
    Generator("decimal_chain_sum", "arithmetic", "sums and differences of decimals"),
    Generator("products", "arithmetic", "products of integers"),
    Generator("leg_counting", "arithmetic", "count the legs of a list of animals"),
    Generator("gcd", "arithmetic", "greatest common divisor of integers"),
    Generator("lcm", "arithmetic", "least common multiple of integers"),
    Generator("knights_knaves", "logic", "who is a knight (truth-teller) and who is a knave (liar)"),
    Generator("syllogism", "logic", "does a conclusion follow from two premises? (Yes/No)"),
    Generator("propositional_logic", "logic",
              "infer a non-trivial conclusion from propositional premises (any valid one is accepted)"),
)


def rg_source(name: str) -> str:
    """The ``data_source`` of a reasoning-gym generator's problems."""
    return RG_SOURCE_PREFIX + name


def _require_reasoning_gym():
    if importlib.util.find_spec("reasoning_gym") is None:
        raise ImportError(f"reasoning-gym datasets need the package 'reasoning-gym'; install it with:\n"
                          f"    pip install {REASONING_GYM_PIP}")
    import reasoning_gym

    return reasoning_gym


def load_generated(name: str, limit: int | None = None, seed: int = 0, size: int | None = None) -> list[Problem]:
    """``size`` items (default 200) of the reasoning-gym generator ``name`` with its default
    configuration and ``seed``; ``limit`` keeps the first ``limit`` of them (only those are generated).

    The gold ``answer`` is the generator's answer; for generators that accept any valid answer and have
    none (``propositional_logic``), it is the generator's example answer, and grading uses the
    generator's own check, not this string."""
    rg = _require_reasoning_gym()
    size = DEFAULT_SIZE if size is None else size
    if size < 1:
        raise SarlError(f"size must be >= 1, got {size}")
    if limit is not None and limit < 0:
        raise SarlError(f"limit must be >= 0, got {limit}")
    n = size if limit is None else min(size, limit)
    try:
        ds = rg.create_dataset(name, size=size, seed=seed)
    except (KeyError, ValueError) as exc:
        raise UnknownNameError(f"reasoning-gym has no generator {name!r} ({exc})") from None
    out = []
    for i in range(n):
        entry = json_safe(ds[i])
        gold = entry.get("answer")
        if gold is None:
            gold = entry.get("metadata", {}).get("example_answer")
        if gold is None:
            raise SarlError(f"reasoning-gym {name} item {i} (seed {seed}) has neither an answer nor "
                             f"an example answer; this generator is not supported")
        out.append(Problem(
            id=f"{name}-{seed}-{i}",
            data_source=rg_source(name),
            question=entry["question"],
            answer=str(gold),
            metadata={"reasoning_gym": {"dataset": name, "seed": seed, "index": i,
                                        "entry": entry}},
        ))
    return out
