"""verl's (and the SAR reference's) command-line keys as aliases of sarl's, with verl's meanings, so
that the arguments of the reference's training scripts can be pasted after ``sarl train``.

    sarl train cpu/sa_grpo actor_rollout_ref.rollout.n=6 data.train_batch_size=8 \\
        actor_rollout_ref.actor.ppo_mini_batch_size=4 trainer.reward_types=[base,ppl_qa] trainer.reward_factors=[1,0.2]

:func:`translate` turns such overrides into sarl's. Three kinds of keys (the tables below are the
documentation; ``docs/REFERENCE.md`` shows them too):

- :data:`RENAMED`: the same setting under another name (``actor_rollout_ref.actor.optim.lr`` →
  ``actor.lr``), or one that needs a conversion: verl's ``ppo_mini_batch_size`` counts *prompts*, sarl's
  ``actor.mini_batch_size`` counts sequences, so it becomes ``ppo_mini_batch_size × rollout.n``;
  ``trainer.reward_types`` + ``trainer.reward_factors`` become ``rewards.weights``; lists of one file
  become a path; ``clip_ratio`` sets both clip bounds.
- :data:`IGNORED`: engine, logging or cluster settings with no effect on what ``sarl train`` computes
  (sharding, offload, vLLM memory, GPU counts, experiment names); accepted, and reported as ignored.
- anything else under verl's own sections (``actor_rollout_ref.``, ``trainer.`` keys sarl does not know)
  is refused with the reason (and the closest key sarl maps or ignores, for a typo): a setting that
  would change the run must not be dropped silently.
- :data:`REFUSED`: verl settings sarl has no equivalent of with verl's meaning (verl 0.9's GDPO, verl's
  cispo), refused with the difference and sarl's nearest setting.
- :data:`VALUE_NOTES`: verl values translated with a difference that one more sarl setting removes
  (verl's gspo has no dual clip; its sapo ignores ``loss_agg_mode``); the note says which setting.

:func:`sarl.config.load_config` translates (once); ``load_config_with_notes`` also returns the notes.

Keys that verl and sarl spell the same (``algorithm.adv_estimator``, ``data.max_response_length``,
``algorithm.filter_groups.enable`` / ``.metric`` / ``.max_num_gen_batches``, ...) need no translation.
"""

from __future__ import annotations

from typing import Any

from sarl.errors import ConfigError
from sarl.registry import close_matches, did_you_mean
from sarl.settings import parse_value

