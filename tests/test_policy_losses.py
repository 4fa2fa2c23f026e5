"""The policy losses of :mod:`sarl.algos.policy_losses` and ``actor.mask_truncated``: hand-computed values of
the pure functions, the registry, and an independent check against TRL 1.16's own code.

The TRL check, in the style of ``tests/test_trl_equivalence.py``: on the same tiny weights and the same
rollouts, sarl's update (``update_actor``) and TRL's ``GRPOTrainer._compute_loss``, with the ``GRPOConfig``
that :func:`sarl.integrations.trl.grpo_config` maps the recipe to, give the same loss and gradient. TRL
sees the rollouts through its own pipeline (a ``rollout_func`` hands it sarl's token ids;
``_generate_and_score_completions`` builds the masks, masks truncated completions, counts the tokens
of the batch and computes the group advantages from the rewards); only log π_old and log π_ref are
given to both, perturbed so that ratios leave the clip range. Each case also runs a deliberately wrong
sarl variant that must miss TRL by more than the tolerance, so that each check can fail.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch

from sarl.algos import POLICY_LOSSES, aggregate_loss, get_policy_loss, policy_loss, policy_loss_kwargs
from sarl.algos.policy_losses import PolicyLossRegistry, gspo
from sarl.config import ConfigError, load_config

G, P, L = 4, 2, 12  # rollouts per prompt, prompts, max response length
BETA = 0.001
CUTS = [3, 12, 7, 5, 12, 2, 9, 6]  # response lengths; the two of length L are truncated (no stop token)
REWARDS = [0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0]


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), atol=atol, rtol=0)


# ------------------------------------------------------------------------------------------ by hand


def test_registry_names_lookup_and_unknown_names():
    assert POLICY_LOSSES.names == ("vanilla", "gspo", "cispo", "sapo")
    assert get_policy_loss("gspo") is gspo
    with pytest.raises(KeyError, match=r"unknown policy loss 'gpso'; did you mean 'gspo'\? valid names: vanilla, "
                                       r"gspo, cispo, sapo"):
        policy_loss(*_tokens([1.0], [1.0]), loss="gpso")
    with pytest.raises(ConfigError, match=r"actor.policy_loss: 'ppo' is not allowed.*vanilla, gspo, cispo, sapo"):
        load_config(None, ["actor.policy_loss=ppo"])
    with pytest.raises(TypeError, match=r"policy loss 'sapo' takes the options \['tau_neg', 'tau_pos'\]; got "
                                        r"\['clip_low'\]"):
        policy_loss(*_tokens([1.0], [1.0]), loss="sapo", clip_low=0.1)
    reg = PolicyLossRegistry("policy loss")
    with pytest.raises(ValueError, match="option 'tau' is not a keyword of gspo"):
        reg.register("x", options={"tau": "actor.sapo_temperature_pos"})(gspo)
    try:  # an entry whose option names a field the config lacks is refused when the recipe picks it
        POLICY_LOSSES.register("mine", options={"clip_high": "actor.clip_max"})(
            lambda logp, old_logp, advantages, mask, *, clip_high=0.2: (-advantages * logp, {}))
        with pytest.raises(ConfigError, match="actor.policy_loss: mine declares an option this config cannot feed"):
            load_config(None, ["actor.policy_loss=mine"])
    finally:
        POLICY_LOSSES.remove("mine")
    cfg = load_config(None, ["actor.sapo_temperature_pos=2.0", "actor.clip_ratio_high=0.28"])
    assert policy_loss_kwargs("sapo", cfg) == {"tau_pos": 2.0, "tau_neg": 1.05}
    assert policy_loss_kwargs("cispo", cfg) == {"clip_high": 0.28}
    assert policy_loss_kwargs("gspo", cfg) == {"clip_low": 0.2, "clip_high": 0.28, "clip_ratio_c": 3.0}


def _tokens(adv, ratio):
    """One sequence, a token per (A, r): ``(logp, old_logp, A, mask)`` with ``old_logp = 0``."""
    return torch.log(torch.tensor([ratio])), torch.zeros(1, len(adv)), torch.tensor([adv]), torch.ones(1, len(adv))


def test_gspo_by_hand():
    # seq 0: token log-ratios 0.1, 0.5 (pad) -> log s = 0.3, s = 1.3499 > 1.2, A = 1: clipped, L = -1.2 on both
    # tokens, no gradient; seq 1: log-ratio -0.1 -> s = 0.9048, A = 1: L = -s, dL/dlogp = -s (unclipped)
    logp = torch.tensor([[0.1, 0.5, 9.0], [-0.1, 9.0, 9.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = torch.ones(2, 3)
    loss, m = policy_loss(logp, torch.zeros(2, 3), adv, mask, loss="gspo", loss_agg_mode="seq-mean-token-mean")
    s1 = math.exp(-0.1)
    close(loss, (-1.2 - s1) / 2)  # per sequence: -1.2, -s1; mean over the 2 sequences
    (grad,) = torch.autograd.grad(loss, logp)
    close(grad, [[0.0, 0.0, 0.0], [-s1 / 2, 0.0, 0.0]])
    close(m["clipfrac"], 2 / 3)  # the tokens of the clipped sequence
    # token level (vanilla) the same tokens are clipped differently: 1.105 stays, 1.649 is clipped
    close(policy_loss(logp, torch.zeros(2, 3), adv, mask, loss_agg_mode="seq-mean-token-mean")[0],
          ((-math.exp(0.1) - 1.2) / 2 - s1) / 2)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_gspo_equals_trls_sequence_ratio_broadcast(mode):
    """The stop-gradient form against TRL's form written out: coef = exp(masked mean log-ratio) [B, 1],
    -min(coef A, clip(coef) A) with coef capped at delta, broadcast over the tokens (constant A per row)."""
    g = torch.Generator().manual_seed(0)
    B, T = 5, 7
    logp = (-torch.rand(B, T, generator=g) * 3).requires_grad_(True)
    old = logp.detach() + 0.4 * torch.randn(B, T, generator=g) + 0.3 * torch.randn(B, 1, generator=g)
    mask = (torch.arange(T) < torch.tensor([7, 3, 5, 1, 6])[:, None]).float()
    a = torch.randn(B, 1, generator=g)
    loss, _ = policy_loss(logp, old, a.expand(B, T), mask, loss="gspo", loss_agg_mode=mode, norm_length=T)
    coef = torch.exp(((logp - old) * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1))
    per_seq = -torch.min(torch.clamp(coef, max=3.0) * a, torch.clamp(coef, 0.8, 1.2) * a)
    ref = aggregate_loss(per_seq.expand(B, T), mask, mode, T)
    (g1,) = torch.autograd.grad(loss, logp)
    (g2,) = torch.autograd.grad(ref, logp)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(g1, g2)
    assert g1.abs().max() > 0


def test_cispo_by_hand():
    # r = 1.5 (A = 1): weight min(1.5, 1.2) = 1.2; r = 0.5 (A = -1): weight 0.5 (no lower bound)
    logp, old, adv, mask = _tokens([1.0, -1.0], [1.5, 0.5])
    logp.requires_grad_(True)
    loss, m = policy_loss(logp, old, adv, mask, loss="cispo")
    close(loss, (-1.2 * math.log(1.5) + 0.5 * math.log(0.5)) / 2)  # -w A logp, token mean
    (grad,) = torch.autograd.grad(loss, logp)
    close(grad, [[-1.2 / 2, 0.5 / 2]])  # the weight is detached: -w A / N_tok, clipped token included
    close(m["clipfrac"], 0.5)
    close(policy_loss(logp, old, adv, mask, loss="cispo", clip_high=4.0)[0],
          (-1.5 * math.log(1.5) + 0.5 * math.log(0.5)) / 2)  # cap 5 (ScaleRL's eps_max): 1.5 kept


def test_sapo_by_hand():
    sig = torch.sigmoid
    logp, old, adv, mask = _tokens([1.0, -1.0, 1.0], [1.0, 1.0, math.exp(0.5)])
    logp.requires_grad_(True)
    loss, m = policy_loss(logp, old, adv, mask, loss="sapo", tau_pos=1.0, tau_neg=1.05)
    r2 = math.exp(0.5)
    per_token = [-4 * 0.5, 4 / 1.05 * 0.5, -4 * float(sig(torch.tensor(r2 - 1)))]  # -A (4/tau) sigmoid(tau (r-1))
    close(loss, sum(per_token) / 3)
    (grad,) = torch.autograd.grad(loss, logp)
    s2 = float(sig(torch.tensor(r2 - 1)))
    # dL/dlogp = -A * 4 sigmoid'(tau (r - 1)) * r: at r = 1 that is -A (PPO's gradient)
    close(grad, [[-1 / 3, 1 / 3, -4 * s2 * (1 - s2) * r2 / 3]])
    assert float(m["clipfrac"]) == 0.0
    with pytest.raises(ValueError, match="SAPO temperatures must be > 0"):
        policy_loss(logp, old, adv, mask, loss="sapo", tau_pos=0.0)


def test_loss_mask_leaves_out_truncated_rows_and_an_empty_batch_is_finite():
    from sarl.rollout.batch import RolloutBatch
    from sarl.train.step import loss_mask
    from sarl.train.update import accumulate_update

    mask = torch.ones(3, 2)
    batch = RolloutBatch(contexts=[[1]] * 3, responses=[[1, 2]] * 3, texts=["a"] * 3, group_ids=torch.zeros(3),
                         truncated=[False, True, False])
    close(loss_mask(batch, mask, True), [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]])
    assert loss_mask(batch, mask, False) is mask
    with pytest.raises(ValueError, match="actor.mask_truncated: this rollout batch does not say"):
        loss_mask(dataclasses.replace(batch, truncated=None), mask, True)
    # every response truncated: the token-mean normaliser is clamped at 1 (TRL's), so the loss is 0, not 0/0
    w = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(w.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    empty = torch.zeros(2, 3)

    def micro_loss(rows, norm):
        loss = policy_loss(w.weight.expand(len(rows), 3), torch.zeros(len(rows), 3), torch.ones(len(rows), 3),
                           empty[rows], **norm)[0]
        return loss, {"pg_loss": float(loss.detach())}, {}

    stats = accumulate_update(w, opt, sched, mask=empty, mini_batch=2, micro_batch=1, epochs=1, grad_clip=1.0,
                              micro_loss=micro_loss)
    assert (stats.steps, stats.skipped, stats.losses["pg_loss"]) == (1, 0, 0.0)


def test_grpo_config_maps_and_refuses_the_policy_losses():
    from sarl.integrations.trl.recipe import grpo_kwargs

    def kw(*ov):
        return grpo_kwargs(load_config(None, ["model.name=tiny-random", *ov]), num_processes=1)

    k = kw("actor.policy_loss=gspo", "actor.loss_agg_mode=seq-mean-token-mean")
    assert (k["loss_type"], k["importance_sampling_level"], k["delta"]) == ("grpo", "sequence", 3.0)
    k = kw("actor.policy_loss=cispo", "actor.clip_ratio_high=4.0", "actor.mask_truncated=true")
    assert (k["loss_type"], k["epsilon_high"], k["delta"], k["mask_truncated_completions"]) == ("cispo", 5.0, None, True)
    k = kw("actor.policy_loss=sapo", "actor.loss_agg_mode=seq-mean-token-mean", "actor.sapo_temperature_neg=2.0")
    assert (k["loss_type"], k["sapo_temperature_pos"], k["sapo_temperature_neg"]) == ("sapo", 1.0, 2.0)
    with pytest.raises(ConfigError, match=r"actor.loss_agg_mode: TRL's loss_type='sapo' \(actor.policy_loss=sapo\) "
                                          r"aggregates as seq-mean-token-mean; got 'token-mean'"):
        kw("actor.policy_loss=sapo")
    with pytest.raises(ConfigError, match=r"actor.loss_agg_mode: TRL's loss_type='cispo'.*as token-mean"):
        kw("actor.policy_loss=cispo", "actor.loss_agg_mode=seq-mean-token-sum-norm")
    try:  # a loss TRL lacks is refused, naming the key
        POLICY_LOSSES.register("mine", options={"clip_high": "actor.clip_ratio_high"})(
            lambda logp, old_logp, advantages, mask, *, clip_high=0.2: (-advantages * logp, {}))
        with pytest.raises(ConfigError, match=r"actor.policy_loss: TRL's GRPOTrainer has no 'mine' policy loss"):
            kw("actor.policy_loss=mine")
    finally:
        POLICY_LOSSES.remove("mine")


# ------------------------------------------------------------------------------------------ against TRL


def _overrides(tmp_path) -> list[str]:
    return [
        "model.name=tiny-random", "data.train=chain_sum", "data.train_size=16", f"data.max_response_length={L}",
        "data.max_prompt_length=128", f"rollout.n={G}", f"trainer.prompts_per_step={P}", "trainer.tensorboard=false",
        f"trainer.out_dir={tmp_path / 'sarl'}", "algorithm.norm_adv_by_std_in_grpo=false", "actor.use_kl_loss=true",
        f"actor.kl_loss_coef={BETA}", "actor.kl_loss_type=k3", "actor.grad_clip=1e9", "actor.lr=1e-3",
        "actor.weight_decay=0.0", f"actor.micro_batch_size={G * P}", "trainer.precision=fp32",
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """sarl's trainer, the start weights, one batch (lengths CUTS; stop token at the end of each response
    shorter than L), log π_old and log π_ref (perturbed: per-row offsets and per-token noise, so that token
    and sequence ratios leave [0.8, 1.2]) and the grpo advantages."""
    from sarl.algos import ADV_ESTIMATORS
    from sarl.train import Trainer
    from sarl.train import step as stages
    from sarl.train.checkpoint import export_model

    tmp = tmp_path_factory.mktemp("policy_losses")
    tr = Trainer(load_config(None, _overrides(tmp)))
    tr.parts.old_from_update = False  # log π_old comes from the test
    start = export_model(tr.policy, tr.tok, tmp / "start")
    batch = stages.generate(tr.parts, 0)
    eos = tr.tok.eos_token_id
    stop = {eos, tr.tok.pad_token_id}
    responses = []
    for r, k in zip(batch.responses, CUTS):
        r = [t if t not in stop else 5 for t in r[:k]]  # no stop token inside; then one at the end if k < L
        responses.append(r if k == L else r[:-1] + [eos])
    batch = dataclasses.replace(batch, responses=responses, truncated=[k == L for k in CUTS])
    old = stages.old_logprobs(tr.parts, batch)
    true_old = old
    g = torch.Generator().manual_seed(0)
    offsets = torch.tensor([0.3, -0.3, 0.05, -0.25, 0.35, -0.05, 0.25, -0.3])[:, None]
    old = dataclasses.replace(old, logp=(old.logp + offsets + 0.3 * torch.randn(old.logp.shape, generator=g))
                              * old.mask)
    ref = dataclasses.replace(old, logp=(old.logp + 0.2 * torch.randn(old.logp.shape, generator=g)) * old.mask)
    token_rewards = torch.zeros_like(old.mask)
    token_rewards[torch.arange(len(batch)), torch.tensor(CUTS) - 1] = torch.tensor(REWARDS)
    adv, _ = ADV_ESTIMATORS["grpo"](token_rewards, old.mask, group_ids=batch.group_ids, norm_adv_by_std=False)
    # a sampler whose log-probs differ from the trainer's (per-row offsets and per-token noise), so that
    # token and sequence importance weights leave [0.7, 1.5] and [0.5, 2] on both sides
    rows = torch.tensor([0.12, -0.1, 0.02, -0.15, 0.1, -0.02, 0.15, -0.12])[:, None]
    sampler = (true_old.logp - rows - 0.35 * torch.randn(old.logp.shape, generator=g)) * old.mask
    sampled = dataclasses.replace(batch, rollout_logprobs=[sampler[i, :k].tolist() for i, k in enumerate(CUTS)])
    return {"tr": tr, "tmp": tmp, "start": start, "batch": batch, "old": old, "ref": ref, "adv": adv,
            "true_old": true_old, "sampled": sampled}


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


def _sarl(world, cfg, monkeypatch, sampler=False) -> tuple[float, dict[str, torch.Tensor], dict[str, float]]:
    """sarl's loss (policy + BETA KL), gradient and update statistics under ``cfg``; the optimizer does not
    step, so the weights stay at the start for the next call. ``sampler``: the batch carries the sampler's
    log-probs and log π_old is the trainer's own pass (the rollout-correction cases)."""
    from sarl.algos.rollout_correction import sampler_logp_tensor
    from sarl.train import step as stages

    run = copy.copy(world["tr"].parts)
    run.cfg = cfg
    grads: dict[str, torch.Tensor] = {}
    monkeypatch.setattr(run.opt, "step", lambda *a, **k: grads.update(_grads(run.policy)))
    batch, old = (world["sampled"], world["true_old"]) if sampler else (world["batch"], world["old"])
    sampler_logp = sampler_logp_tensor(batch.rollout_logprobs, old.mask)  # as the trainer's step builds it
    stats, _ = stages.update_actor(run, batch, old.mask, old, world["ref"], world["adv"], sampler_logp)
    assert stats.steps == 1 and stats.skipped == 0
    return stats.losses["pg_loss"] + BETA * stats.losses["kl_loss"], grads, stats.stats


