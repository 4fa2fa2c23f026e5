"""sarl.algos: advantage estimators, PPO losses, KL estimators and loss aggregation, checked against
hand-computed values (arithmetic in the comments) and slow explicit loops."""

from __future__ import annotations

import math
import statistics
from collections import defaultdict

import pytest
import torch

from sarl.algos import (
    ADV_ESTIMATORS,
    KL_ESTIMATORS,
    LOSS_AGG_MODES,
    Registry,
    aggregate_loss,
    estimator_kwargs,
    estimator_needs,
    gae,
    get_adv_estimator,
    grpo,
    grpo_scores,
    grpo_weighted,
    kl_penalty,
    loss_normalizers,
    policy_loss,
    reinforce_plus_plus,
    rloo,
    value_loss,
)

EPS = 1e-6


def close(actual, expected, atol=1e-5):
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


def right_padded_mask(lengths, T):
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).float()


def rewards_at_end(scores, lengths, T, dtype=torch.float32):
    """token_rewards: the sequence score on the last valid token, zeros elsewhere."""
    r = torch.zeros(len(scores), T, dtype=dtype)
    for i, (s, n) in enumerate(zip(scores, lengths, strict=True)):
        r[i, n - 1] = s
    return r


# ------------------------------------------------------------------------------------------------ GRPO


def _grpo_batch():
    # group 7: scores 1, 2, 3; group 3: scores 0, 4; group 5: score 3 alone
    scores = [1.0, 2.0, 3.0, 0.0, 4.0, 3.0]
    ids = torch.tensor([7, 7, 7, 3, 3, 5])
    lengths = [2, 4, 1, 3, 4, 2]
    T = 4
    return scores, ids, lengths, T


def test_grpo_norm_by_std_by_hand():
    scores, ids, lengths, T = _grpo_batch()
    mask = right_padded_mask(lengths, T)
    adv, ret = grpo(rewards_at_end(scores, lengths, T), mask, group_ids=ids, norm_adv_by_std=True)
    # group 7: mean 2, unbiased std sqrt((1 + 0 + 1) / 2) = 1        -> (-1, 0, 1) / (1 + eps)
    # group 3: mean 2, unbiased std sqrt((4 + 4) / 1) = 2*sqrt(2)    -> (-2, 2) / (2.828427 + eps)
    # group 5: singleton -> mean 0, std 1                             -> 3 / (1 + eps)
    s2 = 2 * math.sqrt(2)
    per_seq = torch.tensor([-1 / (1 + EPS), 0.0, 1 / (1 + EPS), -2 / (s2 + EPS), 2 / (s2 + EPS), 3 / (1 + EPS)])
    close(adv, per_seq[:, None] * mask)
    close(ret, adv)
    assert (adv[mask == 0] == 0).all()


def test_grpo_without_std_dr_grpo_by_hand():
    scores, ids, lengths, T = _grpo_batch()
    mask = right_padded_mask(lengths, T)
    adv, _ = grpo(rewards_at_end(scores, lengths, T), mask, group_ids=ids, norm_adv_by_std=False)
    # s - mean: group 7 -> -1, 0, 1; group 3 -> -2, 2; singleton: 3 - 0 = 3
    close(adv, torch.tensor([-1.0, 0.0, 1.0, -2.0, 2.0, 3.0])[:, None] * mask)


def test_grpo_equal_scores_give_zero():
    # mean 0.5 std 0 -> 0 / (0 + eps) = 0
    adv = grpo_scores(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([1, 1, 1]))
    close(adv, [0.0, 0.0, 0.0])


def _grpo_slow(scores, ids, norm, eps):
    by_id = defaultdict(list)
    for s, g in zip(scores.tolist(), ids.tolist(), strict=True):
        by_id[g].append(s)
    out = []
    for s, g in zip(scores.tolist(), ids.tolist(), strict=True):
        group = by_id[g]
        if len(group) == 1:
            mean, std = 0.0, 1.0
        else:
            mean = float(torch.mean(torch.tensor(group, dtype=torch.float64)))
            std = float(torch.std(torch.tensor(group, dtype=torch.float64)))
        out.append((s - mean) / (std + eps) if norm else s - mean)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("norm", [True, False])
