"""What a training run is built from, before its first step: the processes, the policy (fp32 master
weights) and its precision, the data, the reward composer, the reference model and the critic when the
recipe needs them, the rollout engine, the sharding, the optimizers and their schedules.

:func:`build_run` builds them in a fixed order (the order the random number generator is drawn in:
model initialisation, then the critic's head, then the rollout copy) and returns a :class:`Run`, which
the stages read. Nothing here changes the config; what is resolved at run time (the strategy the
launcher asked for, the precision ``auto`` chose) is held by the :class:`Run` and recorded in the run
folder's ``run.yaml``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sarl.config import TrainConfig
from sarl.errors import ConfigError, SarlError


@dataclass
class Run:
    """The built parts of one training run (see the module docstring); the stages read them."""

    cfg: TrainConfig
    dist: Any  # sarl.train.distributed.Dist
    strategy: str  # trainer.strategy as the launcher resolved it (accelerate --use_fsdp means fsdp)
    lm: Any  # sarl.models.LoadedModel: the policy and its tokenizer
    precision: str  # fp32 | bf16-mixed, trainer.precision resolved
    data: Any  # sarl.train.stream.DataStream
    val_problems: list
    composer: Any  # sarl.rewards.RewardComposer
    estimator: str  # algorithm.adv_estimator, canonical
    estimator_needs: frozenset  # what it needs with its options (groups, values, reward_components)
    kl_estimator: str
    mini: int  # this process's rows per optimizer step
    old_from_update: bool  # on-policy with nothing reading log π_old before the update
    null_ids: list[int]
    ref: Any = None
    critic: Any = None
    backend: Any = None
    opt: Any = None
    sched: Any = None
    copt: Any = None
    csched: Any = None

    @property
    def policy(self):
        return self.lm.model

    @property
    def tok(self):
        return self.lm.tokenizer

    @property
    def device(self):
        return self.lm.device

    @property
    def needs(self) -> frozenset:
        return self.composer.needs

    def autocast(self):
        """The one autocast of the trainer's forwards: bf16 under ``bf16-mixed``, nothing under fp32."""
        from sarl.precision import autocast

        return autocast(self.precision, self.device)

    def logprobs(self, model, contexts, responses, stats=(), grad: bool = False):
        """:func:`sarl.logprobs.answer_logprobs` at the rollout temperature, the forward under
        :meth:`autocast` (the loss and its backward run outside, in fp32)."""
        from sarl.logprobs import answer_logprobs

        with self.autocast():
            return answer_logprobs(model, contexts, responses, pad_token_id=self.tok.pad_token_id,
                                   temperature=self.cfg.rollout.temperature, stats=stats, grad=grad,
                                   max_batch_tokens=self.cfg.actor.max_tokens_per_forward,
                                   lockstep=self.dist.sharded)


def load_problems(cfg: TrainConfig) -> tuple[list, list]:
    """The training problems (each needs a gold answer) and the validation problems."""
    from sarl.data import load_dataset

    problems = load_dataset(cfg.data.train, limit=cfg.data.train_limit, seed=cfg.trainer.seed,
                            size=cfg.data.train_size, split="train")
    missing = [p.id for p in problems if p.answer in (None, "")]
    if missing:
        raise SarlError(f"data.train {cfg.data.train!r}: {len(missing)} problem(s) have no gold answer "
                        f"(first: {missing[0]}); RL rewards need one for every problem")
    val = (load_dataset(cfg.data.val, limit=cfg.data.val_limit, seed=cfg.data.val_seed) if cfg.data.val else [])
    return problems, val


def _shard(run: Run, log: Callable[[str], None]) -> None:
    """``trainer.strategy=fsdp``: the policy and the reference model sharded over the processes
    (:mod:`sarl.train.sharding`); every forward from here on is a collective (``dist.sharded``)."""
    from sarl.train.sharding import local_fraction, shard_model

    if run.critic is not None:  # unreachable while GAE is refused with several processes; kept explicit
        raise ConfigError("trainer.strategy=fsdp: a critic (adv_estimator gae) is not sharded; use ddp")
    units = shard_model(run.policy, run.dist.world, run.device)
    if run.ref is not None:
        shard_model(run.ref, run.dist.world, run.device)
    run.dist.sharded = True
    log(f"fsdp: the policy{' and the reference model' if run.ref is not None else ''} sharded over "
        f"{run.dist.world} processes ({units} units: each decoder layer, and the root); rank 0 stores "
        f"{local_fraction(run.policy):.1%} of the parameters")