_A = "actor_rollout_ref.actor."
RENAMED: dict[str, str] = {
    "actor_rollout_ref.model.path": "model.name",
    "actor_rollout_ref.model.enable_gradient_checkpointing": "model.gradient_checkpointing",
    _A + "optim.lr": "actor.lr",
    _A + "optim.weight_decay": "actor.weight_decay",
    _A + "optim.lr_warmup_steps": "actor.warmup_steps",
    _A + "optim.warmup_style": "actor.lr_schedule",
    _A + "loss_agg_mode": "actor.loss_agg_mode",
    _A + "ppo_mini_batch_size": "actor.mini_batch_size",  # prompts in verl: x rollout.n below
    _A + "ppo_micro_batch_size": "actor.micro_batch_size",
    _A + "ppo_micro_batch_size_per_gpu": "actor.micro_batch_size",
    _A + "ppo_epochs": "actor.ppo_epochs",
    _A + "ppo_max_token_len_per_gpu": "actor.max_tokens_per_forward",
    "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu": "actor.max_tokens_per_forward",
    "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu": "actor.max_tokens_per_forward",
    _A + "grad_clip": "actor.grad_clip",
    _A + "strategy": "trainer.strategy",  # verl's fsdp / fsdp2 -> fsdp; megatron refused
    _A + "clip_ratio": "actor.clip_ratio_low",  # and clip_ratio_high
    _A + "clip_ratio_low": "actor.clip_ratio_low",
    _A + "clip_ratio_high": "actor.clip_ratio_high",
    _A + "clip_ratio_c": "actor.clip_ratio_c",
    _A + "policy_loss.loss_mode": "actor.policy_loss",  # vanilla, gspo, sapo (notes below); cispo refused
    _A + "tau_pos": "actor.sapo_temperature_pos",
    _A + "tau_neg": "actor.sapo_temperature_neg",
    _A + "use_kl_loss": "actor.use_kl_loss",
    _A + "kl_loss_coef": "actor.kl_loss_coef",
    _A + "kl_loss_type": "actor.kl_loss_type",
    _A + "entropy_coeff": "actor.entropy_coeff",
    "actor_rollout_ref.rollout.n": "rollout.n",
    "actor_rollout_ref.rollout.temperature": "rollout.temperature",
    "actor_rollout_ref.rollout.top_p": "rollout.top_p",
    "actor_rollout_ref.rollout.name": "rollout.backend",  # vllm | hf (verl's sglang is refused by the choices)
    "actor_rollout_ref.rollout.gpu_memory_utilization": "rollout.gpu_memory_utilization",
    "actor_rollout_ref.rollout.free_cache_engine": "rollout.free_cache_engine",
    "algorithm.kl_ctrl.kl_coef": "algorithm.kl_coef",
    "critic.optim.lr": "critic.lr",
    "data.train_files": "data.train",
    "data.val_files": "data.val",
    "data.train_batch_size": "trainer.prompts_per_step",
    "trainer.total_training_steps": "trainer.total_steps",
    "trainer.save_freq": "trainer.save_every",
    "trainer.test_freq": "trainer.val_every",
    "trainer.default_local_dir": "trainer.out_dir",
    "trainer.reward_types": "rewards.weights",  # with trainer.reward_factors
    "trainer.reward_factors": "rewards.weights",
}
# Prefixes renamed as a whole: trainer.ppl_qa.use_log -> rewards.options.sar.use_log, ...
RENAMED_PREFIXES = {"trainer.ppl_qa.": "rewards.options.sar.", "trainer.alpha_scheduler.": "rewards.schedule."}
IGNORED: dict[str, str] = {
    "actor_rollout_ref.model.use_remove_padding": "sarl packs no padding into the LM head anyway",
    _A + "fsdp_config.": "FSDP wrap and offload settings (trainer.strategy=fsdp shards each decoder layer, no offload)",
    "actor_rollout_ref.ref.fsdp_config.": "FSDP wrap and offload settings (the reference model is sharded with the policy)",
    _A + "optim.total_training_steps": "the schedule follows trainer.total_steps",
    "actor_rollout_ref.rollout.tensor_model_parallel_size": "vLLM parallelism",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size": "log-prob passes are batched by a token budget",
    "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu": "log-prob passes are batched by a token budget",
    "actor_rollout_ref.ref.log_prob_micro_batch_size": "log-prob passes are batched by a token budget",
    "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu": "log-prob passes are batched by a token budget",
    "data.prompt_key": "sarl reads question, problem or the prompt's user message (docs: data files)",
    "data.val_proportion": "validation uses data.val_limit problems",
    "data.filter_overlong_prompts": "prompts are cut from the left to data.max_prompt_length",
    "data.truncation": "prompts are cut from the left (verl's 'left')",
    "trainer.project_name": "experiment naming",
    "trainer.experiment_name": "experiment naming",
    "trainer.n_gpus_per_node": "cluster size",
    "trainer.nnodes": "cluster size",
    "trainer.critic_warmup": "the critic trains from the first step",
    "trainer.val_only": "use sarl eval",
    "trainer.total_epochs": "the run length is trainer.total_steps",
    "algorithm.filter_groups.max_inflight_gen_batches": "dynamic sampling generates one round at a time",
    "algorithm.filter_groups._target_": "verl's dataclass target",
    "algorithm.rollout_correction._target_": "verl's dataclass target",
    # =true is refused (REFUSED): false is verl's default and sarl's behaviour
    "algorithm.rollout_correction.bypass_mode": "sarl computes log pi_old with the trainer (verl's decoupled mode)",
    "algorithm.rollout_correction.rollout_is_batch_normalize": "no batch normalisation, as sarl",
    "algorithm.rollout_correction.loss_type": "used by verl's bypass mode only",
    "algorithm.rollout_correction.rollout_rs_threshold": "used by rollout_rs only",
}
# verl's rollout correction (algorithm.rollout_correction.rollout_is + rollout_is_threshold) -> rollout.correction
_RC = "algorithm.rollout_correction."
# verl's own sections: a key there that is neither renamed nor ignored is refused.
VERL_SECTIONS = ("actor_rollout_ref.", "trainer.ppl_qa.", "trainer.alpha_scheduler.")
# verl 0.9 settings whose meaning sarl does not reproduce (``key`` or ``key=value``): refused with the reason.
_GDPO = ("verl 0.9's GDPO (algorithm.adv_estimator=gdpo with algorithm.gdpo_reward_keys / gdpo_reward_weights) "
         "group-normalises each reward (eps 1e-6) and whitens the weighted sum over the batch's response tokens "
         "(verl's masked_whiten: a length-weighted mean and variance), not per sequence; sarl has GDPO as TRL "
         "computes it (per sequence, eps 1e-4, weights rewards.weights): algorithm.adv_estimator=grpo "
         "algorithm.reward_aggregation=normalize_then_sum algorithm.norm_adv_by_std_in_grpo=true")