def test_grpo_matches_slow_loop(norm):
    g = torch.Generator().manual_seed(0)
    B, T = 40, 9
    lengths = torch.randint(1, T + 1, (B,), generator=g).tolist()
    ids = torch.randint(100, 112, (B,), generator=g)  # arbitrary ids, some groups are singletons
    ids[-1] = 999  # certainly a singleton
    scores = torch.randn(B, generator=g, dtype=torch.float64)
    mask = right_padded_mask(lengths, T).double()
    r = rewards_at_end(scores.tolist(), lengths, T, dtype=torch.float64)
    adv, _ = grpo(r, mask, group_ids=ids, norm_adv_by_std=norm)
    expected = _grpo_slow(scores, ids, norm, EPS)
    torch.testing.assert_close(adv, expected[:, None] * mask, atol=1e-10, rtol=0)


def test_grpo_weighted_by_hand():
    ids = torch.tensor([0, 0, 1, 1])
    mask = right_padded_mask([2, 1, 3, 3], 3)
    comps = {"correctness": torch.tensor([1.0, 0.0, 1.0, 1.0]), "sar": torch.tensor([0.2, 0.4, 0.1, 0.3])}
    weights = {"correctness": 1.0, "sar": 0.5}
    # without std: correctness: group 0 mean .5 -> (.5, -.5); group 1 mean 1 -> (0, 0)
    #              sar:         group 0 mean .3 -> (-.1, .1); group 1 mean .2 -> (-.1, .1)
    # total = 1 * corr + 0.5 * sar = (.45, -.45, -.05, .05)
    adv, ret = grpo_weighted(comps, weights, ids, mask, norm_adv_by_std=False)
    close(adv, torch.tensor([0.45, -0.45, -0.05, 0.05])[:, None] * mask)
    close(ret, adv)
    # with std: correctness group 0: std sqrt(.5) -> +-.5/(.707107+eps); group 1: std 0 -> 0
    #           sar: both groups std sqrt(.02) = .141421 -> +-.1/(.141421+eps)
    c = 0.5 / (math.sqrt(0.5) + EPS)
    s = 0.1 / (math.sqrt(0.02) + EPS)
    adv, _ = grpo_weighted(comps, weights, ids, mask, norm_adv_by_std=True)
    close(adv, torch.tensor([c - 0.5 * s, -c + 0.5 * s, -0.5 * s, 0.5 * s])[:, None] * mask)
    # each component normalised separately differs from normalising the weighted sum
    total = comps["correctness"] + 0.5 * comps["sar"]
    assert not torch.allclose(adv[:, 0], grpo_scores(total, ids))


def test_grpo_weighted_key_mismatch():
    ids, mask = torch.tensor([0, 0]), torch.ones(2, 1)
    with pytest.raises(ValueError, match="sar"):
        grpo_weighted({"correctness": torch.ones(2)}, {"correctness": 1.0, "sar": 0.1}, ids, mask)
    with pytest.raises(ValueError, match="sar"):
        grpo_weighted({"correctness": torch.ones(2), "sar": torch.ones(2)}, {"correctness": 1.0}, ids, mask)


# ------------------------------------------------------------------------------------------------ RLOO


def test_rloo_by_hand():
    scores, ids, lengths, T = _grpo_batch()
    mask = right_padded_mask(lengths, T)
    adv, ret = rloo(rewards_at_end(scores, lengths, T), mask, group_ids=ids)
    # group 7 (1, 2, 3): 1 - (2+3)/2 = -1.5; 2 - (1+3)/2 = 0; 3 - (1+2)/2 = 1.5
    # group 3 (0, 4): 0 - 4 = -4; 4 - 0 = 4;  singleton -> 0
    close(adv, torch.tensor([-1.5, 0.0, 1.5, -4.0, 4.0, 0.0])[:, None] * mask)
    close(ret, adv)


# ------------------------------------------------------------------------------------------------ GAE


def test_gae_by_hand_ignores_padding_values():
    # one response of 2 valid tokens; the critic wrote 9.0 on the padding, which must not be used
    r = torch.tensor([[0.0, 1.0, 0.0]])
    v = torch.tensor([[0.5, 0.25, 9.0]])
    m = torch.tensor([[1.0, 1.0, 0.0]])
    adv, ret = gae(r, m, values=v, gamma=1.0, lam=1.0)
    # t=1: delta = 1 + 1*0 - 0.25 = 0.75          A1 = 0.75
    # t=0: delta = 0 + 1*0.25 - 0.5 = -0.25       A0 = -0.25 + 1*0.75 = 0.5
    # returns = A + V = (1.0, 1.0), 0 on padding
    close(ret, [[1.0, 1.0, 0.0]])
    # whiten (0.5, 0.75): mean 0.625, unbiased var (0.125^2 * 2) / 1 = 0.03125, rsqrt = 5.656854
    # -> (-0.125 * 5.656854, 0.125 * 5.656854) = (-0.707107, 0.707107)
    close(adv, [[-0.707107, 0.707107, 0.0]])


