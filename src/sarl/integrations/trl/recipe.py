"""A sarl recipe as TRL's ``GRPOConfig`` plus the reward functions, with the reference's semantics.

    from sarl.integrations.trl import grpo_config
    args, reward_funcs = grpo_config("sa_grpo", output_dir="runs/trl")     # any recipe name or file
    trainer = SARGRPOTrainer(model=..., processing_class=tok, args=args, train_dataset=ds,
                             reward_funcs=reward_funcs)

:data:`KEY_MAP` says, for every key of a sarl recipe, which ``GRPOConfig`` field carries it and how
(docs/TRL.md prints it; a test keeps the two equal). What TRL cannot express is refused with a
:class:`~sarl.errors.ConfigError` that names the key and the native trainer (``sarl train``), never
silently dropped: PPO (TRL has no PPO), the reference's per-component advantage weighting, a KL in the
reward, KL estimators other than k3, and parameter subsets.

The batch arithmetic. A sarl step generates ``R = prompts_per_step x n`` rollouts and takes
``ppo_epochs x R / mini_batch_size`` optimizer steps on them, accumulating ``micro_batch_size`` sequences
per forward. In TRL that is ``generation_batch_size = R``, ``per_device_train_batch_size = micro_batch_size``,
``gradient_accumulation_steps = mini_batch_size / (micro_batch_size x processes)``,
``num_iterations = ppo_epochs`` and ``max_steps = total_steps x ppo_epochs x R / mini_batch_size``. The
global batch is the same for any number of processes; sizes that do not divide are refused.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarl.config import TrainConfig, load_config
from sarl.errors import ConfigError


@dataclass(frozen=True)
class Mapped:
    """One row of :data:`KEY_MAP`: a sarl key, the ``GRPOConfig`` field(s), how the value carries over."""

    key: str
    field: str
    how: str


NATIVE = "use the native trainer (sarl train without --engine trl)"
KEY_MAP: tuple[Mapped, ...] = (
    Mapped("model.name", "(the model passed to the trainer)", "`sarl train --engine trl` loads it as the native trainer does (safetensors, no remote code)"),
    Mapped("model.dtype", "model_init_kwargs.dtype", "`float32`: the weights (master weights and AdamW state) are fp32, as in `sarl train`"),
    Mapped("model.device", "use_cpu", "`cpu`, or `auto` without CUDA: `use_cpu=True`; otherwise accelerate places the model"),
    Mapped("model.threads", "(torch.set_num_threads)", "set by `sarl train --engine trl` before training"),
    Mapped("model.gradient_checkpointing", "gradient_checkpointing", "same value"),
    Mapped("data.train", "(train_dataset)", "`trl_dataset` builds the `prompt` (system + user messages), `answer` and `data_source` columns"),
    Mapped("data.train_size", "(train_dataset)", "as in `sarl train`"),
    Mapped("data.train_limit", "(train_dataset)", "as in `sarl train`"),
    Mapped("data.val", "(none)", "not run during TRL training; evaluate the export with `sarl eval`"),
    Mapped("data.val_limit", "(none)", "as data.val"),
    Mapped("data.val_seed", "(none)", "as data.val"),
    Mapped("data.instruction", "(train_dataset)", "appended to the user message, as `sarl train` does"),
    Mapped("data.system_prompt", "(train_dataset)", "the system message (and SAR's null context)"),
    Mapped("data.max_prompt_length", "(train_dataset)", "TRL 1.16 has no prompt limit: `trl_dataset` refuses longer prompts, naming the problem"),
    Mapped("data.max_response_length", "max_completion_length", "same value; also Dr.GRPO's normaliser and L_max of length rewards"),
    Mapped("data.shuffle", "shuffle_dataset", "same value"),
    Mapped("rollout.n", "num_generations", "same value"),
    Mapped("rollout.temperature", "temperature", "same value (TRL divides the log-prob logits by it too)"),
    Mapped("rollout.top_p", "top_p", "same value; `top_k=0` (no top-k, as sarl)"),
    Mapped("rollout.batch_size", "(none)", "decode batching only; TRL generates the whole generation batch"),
    Mapped("rollout.backend", "use_vllm, vllm_mode", "hf: `use_vllm=False` (transformers generate); vllm: `use_vllm=True, vllm_mode=\"colocate\"` (one engine per process, weights synced in memory), correction as rollout.correction"),
    Mapped("rollout.gpu_memory_utilization", "vllm_gpu_memory_utilization", "same value"),
    Mapped("rollout.free_cache_engine", "vllm_enable_sleep_mode", "same value on a GPU; false on a CPU (no sleep mode there)"),
    Mapped("rollout.correction", "vllm_importance_sampling_correction, vllm_importance_sampling_mode, vllm_importance_sampling_clip_max, vllm_importance_sampling_clip_min, off_policy_mask_threshold", "mode none: `vllm_importance_sampling_correction=False` (TRL's default is on, `sequence_mask`); the four modes: `True` and the same mode name; clip_max, clip_min and off_policy_mask_threshold: the same values. TRL applies the importance weights to vLLM rollouts only (`rollout.backend=vllm`); sarl also to its hf sampler's log-probs"),
    Mapped("rollout.bf16_copy", "(none)", "native hf rollouts only; TRL generates with the policy under its own precision"),
    Mapped("algorithm.adv_estimator", "(GRPO)", "grpo only; other estimators are refused: " + NATIVE),
    Mapped("algorithm.norm_adv_by_std_in_grpo", "scale_rewards", "false: `none` (Dr.GRPO); true: `group`"),
    Mapped("algorithm.advantage_weighting_in_grpo", "(refused when true)", "TRL's `normalize_then_sum` also rescales by the batch std, so it is not the reference's weighting (sarl has TRL's as `algorithm.reward_aggregation=normalize_then_sum`): " + NATIVE),
    Mapped("algorithm.reward_aggregation", "multi_objective_aggregation", "same value; TRL's `normalize_then_sum` is sarl's (each reward function normalised within its group, eps 1e-4, summed with reward_weights, then normalised over the batch) and ignores scale_rewards; refused with a weight schedule that varies, which TRL's per-function std would cancel"),
    Mapped("algorithm.gamma", "(none)", "GAE / REINFORCE++ only (refused estimators)"),
    Mapped("algorithm.lam", "(none)", "GAE only"),
    Mapped("algorithm.use_kl_in_reward", "(refused when true)", "TRL has no KL in the reward: " + NATIVE),
    Mapped("algorithm.kl_penalty", "(none)", "only with use_kl_in_reward"),
    Mapped("algorithm.kl_coef", "(none)", "only with use_kl_in_reward"),
    Mapped("algorithm.filter_groups", "(refused when enable)", "TRL 1.16's GRPOTrainer has no dynamic sampling (DAPO's group filter and refill): " + NATIVE),
    Mapped("actor.lr", "learning_rate", "same value"),
    Mapped("actor.weight_decay", "weight_decay", "same value (AdamW, betas 0.9/0.999, eps 1e-8 in both)"),
    Mapped("actor.warmup_steps", "warmup_steps", "same value (optimizer steps)"),
    Mapped("actor.lr_schedule", "lr_scheduler_type", "constant: `constant_with_warmup`; cosine: `cosine`"),
    Mapped("actor.grad_clip", "max_grad_norm", "same value"),
    Mapped("actor.clip_ratio_low", "epsilon", "same value"),
    Mapped("actor.clip_ratio_high", "epsilon_high", "same value; with policy_loss cispo `1 + clip_ratio_high` (TRL's cispo caps the weight at epsilon_high itself)"),
    Mapped("actor.clip_ratio_c", "delta", "same value (policy_loss vanilla, gspo; else unused): TRL's two-sided clip caps the ratio at delta, which equals verl's dual clip when delta > 1 + epsilon_high (smaller values are refused)"),
    Mapped("actor.policy_loss", "importance_sampling_level, loss_type", "vanilla: `\"token\"`, loss_type from loss_agg_mode; gspo: `\"sequence\"`, loss_type from loss_agg_mode; cispo: `loss_type=\"cispo\"` (needs loss_agg_mode token-mean); sapo: `loss_type=\"sapo\"` (needs loss_agg_mode seq-mean-token-mean); others refused"),
    Mapped("actor.sapo_temperature_pos", "sapo_temperature_pos", "same value"),
    Mapped("actor.sapo_temperature_neg", "sapo_temperature_neg", "same value"),
    Mapped("actor.mask_truncated", "mask_truncated_completions", "same value"),
    Mapped("actor.loss_agg_mode", "loss_type", "policy_loss vanilla or gspo: seq-mean-token-sum-norm: `dr_grpo`; token-mean: `dapo`; seq-mean-token-mean: `grpo`; others refused (cispo and sapo: see actor.policy_loss)"),
    Mapped("actor.ppo_epochs", "num_iterations", "same value"),
    Mapped("actor.mini_batch_size", "gradient_accumulation_steps, max_steps", "see the batch arithmetic above"),
    Mapped("actor.micro_batch_size", "per_device_train_batch_size", "same value (sequences per forward and process)"),
    Mapped("actor.max_tokens_per_forward", "(SarlReward max_batch_tokens)", "the token budget of SAR's passes; TRL's own forwards follow per_device_train_batch_size"),
    Mapped("actor.use_kl_loss", "beta", "false: `beta=0`"),
    Mapped("actor.kl_loss_coef", "beta", "same value when use_kl_loss"),
    Mapped("actor.kl_loss_type", "(k3), use_bias_correction_kl", "TRL's KL loss is k3 (low_var_kl); others refused when use_kl_loss; `use_bias_correction_kl=False`: TRL 1.16 weights its KL by the importance ratio by default, sarl's (verl's) KL loss is plain k3"),
    Mapped("actor.entropy_coeff", "entropy_coef", "0: off; non-zero only with loss_agg_mode token-mean (TRL averages the entropy over tokens)"),
    Mapped("actor.trainable", "(refused when set)", "TRL trains every parameter it is given: " + NATIVE),
    Mapped("critic.lr", "(none)", "PPO only (refused)"),
    Mapped("critic.cliprange_value", "(none)", "PPO only (refused)"),
    Mapped("critic.grad_clip", "(none)", "PPO only (refused)"),
    Mapped("rewards.weights", "reward_funcs, reward_weights", "one `SarlReward` per name (sampled token ids, the trainer's temperature, as `sarl train`), weights in order"),
    Mapped("rewards.options", "reward_funcs", "each reward's options"),
    Mapped("rewards.schedule", "reward_funcs", "scheduled rewards return alpha(x) r with sarl's progress x, read from `trainer_state`"),
    Mapped("trainer.total_steps", "max_steps", "total_steps x ppo_epochs x R / mini_batch_size optimizer steps"),
    Mapped("trainer.prompts_per_step", "generation_batch_size", "prompts_per_step x n"),
    Mapped("trainer.seed", "seed", "same value (data order and sampling differ from sarl's streams)"),
    Mapped("trainer.out_dir", "output_dir", "same value"),
    Mapped("trainer.save_every", "save_steps, save_strategy", "0: `save_strategy=no`; else every save_every sarl steps"),
    Mapped("trainer.keep_last", "save_total_limit", "same value"),
    Mapped("trainer.val_every", "(none)", "as data.val"),
    Mapped("trainer.val_before_train", "(none)", "as data.val"),
    Mapped("trainer.max_bad_steps", "(none)", "native trainer only"),
    Mapped("trainer.logger", "report_to", "tensorboard, wandb, mlflow, trackio by name; console: TRL's own log lines"),
    Mapped("trainer.tensorboard", "report_to", "false drops tensorboard"),
    Mapped("trainer.precision", "bf16", "bf16-mixed: `bf16=True` (TRL's autocast); fp32: `bf16=False`; auto: bf16-mixed where bf16 matmul is fast (as `sarl train`)"),
    Mapped("trainer.strategy", "(accelerate's launch)", "ddp: as launched; fsdp: refused, because TRL shards through accelerate's FSDP launch settings (`accelerate launch --use_fsdp`), not through a GRPOConfig field"),
    Mapped("trainer.log_samples", "(none)", "native trainer only; `sarl train --engine trl` writes samples.jsonl from the scored batches"),
)

LOSS_TYPES = {"seq-mean-token-sum-norm": "dr_grpo", "token-mean": "dapo", "seq-mean-token-mean": "grpo"}


@dataclass(frozen=True)
class TrlLoss:
    """How a sarl policy loss is TRL's: its ``importance_sampling_level``, and the ``loss_type`` that
    fixes both the loss and its aggregation (``None``: the loss is TRL's clip, its ``loss_type`` follows
    ``actor.loss_agg_mode`` through :data:`LOSS_TYPES`) with the ``loss_agg_mode`` that aggregation is."""

    level: str = "token"
    loss_type: str | None = None
    loss_agg_mode: str | None = None


# sarl.algos.POLICY_LOSSES -> TRL 1.16 (GRPOTrainer._compute_loss); a loss missing here is refused
TRL_POLICY_LOSSES = {"vanilla": TrlLoss(), "gspo": TrlLoss(level="sequence"),
                     "cispo": TrlLoss(loss_type="cispo", loss_agg_mode="token-mean"),
                     "sapo": TrlLoss(loss_type="sapo", loss_agg_mode="seq-mean-token-mean")}
REPORTERS = ("tensorboard", "wandb", "mlflow", "trackio")


def map_table() -> str:
    """:data:`KEY_MAP` as the Markdown table of docs/TRL.md."""
    rows = ["| sarl key | GRPOConfig | how |", "|---|---|---|"]
    rows += [f"| `{m.key}` | {m.field} | {m.how} |" for m in KEY_MAP]
    return "\n".join(rows)


def _refuse(key: str, why: str) -> None:
    raise ConfigError(f"{key}: {why}; {NATIVE}")


def _resolve(recipe: str | Path | TrainConfig) -> TrainConfig:
    return recipe if isinstance(recipe, TrainConfig) else load_config(recipe)


def check_trl_can_run(cfg: TrainConfig) -> None:
    """Refuse (naming the key) every setting that TRL's GRPOTrainer cannot reproduce."""
    a, ac, t = cfg.algorithm, cfg.actor, cfg.trainer
    from sarl.algos import ADV_ESTIMATORS, estimator_needs

    est = ADV_ESTIMATORS.canonical(a.adv_estimator)
    gdpo = a.reward_aggregation == "normalize_then_sum"  # TRL's normalize_then_sum: needs the components too
    if est != "grpo" or ("reward_components" in estimator_needs(est, cfg) and not gdpo):
        if "reward_components" in estimator_needs(est, cfg):
            _refuse("algorithm.advantage_weighting_in_grpo", "TRL's normalize_then_sum aggregation also divides by "
                    "the batch std, so it is not the reference's per-component weighting (sarl has TRL's as "
                    "algorithm.reward_aggregation=normalize_then_sum)")
        _refuse("algorithm.adv_estimator", f"TRL's GRPOTrainer computes group advantages (grpo); {a.adv_estimator!r} "
                "is not available there (TRL has no PPO)")
    if a.filter_groups.enable:
        _refuse("algorithm.filter_groups.enable", "TRL 1.16's GRPOTrainer has no dynamic sampling (DAPO's filter of "
                "groups with equal rewards and refill of the batch); set it to false")
    if a.use_kl_in_reward:
        _refuse("algorithm.use_kl_in_reward", "TRL has no KL term in the reward (use actor.use_kl_loss)")
    composer = cfg.rewards.composer()
    if gdpo and any(composer.scheduled_weights(x) != dict(composer.weights) for x in (0.0, 1.0)):
        _refuse("rewards.schedule", "TRL's scheduled reward functions return alpha(x) r and normalize_then_sum divides "
                "each function's rewards by their group std, which cancels alpha (sarl weights the normalised reward "
                "by w alpha(x)); use a constant schedule, or algorithm.reward_aggregation=sum_then_normalize")
    if ac.use_kl_loss and ac.kl_loss_type not in ("k3", "low_var_kl"):
        _refuse("actor.kl_loss_type", f"TRL's KL loss is k3; got {ac.kl_loss_type!r}")
    _check_policy_loss(cfg)
    if ac.entropy_coeff and ac.loss_agg_mode != "token-mean":
        _refuse("actor.entropy_coeff", "TRL averages the entropy bonus over tokens, which equals sarl's only under "
                "actor.loss_agg_mode=token-mean")
    if ac.trainable:
        _refuse("actor.trainable", "TRL trains every parameter of the model it is given")
    if t.strategy == "fsdp":
        _refuse("trainer.strategy", "TRL shards with accelerate's FSDP, chosen at launch (accelerate launch --use_fsdp, "
                "docs/TRL.md), not by the recipe")
    dual = _reads_clip_ratio_c(ac.policy_loss) and ac.clip_ratio_c is not None
    if dual and ac.clip_ratio_c <= 1 + ac.clip_ratio_high:
        _refuse("actor.clip_ratio_c", f"TRL's delta equals the dual clip only above 1 + clip_ratio_high = "
                f"{1 + ac.clip_ratio_high}; got {ac.clip_ratio_c}")


