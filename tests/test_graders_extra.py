"""More math regression rows, the logic grader and the reasoning-gym grader (real generator entries)."""

import json
import threading

import pytest

from sarl.data import Problem, load_dataset
from sarl.grading import GRADERS, grade, grader_for, register_grader
from sarl.grading.logic import grade_logic, last_candidate
from sarl.grading.math import answer_numbers
from sarl.grading.rgym import CORRECT_THRESHOLD, extract_rg_answer

# (response, gold, correct, what sarl extracts): mis-grades found and fixed, and documented choices.
MATH_TABLE = [
    ("The area is 25 cm^2.", "25", True, "25"),                      # was "2": a unit's exponent
    ("The volume is 8 m^{3}", "8", True, "8"),
    ("The field is 40 \\text{m}^2", "40", True, "40"),
    ("2^{10} = 1024", "1024", True, "1024"),                         # exponent of a number is still read
    ("x = \u22123", "-3", True, "-3"),                                # U+2212 minus sign; was "3"
    ("between 3\u20135 apples", "5", True, "5"),                       # an en dash is a range, not a minus
    ("$\\frac12$", "0.5", True, "\\frac{1}{2}"),                     # brace-less \frac; was "12"
    ("so \\frac 34 of them", "0.75", True, "\\frac{3}{4}"),
    ("-\\frac12", "-0.5", True, "-\\frac{1}{2}"),
    ("\\boxed{\\$18}", "18", True, "\\$18"),                         # escaped dollar; was "\\18" ≠ 18
    ("\\boxed{25\\%}", "25", True, "25\\%"),
    ("It rose by 50%", "0.5", False, "50"),                          # % is dropped, not divided by 100
    ("The answer is $-3$.", "-3", True, "-3"),
    ("answer is -5", "5", False, "-5"),                              # the sign matters
    ("answer is 5.", "-5", False, "5"),
    ("The answer is 3 - 5 = -2", "-2", True, "-2"),
    ("\\boxed{10^\\circ}", "10", True, "10^\\circ"),
    ("\\boxed{18 \\text{ dollars}}", "18", True, "18 \\text{ dollars}"),
    ("\\boxed{\\dfrac{1}{2}}", "0.5", True, "\\dfrac{1}{2}"),
    ("costs $1,200.50", "1200.5", True, "1200.50"),
    ("The answer is 3.14159", "3.14", False, "3.14159"),             # no rounding to the gold's precision
    ("0.333", "\\frac{1}{3}", False, "0.333"),                       # nor for repeating decimals
    ("It is 1.5e3", "1500", False, "3"),                             # scientific notation: not handled
    ("\\boxed{0.5}", "50\\%", False, "0.5"),
]


@pytest.mark.parametrize("response,gold,correct,extracted", MATH_TABLE)
def test_math_regression_table_extra(response, gold, correct, extracted):
    g = grade(response, gold)
    assert g.extracted == extracted
    assert g.correct is correct
    assert g.score is None


def test_answer_numbers_in_order():
    assert answer_numbers("x = 5 cm^2, then 1,000 and \\frac12") == ["5", "1000", "\\frac{1}{2}"]


# ------------------------------------------------------------------------------------------- logic
@pytest.mark.parametrize("response,gold,source,correct,extracted", [
    ("The statement is false. Thus the answer is True.", "True", "prontoqa", True, "true"),
    ("It looks true at first, but it is FALSE", "False", "prontoqa", True, "false"),
    ("It looks true at first, but it is FALSE", "True", "prontoqa", False, "false"),
    ("true_value is not a word match; false", "False", "prontoqa", True, "false"),   # \b\w+\b tokens
    ("no verdict here", "True", "prontoqa", False, ""),
    ("A: the answer is B", "B", "LogicBench", True, "B"),
    ("Option B is wrong, so the answer is (C).", "C", "LogicBench", True, "C"),
    ("B. a cat would say a", "B", "LogicBench", True, "B"),                      # "a" is not "A"
    ("I would say A", "(B)", "LogicBench", False, "A"),
    ("So: yes", "yes", "logic", True, "yes"),                                    # inferred yes/no
    ("Answer: E", "E", "logic", True, "E"),                                      # inferred letters A..E
])
def test_logic_grader(response, gold, source, correct, extracted):
    g = grade(response, gold, source)
    assert (g.correct, g.extracted) == (correct, extracted)


def test_logic_choices_from_problem():
    p = Problem(id="x-0", data_source="logic", question="q", answer="valid", choices=["valid", "not valid"])
    assert grade("I thought not valid, but no: valid", p.answer, problem=p).correct
    g = grade("It seemed valid, but it is not valid", p.answer, problem=p)
    assert (g.correct, g.extracted) == (False, "not valid")       # the longer phrase ending there wins
    assert last_candidate("Valid.", ["valid", "not valid"], case_sensitive=False) == "valid"


def test_logic_bad_gold_is_a_data_error():
    with pytest.raises(ValueError, match="not one of the candidates"):
        grade_logic("true", "maybe", data_source="prontoqa")
    with pytest.raises(ValueError, match="cannot tell the candidate"):
        grade("whatever", "some sentence", "logic")


