"""``synth_chain_v2``: version 2 of the multi-step task ``synth_chain`` (:mod:`sarl.data.synthetic`).

The problems are ``synth_chain``'s (1–4 dependent add/subtract steps, start 2–20, steps of 1–9, values
1–40, the same word problems); ``synth_chain`` itself is unchanged, and results made with it stay
labelled ``synth_chain``. Two things differ.

**Every style opens with its own phrase** (:data:`OPENINGS`), so the first token of an answer says its
style. In ``synth_chain`` concise and shortcut answers both start with the computation (``"13 + 8"``)
and part only at ``" ="`` vs ``" -"``/``" +"``, so a policy-gradient push against shortcuts on those
shared first tokens also pushes against concise answers. Here:

==========  ========================================  ===========
style       opening                                   first token
==========  ========================================  ===========
concise     ``Step by step:``, then the step lines    ``Step``
shortcut    ``All at once:``, then the one-line sum   ``All``
padded      ``Let me think about this carefully.``    ``Let``
restated    ``We know that``, then the statements     ``We``
==========  ========================================  ===========

(first tokens under the default model's tokenizer and under the quickstart's 1,024-entry tokenizer
trained on this corpus; a 400-entry one splits ``We`` into ``W``). The openings start with four
different letters, so under any byte-level tokenizer without a prefix space (the default model's, and
every tokenizer :func:`sarl.tokenizer.train_tokenizer` builds) their first tokens differ (tested for
both). After the opening each style writes what it writes in ``synth_chain``: the concise step lines,
the shortcut line (on a one-step problem the same computation as the concise one: only the opening
tells them apart), the padded filler around the step lines (the fixed opening replaces
``synth_chain``'s random one), the question's statements and the step lines.

:func:`style_of_v2` labels an answer by its opening (the branch the policy took at the first token), or
by ``synth_chain``'s rules on the text when it has no opening; :func:`form_v2` is the label by those
rules alone (``answer_labels``' ``form``), so an answer that opens in one style and writes another
shows as a disagreement of the two.

**Splits by the first step, and SFT apart from RL.** A problem's split is the hash bucket (of
:data:`sarl.data.synthetic.N_BUCKETS`) of its *first step* ``(start, op, n)`` (:func:`split_of_v2`):
``test`` 2 buckets, ``val`` 1, ``rl`` 2, ``sft`` 5 (:data:`SPLIT_BUCKETS`); of the 305 possible first
steps, 55 are test, 33 val, 52 RL and 165 SFT. The SFT corpus (``sarl sft --synthetic
synth_chain_v2=N``) draws from ``sft``, RL training (dataset ``synth_chain_v2``) from ``rl``. So, whatever
the seeds and sizes, no two of the four splits share a problem or a first step, hence no problem's
whole computation is the opening of another split's solution: every test (and RL) problem starts with a
step that no SFT solution starts with. What they do share: single operations. Each test problem's step
lines (``"13 + 8 = 21."``) occur *inside* SFT solutions, as a later step after another opening (there
are only a few hundred one-operation facts on values 1–40, and the model has to learn them), and a
short test computation can occur as consecutive lines inside a longer SFT solution. Measured with the
quickstart-sized SFT corpus (12,000 problems, seed 0) against the first 300 test problems (what ``make
reproduce`` evaluates), ``python -m sarl.data.synthetic_v2``:

=====  ========  =================  =====================  ======================  ==================
steps  problems  SFT first line     whole computation =    whole computation as    every step line
                 = test first line  an SFT solution's      consecutive lines       somewhere in SFT
                                    opening lines          anywhere in one
=====  ========  =================  =====================  ======================  ==================
1      42        0                  0                      42                      42
2      85        0                  0                      76                      85
3      90        0                  0                      7                       90
4      83        0                  0                      0                       83
=====  ========  =================  =====================  ======================  ==================

(``synth_chain``, same sizes: 50/50, 71/89, 6/75, 0/86 test problems are the opening lines of an SFT
solution, every test problem's first line is an SFT solution's first line, and its RL problems of seed
0 are the first 4,000 SFT problems themselves; ``synth_chain_v2``'s first 4,000 RL problems share no
problem, first line or opening with the SFT corpus.) One-step problems are few in every split (42 of
the first 300 test problems; 55 test ones in all, one per test first step): there are only 305
one-step problems, and a one-step problem *is* its first step.
"""

