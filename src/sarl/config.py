"""Training configuration: dataclasses with help on every field (one place for defaults), YAML recipes,
dotted command-line overrides, and validation that names the key and the allowed values.

    cfg = load_config("configs/sa_grpo.yaml", ["rewards.weights.sar=0.3", "trainer.total_steps=20"])
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sarl.errors import SarlError
from sarl.prompts import DEFAULT_SYSTEM_PROMPT
from sarl.rewards.compose import Schedule


class ConfigError(SarlError):
    """An invalid configuration key or value; the message names the key and what is allowed."""


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}: {value!r} is not allowed; choose one of: {', '.join(map(str, allowed))}")


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass
class ModelConfig:
    name: str | None = None
    """Policy: a built-in name (default smollm2-135m; ``tiny-random`` for tests), a local HF folder or a hub id."""
    dtype: str = "auto"
    """auto (fp32 on CPU, bf16 on GPU), float32, bfloat16."""
    device: str = "auto"
    """auto (cuda if present), cpu, cuda."""
    threads: int | None = None
    """CPU threads for torch."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (less memory, ~30% slower)."""


@dataclass
class DataConfig:
    train: str = "gsm_symbolic"
    """Training dataset: a built-in name (``sarl data list``) or a local JSONL/Parquet file."""
    train_size: int | None = None
    """Size of a generated (reasoning-gym) training set; None: the generator default."""
    train_limit: int | None = None
    """Use only the first N training problems."""
    val: str | None = None
    """Validation dataset (greedy, correctness only, as the reference validates); None: no validation."""
    val_limit: int | None = 50
    """Validation problems."""
    val_seed: int = 1234
    """Seed of a generated validation set (different from trainer.seed, so it does not repeat training items)."""
    instruction: str = "noformat"
    """Prompt instruction: noformat (the reference's), format ("Answer: xxx"), none."""
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    """System prompt of every prompt (and of the SAR null context)."""
    max_prompt_length: int = 512
    """Prompts longer than this (tokens) are cut from the left."""
    max_response_length: int = 256
    """Generation limit in tokens (also L_max for the overlong / cosine rewards)."""
    shuffle: bool = True
    """Shuffle the training set each epoch (seeded by trainer.seed and the epoch)."""


@dataclass
class RolloutConfig:
    n: int = 4
    """Rollouts per prompt (the GRPO group size)."""
    temperature: float = 1.0
    """Sampling temperature; the same value divides the logits of every log-prob pass."""
    top_p: float = 1.0
    """Nucleus sampling."""
    batch_size: int = 32
    """Sequences decoded together."""


@dataclass
class AlgorithmConfig:
    adv_estimator: str = "grpo"
    """grpo, gae (PPO with a critic), rloo, reinforce_plus_plus, grpo_weighted."""
    norm_adv_by_std_in_grpo: bool = False
    """Divide GRPO advantages by the group std (False = Dr.GRPO, the reference's setting)."""
    advantage_weighting_in_grpo: bool = False
    """GRPO: normalise each reward component within the group separately, then weight (reference option;
    the same as adv_estimator=grpo_weighted; the weight schedule applies)."""
    gamma: float = 1.0
    """Discount (GAE, REINFORCE++)."""
    lam: float = 1.0
    """GAE lambda."""
    use_kl_in_reward: bool = False
    """Subtract kl_coef * KL(policy || reference) from the token rewards."""
    kl_penalty: str = "k1"
    """KL estimator in the reward: k1, k2, k3 (aliases kl, mse, low_var_kl, abs)."""
    kl_coef: float = 0.001
    """Weight of the in-reward KL."""

    @property
    def estimator(self) -> str:
        """The registered estimator this section selects (``advantage_weighting_in_grpo`` turns grpo
        into grpo_weighted)."""
        from sarl.algos import ADV_ESTIMATORS

        name = ADV_ESTIMATORS.canonical(self.adv_estimator)
        return "grpo_weighted" if name == "grpo" and self.advantage_weighting_in_grpo else name