def _trl(world, cfg, sampler=False):
    """TRL's loss and gradient on the same rollouts, with the GRPOConfig mapped from ``cfg``. ``sampler``:
    the rollouts come with the sampler's log-probs (``rollout_func``'s ``logprobs``) and TRL takes its vLLM
    path (``use_vllm`` set on the built trainer; no engine is started: ``rollout_func`` generates), where
    it computes log π_old itself and its importance weights from the two."""
    from datasets import Dataset
    from trl import GRPOTrainer

    from sarl.integrations.trl import grpo_config

    batch, old, ref = world["batch"], world["old"], world["ref"]
    if sampler:
        batch, old = world["sampled"], world["true_old"]
    args, _ = grpo_config(cfg, output_dir=str(world["tmp"] / "trl"), report_to="none", disable_tqdm=True)
    rows = [{"prompt": [{"role": "user", "content": "1 + 1"}], "reward": r} for r in REWARDS]

    def rollout_func(prompts, trainer):  # TRL's hook for custom generation: sarl's token ids
        assert len(prompts) == len(batch)
        return {"prompt_ids": batch.contexts, "completion_ids": batch.responses,
                "logprobs": batch.rollout_logprobs if sampler else None}

    trl = GRPOTrainer(model=str(world["start"]), processing_class=world["tr"].tok, args=args,
                      train_dataset=Dataset.from_list(rows), rollout_func=rollout_func,
                      reward_funcs=lambda completions, reward, **kw: list(reward))
    if sampler:
        trl.use_vllm, trl._last_loaded_step = True, trl.state.global_step  # vLLM's path, nothing to sync
    trl.model.train()
    trl.current_gradient_accumulation_steps = trl.args.gradient_accumulation_steps  # one window
    inputs = trl._generate_and_score_completions([dict(r) for r in rows])
    torch.testing.assert_close(inputs["advantages"], world["adv"][:, 0])  # TRL's own Dr.GRPO advantages
    assert inputs["completion_ids"].shape == old.mask.shape
    if "old_per_token_logps" in inputs:  # TRL's own log π_old (vLLM with its correction): the trainer's pass
        torch.testing.assert_close(inputs["old_per_token_logps"] * old.mask, old.logp, atol=1e-5, rtol=0)
    inputs["old_per_token_logps"], inputs["ref_per_token_logps"] = old.logp, ref.logp
    trl.model.zero_grad(set_to_none=True)
    loss = trl._compute_loss(trl.model, inputs)
    loss.backward()
    assert trl.current_gradient_accumulation_steps == 1  # TRL divides by it; sarl's loss is the mini-batch's
    return float(loss.detach()), _grads(trl.model), args, inputs


