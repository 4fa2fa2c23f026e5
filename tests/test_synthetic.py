"""The built-in synthetic tasks: determinism, the train/val/test split, gold answers, solution styles and
the style labeller."""

import hashlib
import json
import random
import re

import pytest

from sarl.data import load_dataset
from sarl.data.schema import Problem
from sarl.data.synthetic import (
    ARITH_SOURCE,
    CHAIN_SOURCE,
    LOGIC_SOURCE,
    STYLES,
    answer_labels,
    generate,
    is_test_key,
    n_steps,
    parse_style_mix,
    sft_rows,
    solution,
    split_of,
    style_of,
)
from sarl.errors import SarlError
from sarl.grading import grade

ALL_TASKS = [ARITH_SOURCE, LOGIC_SOURCE, CHAIN_SOURCE]


def _key(p):
    if p.data_source in (ARITH_SOURCE, CHAIN_SOURCE):
        kind = "arith" if p.data_source == ARITH_SOURCE else "chain"
        return (kind, p.metadata["start"], tuple((op, n) for op, n in p.metadata["steps"]))
    return ("logic", tuple(tuple(x) for x in p.metadata["lits"]), tuple(p.metadata["ops"]))


@pytest.mark.parametrize("task", ALL_TASKS)
def test_deterministic_distinct_and_split_disjoint(task):
    a = generate(task, 300, seed=3)
    assert [p.question for p in a] == [p.question for p in generate(task, 300, seed=3)]
    assert [p.question for p in a] != [p.question for p in generate(task, 300, seed=4)]
    train_keys = {_key(p) for p in generate(task, 1000, seed=0)} | {_key(p) for p in generate(task, 1000, seed=1)}
    test_keys = {_key(p) for p in generate(task, 300, seed=0, split="test")}
    val_keys = {_key(p) for p in generate(task, 150, seed=0, split="val")}
    assert len(train_keys) >= 1000 and len(test_keys) == 300 and len(val_keys) == 150  # distinct within a split
    assert not train_keys & test_keys and not train_keys & val_keys and not val_keys & test_keys
    assert all(is_test_key(k) for k in test_keys) and not any(is_test_key(k) for k in train_keys | val_keys)
    assert {split_of(k) for k in val_keys} == {"val"} and {split_of(k) for k in train_keys} == {"train"}


def test_version_1_generation_is_pinned():
    """Committed results used these exact problems and solutions: the synth_chain_v2 changes (and any later
    change to the shared generator) must leave all three v1 tasks, their splits and sft_rows byte-identical.
    The digest was computed with the module as committed before synth_chain_v2 existed."""
    h = hashlib.sha256()
    for task in ALL_TASKS:
        for split in ("train", "val", "test"):
            for p in generate(task, 100, seed=1, split=split):
                h.update(json.dumps([p.id, p.data_source, p.question, p.answer, p.metadata]).encode())
                h.update("".join(solution(p, style, random.Random(0)) for style in STYLES).encode())
    rows = sft_rows({CHAIN_SOURCE: 200, LOGIC_SOURCE: 50}, seed=2,
                    style_mix="concise=1,padded=1,shortcut=1,restated=1")
    h.update(json.dumps(rows, sort_keys=True).encode())
    assert h.hexdigest() == "40813d320dc078f52514da263d4dfe58ad6f68bb23b424b01048e9165ae7bd02"


def test_version_1_shares_computations_between_sft_and_test_as_documented():
    """The module docstring's numbers: a v1 test problem is never a training problem, but short ones are
    the opening lines of SFT solutions (the quickstart's 12,000-problem corpus, first 300 test problems),
    and RL problems of seed 0 are the SFT corpus's first problems."""
    from sarl.data.synthetic_v2 import shared_computation

    sft = generate(CHAIN_SOURCE, 12000, seed=0)
    table = shared_computation(sft, generate(CHAIN_SOURCE, 300, seed=0, split="test"))
    assert {k: (row["prefix"], row["problems"]) for k, row in table.items()} == {
        1: (50, 50), 2: (71, 89), 3: (6, 75), 4: (0, 86)}
    assert all(row["same_problem"] == 0 and row["first_line"] == row["lines"] == row["problems"]
               for row in table.values())
    assert [p.question for p in generate(CHAIN_SOURCE, 50, seed=0)] == [p.question for p in sft[:50]]