def _reads_clip_ratio_c(loss: str) -> bool:
    from sarl.algos import POLICY_LOSSES

    return "actor.clip_ratio_c" in POLICY_LOSSES.meta(loss)["options"].values()


def _check_policy_loss(cfg: TrainConfig) -> None:
    """Refuse a policy loss TRL lacks, and a loss_agg_mode that TRL's loss_type for it does not aggregate by."""
    from sarl.algos import POLICY_LOSSES

    ac = cfg.actor
    name = POLICY_LOSSES.canonical(ac.policy_loss)
    trl = TRL_POLICY_LOSSES.get(name)
    if trl is None:
        _refuse("actor.policy_loss", f"TRL's GRPOTrainer has no {name!r} policy loss (mapped: "
                f"{', '.join(TRL_POLICY_LOSSES)})")
    if trl.loss_type is not None and ac.loss_agg_mode != trl.loss_agg_mode:
        _refuse("actor.loss_agg_mode", f"TRL's loss_type={trl.loss_type!r} (actor.policy_loss={name}) aggregates as "
                f"{trl.loss_agg_mode}; got {ac.loss_agg_mode!r} (set actor.loss_agg_mode={trl.loss_agg_mode})")
    if trl.loss_type is None and ac.loss_agg_mode not in LOSS_TYPES:
        _refuse("actor.loss_agg_mode", f"TRL has no loss_type for {ac.loss_agg_mode!r} (mapped: "
                f"{', '.join(f'{k} -> {v}' for k, v in LOSS_TYPES.items())})")