def test_gae_discounted_by_hand():
    r = torch.tensor([[0.0, 1.0, 0.0]])
    v = torch.tensor([[0.5, 0.25, -3.0]])
    m = torch.tensor([[1.0, 1.0, 0.0]])
    _, ret = gae(r, m, values=v, gamma=0.5, lam=0.5)
    # t=1: delta = 1 + 0.5*0 - 0.25 = 0.75                 A1 = 0.75
    # t=0: delta = 0 + 0.5*0.25 - 0.5 = -0.375             A0 = -0.375 + 0.25*0.75 = -0.1875
    # returns = (-0.1875 + 0.5, 0.75 + 0.25) = (0.3125, 1.0)
    close(ret, [[0.3125, 1.0, 0.0]])


def test_gae_skips_masked_hole():
    # a masked position inside the response (e.g. an observation token) is skipped: its value 7 and
    # reward 5 are ignored; the recursion carries next value 0.25 and next advantage 0.75 through it
    r = torch.tensor([[0.0, 5.0, 1.0]])
    v = torch.tensor([[0.5, 7.0, 0.25]])
    m = torch.tensor([[1.0, 0.0, 1.0]])
    adv, ret = gae(r, m, values=v)
    # t=2: delta = 1 - 0.25 = 0.75, A2 = 0.75;  t=0: delta = 0 + 0.25 - 0.5 = -0.25, A0 = 0.5
    close(ret, [[1.0, 0.0, 1.0]])
    close(adv, [[-0.707107, 0.0, 0.707107]])


def _gae_slow(r, v, lengths, gamma, lam):
    """Per sequence, over its valid prefix only, plain Python floats; then batch whitening."""
    B = r.shape[0]
    adv = [[0.0] * r.shape[1] for _ in range(B)]
    ret = [[0.0] * r.shape[1] for _ in range(B)]
    flat = []
    for i in range(B):
        n = lengths[i]
        nxt = 0.0
        for t in reversed(range(n)):
            next_v = float(v[i, t + 1]) if t + 1 < n else 0.0
            delta = float(r[i, t]) + gamma * next_v - float(v[i, t])
            nxt = delta + gamma * lam * nxt
            adv[i][t] = nxt
            ret[i][t] = nxt + float(v[i, t])
        flat.extend(adv[i][:n])
    mean, var = statistics.fmean(flat), statistics.variance(flat)  # variance: unbiased
    white = [[(a - mean) / math.sqrt(var + 1e-8) if t < lengths[i] else 0.0 for t, a in enumerate(row)]
             for i, row in enumerate(adv)]
    return torch.tensor(white, dtype=torch.float64), torch.tensor(ret, dtype=torch.float64)


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 1.0), (0.99, 0.95), (0.7, 0.3)])
def test_gae_matches_slow_loop(gamma, lam):
    g = torch.Generator().manual_seed(1)
    B, T = 7, 11
    lengths = torch.randint(1, T + 1, (B,), generator=g).tolist()
    lengths[0] = T
    mask = right_padded_mask(lengths, T).double()
    r = torch.randn(B, T, generator=g, dtype=torch.float64) * mask  # per-token rewards on valid tokens
    v = torch.randn(B, T, generator=g, dtype=torch.float64) * 3  # junk values on the padding too
    adv, ret = gae(r, mask, values=v, gamma=gamma, lam=lam)
    exp_adv, exp_ret = _gae_slow(r, v, lengths, gamma, lam)
    # masked_mean divides by n + 1e-8 (verl), so allow that relative 1e-8 slack
    torch.testing.assert_close(ret, exp_ret, atol=1e-10, rtol=0)
    torch.testing.assert_close(adv, exp_adv, atol=1e-7, rtol=0)


def test_gae_needs_values():
    with pytest.raises(ValueError, match="values"):
        gae(torch.zeros(2, 3), torch.ones(2, 3))


# ------------------------------------------------------------------------------------------------ REINFORCE++


