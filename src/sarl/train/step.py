"""The stages of a training step as functions of what they read, each returning what it adds (the
algorithm they implement is stated in :mod:`sarl.train.loop`). No stage changes another stage's output:
a step's data is handed on as return values (:class:`StepData` collects them for the metrics).
The function names are the stage names of :data:`sarl.train.stages.STAGES`, the ``time/<stage>`` keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from sarl.logprobs import AnswerLogprobs
from sarl.rollout.batch import RolloutBatch
from sarl.train.critic import values_head
from sarl.train.setup import Run
from sarl.train.update import UpdateStats, accumulate_update


@dataclass(frozen=True)
class StepData:
    """What the stages of one step produced, for the step's metrics and samples."""

    step: int
    progress: float
    batch: RolloutBatch  # graded
    mask: torch.Tensor  # [N, T] response tokens
    old: AnswerLogprobs  # log π_old as the update used it (from the update's forward when on-policy)
    ref: AnswerLogprobs | None
    rew: Any  # sarl.rewards.RewardOutput
    actor: UpdateStats
    critic: UpdateStats | None
    sampler_logp: torch.Tensor | None = None  # [N, T] the rollout engine's log-probs (sampler_logp_tensor)


def sync_weights(run: Run, synced: int | None) -> int:
    """A rollout engine with its own copy of the weights (vLLM, a bf16 copy, the full copy beside a sharded
    policy) gets the policy's, in memory, when they changed since the version ``synced`` (or the engine
    slept); the plain transformers backend samples with the policy itself. Returns the version the engine
    now holds (optimizer steps so far). Called on every process (gathering a sharded policy is a collective)."""
    version = run.sched.last_epoch  # optimizer steps so far (restored on resume)
    need = synced != version or getattr(run.backend, "asleep", False)
    if run.dist.sharded:  # gathering the shards is a collective: every process or none
        need = not run.dist.all_true(not need)
    if need:
        if run.dist.sharded:
            from sarl.train.sharding import full_named_parameters

            run.backend.sync_weights(full_named_parameters(run.policy))
        else:
            run.backend.sync_weights(run.policy.named_parameters())
    return version


def generate(run: Run, step: int, round_: int = 0, sleep: bool = True) -> RolloutBatch:
    """P prompts drawn from the data stream, n sampled responses each, as one batch of rows. ``round_``:
    the step's generation round (dynamic sampling draws more than one); a prompt's sampling key is
    ``round_ · P`` + its global position, so every round samples its own streams. ``sleep``: let the
    engine free its memory afterwards (the last round)."""
    from sarl.prompts import encode, render_problem_prompt
    from sarl.rollout import GenerationConfig

    cfg, dist = run.cfg, run.dist
    drawn = run.data.take(cfg.trainer.prompts_per_step)  # every process draws the same prompts ...
    problems = dist.shard(drawn)  # ... and keeps its own share; the sampling keys are global positions
    first = dist.rank * len(problems)
    prompts = [encode(run.tok, render_problem_prompt(run.tok, p, instruction=cfg.data.instruction,
                                                     system=cfg.data.system_prompt))[-cfg.data.max_prompt_length:]
               for p in problems]
    gcfg = GenerationConfig(max_new_tokens=cfg.data.max_response_length, temperature=cfg.rollout.temperature,
                            top_p=cfg.rollout.top_p, n=cfg.rollout.n, seed=cfg.trainer.seed * 100_003 + step,
                            batch_size=cfg.rollout.batch_size)
    first += round_ * cfg.trainer.prompts_per_step
    keys = list(range(first, first + len(prompts)))
    with run.autocast():
        outputs = run.backend.generate(prompts, gcfg, keys=keys)
    if sleep:
        run.backend.sleep()  # vLLM on a GPU frees its memory for the update
    return RolloutBatch.from_groups(prompts, outputs, problems)


def old_logprobs(run: Run, batch: RolloutBatch) -> AnswerLogprobs | None:
    """log π_old with per-token entropy (and self-certainty when a reward needs it); ``None`` when the
    update supplies log π_old itself (``run.old_from_update``)."""
    if run.old_from_update:
        return None
    stats = ("entropy",) + (("self_certainty",) if "self_certainty" in run.needs else ())
    return run.logprobs(run.policy, batch.contexts, batch.responses, stats=stats)