_LOSS_MODE = _A + "policy_loss.loss_mode"
_RS = ("verl's rejection sampling (rollout_rs, thresholds on token or sequence log-ratio statistics) is not "
       "sarl's; sarl masks importance weights outside [clip_min, clip_max] (rollout.correction.mode=token_mask or "
       "sequence_mask) and off-policy sequences (rollout.correction.off_policy_mask_threshold)")
REFUSED: dict[str, str] = {
    "algorithm.rollout_correction.bypass_mode=true": "verl's bypass mode uses the rollout's log-probs as log pi_old; "
                                                     "sarl always recomputes log pi_old with the trainer and weights "
                                                     "the loss by pi_old / pi_sampler (rollout.correction)",
    "algorithm.rollout_correction.rollout_is_batch_normalize=true": "sarl does not renormalise the importance "
                                                                    "weights to mean 1 over the batch (neither does TRL)",
    "algorithm.adv_estimator=gdpo": _GDPO, "algorithm.gdpo_reward_keys": _GDPO,
    "algorithm.gdpo_reward_weights": _GDPO,
    _LOSS_MODE + "=cispo": "verl's cispo clips the importance weight to [1 - clip_ratio_low, 1 + clip_ratio_high]; "
                           "sarl's is TRL's (loss_type=cispo), capped from above only, at 1 + clip_ratio_high: "
                           "actor.policy_loss=cispo",
}
# verl values sarl translates with a difference that one more sarl setting removes: a note says which.
VALUE_NOTES: dict[str, str] = {
    _LOSS_MODE + "=gspo": "verl's gspo has no dual clip; sarl's (as TRL's delta) caps a token's loss at "
                          "-A actor.clip_ratio_c where A < 0 (set actor.clip_ratio_c=null for verl's)",
    _LOSS_MODE + "=sapo": "verl (and TRL) aggregate SAPO's policy term as seq-mean-token-mean whatever "
                          "loss_agg_mode says; sarl uses actor.loss_agg_mode (set it to seq-mean-token-mean)",
}


def _ignored(key: str) -> str | None:
    for k, why in IGNORED.items():
        if key == k or (k.endswith(".") and key.startswith(k)):
            return why
    return None


def _suggest(key: str) -> str:
    """``" (did you mean 'k'?)"`` for the verl key closest to ``key`` that sarl maps or ignores. Leaf names are
    compared within the same section (a long shared prefix would make any two keys of a section look
    alike); the whole key only for a typo in the section itself."""
    parent, _, leaf = key.rpartition(".")
    known = [*RENAMED, *(k for k in IGNORED if not k.endswith("."))]
    parts = key.split(".")  # under a prefix renamed or ignored as a whole: the prefix and the key's own tail
    known += [p + ".".join(parts[p.count("."):]) for p in (*RENAMED_PREFIXES, *(k for k in IGNORED if k.endswith(".")))]
    siblings = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == parent}
    close = close_matches(leaf, siblings, n=1)
    if close:
        return f" (did you mean {siblings[close[0]]!r}?)"
    return did_you_mean(key, known, cutoff=0.9)


def _one_path(key: str, value: Any) -> Any:
    if isinstance(value, list):
        if len(value) != 1:
            raise ConfigError(f"{key}: sarl trains on one data file or dataset; got {len(value)}: {value}")
        return value[0]
    return value