def test_reinforce_plus_plus_by_hand():
    r = torch.tensor([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    adv, ret = reinforce_plus_plus(r, m, gamma=0.5)
    # returns-to-go, gamma 0.5: seq 0: (0.25, 0.5, 1); seq 1: (1, 2, pad 0)
    close(ret, [[0.25, 0.5, 1.0], [1.0, 2.0, 0.0]])
    # whiten (0.25, 0.5, 1, 1, 2): mean 4.75/5 = 0.95; deviations -0.7, -0.45, 0.05, 0.05, 1.05;
    # squares sum 0.49 + 0.2025 + 0.0025 + 0.0025 + 1.1025 = 1.8; unbiased var 1.8/4 = 0.45, std 0.670820
    sd = math.sqrt(0.45)
    close(adv, [[-0.7 / sd, -0.45 / sd, 0.05 / sd], [0.05 / sd, 1.05 / sd, 0.0]])


# ------------------------------------------------------------------------------------------------ registry


def declared_inputs(name, ids, values, scores):
    """The keyword inputs estimator ``name`` declares it needs (as the training loop passes them)."""
    needs = ADV_ESTIMATORS.meta(name)["needs"]
    kw = {"group_ids": ids, "values": values}
    if "reward_components" in needs:
        s = torch.as_tensor(scores, dtype=torch.float32)
        kw.update(components={"a": s, "b": s * 0.5}, weights={"a": 1.0, "b": 0.3})
    return kw


def test_adv_registry_and_uniform_signature():
    assert tuple(ADV_ESTIMATORS) == ("grpo", "grpo_weighted", "rloo", "gae", "reinforce_plus_plus")
    scores, ids, lengths, T = _grpo_batch()
    mask = right_padded_mask(lengths, T)
    r = rewards_at_end(scores, lengths, T)
    values = torch.randn(len(scores), T)
    for name in ADV_ESTIMATORS:
        meta = ADV_ESTIMATORS.meta(name)
        assert set(meta) == {"needs", "options", "needs_with", "batch_wide", "batch_wide_with"}, name
        assert set(meta["needs"]) <= {"groups", "values", "reward_components"}, name
        adv, ret = get_adv_estimator(name)(r, mask, **declared_inputs(name, ids, values, scores))
        assert adv.shape == ret.shape == r.shape
        assert (adv[mask == 0] == 0).all() and (ret[mask == 0] == 0).all()
        assert not adv.requires_grad


def test_every_estimator_option_is_fed_by_a_train_config_field():
    """Each declared option names a TrainConfig field, and estimator_kwargs reads it off the config."""
    import dataclasses

    from sarl.algos.advantages import read_field
    from sarl.config import TrainConfig, load_config

    cfg = TrainConfig()
    for name in ADV_ESTIMATORS.names:
        for kw, path in ADV_ESTIMATORS.meta(name)["options"].items():
            section, _, field = path.partition(".")
            assert field in {f.name for f in dataclasses.fields(getattr(cfg, section))}, (name, kw, path)
        assert set(estimator_kwargs(name, cfg)) == set(ADV_ESTIMATORS.meta(name)["options"]), name
        assert estimator_needs(name, cfg) == ADV_ESTIMATORS.meta(name)["needs"], name  # the defaults
    cfg = load_config(None, ["algorithm.adv_estimator=gae", "algorithm.gamma=0.9", "algorithm.lam=0.8"])
    assert estimator_kwargs("gae", cfg) == {"gamma": 0.9, "lam": 0.8}
    assert estimator_kwargs("reinforce_plus_plus", cfg) == {"gamma": 0.9} and estimator_kwargs("rloo", cfg) == {}
    assert estimator_kwargs("grpo", TrainConfig()) == {"norm_adv_by_std": False, "weighted": False,
                                                      "aggregation": "sum_then_normalize"}
    with pytest.raises(AttributeError, match="algorithm.nope"):
        read_field(cfg, "algorithm.nope")


def test_weighted_grpo_is_an_option_of_grpo_bit_identical_to_grpo_weighted():
    """advantage_weighting_in_grpo feeds grpo's weighted option; the reward components are then declared
    as needed; the advantages equal the grpo_weighted estimator's bit for bit (grpo_weighted still works)."""
    from sarl.config import ConfigError, load_config

    cfg = load_config(None, ["algorithm.advantage_weighting_in_grpo=true"])
    assert cfg.algorithm.adv_estimator == "grpo"
    assert estimator_kwargs("grpo", cfg) == {"norm_adv_by_std": False, "weighted": True,
                                           "aggregation": "sum_then_normalize"}
    assert estimator_needs("grpo", cfg) == {"groups", "reward_components"}
    assert estimator_needs("grpo", load_config(None, [])) == {"groups"}
    assert estimator_needs("grpo_weighted", load_config(None, ["algorithm.adv_estimator=grpo_weighted"])) == {
        "groups", "reward_components"}
    with pytest.raises(ConfigError, match="advantage_weighting_in_grpo: needs algorithm.adv_estimator=grpo$"):
        load_config(None, ["algorithm.adv_estimator=rloo", "algorithm.advantage_weighting_in_grpo=true"])
    with pytest.raises(ConfigError, match=r"use_kl_in_reward: grpo \(norm_adv_by_std=False, weighted=True, aggregation=sum_then_normalize\) weights"):
        load_config(None, ["algorithm.advantage_weighting_in_grpo=true", "algorithm.use_kl_in_reward=true"])
    with pytest.raises(ConfigError, match="use_kl_in_reward: grpo_weighted"):
        load_config(None, ["algorithm.adv_estimator=grpo_weighted", "algorithm.use_kl_in_reward=true"])
    g = torch.Generator().manual_seed(3)
    B, T = 12, 5
    mask = right_padded_mask(torch.randint(1, T + 1, (B,), generator=g).tolist(), T)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    comps = {"correctness": (torch.rand(B, generator=g) > 0.5).float(), "sar": torch.randn(B, generator=g)}
    weights = {"correctness": 1.0, "sar": 0.2 * 0.37}
    r = rewards_at_end(torch.randn(B, generator=g).tolist(), mask.sum(1).long().tolist(), T)
    for norm in (False, True):
        cfg = load_config(None, ["algorithm.advantage_weighting_in_grpo=true", f"algorithm.norm_adv_by_std_in_grpo={norm}"])
        adv, ret = ADV_ESTIMATORS["grpo"](r, mask, group_ids=ids, components=comps, weights=weights,
                                          **estimator_kwargs("grpo", cfg))
        want, want_ret = ADV_ESTIMATORS["grpo_weighted"](r, mask, group_ids=ids, components=comps, weights=weights,
                                                         norm_adv_by_std=norm)
        assert torch.equal(adv, want) and torch.equal(ret, want_ret)
        plain, _ = grpo(r, mask, group_ids=ids, components=comps, weights=weights, norm_adv_by_std=norm)
        assert torch.equal(plain, grpo(r, mask, group_ids=ids, norm_adv_by_std=norm)[0])  # not weighted: ignored
        assert not torch.equal(plain, adv)
    with pytest.raises(ValueError, match="needs components and weights"):
        grpo(r, mask, group_ids=ids, weighted=True)


def test_estimator_declarations_are_checked_at_registration():
    reg = type(ADV_ESTIMATORS)("advantage estimator")

    def est(token_rewards, response_mask, *, group_ids=None, values=None, beta=1.0):
        return token_rewards, token_rewards

    with pytest.raises(ValueError, match="unknown needs"):
        reg.register("a", needs=("critic",))(est)
    with pytest.raises(TypeError, match="must map each keyword option"):
        reg.register("a", options=("beta",))(est)
    with pytest.raises(ValueError, match="option 'gamma' is not a keyword"):
        reg.register("a", options={"gamma": "algorithm.gamma"})(est)
    with pytest.raises(ValueError, match="as 'section.field'"):
        reg.register("a", options={"beta": "beta"})(est)
    reg.register("a", options={"beta": "algorithm.gamma"}, aliases=("b",))(est)
    assert reg.meta("b") == {"needs": frozenset(), "options": {"beta": "algorithm.gamma"}, "needs_with": None,
                             "batch_wide": False, "batch_wide_with": None}
    with pytest.raises(ValueError, match="alias"):
        reg.remove("b")
    assert reg.remove("a") is est and "a" not in reg and "b" not in reg and reg.names == ()


def test_unknown_names_list_valid_ones():
    with pytest.raises(KeyError, match="valid names: grpo, grpo_weighted, rloo, gae, reinforce_plus_plus"):
        get_adv_estimator("ppo")
    with pytest.raises(KeyError, match=r"k1, abs, k2, k3, kl \(= k1\), mse \(= k2\), low_var_kl \(= k3\)"):
        kl_penalty(torch.zeros(1, 1), torch.zeros(1, 1), "k4")
    with pytest.raises(KeyError, match="token-mean, seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm"):
        aggregate_loss(torch.zeros(1, 1), torch.ones(1, 1), "mean")
    with pytest.raises(KeyError, match="token-mean"):
        policy_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1, 1), loss_agg_mode="sum")


