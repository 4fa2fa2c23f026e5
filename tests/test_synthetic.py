"""The built-in synthetic tasks: determinism, the train/test split, gold answers, solution styles."""

import random
import re

import pytest

from sarl.data import load_dataset
from sarl.data.synthetic import ARITH_SOURCE, LOGIC_SOURCE, generate, is_test_key, sft_rows, solution
from sarl.grading import grade


def _key(p):
    if p.data_source == ARITH_SOURCE:
        return ("arith", p.metadata["start"], tuple((op, n) for op, n in p.metadata["steps"]))
    return ("logic", tuple(tuple(x) for x in p.metadata["lits"]), tuple(p.metadata["ops"]))


@pytest.mark.parametrize("task", [ARITH_SOURCE, LOGIC_SOURCE])
def test_deterministic_distinct_and_split_disjoint(task):
    a = generate(task, 300, seed=3)
    assert [p.question for p in a] == [p.question for p in generate(task, 300, seed=3)]
    assert [p.question for p in a] != [p.question for p in generate(task, 300, seed=4)]
    train_keys = {_key(p) for p in generate(task, 1000, seed=0)} | {_key(p) for p in generate(task, 1000, seed=1)}
    test_keys = {_key(p) for p in generate(task, 300, seed=0, split="test")}
    assert len(train_keys) >= 1000 and len(test_keys) == 300  # distinct within a split
    assert not train_keys & test_keys
    assert all(is_test_key(k) for k in test_keys) and not any(is_test_key(k) for k in train_keys)


def test_arith_gold_answer_follows_the_question_text():
    """Recompute each answer from the question's words, independently of the generator."""
    for p in generate(ARITH_SOURCE, 200, seed=0):
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


@pytest.mark.parametrize("task", [ARITH_SOURCE, LOGIC_SOURCE])
def test_both_solution_styles_grade_correct_and_padding_is_longer(task):
    for p in generate(task, 50, seed=0):
        concise, padded = solution(p, False), solution(p, True, random.Random(0))
        assert grade(concise, p.answer, problem=p).correct
        assert grade(padded, p.answer, problem=p).correct
        assert len(padded) > 1.8 * len(concise)
        assert padded.endswith(concise.rsplit(". ", 1)[-1])  # same final line
    wrong = "False" if p.answer == "True" else ("0" if p.answer != "0" else "1")
    assert not grade(f"The answer is \\boxed{{{wrong}}}.", p.answer, problem=p).correct


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


@pytest.mark.parametrize("name", ["synth_arith", "synth_arith_test", "synth_logic", "synth_logic_test"])
def test_registered_size_is_what_a_plain_load_returns(name):
    from sarl.data.registry import DATASETS

    assert len(load_dataset(name)) == DATASETS[name].size