def ref_logprobs(run: Run, batch: RolloutBatch) -> AnswerLogprobs:
    """log π_ref of the frozen initial policy."""
    return run.logprobs(run.ref, batch.contexts, batch.responses)


def grade(batch: RolloutBatch) -> RolloutBatch:
    """The batch with ``correct`` filled in: each response graded once against its problem's gold answer."""
    from sarl.grading import grade_all

    return dataclasses.replace(batch, correct=grade_all(batch.texts, batch.golds, problems=batch.problems))


def null_logprobs(run: Run, batch: RolloutBatch, old: AnswerLogprobs | None, mask: torch.Tensor):
    """The reward inputs: ppl(a|q) from the old-policy pass, and the null-context pass only when a reward
    needs it (:func:`sarl.reward_inputs.reward_inputs`)."""
    from sarl.reward_inputs import reward_inputs

    with run.autocast():
        return reward_inputs(run.policy, batch, run.needs, null_ids=run.null_ids, pad_token_id=run.tok.pad_token_id,
                             temperature=run.cfg.rollout.temperature, logp_qa=None if old is None else old.logp,
                             response_mask=mask, token_self_certainty=None if old is None else old.stats.get("self_certainty"),
                             max_response_length=run.cfg.data.max_response_length,
                             max_batch_tokens=run.cfg.actor.max_tokens_per_forward, lockstep=run.dist.sharded)


def rewards(run: Run, inputs, mask: torch.Tensor, old: AnswerLogprobs | None, ref: AnswerLogprobs | None,
            progress: float):
    """Compose the rewards and place each total on its response's last token (minus the in-reward KL on
    every token when ``use_kl_in_reward``). Returns ``(RewardOutput, token_rewards [N, T])``."""
    from sarl.algos import kl_penalty

    rew = run.composer(inputs, progress=progress)
    lengths = inputs.lengths
    token_rewards = torch.zeros_like(mask)
    last = (lengths.long() - 1).clamp(min=0)
    has = lengths > 0
    token_rewards[has, last[has]] = rew.total[has]
    a = run.cfg.algorithm
    if a.use_kl_in_reward:
        token_rewards = token_rewards - a.kl_coef * kl_penalty(old.logp, ref.logp, a.kl_penalty) * mask
    return rew, token_rewards


def values(run: Run, batch: RolloutBatch, mask: torch.Tensor) -> torch.Tensor:
    """V(s_t) from the critic (estimators that declare ``values``)."""
    from sarl.logprobs import answer_forward

    run.critic.eval()
    with run.autocast():
        vals, _ = answer_forward(run.critic, batch.contexts, batch.responses, values_head, ("values",),
                                 pad_token_id=run.tok.pad_token_id)
    return vals["values"] * mask


def advantages(run: Run, batch: RolloutBatch, rew, token_rewards, mask, vals, progress: float):
    """The configured estimator, given what its registry entry declares it needs. Returns
    ``(advantages, returns)``, each ``[N, T]``."""
    from sarl.algos import estimator_kwargs

    kwargs = estimator_kwargs(run.estimator, run.cfg)
    needs = run.estimator_needs
    if "groups" in needs:
        kwargs["group_ids"] = batch.group_ids
    if "values" in needs:
        kwargs["values"] = vals
    if "reward_components" in needs:
        kwargs["components"] = dict(rew.components)
        kwargs["weights"] = run.composer.scheduled_weights(progress)
    from sarl.algos import ADV_ESTIMATORS

    return ADV_ESTIMATORS[run.estimator](token_rewards, mask, **kwargs)


def _update(run: Run, model, opt, sched, mask, grad_clip, micro_loss) -> UpdateStats:
    ac = run.cfg.actor
    model.train()
    stats = accumulate_update(model, opt, sched, mask=mask, mini_batch=run.mini, micro_batch=ac.micro_batch_size,
                              epochs=ac.ppo_epochs, grad_clip=grad_clip, micro_loss=micro_loss, dist=run.dist)
    model.eval()
    return stats