def _loss_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The GRPOConfig fields of the policy loss: loss_type, importance_sampling_level, epsilon, epsilon_high,
    delta, the SAPO temperatures, mask_truncated_completions and the rollout correction's."""
    from sarl.algos import POLICY_LOSSES

    ac = cfg.actor
    name = POLICY_LOSSES.canonical(ac.policy_loss)
    trl = TRL_POLICY_LOSSES[name]
    return {"loss_type": trl.loss_type or LOSS_TYPES[ac.loss_agg_mode], "importance_sampling_level": trl.level,
            "epsilon": ac.clip_ratio_low,
            # TRL's cispo caps the weight at epsilon_high itself; sarl's at 1 + clip_ratio_high
            "epsilon_high": 1.0 + ac.clip_ratio_high if trl.loss_type == "cispo" else ac.clip_ratio_high,
            "delta": ac.clip_ratio_c if _reads_clip_ratio_c(name) else None,
            "sapo_temperature_pos": ac.sapo_temperature_pos, "sapo_temperature_neg": ac.sapo_temperature_neg,
            "mask_truncated_completions": ac.mask_truncated, **_correction_kwargs(cfg)}


def _correction_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """The GRPOConfig fields of ``rollout.correction`` (TRL's vLLM importance sampling and off-policy mask)."""
    c = cfg.rollout.correction
    kw: dict[str, Any] = {"vllm_importance_sampling_correction": c.mode != "none",
                          "off_policy_mask_threshold": c.off_policy_mask_threshold}
    if c.mode != "none":
        kw.update(vllm_importance_sampling_mode=c.mode, vllm_importance_sampling_clip_max=c.clip_max,
                  vllm_importance_sampling_clip_min=c.clip_min)
    return kw


