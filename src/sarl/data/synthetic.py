"""Built-in synthetic tasks with chain-of-thought solutions, for SFT warm starts and CPU-scale RL.

Three generated tasks (and a version 2 of the first, :mod:`sarl.data.synthetic_v2`):

- ``synth_chain``: word problems that need 1–4 *dependent* add/subtract steps (start 2–20, steps of
  1–9, results up to 40: "Mia has 13 shells. She finds 8 more, gives away 7 and buys 5 more. How many
  shells does Mia have now?"); a small model gets the multi-step ones right mainly when it writes the intermediate results;
- ``synth_arith``: 2–3-step word problems over small whole numbers, graded by the math grader;
- ``synth_logic``: Boolean expressions ("Is the following statement true or false? (True and not
  False) or False"), graded by the logic grader (True/False).

:func:`solution` writes a problem's solution in one of four :data:`STYLES`:

- ``concise``: one line per step with its intermediate result, then ``The answer is \\boxed{...}``;
- ``padded``: the same steps with question-independent filler ("That step looks correct.") and a
  repeated last step;
- ``shortcut``: the whole computation as one line (``31 + 12 - 7 + 15 = 51.``), skipping the
  intermediate results (on a one-step problem it is the concise text);
- ``restated``: the question's statements repeated, then the concise solution.

The styles are built to be told apart by :func:`style_of`, which labels any answer (an SFT target or
a sampled response) by rules on its text, so every sampled answer has a style by construction. An SFT
corpus that mixes styles (:func:`sft_rows`) gives a model that sometimes pads, sometimes skips needed
steps and sometimes parrots the question: a length penalty can buy length by moving probability to
shortcuts (less accurate on multi-step problems), and a reward that pays for copying the question can
be raised by restating it.

Splits: every problem is keyed by its numbers and operations only (not the names or objects); a
problem is a *test* problem iff the hash of that key falls in one of :data:`TEST_BUCKETS` of
:data:`N_BUCKETS` buckets, a *validation* problem iff it falls in :data:`VAL_BUCKETS`, else a training
problem. So the ``*_test``, ``*_val`` and training sets share no *whole problem* (no key), whatever the
seeds and sizes; tune on ``*_val``, report on ``*_test``. They do share computations: the key is the
whole problem, so a test problem's steps can be the first steps of a longer training problem (a 3-step
training problem's first line is a 1-step problem's whole computation). For ``synth_chain``, with the
quickstart's SFT corpus (the first 12,000 training problems, seed 0) and the first 300 test problems
(what ``make reproduce`` evaluates), the test problems whose whole computation (every step line) is
the opening of some SFT solution's step lines: 1 step 50 of 50, 2 steps 71 of 89, 3 steps 6 of 75,
4 steps 0 of 86 (of the first 1,000: 65/65, 235/275, 24/326, 0/334); every single step line of every
one of those test problems appears somewhere in the SFT solutions, and every test problem's first line
is the first line of some SFT solution. Only 3–4-step problems are mostly new computation. RL training
problems come from the same training split as the SFT corpus: with seed 0 the RL problems (the first
4,000) are the first 4,000 problems of that corpus. ``synth_chain_v2`` splits by the first step instead
and keeps SFT and RL problems apart (:mod:`sarl.data.synthetic_v2`; the numbers of both versions:
``python -m sarl.data.synthetic_v2``).
"""

from __future__ import annotations

import hashlib
import random
import re
from typing import Any

from sarl.data.schema import Problem
from sarl.errors import SarlError

