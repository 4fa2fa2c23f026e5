"""Rollout correction (:mod:`sarl.algos.rollout_correction`, ``rollout.correction``): hand-computed weights
and masks, the sampler's log-probs of sarl's decode loop, the config and verl's keys. The loss and
gradient against TRL 1.16's own code are in ``tests/test_policy_losses.py`` (``CORRECTION_CASES``)."""

from __future__ import annotations

import math

import pytest
import torch

from sarl.algos.rollout_correction import correction_weights, off_policy_mask, sampler_logp_tensor
from sarl.config import ConfigError, load_config

# two sequences: row 0 has 3 tokens with old - sampler = 0.5, -1.0, 0.2; row 1 has 1 token with 2.0
OLD = torch.tensor([[0.5, -1.0, 0.2], [2.0, 0.0, 0.0]])
SAMPLER = torch.zeros(2, 3)
MASK = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
E = math.exp


def close(actual, expected):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=1e-6, rtol=0)


def test_token_weights_truncate_and_mask_by_hand():
    w, s = correction_weights(OLD, SAMPLER, MASK, "token_truncate", clip_min=0.5, clip_max=3.0)
    close(w, [[E(0.5), 0.5, E(0.2)], [3.0, 0.0, 0.0]])  # e^-1 = 0.37 -> 0.5; e^2 = 7.4 -> 3
    assert s["is_out_of_bounds"] == pytest.approx(2 / 4)
    assert (s["is_ratio_min"], s["is_ratio_max"]) == pytest.approx((0.5, 3.0))
    w, s = correction_weights(OLD, SAMPLER, MASK, "token_mask", clip_min=0.5, clip_max=3.0)
    close(w, [[E(0.5), 0.0, E(0.2)], [0.0, 0.0, 0.0]])
    assert s["is_ratio_mean"] == pytest.approx((E(0.5) + E(0.2)) / 4)  # over the 4 valid tokens, as applied
    # no upper bound: nothing above is touched
    close(correction_weights(OLD, SAMPLER, MASK, "token_truncate", clip_min=0.5, clip_max=None)[0],
          [[E(0.5), 0.5, E(0.2)], [E(2.0), 0.0, 0.0]])


def test_sequence_weights_by_hand_and_nan_means_no_correction():
    # row 0: exp(0.5 - 1 + 0.2) = exp(-0.3) on each of its tokens; row 1: exp(2)
    w, s = correction_weights(OLD, SAMPLER, MASK, "sequence_truncate", clip_max=3.0)
    close(w, [[E(-0.3)] * 3, [3.0, 0.0, 0.0]])
    assert s["is_out_of_bounds"] == pytest.approx(1 / 2)  # over sequences
    w, _ = correction_weights(OLD, SAMPLER, MASK, "sequence_mask", clip_min=0.8, clip_max=3.0)
    close(w, [[0.0] * 3, [0.0, 0.0, 0.0]])  # exp(-0.3) = 0.74 < 0.8; exp(2) > 3
    sampler = SAMPLER.clone()
    sampler[0, 1] = float("nan")  # a token the sampler did not score: difference 0 there
    close(correction_weights(OLD, sampler, MASK, "sequence_truncate", clip_max=3.0)[0][0], [E(0.7)] * 3)
    # padding does not count, whatever the values there; a long sequence's sum does not overflow
    close(correction_weights(OLD + 50 * (1 - MASK), SAMPLER, MASK, "sequence_truncate", clip_max=3.0)[0],
          [[E(-0.3)] * 3, [3.0, 0.0, 0.0]])
    big = correction_weights(torch.full((1, 4), 30.0), torch.zeros(1, 4), torch.ones(1, 4), "sequence_mask",
                             clip_max=None, clip_min=0.1)[0]
    assert torch.isfinite(big).all()
    with pytest.raises(ValueError, match="clip_min 2 > clip_max 1"):
        correction_weights(OLD, SAMPLER, MASK, "token_mask", clip_min=2, clip_max=1)
    with pytest.raises(ValueError, match="set clip_max or clip_min"):
        correction_weights(OLD, SAMPLER, MASK, "token_truncate", clip_max=None)
    with pytest.raises(ValueError, match="mode must be one of"):
        correction_weights(OLD, SAMPLER, MASK, "none")


def test_off_policy_mask_by_hand():
    logp = torch.zeros(3, 2)
    sampler = torch.tensor([[0.4, 0.4], [0.4, 0.4], [0.05, 0.05]])  # mean log pi_sampler - log pi: .4, .4, .05
    adv = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]])
    keep = off_policy_mask(adv, logp, sampler, torch.ones(3, 2), threshold=0.1)
    close(keep, [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])  # dropped: negative advantage and far off-policy
    mask = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])  # padding holds no evidence
    sampler[0, 0] = 0.0
    close(off_policy_mask(adv, logp, sampler, mask, 0.1)[0], [1.0, 1.0])


def test_sampler_logp_tensor():
    like = torch.zeros(2, 3)
    close(sampler_logp_tensor([[-0.1, -0.2, -0.3, -0.4], [-1.0]], like), [[-0.1, -0.2, -0.3], [-1.0, 0.0, 0.0]])
    assert math.isnan(float(sampler_logp_tensor([[None], [0.0]], like)[0, 0]))
    assert sampler_logp_tensor(None, like) is None
    with pytest.raises(ValueError, match="1 rows of sampler log-probs for 2 responses"):
        sampler_logp_tensor([[0.0]], like)