def _gap(loss, grads, trl_loss, trl_grads) -> dict[str, float]:
    """How far sarl's loss and gradient are from TRL's; ``close`` is test_trl_equivalence's
    ``assert_close(rtol=1e-3, atol=2e-5)``, elementwise."""
    assert set(grads) == set(trl_grads)
    a = torch.cat([grads[k].flatten() for k in sorted(grads)]).double()
    b = torch.cat([trl_grads[k].flatten() for k in sorted(grads)]).double()
    return {"loss_rel": abs(loss - trl_loss) / abs(trl_loss), "grad_max_abs": float((a - b).abs().max()),
            "grad_max": float(b.abs().max()), "grad_rel_norm": float((a - b).norm() / b.norm()),
            "cos": float(torch.nn.functional.cosine_similarity(a, b, dim=0)),
            "close": bool(torch.all((a - b).abs() <= 2e-5 + 1e-3 * b.abs()))}


def _within(gap) -> bool:
    """tests/test_trl_equivalence.py's tolerance."""
    return gap["loss_rel"] < 1e-4 and gap["cos"] > 0.9999 and gap["grad_rel_norm"] < 1e-3 and gap["close"]


CASES = {  # name: (sarl overrides, GRPOConfig fields expected, wrong sarl variant)
    "gspo": (["actor.policy_loss=gspo", "actor.loss_agg_mode=seq-mean-token-mean"],
             {"importance_sampling_level": "sequence", "loss_type": "grpo", "delta": 3.0},
             ["actor.policy_loss=vanilla"]),  # token-level ratio
    "cispo": (["actor.policy_loss=cispo"], {"loss_type": "cispo", "epsilon_high": 1.2, "delta": None},
              ["actor.clip_ratio_high=1000"]),  # weight not capped
    "sapo": (["actor.policy_loss=sapo", "actor.loss_agg_mode=seq-mean-token-mean", "actor.sapo_temperature_pos=2.0",
              "actor.sapo_temperature_neg=5.0"],
             {"loss_type": "sapo", "sapo_temperature_pos": 2.0, "sapo_temperature_neg": 5.0},
             ["actor.sapo_temperature_pos=5.0", "actor.sapo_temperature_neg=2.0"]),  # temperatures swapped
    "mask_truncated": (["actor.mask_truncated=true"], {"loss_type": "dapo", "mask_truncated_completions": True},
                       ["actor.mask_truncated=false"]),
}


