"""sarl.config: a config is frozen once built, the reward composer is built once (by validation), verl's
keys are translated once (notes for the CLI), and unknown keys get a did-you-mean."""

from __future__ import annotations

import dataclasses

import pytest

from sarl.config import ConfigError, TrainConfig, load_config, load_config_with_notes


def test_every_section_is_frozen():
    cfg = load_config(None, ["trainer.total_steps=3"])
    for section in dataclasses.fields(cfg):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(getattr(cfg, section.name), dataclasses.fields(getattr(cfg, section.name))[0].name, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.trainer.strategy = "fsdp"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.trainer = cfg.trainer
    # a different config is a new one, validated as it is built
    other = dataclasses.replace(cfg, trainer=dataclasses.replace(cfg.trainer, strategy="fsdp"))
    assert (other.trainer.strategy, cfg.trainer.strategy, other.trainer.total_steps) == ("fsdp", "ddp", 3)
    with pytest.raises(ConfigError, match="trainer.strategy: 'zero3' is not allowed"):
        dataclasses.replace(cfg.trainer, strategy="zero3")


def test_the_reward_composer_is_built_once_by_validation(monkeypatch):
    from sarl.rewards import RewardComposer

    built = []
    post_init = RewardComposer.__post_init__

    def counting(self):
        built.append(self)
        post_init(self)

    monkeypatch.setattr(RewardComposer, "__post_init__", counting)
    cfg = load_config(None, ["rewards.weights={correctness: 1.0, sar: 0.2}", "rewards.options={sar: {use_log: true}}",
                             "rewards.schedule={type: linear, increase: true}"])
    assert len(built) == 1
    comp = cfg.rewards.composer()
    assert comp is built[0] and cfg.rewards.composer() is comp and len(built) == 1
    assert comp.weights == {"correctness": 1.0, "sar": 0.2} and comp.schedule == cfg.rewards.schedule
    assert "logp_a" in comp.needs
    assert TrainConfig().rewards.composer().weights == {"correctness": 1.0}
    with pytest.raises(ConfigError, match="rewards: unknown reward 'sars'"):
        load_config(None, ["rewards.weights={sars: 1}"])


def test_verl_keys_are_translated_once_and_the_cli_prints_the_notes(monkeypatch, capsys):
    import sarl.train
    import sarl.verl_keys
    from sarl.cli import main

    calls = []
    translate = sarl.verl_keys.translate

    def counting(overrides):
        calls.append(list(overrides))
        return translate(overrides)

    monkeypatch.setattr(sarl.verl_keys, "translate", counting)
    cfg, notes = load_config_with_notes(None, ["trainer.n_gpus_per_node=8", "actor_rollout_ref.actor.optim.lr=2e-6"])
    assert cfg.actor.lr == 2e-6 and notes == ["trainer.n_gpus_per_node: ignored (cluster size)"] and len(calls) == 1
    assert load_config(None, ["trainer.nnodes=2"]).actor.lr == 1e-6 and len(calls) == 2

    seen = []
    monkeypatch.setattr(sarl.train, "train", lambda cfg, **kw: seen.append(cfg) or {"final_model": "x"})
    monkeypatch.setattr("sarl.train.distributed.launched_rank", lambda: 1)  # rank != 0: no progress bar
    calls.clear()
    assert main(["train", "--tiny", "model.name=tiny-random", "trainer.nnodes=2",
                 "actor_rollout_ref.actor.optim.lr=3e-6"]) == 0
    assert len(calls) == 1 and seen[0].actor.lr == 3e-6 and seen[0].trainer.total_steps == 2
    assert "trainer.nnodes: ignored (cluster size)" in capsys.readouterr().err


def test_unknown_keys_suggest_the_closest():
    with pytest.raises(ConfigError, match=r"actor.lrr: unknown key \(did you mean 'lr'\?\); allowed: lr, "):
        load_config(None, ["actor.lrr=1"])
    with pytest.raises(ConfigError, match=r"trainer.total_step: unknown key \(did you mean 'total_steps'\?\)"):
        load_config(None, ["trainer.total_step=1"])
    with pytest.raises(ConfigError, match=r"actor.lr_rate: unknown key; allowed"):  # nothing close
        load_config(None, ["actor.lr_rate=1"])
    with pytest.raises(ConfigError, match=r"actor_rollout_ref.rollout.temprature: a verl key sarl does not map "
                                          r"\(did you mean 'actor_rollout_ref.rollout.temperature'\?\); see"):
        load_config(None, ["actor_rollout_ref.rollout.temprature=0.7"])
    with pytest.raises(ConfigError, match=r"actor_rollout_ref.actr.optim.lr: a verl key sarl does not map "
                                          r"\(did you mean 'actor_rollout_ref.actor.optim.lr'\?\)"):
        load_config(None, ["actor_rollout_ref.actr.optim.lr=1e-6"])
    with pytest.raises(ConfigError, match=r"actor_rollout_ref.actor.fsdp_confg.param_offload: a verl key sarl does "
                                          r"not map \(did you mean 'actor_rollout_ref.actor.fsdp_config.param_offload'"):
        load_config(None, ["actor_rollout_ref.actor.fsdp_confg.param_offload=true"])
    # a setting verl has and sarl does not: refused without a misleading suggestion
    with pytest.raises(ConfigError, match=r"use_dynamic_bsz: a verl key sarl does not map; see"):
        load_config(None, ["actor_rollout_ref.actor.use_dynamic_bsz=True"])


def test_policy_loss_keys_and_verls_loss_mode():
    cfg = load_config(None, [])
    assert (cfg.actor.policy_loss, cfg.actor.mask_truncated) == ("vanilla", False)
    assert (cfg.actor.sapo_temperature_pos, cfg.actor.sapo_temperature_neg) == (1.0, 1.05)  # TRL's defaults
    verl = "actor_rollout_ref.actor."
    cfg, notes = load_config_with_notes(None, [f"{verl}policy_loss.loss_mode=sapo", f"{verl}tau_pos=1.5",
                                               f"{verl}tau_neg=2.5"])
    assert (cfg.actor.policy_loss, cfg.actor.sapo_temperature_pos, cfg.actor.sapo_temperature_neg) == ("sapo", 1.5, 2.5)
    assert notes == [(f"{verl}policy_loss.loss_mode=sapo: verl (and TRL) aggregate SAPO's policy term as "
                      "seq-mean-token-mean whatever loss_agg_mode says; sarl uses actor.loss_agg_mode (set it to "
                      "seq-mean-token-mean)")]
    cfg, notes = load_config_with_notes(None, [f"{verl}policy_loss.loss_mode=gspo"])
    assert cfg.actor.policy_loss == "gspo" and "set actor.clip_ratio_c=null for verl's" in notes[0]
    assert load_config_with_notes(None, [f"{verl}policy_loss.loss_mode=vanilla"])[1] == []
    with pytest.raises(ConfigError, match=rf"{verl}policy_loss.loss_mode: verl's cispo clips the importance weight "
                                          r"to \[1 - clip_ratio_low, 1 \+ clip_ratio_high\]; sarl's is TRL's"):
        load_config(None, [f"{verl}policy_loss.loss_mode=cispo"])
    with pytest.raises(ConfigError, match=r"actor.policy_loss: 'clip_cov' is not allowed.*choose one of: vanilla, "
                                          r"gspo, cispo, sapo"):
        load_config(None, [f"{verl}policy_loss.loss_mode=clip_cov"])  # verl's other losses: not in sarl
    with pytest.raises(ConfigError, match=r"actor.sapo_temperature_neg: must be > 0"):
        load_config(None, ["actor.sapo_temperature_neg=0"])
    with pytest.raises(ConfigError, match=r"actor.mask_truncated: expected true or false"):
        load_config(None, ["actor.mask_truncated=maybe"])