def update_critic(run: Run, batch: RolloutBatch, mask, vals, returns) -> UpdateStats:
    """Clipped value loss, aggregated like the actor loss."""
    from sarl.algos import value_loss
    from sarl.logprobs import answer_forward

    cfg = run.cfg

    def micro_loss(rows, norm):
        ctx, resp = batch.rows(rows)
        with run.autocast():
            out, mmask = answer_forward(run.critic, ctx, resp, values_head, ("values",),
                                        pad_token_id=run.tok.pad_token_id, grad=True)
        T = mmask.shape[1]
        vl, vm = value_loss(out["values"], vals[rows, :T], returns[rows, :T], mmask,
                            clip_range=cfg.critic.cliprange_value, loss_agg_mode=cfg.actor.loss_agg_mode,
                            norm_length=cfg.data.max_response_length, **norm)
        return vl, {"loss": float(vl.detach())}, {"clipfrac": float(vm["clipfrac"])}

    return _update(run, run.critic, run.copt, run.csched, mask, cfg.critic.grad_clip, micro_loss)


def loss_mask(batch: RolloutBatch, mask: torch.Tensor, mask_truncated: bool) -> torch.Tensor:
    """The actor loss's mask ``[N, T]``: ``mask``, with the rows of truncated responses (cut at the length
    limit without a stop token) set to 0 when ``mask_truncated`` (TRL's ``mask_truncated_completions``)."""
    if not mask_truncated:
        return mask
    if batch.truncated is None:
        raise ValueError("actor.mask_truncated: this rollout batch does not say which responses were truncated")
    keep = 1.0 - torch.tensor(batch.truncated, dtype=mask.dtype, device=mask.device)
    return mask * keep[:, None]


def update_actor(run: Run, batch: RolloutBatch, mask, old: AnswerLogprobs | None, ref: AnswerLogprobs | None,
                 adv, sampler_logp: torch.Tensor | None = None) -> tuple[UpdateStats, AnswerLogprobs]:
    """``actor.policy_loss`` (:mod:`sarl.algos.policy_losses`), + KL loss, − entropy bonus, per micro-batch,
    over the loss mask (:func:`loss_mask`: truncated responses left out with ``actor.mask_truncated``);
    the policy term weighted per token by ``rollout.correction`` (:func:`correction`, from ``sampler_logp``,
    the batch's :func:`~sarl.algos.rollout_correction.sampler_logp_tensor`, or None when the rollout engine
    reported no log-probs). Returns the update's statistics and log π_old as the loss used it: ``old`` itself, or, when it is
    ``None`` (on-policy, the update supplies it), each row's log π and entropy from its one forward here,
    before the only optimizer step."""
    from sarl.algos import aggregate_loss, kl_penalty, policy_loss, policy_loss_kwargs

    cfg, ac = run.cfg, run.cfg.actor
    agg = {"loss_agg_mode": ac.loss_agg_mode, "norm_length": cfg.data.max_response_length}
    pl = {"loss": ac.policy_loss, **policy_loss_kwargs(ac.policy_loss, cfg)}
    lmask = loss_mask(batch, mask, ac.mask_truncated)
    weigh = correction(run, sampler_logp)
    on_policy = old is None
    want = ("entropy",) if ac.entropy_coeff or on_policy else ()
    if on_policy:  # filled row by row below: π_old = π, ratio 1, gradient -A ∇log π
        old = AnswerLogprobs(logp=torch.zeros_like(mask), mask=mask, stats={"entropy": torch.zeros_like(mask)})

    def micro_loss(rows, norm):
        ctx, resp = batch.rows(rows)
        new = run.logprobs(run.policy, ctx, resp, stats=want, grad=True)
        T = new.mask.shape[1]
        m = new.mask * lmask[rows, :T]
        if on_policy:
            old.logp[rows, :T] = new.logp.detach()
            old.stats["entropy"][rows, :T] = new.stats["entropy"].detach()
        weights, extra = weigh(rows, new.logp, old.logp[rows, :T], adv[rows, :T], new.mask)
        loss, pm = policy_loss(new.logp, old.logp[rows, :T], adv[rows, :T], m, token_weights=weights, **pl, **norm,
                               **agg)
        parts = {"pg_loss": float(loss.detach())}
        if ac.use_kl_loss:
            kl_loss = aggregate_loss(kl_penalty(new.logp, ref.logp[rows, :T], ac.kl_loss_type), m,
                                     ac.loss_agg_mode, cfg.data.max_response_length, **norm)
            loss = loss + ac.kl_loss_coef * kl_loss
            parts["kl_loss"] = float(kl_loss.detach())
        if ac.entropy_coeff:
            loss = loss - ac.entropy_coeff * aggregate_loss(new.stats["entropy"], m, ac.loss_agg_mode,
                                                            cfg.data.max_response_length, **norm)
        return loss, parts, {"clipfrac": float(pm["clipfrac"]), **extra}

    return _update(run, run.policy, run.opt, run.sched, lmask, ac.grad_clip, micro_loss), old