from __future__ import annotations

import argparse
import random
from typing import Any

from sarl.data.schema import Problem
from sarl.data.synthetic import (
    CHAIN_SOURCE,
    CHAIN_V2_SOURCE,
    CHAIN_V2_SPLITS,
    CLOSERS,
    FILLER,
    MIDDLE,
    N_BUCKETS,
    OTHER,
    _bucket,
    _chain_item,
    _word_problem,
    arith_shortcut,
    arith_steps,
    draw_distinct,
    form_of,
    word_restatement,
)
from sarl.errors import SarlError

# Each style's fixed opening; the four start with different letters (so with different first tokens).
OPENINGS = {"concise": "Step by step:", "shortcut": "All at once:",
            "padded": "Let me think about this carefully.", "restated": "We know that"}
# Hash buckets of the first step (start, op, n) per split: 20% test, 10% val, 20% RL, 50% SFT.
SPLIT_BUCKETS = {"test": frozenset({0, 1}), "val": frozenset({2}), "rl": frozenset({3, 4}),
                 "sft": frozenset(range(5, N_BUCKETS))}
# synth_chain's filler and the padded opening: what makes a text padded by content
FILLER_V2 = (*FILLER, OPENINGS["padded"])


def first_step_key(start: int, steps) -> tuple:
    """What the split hashes: the task and the first step ``(start, op, n)``."""
    op, n = steps[0]
    return (CHAIN_V2_SOURCE, start, op, n)