@dataclass
class ActorConfig:
    lr: float = 1e-6
    """AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    warmup_steps: int = 0
    """Linear warm-up (optimizer steps)."""
    lr_schedule: str = "constant"
    """constant or cosine (after warm-up, to 0 at the last optimizer step)."""
    grad_clip: float = 1.0
    """Max global gradient norm; a non-finite norm skips the step."""
    clip_ratio_low: float = 0.2
    """PPO clip: ratio >= 1 - clip_ratio_low."""
    clip_ratio_high: float = 0.2
    """PPO clip: ratio <= 1 + clip_ratio_high (larger = clip-higher, DAPO)."""
    clip_ratio_c: float | None = 3.0
    """Dual-clip constant for negative advantages (None disables)."""
    loss_agg_mode: str = "token-mean"
    """token-mean, seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm (Dr.GRPO)."""
    ppo_epochs: int = 1
    """Passes over each step's rollouts."""
    mini_batch_size: int | None = None
    """Sequences per optimizer step (None: all rollouts of the step, one optimizer step)."""
    micro_batch_size: int = 8
    """Sequences per forward/backward; gradients accumulate to the mini-batch exactly."""
    use_kl_loss: bool = False
    """Add kl_loss_coef * KL(policy || reference) to the actor loss (GRPO's usual KL)."""
    kl_loss_coef: float = 0.001
    """Weight of the KL loss."""
    kl_loss_type: str = "k3"
    """KL estimator of the loss: k1, k2, k3 (low_var_kl)."""
    entropy_coeff: float = 0.0
    """Entropy bonus weight (0 = off, the reference's default)."""


@dataclass
class CriticConfig:
    lr: float = 1e-5
    """Critic AdamW learning rate (PPO only)."""
    cliprange_value: float = 0.5
    """Value clipping around the old values."""
    grad_clip: float = 1.0
    """Max critic gradient norm."""


@dataclass
class RewardsConfig:
    weights: dict[str, float] = field(default_factory=lambda: {"correctness": 1.0})
    """Reward name → weight (the reference's reward_types / reward_factors); names from the reward registry."""
    options: dict[str, dict] = field(default_factory=dict)
    """Reward name → options, e.g. {sar: {use_log: true}}."""
    schedule: Schedule = field(default_factory=Schedule)
    """Scales every reward except correctness: type (constant, linear), peak_pos, bottom, increase, decrease."""