@pytest.mark.parametrize("task", [ARITH_SOURCE, CHAIN_SOURCE])
def test_word_problem_gold_answer_follows_the_question_text(task):
    """Recompute each answer from the question's words, independently of the generator."""
    for p in generate(task, 200, seed=0):
        start = int(re.search(r"has (\d+) ", p.question).group(1))
        value = start
        for m in re.finditer(r"(buys|finds|gets|is given|picks up) (\d+) more|(gives away|loses|sells|uses|gives) (\d+)",
                             p.question.split(". ", 1)[1]):
            value += int(m.group(2)) if m.group(2) else -int(m.group(4))
        assert str(value) == p.answer, p.question
        assert value >= 0


def test_logic_gold_answer_follows_the_expression():
    for p in generate(LOGIC_SOURCE, 200, seed=0):
        expr = p.question.split("? ", 1)[1]
        assert set(re.findall(r"[A-Za-z]+", expr)) <= {"True", "False", "and", "or", "not"}
        # the expression is Python syntax over these words only; evaluate it with a tiny parser
        tokens = re.findall(r"\(|\)|True|False|and|or|not", expr)
        assert str(_eval_bool(tokens)) == p.answer, expr


def _eval_bool(tokens):
    """Left-to-right evaluation of the generator's grammar: operand (op operand)*, operand = [not] lit | (…)."""
    pos = 0

    def operand():
        nonlocal pos
        if tokens[pos] == "(":
            pos += 1
            v = expr()
            assert tokens[pos] == ")"
            pos += 1
            return v
        neg = tokens[pos] == "not"
        pos += neg
        v = tokens[pos] == "True"
        pos += 1
        return v != neg

    def expr():
        nonlocal pos
        v = operand()
        while pos < len(tokens) and tokens[pos] in ("and", "or"):
            op = tokens[pos]
            pos += 1
            w = operand()
            v = (v and w) if op == "and" else (v or w)
        return v

    return expr()


def test_chain_has_one_to_four_dependent_steps_in_range():
    problems = generate(CHAIN_SOURCE, 1000, seed=0)
    counts = {k: sum(n_steps(p) == k for p in problems) for k in (1, 2, 3, 4)}
    assert sum(counts.values()) == 1000 and min(counts.values()) > 50  # one-step keys are few (~300)
    assert counts[2] + counts[3] + counts[4] > 800
    for p in problems:
        value = p.metadata["start"]
        assert 2 <= value <= 20
        for op, n in p.metadata["steps"]:
            assert 1 <= n <= 9
            value = value + n if op == "+" else value - n
            assert 1 <= value <= 40  # every intermediate result stays in range
    # a one-step question reads naturally (no dangling "and")
    one = next(p for p in problems if n_steps(p) == 1)
    assert " and " not in one.question.split(". ")[1]


@pytest.mark.parametrize("task", ALL_TASKS)
def test_every_solution_style_grades_correct_and_padding_is_longer(task):
    for p in generate(task, 50, seed=0):
        concise, padded = solution(p, "concise"), solution(p, "padded", random.Random(0))
        for style in STYLES:
            assert grade(solution(p, style, random.Random(0)), p.answer, problem=p).correct, style
        assert len(padded) > 1.8 * len(concise)
        assert padded.endswith(concise.rsplit(". ", 1)[-1])  # same final line
        restated = solution(p, "restated")
        assert restated.endswith(concise) and len(restated) > len(concise)
        if n_steps(p) >= 2:
            assert len(solution(p, "shortcut")) < len(concise)
    wrong = "False" if p.answer == "True" else ("0" if p.answer != "0" else "1")
    assert not grade(f"The answer is \\boxed{{{wrong}}}.", p.answer, problem=p).correct