def test_registry_routing():
    assert grader_for("prontoqa") == "logic"
    assert grader_for("LogicBench") == "logic"
    assert grader_for("gsm8k") == "math"
    assert grader_for(None) == "math"
    assert grader_for("reasoning_gym/chain_sum") == "reasoning_gym"
    assert grader_for("reasoning_gym/some_future_generator") == "reasoning_gym"
    with pytest.raises(ValueError, match="registered twice"):
        register_grader("logic", GRADERS["logic"])


# ----------------------------------------------------------------------------------- reasoning-gym
def _wrong(name: str, p: Problem) -> str:
    """A wrong answer for a real entry of generator ``name``."""
    if name == "knights_knaves":  # flip the first person's role
        meta = p.metadata["reasoning_gym"]["entry"]["metadata"]
        terms, names, roles = meta["knight_knave_terms"], meta["names"], meta["solution"]
        roles = [not roles[0]] + roles[1:]
        return ", and ".join(f"{n} is {terms['a_knight'] if r else terms['a_knave']}" for n, r in zip(names, roles))
    if name == "syllogism":
        return {"Yes": "No", "No": "Yes"}[p.answer]
    if name == "decimal_chain_sum":
        return str(float(p.answer) + 1)
    return str(int(p.answer) + 1)


@pytest.mark.parametrize("name", ["gsm_symbolic", "basic_arithmetic", "chain_sum", "decimal_chain_sum",
                                  "products", "leg_counting", "gcd", "lcm", "knights_knaves", "syllogism"])
def test_reasoning_gym_correct_and_wrong(name):
    p = load_dataset(name, limit=3, seed=7)[2]
    ok = grade(f"Let me work through it.\n\nAnswer: {p.answer}", p.answer, problem=p)
    assert ok.correct and ok.score == 1.0, ok
    bad = grade(f"Let me work through it.\n\nAnswer: {_wrong(name, p)}", p.answer, problem=p)
    assert not bad.correct and bad.score < CORRECT_THRESHOLD, bad


def test_reasoning_gym_propositional_logic():
    """Any valid non-trivial conclusion is right; the negation of a premise of a satisfiable set is not."""
    ps = load_dataset("propositional_logic", limit=20)
    checked = 0
    for p in ps:
        premises = p.metadata["reasoning_gym"]["entry"]["metadata"]["premises"]
        wrong = grade(f"Answer: ¬{premises[0]}", p.answer, problem=p)
        if wrong.score == 1.0:  # contradictory premises entail everything
            continue
        assert not wrong.correct
        assert grade(f"Answer: {p.answer}", p.answer, problem=p).correct in (True, False)
        checked += 1
    assert checked >= 5
    good = [grade(f"Answer: {p.answer}", p.answer, problem=p).correct for p in ps]
    assert sum(good) >= 18  # the generator's example answer is (almost always) a valid conclusion


def test_reasoning_gym_entry_survives_json():
    p = load_dataset("gsm_symbolic", limit=1)[0]
    q = Problem.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p
    assert grade(f"Answer: {q.answer}", q.answer, problem=q).correct


@pytest.mark.parametrize("response,generator,expected", [
    ("blah <answer> 42 </answer> more", "chain_sum", "42"),
    ("**Answer:** 1,234.", "chain_sum", "1234"),
    ("Final answer:\n\n  -17\n", "chain_sum", "-17"),
    ("Answer: x = 5", "chain_sum", "5"),
    ("Answer: 18 (that is 2 + 16)", "gsm_symbolic", "18"),
    ("we get 3 then 4 and finally \\boxed{12}", "products", "12"),
    ("3 + 4 = 7, so 7 legs", "leg_counting", "7"),                 # no marker: the last number
    ("Answer: yes, it follows.", "syllogism", "Yes"),
    ("So the conclusion is \\boxed{\\text{No}}", "syllogism", "No"),
    ("Reasoning...\nAlice is a knight, and Bob is a knave.", "knights_knaves",
     "Alice is a knight, and Bob is a knave"),                     # no marker: the last line
    ("Answer: $(P ∨ Q)$", "propositional_logic", "(P ∨ Q)"),
])
def test_extract_rg_answer(response, generator, expected):
    assert extract_rg_answer(response, generator) == expected


def test_reasoning_gym_without_entry():
    """Training rows may carry only the gold string: numeric scorers need nothing else."""
    assert grade("Answer: -14282", "-14282", "reasoning_gym/chain_sum").correct
    assert not grade("Answer: 14282", "-14282", "reasoning_gym/chain_sum").correct
    with pytest.raises(ValueError, match="needs the generator entry"):
        grade("Answer: P", "P", "reasoning_gym/propositional_logic")


def test_reasoning_gym_in_worker_thread():
    """The scorer runs in the killable helper process off the main thread."""
    p = load_dataset("chain_sum", limit=1)[0]
    out = {}

    def work():
        out["ok"] = grade(f"Answer: {p.answer}", p.answer, problem=p).correct
        out["bad"] = grade("Answer: 0", p.answer, problem=p).correct

    th = threading.Thread(target=work)
    th.start()
    th.join(60)
    assert out == {"ok": True, "bad": False}