N_BUCKETS = 10
TEST_BUCKETS = frozenset({0, 1})  # 20% of keys are test-only
VAL_BUCKETS = frozenset({2})  # 10% are validation-only
SPLITS = ("train", "val", "test")
ARITH_SOURCE = "synth_arith"
LOGIC_SOURCE = "synth_logic"
CHAIN_SOURCE = "synth_chain"
CHAIN_V2_SOURCE = "synth_chain_v2"  # version 2 of synth_chain: sarl.data.synthetic_v2
CHAIN_V2_SPLITS = ("sft", "rl", "val", "test")
STYLES = ("concise", "padded", "shortcut", "restated")
# what style_of can also answer: no boxed final answer
OTHER = "other"
# default sizes per (task, split); the logic test split holds ~460 distinct problems in all
DEFAULT_SIZES = {(ARITH_SOURCE, "train"): 2000, (ARITH_SOURCE, "val"): 500, (ARITH_SOURCE, "test"): 1000,
                 (LOGIC_SOURCE, "train"): 1500, (LOGIC_SOURCE, "val"): 200, (LOGIC_SOURCE, "test"): 400,
                 (CHAIN_SOURCE, "train"): 4000, (CHAIN_SOURCE, "val"): 500, (CHAIN_SOURCE, "test"): 1000,
                 (CHAIN_V2_SOURCE, "sft"): 4000, (CHAIN_V2_SOURCE, "rl"): 4000, (CHAIN_V2_SOURCE, "val"): 500,
                 (CHAIN_V2_SOURCE, "test"): 1000}
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


def split_of(key: tuple) -> str:
    """``train``, ``val`` or ``test``: the split a problem key belongs to."""
    b = _bucket(key)
    return "test" if b in TEST_BUCKETS else "val" if b in VAL_BUCKETS else "train"


# ------------------------------------------------------------------------------------ arithmetic
def _add_sub_steps(rng: random.Random, start: int, count: int, keep: int, cap: int | None = None
                   ) -> tuple[list[tuple[str, int]], int]:
    """``count`` add/subtract steps of 1–9 from ``start`` and the final value: each step subtracts with
    probability 1/2 (always above ``cap``) when the value is at least ``keep + 2``, never leaving less
    than ``keep``; otherwise it adds."""
    steps: list[tuple[str, int]] = []
    value = start
    for _ in range(count):
        if value >= keep + 2 and (rng.random() < 0.5 or (cap is not None and value > cap)):
            n = rng.randint(1, min(value - keep, 9))
            steps.append(("-", n))
            value -= n
        else:
            n = rng.randint(1, 9)
            steps.append(("+", n))
            value += n
    return steps, value


def _arith_item(rng: random.Random) -> tuple[tuple, dict[str, Any]]:
    """One arithmetic problem: a start value and 2–3 add/subtract steps that never go below 0."""
    start = rng.randint(2, 20)
    steps, value = _add_sub_steps(rng, start, rng.choice((2, 2, 3)), keep=0)
    return ("arith", start, tuple(steps)), {"start": start, "steps": steps, "answer": value}


def _chain_item(rng: random.Random) -> tuple[tuple, dict[str, Any]]:
    """One multi-step problem: a start in 2–20 and 1–4 add/subtract steps of 1–9, staying in 1–40."""
    start = rng.randint(2, 20)
    steps, value = _add_sub_steps(rng, start, rng.randint(1, 4), keep=1, cap=31)
    return ("chain", start, tuple(steps)), {"start": start, "steps": steps, "answer": value}


def _word_problem(source: str, rng: random.Random, item: dict[str, Any], pid: str) -> Problem:
    name, obj = rng.choice(NAMES), rng.choice(ITEMS)
    pron = "She" if name in SHE else "He"
    phrases = [rng.choice(ADD_VERBS if op == "+" else SUB_VERBS).format(n=n) for op, n in item["steps"]]
    actions = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    question = f"{name} has {item['start']} {obj}. {pron} {actions}. How many {obj} does {name} have now?"
    return Problem(id=pid, data_source=source, question=question, answer=str(item["answer"]),
                   metadata={"start": item["start"], "steps": [[op, n] for op, n in item["steps"]]})


def _arith_problem(rng: random.Random, item: dict[str, Any], pid: str) -> Problem:
    return _word_problem(ARITH_SOURCE, rng, item, pid)


def _chain_problem(rng: random.Random, item: dict[str, Any], pid: str) -> Problem:
    return _word_problem(CHAIN_SOURCE, rng, item, pid)


