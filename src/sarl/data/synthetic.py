"""Built-in synthetic tasks with chain-of-thought solutions, for SFT warm starts and CPU-scale RL.

Two generated tasks, each with a worked solution in two styles:

- ``synth_arith``: 2–3-step word problems over small whole numbers ("Mia has 12 shells. She finds 7
  more and gives away 5. How many shells does Mia have now?"), graded by the math grader;
- ``synth_logic``: Boolean expressions ("Is the following statement true or false? (True and not
  False) or False"), graded by the logic grader (True/False).

:func:`solution` writes a problem's solution **concisely** (one line per step, then
``The answer is \\boxed{...}``) or **padded**: the same steps with generic filler sentences
("Let me think about this carefully.") and a restated check in between. The filler depends on nothing
in the question. An SFT corpus that mixes both styles (:func:`sft_rows`) gives a model that sometimes
pads; that is the behaviour a length-aware reward has to remove without losing accuracy.

Train/test split: every problem is keyed by its numbers and operations only (not the names or
objects); a problem is a *test* problem iff the hash of that key falls in one of
:data:`TEST_BUCKETS` of :data:`N_BUCKETS` buckets, so the ``*_test`` sets share no arithmetic with the
training sets, whatever the seeds and sizes.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from sarl.data.schema import Problem
from sarl.errors import SarlError

N_BUCKETS = 10
TEST_BUCKETS = frozenset({0, 1})  # 20% of keys are test-only
ARITH_SOURCE = "synth_arith"
LOGIC_SOURCE = "synth_logic"
# default sizes per (task, split); the logic test split holds ~460 distinct problems in all
DEFAULT_SIZES = {(ARITH_SOURCE, "train"): 2000, (ARITH_SOURCE, "test"): 1000,
                 (LOGIC_SOURCE, "train"): 1500, (LOGIC_SOURCE, "test"): 400}
MAX_MISSES = 20000  # consecutive draws without a new problem before giving up

NAMES = ["Mia", "Tom", "Ava", "Leo", "Zoe", "Sam", "Eli", "Ana", "Max", "Ivy", "Ben", "Lily", "Noah", "Emma",
         "Omar", "Ruth", "Ken", "Nina", "Raj", "Sara"]
SHE = {"Mia", "Ava", "Zoe", "Ana", "Ivy", "Lily", "Emma", "Ruth", "Nina", "Sara"}
ITEMS = ["apples", "shells", "marbles", "stickers", "coins", "books", "pencils", "cards", "stamps", "cookies",
         "balloons", "buttons"]
ADD_VERBS = ["buys {n} more", "finds {n} more", "gets {n} more", "is given {n} more", "picks up {n} more"]
SUB_VERBS = ["gives away {n}", "loses {n}", "sells {n}", "uses {n}", "gives {n} to a friend"]

# Filler for padded solutions: none of it depends on the question.
OPENERS = ["Let me think about this step by step.", "Okay, let me work through this problem carefully.",
           "Let me read the problem again and solve it slowly.", "I will solve this one step at a time.",
           "This looks simple, but I want to be careful."]
MIDDLE = ["Let me make sure I did that right.", "That step looks correct.", "Now I move on to the next part.",
          "Okay, so far so good.", "I should keep track of the running total.", "Hmm, let me keep going.",
          "I want to be careful not to make a mistake here.", "So that part is done."]
CLOSERS = ["Let me double-check everything once more.", "I have checked every step.",
           "So I am confident in my answer.", "Putting it all together gives the final result."]


def _bucket(key: tuple) -> int:
    digest = hashlib.sha256(repr(key).encode()).digest()
    return int.from_bytes(digest[:4], "big") % N_BUCKETS


def is_test_key(key: tuple) -> bool:
    return _bucket(key) in TEST_BUCKETS


# ------------------------------------------------------------------------------------ arithmetic
def _arith_item(rng: random.Random) -> tuple[tuple, dict[str, Any]]:
    """One arithmetic problem: a start value and 2–3 add/subtract steps that never go below 0."""
    start = rng.randint(2, 20)
    steps: list[tuple[str, int]] = []
    value = start
    for _ in range(rng.choice((2, 2, 3))):
        if value >= 2 and rng.random() < 0.5:
            n = rng.randint(1, min(value, 9))
            steps.append(("-", n))
            value -= n
        else:
            n = rng.randint(1, 9)
            steps.append(("+", n))
            value += n
    key = ("arith", start, tuple(steps))
    return key, {"start": start, "steps": steps, "answer": value}


def _arith_problem(rng: random.Random, item: dict[str, Any], pid: str) -> Problem:
    name, obj = rng.choice(NAMES), rng.choice(ITEMS)
    pron = "She" if name in SHE else "He"
    phrases = [rng.choice(ADD_VERBS if op == "+" else SUB_VERBS).format(n=n) for op, n in item["steps"]]
    actions = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    question = f"{name} has {item['start']} {obj}. {pron} {actions}. How many {obj} does {name} have now?"
    return Problem(id=pid, data_source=ARITH_SOURCE, question=question, answer=str(item["answer"]),
                   metadata={"start": item["start"], "steps": [[op, n] for op, n in item["steps"]]})


def arith_steps(problem: Problem) -> list[str]:
    """The solution's step lines: ``"12 + 7 = 19."``, ..."""
    value = problem.metadata["start"]
    lines = []
    for op, n in problem.metadata["steps"]:
        new = value + n if op == "+" else value - n
        lines.append(f"{value} {op} {n} = {new}.")
        value = new
    return lines


