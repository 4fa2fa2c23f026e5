"""An independent check of sarl's RL update: on the same weights and the same rollouts, the Dr.GRPO
loss and gradient of ``sarl train`` (``Trainer.update_actor``: clipped ratio objective + 0.001 k3 KL,
``seq-mean-token-sum-norm``) equal those of TRL's ``GRPOTrainer._compute_loss`` with
``loss_type="dr_grpo"``, ``scale_rewards="none"``, ``beta=0.001`` (TRL's KL is k3;
``use_bias_correction_kl=False``, since TRL 1.16 weights it by the importance ratio by default) and the
same maximum length. The documented constant: TRL divides the loss by ``gradient_accumulation_steps`` (1 here),
sarl's loss is already the mean over the mini-batch. The advantages are compared too: TRL's Dr.GRPO
advantage ``r - mean_group(r)`` against sarl's ``grpo`` with ``norm_adv_by_std=False``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("trl")

import torch

from sarl.config import load_config
from sarl.prompts import DEFAULT_SYSTEM_PROMPT
from sarl.train import step as stages

G, P, L = 4, 2, 12  # rollouts per prompt, prompts, max response length
BETA = 0.001


def _overrides(tmp_path, micro: int = G) -> list[str]:
    return [
        "model.name=tiny-random", "data.train=chain_sum", "data.train_size=16", f"data.max_response_length={L}",
        "data.max_prompt_length=128", f"rollout.n={G}", f"trainer.prompts_per_step={P}", "trainer.tensorboard=false",
        f"trainer.out_dir={tmp_path / 'sarl'}", "algorithm.norm_adv_by_std_in_grpo=false",
        "actor.loss_agg_mode=seq-mean-token-sum-norm", "actor.use_kl_loss=true", f"actor.kl_loss_coef={BETA}",
        "actor.kl_loss_type=k3", "actor.clip_ratio_c=null", "actor.grad_clip=1e9", "actor.lr=1e-3",
        "actor.weight_decay=0.0", f"actor.micro_batch_size={micro}", "trainer.precision=fp32",
    ]


def _sarl_trainer(tmp_path):
    from sarl.train import Trainer

    return Trainer(load_config(None, _overrides(tmp_path)))


def _trl_trainer(tmp_path, model_dir, tok, mapped: bool = False):
    """TRL's trainer with a hand-written GRPOConfig, or (``mapped``) the one :func:`grpo_config` builds from
    the same sarl settings (micro-batch = the whole batch, so that one ``_compute_loss`` is one window;
    sarl's accumulation over micro-batches is exact, so this changes nothing on sarl's side)."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from sarl.integrations.trl import grpo_config

    ds = Dataset.from_list([{"prompt": [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT},
                                        {"role": "user", "content": "1 + 1"}], "answer": "2"}] * 8)
    if mapped:
        args, _ = grpo_config(load_config(None, _overrides(tmp_path, micro=G * P)), output_dir=str(tmp_path / "trl"),
                              report_to="none", disable_tqdm=True)
        assert (args.loss_type, args.scale_rewards, args.beta, args.num_generations) == ("dr_grpo", "none", BETA, G)
        assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (G * P, 1)
        assert (args.max_completion_length, args.learning_rate, args.delta) == (L, 1e-3, None)
        assert (args.importance_sampling_level, args.use_bias_correction_kl) == ("token", False)
        return GRPOTrainer(model=str(model_dir), processing_class=tok, args=args, train_dataset=ds,
                           reward_funcs=lambda completions, **kw: [0.0] * len(completions))
    args = GRPOConfig(output_dir=str(tmp_path / "trl"), per_device_train_batch_size=G * P, num_generations=G,
                      max_completion_length=L, loss_type="dr_grpo", scale_rewards="none", beta=BETA,
                      learning_rate=1e-3, bf16=False, use_cpu=True, report_to="none", save_strategy="no",
                      disable_tqdm=True, seed=0, gradient_accumulation_steps=1, use_bias_correction_kl=False)
    # from a folder: TRL loads the policy and, with beta > 0, its reference model from the same path
    return GRPOTrainer(model=str(model_dir), processing_class=tok, args=args, train_dataset=ds,
                       reward_funcs=lambda completions, **kw: [0.0] * len(completions))