def _device_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """``use_cpu`` off CUDA, and the precision: fp32 master weights (and AdamW state) always, bf16-mixed as
    TRL's bf16 autocast, ``auto`` resolved as the native trainer does."""
    import torch

    from sarl.models import ModelError, model_hidden_size
    from sarl.precision import resolve_precision

    m, t = cfg.model, cfg.trainer
    on_cuda = (m.device == "auto" or m.device.startswith("cuda")) and torch.cuda.is_available()
    try:  # the width decides auto on a CPU; a hub id TRL will fetch itself is not known here
        hidden = model_hidden_size(m.name) if t.precision == "auto" and not on_cuda else None
    except ModelError:
        hidden = None
    precision = resolve_precision(t.precision, "cuda" if on_cuda else "cpu", hidden)
    kw: dict[str, Any] = {"bf16": precision == "bf16-mixed", "fp16": False, "model_init_kwargs": {"dtype": "float32"}}
    if not on_cuda:
        kw["use_cpu"] = True
    return kw


def _vllm_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """TRL's colocated vLLM for ``rollout.backend=vllm``."""
    import torch

    d, r = cfg.data, cfg.rollout
    return {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": r.gpu_memory_utilization,
            "vllm_enable_sleep_mode": bool(r.free_cache_engine and torch.cuda.is_available()),
            "vllm_max_model_length": d.max_prompt_length + d.max_response_length}