def test_style_of_hand_written_answers():
    p = Problem(id="x", data_source=CHAIN_SOURCE, answer="36",
                question="Mia has 31 shells. She finds 12 more and gives away 7. How many shells does Mia have now?",
                metadata={"start": 31, "steps": [["+", 12], ["-", 7]]})
    assert style_of(p, "31 + 12 = 43. 43 - 7 = 36. The answer is \\boxed{36}.") == "concise"
    # a wrong result is still the concise style: the style is about the form, not correctness
    assert style_of(p, "31 + 12 = 44. 44 - 7 = 37. The answer is \\boxed{37}.") == "concise"
    assert style_of(p, "31 + 12 - 7 = 36. The answer is \\boxed{36}.") == "shortcut"
    assert style_of(p, "31 + 12 = 43. 43 - 7 + 0 = 36. The answer is \\boxed{36}.") == "shortcut"  # one of two
    assert style_of(p, "The answer is \\boxed{36}.") == "shortcut"
    assert style_of(p, "Mia has 31 shells. 31 + 12 = 43. 43 - 7 = 36. The answer is \\boxed{36}.") == "restated"
    # a restatement that gets the name and a number wrong is still a restatement
    assert style_of(p, "Tom has 30 shells. She finds 12 more. 30 + 12 = 42. The answer is \\boxed{35}.") == "restated"
    assert style_of(p, "Okay, so far so good. 31 + 12 = 43. 43 - 7 = 36. The answer is \\boxed{36}.") == "padded"
    assert style_of(p, "31 + 12 = 43. 43 - 7 = 36.") == "other"  # no boxed answer
    # the answer legitimately reuses the question's numbers and name without restating it
    assert style_of(p, "Mia: 31 + 12 = 43. 43 - 7 = 36. The answer is \\boxed{36}.") == "concise"
    assert answer_labels(p, "The answer is \\boxed{36}.") == {"style": "shortcut", "steps": 2}
    gsm = Problem(id="g", data_source="gsm8k", question="q", answer="1")
    assert answer_labels(gsm, "The answer is \\boxed{1}.") == {}


@pytest.mark.parametrize("task", ALL_TASKS)
def test_style_of_recovers_the_style_a_solution_was_written_in(task):
    for p in generate(task, 80, seed=0):
        for style in STYLES:
            expected = "concise" if style == "shortcut" and n_steps(p) < 2 else style
            assert style_of(p, solution(p, style, random.Random(1))) == expected, (style, p.question)


def test_style_mix_corpus_and_its_errors():
    rows = sft_rows({CHAIN_SOURCE: 1000}, seed=0, style_mix="concise=0.3,padded=0.3,shortcut=0.25,restated=0.15")
    shares = {s: sum(r["style"] == s for r in rows) / len(rows) for s in STYLES}
    assert abs(shares["concise"] - 0.3) < 0.05 and abs(shares["restated"] - 0.15) < 0.04
    assert all(r["label"] == r["style"] or (r["style"] == "shortcut" and r["label"] == "concise") for r in rows)
    assert parse_style_mix({"concise": 1, "padded": 3}) == {"concise": 0.25, "padded": 0.75}
    for bad, match in (("concise=0.5,terse=0.5", "unknown style 'terse'"), ("concise=x", "expected a number"),
                       ("concise=-1,padded=2", ">= 0"), ("concise=0", "positive total")):
        with pytest.raises(SarlError, match=match):
            parse_style_mix(bad)


def test_sft_config_checks_the_style_mix():
    from sarl.errors import ConfigError
    from sarl.sft import SFTConfig

    with pytest.raises(ConfigError, match="style_mix.*unknown style"):
        SFTConfig(style_mix="concise=1,verbose=1")


def test_sft_rows_mix_and_registry():
    rows = sft_rows({ARITH_SOURCE: 300, LOGIC_SOURCE: 100}, padded_fraction=0.5, seed=0)
    assert len(rows) == 400
    share = sum(r["padded"] for r in rows) / len(rows)
    assert 0.4 < share < 0.6
    assert {r["data_source"] for r in rows} == {ARITH_SOURCE, LOGIC_SOURCE}
    assert all(not r["padded"] for r in sft_rows({ARITH_SOURCE: 50}, padded_fraction=0.0))
    with pytest.raises(ValueError, match="padded_fraction"):
        sft_rows({ARITH_SOURCE: 5}, padded_fraction=1.5)
    test = load_dataset("synth_arith_test", limit=20)
    assert len(test) == 20 and all(is_test_key(_key(p)) for p in test)
    assert len(load_dataset("synth_logic", size=30)) == 30


def test_too_many_problems_for_a_split_is_a_clear_error():
    with pytest.raises(ValueError, match="distinct problems"):
        generate(LOGIC_SOURCE, 5000, split="test")
    with pytest.raises(ValueError, match="unknown synthetic task"):
        generate("synth_geometry", 5)


@pytest.mark.parametrize("name", [f"{t}{s}" for t in ("synth_arith", "synth_logic", "synth_chain") for s in ("", "_val", "_test")])
def test_registered_size_is_what_a_plain_load_returns(name):
    from sarl.data.registry import DATASETS

    assert len(load_dataset(name)) == DATASETS[name].size