def _grads(model) -> dict[str, torch.Tensor]:
    return {k: p.grad.detach().clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("mapped", [False, True], ids=["hand-written GRPOConfig", "grpo_config"])
def test_dr_grpo_loss_gradient_and_advantages_equal_trl(tmp_path, mapped):
    from sarl.algos import ADV_ESTIMATORS
    from sarl.train.checkpoint import export_model

    tr = _sarl_trainer(tmp_path)
    # the test calls the update twice on one batch (a second PPO epoch, off-policy), so log π_old must
    # come from the separate pass, not from the update's own forward
    tr.parts.old_from_update = False
    start = export_model(tr.policy, tr.tok, tmp_path / "start")  # the weights both updates start from
    batch = stages.generate(tr.parts, 0)  # real rollouts of the tiny policy (P prompts x G responses)
    assert len(batch) == G * P
    # the random tiny model never stops before L tokens; cut the responses to different lengths so that
    # the loss normalisation matters (with equal lengths token-mean and Dr.GRPO's sum / (L N) coincide)
    cuts = [3, 12, 7, 5, 12, 2, 9, 6]
    batch.responses = [r[:k] for r, k in zip(batch.responses, cuts)]
    assert sorted(len(r) for r in batch.responses) == sorted(cuts)
    old = stages.old_logprobs(tr.parts, batch)
    ref = stages.ref_logprobs(tr.parts, batch)
    rewards = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # one sequence reward per rollout
    token_rewards = torch.zeros_like(old.mask)
    token_rewards[torch.arange(len(batch)), (batch.lengths.long() - 1).clamp(min=0)] = rewards
    adv, _ = ADV_ESTIMATORS["grpo"](token_rewards, old.mask, group_ids=batch.group_ids, norm_adv_by_std=False)

    # TRL's Dr.GRPO advantage (scale_rewards="none"): r - mean over the G completions of a prompt
    trl_adv = rewards - rewards.view(P, G).mean(dim=1).repeat_interleave(G)
    torch.testing.assert_close(adv[:, 0], trl_adv)

    # One real update first, so that the compared step is off-policy (ratio != 1, clipping active) and
    # the policy differs from the reference (the KL term and its gradient are not 0).
    stages.update_actor(tr.parts, batch, old.mask, old, ref, adv)
    moved = export_model(tr.policy, tr.tok, tmp_path / "moved")

    # sarl: the second pass over the same rollouts (a second PPO epoch); capture its gradient
    grads: dict[str, torch.Tensor] = {}
    step = tr.parts.opt.step

    def capture(*a, **k):
        grads.update(_grads(tr.policy))
        return step(*a, **k)

    tr.parts.opt.step = capture
    stats, _ = stages.update_actor(tr.parts, batch, old.mask, old, ref, adv)
    assert stats.steps == 1 and stats.skipped == 0
    sarl_loss = stats.losses["pg_loss"] + BETA * stats.losses["kl_loss"]
    assert stats.losses["kl_loss"] > 0 and stats.stats["clipfrac"] > 0

    # TRL: policy and reference loaded from the start; the policy then gets the moved weights
    from safetensors.torch import load_file

    trl = _trl_trainer(tmp_path, start, tr.tok, mapped)
    moved_sd = {k: v for f in sorted(moved.glob("*.safetensors")) for k, v in load_file(str(f)).items()}
    missing, unexpected = trl.model.load_state_dict(moved_sd, strict=False)
    assert not unexpected and all("lm_head" in k for k in missing)  # tied embeddings
    pad = tr.tok.pad_token_id
    width = max(len(c) for c in batch.contexts)
    prompt_ids = torch.full((len(batch), width), pad)
    prompt_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, c in enumerate(batch.contexts):  # TRL left-pads prompts ...
        prompt_ids[i, width - len(c):] = torch.tensor(c)
        prompt_mask[i, width - len(c):] = 1
    t_max = old.mask.shape[1]
    completion_ids = torch.full((len(batch), t_max), pad)
    for i, r in enumerate(batch.responses):  # ... and right-pads completions
        completion_ids[i, : len(r)] = torch.tensor(r)
    inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
              "completion_mask": old.mask.long(), "advantages": trl_adv}
    with torch.no_grad():  # old and reference log-probs from TRL's own routine on the start weights
        ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attn = torch.cat([prompt_mask, old.mask.long()], dim=1)
        start_logps = trl._get_per_token_logps_and_entropies(trl.ref_model, ids, attn, t_max)[0]
    inputs["ref_per_token_logps"] = inputs["old_per_token_logps"] = start_logps
    trl.model.train()
    # set by transformers' training loop for each accumulation window; one window here
    trl.current_gradient_accumulation_steps = trl.args.gradient_accumulation_steps
    trl.model.zero_grad(set_to_none=True)
    trl_loss = trl._compute_loss(trl.model, inputs)
    trl_loss.backward()
    trl_grads = _grads(trl.model)

    assert trl.current_gradient_accumulation_steps == 1  # TRL's loss is divided by it; sarl's is not
    assert abs(float(trl_loss)) > 1e-4
    assert sarl_loss == pytest.approx(float(trl_loss), rel=1e-4)
    assert set(grads) == set(trl_grads)
    flat = torch.cat([g.flatten() for g in grads.values()])
    trl_flat = torch.cat([trl_grads[k].flatten() for k in grads])
    assert flat.abs().max() > 0
    # Same direction and size. TRL's position ids ignore the left padding (RoPE is shift-invariant) and
    # its batch layout differs, so the two forwards agree up to float rounding, not bit for bit: measured
    # |g_sarl - g_trl|_max 3e-8 against |g|_max 0.026, relative norm of the difference 1e-6 (1.7e-4 with
    # TRL's default use_bias_correction_kl=True, which weights its KL term by the importance ratio).
    cos = torch.nn.functional.cosine_similarity(flat, trl_flat, dim=0)
    assert float(cos) > 0.9999
    assert float((flat - trl_flat).norm() / trl_flat.norm()) < 1e-3
    torch.testing.assert_close(flat, trl_flat, rtol=1e-3, atol=2e-5)