def test_logprob_gap_over_the_tokens_the_engine_reported():
    from sarl.train.rollout import logprob_gap

    logp = torch.tensor([[-0.5, -1.0, -2.0], [-0.3, -0.7, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    sampler = sampler_logp_tensor([[-0.4, None, -2.5], [-0.3, -0.9]], mask)  # no value for row 0, token 1
    gap = logprob_gap(sampler, logp, mask)
    assert gap["rollout/logprob_diff_mean"] == pytest.approx((0.1 + 0.5 + 0.0 + 0.2) / 4)
    assert gap["rollout/logprob_diff_max"] == pytest.approx(0.5)
    assert logprob_gap(None, logp, mask) == {}


def test_decode_loop_reports_the_sampling_distributions_log_probs():
    """The plain decode loop's log-probs equal the policy's full forward (the trainer's pass, at the same
    temperature); the bf16 copy's differ by a bf16-sized gap."""
    from sarl.logprobs import answer_logprobs
    from sarl.models import load_model
    from sarl.rollout import GenerationConfig, make_backend

    lm = load_model("tiny-random", dtype="float32", device="cpu")
    prompts = [[5, 6, 7], [8, 9]]
    cfg = GenerationConfig(max_new_tokens=6, temperature=0.7, n=2, seed=1, batch_size=4)
    out = make_backend(lm.model, "hf", tokenizer=lm.tokenizer, logprobs=True).generate(prompts, cfg)
    ctx = [p for p in prompts for _ in range(2)]
    resp = [s.token_ids for group in out for s in group]
    full = answer_logprobs(lm.model, ctx, resp, temperature=0.7, pad_token_id=lm.tokenizer.pad_token_id)
    got = sampler_logp_tensor([s.logprobs for group in out for s in group], full.logp)
    torch.testing.assert_close(got * full.mask, full.logp * full.mask, atol=1e-5, rtol=0)  # KV cache vs one pass
    assert make_backend(lm.model, "hf", tokenizer=lm.tokenizer).generate(prompts, cfg)[0][0].logprobs is None
    copy = make_backend(lm.model, "hf", tokenizer=lm.tokenizer, precision="bf16-mixed", bf16_copy=True)
    out16 = [s for g in copy.generate(prompts, cfg) for s in g]  # a copy always records them
    full16 = answer_logprobs(lm.model, ctx, [s.token_ids for s in out16], temperature=0.7,
                             pad_token_id=lm.tokenizer.pad_token_id)
    gap = (sampler_logp_tensor([s.logprobs for s in out16], full16.logp) - full16.logp).abs() * full16.mask
    assert 0 < float(gap.max()) < 0.1  # bf16 weights: a small gap, not none


def test_config_and_verl_keys():
    c = load_config(None, ["rollout.correction.mode=token_mask", "rollout.correction.clip_min=0.5"]).rollout.correction
    assert (c.mode, c.clip_min, c.clip_max, c.off_policy_mask_threshold) == ("token_mask", 0.5, 3.0, None)
    with pytest.raises(ConfigError, match=r"rollout.correction.clip_min 4.0 > clip_max 3.0"):
        load_config(None, ["rollout.correction.mode=token_mask", "rollout.correction.clip_min=4.0"])
    with pytest.raises(ConfigError, match=r"rollout.correction.mode=sequence_mask: set clip_max or clip_min"):
        load_config(None, ["rollout.correction.mode=sequence_mask", "rollout.correction.clip_max=null"])
    with pytest.raises(ConfigError, match=r"rollout.correction.mode: 'tis' is not allowed; choose one of: none, "
                                          r"token_truncate"):
        load_config(None, ["rollout.correction.mode=tis"])
    rc = "algorithm.rollout_correction."
    c = load_config(None, [rc + "rollout_is=token", rc + "rollout_is_threshold=2.5"]).rollout.correction
    assert (c.mode, c.clip_max, c.clip_min) == ("token_truncate", 2.5, None)  # verl's TIS: an upper bound
    c = load_config(None, [rc + "rollout_is=sequence", rc + "rollout_is_threshold=0.5_5.0"]).rollout.correction
    assert (c.mode, c.clip_min, c.clip_max) == ("sequence_mask", 0.5, 5.0)  # verl's IcePop: both bounds
    assert load_config(None, [rc + "rollout_is=token"]).rollout.correction.clip_max == 2.0  # verl's default
    assert load_config(None, [rc + "rollout_is_threshold=4"]).rollout.correction.mode == "none"
    with pytest.raises(ConfigError, match=r"rollout_rs=seq_mean_k1: verl's rejection sampling"):
        load_config(None, [rc + "rollout_rs=seq_mean_k1"])
    with pytest.raises(ConfigError, match=r"bypass_mode: verl's bypass mode uses the rollout's log-probs"):
        load_config(None, [rc + "bypass_mode=true"])
    with pytest.raises(ConfigError, match=r"rollout_is_threshold: a number \(upper bound\) or 'lower_upper'"):
        load_config(None, [rc + "rollout_is=token", rc + "rollout_is_threshold=high"])