def test_duplicate_names_raise():
    reg = Registry("thing")
    reg.register("a", aliases=("b",))(lambda: 1)
    with pytest.raises(ValueError, match="'a' is registered twice"):
        reg.register("a")(lambda: 2)
    with pytest.raises(ValueError, match="'b' is registered twice"):
        reg.register("c", aliases=("b",))(lambda: 3)
    assert tuple(reg) == ("a", "b") and reg.names == ("a",) and reg.canonical("b") == "a"
    with pytest.raises(ValueError, match="twice"):
        ADV_ESTIMATORS.register("grpo")(lambda *a, **k: None)
    with pytest.raises(ValueError, match="twice"):
        KL_ESTIMATORS.register("k5", aliases=("low_var_kl",))(lambda a, b: a)
    assert "k5" not in KL_ESTIMATORS


# ------------------------------------------------------------------------------------------------ aggregation


def _agg_example():
    loss = torch.tensor([[1.0, 2.0, float("nan")], [4.0, 5.0, 6.0]])  # NaN on padding must not leak
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    return loss, mask


@pytest.mark.parametrize(("mode", "kwargs", "expected"), [
    ("token-mean", {}, 7 / 3),                       # (1 + 2 + 4) / 3 tokens
    ("seq-mean-token-sum", {}, 3.5),                 # ((1 + 2) + 4) / 2 seqs
    ("seq-mean-token-mean", {}, 2.75),               # ((1 + 2)/2 + 4/1) / 2 = (1.5 + 4) / 2
    ("seq-mean-token-sum-norm", {}, 7 / 6),          # 7 / (L = T = 3) / 2 seqs
    ("seq-mean-token-sum-norm", {"norm_length": 4}, 7 / 8),  # 7 / 4 / 2
    ("token-mean", {"global_tokens": 7.0}, 1.0),     # 7 / 7
    ("seq-mean-token-sum", {"global_seqs": 4}, 7 / 4),
    ("seq-mean-token-mean", {"global_seqs": 4}, 5.5 / 4),
    ("seq-mean-token-sum-norm", {"norm_length": 4, "global_seqs": 4}, 7 / 16),
])
def test_aggregate_loss_by_hand(mode, kwargs, expected):
    loss, mask = _agg_example()
    close(aggregate_loss(loss, mask, mode, **kwargs), expected, atol=1e-6)