def translate(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``(sarl overrides, notes)`` for overrides that may use verl's keys (see the module docstring).
    ``notes`` say which keys were ignored and why; unknown keys of verl's sections raise
    :class:`ConfigError`. sarl's own keys pass through unchanged (in their order)."""
    out: list[str] = []
    notes: list[str] = []
    types = factors = mini = None
    correction: dict[str, str] = {}
    for ov in overrides:
        key, sep, raw = ov.partition("=")
        key = key.strip()
        why = REFUSED.get(key) or REFUSED.get(key + "=" + raw.strip().strip("'\""))
        if why is not None:
            raise ConfigError(f"{key}: {why}")
        if not sep:
            out.append(ov)
            continue
        if key in (_RC + "rollout_is", _RC + "rollout_is_threshold"):
            correction[key[len(_RC):]] = raw.strip().strip("'\"")
            continue
        if key == _RC + "rollout_rs":
            if parse_value(raw) is not None:
                raise ConfigError(f"{key}={raw}: {_RS}")
            notes.append(f"{key}: ignored (no rejection sampling, as sarl)")
            continue
        prefix = next((p for p in RENAMED_PREFIXES if key.startswith(p)), None)
        if key not in RENAMED and prefix is None:
            why = _ignored(key)
            if why is not None:
                notes.append(f"{key}: ignored ({why})")
            elif key.startswith(VERL_SECTIONS) or (key.startswith("trainer.") and key.count(".") > 1):
                raise ConfigError(f"{key}: a verl key sarl does not map{_suggest(key)}; see sarl.verl_keys for the ones it maps "
                                  "and ignores, or use sarl's own key (sarl train --help, docs/REFERENCE.md)")
            else:
                out.append(ov)
            continue
        value = parse_value(raw)
        if prefix is not None:
            out.append(f"{RENAMED_PREFIXES[prefix]}{key[len(prefix):]}={raw}")
        elif key == "trainer.reward_types":
            types = value
        elif key == "trainer.reward_factors":
            factors = value
        elif key == _A + "ppo_mini_batch_size":
            mini = value
        elif key in ("data.train_files", "data.val_files"):
            out.append(f"{RENAMED[key]}={_one_path(key, value)}")
        elif key == _A + "strategy":
            if value not in ("fsdp", "fsdp2"):
                raise ConfigError(f"{key}={value}: sarl shards with FSDP2 only (fsdp, fsdp2 -> trainer.strategy=fsdp)")
            out.append("trainer.strategy=fsdp")
        elif key == _A + "clip_ratio":
            out += [f"actor.clip_ratio_low={raw}", f"actor.clip_ratio_high={raw}"]
        else:
            out.append(f"{RENAMED[key]}={raw}")
        note = VALUE_NOTES.get(f"{key}={value}")
        if note is not None:
            notes.append(f"{key}={value}: {note}")
    if (types is None) != (factors is None):
        raise ConfigError("trainer.reward_types and trainer.reward_factors go together (names and their weights)")
    if types is not None:
        if not isinstance(types, list) or not isinstance(factors, list) or len(types) != len(factors):
            raise ConfigError(f"trainer.reward_types {types!r} and trainer.reward_factors {factors!r} must be "
                              "lists of the same length")
        out.append("rewards.weights={" + ", ".join(f"{t}: {f}" for t, f in zip(types, factors)) + "}")
    if mini is not None:
        out.append(f"{MINI_BATCH_PROMPTS}={mini}")
    return out + _rollout_correction(correction), notes


def _rollout_correction(given: dict[str, str]) -> list[str]:
    """verl's ``algorithm.rollout_correction.rollout_is`` (token, sequence, null) and ``rollout_is_threshold``
    (default 2.0: a float is truncation at that upper bound, TIS; ``"lower_upper"`` masks weights outside
    the bounds, IcePop) as ``rollout.correction`` overrides. The threshold alone changes nothing (verl's
    ``rollout_is`` defaults to null)."""
    level = given.get("rollout_is")
    if level is None or parse_value(level) is None:
        return ["rollout.correction.mode=none"] if level is not None else []
    if level not in ("token", "sequence"):
        raise ConfigError(f"{_RC}rollout_is: token, sequence or null; got {level!r}")
    spec = given.get("rollout_is_threshold", "2.0")
    try:
        bounds = [float(x) for x in spec.split("_", 1)]
    except ValueError:
        raise ConfigError(f"{_RC}rollout_is_threshold: a number (upper bound) or 'lower_upper'; got {spec!r}") from None
    if len(bounds) == 1:
        return [f"rollout.correction.mode={level}_truncate", f"rollout.correction.clip_max={bounds[0]}",
                "rollout.correction.clip_min=null"]
    return [f"rollout.correction.mode={level}_mask", f"rollout.correction.clip_min={bounds[0]}",
            f"rollout.correction.clip_max={bounds[1]}"]


# A pseudo-key resolved by sarl.config.load_config once rollout.n is known (prompts -> sequences).
MINI_BATCH_PROMPTS = "actor.mini_batch_prompts"
