"""sarl recipes as TRL GRPOConfig (sarl.integrations.trl.recipe), the weight schedule on the TRL path,
``sarl train --engine trl`` end to end, and the rewards / advantages of the mapped path against the
native trainer on the same completions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch

from sarl.config import TrainConfig, load_config
from sarl.errors import ConfigError
from sarl.integrations.trl.recipe import KEY_MAP, grpo_kwargs, map_table
from sarl.integrations.trl.reward import SarlReward, schedule_progress
from sarl.rewards import Schedule
from sarl.train import step as stages

ROOT = Path(__file__).resolve().parents[1]


def _keys() -> list[str]:
    cfg = TrainConfig()
    return [f"{s.name}.{f.name}" for s in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, s.name))]


def test_every_recipe_key_has_a_decision_and_the_docs_print_the_table():
    keys = _keys()
    mapped = [m.key for m in KEY_MAP]
    assert sorted(mapped) == sorted(keys), set(mapped) ^ set(keys)
    assert len(mapped) == len(set(mapped))
    assert map_table() in (ROOT / "docs" / "TRL.md").read_text()


def test_sa_grpo_maps_to_the_reference_semantics():
    kw = grpo_kwargs(load_config("sa_grpo"), num_processes=1)
    # Dr.GRPO, no std scaling, k3 KL 0.001, 6 per prompt, lr 1e-6, T=1, 4096 tokens
    assert (kw["loss_type"], kw["scale_rewards"], kw["beta"], kw["num_generations"]) == ("dr_grpo", "none", 0.001, 6)
    assert (kw["learning_rate"], kw["temperature"], kw["top_p"], kw["top_k"]) == (1e-6, 1.0, 1.0, 0)
    assert kw["max_completion_length"] == 4096
    # 128 prompts x 6 = 768 rollouts per step, mini-batches of 384 (2 optimizer steps), micro 16
    assert kw["generation_batch_size"] == 768
    assert (kw["per_device_train_batch_size"], kw["gradient_accumulation_steps"]) == (16, 24)
    assert kw["max_steps"] == 500 * 2 and kw["num_iterations"] == 1
    assert kw["reward_weights"] == [1.0, 0.2]
    assert (kw["epsilon"], kw["epsilon_high"], kw["delta"], kw["max_grad_norm"]) == (0.2, 0.2, 3.0, 1.0)
    assert kw["save_strategy"] == "steps" and kw["save_steps"] == 100 * 2
    assert kw["model_init_kwargs"] == {"dtype": "float32"}  # master weights fp32 whatever the autocast
    assert grpo_kwargs(load_config("sa_grpo", ["trainer.precision=fp32"]))["bf16"] is False
    # two processes: the same global batch, half the accumulation per process
    kw2 = grpo_kwargs(load_config("sa_grpo"), num_processes=2)
    assert (kw2["per_device_train_batch_size"], kw2["gradient_accumulation_steps"]) == (16, 12)
    assert kw2["generation_batch_size"] == 768


def test_other_keys_map_as_the_table_says():
    kw = grpo_kwargs(load_config("cpu/quickstart", [
        "actor.loss_agg_mode=token-mean", "algorithm.norm_adv_by_std_in_grpo=true", "actor.lr_schedule=cosine",
        "actor.use_kl_loss=false", "actor.ppo_epochs=2", "trainer.save_every=0", "actor.entropy_coeff=0.01",
        "trainer.logger=[console, tensorboard, wandb]", "trainer.tensorboard=false", "trainer.precision=bf16-mixed"]))
    assert (kw["loss_type"], kw["scale_rewards"], kw["lr_scheduler_type"], kw["beta"]) == ("dapo", "group", "cosine", 0.0)
    assert kw["num_iterations"] == 2 and kw["max_steps"] == 80 * 2
    assert kw["save_strategy"] == "no" and kw["entropy_coef"] == 0.01
    assert kw["report_to"] == ["wandb"] and kw["bf16"] is True and kw["use_cpu"] is True
    assert grpo_kwargs(load_config("cpu/quickstart", ["actor.loss_agg_mode=seq-mean-token-mean"]))["loss_type"] == "grpo"


@pytest.mark.parametrize(("recipe", "overrides", "key"), [
    ("ppo", [], "algorithm.adv_estimator"),
    ("sa_grpo", ["algorithm.advantage_weighting_in_grpo=true"], "algorithm.advantage_weighting_in_grpo"),
    ("sa_grpo", ["algorithm.use_kl_in_reward=true"], "algorithm.use_kl_in_reward"),
    ("sa_grpo", ["actor.kl_loss_type=k1"], "actor.kl_loss_type"),
    ("sa_grpo", ["actor.loss_agg_mode=seq-mean-token-sum"], "actor.loss_agg_mode"),
    ("sa_grpo", ["actor.entropy_coeff=0.01"], "actor.entropy_coeff"),
    ("sa_grpo", ["actor.trainable=[model.norm.weight]"], "actor.trainable"),
    ("sa_grpo", ["trainer.strategy=fsdp"], "trainer.strategy"),
    ("sa_grpo", ["actor.clip_ratio_c=1.1"], "actor.clip_ratio_c"),
])
def test_what_trl_cannot_express_is_refused_naming_the_key_and_the_native_trainer(recipe, overrides, key):
    with pytest.raises(ConfigError) as err:
        grpo_kwargs(load_config(recipe, overrides))
    assert str(err.value).startswith(key) and "native trainer" in str(err.value)


def test_batch_sizes_that_do_not_divide_across_processes_are_refused():
    with pytest.raises(ConfigError, match=r"actor.mini_batch_size: 384 .* 16 x 5"):
        grpo_kwargs(load_config("sa_grpo"), num_processes=5)


def test_schedule_progress_is_sarl_steps_progress():
    # one optimizer step per generation batch: TRL's step k (completed) scores sarl step k + 1
    assert schedule_progress(0, 10) == pytest.approx(0.1)
    assert schedule_progress(9, 10) == pytest.approx(1.0)
    # two optimizer steps per batch (sa_grpo: 1000 optimizer steps = 500 sarl steps)
    assert schedule_progress(0, 1000, 2) == schedule_progress(1, 1000, 2) == pytest.approx(1 / 500)
    assert schedule_progress(2, 1000, 2) == pytest.approx(2 / 500)
    assert schedule_progress(999, 1000, 2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="max_steps"):
        schedule_progress(0, 0)


class _State:
    def __init__(self, step, max_steps):
        self.global_step, self.max_steps = step, max_steps


def test_a_scheduled_reward_is_scaled_by_alpha_and_correctness_is_not():
    sched = Schedule(type="linear", peak_pos=0.5, bottom=0.0, increase=True)
    over = SarlReward("overlong", {"buffer_len": 4}, max_response_length=8, schedule=sched)
    plain = SarlReward("overlong", {"buffer_len": 4}, max_response_length=8)
    correct = SarlReward("correctness", schedule=sched)
    prompts, comps, ids = [[{"role": "user", "content": "q"}]] * 2, ["a", "b"], [[1] * 8, [1] * 2]
    base = plain(prompts, comps, ids)
    assert base[0] < 0 and base[1] == 0.0  # 8 tokens: in the buffer, penalised
    # progress 0.1 (step 0 of 10): alpha = 0.1 / 0.5 = 0.2
    got = over(prompts, comps, ids, trainer_state=_State(0, 10))
    assert got == pytest.approx([0.2 * base[0], 0.0])
    assert over.last_batch["alpha"] == pytest.approx(0.2)
    assert over(prompts, comps, ids, trainer_state=_State(7, 10)) == pytest.approx(base)  # after the peak: 1
    assert correct(prompts, ["\\boxed{2}", "3"], answer=["2", "2"], trainer_state=_State(0, 10)) == [1.0, 0.0]
    with pytest.raises(RuntimeError, match="trainer_state"):
        over(prompts, comps, ids)


def test_grpo_config_builds_the_reward_functions_in_weight_order():
    from sarl.integrations.trl import grpo_config

    args, funcs = grpo_config("cpu/quickstart", report_to="none")
    assert [f.__name__ for f in funcs] == ["correctness", "sar"] and args.reward_weights == [1.0, 0.2]
    assert all(f.answer_tokens == "sampled" and f.temperature is None for f in funcs)
    with pytest.raises(ConfigError, match="GRPOConfig"):
        grpo_config("cpu/quickstart", no_such_field=1)


def test_mapped_rewards_and_advantages_equal_the_native_trainers(tmp_path):
    """The same completions scored by the native trainer and by the reward functions grpo_config builds
    (bound to TRL's trainer on the same weights): equal rewards (correctness + 0.2 SAR) and advantages."""
    from datasets import Dataset

    from sarl.algos import ADV_ESTIMATORS
    from sarl.integrations.trl import SARGRPOTrainer, grpo_config
    from sarl.integrations.trl.engine import trl_rows
    from sarl.train import Trainer
    from sarl.train.checkpoint import export_model

    cfg = load_config("sa_grpo", ["model.name=tiny-random", "data.train=chain_sum", "data.train_size=16",
                                  "data.max_response_length=12", "data.max_prompt_length=256", "rollout.n=4",
                                  "trainer.prompts_per_step=2", "actor.mini_batch_size=null", "actor.micro_batch_size=8",
                                  "trainer.tensorboard=false", f"trainer.out_dir={tmp_path / 'sarl'}", "data.val=null",
                                  "trainer.precision=fp32"])
    tr = Trainer(cfg)
    batch = stages.grade(stages.generate(tr.parts, 0))
    tr.policy.eval()
    old = stages.old_logprobs(tr.parts, batch)
    inputs = stages.null_logprobs(tr.parts, batch, old, old.mask)
    rew, token_rewards = stages.rewards(tr.parts, inputs, old.mask, old, None, 1 / cfg.trainer.total_steps)
    adv, _ = ADV_ESTIMATORS["grpo"](token_rewards, old.mask, group_ids=batch.group_ids, norm_adv_by_std=False)

    start = export_model(tr.policy, tr.tok, tmp_path / "start")
    args, funcs = grpo_config(cfg, output_dir=str(tmp_path / "trl"), report_to="none", disable_tqdm=True)
    rows = {r["id"]: r for r in trl_rows(cfg, tr.tok)}
    trl = SARGRPOTrainer(model=str(start), processing_class=tr.tok, args=args, reward_funcs=funcs,
                         train_dataset=Dataset.from_list(list(rows.values())))
    mine = [rows[p.id] for p in batch.problems]
    cols = {k: [r[k] for r in mine] for k in ("answer", "data_source", "metadata")}
    per_func = [f([r["prompt"] for r in mine], batch.texts, batch.responses, trainer_state=trl.state, **cols)
                for f in funcs]
    per_func = [torch.tensor(v, dtype=torch.float32) for v in per_func]
    total = sum(w * v for w, v in zip(args.reward_weights, per_func))
    torch.testing.assert_close(per_func[0], rew.components["correctness"])
    torch.testing.assert_close(per_func[1], rew.components["sar"], rtol=1e-4, atol=1e-5)
    assert rew.components["sar"].abs().max() > 0
    torch.testing.assert_close(total, rew.total, rtol=1e-4, atol=1e-5)
    trl_adv = total - total.view(-1, args.num_generations).mean(dim=1).repeat_interleave(args.num_generations)
    torch.testing.assert_close(trl_adv, adv[torch.arange(len(batch)), 0], rtol=1e-4, atol=1e-5)


def test_sarl_train_engine_trl_end_to_end(tmp_path, capsys):
    from sarl.cli import main

    out = tmp_path / "run"
    argv = ["train", "cpu/quickstart", "--engine", "trl", "--tiny", "model.name=tiny-random", "data.train=chain_sum",
            f"trainer.out_dir={out}", "trainer.logger=[console]"]
    assert main(argv) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all({"accuracy", "reward/mean", "reward/sar", "response_length/mean", "kl/ref"} <= set(r) for r in rows)
    assert (out / "final" / "model.safetensors").exists() and (out / "samples.jsonl").exists()
    assert "engine: trl" in (out / "run.yaml").read_text() and "\nengine:" not in (out / "config.yaml").read_text()
    # a model folder (here the export) is passed to TRL as a path; only its tokenizer is loaded by sarl
    again = tmp_path / "again"
    assert main(["train", "cpu/quickstart", "--engine", "trl", "--tiny", f"model.name={out / 'final'}",
                 "data.train=chain_sum", f"trainer.out_dir={again}", "trainer.logger=[console]"]) == 0
    assert not (again / "init_model").exists() and (again / "final" / "model.safetensors").exists()
    capsys.readouterr()
    assert main(argv) == 2  # a second run into the same folder is refused, the first one kept
    assert "already holds a run" in capsys.readouterr().err and len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert main(["train", "cpu/ppo", "--engine", "trl", "--tiny", "model.name=tiny-random",
                 f"trainer.out_dir={tmp_path / 'p'}"]) == 2
    assert "TRL has no PPO" in capsys.readouterr().err