def grpo_kwargs(cfg: TrainConfig, num_processes: int | None = None) -> dict[str, Any]:
    """The ``GRPOConfig`` keyword arguments of a validated sarl config (no TRL import; pure).
    ``num_processes``: the data-parallel world size (default: ``$WORLD_SIZE`` or 1)."""
    check_trl_can_run(cfg)
    procs = int(os.environ.get("WORLD_SIZE", "1")) if num_processes is None else int(num_processes)
    m, d, r, a, ac, t = cfg.model, cfg.data, cfg.rollout, cfg.algorithm, cfg.actor, cfg.trainer
    rollouts = t.prompts_per_step * r.n
    mini = ac.mini_batch_size or rollouts
    per_forward = ac.micro_batch_size * procs
    if mini % per_forward:
        raise ConfigError(f"actor.mini_batch_size: {mini} sequences per optimizer step must be a multiple of "
                          f"actor.micro_batch_size x processes = {ac.micro_batch_size} x {procs}")
    per_batch = ac.ppo_epochs * (rollouts // mini)  # optimizer steps per sarl step
    kw: dict[str, Any] = dict(  # keyword form mirrors GRPOConfig(...)
        output_dir=t.out_dir, seed=t.seed, max_steps=t.total_steps * per_batch,
        learning_rate=ac.lr, weight_decay=ac.weight_decay, warmup_steps=ac.warmup_steps,
        lr_scheduler_type="cosine" if ac.lr_schedule == "cosine" else "constant_with_warmup",
        max_grad_norm=ac.grad_clip, **_loss_kwargs(cfg),
        scale_rewards="group" if a.norm_adv_by_std_in_grpo else "none",
        multi_objective_aggregation=a.reward_aggregation,  # normalize_then_sum ignores scale_rewards
        beta=ac.kl_loss_coef if ac.use_kl_loss else 0.0, use_bias_correction_kl=False, num_iterations=ac.ppo_epochs,
        entropy_coef=float(ac.entropy_coeff),
        num_generations=r.n, temperature=r.temperature, top_p=r.top_p, top_k=0,
        max_completion_length=d.max_response_length, shuffle_dataset=d.shuffle,
        per_device_train_batch_size=ac.micro_batch_size, gradient_accumulation_steps=mini // per_forward,
        generation_batch_size=rollouts,
        remove_unused_columns=False,
        logging_steps=per_batch, save_total_limit=t.keep_last,
        report_to=[x for x in t.logger if x in REPORTERS and (x != "tensorboard" or t.tensorboard)] or "none",
        reward_weights=[float(w) for w in cfg.rewards.weights.values()],
    )
    if t.save_every:
        kw.update(save_strategy="steps", save_steps=t.save_every * per_batch)
    else:
        kw["save_strategy"] = "no"
    if m.gradient_checkpointing:
        kw["gradient_checkpointing"] = True
    if r.backend == "vllm":
        kw.update(_vllm_kwargs(cfg))
    kw.update(_device_kwargs(cfg))
    return kw


def grpo_config(recipe: str | Path | TrainConfig, *, num_processes: int | None = None, **overrides: Any):
    """``(GRPOConfig, reward_funcs)`` reproducing a sarl recipe (a shipped name such as ``"sa_grpo"``, a
    YAML file, or a :class:`~sarl.config.TrainConfig` from ``load_config(name, ["key=value", ...])``).

    ``overrides`` are ``GRPOConfig`` fields set after the mapping (e.g. ``output_dir``, ``bf16``). The
    reward functions are :class:`~sarl.integrations.trl.SarlReward` objects in the order of
    ``GRPOConfig.reward_weights``; SAR and the other policy rewards need the trainer (use
    :class:`~sarl.integrations.trl.SARGRPOTrainer`, which binds them)."""
    from trl import GRPOConfig

    from sarl.integrations.trl.reward import sarl_reward_funcs

    cfg = _resolve(recipe)
    kw = grpo_kwargs(cfg, num_processes)
    kw.update(overrides)
    try:
        args = GRPOConfig(**kw)
    except TypeError as exc:
        raise ConfigError(f"grpo_config: {exc} (GRPOConfig of TRL does not take it)") from None
    funcs, _ = sarl_reward_funcs(dict(cfg.rewards.weights), dict(cfg.rewards.options), answer_tokens="sampled",
                                 max_batch_tokens=cfg.actor.max_tokens_per_forward,
                                 temperature=None, schedule=cfg.rewards.schedule, metadata_column="metadata")
    return args, funcs
