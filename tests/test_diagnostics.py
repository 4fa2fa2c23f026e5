"""Reward diagnostics (sarl.algos.diagnostics) against hand-computed values."""

import pytest
import torch

from sarl.algos.diagnostics import advantage_shares, component_advantages, group_outcomes, style_advantages

# two groups of two answers; correctness and an SAR-like reward at weight 0.5
COMPS = {"correctness": torch.tensor([1.0, 0.0, 1.0, 1.0]), "sar": torch.tensor([0.2, 0.4, 0.1, 0.3])}
W = {"correctness": 1.0, "sar": 0.5}
G = torch.tensor([0, 0, 1, 1])


def test_component_advantages_are_weighted_group_centred_rewards():
    a = component_advantages(COMPS, W, G)
    # correctness: group 0 mean 0.5 -> [0.5, -0.5]; group 1 all correct -> [0, 0]
    assert a["correctness"].tolist() == pytest.approx([0.5, -0.5, 0.0, 0.0])
    # sar: group means 0.3 and 0.2 -> [-0.1, 0.1, -0.1, 0.1], times 0.5
    assert a["sar"].tolist() == pytest.approx([-0.05, 0.05, -0.05, 0.05])
    # their sum is the group-centred total reward Dr.GRPO uses as the advantage
    total = COMPS["correctness"] + 0.5 * COMPS["sar"]
    centred = total - torch.tensor([0.65, 0.65, 1.1, 1.1])  # totals 1.1, 0.2 | 1.05, 1.15
    assert (a["correctness"] + a["sar"]).tolist() == pytest.approx(centred.tolist(), abs=1e-6)  # fp32 inputs


def test_advantage_shares():
    # |A| sums: correctness 1.0, sar 0.2
    assert advantage_shares(COMPS, W, G) == pytest.approx({"correctness": 1 / 1.2, "sar": 0.2 / 1.2})
    # no groups: the batch mean is the baseline (correctness mean 0.75 -> |A| sum 1.5; sar mean 0.25 ->
    # |r - 0.25| sum 0.4, times 0.5)
    assert advantage_shares(COMPS, W, None) == pytest.approx({"correctness": 1.5 / 1.7, "sar": 0.2 / 1.7})
    flat = {"correctness": torch.ones(4), "sar": torch.full((4,), 0.3)}
    assert advantage_shares(flat, W, G) == {"correctness": 0.0, "sar": 0.0}  # nothing varies: no update


def test_group_outcomes():
    assert group_outcomes(COMPS["correctness"], G) == {"all_correct": 0.5, "all_wrong": 0.0}
    assert group_outcomes(torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0]), torch.tensor([3, 3, 5, 5, 9, 9])) == \
        pytest.approx({"all_correct": 1 / 3, "all_wrong": 1 / 3})


def test_style_advantages_are_masses_that_sum_to_zero():
    styles = ["concise", "padded", "concise", "padded"]
    got = style_advantages(COMPS, W, G, styles, ("concise", "padded", "shortcut"))
    assert got["concise"] == pytest.approx({"correctness": 0.5 / 4, "sar": -0.1 / 4})
    assert got["padded"] == pytest.approx({"correctness": -0.5 / 4, "sar": 0.1 / 4})
    assert got["shortcut"] == {"correctness": 0.0, "sar": 0.0}  # absent styles are reported (same keys everywhere)
    for k in W:
        assert sum(row[k] for row in got.values()) == pytest.approx(0.0, abs=1e-12)


def test_trainer_logs_style_advantages_where_answers_carry_styles():
    """The trainer's reward_diagnostics on synthetic problems: every style reported (same keys on every
    process), masses summing to 0 per reward, and a reward that pays padded answers puts positive mass
    on them."""
    from sarl.data import load_dataset
    from sarl.data.synthetic import OTHER, STYLES, solution
    from sarl.rollout.batch import RolloutBatch
    from sarl.train.step import reward_diagnostics

    p = next(q for q in load_dataset("synth_chain", limit=50, seed=0) if len(q.metadata["steps"]) >= 2)
    texts = [solution(p, "concise"), solution(p, "padded"), solution(p, "concise"), solution(p, "padded")]
    batch = RolloutBatch(contexts=[[1]] * 4, responses=[[2]] * 4, texts=texts, group_ids=torch.tensor([0, 0, 1, 1]),
                         problems=[p] * 4, correct=torch.ones(4))
    comps = {"correctness": torch.ones(4), "sar": torch.tensor([0.0, 0.2, 0.1, 0.3])}  # padded answers get more
    out = reward_diagnostics(batch, comps, {"correctness": 1.0, "sar": 0.5})
    assert out["groups/all_correct"] == 1.0 and out["adv/share/sar"] == 1.0  # correctness is flat everywhere
    assert {f"adv/style/{s}/sar" for s in (*STYLES, OTHER)} <= set(out)
    assert out["adv/style/padded/sar"] == pytest.approx(0.5 * 0.2 / 4)  # (0.1 + 0.1) x 0.5 over 4 answers
    assert sum(out[f"adv/style/{s}/sar"] for s in (*STYLES, OTHER)) == pytest.approx(0.0, abs=1e-12)