def test_loss_agg_registry():
    assert tuple(LOSS_AGG_MODES) == ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean",
                                     "seq-mean-token-sum-norm")
    norms = loss_normalizers(torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    assert float(norms["global_tokens"]) == 3.0 and norms["global_seqs"] == 2


@pytest.mark.parametrize("mode", list(LOSS_AGG_MODES))
@pytest.mark.parametrize("micro", [1, 3])
def test_micro_batches_give_the_whole_batch_gradient(mode, micro):
    g = torch.Generator().manual_seed(2)
    B, T = 8, 6
    lengths = torch.randint(1, T + 1, (B,), generator=g).tolist()
    mask = right_padded_mask(lengths, T)
    x = torch.randn(B, T, generator=g)
    w = torch.randn(B, T, generator=g).requires_grad_(True)

    def loss_mat(wi, xi):  # any per-token function of the parameters
        return (wi * xi) ** 2 + torch.sin(wi) * xi

    full = aggregate_loss(loss_mat(w, x), mask, mode, norm_length=T)
    (g_full,) = torch.autograd.grad(full, w)

    norms = loss_normalizers(mask)  # totals of the whole mini-batch
    w.grad = None
    total = 0.0
    for s in range(0, B, micro):  # micro=3: uneven micro-batches of 3, 3, 2
        part = aggregate_loss(loss_mat(w[s:s + micro], x[s:s + micro]), mask[s:s + micro], mode, norm_length=T,
                              **norms)
        part.backward()
        total = total + part.detach()
    torch.testing.assert_close(w.grad, g_full, atol=1e-6, rtol=0)
    torch.testing.assert_close(total, full.detach(), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------ policy loss


def _pl_inputs(adv, ratio):
    old = torch.zeros(1, len(adv))
    logp = torch.log(torch.tensor([ratio]))
    return logp, old, torch.tensor([adv]), torch.ones(1, len(adv))


@pytest.mark.parametrize(("adv", "ratio", "expected", "clipped", "dual"), [
    (1.0, 1.1, -1.1, 0, 0),   # A>0, inside [0.8, 1.2]: L1 = L2 = -1.1
    (1.0, 1.5, -1.2, 1, 0),   # A>0, above: L1 = -1.5, L2 = -1*1.2 = -1.2, max = -1.2 (clipped, L2 > L1)
    (1.0, 0.5, -0.5, 0, 0),   # A>0, below: L1 = -0.5, L2 = -0.8, max = -0.5 (unclipped, pessimistic)
    (-1.0, 0.5, 0.8, 1, 0),   # A<0, below: L1 = 0.5, L2 = 0.8, max = 0.8 (clipped); dual min(3, 0.8) = 0.8
    (-1.0, 1.5, 1.5, 0, 0),   # A<0, above: L1 = 1.5, L2 = 1.2, max = 1.5; dual min(3, 1.5) = 1.5
    (-1.0, 5.0, 3.0, 0, 1),   # A<0, far above: L1 = 5, L2 = 1.2, Lc = 5; dual min(-A*3 = 3, 5) = 3
    (-2.0, 5.0, 6.0, 0, 1),   # A=-2: Lc = 10, dual min(6, 10) = 6
])
def test_policy_loss_single_token_cases(adv, ratio, expected, clipped, dual):
    loss, metrics = policy_loss(*_pl_inputs([adv], [ratio]))
    close(loss, expected)
    close(metrics["clipfrac"], float(clipped))
    close(metrics["clipfrac_lower"], float(dual))
    close(metrics["approx_kl"], -math.log(ratio))  # ppo_kl = mean(-(logp - old_logp))


def test_policy_loss_batch_metrics_and_gradient():
    advs = [1.0, 1.0, 1.0, -1.0, -1.0, -1.0]
    ratios = [1.1, 1.5, 0.5, 0.5, 1.5, 5.0]
    logp, old, adv, mask = _pl_inputs(advs, ratios)
    logp.requires_grad_(True)
    loss, metrics = policy_loss(logp, old, adv, mask)
    # token-mean of (-1.1, -1.2, -0.5, 0.8, 1.5, 3.0) = 2.5 / 6
    close(loss, 2.5 / 6)
    close(metrics["clipfrac"], 2 / 6)
    close(metrics["clipfrac_lower"], 1 / 6)
    close(metrics["approx_kl"], -sum(math.log(r) for r in ratios) / 6)
    assert all(not m.requires_grad for m in metrics.values())
    (grad,) = torch.autograd.grad(loss, logp)
    # unclipped tokens: d(-A * ratio)/dlogp = -A * ratio / 6; clipped and dual-clipped tokens: 0
    close(grad, [[-1.1 / 6, 0.0, -0.5 / 6, 0.0, 1.5 / 6, 0.0]])


def test_policy_loss_clip_higher_and_no_dual_clip():
    # clip_high 0.28: ratio 1.25 with A=1 is not clipped (-1.25); symmetric 0.2 clips it to -1.2
    close(policy_loss(*_pl_inputs([1.0], [1.25]), clip_high=0.28)[0], -1.25)
    close(policy_loss(*_pl_inputs([1.0], [1.25]))[0], -1.2)
    # clip_low 0.1: A<0 with ratio 0.85 -> L2 = 0.9 > L1 = 0.85 -> 0.9
    close(policy_loss(*_pl_inputs([-1.0], [0.85]), clip_low=0.1)[0], 0.9)
    # dual clip off: A<0, ratio 5 -> max(5, 1.2) = 5
    loss, metrics = policy_loss(*_pl_inputs([-1.0], [5.0]), clip_ratio_c=None)
    close(loss, 5.0)
    close(metrics["clipfrac_lower"], 0.0)
    with pytest.raises(ValueError, match="clip_ratio_c"):
        policy_loss(*_pl_inputs([1.0], [1.0]), clip_ratio_c=1.0)


def test_policy_loss_log_ratio_clamped():
    # logp - old = 30 is clamped to 20: with A = -1 and no dual clip L = exp(20)
    loss, metrics = policy_loss(torch.tensor([[30.0]]), torch.zeros(1, 1), torch.tensor([[-1.0]]),
                                torch.ones(1, 1), clip_ratio_c=None)
    close(loss, math.exp(20), atol=1.0)
    close(metrics["approx_kl"], -20.0)


def test_policy_loss_aggregation_mode_and_padding():
    # two sequences; per-token losses (A=1, ratio 1): -1 everywhere; seq 0 has 2 tokens, seq 1 has 1
    logp = torch.zeros(2, 3)
    adv = torch.ones(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    close(policy_loss(logp, logp, adv, mask, loss_agg_mode="seq-mean-token-sum")[0], -1.5)  # (-2 - 1) / 2
    close(policy_loss(logp, logp, adv, mask, loss_agg_mode="seq-mean-token-sum-norm", norm_length=3)[0],
          -0.5)  # -3 / 3 / 2


# ------------------------------------------------------------------------------------------------ value loss


def test_value_loss_by_hand():
    v = torch.tensor([[1.0, 2.0, 2.0, 100.0]])
    old = torch.tensor([[0.8, 1.0, 1.0, 0.0]])
    R = torch.tensor([[2.0, 0.0, 3.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, metrics = value_loss(v, old, R, mask, clip_range=0.5)
    # tok 0: v=1 within 0.8 +- 0.5 -> (1-2)^2 = 1 both                               -> 1
    # tok 1: v_clip = 1.5; (2-0)^2 = 4, (1.5-0)^2 = 2.25, max 4                       -> 4
    # tok 2: v_clip = 1.5; (2-3)^2 = 1, (1.5-3)^2 = 2.25, max 2.25 (clipped counts)  -> 2.25
    # 0.5 * token-mean = 0.5 * (1 + 4 + 2.25) / 3 = 1.208333
    close(loss, 0.5 * 7.25 / 3)
    close(metrics["clipfrac"], 1 / 3)
    assert not metrics["clipfrac"].requires_grad
    # no clipping: 0.5 * (1 + 4 + 1) / 3 = 1
    close(value_loss(v, old, R, mask, clip_range=None)[0], 1.0)


# ------------------------------------------------------------------------------------------------ KL


def test_kl_estimators_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    ref = torch.log(torch.tensor([[0.25, 0.5]]))
    ln2 = math.log(2)
    close(kl_penalty(logp, ref, "k1"), [[ln2, -ln2]])              # logp - ref
    close(kl_penalty(logp, ref, "abs"), [[ln2, ln2]])
    close(kl_penalty(logp, ref, "k2"), [[0.5 * ln2**2, 0.5 * ln2**2]])  # 0.5 * 0.480453 = 0.240227
    # k3: kl = ref - logp = (-ln2, ln2); exp(kl) - kl - 1 = (0.5 + ln2 - 1, 2 - ln2 - 1) = (0.193147, 0.306853)
    close(kl_penalty(logp, ref, "k3"), [[0.5 + ln2 - 1, 1 - ln2]])
    for alias, name in (("kl", "k1"), ("mse", "k2"), ("low_var_kl", "k3")):
        torch.testing.assert_close(kl_penalty(logp, ref, alias), kl_penalty(logp, ref, name))
        assert KL_ESTIMATORS.canonical(alias) == name
    assert set(KL_ESTIMATORS) == {"k1", "kl", "abs", "k2", "mse", "k3", "low_var_kl"}


def test_k3_clamps():
    # ref - logp = 50 -> kl clamped to 20 -> exp(20) - 21 -> clamped to 10
    # ref - logp = -50 -> kl clamped to -20 -> exp(-20) + 20 - 1 ~ 19 -> clamped to 10
    logp = torch.tensor([[0.0, 0.0]])
    ref = torch.tensor([[50.0, -50.0]])
    close(kl_penalty(logp, ref, "k3"), [[10.0, 10.0]])


# ------------------------------------------------------------------------------------------------ purity


def test_no_function_modifies_its_inputs():
    g = torch.Generator().manual_seed(3)
    B, T = 6, 5
    mask = right_padded_mask([5, 3, 1, 4, 2, 5], T)
    inputs = {
        "r": torch.randn(B, T, generator=g) * mask,
        "v": torch.randn(B, T, generator=g),
        "old_v": torch.randn(B, T, generator=g),
        "ret": torch.randn(B, T, generator=g),
        "logp": torch.randn(B, T, generator=g) - 2,
        "old": torch.randn(B, T, generator=g) - 2,
        "ref": torch.randn(B, T, generator=g) - 2,
        "adv": torch.randn(B, T, generator=g),
        "mask": mask,
        "ids": torch.tensor([0, 0, 0, 1, 1, 2]),
        "c1": torch.randn(B, generator=g),
        "c2": torch.randn(B, generator=g),
    }
    before = {k: t.clone() for k, t in inputs.items()}
    i = inputs
    for name in ADV_ESTIMATORS:
        get_adv_estimator(name)(i["r"], i["mask"], **declared_inputs(name, i["ids"], i["v"], i["c1"]))
    grpo_weighted({"a": i["c1"], "b": i["c2"]}, {"a": 1.0, "b": 0.3}, i["ids"], i["mask"])
    grpo_scores(i["c1"], i["ids"])
    for mode in LOSS_AGG_MODES:
        aggregate_loss(i["adv"], i["mask"], mode, norm_length=T)
        policy_loss(i["logp"], i["old"], i["adv"], i["mask"], loss_agg_mode=mode)
        value_loss(i["v"], i["old_v"], i["ret"], i["mask"], loss_agg_mode=mode)
    for kind in KL_ESTIMATORS:
        out = kl_penalty(i["logp"], i["ref"], kind)
        out.add_(1.0)  # the result is a fresh tensor, not a view of an input
    for k, t in inputs.items():
        assert torch.equal(t, before[k]), f"{k} was modified"
    adv, ret = grpo(i["r"], i["mask"], group_ids=i["ids"])
    assert adv.data_ptr() != ret.data_ptr()
