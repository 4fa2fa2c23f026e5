"""The training loop: one controller with named stages (the names in the code, :mod:`sarl.train.step`'s
functions, are the names in the logs and timings); each stage returns what it adds.

Algorithm (``train(cfg)``), per step s = 1..S with progress x = s / S:

0. ``sync_weights``: an engine with its own copy of the weights (``rollout.backend=vllm``, the bf16 rollout
   copy, the full copy beside a sharded policy) gets the policy's in memory when they changed; nothing
   when ``hf`` samples with the policy itself.
1. ``generate``: P = ``trainer.prompts_per_step`` prompts (system prompt + question + instruction,
   chat template, cut from the left to ``data.max_prompt_length``), n = ``rollout.n`` responses each,
   sampled at ``rollout.temperature`` / ``top_p`` up to ``data.max_response_length`` tokens. The stop
   token is part of the response (and of its length and mask), as in the reference. With
   ``algorithm.filter_groups.enable`` (DAPO's dynamic sampling, :mod:`sarl.train.filter_groups`): in
   rounds of P prompts, graded, keeping the groups whose metric (correctness or R) is not equal on every
   response, until P such groups are found; logged as ``filter/gen_rounds``, ``filter/kept_groups``,
   ``filter/dropped_groups``, ``filter/surplus_groups``.
2. ``old_logprobs``: log π_old(a_t | q, a_<t) with logits / temperature (no grad). ppl(a|q) for SAR is
   computed from these (no extra pass), with per-token entropy for logging. When the update is on-policy
   (``ppo_epochs`` 1 and one mini-batch: one optimizer step per batch, ratio 1) and nothing before the
   update reads log π_old (no reward on the policy's log-probs, no KL in the reward), this pass is
   skipped: log π_old = log π.detach() from the update's own forward (verl's ``on_policy`` case), and
   the logged entropy comes from that forward too. A SAR run keeps the pass: it *is* the ppl(a|q) pass,
   and the reward it feeds must exist before the advantages that the update's loss needs.
3. ``ref_logprobs``: the frozen initial policy, only if ``actor.use_kl_loss`` or
   ``algorithm.use_kl_in_reward``.
3b. ``grade``: each response graded once against its problem's gold answer (before the reward inputs).
4. ``null_logprobs``: the reward inputs; log π_old(a_t | ∅, a_<t) after the null prompt (same system prompt, empty user
   turn), only if a chosen reward needs it (SAR with ``use_comparison``). The null prompt is used at its
   real length (~33 tokens on the default model), not padded to ``max_prompt_length``.
5. ``rewards``: R = w_correctness · correct + α(x) · Σ_k w_k r_k (:class:`sarl.rewards.RewardComposer`,
   α from ``rewards.schedule``), one scalar per response placed on its last token. With
   ``use_kl_in_reward``: r_t -= ``kl_coef`` · KL_t(π_old ‖ π_ref) on every token.
6. ``values`` (PPO): V(s_t) from the critic (policy's base model + zero-initialised value head).
7. ``advantages``: ``algorithm.adv_estimator`` — ``grpo``: A = R − mean_group(R), divided by
   (std_group(R, ddof=1) + 1e-6) only if ``norm_adv_by_std_in_grpo`` (off = Dr.GRPO, the reference's
   setting); ``gae``: γ, λ GAE, returns = A + V, A whitened over the batch's response tokens
   (var ddof=1, eps 1e-8); ``rloo``: leave-one-out mean baseline; ``reinforce_plus_plus``: discounted
   returns whitened over the batch; ``grpo_weighted`` (``advantage_weighting_in_grpo``): each reward
   component group-normalised separately, then weighted with ``w_k · α(x)`` (α only on scheduled
   rewards) and summed; with ``algorithm.reward_aggregation=normalize_then_sum`` (GDPO, std on) that sum
   is then whitened over the batch (ddof 1, eps 1e-4), as TRL's ``normalize_then_sum``. Broadcast to every
   response token. The loop passes each estimator what its
   registry entry declares it needs (groups, critic values, reward components).
8. ``update_critic`` (PPO): 0.5 · max((V − R)², (clip(V, V_old ± cliprange_value) − R)²), aggregated
   like the actor loss.
9. ``update_actor``: ``ppo_epochs`` passes; mini-batches of ``actor.mini_batch_size`` sequences, each
   one AdamW step (grad-norm clip ``grad_clip``; a non-finite norm skips the step); micro-batches of
   ``micro_batch_size`` accumulate gradients with the mini-batch's global normaliser, so the gradient
   equals one big batch's (:func:`sarl.train.update.accumulate_update`, shared with the critic). Loss per
   token, with r = exp(log π − log π_old): ``actor.policy_loss`` (:mod:`sarl.algos.policy_losses`), by
   default ``vanilla``, the clipped ratio objective max(−A r, −A clip(r, 1 − clip_ratio_low,
   1 + clip_ratio_high)) (dual clip at clip_ratio_c for A < 0); ``gspo`` clips the sequence ratio
   exp(mean_t log r) instead, ``cispo`` is −sg(min(r, 1 + clip_ratio_high)) A log π, ``sapo`` is
   −A (4/τ) σ(τ (r − 1)); plus ``kl_loss_coef`` · KL_t(π ‖ π_ref) (``kl_loss_type``, default k3) if
   ``use_kl_loss``; minus ``entropy_coeff`` · H_t. Aggregated by ``actor.loss_agg_mode``
   (``seq-mean-token-sum-norm`` divides by ``data.max_response_length``, Dr.GRPO) over the response
   tokens, less the truncated responses' (cut at the length limit without a stop token) with
   ``actor.mask_truncated``.
10. ``validate`` (greedy, correctness only, on ``data.val``) and ``checkpoint``.

Logged with each step besides the losses: each reward's share of the group-centred advantage, the
fractions of all-correct and all-wrong groups, and on the synthetic tasks the advantage mass per answer
style and reward (:mod:`sarl.algos.diagnostics`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from sarl.algos.rollout_correction import sampler_logp_tensor
from sarl.config import TrainConfig, to_dict
from sarl.errors import MissingInputError, SarlError
from sarl.run_folder import RunFolder, sample_rows
from sarl.train import step as stages
from sarl.train.checkpoint import TrainingState, export_model, latest_checkpoint
from sarl.train.filter_groups import generate_filtered
from sarl.train.loggers import run_loggers
from sarl.train.setup import Run, build_run
from sarl.train.stages import StageTimer
from sarl.train.update import UpdateStats


class TrainingAborted(SarlError, RuntimeError):
    pass


class Trainer:
    """One run: its folder, its built parts (:class:`sarl.train.setup.Run`) and its
    :class:`~sarl.train.checkpoint.TrainingState`; :meth:`run` executes the loop above."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, console=None):
        from sarl.train.distributed import init_distributed, launched_rank, launcher_strategy

        self.cfg, self.console = cfg, console
        self.out = Path(cfg.trainer.out_dir)
        strategy, note = launcher_strategy(cfg.trainer.strategy)  # recorded in run.yaml, the config stays
        self.folder = RunFolder(self.out, main=launched_rank() == 0)
        # refusals come before any slow work
        self.folder.check(to_dict(cfg), resume=resume, facts={"engine": "native", "strategy": strategy})
        self.dist, device = init_distributed(cfg.model.device)
        if note:
            self._log(note)
        self.parts: Run = build_run(cfg, self.dist, device, strategy, self._log)
        p = self.parts
        self.state = TrainingState(policy=p.policy, optimizer=p.opt, scheduler=p.sched, data=p.data,
                                   critic=p.critic, critic_optimizer=p.copt, critic_scheduler=p.csched,
                                   sharded=self.dist.sharded)
        self._synced: int | None = None  # the optimizer step whose weights the rollout engine holds
        if resume:
            self._resume()
        self.folder.open(to_dict(cfg), facts={"engine": "native", "strategy": strategy, "precision": p.precision,
                                              "processes": self.dist.world},
                         loggers=run_loggers(cfg.trainer))
        self.dist.barrier()

    @property
    def step(self) -> int:
        return self.state.step

    @property
    def policy(self):
        return self.parts.policy

    @property
    def tok(self):
        return self.parts.tok

    # ------------------------------------------------------------------------------- checkpoints
    def _resume(self) -> None:
        """Restore the newest intact checkpoint: rank 0 checks them newest first against their
        ``complete.json`` (:func:`~sarl.train.checkpoint.latest_good_checkpoint`), sets the damaged ones
        aside as ``step_N.damaged`` and says so, and every process loads the one rank 0 chose."""
        from sarl.train.checkpoint import latest_good_checkpoint, no_intact_checkpoint, set_aside_damaged

        root = self.out / "checkpoints"
        if latest_checkpoint(root) is None:
            raise MissingInputError(f"--resume: no complete checkpoint under {root}")
        ckpt, damaged = latest_good_checkpoint(root) if self.dist.main else (None, [])
        chosen = (int(ckpt.name.split("_")[1]) if ckpt else -1) if self.dist.main else 0
        step = int(self.dist.sum_values({"step": chosen})["step"])  # rank 0's choice (-1: none), on every process
        if step < 0:
            raise no_intact_checkpoint(root, damaged)
        # rank 0's list: kept for inspection, out of the keep_last count
        set_aside_damaged(damaged, f"step_{step}", lambda m: self._log(f"[yellow]{m}[/yellow]"))
        ckpt = root / f"step_{step}"
        self.state.restore(ckpt)
        self.dist.barrier()  # every process has read the checkpoint before rank 0 truncates the logs
        self.folder.truncate(self.state.step)
        self._log(f"resumed from {ckpt} (step {self.state.step})")

    def save(self) -> Path | None:
        """Checkpoint the step (every process; rank 0 writes and returns the folder, the others ``None``)."""
        return self.state.save(self.out / "checkpoints", tokenizer=self.parts.tok,
                               config_yaml=yaml.safe_dump(to_dict(self.cfg), sort_keys=False),
                               keep_last=self.cfg.trainer.keep_last, main=self.dist.main)

    def export(self) -> Path:
        """The final policy as a plain HF folder that ``sarl eval`` and transformers load; called on every
        process, written by rank 0."""
        weights = None
        if self.dist.sharded:  # gathered on every process (a collective), written by rank 0
            from sarl.train.sharding import full_state_dict

            weights = full_state_dict(self.parts.policy)
        dest = self.out / "final"
        return export_model(self.parts.policy, self.parts.tok, dest, state_dict=weights) if self.dist.main else dest

    def _log(self, msg: str) -> None:
        if self.console is not None and getattr(self, "dist", None) is not None and self.dist.main:
            self.console.print(msg)

    # ------------------------------------------------------------------------------------ a step
    def train_step(self) -> dict[str, Any]:
        """One step: the stages of the module docstring, each a function of :mod:`sarl.train.step` that
        returns what it adds, timed under its name in ``STAGES``."""
        p, timer = self.parts, StageTimer()
        step = self.state.step + 1
        progress = step / self.cfg.trainer.total_steps
        with timer("sync_weights"):
            self._synced = stages.sync_weights(p, self._synced)
        filtered = None
        with timer("generate"):  # with dynamic sampling: every round, graded and filtered
            if self.cfg.algorithm.filter_groups.enable:
                batch, filtered = generate_filtered(p, step, progress)
            else:
                batch = stages.generate(p, step)
        p.policy.eval()
        mask = _response_mask(batch, p.device)
        sampler = sampler_logp_tensor(batch.rollout_logprobs, mask)  # the engine's log-probs, [N, T] or None
        with timer("old_logprobs"):
            old = stages.old_logprobs(p, batch)
        ref = None
        if p.ref is not None:
            with timer("ref_logprobs"):
                ref = stages.ref_logprobs(p, batch)
        with timer("grade"):
            batch = stages.grade(batch) if batch.correct is None else batch
        with timer("null_logprobs"):
            inputs = stages.null_logprobs(p, batch, old, mask)
        with timer("rewards"):
            rew, token_rewards = stages.rewards(p, inputs, mask, old, ref, progress)
        vals = critic = None
        if p.critic is not None:
            with timer("values"):
                vals = stages.values(p, batch, mask)
        with timer("advantages"):
            adv, returns = stages.advantages(p, batch, rew, token_rewards, mask, vals, progress)
        if p.critic is not None:
            with timer("update_critic"):
                critic = stages.update_critic(p, batch, mask, vals, returns)
        with timer("update_actor"):
            actor, old = stages.update_actor(p, batch, mask, old, ref, adv, sampler)
        self.state.step = step
        self._check_finite(actor)
        data = stages.StepData(step=step, progress=progress, batch=batch, mask=mask, old=old, ref=ref, rew=rew,
                               actor=actor, critic=critic, sampler_logp=sampler)
        self.folder.write_samples(sample_rows(
            step, [q.question for q in batch.problems], batch.golds, batch.texts, [len(r) for r in batch.responses],
            rew.total.tolist(), {n: v.tolist() for n, v in rew.components.items()}, self.cfg.trainer.log_samples))
        metrics = stages.step_metrics(p, data, dict(timer.seconds))
        if filtered is not None:  # global counts, the same on every process
            metrics.update(filtered.metrics())
        return self.dist.mean_metrics(metrics)

    def _check_finite(self, stats: UpdateStats) -> None:
        if not stats.skipped:
            self.state.bad_steps = 0
            return
        self.state.bad_steps += 1
        self._log(f"[yellow]step {self.state.step}: non-finite loss or gradient; skipped {stats.skipped} "
                  "optimizer step(s)[/yellow]")
        if self.state.bad_steps >= self.cfg.trainer.max_bad_steps:
            raise TrainingAborted(f"{self.state.bad_steps} consecutive steps with a non-finite loss or gradient "
                                  "(trainer.max_bad_steps); lower actor.lr or check the data")

    # ------------------------------------------------------------------------------- validation
    def validate_on_main(self) -> dict[str, Any]:
        """Validation on rank 0 while the others wait, after every process refreshed its rollout engine (a
        collective when the policy is sharded); the metrics on rank 0, ``{}`` elsewhere."""
        self._synced = stages.sync_weights(self.parts, self._synced)
        out = self.validate() if self.dist.main else {}
        self.dist.barrier()
        return out

    def validate(self) -> dict[str, Any]:
        """Greedy decoding on data.val, correctness only (the reference's validation), with the rollout
        engine as the last ``sync_weights`` left it."""
        from sarl.evaluate import EvalSettings, evaluate_dataset
        from sarl.rollout import GenerationConfig

        cfg, p = self.cfg, self.parts
        settings = EvalSettings(datasets=[cfg.data.val], instruction=cfg.data.instruction,
                                system_prompt=cfg.data.system_prompt,
                                gen=GenerationConfig(max_new_tokens=cfg.data.max_response_length,
                                                     batch_size=cfg.rollout.batch_size))
        path = self.out / "val" / f"step_{self.state.step}.samples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        with p.autocast():
            m = evaluate_dataset(p.backend, p.tok, "policy", cfg.data.val, p.val_problems, settings, path)
        p.backend.sleep()
        return {"val/accuracy": m["accuracy"], "val/mean_length": m["mean_length"],
                "val/truncation_rate": m["truncation_rate"]}

    # ------------------------------------------------------------------------------------ the loop
    def run(self, on_step=None) -> dict[str, Any]:
        from sarl.precision import bf16_pays_off, hidden_size

        t, p = self.cfg.trainer, self.parts
        last: dict[str, Any] = {}
        why = bf16_pays_off(p.device, hidden_size(p.policy.config))[1]
        self._log(f"precision: {p.precision} (trainer.precision={t.precision}; {why}); weights and AdamW in fp32")
        if t.val_before_train and p.val_problems and self.state.step == 0:
            last.update(self.validate_on_main())
            self.folder.record({"step": 0, **last})
        while self.state.step < t.total_steps:
            try:
                metrics = self.train_step()
            except torch.OutOfMemoryError as exc:
                raise RuntimeError(
                    f"out of memory at step {self.state.step + 1}: lower trainer.prompts_per_step, rollout.n, "
                    "actor.micro_batch_size or data.max_response_length, or set model.gradient_checkpointing=true"
                ) from exc
            metrics.update(self._after_step())
            self.folder.record(metrics)
            last = metrics
            if on_step is not None:
                on_step(metrics)
        final = self.export()
        self.dist.barrier()
        self.folder.close()
        last["final_model"] = str(final)
        return last

    def _after_step(self) -> dict[str, Any]:
        """Validation and the checkpoint when they are due; their metrics and timings."""
        t, step, timer = self.cfg.trainer, self.state.step, StageTimer()
        out: dict[str, Any] = {}
        if self.parts.val_problems and ((t.val_every and step % t.val_every == 0) or step == t.total_steps):
            with timer("validate"):
                out.update(self.validate_on_main())
        if (t.save_every and step % t.save_every == 0) or step == t.total_steps:
            with timer("checkpoint"):
                self.save()
                self.dist.barrier()
        out.update({f"time/{k}": v for k, v in timer.seconds.items()})
        return out


def _response_mask(batch, device) -> torch.Tensor:
    from sarl.logprobs import answer_mask

    return answer_mask(batch.responses, device)


def train(cfg: TrainConfig, resume: bool = False, console=None, on_step=None) -> dict[str, Any]:
    """Run training as the module docstring states; returns the last step's metrics."""
    return Trainer(cfg, resume=resume, console=console).run(on_step=on_step)
