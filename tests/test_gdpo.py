"""GDPO's decoupled normalisation, ``algorithm.reward_aggregation=normalize_then_sum`` (grpo's ``aggregation``
option, :func:`sarl.algos.aggregation.normalize_then_sum`): by hand; against TRL 1.16's own code
(``GRPOTrainer._generate_and_score_completions`` with ``multi_objective_aggregation="normalize_then_sum"``)
on the same per-function rewards, where wrong variants fail the comparison; the default
``sum_then_normalize`` left bit-identical; the config, the declarations and the TRL mapping."""

from __future__ import annotations

import math

import pytest
import torch

from sarl.algos.advantages import (
    ADV_ESTIMATORS,
    estimator_batch_wide,
    estimator_kwargs,
    estimator_needs,
    grpo,
    grpo_scores,
    grpo_weighted,
)
from sarl.algos.aggregation import GDPO_EPS, normalize_then_sum
from sarl.config import load_config
from sarl.errors import ConfigError

GDPO = ["algorithm.reward_aggregation=normalize_then_sum", "algorithm.norm_adv_by_std_in_grpo=true",
        "rewards.weights={correctness: 1.0, sar: 0.2}"]
# two groups of three; correctness spreads 0/1, SAR ~0.03 (its typical spread)
IDS = torch.tensor([0, 0, 0, 1, 1, 1])
CORRECT = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
SAR = [0.03, 0.0, -0.03, 0.01, 0.04, 0.01]
WEIGHTS = {"correctness": 1.0, "sar": 0.2}


def _comps(correct=CORRECT, sar=SAR) -> dict[str, torch.Tensor]:
    return {"correctness": torch.tensor(correct), "sar": torch.tensor(sar)}


def _gdpo(comps, weights, ids, T: int = 3):
    mask = torch.ones(len(ids), T)
    adv, ret = grpo(torch.zeros(len(ids), T), mask, group_ids=ids, components=comps, weights=weights,
                    **estimator_kwargs("grpo", load_config(None, GDPO)))
    assert torch.equal(adv, ret) and torch.equal(adv, adv[:, :1].expand_as(adv))
    return adv[:, 0]


def test_normalize_then_sum_by_hand():
    e = GDPO_EPS
    s3 = math.sqrt(1 / 3)  # unbiased std of [1, 0, 0] and of [1, 1, 0]
    zc = [x / (s3 + e) for x in (2 / 3, -1 / 3, -1 / 3, 1 / 3, 1 / 3, -2 / 3)]  # group means 1/3, 2/3
    # SAR: group 0 has mean 0 and std 0.03; group 1 mean 0.02 and std sqrt((1 + 4 + 1) e-4 / 2) = sqrt(3e-4)
    s1 = math.sqrt(3e-4)
    zs = [0.03 / (0.03 + e), 0.0, -0.03 / (0.03 + e), -0.01 / (s1 + e), 0.02 / (s1 + e), -0.01 / (s1 + e)]
    S = [c + 0.2 * s for c, s in zip(zc, zs)]
    assert abs(sum(S)) < 1e-12  # each group's normalised rewards sum to 0, so the batch mean is 0
    std_b = math.sqrt(sum(x * x for x in S) / 5)  # unbiased, over the 6 rows
    want = torch.tensor([x / (std_b + e) for x in S])
    got = _gdpo(_comps(), WEIGHTS, IDS)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got, torch.tensor([1.3217, -0.5635, -0.7581, 0.4515, 0.7877, -1.2392]), atol=1e-4,
                               rtol=0)
    # SAR counts at its weight: rows 1 and 2 (both wrong, SAR 0 and -0.03) are 0.2 / std_b apart; the
    # default GRPO (sum, then normalise; std on) separates them by 0.2 x 0.03 / group std, ~19x less
    summed = torch.tensor(CORRECT) + 0.2 * torch.tensor(SAR)
    plain = grpo_scores(summed, IDS, norm_adv_by_std=True)
    assert float(got[1] - got[2]) == pytest.approx(0.2 * 0.03 / (0.03 + e) / (std_b + e), rel=1e-5)
    assert float(got[1] - got[2]) > 15 * float(plain[1] - plain[2]) > 0