def arith_steps(problem: Problem) -> list[str]:
    """The solution's step lines: ``"12 + 7 = 19."``, ..."""
    value = problem.metadata["start"]
    lines = []
    for op, n in problem.metadata["steps"]:
        new = value + n if op == "+" else value - n
        lines.append(f"{value} {op} {n} = {new}.")
        value = new
    return lines


def arith_shortcut(problem: Problem) -> str:
    """All steps as one line without intermediate results: ``"12 + 7 - 5 = 14."``"""
    ops = " ".join(f"{op} {n}" for op, n in problem.metadata["steps"])
    return f"{problem.metadata['start']} {ops} = {problem.answer}."


def word_restatement(problem: Problem) -> str:
    """The question's statements without the final question: ``"Mia has 12 shells. She finds 7 more."``"""
    return problem.question.rsplit(" How many ", 1)[0]


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


def logic_shortcut(problem: Problem) -> str:
    """The whole expression and its value in one line."""
    return f"{problem.question.split('? ', 1)[1]} = {problem.answer}."


def logic_restatement(problem: Problem) -> str:
    return f"The statement is: {problem.question.split('? ', 1)[1]}."


# task -> (item generator, problem builder, step lines, one-line shortcut, restatement)
TASKS = {
    ARITH_SOURCE: (_arith_item, _arith_problem, arith_steps, arith_shortcut, word_restatement),
    LOGIC_SOURCE: (_logic_item, _logic_problem, logic_steps, logic_shortcut, logic_restatement),
    CHAIN_SOURCE: (_chain_item, _chain_problem, arith_steps, arith_shortcut, word_restatement),
}
# every task generate() knows: TASKS and synth_chain_v2
ALL_TASKS = (*TASKS, CHAIN_V2_SOURCE)


def _v2():
    from sarl.data import synthetic_v2  # imported late: synthetic_v2 builds on this module

    return synthetic_v2


def generate(task: str, size: int, seed: int = 0, split: str = "train") -> list[Problem]:
    """``size`` distinct problems of ``task`` (one of :data:`ALL_TASKS`) from ``split`` (``train``,
    ``val`` or ``test``; for ``synth_chain_v2``: :data:`CHAIN_V2_SPLITS`), deterministic in ``seed``.
    Raises ``ValueError`` when the split has fewer distinct problems than asked for."""
    if task == CHAIN_V2_SOURCE:
        return _v2().generate_v2(size, seed=seed, split=split)
    if task not in TASKS:
        raise SarlError(f"unknown synthetic task {task!r}; choose one of: {', '.join(ALL_TASKS)}")
    if split not in SPLITS:
        raise SarlError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    make_item, make_problem = TASKS[task][:2]
    return draw_distinct(task, split, size, seed, make_item, make_problem, lambda key: split_of(key) == split)


def draw_distinct(task: str, split: str, size: int, seed: int, make_item, make_problem, belongs
                  ) -> list[Problem]:
    """``size`` problems with distinct keys among those ``make_item`` draws whose key ``belongs`` to the
    split, from a generator seeded by ``task``, ``split`` and ``seed``."""
    rng = random.Random(f"{task}-{split}-{seed}")
    seen: set[tuple] = set()
    out: list[Problem] = []
    misses = 0
    while len(out) < size:
        key, item = make_item(rng)
        if key in seen or not belongs(key):
            misses += 1
            if misses > MAX_MISSES:
                raise SarlError(f"{task} {split}: only {len(out)} distinct problems found, {size} asked for")
            continue
        misses = 0
        seen.add(key)
        out.append(make_problem(rng, item, f"{task}-{split}-{seed}-{len(out)}"))
    return out