def split_of_v2(key: tuple) -> str:
    """The split (:data:`~sarl.data.synthetic.CHAIN_V2_SPLITS`) of a problem key
    ``("chain", start, steps)``: the one whose buckets hold its first step's."""
    bucket = _bucket(first_step_key(key[1], key[2]))
    return next(split for split, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def _problem(rng: random.Random, item: dict[str, Any], pid: str) -> Problem:
    return _word_problem(CHAIN_V2_SOURCE, rng, item, pid)


def generate_v2(size: int, seed: int = 0, split: str = "sft") -> list[Problem]:
    """``size`` distinct problems from ``split`` (``sft``, ``rl``, ``val`` or ``test``), deterministic in
    ``seed``."""
    if split not in CHAIN_V2_SPLITS:
        raise SarlError(f"{CHAIN_V2_SOURCE}: split must be one of {', '.join(CHAIN_V2_SPLITS)}, "
                        f"got {split!r}")
    return draw_distinct(CHAIN_V2_SOURCE, split, size, seed, _chain_item, _problem,
                         lambda key: split_of_v2(key) == split)


def solution_v2(problem: Problem, style: str, rng: random.Random | None = None) -> str:
    """The worked solution in ``style``: its opening (:data:`OPENINGS`), then ``synth_chain``'s text of
    that style; ``rng`` picks the padded filler."""
    steps, opening = arith_steps(problem), OPENINGS[style]
    final = f"The answer is \\boxed{{{problem.answer}}}."
    if style == "concise":
        return " ".join([opening, *steps, final])
    if style == "shortcut":
        return " ".join([opening, arith_shortcut(problem), final])
    if style == "restated":
        return " ".join([f"{opening} {word_restatement(problem)}", *steps, final])
    rng = rng or random.Random(problem.id)
    parts = [opening]
    for line in steps:
        parts += [line, rng.choice(MIDDLE)]
    parts += [f"Checking the last step again: {steps[-1]}", rng.choice(CLOSERS), final]
    return " ".join(parts)


def opening_of(response: str) -> str | None:
    """The style whose opening ``response`` starts with (leading whitespace aside), else ``None``."""
    text = response.lstrip()
    return next((style for style, phrase in OPENINGS.items() if text.startswith(phrase)), None)


def form_v2(problem: Problem, response: str) -> str:
    """The style by ``synth_chain``'s rules on the text (:func:`sarl.data.synthetic.form_of`), the padded
    opening counted as filler; the opening itself is not looked at."""
    return form_of(problem, response, FILLER_V2)


def style_of_v2(problem: Problem, response: str) -> str:
    """``other`` without a ``\\boxed{`` answer; else the style of the opening the answer starts with;
    else (no opening) :func:`form_v2`. Every :func:`solution_v2` gets its own style back (tested)."""
    if "\\boxed{" not in response:
        return OTHER
    return opening_of(response) or form_v2(problem, response)


# ------------------------------------------------------------------------------------ what is shared
def _key(problem: Problem) -> tuple:
    return problem.metadata["start"], tuple(tuple(s) for s in problem.metadata["steps"])


OVERLAP_COLUMNS = ("problems", "same_problem", "first_line", "prefix", "inside", "lines")


def shared_computation(sft: list[Problem], test: list[Problem]) -> dict[int, dict[str, int]]:
    """Per number of steps: how many ``test`` problems there are (``problems``), and of those how many
    are an ``sft`` problem (``same_problem``), have an SFT solution's first step line as their first
    line (``first_line``), have their whole computation (all step lines) as the opening lines of an SFT
    solution's step lines (``prefix``) or as consecutive lines anywhere in one (``inside``), and have
    every step line somewhere in the SFT solutions (``lines``). Works for ``synth_chain`` problems too."""
    keys, firsts, prefixes, runs, lines = {_key(p) for p in sft}, set(), set(), set(), set()
    for p in sft:
        ls = tuple(arith_steps(p))
        firsts.add(ls[0])
        lines.update(ls)
        for i in range(len(ls)):
            runs.update(ls[i:j] for j in range(i + 1, len(ls) + 1))
        prefixes.update(ls[:j] for j in range(1, len(ls) + 1))
    out: dict[int, dict[str, int]] = {}
    for p in test:
        ls = tuple(arith_steps(p))
        row = out.setdefault(len(ls), dict.fromkeys(OVERLAP_COLUMNS, 0))
        hits = (True, _key(p) in keys, ls[0] in firsts, ls in prefixes, ls in runs, set(ls) <= lines)
        for name, hit in zip(OVERLAP_COLUMNS, hits):
            row[name] += hit
    return dict(sorted(out.items()))


def overlap_tables(sft_size: int = 12000, test_size: int = 300, rl_size: int = 4000, seed: int = 0
                   ) -> dict[str, dict[str, dict[int, dict[str, int]]]]:
    """:func:`shared_computation` of the SFT corpus (``sft_size`` problems, ``seed``) against the first
    ``test_size`` test problems and the first ``rl_size`` RL training problems (``seed``), for
    ``synth_chain`` (SFT and RL: the ``train`` split) and ``synth_chain_v2``."""
    from sarl.data.synthetic import generate

    out = {}
    for task, sft_split, rl_split in ((CHAIN_SOURCE, "train", "train"), (CHAIN_V2_SOURCE, "sft", "rl")):
        sft = generate(task, sft_size, seed=seed, split=sft_split)
        out[task] = {"test": shared_computation(sft, generate(task, test_size, seed=seed, split="test")),
                     "rl": shared_computation(sft, generate(task, rl_size, seed=seed, split=rl_split))}
    return out


def main(argv: list[str] | None = None) -> None:
    """``python -m sarl.data.synthetic_v2``: print :func:`overlap_tables` (counts of problems)."""
    ap = argparse.ArgumentParser(description="What synth_chain(_v2) SFT solutions share with test and RL "
                                             "problems.")
    ap.add_argument("--sft-size", type=int, default=12000)
    ap.add_argument("--test-size", type=int, default=300)
    ap.add_argument("--rl-size", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    tables = overlap_tables(args.sft_size, args.test_size, args.rl_size, args.seed)
    cols = OVERLAP_COLUMNS
    for task, parts in tables.items():
        for part, table in parts.items():
            print(f"\n{task}: SFT corpus ({args.sft_size}, seed {args.seed}) vs {part} problems")
            print("steps " + " ".join(f"{c:>12}" for c in cols))
            for steps, row in table.items():
                print(f"{steps:>5} " + " ".join(f"{row[c]:>12}" for c in cols))


if __name__ == "__main__":
    main()
