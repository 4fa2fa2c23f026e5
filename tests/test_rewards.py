"""Every registered reward against a hand-computed example; the registry and composition."""

import math

import pytest
import torch

from sarl.grading import grade_all
from sarl.rewards import ALIASES, REWARDS, RewardComposer, RewardInputs, Schedule, canonical_name, get_reward


def batch(**kw):
    base = {
        "responses": ["The answer is 18.", "so 1,000", "I think 7", "It is 3/4"],
        "golds": ["18", "1000", "8", "0.75"],
        "lengths": torch.tensor([10, 20, 30, 40]),
        "group_ids": torch.tensor([0, 0, 0, 1]),
        "max_response_length": 40,
    }
    base.update(kw)
    golds = base.pop("golds")
    if golds is not None and "correct" not in base:  # the caller grades once, as the trainer does
        base["correct"] = grade_all(base["responses"], golds)
    return RewardInputs(**base)


def test_registry_names_and_reference_aliases():
    assert set(REWARDS.names) == {"correctness", "sar", "entropy", "self_certainty", "o1_pruner", "efficient_reasoner",
                            "kimi_length", "cosine_length", "overlong"}
    assert canonical_name("ppl_qa") == "sar"
    assert canonical_name("O1-pruner") == "o1_pruner"
    assert canonical_name("ER") == "efficient_reasoner"
    assert canonical_name("base") == "correctness"
    with pytest.raises(KeyError, match="valid names: correctness"):
        canonical_name("length_penalty")


@pytest.mark.parametrize("name", sorted(REWARDS.names))
def test_every_reward_documents_formula_and_source(name):
    doc = REWARDS[name].doc
    assert len(doc) > 60, f"{name} needs a docstring with its formula and source"


def test_correctness_by_hand():
    assert get_reward("correctness")(batch()).tolist() == [1.0, 1.0, 0.0, 1.0]


def test_o1_pruner_by_hand():
    # group 0 lengths 10, 20, 30 -> mean 20: -(10-20)/10 = 1, 0, -(30-20)/30 = -1/3; group 1 alone: 0
    assert get_reward("O1-pruner")(batch()).tolist() == pytest.approx([1.0, 0.0, -1 / 3, 0.0], abs=1e-6)


def test_efficient_reasoner_by_hand():
    # correct: rows 0, 1 (group 0) and 3 (alone). Group 0 correct lengths 10, 20: mu 15, sigma 5 (ddof 0)
    s = 1 / (1 + math.exp(-1))  # sigmoid(1)
    want = [-(2 * (1 - s) - 1), -(2 * s - 1), 0.0, 0.0]  # row 2 wrong -> 0; row 3 only correct -> 0
    assert get_reward("ER")(batch()).tolist() == pytest.approx(want, abs=1e-5)


def test_kimi_length_by_hand():
    # group 0: min 10, max 30 -> lambda = 0.5, 0, -0.5 ; row 2 wrong -> min(0, -0.5); group 1 single -> 0
    assert get_reward("kimi_length")(batch()).tolist() == pytest.approx([0.5, 0.0, -0.5, 0.0])


def test_cosine_length_by_hand():
    # correct: rL + 0.5(r0 - rL)(1 + cos(pi L/40)) with r0=1, rL=.5 ; wrong: r0=-1, rL=-.5
    def f(L, r0, rl):
        return rl + 0.5 * (r0 - rl) * (1 + math.cos(math.pi * L / 40))

    want = [f(10, 1, .5), f(20, 1, .5), f(30, -1, -.5), f(40, 1, .5)]
    assert get_reward("cosine_length")(batch()).tolist() == pytest.approx(want, abs=1e-6)


def test_overlong_by_hand():
    # L_max 40, buffer 8 (40 // 5): <= 32 -> 0 ; 36 -> (32 - 36)/8 = -0.5 ; 41 -> -1
    out = get_reward("overlong")(batch(lengths=torch.tensor([10, 32, 36, 41])))
    assert out.tolist() == pytest.approx([0.0, 0.0, -0.5, -1.0])


def test_entropy_and_self_certainty_by_hand():
    logp = torch.tensor([[-1.0, -3.0], [-2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    inp = batch(responses=["a", "b"], golds=None, logp_qa=logp, response_mask=mask,
                token_self_certainty=torch.tensor([[2.0, 4.0], [1.0, 99.0]]))
    assert get_reward("entropy")(inp).tolist() == pytest.approx([-2.0, -2.0])
    assert get_reward("self_certainty")(inp).tolist() == pytest.approx([3.0, 1.0])


def test_sar_reward_reads_logprobs():
    inp = batch(responses=["a"], golds=None, logp_qa=torch.tensor([[-1.0]]), logp_a=torch.tensor([[-2.0]]),
                response_mask=torch.ones(1, 1))
    assert get_reward("ppl_qa")(inp).tolist() == pytest.approx([1 - math.exp(-1)])
    assert get_reward("sar")(inp, {"use_log": True}).tolist() == pytest.approx([0.5])
    with pytest.raises(ValueError, match="has no option"):
        get_reward("sar")(inp, {"use_logs": True})


def test_missing_input_names_the_reward():
    with pytest.raises(ValueError, match="'o1_pruner' needs group_ids"):
        get_reward("o1_pruner")(RewardInputs(responses=["a"], lengths=torch.tensor([3])))


def test_linear_schedule_by_hand():
    s = Schedule("linear", peak_pos=0.5, bottom=0.2, increase=True, decrease=True)
    assert [s.alpha(x) for x in (0.0, 0.25, 0.5, 0.75, 1.0)] == pytest.approx([0.2, 0.6, 1.0, 0.6, 0.2])
    assert Schedule("linear").alpha(0.3) == 1.0  # reference: flags off -> alpha stays 1
    assert Schedule().alpha(0.9) == 1.0
    with pytest.raises(ValueError, match="schedule.type"):
        Schedule("cosine")


def test_composer_weights_schedule_and_breakdown():
    inp = batch()
    comp = RewardComposer({"base": 1.0, "O1-pruner": 0.5}, schedule=Schedule("linear", increase=True))
    out = comp(inp, progress=0.25)  # alpha = 0.5 (bottom 0, peak 0.5)
    o1 = [1.0, 0.0, -1 / 3, 0.0]
    want = [c + 0.5 * 0.5 * o for c, o in zip([1.0, 1.0, 0.0, 1.0], o1)]
    assert out.alpha == 0.5
    assert out.total.tolist() == pytest.approx(want, abs=1e-6)
    assert set(out.components) == {"correctness", "o1_pruner"}
    assert comp.needs == {"correct", "lengths", "groups"}


def test_composer_needs_skip_null_pass_when_not_comparing():
    assert "logp_a" in RewardComposer({"sar": 1}).needs
    comp = RewardComposer({"sar": 1}, {"sar": {"use_comparison": False, "use_denominator": False}})
    assert "logp_a" not in comp.needs


def test_alias_table_is_complete():
    assert set(ALIASES.values()) <= set(REWARDS.names)