@dataclass
class TrainerConfig:
    total_steps: int = 10
    """Training steps (one generate + update round each)."""
    prompts_per_step: int = 8
    """Prompts sampled per step (each gets rollout.n responses)."""
    seed: int = 0
    """Seed of data order, sampling and initialisation."""
    out_dir: str = "runs/train"
    """Checkpoints, metrics.jsonl, TensorBoard logs and the final model go here."""
    save_every: int = 0
    """Checkpoint every N steps (0: only at the end)."""
    keep_last: int = 2
    """Checkpoints kept."""
    val_every: int = 0
    """Validate every N steps (0: only at the end, if data.val is set)."""
    val_before_train: bool = False
    """Validate the starting model first."""
    max_bad_steps: int = 3
    """Abort after this many consecutive steps with a non-finite loss."""
    tensorboard: bool = True
    """Also write TensorBoard event files (if the tensorboard package is installed)."""


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    critic: CriticConfig = field(default_factory=CriticConfig)
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def validate(self) -> TrainConfig:
        """Cross-field checks; raises :class:`ConfigError` naming the key and the fix."""
        from sarl.algos import ADV_ESTIMATORS, KL_ESTIMATORS, LOSS_AGG_MODES
        from sarl.rewards import RewardComposer

        a, ac, r, t = self.algorithm, self.actor, self.rollout, self.trainer
        _choice("algorithm.adv_estimator", a.adv_estimator, ADV_ESTIMATORS.names)
        _choice("algorithm.kl_penalty", a.kl_penalty, tuple(KL_ESTIMATORS))
        _choice("actor.kl_loss_type", ac.kl_loss_type, tuple(KL_ESTIMATORS))
        _choice("actor.loss_agg_mode", ac.loss_agg_mode, tuple(LOSS_AGG_MODES))
        _choice("actor.lr_schedule", ac.lr_schedule, ("constant", "cosine"))
        _choice("data.instruction", self.data.instruction, ("noformat", "format", "none"))
        _choice("rewards.schedule.type", self.rewards.schedule.type, ("constant", "linear"))
        for key, val in (("actor.lr", ac.lr), ("rollout.temperature", r.temperature),
                         ("trainer.total_steps", t.total_steps), ("trainer.prompts_per_step", t.prompts_per_step),
                         ("rollout.n", r.n), ("actor.micro_batch_size", ac.micro_batch_size),
                         ("data.max_response_length", self.data.max_response_length),
                         ("data.max_prompt_length", self.data.max_prompt_length), ("actor.ppo_epochs", ac.ppo_epochs)):
            _positive(key, val)
        if "groups" in ADV_ESTIMATORS.meta(a.estimator)["needs"] and r.n < 2:
            raise ConfigError(f"rollout.n: {a.estimator} compares rollouts of the same prompt and needs n >= 2, got {r.n}")
        rollouts = t.prompts_per_step * r.n
        mb = ac.mini_batch_size or rollouts
        if mb > rollouts or rollouts % mb:
            raise ConfigError(f"actor.mini_batch_size: must divide the {rollouts} rollouts per step "
                              f"(trainer.prompts_per_step x rollout.n), got {mb}")
        if a.advantage_weighting_in_grpo and a.adv_estimator != "grpo":
            raise ConfigError("algorithm.advantage_weighting_in_grpo: needs algorithm.adv_estimator=grpo")
        if "reward_components" in ADV_ESTIMATORS.meta(a.estimator)["needs"] and a.use_kl_in_reward:
            raise ConfigError(f"algorithm.use_kl_in_reward: {a.estimator} weights the reward components and "
                              "cannot include a per-token KL reward; use actor.use_kl_loss")
        try:
            RewardComposer(dict(self.rewards.weights), dict(self.rewards.options), self.rewards.schedule)
        except ValueError as exc:  # unknown names (UnknownNameError is a ValueError) and bad options
            msg = exc.args[0] if exc.args else str(exc)
            raise ConfigError(f"rewards: {msg}") from None
        return self


def _from_dict(cls, data: dict[str, Any], prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, val in data.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key; allowed: {', '.join(fields)}")
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = _from_dict(typ, val or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", val, typ)
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a section's own checks (e.g. Schedule)
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: {exc}") from None


def _coerce(key: str, val: Any, typ) -> Any:
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if val is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, val, inner[0])
    if origin is dict:
        if not isinstance(val, dict):
            raise ConfigError(f"{key}: expected a mapping, got {val!r}")
        return dict(val)
    if typ is bool:
        if isinstance(val, bool):
            return val
        raise ConfigError(f"{key}: expected true or false, got {val!r}")
    if typ is int:
        if isinstance(val, bool) or not isinstance(val, int):
            raise ConfigError(f"{key}: expected an integer, got {val!r}")
        return val
    if typ is float:
        if isinstance(val, str):  # YAML 1.1 reads "1e-3" (no dot) as text
            try:
                return float(val)
            except ValueError:
                pass
        if isinstance(val, bool) or not isinstance(val, int | float):
            raise ConfigError(f"{key}: expected a number, got {val!r}")
        return float(val)
    if typ is str:
        if not isinstance(val, str):
            raise ConfigError(f"{key}: expected text, got {val!r}")
        return val
    return val


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    cur = data
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
        if not isinstance(cur, dict):
            raise ConfigError(f"{dotted}: {p} is not a section")
    cur[parts[-1]] = value


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A recipe (YAML, optional) plus ``key.sub=value`` overrides (values parsed as YAML), validated."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"{p}: no such recipe; see the configs/ folder")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        data.pop("description", None)
    for ov in overrides or []:
        if "=" not in ov:
            raise ConfigError(f"override {ov!r}: expected key.sub=value")
        key, raw = ov.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        _set_dotted(data, key.strip(), value)
    # dict-valued fields (rewards.weights) are replaced by a recipe but updated by a dotted override
    cfg = _from_dict(TrainConfig, data)
    return cfg.validate()

