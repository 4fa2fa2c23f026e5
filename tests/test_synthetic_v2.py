"""synth_chain_v2: every style identifiable from its first token, splits by the first step (SFT apart from
RL), and the wiring (registry, SFT corpus, style labels)."""

import random
from itertools import combinations

import pytest

from sarl.data import load_dataset
from sarl.data.schema import Problem
from sarl.data.synthetic import (
    CHAIN_V2_SOURCE,
    CHAIN_V2_SPLITS,
    STYLES,
    answer_labels,
    batch_style_shares,
    generate,
    n_steps,
    sft_rows,
    solution,
    style_of,
)
from sarl.data.synthetic_v2 import OPENINGS, first_step_key, shared_computation, split_of_v2
from sarl.errors import SarlError
from sarl.grading import grade

MIX = "concise=0.3,padded=0.3,shortcut=0.25,restated=0.15"


def _key(p):
    return ("chain", p.metadata["start"], tuple((op, n) for op, n in p.metadata["steps"]))


def _first_step(p):
    return first_step_key(p.metadata["start"], p.metadata["steps"])


def test_splits_share_no_problem_and_no_first_step():
    by_split = {s: generate(CHAIN_V2_SOURCE, 300, seed=0, split=s) for s in CHAIN_V2_SPLITS}
    for split, problems in by_split.items():
        assert len({_key(p) for p in problems}) == 300 and {split_of_v2(_key(p)) for p in problems} == {split}
        assert all(p.data_source == CHAIN_V2_SOURCE and p.id.startswith(f"synth_chain_v2-{split}-0-") for p in problems)
        assert {n_steps(p) for p in problems} == {1, 2, 3, 4}
    for a, b in combinations(CHAIN_V2_SPLITS, 2):
        assert not {_first_step(p) for p in by_split[a]} & {_first_step(p) for p in by_split[b]}, (a, b)
    again = generate(CHAIN_V2_SOURCE, 300, seed=0, split="test")
    assert [p.question for p in again] == [p.question for p in by_split["test"]]
    assert [p.question for p in again] != [p.question for p in generate(CHAIN_V2_SOURCE, 300, seed=1, split="test")]
    with pytest.raises(SarlError, match="sft, rl, val, test"):
        generate(CHAIN_V2_SOURCE, 5, split="train")


def test_sft_solutions_open_no_test_or_rl_computation():
    """The v2 docstring's table (12,000 SFT problems, first 300 test problems), and RL problems that are
    neither SFT problems nor start like one."""
    sft = generate(CHAIN_V2_SOURCE, 12000, seed=0, split="sft")
    table = shared_computation(sft, generate(CHAIN_V2_SOURCE, 300, seed=0, split="test"))
    assert {k: (row["problems"], row["inside"], row["lines"]) for k, row in table.items()} == {
        1: (42, 42, 42), 2: (85, 76, 85), 3: (90, 7, 90), 4: (83, 0, 83)}
    rl = shared_computation(sft[:3000], generate(CHAIN_V2_SOURCE, 500, seed=1, split="rl"))
    for row in [*table.values(), *rl.values()]:
        assert row["same_problem"] == row["first_line"] == row["prefix"] == 0


@pytest.mark.parametrize("split", CHAIN_V2_SPLITS)
def test_every_solution_is_labelled_with_its_own_style_and_grades_correct(split):
    for p in generate(CHAIN_V2_SOURCE, 80, seed=0, split=split):
        for style in STYLES:
            text = solution(p, style, random.Random(1))
            assert text.startswith(OPENINGS[style] + " ")
            assert style_of(p, text) == style, (style, text)  # one-step shortcuts too: the opening decides
            assert grade(text, p.answer, problem=p).correct
            form = "concise" if style == "shortcut" and n_steps(p) < 2 else style
            assert answer_labels(p, text) == {"style": style, "steps": n_steps(p), "form": form}
        concise, padded = solution(p, "concise"), solution(p, "padded")
        assert len(padded) > 1.8 * len(concise) and len(solution(p, "restated")) > len(concise)
        if n_steps(p) >= 2:
            assert len(solution(p, "shortcut")) < len(concise)


def _first_tokens(tokenizer, problems):
    """{style: the set of first token ids of its solutions}."""
    return {s: {tokenizer(solution(p, s, random.Random(0)), add_special_tokens=False)["input_ids"][0] for p in problems}
            for s in STYLES}


def _assert_first_token_identifies_the_style(firsts):
    assert all(len(ids) == 1 for ids in firsts.values()), firsts  # the same first token for every problem
    for a, b in combinations(STYLES, 2):
        assert not firsts[a] & firsts[b], (a, b)