def correction(run: Run, sampler: torch.Tensor | None):
    """``rollout.correction`` for :func:`update_actor`: a function of one micro-batch
    ``(rows, logp, old_logp, adv, mask) -> (token weights or None, stats)``: the importance weights of
    ``mode`` (π_old / π_sampler, from the sampler's log-probs ``[N, T]``) times the off-policy sequence mask
    (with π_old as the sampler when the batch has no sampler log-probs), :mod:`sarl.algos.rollout_correction`;
    ``stats``: ``off_policy_masked``, the share of the micro-batch's tokens the mask drops."""
    from sarl.algos.rollout_correction import correction_weights, off_policy_mask

    c = run.cfg.rollout.correction
    threshold = c.off_policy_mask_threshold
    if c.mode != "none" and sampler is None:
        raise ValueError(f"rollout.correction.mode={c.mode}: the rollout engine ({run.backend.name}) reported no "
                         "log-probs for this batch")

    def weigh(rows, logp, old_logp, adv, m):
        T = logp.shape[1]
        if c.mode == "none" and threshold is None:
            return None, {}
        w = torch.ones_like(logp)
        if c.mode != "none":
            w = correction_weights(old_logp, sampler[rows, :T], m, c.mode, clip_min=c.clip_min, clip_max=c.clip_max)[0]
        if threshold is None:
            return w, {}
        keep = off_policy_mask(adv, logp, old_logp if sampler is None else sampler[rows, :T], m, threshold)
        return w * keep, {"off_policy_masked": float(((1 - keep) * m).sum() / m.sum().clamp(min=1))}

    return weigh


def _mean(t: torch.Tensor | None) -> float | None:
    return None if t is None or t.numel() == 0 else float(t.float().mean())