def test_relation_to_grpo_weighted_and_purity():
    """normalize_then_sum = grpo_weighted (eps 1e-4) rescaled by one positive factor over the batch; it
    keeps a group whose reward is constant at 0, masks padding, and leaves its inputs alone."""
    comps = _comps(correct=[1.0, 0.0, 0.0, 1.0, 1.0, 1.0])  # group 1: all correct
    before = {k: v.clone() for k, v in comps.items()}
    mask = torch.tensor([[1.0, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    adv, ret = normalize_then_sum(comps, WEIGHTS, IDS, mask)
    weighted, _ = grpo_weighted(comps, WEIGHTS, IDS, mask, True, GDPO_EPS)
    ratio = adv[mask == 1] / weighted[mask == 1]
    assert ratio.min() > 0 and torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)
    assert (adv[mask == 0] == 0).all() and torch.equal(adv, ret) and adv.data_ptr() != ret.data_ptr()
    assert all(torch.equal(comps[k], before[k]) for k in comps)
    # group 1: correctness is constant (z = 0), only SAR moves it
    torch.testing.assert_close(adv[3:, 0] / adv[4, 0], torch.tensor([-0.5, 1.0, -0.5]))


def test_the_default_stays_bit_identical():
    """sum_then_normalize (the default) is today's grpo, bit for bit, whatever components are passed;
    grpo_weighted (refactored onto weighted_group_scores) equals its formula bit for bit."""
    g = torch.Generator().manual_seed(0)
    B, T = 12, 5
    ids = torch.arange(B) // 4
    mask = (torch.arange(T) < torch.randint(1, T + 1, (B,), generator=g).unsqueeze(1)).float()
    r = torch.randn(B, T, generator=g) * mask
    comps = {"correctness": (torch.rand(B, generator=g) > 0.5).float(), "sar": 0.03 * torch.randn(B, generator=g)}
    cfg = load_config(None, [])
    assert estimator_kwargs("grpo", cfg)["aggregation"] == "sum_then_normalize"
    assert estimator_needs("grpo", cfg) == {"groups"} and not estimator_batch_wide("grpo", cfg)
    for norm in (False, True):
        want = grpo(r, mask, group_ids=ids, norm_adv_by_std=norm)
        got = grpo(r, mask, group_ids=ids, components=comps, weights=WEIGHTS, norm_adv_by_std=norm,
                   aggregation="sum_then_normalize")
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        kw = estimator_kwargs("grpo", load_config(None, [f"algorithm.norm_adv_by_std_in_grpo={norm}"]))
        assert torch.equal(ADV_ESTIMATORS["grpo"](r, mask, group_ids=ids, **kw)[0], want[0])
        total = torch.zeros(B)
        for name, w in WEIGHTS.items():
            total = total + float(w) * grpo_scores(comps[name], ids, norm)
        assert torch.equal(grpo_weighted(comps, WEIGHTS, ids, mask, norm)[0], total.unsqueeze(-1) * mask)


def test_config_declarations_and_refusals():
    cfg = load_config(None, GDPO)
    assert estimator_kwargs("grpo", cfg) == {"norm_adv_by_std": True, "weighted": False,
                                             "aggregation": "normalize_then_sum"}
    assert estimator_needs("grpo", cfg) == {"groups", "reward_components"}
    assert estimator_batch_wide("grpo", cfg)  # the last step normalises over the batch
    assert not estimator_batch_wide("rloo", cfg) and estimator_batch_wide("gae", cfg)
    refused = {
        "algorithm.norm_adv_by_std_in_grpo=false": "reward_aggregation: normalize_then_sum .* set "
                                                   "algorithm.norm_adv_by_std_in_grpo=true",
        "algorithm.advantage_weighting_in_grpo=true": "reward_aggregation: .* set "
                                                      "algorithm.advantage_weighting_in_grpo=false",
        "algorithm.adv_estimator=rloo": "reward_aggregation: needs algorithm.adv_estimator=grpo$",
        "algorithm.adv_estimator=grpo_weighted": "reward_aggregation: needs algorithm.adv_estimator=grpo$",
        "algorithm.use_kl_in_reward=true": "use_kl_in_reward: grpo .*aggregation=normalize_then_sum",
        "algorithm.reward_aggregation=gdpo": "reward_aggregation.*normalize_then_sum",
    }
    for override, msg in refused.items():
        with pytest.raises(ConfigError, match=msg):
            load_config(None, [*GDPO, override])
    # verl 0.9.1's gdpo whitens over response tokens (length-weighted), not per sequence: refused, not mapped
    for verl in ("algorithm.adv_estimator=gdpo", "algorithm.gdpo_reward_keys=[acc, fmt]"):
        with pytest.raises(ConfigError, match=r"verl 0.9's GDPO .*response tokens.*reward_aggregation=normalize_then"):
            load_config(None, [verl])
    ids, mask = IDS, torch.ones(6, 2)
    for bad in ({"norm_adv_by_std": False}, {"weighted": True}, {"components": None}):
        kw = {"components": _comps(), "weights": WEIGHTS, "aggregation": "normalize_then_sum", **bad}
        with pytest.raises(ValueError, match="normalize_then_sum"):
            grpo(torch.zeros(6, 2), mask, group_ids=ids, **kw)
    with pytest.raises(ValueError, match="aggregation must be one of sum_then_normalize, normalize_then_sum"):
        grpo(torch.zeros(6, 2), mask, group_ids=ids, aggregation="gdpo")


def test_trl_mapping():
    pytest.importorskip("trl")
    from sarl.integrations.trl.recipe import grpo_kwargs

    kw = grpo_kwargs(load_config("cpu/quickstart", GDPO), num_processes=1)
    assert (kw["multi_objective_aggregation"], kw["reward_weights"]) == ("normalize_then_sum", [1.0, 0.2])
    assert grpo_kwargs(load_config("cpu/quickstart"))["multi_objective_aggregation"] == "sum_then_normalize"
    ramp = "rewards.schedule={type: linear, increase: true, bottom: 0.0, peak_pos: 0.5}"
    with pytest.raises(ConfigError, match=r"^rewards.schedule: .*cancels alpha.*native trainer"):
        grpo_kwargs(load_config("cpu/quickstart", [*GDPO, ramp]))
    grpo_kwargs(load_config("cpu/quickstart", [ramp]))  # sum_then_normalize: TRL's schedule is sarl's
    grpo_kwargs(load_config("cpu/quickstart", [*GDPO, "rewards.schedule={type: linear}"]))  # alpha = 1 throughout
    with pytest.raises(ConfigError, match="^algorithm.advantage_weighting_in_grpo: .*reward_aggregation"):
        grpo_kwargs(load_config("cpu/quickstart", ["algorithm.advantage_weighting_in_grpo=true"]))


# ------------------------------------------------------------------------------ against TRL's own code
P, G = 3, 4  # prompts, completions per prompt
TRL_CORRECT = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]  # the middle group: all correct
TRL_SAR = [0.021, -0.034, 0.005, 0.047, -0.012, 0.030, 0.018, -0.041, 0.009, 0.026, -0.003, -0.028]


def _by_formula(comps, weights, ids, *, std_over: str = "group", batch_ddof: int = 1):
    """normalize_then_sum written out row by row in float64, with the knobs a wrong variant turns."""
    total = torch.zeros(len(ids), dtype=torch.float64)
    for name, w in weights.items():
        r = comps[name].double()
        z = torch.empty_like(r)
        for g in ids.unique():
            rows = ids == g
            std = (r if std_over == "batch" else r[rows]).std()
            z[rows] = (r[rows] - r[rows].mean()) / (std + GDPO_EPS)
        total = total + w * z
    return ((total - total.mean()) / (total.std(correction=batch_ddof) + GDPO_EPS)).float()


@pytest.fixture(scope="module")
def trl_gdpo(tmp_path_factory):
    """TRL 1.16's GRPOTrainer on the tiny model, built from grpo_config of a normalize_then_sum recipe, with
    reward functions that return the fixed rewards above; returns ``advantages(**trainer_attrs)``: the
    advantages its own ``_generate_and_score_completions`` computes (after setting the attributes)."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import GRPOTrainer

    from sarl.integrations.trl import grpo_config
    from sarl.models import load_model

    out = tmp_path_factory.mktemp("gdpo_trl")
    cfg = load_config(None, [*GDPO, "model.name=tiny-random", f"rollout.n={G}", f"trainer.prompts_per_step={P}",
                             f"actor.micro_batch_size={P * G}", "data.max_response_length=2",
                             "trainer.precision=fp32", "trainer.tensorboard=false", f"trainer.out_dir={out}"])
    args, _ = grpo_config(cfg, output_dir=str(out / "trl"), report_to="none", disable_tqdm=True,
                          model_init_kwargs=None)
    assert (args.multi_objective_aggregation, args.reward_weights, args.num_generations) == (
        "normalize_then_sum", [1.0, 0.2], G)

    def correctness(completions, **kwargs):
        return list(TRL_CORRECT)

    def sar(completions, **kwargs):
        return list(TRL_SAR)

    lm = load_model("tiny-random", dtype="float32")
    prompt = [{"role": "user", "content": "1 + 1"}]
    trainer = GRPOTrainer(model=lm.model, processing_class=lm.tokenizer, args=args,
                          reward_funcs=[correctness, sar], train_dataset=Dataset.from_list([{"prompt": prompt}] * P))
    trainer.model.train()

    def advantages(**attrs) -> torch.Tensor:
        for k, v in attrs.items():
            setattr(trainer, k, v)
        out = trainer._generate_and_score_completions([{"prompt": prompt}] * (P * G))
        return out["advantages"].detach().cpu()

    return cfg, advantages


def test_equal_to_trls_own_normalize_then_sum(trl_gdpo):
    cfg, trl_advantages = trl_gdpo
    trl = trl_advantages()
    assert trl.shape == (P * G,)
    ids = torch.arange(P * G) // G  # TRL's groups: G consecutive completions of a prompt
    comps = _comps(TRL_CORRECT, TRL_SAR)
    weights = cfg.rewards.composer().scheduled_weights(0.5)  # what the trainer passes (constant schedule)
    assert weights == {"correctness": 1.0, "sar": 0.2}
    T = 3
    adv, _ = ADV_ESTIMATORS["grpo"](torch.zeros(P * G, T), torch.ones(P * G, T), group_ids=ids, components=comps,
                                    weights=weights, **estimator_kwargs("grpo", cfg))
    tol = {"rtol": 1e-5, "atol": 1e-6}
    torch.testing.assert_close(adv[:, 0], trl, **tol)
    torch.testing.assert_close(_by_formula(comps, weights, ids), trl, **tol)
    # TRL's normalize_then_sum ignores scale_rewards (sarl's norm_adv_by_std_in_grpo maps to it)
    for scale in ("none", "batch", "group"):
        assert torch.equal(trl_advantages(scale_rewards=scale), trl)
    # wrong variants fail the same comparison, each by far more than the tolerance
    summed = comps["correctness"] + 0.2 * comps["sar"]
    wrong = {
        "normalise after the sum (sarl's default GRPO, std on)": grpo_scores(summed, ids, True),
        "normalise after the sum (TRL's own sum_then_normalize)": trl_advantages(
            multi_objective_aggregation="sum_then_normalize", scale_rewards="group"),
        "no batch step (grpo_weighted)": grpo_weighted(comps, weights, ids, torch.ones(P * G, 1), True,
                                                       GDPO_EPS)[0][:, 0],
        "batch std instead of the group std": _by_formula(comps, weights, ids, std_over="batch"),
        # (ddof 0 within the groups would not show: with equal groups it scales every z alike, and the
        # batch step takes that factor out again)
        "population std (ddof 0) in the batch step": _by_formula(comps, weights, ids, batch_ddof=0),
    }
    for name, variant in wrong.items():
        assert not torch.allclose(variant, trl, **tol), name
        assert (variant - trl).abs().max() > 1e-2, name


def test_several_processes_refuse_the_batch_wide_aggregation():
    """normalize_then_sum ends with a batch-wide std: with several processes each would use its own
    share's, so the run is refused (one process runs it)."""
    from sarl.config import load_config
    from sarl.errors import ConfigError
    from sarl.train.distributed import Dist

    cfg = load_config(None, ["algorithm.reward_aggregation=normalize_then_sum", "algorithm.norm_adv_by_std_in_grpo=true"])
    Dist(rank=0, world=1).check_estimator("grpo", cfg)
    Dist(rank=0, world=2).check_estimator("grpo", load_config(None, []))
    with pytest.raises(ConfigError, match="reward_aggregation=normalize_then_sum"):
        Dist(rank=0, world=2).check_estimator("grpo", cfg)