_C = "rollout.correction."
CORRECTION_CASES = {  # name: (sarl overrides, GRPOConfig fields expected, wrong sarl variant)
    "token_truncate": ([_C + "mode=token_truncate", _C + "clip_max=1.5", _C + "clip_min=0.7"],
                       {"vllm_importance_sampling_correction": True, "vllm_importance_sampling_mode": "token_truncate",
                        "vllm_importance_sampling_clip_max": 1.5, "vllm_importance_sampling_clip_min": 0.7},
                       [_C + "clip_max=1000", _C + "clip_min=0.0"]),  # weights not truncated
    "token_mask": ([_C + "mode=token_mask", _C + "clip_max=1.5", _C + "clip_min=0.7"],
                   {"vllm_importance_sampling_mode": "token_mask"}, [_C + "mode=token_truncate"]),
    "sequence_truncate": ([_C + "mode=sequence_truncate", _C + "clip_max=2.0", _C + "clip_min=0.5"],
                          {"vllm_importance_sampling_mode": "sequence_truncate"}, [_C + "mode=token_truncate"]),
    "sequence_mask": ([_C + "mode=sequence_mask", _C + "clip_min=0.5", "actor.loss_agg_mode=seq-mean-token-mean"],
                      {"vllm_importance_sampling_mode": "sequence_mask", "vllm_importance_sampling_clip_max": 3.0,
                       "loss_type": "grpo"}, [_C + "mode=sequence_truncate"]),
    "off_policy_mask": ([_C + "off_policy_mask_threshold=0.05"],
                        {"off_policy_mask_threshold": 0.05, "vllm_importance_sampling_correction": False},
                        [_C + "off_policy_mask_threshold=null"]),
}