def _optimizers(run: Run, opt_steps: int) -> None:
    """AdamW and its schedule for the policy's trainable parameters (``actor.trainable`` freezes the rest;
    the reference model and the critic were copied before), and for the critic when there is one."""
    from sarl.train.update import lr_lambda

    cfg, ac, policy = run.cfg, run.cfg.actor, run.policy
    if ac.trainable:
        for name, prm in policy.named_parameters():
            prm.requires_grad_(any(key in name for key in ac.trainable))
    params = [prm for prm in policy.parameters() if prm.requires_grad]
    if not params:
        raise ConfigError(f"actor.trainable={ac.trainable!r} matches no parameter of the policy; names look "
                          f"like {next(iter(dict(policy.named_parameters())))!r}")
    run.opt = torch.optim.AdamW(params, lr=ac.lr, weight_decay=ac.weight_decay)
    run.sched = torch.optim.lr_scheduler.LambdaLR(run.opt, lr_lambda(ac.warmup_steps, opt_steps, ac.lr_schedule))
    if run.critic is not None:
        run.copt = torch.optim.AdamW(run.critic.parameters(), lr=cfg.critic.lr, weight_decay=ac.weight_decay)
        run.csched = torch.optim.lr_scheduler.LambdaLR(run.copt, lambda s: 1.0)


def build_run(cfg: TrainConfig, dist, device: str, strategy: str, log: Callable[[str], None]) -> Run:
    """Every part of a run, in the order the module docstring states (seed ``trainer.seed`` first)."""
    from sarl.algos import ADV_ESTIMATORS, estimator_needs
    from sarl.models import load_model
    from sarl.precision import hidden_size, resolve_precision
    from sarl.prompts import encode, render_null_prompt
    from sarl.rewards.registry import POLICY_NEEDS
    from sarl.train.rollout import make_rollout_backend
    from sarl.train.stream import DataStream

    torch.manual_seed(cfg.trainer.seed)
    m, a, ac = cfg.model, cfg.algorithm, cfg.actor
    estimator = ADV_ESTIMATORS.canonical(a.adv_estimator)
    dist.check_estimator(estimator, cfg)
    lm = load_model(m.name, dtype="float32", device=device, threads=m.threads)  # fp32 master weights
    precision = resolve_precision(cfg.trainer.precision, lm.device, hidden_size(lm.model.config))
    if m.gradient_checkpointing:
        lm.model.gradient_checkpointing_enable()
        lm.model.config.use_cache = False
    problems, val = load_problems(cfg)
    composer = cfg.rewards.composer()
    rollouts = cfg.trainer.prompts_per_step * cfg.rollout.n
    mini = ac.mini_batch_size or rollouts
    run = Run(cfg=cfg, dist=dist, strategy=strategy, lm=lm, precision=precision,
              data=DataStream(problems, cfg.trainer.seed, cfg.data.shuffle), val_problems=val, composer=composer,
              estimator=estimator, estimator_needs=estimator_needs(estimator, cfg), kl_estimator=ac.kl_loss_type if ac.use_kl_loss else a.kl_penalty,
              mini=dist.per_process(mini, "actor.mini_batch_size"),
              # on-policy, with nothing reading log π_old before the update: the update's forward supplies it
              old_from_update=(ac.ppo_epochs == 1 and mini == rollouts and not (composer.needs & POLICY_NEEDS)
                               and not a.use_kl_in_reward),
              null_ids=[])
    if ac.use_kl_loss or a.use_kl_in_reward:
        run.ref = copy.deepcopy(run.policy).eval().requires_grad_(False)
    if "values" in run.estimator_needs:
        from sarl.train.critic import ValueModel

        run.critic = ValueModel(run.policy).to(run.device)
    sharded = strategy == "fsdp" and dist.active
    # before sharding: a sharded policy samples through a full copy of its weights
    run.backend = make_rollout_backend(cfg, run.policy, run.tok, out=Path(cfg.trainer.out_dir), precision=precision,
                                       device=run.device, dist=dist, sharded=sharded)
    if sharded:
        _shard(run, log)
    elif strategy == "fsdp":
        log("trainer.strategy=fsdp with one process: nothing to shard; training unsharded")
    _optimizers(run, opt_steps=cfg.trainer.total_steps * ac.ppo_epochs * (rollouts // mini))
    run.null_ids = encode(run.tok, render_null_prompt(run.tok, cfg.data.system_prompt))
    return run
