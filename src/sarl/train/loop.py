"""The training loop: one controller with named stages (the names in the code are the names in the
logs and timings).

Algorithm (``train(cfg)``), per step s = 1..S with progress x = s / S:

0. ``sync_weights``: with ``rollout.backend=vllm``, the policy's weights are pushed to the colocated
   engine in memory when they changed (:mod:`sarl.train.rollout`); nothing with ``hf``.
1. ``generate``: P = ``trainer.prompts_per_step`` prompts (system prompt + question + instruction,
   chat template, cut from the left to ``data.max_prompt_length``), n = ``rollout.n`` responses each,
   sampled at ``rollout.temperature`` / ``top_p`` up to ``data.max_response_length`` tokens. The stop
   token is part of the response (and of its length and mask), as in the reference.
2. ``old_logprobs``: log π_old(a_t | q, a_<t) with logits / temperature (no grad). ppl(a|q) for SAR is
   computed from these (no extra pass), with per-token entropy for logging. When the update is on-policy
   (``ppo_epochs`` 1 and one mini-batch: one optimizer step per batch, ratio 1) and nothing before the
   update reads log π_old (no reward on the policy's log-probs, no KL in the reward), this pass is
   skipped: log π_old = log π.detach() from the update's own forward (verl's ``on_policy`` case), and
   the logged entropy comes from that forward too. A SAR run keeps the pass: it *is* the ppl(a|q) pass,
   and the reward it feeds must exist before the advantages that the update's loss needs.
3. ``ref_logprobs``: the frozen initial policy, only if ``actor.use_kl_loss`` or
   ``algorithm.use_kl_in_reward``.
4. ``null_logprobs``: log π_old(a_t | ∅, a_<t) after the null prompt (same system prompt, empty user
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
   rewards) and summed. Broadcast to every response token. The loop passes each estimator what its
   registry entry declares it needs (groups, critic values, reward components).
8. ``update_critic`` (PPO): 0.5 · max((V − R)², (clip(V, V_old ± cliprange_value) − R)²), aggregated
   like the actor loss.
9. ``update_actor``: ``ppo_epochs`` passes; mini-batches of ``actor.mini_batch_size`` sequences, each
   one AdamW step (grad-norm clip ``grad_clip``; a non-finite norm skips the step); micro-batches of
   ``micro_batch_size`` accumulate gradients with the mini-batch's global normaliser, so the gradient
   equals one big batch's (:func:`sarl.train.update.accumulate_update`, shared with the critic). Loss per token: clipped ratio objective
   max(−A r, −A clip(r, 1 − clip_ratio_low, 1 + clip_ratio_high)) (dual clip at clip_ratio_c for A < 0),
   r = exp(log π − log π_old); plus ``kl_loss_coef`` · KL_t(π ‖ π_ref) (``kl_loss_type``, default k3)
   if ``use_kl_loss``; minus ``entropy_coeff`` · H_t. Aggregated by ``actor.loss_agg_mode``
   (``seq-mean-token-sum-norm`` divides by ``data.max_response_length``, Dr.GRPO).
10. ``validate`` (greedy, correctness only, on ``data.val``) and ``checkpoint``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
import yaml

from sarl.config import TrainConfig, to_dict
from sarl.errors import ConfigError, MissingInputError, OutputExistsError, SarlError
from sarl.io import truncate_steps
from sarl.reward_inputs import reward_inputs
from sarl.rollout.batch import RolloutBatch
from sarl.train.checkpoint import (
    check_resume_settings,
    export_model,
    latest_checkpoint,
    load_critic_weights,
    load_state,
    policy_training_state,
    restore_policy_training_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from sarl.train.critic import values_head
from sarl.train.stages import StageTimer, peak_memory_gb
from sarl.train.stream import DataStream
from sarl.train.update import UpdateStats, accumulate_update, lr_lambda


class TrainingAborted(SarlError, RuntimeError):
    pass


def _mean(t: torch.Tensor | None) -> float | None:
    return None if t is None or t.numel() == 0 else float(t.float().mean())


class Trainer:
    """Holds the models, optimizers and data of one run; :meth:`run` executes the loop above."""

    def __init__(self, cfg: TrainConfig, resume: bool = False, console=None):
        from sarl.algos import ADV_ESTIMATORS
        from sarl.models import load_model
        from sarl.rewards import RewardComposer

        self.cfg = cfg
        self.console = console
        self.out = Path(cfg.trainer.out_dir)
        self.ckpt_root = self.out / "checkpoints"
        if not resume and (self.out / "metrics.jsonl").exists():
            raise OutputExistsError(f"trainer.out_dir {self.out} already holds a run (metrics.jsonl); pass --resume "
                                  "to continue it, or choose another trainer.out_dir")
        torch.manual_seed(cfg.trainer.seed)
        m = cfg.model
        from sarl.precision import hidden_size, resolve_precision
        from sarl.train.distributed import init_distributed, launcher_strategy

        self.dist, device = init_distributed(m.device)
        cfg.trainer.strategy, note = launcher_strategy(cfg.trainer.strategy)
        if note:
            self._log(note)
        self.dist.check_estimator(cfg.algorithm.estimator)
        # master weights in fp32 always (config validation refuses half-precision weights for training)
        self.lm = load_model(m.name, dtype="float32", device=device, threads=m.threads)
        self.precision = resolve_precision(cfg.trainer.precision, self.lm.device, hidden_size(self.lm.model.config))
        self.policy, self.tok = self.lm.model, self.lm.tokenizer
        if m.gradient_checkpointing:
            self.policy.gradient_checkpointing_enable()
            self.policy.config.use_cache = False
        self._load_data()
        self.composer = RewardComposer(dict(cfg.rewards.weights), dict(cfg.rewards.options), cfg.rewards.schedule)
        self.needs = self.composer.needs
        a, ac = cfg.algorithm, cfg.actor
        self.use_ref = ac.use_kl_loss or a.use_kl_in_reward
        self.ref = copy.deepcopy(self.policy).eval().requires_grad_(False) if self.use_ref else None
        self.estimator = a.estimator
        self.kl_estimator = ac.kl_loss_type if ac.use_kl_loss else a.kl_penalty
        self.critic = None
        if "values" in ADV_ESTIMATORS.meta(self.estimator)["needs"]:
            from sarl.train.critic import ValueModel

            self.critic = ValueModel(self.policy).to(self.lm.device)
        rollouts = cfg.trainer.prompts_per_step * cfg.rollout.n
        mini = ac.mini_batch_size or rollouts
        self.mini = self.dist.per_process(mini, "actor.mini_batch_size")  # this process's share of an optimizer step
        from sarl.rewards.registry import POLICY_NEEDS

        # on-policy, with nothing reading log π_old before the update: the update's forward supplies it
        self.old_from_update = (ac.ppo_epochs == 1 and mini == rollouts and not (self.needs & POLICY_NEEDS)
                                and not a.use_kl_in_reward)
        from sarl.train.rollout import make_rollout_backend

        sharded = cfg.trainer.strategy == "fsdp" and self.dist.active
        self._synced: int | None = None  # the optimizer step whose weights the rollout engine holds
        # before sharding: a sharded policy samples through a full copy of its weights
        self.backend = make_rollout_backend(cfg, self.policy, self.tok, out=self.out, precision=self.precision,
                                            device=self.lm.device, dist=self.dist, sharded=sharded)
        if sharded:
            self._shard()
        elif cfg.trainer.strategy == "fsdp":
            self._log("trainer.strategy=fsdp with one process: nothing to shard; training unsharded")
        self._make_optimizers(opt_steps=cfg.trainer.total_steps * ac.ppo_epochs * (rollouts // mini))
        from sarl.prompts import encode, render_null_prompt

        self.null_ids = encode(self.tok, render_null_prompt(self.tok, cfg.data.system_prompt))
        self.step = 0
        self.bad_steps = 0
        if resume:
            self._resume()
        self._open_run_folder()
        self.dist.barrier()

    def _load_data(self) -> None:
        """The training problems as a seeded stream (each needs a gold answer) and the validation problems."""
        from sarl.data import load_dataset

        cfg = self.cfg
        problems = load_dataset(cfg.data.train, limit=cfg.data.train_limit, seed=cfg.trainer.seed,
                                size=cfg.data.train_size, split="train")
        missing = [p.id for p in problems if p.answer in (None, "")]
        if missing:
            raise SarlError(f"data.train {cfg.data.train!r}: {len(missing)} problem(s) have no gold answer "
                             f"(first: {missing[0]}); RL rewards need one for every problem")
        self.val_problems = (load_dataset(cfg.data.val, limit=cfg.data.val_limit, seed=cfg.data.val_seed)
                             if cfg.data.val else [])
        self.data = DataStream(problems, cfg.trainer.seed, cfg.data.shuffle)

    def _open_run_folder(self) -> None:
        """Rank 0 writes the run folder (the resolved config, the loggers); the others only compute."""
        self.loggers = []
        if not self.dist.main:
            return
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        from sarl.train.loggers import make_loggers

        names = [n for n in cfg.trainer.logger if n != "tensorboard" or cfg.trainer.tensorboard]
        self.loggers = make_loggers(names, self.out, to_dict(cfg), name=self.out.name)

    def _shard(self) -> None:
        """``trainer.strategy=fsdp``: the policy and the reference model sharded over the processes
        (:mod:`sarl.train.sharding`); every forward from here on is a collective (``dist.sharded``)."""
        from sarl.train.sharding import local_fraction, shard_model

        if self.critic is not None:  # unreachable while GAE is refused with several processes; kept explicit
            raise ConfigError("trainer.strategy=fsdp: a critic (adv_estimator gae) is not sharded; use ddp")
        units = shard_model(self.policy, self.dist.world, self.lm.device)
        if self.ref is not None:
            shard_model(self.ref, self.dist.world, self.lm.device)
        self.dist.sharded = True
        self._log(f"fsdp: the policy{' and the reference model' if self.ref is not None else ''} sharded over "
                  f"{self.dist.world} processes ({units} units: each decoder layer, and the root); rank 0 stores "
                  f"{local_fraction(self.policy):.1%} of the parameters")

    def _make_optimizers(self, opt_steps: int) -> None:
        """AdamW and its schedule for the policy's trainable parameters (``actor.trainable`` freezes the rest;
        the reference model and the critic were copied before), and for the critic when there is one."""
        cfg, ac = self.cfg, self.cfg.actor
        if ac.trainable:
            for name, prm in self.policy.named_parameters():
                prm.requires_grad_(any(key in name for key in ac.trainable))
        params = [prm for prm in self.policy.parameters() if prm.requires_grad]
        if not params:
            raise ConfigError(f"actor.trainable={ac.trainable!r} matches no parameter of the policy; names look "
                              f"like {next(iter(dict(self.policy.named_parameters())))!r}")
        self.opt = torch.optim.AdamW(params, lr=ac.lr, weight_decay=ac.weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(ac.warmup_steps, opt_steps, ac.lr_schedule))
        self.copt = self.csched = None
        if self.critic is not None:
            self.copt = torch.optim.AdamW(self.critic.parameters(), lr=cfg.critic.lr, weight_decay=ac.weight_decay)
            self.csched = torch.optim.lr_scheduler.LambdaLR(self.copt, lambda s: 1.0)

    # ------------------------------------------------------------------------------- checkpoints
    def _resume(self) -> None:
        check_resume_settings(self.out / "config.yaml", to_dict(self.cfg), self.out)
        ckpt = latest_checkpoint(self.ckpt_root)
        if ckpt is None:
            raise MissingInputError(f"--resume: no complete checkpoint under {self.ckpt_root}")
        st = load_state(ckpt)
        restore_policy_training_state(self.policy, self.opt, ckpt, st, sharded=self.dist.sharded)
        if self.critic is not None:
            load_critic_weights(self.critic, ckpt)
        self.sched.load_state_dict(st["scheduler"])
        if self.copt is not None:
            self.copt.load_state_dict(st["critic_optimizer"])
            self.csched.load_state_dict(st["critic_scheduler"])
        self.step = int(st["step"])
        self.data.load_state(st["data"])
        self.bad_steps = int(st.get("bad_steps", 0))
        set_rng_state(st["rng"])
        self.dist.barrier()  # every process has read the checkpoint before rank 0 truncates the logs
        if self.dist.main:
            truncate_steps(self.out / "metrics.jsonl", self.step)
            truncate_steps(self.out / "samples.jsonl", self.step)
        self._log(f"resumed from {ckpt} (step {self.step})")

    def save(self) -> Path | None:
        """Checkpoint the step; called on every process (a sharded policy is gathered first), written by
        rank 0 (which returns the folder; the others ``None``)."""
        weights, optimizer, fmt = policy_training_state(self.policy, self.opt, self.dist.sharded)
        if not self.dist.main:
            return None
        state = {"step": self.step, "optimizer": optimizer, "optimizer_format": fmt,
                 "scheduler": self.sched.state_dict(), "data": self.data.state(), "rng": rng_state(),
                 "bad_steps": self.bad_steps}
        if self.copt is not None:
            state["critic_optimizer"] = self.copt.state_dict()
            state["critic_scheduler"] = self.csched.state_dict()
        return save_checkpoint(self.ckpt_root, self.step, policy=self.policy, tokenizer=self.tok, critic=self.critic,
                               state=state, config_yaml=yaml.safe_dump(to_dict(self.cfg), sort_keys=False),
                               keep_last=self.cfg.trainer.keep_last, policy_state=weights)

    def export(self) -> Path:
        """The final policy as a plain HF folder that ``sarl eval`` and transformers load; called on every
        process, written by rank 0."""
        weights = None
        if self.dist.sharded:  # gathered on every process (a collective), written by rank 0
            from sarl.train.sharding import full_state_dict

            weights = full_state_dict(self.policy)
        dest = self.out / "final"
        return export_model(self.policy, self.tok, dest, state_dict=weights) if self.dist.main else dest

    # ------------------------------------------------------------------------------------ logging
    def _log(self, msg: str) -> None:
        if self.console is not None and self.dist.main:
            self.console.print(msg)

    def _record(self, metrics: dict[str, Any]) -> None:
        if not self.dist.main:
            return
        with open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(metrics) + "\n")
        for logger in self.loggers:
            logger.log(metrics, metrics["step"])

    # ------------------------------------------------------------------------------------ a step
    def autocast(self):
        """bf16 autocast under ``trainer.precision=bf16-mixed`` (every forward); nothing under fp32."""
        from sarl.precision import autocast

        return autocast(self.precision, self.lm.device)

    def _logprobs(self, model, ctx, resp, stats=(), grad=False):
        from sarl.logprobs import answer_logprobs

        with self.autocast():  # the forward only; the loss and its backward run outside, in fp32
            return answer_logprobs(model, ctx, resp, pad_token_id=self.tok.pad_token_id,
                                   temperature=self.cfg.rollout.temperature, stats=stats, grad=grad,
                                   max_batch_tokens=self.cfg.actor.max_tokens_per_forward,
                                   lockstep=self.dist.sharded)

    def train_step(self) -> dict[str, Any]:
        """One step: the stages of the module docstring, each timed under its name in ``STAGES``."""
        timer = StageTimer()
        self.step += 1
        progress = self.step / self.cfg.trainer.total_steps
        with timer("sync_weights"):
            self.sync_rollout_weights()
        with timer("generate"), self.autocast():
            batch = self.generate()
        self.backend.sleep()  # vLLM on a GPU frees its memory for the update
        self.policy.eval()
        with timer("old_logprobs"):
            old = self.old_logprobs(batch)
        ref = None
        if self.ref is not None:
            with timer("ref_logprobs"):
                ref = self._logprobs(self.ref, batch.contexts, batch.responses)
        with timer("null_logprobs"), self.autocast():
            inputs = self.reward_inputs(batch, old)
        with timer("rewards"):
            rew, token_rewards = self.rewards(batch, inputs, old, ref, progress)
        values = None
        if self.critic is not None:
            with timer("values"), self.autocast():
                values = self.values(batch, old.mask)
        with timer("advantages"):
            adv, returns = self.advantages(batch, rew, token_rewards, old.mask, values, progress)
        critic_stats = None
        if self.critic is not None:
            with timer("update_critic"):
                critic_stats = self.update_critic(batch, old.mask, values, returns)
        with timer("update_actor"):
            actor_stats = self.update_actor(batch, old, ref, adv)
        self._check_finite(actor_stats)
        self._log_samples(batch, rew)
        return self.dist.mean_metrics(self.step_metrics(progress, batch, old, ref, rew, actor_stats, critic_stats, timer))

    def sync_rollout_weights(self) -> None:
        """``sync_weights``: a rollout engine with its own copy of the weights (vLLM, a bf16 copy, the full
        copy beside a sharded policy) gets the policy's, in memory, when they changed since the last push
        (or the engine slept); the plain transformers backend samples with the policy itself. Called on
        every process (gathering a sharded policy is a collective)."""
        version = self.sched.last_epoch  # optimizer steps so far (restored on resume)
        need = self._synced != version or getattr(self.backend, "asleep", False)
        if self.dist.sharded:  # gathering the shards is a collective: every process or none
            need = not self.dist.all_true(not need)
        if need:
            if self.dist.sharded:
                from sarl.train.sharding import full_named_parameters

                self.backend.sync_weights(full_named_parameters(self.policy))
            else:
                self.backend.sync_weights(self.policy.named_parameters())
            self._synced = version

    def _log_samples(self, batch: RolloutBatch, rew) -> None:
        """The first ``trainer.log_samples`` rollouts of the step, for the report's examples."""
        k = min(self.cfg.trainer.log_samples, len(batch))
        if not k or not self.dist.main:
            return
        rows = [{"step": self.step, "question": batch.problems[i].question, "gold": batch.problems[i].answer,
                 "response": batch.texts[i], "length": len(batch.responses[i]), "reward": float(rew.total[i]),
                 **{f"reward/{n}": float(v[i]) for n, v in rew.components.items()}} for i in range(k)]
        with open(self.out / "samples.jsonl", "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)

    def generate(self) -> RolloutBatch:
        """``generate``: P prompts, n sampled responses each, as one batch of rows."""
        from sarl.data import render_problem_prompt
        from sarl.prompts import encode
        from sarl.rollout import GenerationConfig

        cfg = self.cfg
        drawn = self.data.take(cfg.trainer.prompts_per_step)  # every process draws the same prompts ...
        problems = self.dist.shard(drawn)  # ... and keeps its own share; the sampling keys are global positions
        first = self.dist.rank * len(problems)
        prompts = [encode(self.tok, render_problem_prompt(self.tok, p, instruction=cfg.data.instruction,
                                                          system=cfg.data.system_prompt))[-cfg.data.max_prompt_length:]
                   for p in problems]
        gcfg = GenerationConfig(max_new_tokens=cfg.data.max_response_length, temperature=cfg.rollout.temperature,
                                top_p=cfg.rollout.top_p, n=cfg.rollout.n, seed=cfg.trainer.seed * 100_003 + self.step,
                                batch_size=cfg.rollout.batch_size)
        keys = list(range(first, first + len(prompts)))
        return RolloutBatch.from_groups(prompts, self.backend.generate(prompts, gcfg, keys=keys), problems)

    def old_logprobs(self, batch: RolloutBatch):
        """``old_logprobs``: log π_old with per-token entropy (and self-certainty when a reward needs it).
        With ``old_from_update`` only the mask: :meth:`update_actor` fills log π_old and the entropy."""
        if self.old_from_update:
            from sarl.logprobs import AnswerLogprobs, answer_mask

            mask = answer_mask(batch.responses, self.lm.device)
            return AnswerLogprobs(logp=torch.zeros_like(mask), mask=mask, stats={"entropy": torch.zeros_like(mask)})
        stats = ("entropy",) + (("self_certainty",) if "self_certainty" in self.needs else ())
        return self._logprobs(self.policy, batch.contexts, batch.responses, stats=stats)

    def reward_inputs(self, batch: RolloutBatch, old):
        """``null_logprobs``: the reward inputs, ppl(a|q) from the old-policy pass and the null-context
        pass only when a reward needs it (:func:`sarl.reward_inputs.reward_inputs`)."""
        return reward_inputs(self.policy, batch, self.needs, null_ids=self.null_ids, pad_token_id=self.tok.pad_token_id,
                             temperature=self.cfg.rollout.temperature, logp_qa=old.logp, response_mask=old.mask,
                             token_self_certainty=old.stats.get("self_certainty"),
                             max_response_length=self.cfg.data.max_response_length,
                             max_batch_tokens=self.cfg.actor.max_tokens_per_forward, lockstep=self.dist.sharded)

    def rewards(self, batch: RolloutBatch, inputs, old, ref, progress: float):
        """``rewards``: grade each response once, compose the rewards, place each total on its response's
        last token (minus the in-reward KL on every token when ``use_kl_in_reward``)."""
        from sarl.algos import kl_penalty
        from sarl.grading import grade_all

        batch.correct = inputs.correct = grade_all(batch.texts, batch.golds, problems=batch.problems)
        rew = self.composer(inputs, progress=progress)
        mask, lengths = old.mask, batch.lengths
        token_rewards = torch.zeros_like(mask)
        last = (lengths.long() - 1).clamp(min=0)
        has = lengths > 0
        token_rewards[has, last[has]] = rew.total[has]
        a = self.cfg.algorithm
        if a.use_kl_in_reward:
            token_rewards = token_rewards - a.kl_coef * kl_penalty(old.logp, ref.logp, a.kl_penalty) * mask
        return rew, token_rewards

    def values(self, batch: RolloutBatch, mask: torch.Tensor) -> torch.Tensor:
        """``values`` (estimators that declare ``values``): V(s_t) from the critic."""
        from sarl.logprobs import answer_forward

        self.critic.eval()
        vals, _ = answer_forward(self.critic, batch.contexts, batch.responses, values_head, ("values",),
                                 pad_token_id=self.tok.pad_token_id)
        return vals["values"] * mask

    def advantages(self, batch: RolloutBatch, rew, token_rewards, mask, values, progress: float):
        """``advantages``: the configured estimator, given what its registry entry declares it needs."""
        from sarl.algos import ADV_ESTIMATORS

        a = self.cfg.algorithm
        needs = ADV_ESTIMATORS.meta(self.estimator)["needs"]
        options = {"gamma": a.gamma, "lam": a.lam, "norm_adv_by_std": a.norm_adv_by_std_in_grpo}
        kwargs = {k: options[k] for k in ADV_ESTIMATORS.meta(self.estimator)["options"]}
        if "groups" in needs:
            kwargs["group_ids"] = batch.group_ids
        if "values" in needs:
            kwargs["values"] = values
        if "reward_components" in needs:
            kwargs["components"] = dict(rew.components)
            kwargs["weights"] = self.composer.scheduled_weights(progress)
        return ADV_ESTIMATORS[self.estimator](token_rewards, mask, **kwargs)

    def _update(self, model, opt, sched, mask, grad_clip, micro_loss):
        ac = self.cfg.actor
        model.train()
        stats = accumulate_update(model, opt, sched, mask=mask, mini_batch=self.mini, micro_batch=ac.micro_batch_size,
                                  epochs=ac.ppo_epochs, grad_clip=grad_clip, micro_loss=micro_loss,
                                  dist=self.dist)
        model.eval()
        return stats

    def update_critic(self, batch: RolloutBatch, mask, values, returns) -> UpdateStats:
        """``update_critic``: clipped value loss, aggregated like the actor loss."""
        from sarl.algos import value_loss
        from sarl.logprobs import answer_forward

        cfg = self.cfg

        def micro_loss(rows, norm):
            ctx, resp = batch.rows(rows)
            with self.autocast():
                out, mmask = answer_forward(self.critic, ctx, resp, values_head, ("values",),
                                            pad_token_id=self.tok.pad_token_id, grad=True)
            T = mmask.shape[1]
            vl, vm = value_loss(out["values"], values[rows, :T], returns[rows, :T], mmask,
                                clip_range=cfg.critic.cliprange_value, loss_agg_mode=cfg.actor.loss_agg_mode,
                                norm_length=cfg.data.max_response_length, **norm)
            return vl, {"loss": float(vl.detach())}, {"clipfrac": float(vm["clipfrac"])}

        return self._update(self.critic, self.copt, self.csched, mask, cfg.critic.grad_clip, micro_loss)

    def update_actor(self, batch: RolloutBatch, old, ref, adv) -> UpdateStats:
        """``update_actor``: clipped policy loss, + KL loss, − entropy bonus, per micro-batch. With
        ``old_from_update``, each row's one forward here (before the only optimizer step) also writes its
        log π_old and entropy into ``old``."""
        from sarl.algos import aggregate_loss, kl_penalty, policy_loss

        cfg, ac = self.cfg, self.cfg.actor
        agg = {"loss_agg_mode": ac.loss_agg_mode, "norm_length": cfg.data.max_response_length}
        want = ("entropy",) if ac.entropy_coeff or self.old_from_update else ()

        def micro_loss(rows, norm):
            ctx, resp = batch.rows(rows)
            new = self._logprobs(self.policy, ctx, resp, stats=want, grad=True)
            T = new.mask.shape[1]
            if self.old_from_update:  # π_old = π: ratio 1, gradient -A ∇log π
                old.logp[rows, :T] = new.logp.detach()
                old.stats["entropy"][rows, :T] = new.stats["entropy"].detach()
            loss, pm = policy_loss(new.logp, old.logp[rows, :T], adv[rows, :T], new.mask,
                                   clip_low=ac.clip_ratio_low, clip_high=ac.clip_ratio_high,
                                   clip_ratio_c=ac.clip_ratio_c, **norm, **agg)
            parts = {"pg_loss": float(loss.detach())}
            if ac.use_kl_loss:
                kl_loss = aggregate_loss(kl_penalty(new.logp, ref.logp[rows, :T], ac.kl_loss_type), new.mask,
                                         ac.loss_agg_mode, cfg.data.max_response_length, **norm)
                loss = loss + ac.kl_loss_coef * kl_loss
                parts["kl_loss"] = float(kl_loss.detach())
            if ac.entropy_coeff:
                loss = loss - ac.entropy_coeff * aggregate_loss(new.stats["entropy"], new.mask, ac.loss_agg_mode,
                                                                cfg.data.max_response_length, **norm)
            return loss, parts, {"clipfrac": float(pm["clipfrac"])}

        return self._update(self.policy, self.opt, self.sched, old.mask, ac.grad_clip, micro_loss)

    def _check_finite(self, stats: UpdateStats) -> None:
        if not stats.skipped:
            self.bad_steps = 0
            return
        self.bad_steps += 1
        self._log(f"[yellow]step {self.step}: non-finite loss or gradient; skipped {stats.skipped} optimizer step(s)[/yellow]")
        if self.bad_steps >= self.cfg.trainer.max_bad_steps:
            raise TrainingAborted(f"{self.bad_steps} consecutive steps with a non-finite loss or gradient "
                                  "(trainer.max_bad_steps); lower actor.lr or check the data")

    def step_metrics(self, progress, batch, old, ref, rew, actor: UpdateStats, critic: UpdateStats | None,
                     timer: StageTimer) -> dict[str, Any]:
        """The logged metrics of a step; losses are means per optimizer step."""
        from sarl.algos import kl_penalty, masked_mean

        mask = old.mask
        metrics: dict[str, Any] = {}
        if critic is not None:
            metrics["critic/loss"] = critic.losses.get("loss")
            metrics["critic/clipfrac"] = critic.stats.get("clipfrac", 0.0)
        metrics.update({
            "step": self.step,
            "progress": progress,
            "reward/mean": _mean(rew.total),
            "reward/alpha": rew.alpha,
            **{f"reward/{k}": _mean(v) for k, v in rew.components.items()},
            "accuracy": _mean(batch.correct),
            "response_length/mean": _mean(batch.lengths),
            "response_length/truncated": sum(batch.truncated) / len(batch.truncated),
            "actor/pg_loss": actor.losses.get("pg_loss", 0.0),
            "actor/kl_loss": actor.losses.get("kl_loss", 0.0) if self.cfg.actor.use_kl_loss else None,
            "actor/entropy": float(masked_mean(old.stats["entropy"], mask)),
            "actor/clipfrac": actor.stats.get("clipfrac", 0.0),
            "actor/grad_norm": actor.grad_norm,
            "actor/lr": self.sched.get_last_lr()[0],
            "actor/skipped_updates": actor.skipped,
            # KL(pi_old || pi_ref) with the estimator the recipe uses (the loss's, else the reward's)
            "kl/ref": None if ref is None else float(masked_mean(kl_penalty(old.logp, ref.logp, self.kl_estimator), mask)),
            "kl/estimator": None if ref is None else self.kl_estimator,
            **{f"time/{k}": v for k, v in timer.seconds.items()},
            "time/step": sum(timer.seconds.values()),
            "perf/max_memory_gb": peak_memory_gb(self.lm.device),  # averaged over processes
        })
        from sarl.data.synthetic import batch_style_shares

        metrics.update({f"style/{k}": v for k, v in batch_style_shares(batch.problems, batch.texts).items()})
        from sarl.train.rollout import logprob_gap

        metrics.update(logprob_gap(batch.rollout_logprobs, old.logp, mask))
        return metrics

    def validate_on_main(self) -> dict[str, Any]:
        """Validation on rank 0 while the others wait, after every process refreshed its rollout engine (a
        collective when the policy is sharded); the metrics on rank 0, ``{}`` elsewhere."""
        self.sync_rollout_weights()
        out = self.validate() if self.dist.main else {}
        self.dist.barrier()
        return out

    def validate(self) -> dict[str, Any]:
        """Greedy decoding on data.val, correctness only (the reference's validation), with the rollout
        engine as :meth:`sync_rollout_weights` last left it."""
        from sarl.evaluate import EvalSettings, evaluate_dataset
        from sarl.rollout import GenerationConfig

        cfg = self.cfg
        settings = EvalSettings(datasets=[cfg.data.val], instruction=cfg.data.instruction,
                                system_prompt=cfg.data.system_prompt,
                                gen=GenerationConfig(max_new_tokens=cfg.data.max_response_length,
                                                     batch_size=cfg.rollout.batch_size))
        path = self.out / "val" / f"step_{self.step}.samples.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        with self.autocast():
            m = evaluate_dataset(self.backend, self.tok, "policy", cfg.data.val, self.val_problems, settings, path)
        self.backend.sleep()
        return {"val/accuracy": m["accuracy"], "val/mean_length": m["mean_length"],
                "val/truncation_rate": m["truncation_rate"]}

    def run(self, on_step=None) -> dict[str, Any]:
        from sarl.precision import bf16_pays_off, hidden_size

        t = self.cfg.trainer
        last: dict[str, Any] = {}
        why = bf16_pays_off(self.lm.device, hidden_size(self.policy.config))[1]
        self._log(f"precision: {self.precision} (trainer.precision={t.precision}; {why}); weights and AdamW in fp32")
        if t.val_before_train and self.val_problems and self.step == 0:
            v = self.validate_on_main()
            self._record({"step": 0, **v})
            last.update(v)
        while self.step < t.total_steps:
            try:
                metrics = self.train_step()
            except torch.OutOfMemoryError as exc:
                raise RuntimeError(
                    f"out of memory at step {self.step}: lower trainer.prompts_per_step, rollout.n, "
                    "actor.micro_batch_size or data.max_response_length, or set model.gradient_checkpointing=true"
                ) from exc
            timer = StageTimer()
            if self.val_problems and ((t.val_every and self.step % t.val_every == 0) or self.step == t.total_steps):
                with timer("validate"):
                    metrics.update(self.validate_on_main())
            if (t.save_every and self.step % t.save_every == 0) or self.step == t.total_steps:
                with timer("checkpoint"):
                    self.save()
                    self.dist.barrier()
            metrics.update({f"time/{k}": v for k, v in timer.seconds.items()})
            self._record(metrics)
            last = metrics
            if on_step is not None:
                on_step(metrics)
        final = self.export()
        self.dist.barrier()
        for logger in self.loggers:
            logger.close()
        last["final_model"] = str(final)
        return last


def train(cfg: TrainConfig, resume: bool = False, console=None, on_step=None) -> dict[str, Any]:
    """Run training as the module docstring states; returns the last step's metrics."""
    return Trainer(cfg, resume=resume, console=console).run(on_step=on_step)