@pytest.mark.parametrize("case", list(CASES) + list(CORRECTION_CASES))
def test_loss_and_gradient_equal_trl(world, case, monkeypatch, record_property):
    sampler = case in CORRECTION_CASES
    ov, expected, wrong = CORRECTION_CASES[case] if sampler else CASES[case]
    base = _overrides(world["tmp"])
    cfg = load_config(None, base + ov)
    trl_loss, trl_grads, args, inputs = _trl(world, cfg, sampler)
    assert {k: getattr(args, k) for k in expected} == expected
    loss, grads, stats = _sarl(world, cfg, monkeypatch, sampler)
    gap = _gap(loss, grads, trl_loss, trl_grads)
    wrong_gap = _gap(*_sarl(world, load_config(None, base + ov + wrong), monkeypatch, sampler)[:2], trl_loss,
                     trl_grads)
    record_property("gap", gap)
    record_property("wrong_gap", wrong_gap)
    print(f"\n{case}: {gap}\n{case} wrong: {wrong_gap}")
    assert abs(trl_loss) > 1e-4 and gap["grad_max"] > 0
    if case in ("gspo", "cispo"):
        assert stats["clipfrac"] > 0  # the clip (cap) is active on some tokens
    if case == "mask_truncated":  # TRL's own code masked the two truncated completions, and only them
        assert inputs["completion_mask"].sum(-1).tolist() == [0 if k == L else k for k in CUTS]
    if sampler and case != "off_policy_mask":  # TRL's weights: some inside the bounds, some outside
        w = inputs["importance_sampling_ratio"].expand_as(inputs["completion_mask"])[inputs["completion_mask"].bool()]
        lo, hi = args.vllm_importance_sampling_clip_min, args.vllm_importance_sampling_clip_max
        inside = (w > lo) & (w < hi)
        assert inside.any() and not inside.all(), w
    if case == "off_policy_mask":  # some but not all of the negative-advantage responses are dropped
        assert 0 < stats["off_policy_masked"] < 1
    assert _within(gap), gap
    assert not _within(wrong_gap), wrong_gap