def test_first_tokens_differ_between_styles_under_the_default_tokenizer():
    from sarl.models import load_tokenizer

    tok = load_tokenizer(None)
    problems = generate(CHAIN_V2_SOURCE, 200, seed=0, split="test")
    firsts = _first_tokens(tok, problems)
    _assert_first_token_identifies_the_style(firsts)
    assert {s: tok.decode(list(ids)) for s, ids in firsts.items()} == {
        "concise": "Step", "padded": "Let", "shortcut": "All", "restated": "We"}


def test_first_tokens_differ_between_styles_under_a_trained_bpe_tokenizer():
    from sarl.models import load_tokenizer
    from sarl.tokenizer import train_tokenizer

    rows = sft_rows({CHAIN_V2_SOURCE: 400}, seed=0, style_mix=MIX)
    small = train_tokenizer([r["question"] + "\n" + r["response"] for r in rows], 400, template=load_tokenizer(None))
    _assert_first_token_identifies_the_style(_first_tokens(small, generate(CHAIN_V2_SOURCE, 100, seed=0, split="test")))


def test_style_of_hand_written_answers():
    p = Problem(id="x", data_source=CHAIN_V2_SOURCE, answer="36",
                question="Mia has 31 shells. She finds 12 more and gives away 7. How many shells does Mia have now?",
                metadata={"start": 31, "steps": [["+", 12], ["-", 7]]})
    steps = "31 + 12 = 43. 43 - 7 = 36. The answer is \\boxed{36}."
    assert style_of(p, f"Step by step: {steps}") == "concise"
    assert style_of(p, f"  All at once: {steps}") == "shortcut"  # the opening decides ...
    assert answer_labels(p, f"All at once: {steps}")["form"] == "concise"  # ... the form shows what it wrote
    assert style_of(p, "Step by step: 31 + 12 - 7 = 36. The answer is \\boxed{36}.") == "concise"
    assert answer_labels(p, "Step by step: 31 + 12 - 7 = 36. The answer is \\boxed{36}.")["form"] == "shortcut"
    assert style_of(p, "Step by step: 31 + 12 = 43. 43 - 7 = 36.") == "other"  # no boxed answer
    # without an opening: synth_chain's rules on the text
    assert style_of(p, steps) == "concise"
    assert style_of(p, "31 + 12 - 7 = 36. The answer is \\boxed{36}.") == "shortcut"
    assert style_of(p, f"Mia has 31 shells. {steps}") == "restated"
    assert style_of(p, f"31 + 12 = 43. Let me think about this carefully. {steps}") == "padded"
    assert style_of(p, f"Okay, so far so good. {steps}") == "padded"


def test_sft_corpus_draws_from_the_sft_split_and_trainer_labels_work():
    from sarl.sft import SFTConfig, load_examples, parse_task_counts

    assert parse_task_counts("synth_chain_v2=30,synth_logic=5") == {CHAIN_V2_SOURCE: 30, "synth_logic": 5}
    with pytest.raises(SarlError, match="unknown task 'synth_chain_v3'.*synth_chain_v2"):
        parse_task_counts("synth_chain_v3=5")
    with pytest.raises(SarlError, match="synthetic_tasks.*unknown task"):
        SFTConfig(synthetic_tasks={"synth_chian": 5})
    rows = sft_rows({CHAIN_V2_SOURCE: 400}, seed=0, style_mix=MIX)
    assert all(r["label"] == r["style"] for r in rows)  # every style labelled as written, one-step shortcuts too
    assert {r["id"].rsplit("-", 2)[0] for r in rows} == {"synth_chain_v2-sft"}
    problems = {p.id: p for p in generate(CHAIN_V2_SOURCE, 400, seed=0, split="sft")}
    assert {split_of_v2(_key(problems[r["id"]])) for r in rows} == {"sft"}
    examples = load_examples(SFTConfig(synthetic_tasks={CHAIN_V2_SOURCE: 40}, style_mix=MIX))
    assert len(examples) == 40 and all(e["response"].startswith(tuple(OPENINGS.values())) for e in examples)
    # the trainer's style/<name> metrics
    batch = list(problems.values())[:4]
    texts = [solution(p, s) for p, s in zip(batch, STYLES)]
    assert batch_style_shares(batch, texts) == {"concise": 0.25, "padded": 0.25, "shortcut": 0.25, "restated": 0.25,
                                                "other": 0.0}


def test_registry_names_splits_and_sizes():
    from sarl.data.registry import DATASETS

    for name, split in (("synth_chain_v2", "rl"), ("synth_chain_v2_sft", "sft"), ("synth_chain_v2_val", "val"),
                        ("synth_chain_v2_test", "test")):
        problems = load_dataset(name, limit=30)
        assert len(problems) == 30 and {split_of_v2(_key(p)) for p in problems} == {split}
        assert problems[0].id == f"synth_chain_v2-{split}-0-0" and DATASETS[name].grader == "math"
        assert DATASETS[name].size == len(load_dataset(name))