def solution(problem: Problem, style: str = "concise", rng: random.Random | None = None) -> str:
    """The worked solution of a synthetic problem in one of :data:`STYLES` (see the module docstring);
    ``rng`` picks the padded style's filler sentences."""
    if style not in STYLES:
        raise SarlError(f"unknown solution style {style!r}; choose one of: {', '.join(STYLES)}")
    if problem.data_source == CHAIN_V2_SOURCE:
        return _v2().solution_v2(problem, style, rng)
    _, _, steps_of, shortcut_of, restate = TASKS[problem.data_source]
    steps = steps_of(problem)
    final = f"The answer is \\boxed{{{problem.answer}}}."
    if style == "shortcut":
        return " ".join([shortcut_of(problem), final])
    if style == "restated":
        return " ".join([restate(problem)] + steps + [final])
    if style == "concise":
        return " ".join(steps + [final])
    rng = rng or random.Random(problem.id)
    parts = [rng.choice(OPENERS)]
    for line in steps:
        parts += [line, rng.choice(MIDDLE)]
    parts += [f"Checking the last step again: {steps[-1]}", rng.choice(CLOSERS), final]
    return " ".join(parts)


FILLER = (*OPENERS, *MIDDLE, *CLOSERS, "Checking the last step again")
# one operation with its result ("12 + 7 = 19", "not False = True", "True and False = False")
_ONE_OP = re.compile(r"(?<![\d+\-] )\b(?:\d+ [+-] \d+|not (?:True|False)|(?:True|False) (?:and|or) (?:True|False)) = ")


_WORD_RESTATED = re.compile(rf"\b(?:{'|'.join(NAMES)}) has \d+ (?:{'|'.join(ITEMS)})\b")
_RESTATED = {ARITH_SOURCE: _WORD_RESTATED, CHAIN_SOURCE: _WORD_RESTATED, CHAIN_V2_SOURCE: _WORD_RESTATED,
             LOGIC_SOURCE: re.compile(r"The statement is:")}


def n_steps(problem: Problem) -> int:
    """How many dependent steps the problem's concise solution writes."""
    steps_of = arith_steps if problem.data_source == CHAIN_V2_SOURCE else TASKS[problem.data_source][2]
    return len(steps_of(problem))


def style_of(problem: Problem, response: str) -> str:
    """The style of ``response`` to a synthetic ``problem``, by rules on its text, first match wins:

    1. ``other``: no ``\\boxed{`` answer;
    2. ``restated``: contains a sentence of the question's form (``"<name> has <n> <items>"`` with any
       of the generator's names and items, so a restatement that gets the name or a number wrong still
       counts; ``"The statement is:"`` for logic), which no other style writes;
    3. ``padded``: contains one of the filler sentences (:data:`FILLER`);
    4. ``shortcut``: the problem needs ≥ 2 steps and the answer writes fewer one-operation results
       (``"31 + 12 = 43"``) than steps: it skipped intermediate results (a combined line such as
       ``"31 + 12 - 7 = 36"`` counts as none);
    5. ``concise`` otherwise.

    On the SFT targets of :func:`solution` this returns the style they were written in, except a
    one-step shortcut, whose text is the concise one (tested). ``synth_chain_v2`` answers:
    :func:`sarl.data.synthetic_v2.style_of_v2` (the opening decides, these rules without one)."""
    if problem.data_source == CHAIN_V2_SOURCE:
        return _v2().style_of_v2(problem, response)
    return form_of(problem, response)


def form_of(problem: Problem, response: str, filler: tuple[str, ...] = FILLER) -> str:
    """The rules of :func:`style_of` on the text alone, ``filler`` the sentences that make it padded."""
    if "\\boxed{" not in response:
        return OTHER
    if _RESTATED[problem.data_source].search(response):
        return "restated"
    if any(f in response for f in filler):
        return "padded"
    steps = n_steps(problem)
    if steps >= 2 and len(_ONE_OP.findall(response)) < steps:
        return "shortcut"
    return "concise"


def parse_style_mix(text: str | dict[str, float]) -> dict[str, float]:
    """``"concise=0.3,padded=0.3,shortcut=0.25,restated=0.15"`` (or a dict) → shares that sum to 1,
    every name one of :data:`STYLES`; anything else raises a :class:`SarlError` naming the bad part."""
    items = text.items() if isinstance(text, dict) else (p.partition("=")[::2] for p in str(text).split(",") if p.strip())
    mix: dict[str, float] = {}
    for name, share in items:
        name = str(name).strip()
        if name not in STYLES:
            raise SarlError(f"style mix: unknown style {name!r}; choose from: {', '.join(STYLES)}")
        try:
            value = float(share)
        except (TypeError, ValueError):
            raise SarlError(f"style mix: {name}: expected a number, got {share!r}") from None
        if value < 0:
            raise SarlError(f"style mix: {name}: share must be >= 0, got {value}")
        mix[name] = value
    total = sum(mix.values())
    if not mix or total <= 0:
        raise SarlError(f"style mix: expected style=share[,style=share] with a positive total, got {text!r}")
    return {k: v / total for k, v in mix.items()}


