"""SAR maths against hand-computed values."""

import math

import pytest
import torch

from sarl.rewards.self_aligned import SARConfig, mean_nll, perplexity, sar_from_ppl, self_aligned_reward

# Two answers: 3 tokens and 2 tokens (one pad).
LOGP_QA = torch.tensor([[-1.0, -2.0, -3.0], [-0.5, -0.5, 0.0]])
LOGP_A = torch.tensor([[-2.0, -3.0, -4.0], [-0.2, -0.4, 0.0]])
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])


def test_mean_nll_and_perplexity_by_hand():
    assert mean_nll(LOGP_QA, MASK).tolist() == pytest.approx([2.0, 0.5])
    assert perplexity(LOGP_A, MASK).tolist() == pytest.approx([math.exp(3.0), math.exp(0.3)])


def test_default_sar_by_hand():
    out = self_aligned_reward(LOGP_QA, LOGP_A, MASK)
    # row 0: ppl_qa = e^2, ppl_a = e^3 -> (e^3 - e^2)/e^3 = 1 - e^-1
    # row 1: ppl_qa = e^0.5, ppl_a = e^0.3 -> (e^.3 - e^.5)/e^.3 = 1 - e^0.2
    assert out["sar"].tolist() == pytest.approx([1 - math.exp(-1), 1 - math.exp(0.2)], rel=1e-6)
    assert out["empty"].tolist() == [False, False]


def test_lower_clip_at_minus_one():
    # ppl_qa = 10 * ppl_a -> (1 - 10) = -9 -> clipped to -1; no upper clip needed
    assert sar_from_ppl(torch.tensor([10.0, 1.0]), torch.tensor([1.0, 1e6])).tolist() == pytest.approx(
        [-1.0, 1 - 1e-6], rel=1e-6)


def test_use_log_variant_by_hand():
    out = self_aligned_reward(LOGP_QA, LOGP_A, MASK, SARConfig(use_log=True))
    # row 0: (3 - 2) / 3 ; row 1: (0.3 - 0.5)/0.3 = -2/3
    assert out["sar"].tolist() == pytest.approx([1 / 3, -2 / 3], rel=1e-6)


def test_no_denominator_and_no_comparison_by_hand():
    qa, a = torch.tensor([2.0, 8.0]), torch.tensor([4.0, 2.0])
    assert sar_from_ppl(qa, a, SARConfig(use_denominator=False)).tolist() == [2.0, -6.0]  # no clip
    assert sar_from_ppl(qa, a, SARConfig(use_comparison=False, use_denominator=False)).tolist() == [3.0, -3.0]
    with pytest.raises(ValueError, match="use_denominator=False"):
        SARConfig(use_comparison=False)


def test_clip_value_caps_each_term_only_above_one():
    qa, a = torch.tensor([2.0, 50.0]), torch.tensor([100.0, 3.0])
    # clip 10: row 0 -> (10 - 2)/10 = 0.8 ; row 1 -> (3 - 10)/3 = -2.33 -> -1
    assert sar_from_ppl(qa, a, SARConfig(clip_value=10)).tolist() == pytest.approx([0.8, -1.0])
    # clip <= 1 is off (the reference's default is -1)
    assert sar_from_ppl(qa, a, SARConfig(clip_value=1.0)).tolist() == pytest.approx([0.98, -1.0])


def test_empty_answer_is_zero_and_finite_for_every_variant():
    logp = torch.zeros(2, 2)
    mask = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    for cfg in [SARConfig(), SARConfig(use_log=True), SARConfig(use_denominator=False),
                SARConfig(use_comparison=False, use_denominator=False), SARConfig(clip_value=5)]:
        out = self_aligned_reward(logp, logp, mask, cfg)
        assert out["sar"][0].item() == 0.0
        assert out["empty"].tolist() == [True, False]
        assert torch.isfinite(out["sar"]).all() and torch.isfinite(out["ppl_qa"]).all()


def test_huge_nll_stays_finite():
    logp = torch.full((1, 3), -1e6)
    out = self_aligned_reward(logp, logp * 0.5, torch.ones(1, 3))
    assert torch.isfinite(out["sar"]).all() and torch.isfinite(out["ppl_qa"]).all()
    assert -1.0 <= out["sar"].item() <= 1.0


def test_missing_null_logp_is_an_error_unless_no_comparison():
    with pytest.raises(ValueError, match="logp_a"):
        self_aligned_reward(LOGP_QA, None, MASK)
    out = self_aligned_reward(LOGP_QA, None, MASK, SARConfig(use_comparison=False, use_denominator=False))
    assert out["sar"].tolist() == pytest.approx([5 - math.exp(2.0), 5 - math.exp(0.5)])