# ------------------------------------------------------------------------------------ Boolean logic
def _logic_item(rng: random.Random) -> tuple[tuple, dict[str, Any]]:
    """3–4 literals (each possibly negated) combined left to right: ``((A op B) op C) op D``."""
    lits = [(rng.random() < 0.5, rng.random() < 0.35) for _ in range(rng.choice((3, 4)))]
    ops = [rng.choice(("and", "or")) for _ in range(len(lits) - 1)]
    return ("logic", tuple(lits), tuple(ops)), {"lits": lits, "ops": ops}


def _lit_text(lit) -> str:
    return ("not " if lit[1] else "") + str(lit[0])


def _lit_value(lit) -> bool:
    return lit[0] != lit[1]


def _apply(op: str, x: bool, y: bool) -> bool:
    return (x and y) if op == "and" else (x or y)


def _logic_problem(rng: random.Random, item: dict[str, Any], pid: str) -> Problem:
    lits, ops = item["lits"], item["ops"]
    expr, value = _lit_text(lits[0]), _lit_value(lits[0])
    for op, lit in zip(ops, lits[1:]):
        head = f"({expr})" if expr.count(" and ") + expr.count(" or ") else expr
        expr = f"{head} {op} {_lit_text(lit)}"
        value = _apply(op, value, _lit_value(lit))
    question = f"Is the following statement true or false? {expr}"
    return Problem(id=pid, data_source=LOGIC_SOURCE, question=question, answer=str(value),
                   metadata={"lits": [list(x) for x in lits], "ops": list(ops)})


def logic_steps(problem: Problem) -> list[str]:
    """Negations first, then the operations left to right: ``"not False = True."``, ``"True and True = True."``"""
    lits, ops = [tuple(x) for x in problem.metadata["lits"]], problem.metadata["ops"]
    lines = [f"not {v} = {not v}." for v, neg in lits if neg]
    x = _lit_value(lits[0])
    for op, lit in zip(ops, lits[1:]):
        y = _apply(op, x, _lit_value(lit))
        lines.append(f"{x} {op} {_lit_value(lit)} = {y}.")
        x = y
    return lines


TASKS = {
    ARITH_SOURCE: (_arith_item, _arith_problem, arith_steps),
    LOGIC_SOURCE: (_logic_item, _logic_problem, logic_steps),
}


def generate(task: str, size: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """``size`` distinct problems of ``task`` (``synth_arith`` or ``synth_logic``) from ``split``
    (``train`` or ``test``), deterministic in ``seed``. Raises ``ValueError`` when the split has
    fewer distinct problems than asked for."""
    if task not in TASKS:
        raise SarlError(f"unknown synthetic task {task!r}; choose one of: {', '.join(TASKS)}")
    if split not in ("train", "test"):
        raise SarlError(f"split must be 'train' or 'test', got {split!r}")
    make_item, make_problem, _ = TASKS[task]
    rng = random.Random(f"{task}-{split}-{seed}")
    seen: set[tuple] = set()
    out: list[Problem] = []
    misses = 0
    while len(out) < size:
        key, item = make_item(rng)
        if key in seen or is_test_key(key) != (split == "test"):
            misses += 1
            if misses > MAX_MISSES:
                raise SarlError(f"{task} {split}: only {len(out)} distinct problems found, {size} asked for")
            continue
        misses = 0
        seen.add(key)
        out.append(make_problem(rng, item, f"{task}-{split}-{seed}-{len(out)}"))
    return out


def solution(problem: Problem, padded: bool, rng: random.Random | None = None) -> str:
    """The worked solution of a synthetic problem, concise or padded with question-independent filler
    (an opener, a filler sentence after each step, a repeated final step and a closer)."""
    _, _, steps_of = TASKS[problem.data_source]
    steps = steps_of(problem)
    final = f"The answer is \\boxed{{{problem.answer}}}."
    if not padded:
        return " ".join(steps + [final])
    rng = rng or random.Random(problem.id)
    parts = [rng.choice(OPENERS)]
    for line in steps:
        parts += [line, rng.choice(MIDDLE)]
    parts += [f"Checking the last step again: {steps[-1]}", rng.choice(CLOSERS), final]
    return " ".join(parts)


def sft_rows(tasks: dict[str, int], padded_fraction: float = 0.5, seed: int = 0) -> list[dict[str, Any]]:
    """An SFT corpus: for each ``task: count``, ``count`` training-split problems with solutions, a
    ``padded_fraction`` of them padded. Rows: ``id, data_source, question, answer, response, padded``."""
    if not 0.0 <= padded_fraction <= 1.0:
        raise SarlError(f"padded_fraction must be in [0, 1], got {padded_fraction}")
    rng = random.Random(f"sft-{seed}")
    rows = []
    for task, count in tasks.items():
        for p in generate(task, count, seed=seed, split="train"):
            padded = rng.random() < padded_fraction
            rows.append({"id": p.id, "data_source": p.data_source, "question": p.question, "answer": p.answer,
                         "response": solution(p, padded, rng), "padded": padded})
    rng.shuffle(rows)
    return rows


def load(task: str, split: str, limit: int | None = None, seed: int = 0, size: int | None = None
         ) -> list[Problem]:
    """Registry loader: ``size`` (default from :data:`DEFAULT_SIZES`) problems, the first ``limit`` kept."""
    problems = generate(task, size or DEFAULT_SIZES[task, split], seed=seed, split=split)
    return problems[:limit] if limit is not None else problems