def sft_rows(tasks: dict[str, int], padded_fraction: float = 0.5, seed: int = 0,
             style_mix: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """An SFT corpus: for each ``task: count``, ``count`` training-split problems with solutions (for
    ``synth_chain_v2``, its ``sft`` split: :func:`sft_split`).

    The style of each solution is drawn from ``style_mix`` (shares per :data:`STYLES`) when given, else
    padded with probability ``padded_fraction`` and concise otherwise. Rows: ``id, data_source,
    question, answer, response, style`` (the drawn style), ``label`` (:func:`style_of` of the response)
    and ``padded``."""
    if not 0.0 <= padded_fraction <= 1.0:
        raise SarlError(f"padded_fraction must be in [0, 1], got {padded_fraction}")
    mix = parse_style_mix(style_mix) if style_mix else {"concise": 1 - padded_fraction, "padded": padded_fraction}
    names, shares = list(mix), list(mix.values())
    rng = random.Random(f"sft-{seed}")
    rows = []
    for task, count in tasks.items():
        for p in generate(task, count, seed=seed, split=sft_split(task)):
            style = rng.choices(names, shares)[0]
            response = solution(p, style, rng)
            rows.append({"id": p.id, "data_source": p.data_source, "question": p.question, "answer": p.answer,
                         "response": response, "style": style, "label": style_of(p, response),
                         "padded": style == "padded"})
    rng.shuffle(rows)
    return rows


def sft_split(task: str) -> str:
    """The split an SFT corpus of ``task`` draws from: ``sft`` for ``synth_chain_v2`` (its RL problems
    are the ``rl`` split), ``train`` for the others (shared with RL)."""
    return "sft" if task == CHAIN_V2_SOURCE else "train"


def load(task: str, split: str, limit: int | None = None, seed: int = 0, size: int | None = None
         ) -> list[Problem]:
    """Registry loader: ``size`` (default from :data:`DEFAULT_SIZES`) problems, the first ``limit`` kept."""
    problems = generate(task, size or DEFAULT_SIZES[task, split], seed=seed, split=split)
    return problems[:limit] if limit is not None else problems


def answer_labels(problem: Problem, response: str) -> dict[str, Any]:
    """``{"style": ..., "steps": ...}`` for an answer to a synthetic problem; ``{}`` for any other
    problem (what evaluation rows and training metrics attach to each sample). For ``synth_chain_v2``
    also ``form``: the style by the text's content alone (:func:`sarl.data.synthetic_v2.form_v2`), which
    differs from ``style`` (the opening) when an answer opens in one style and writes another."""
    if problem.data_source not in ALL_TASKS or not problem.metadata:
        return {}
    labels = {"style": style_of(problem, response), "steps": n_steps(problem)}
    if problem.data_source == CHAIN_V2_SOURCE:
        labels["form"] = _v2().form_v2(problem, response)
    return labels


def batch_style_shares(problems: list[Problem | None] | None, texts: list[str]) -> dict[str, float]:
    """:func:`style_shares` of a batch of answers, or ``{}`` unless every answer is to a synthetic
    problem (what the trainer logs as ``style/<name>``)."""
    labels = [answer_labels(p, t) if p is not None else {} for p, t in zip(problems or [], texts)]
    if not labels or not all(labels):
        return {}
    return style_shares([lab["style"] for lab in labels])


def style_shares(labels: list[str]) -> dict[str, float]:
    """Share of each of :data:`STYLES` (and ``other``) among ``labels``; every style is present."""
    n = len(labels)
    return {s: (sum(lab == s for lab in labels) / n if n else 0.0) for s in (*STYLES, OTHER)}