def step_metrics(run: Run, d: StepData, seconds: dict[str, float]) -> dict[str, Any]:
    """The logged metrics of a step (this process's; the caller averages over processes); losses are
    means per optimizer step."""
    from sarl.algos import kl_penalty, masked_mean
    from sarl.data.synthetic import style_shares
    from sarl.train.rollout import logprob_gap
    from sarl.train.stages import peak_memory_gb

    b, mask, actor = d.batch, d.mask, d.actor
    metrics: dict[str, Any] = {}
    if d.critic is not None:
        metrics["critic/loss"] = d.critic.losses.get("loss")
        metrics["critic/clipfrac"] = d.critic.stats.get("clipfrac", 0.0)
    metrics.update({
        "step": d.step,
        "progress": d.progress,
        "reward/mean": _mean(d.rew.total),
        "reward/alpha": d.rew.alpha,
        **{f"reward/{k}": _mean(v) for k, v in d.rew.components.items()},
        "accuracy": _mean(b.correct),
        "response_length/mean": _mean(b.lengths),
        "response_length/truncated": sum(b.truncated) / len(b.truncated),
        "actor/pg_loss": actor.losses.get("pg_loss", 0.0),
        "actor/kl_loss": actor.losses.get("kl_loss", 0.0) if run.cfg.actor.use_kl_loss else None,
        "actor/entropy": float(masked_mean(d.old.stats["entropy"], mask)),
        "actor/clipfrac": actor.stats.get("clipfrac", 0.0),
        "actor/grad_norm": actor.grad_norm,
        "actor/lr": run.sched.get_last_lr()[0],
        "actor/skipped_updates": actor.skipped,
        # KL(pi_old || pi_ref) with the estimator the recipe uses (the loss's, else the reward's)
        "kl/ref": None if d.ref is None else float(masked_mean(kl_penalty(d.old.logp, d.ref.logp, run.kl_estimator), mask)),
        "kl/estimator": None if d.ref is None else run.kl_estimator,
        **{f"time/{k}": v for k, v in seconds.items()},
        "time/step": sum(seconds.values()),
        "perf/max_memory_gb": peak_memory_gb(run.device),  # averaged over processes
    })
    styles = answer_styles(b)  # labelled once, for the style shares and the per-style advantages
    if styles is not None:
        metrics.update({f"style/{k}": v for k, v in style_shares(styles).items()})
    metrics.update(logprob_gap(d.sampler_logp, d.old.logp, mask))
    metrics.update(correction_metrics(run, d.sampler_logp, d.old.logp, mask, actor))
    metrics.update(reward_diagnostics(b, d.rew.components, run.composer.scheduled_weights(d.progress), styles))
    return metrics


def correction_metrics(run: Run, sampler: torch.Tensor | None, old_logp: torch.Tensor, mask: torch.Tensor,
                       actor: UpdateStats) -> dict[str, float]:
    """``rollout/is_ratio_min`` / ``_mean`` / ``_max`` and ``rollout/is_out_of_bounds`` of the rollout
    correction's weights over the step's batch (TRL's ``sampling/importance_sampling_ratio/*``), and
    ``actor/off_policy_masked``; empty when ``rollout.correction`` is off."""
    from sarl.algos.rollout_correction import correction_weights

    c = run.cfg.rollout.correction
    out: dict[str, float] = {}
    if c.mode != "none" and sampler is not None:
        _, stats = correction_weights(old_logp, sampler, mask, c.mode, clip_min=c.clip_min, clip_max=c.clip_max)
        out.update({f"rollout/{k}": v for k, v in stats.items()})
    if c.off_policy_mask_threshold is not None:
        out["actor/off_policy_masked"] = actor.stats.get("off_policy_masked", 0.0)
    return out


def answer_styles(batch: RolloutBatch) -> list[str] | None:
    """Each answer's style (:func:`sarl.data.synthetic.answer_labels`), or None unless every answer is to a
    synthetic problem (the condition of the trainer's ``style/<name>`` metrics)."""
    from sarl.data.synthetic import answer_labels

    labels = [answer_labels(p, t) if p is not None else {} for p, t in zip(batch.problems or [], batch.texts)]
    return [lab["style"] for lab in labels] if labels and all(labels) else None


def reward_diagnostics(batch: RolloutBatch, components, weights, styles: list[str] | None = None) -> dict[str, float]:
    """``adv/share/<reward>`` (each reward's share of the group-centred advantage), ``groups/all_correct``
    and ``groups/all_wrong``, and, where every answer has a style label, ``adv/style/<style>/<reward>``
    (the advantage mass each reward puts on that style): :mod:`sarl.algos.diagnostics`. ``styles``: the
    answers' styles when :func:`answer_styles` was already called, else labelled here."""
    from sarl.algos.diagnostics import advantage_shares, group_outcomes, style_advantages
    from sarl.data.synthetic import OTHER, STYLES

    out = {f"adv/share/{k}": v for k, v in advantage_shares(components, weights, batch.group_ids).items()}
    out.update({f"groups/{k}": v for k, v in group_outcomes(batch.correct, batch.group_ids).items()})
    styles = answer_styles(batch) if styles is None else styles
    if styles is not None:
        by_style = style_advantages(components, weights, batch.group_ids, styles, (*STYLES, OTHER))
        out.update({f"adv/style/{s}/{k}": v for s, row in by_style.items() for k, v in row.items()})
    return out
