"""Training on a tiny random model: 2-step GRPO and PPO runs, determinism, exact resume, kill safety,
gradient-accumulation invariance, configuration errors, non-finite losses."""

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from sarl.config import ConfigError, load_config
from sarl.train import Trainer, TrainingAborted
from sarl.train import step as stages
from sarl.train.checkpoint import latest_checkpoint, load_state

TINY = [
    "model.name=tiny-random", "data.train=chain_sum", "data.train_size=64", "data.max_response_length=12",
    "data.max_prompt_length=128", "rollout.n=2", "rollout.batch_size=8", "trainer.prompts_per_step=2",
    "actor.lr=1e-3", "actor.weight_decay=0.0", "actor.micro_batch_size=2", "trainer.tensorboard=false",
    # SAR and O1-Pruner vary across rollouts even when every answer is wrong, so advantages are non-zero
    "rewards.weights={correctness: 1.0, sar: 0.5, o1_pruner: 0.5}",
]


def cfg_for(tmp_path, *extra):
    return load_config(None, TINY + [f"trainer.out_dir={tmp_path}"] + list(extra))


def params(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def test_grpo_two_steps_changes_every_parameter(tmp_path):
    cfg = cfg_for(tmp_path, "trainer.total_steps=2", "actor.use_kl_loss=true", "trainer.tensorboard=true")
    tr = Trainer(cfg)
    before = params(tr.policy)
    last = tr.run()
    after = params(tr.policy)
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert unchanged == []
    assert torch.isfinite(torch.tensor(last["actor/pg_loss"]))
    for k in ("reward/mean", "reward/sar", "reward/o1_pruner", "accuracy", "kl/ref", "actor/entropy",
              "actor/clipfrac", "time/generate", "time/null_logprobs", "time/update_actor"):
        assert last[k] is not None, k
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    final = tmp_path / "final"
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(final, use_safetensors=True)
    assert torch.equal(reloaded.model.embed_tokens.weight, tr.policy.model.embed_tokens.weight)


def test_ppo_two_steps_updates_actor_and_critic(tmp_path):
    cfg = cfg_for(tmp_path, "trainer.total_steps=2", "algorithm.adv_estimator=gae", "rollout.n=1",
                  "trainer.prompts_per_step=4", "critic.lr=1e-3")
    tr = Trainer(cfg)
    before, cbefore = params(tr.policy), params(tr.parts.critic)
    last = tr.run()
    assert [k for k, v in params(tr.policy).items() if torch.equal(v, before[k])] == []
    assert [k for k, v in params(tr.parts.critic).items() if torch.equal(v, cbefore[k])] == []
    assert torch.isfinite(torch.tensor(last["critic/loss"]))
    assert "time/values" in last and "time/update_critic" in last


def test_same_seed_same_weights(tmp_path):
    a = Trainer(cfg_for(tmp_path / "a", "trainer.total_steps=2"))
    a.run()
    b = Trainer(cfg_for(tmp_path / "b", "trainer.total_steps=2"))
    b.run()
    for k, v in params(a.policy).items():
        assert torch.equal(v, params(b.policy)[k]), k


def test_resume_is_exact(tmp_path):
    full = Trainer(cfg_for(tmp_path / "full", "trainer.total_steps=4"))
    full.run()
    half = Trainer(cfg_for(tmp_path / "half", "trainer.total_steps=4", "trainer.save_every=2"))
    for _ in range(2):
        half.train_step()
    half.save()
    del half
    resumed = Trainer(cfg_for(tmp_path / "half", "trainer.total_steps=4", "trainer.save_every=2"), resume=True)
    assert resumed.step == 2
    resumed.run()
    for k, v in params(full.policy).items():
        assert torch.equal(v, params(resumed.policy)[k]), k


def test_data_stream_continues_from_a_saved_position_across_epochs():
    from sarl.train.stream import DataStream

    problems = list(range(7))
    a = DataStream(problems, seed=3, shuffle=True)
    a.take(9)  # into the second epoch: resuming must re-draw that epoch's order, not the first's
    saved = a.state()
    assert saved == {"epoch": 1, "pos": 2}
    expected = a.take(12)  # crosses two epoch boundaries, each with its own seeded order
    b = DataStream(problems, seed=3, shuffle=True)
    b.load_state(saved)
    assert b.take(12) == expected
    assert sorted(expected[5:12]) == problems  # the third epoch whole, in an order of its own


def test_resume_logs_every_step_once_and_a_fresh_start_refuses_an_old_run(tmp_path):
    """Steps logged after the last checkpoint are redone on resume, not logged twice; starting a new
    run over an old one's folder is an error instead of appending to its metrics."""
    import shutil

    out = tmp_path / "run"
    Trainer(cfg_for(out, "trainer.total_steps=3", "trainer.save_every=2", "trainer.keep_last=3")).run()
    shutil.rmtree(out / "checkpoints" / "step_3")  # as if killed after logging step 3, before its checkpoint
    Trainer(cfg_for(out, "trainer.total_steps=4", "trainer.save_every=2"), resume=True).run()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    with pytest.raises(FileExistsError, match="already holds a run"):
        Trainer(cfg_for(out, "trainer.total_steps=1"))


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """1 micro-batch of 8 and 8 micro-batches of 1 give the same update (every aggregation mode), in fp32
    (under bf16 autocast each micro-batch's forward rounds differently; tests/test_precision.py)."""
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"):
        res = []
        for micro in (8, 1):
            tr = Trainer(cfg_for(tmp_path / f"{mode}{micro}", "trainer.total_steps=1", "rollout.n=4",
                                 f"actor.micro_batch_size={micro}", f"actor.loss_agg_mode={mode}", "actor.lr=1e-2",
                                 "trainer.precision=fp32"))
            tr.train_step()
            res.append(params(tr.policy))
        for k in res[0]:
            assert torch.allclose(res[0][k], res[1][k], atol=1e-5, rtol=1e-4), (mode, k)


def test_kill_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL a training run (checkpointing every step) at staggered moments, several times, resuming
    in between; the last complete checkpoint must always load."""
    import random

    out = tmp_path / "run"
    root = out / "checkpoints"
    cmd = [sys.executable, "-m", "sarl.cli", "train", *TINY, f"trainer.out_dir={out}", "trainer.total_steps=200",
           "trainer.save_every=1", "trainer.keep_last=2"]
    rng = random.Random(0)
    seen = 0
    for attempt in range(4):
        proc = subprocess.Popen(cmd + (["--resume"] if seen else []), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 180
        while time.time() < deadline:  # wait for a checkpoint newer than the last one we saw
            ckpt = latest_checkpoint(root)
            if ckpt is not None and int(ckpt.name.split("_")[1]) > seen:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))  # then kill somewhere in the following steps / checkpoint writes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        ckpt = latest_checkpoint(root)
        assert ckpt is not None, f"attempt {attempt}: no complete checkpoint"
        st = load_state(ckpt)
        assert int(st["step"]) == int(ckpt.name.split("_")[1]) >= seen
        seen = int(st["step"])
        from transformers import AutoModelForCausalLM

        AutoModelForCausalLM.from_pretrained(ckpt / "policy", use_safetensors=True)
    tr = Trainer(load_config(None, TINY + [f"trainer.out_dir={out}", "trainer.total_steps=200"]), resume=True)
    assert tr.step == seen


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"actor.lr_rate: unknown key; allowed: lr, "):
        load_config(None, ["actor.lr_rate=1"])
    with pytest.raises(ConfigError, match=r"algorithm.adv_estimator: 'ppo' is not allowed; choose one of: grpo"):
        load_config(None, ["algorithm.adv_estimator=ppo"])
    with pytest.raises(ConfigError, match=r"rewards: unknown reward 'sars'"):
        load_config(None, ["rewards.weights={sars: 1}"])
    with pytest.raises(ConfigError, match=r"rollout.n: grpo compares rollouts"):
        load_config(None, ["rollout.n=1"])
    with pytest.raises(ConfigError, match=r"trainer.total_steps: expected an integer"):
        load_config(None, ["trainer.total_steps=ten"])
    with pytest.raises(ConfigError, match="no such recipe"):
        load_config(tmp_path / "nope.yaml")


def test_every_recipe_loads():
    from pathlib import Path

    from sarl.config import RECIPES_DIR, list_recipes

    recipes = sorted(Path("configs").rglob("*.yaml"))  # the checkout's configs/ points at the shipped recipes
    assert len(recipes) == 16 and sorted(RECIPES_DIR.rglob("*.yaml")) == sorted(RECIPES_DIR / r.relative_to("configs")
                                                                                for r in recipes)
    for r in recipes:
        load_config(r)
    for name, desc in list_recipes():  # by name, from any folder
        assert load_config(name) and desc, name


def test_unknown_recipe_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"no such recipe.*cpu/sa_grpo"):
        load_config("cpu/sa_grpoo")


def test_dataset_without_gold_is_a_clear_error(tmp_path):
    data = tmp_path / "nogold.jsonl"
    data.write_text('{"question": "What is 1+1?", "answer": ""}\n')
    with pytest.raises(ValueError, match="row 1 has no answer"):
        Trainer(cfg_for(tmp_path, f"data.train={data}", "data.train_size=null"))


def test_non_finite_loss_skips_then_aborts(tmp_path, monkeypatch):
    from sarl import algos

    real = algos.policy_loss

    def nan_loss(*a, **k):
        loss, m = real(*a, **k)
        return loss * float("nan"), m

    monkeypatch.setattr(algos, "policy_loss", nan_loss)
    tr = Trainer(cfg_for(tmp_path, "trainer.total_steps=5", "trainer.max_bad_steps=2"))
    before = params(tr.policy)
    m = tr.train_step()
    assert m["actor/skipped_updates"] == 1
    assert all(torch.equal(v, before[k]) for k, v in params(tr.policy).items())
    with pytest.raises(TrainingAborted, match="2 consecutive steps"):
        tr.train_step()


def test_quickstart_end_to_end_on_tiny_model(tmp_path):
    from rich.console import Console

    from sarl.quickstart import run_quickstart

    res = run_quickstart(tmp_path, steps=1, limit=2, console=Console(quiet=True), progress_factory=None,
                         extra=["data.max_response_length=8", "trainer.prompts_per_step=2", "rollout.n=2"],
                         model="tiny-random", baseline=False)
    for name in ("before", "after"):
        m = res["table"][name]
        assert m["accuracy"] is not None and m["mean_length"] <= 8 and -1 <= m["mean_sar"] <= 1
    assert (tmp_path / "report" / "report.html").exists() and (tmp_path / "before_after.json").exists()
    assert (tmp_path / "train" / "final" / "config.json").exists()


def test_weighted_grpo_end_to_end_applies_the_linear_schedule(tmp_path):
    """advantage_weighting_in_grpo: each component is group-normalised, weighted with the weights in force
    at this step (alpha(progress) on every scheduled reward), and summed; a full run then trains."""
    from sarl.algos import grpo_weighted

    cfg = cfg_for(tmp_path, "trainer.total_steps=2", "algorithm.advantage_weighting_in_grpo=true",
                  "rewards.schedule={type: linear, increase: true, bottom: 0.0, peak_pos: 0.5}")
    tr = Trainer(cfg)
    assert "reward_components" in tr.parts.estimator_needs
    progress = 0.25  # alpha = 0.5
    batch = stages.grade(stages.generate(tr.parts, 0))
    old = stages.old_logprobs(tr.parts, batch)
    inputs = stages.null_logprobs(tr.parts, batch, old, old.mask)
    rew, token_rewards = stages.rewards(tr.parts, inputs, old.mask, old, None, progress)
    adv, _ = stages.advantages(tr.parts, batch, rew, token_rewards, old.mask, None, progress)
    scheduled = {"correctness": 1.0, "sar": 0.5 * 0.5, "o1_pruner": 0.5 * 0.5}
    want, _ = grpo_weighted(rew.components, scheduled, batch.group_ids, old.mask, norm_adv_by_std=False)
    assert torch.equal(adv, want)
    unscheduled, _ = grpo_weighted(rew.components, {"correctness": 1.0, "sar": 0.5, "o1_pruner": 0.5},
                                   batch.group_ids, old.mask, norm_adv_by_std=False)
    assert not torch.equal(adv, unscheduled)
    before = params(tr.policy)
    last = tr.run()
    assert [k for k, v in params(tr.policy).items() if torch.equal(v, before[k])] == []
    assert last["reward/alpha"] == 1.0  # progress 1.0 with peak 0.5: alpha back at 1 (no decrease)


def test_resume_with_other_settings_refuses(tmp_path):
    """--resume never mixes steps made with different settings; harmless ones (threads, checkpoint
    frequency) may change."""
    from sarl.errors import OutputExistsError

    Trainer(cfg_for(tmp_path, "trainer.total_steps=2", "trainer.save_every=1")).run()
    with pytest.raises(OutputExistsError, match=r"actor.lr: 0.001 before, 0.002 now"):
        Trainer(cfg_for(tmp_path, "trainer.total_steps=2", "trainer.save_every=1", "actor.lr=2e-3"), resume=True)
    tr = Trainer(cfg_for(tmp_path, "trainer.total_steps=2", "trainer.save_every=2", "model.threads=1"), resume=True)
    assert tr.step == 2


def test_token_budget_per_forward_changes_the_batching_not_the_update(tmp_path):
    """actor.max_tokens_per_forward = 64 (a forward per row or two) and 8192 (one forward) give the same
    log-probs and the same updated weights (fp32)."""
    res = []
    for budget in (64, 8192):
        tr = Trainer(cfg_for(tmp_path / str(budget), "trainer.total_steps=1", "rollout.n=4", "actor.micro_batch_size=8",
                             f"actor.max_tokens_per_forward={budget}", "trainer.precision=fp32", "actor.lr=1e-2"))
        m = tr.train_step()
        res.append((params(tr.policy), m["response_length/mean"]))
    assert res[0][1] == res[1][1]
    # AdamW's step is ~lr = 1e-2 per weight whatever the gradient's size, so float rounding in the
    # smallest gradients shows as up to ~4e-5 on a few weights (measured); a batching error moves ~1e-2
    for k in res[0][0]:
        assert torch.allclose(res[0][0][k], res[1][0][k], atol=1e-4, rtol=1e-4), k


def test_verl_keys_paste_the_reference_script():
    """The reference's SA-GRPO script arguments after `sarl train` (sizes shrunk): verl's keys map to
    sarl's with verl's meanings; engine and cluster keys are ignored with a note; unknown verl keys fail."""
    from sarl.verl_keys import translate

    ref = ["algorithm.adv_estimator=grpo", "algorithm.norm_adv_by_std_in_grpo=False", "data.train_files=[chain_sum]",
           "data.train_batch_size=4", "data.max_response_length=12", "data.prompt_key=question",
           "actor_rollout_ref.model.path=tiny-random", "actor_rollout_ref.actor.optim.lr=1e-6",
           "actor_rollout_ref.actor.loss_agg_mode=seq-mean-token-sum-norm",
           "actor_rollout_ref.actor.ppo_mini_batch_size=2", "actor_rollout_ref.actor.ppo_micro_batch_size=4",
           "actor_rollout_ref.actor.fsdp_config.param_offload=False", "actor_rollout_ref.actor.use_kl_loss=True",
           "actor_rollout_ref.actor.kl_loss_coef=0.001", "actor_rollout_ref.actor.kl_loss_type=low_var_kl",
           "actor_rollout_ref.rollout.name=vllm", "actor_rollout_ref.rollout.n=6", "trainer.logger=['console']",
           "trainer.total_training_steps=3", "trainer.save_freq=100", "trainer.n_gpus_per_node=8",
           "trainer.default_local_dir=runs/x", 'trainer.reward_types=["base","ppl_qa"]', "trainer.reward_factors=[1,0.2]",
           "trainer.ppl_qa.use_log=True", "trainer.alpha_scheduler.type=linear", "trainer.alpha_scheduler.increase=True",
           "actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384", "actor_rollout_ref.actor.strategy=fsdp"]
    cfg = load_config(None, ref)
    assert cfg.actor.max_tokens_per_forward == 16384 and cfg.trainer.strategy == "fsdp"
    assert (cfg.rollout.n, cfg.trainer.prompts_per_step, cfg.actor.mini_batch_size) == (6, 4, 12)  # 2 prompts x 6
    assert cfg.actor.micro_batch_size == 4 and cfg.actor.lr == 1e-6 and cfg.actor.kl_loss_type == "low_var_kl"
    assert cfg.model.name == "tiny-random" and cfg.data.train == "chain_sum" and cfg.trainer.total_steps == 3
    assert cfg.trainer.out_dir == "runs/x" and cfg.trainer.save_every == 100
    assert cfg.rewards.weights == {"base": 1, "ppl_qa": 0.2} and cfg.rewards.options == {"sar": {"use_log": True}}
    assert cfg.rewards.schedule.type == "linear" and cfg.rewards.schedule.increase
    assert cfg.rollout.backend == "vllm"  # the reference's rollout engine is sarl's too
    _, notes = translate(ref)
    assert any(n.startswith("trainer.n_gpus_per_node: ignored") for n in notes) and len(notes) == 3
    with pytest.raises(ConfigError, match="rollout.backend"):
        load_config(None, ["actor_rollout_ref.rollout.name=sglang"])
    assert cfg.trainer.logger == ["console"]  # the same key in verl and sarl
    with pytest.raises(ConfigError, match="actor_rollout_ref.actor.use_dynamic_bsz: a verl key sarl does not map"):
        load_config(None, ["actor_rollout_ref.actor.use_dynamic_bsz=True"])
    with pytest.raises(ConfigError, match="reward_types and trainer.reward_factors go together"):
        load_config(None, ["trainer.reward_types=[base]"])
    with pytest.raises(ConfigError, match="strategy=megatron: sarl shards with FSDP2 only"):
        load_config(None, ["actor_rollout_ref.actor.strategy=megatron"])


def test_trainable_subset_freezes_the_rest(tmp_path):
    """actor.trainable: only the matching policy parameters change; a name that matches nothing is a
    clear error."""
    tr = Trainer(cfg_for(tmp_path / "a", "trainer.total_steps=2", "actor.trainable=[model.norm.weight]"))
    before = params(tr.policy)
    tr.run()
    changed = [k for k, v in params(tr.policy).items() if not torch.equal(v, before[k])]
    assert changed == ["model.norm.weight"]
    with pytest.raises(ConfigError, match="matches no parameter"):
        Trainer(cfg_for(tmp_path / "b", "actor.trainable=[no_such_weight]"))
    with pytest.raises(ConfigError, match="expected a list of text"):
        cfg_for(tmp_path / "c", "actor.trainable=model.norm.weight")


def test_extending_a_run_is_refused_when_the_schedule_depends_on_its_length(tmp_path):
    from sarl.errors import OutputExistsError

    lin = "rewards.schedule={type: linear, increase: true}"
    Trainer(cfg_for(tmp_path, "trainer.total_steps=2", "trainer.save_every=1", lin)).run()
    with pytest.raises(OutputExistsError, match="trainer.total_steps: 2 before, 3 now"):
        Trainer(cfg_for(tmp_path, "trainer.total_steps=3", "trainer.save_every=1", lin), resume=True)


def test_report_of_a_training_run(tmp_path):
    """sarl report on a training folder: settings, per-step curves of the metric groups, and example
    answers of the first and last step with their rewards; the console names the KL estimator."""
    from sarl.cli import main

    out = tmp_path / "run"
    Trainer(cfg_for(out, "trainer.total_steps=2", "actor.use_kl_loss=true", "trainer.log_samples=3")).run()
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [s["step"] for s in samples] == [1, 1, 1, 2, 2, 2]
    assert {"question", "gold", "response", "reward", "reward/sar", "reward/correctness"} <= set(samples[0])
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["kl/estimator"] == "k3" and last["kl/ref"] >= 0  # k3 is never negative (k1 can be)
    # the multi-reward diagnostics: each reward's share of the advantage, and the group outcomes
    shares = {k: v for k, v in last.items() if k.startswith("adv/share/")}
    assert set(shares) == {"adv/share/correctness", "adv/share/sar", "adv/share/o1_pruner"}
    assert sum(shares.values()) == pytest.approx(1.0) or sum(shares.values()) == 0.0
    assert 0.0 <= last["groups/all_correct"] <= 1.0 and 0.0 <= last["groups/all_wrong"] <= 1.0
    rep = tmp_path / "rep"
    assert main(["report", str(out), "-o", str(rep)]) == 0
    md = (rep / "report.md").read_text()
    assert "## Training run" in md and "| actor.kl_loss_type | \"k3\" |" in md and "#### step 2" in md
    from sarl.train_report import load_run, metric_panels

    titles = [t for t, _ in metric_panels(load_run(out)["rows"])]
    assert "each reward's share of the advantage" in titles and "groups all correct / all wrong" in titles
    assert (rep / "plots" / "train_run.png").exists()
    page = (rep / "report.html").read_text()
    assert "Example answers" in page and "data:image/png;base64," in page

    from conftest import screenshot

    img = screenshot(rep / "report.html", tmp_path, height=2400, timeout=120)
    colored = int(((img.max(-1) - img.min(-1)) > 0.2).sum())  # the curves' lines are coloured
    assert (img.mean(-1) < 0.5).mean() > 0.005 and colored > 500, colored


def test_tiny_flag_shrinks_any_recipe_and_the_run_works(tmp_path):
    from sarl.cli import main
    from sarl.config import TINY_OVERRIDES, list_recipes

    for name, _ in list_recipes():  # every shipped recipe stays valid when shrunk
        cfg = load_config(name, TINY_OVERRIDES)
        assert cfg.trainer.total_steps == 2 and cfg.rollout.n * cfg.trainer.prompts_per_step == 4
    assert main(["train", "--list"]) == 0  # the shipped recipes with their descriptions
    out = tmp_path / "tiny"
    assert main(["train", "cpu/sa_grpo", "--tiny", "model.name=tiny-random", "data.val=null",  # flags anywhere
                 f"trainer.out_dir={out}", "trainer.tensorboard=false"]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    with pytest.raises(SystemExit):  # a word that is neither an option nor key=value is still an error
        main(["train", "cpu/sa_grpo", "--tiny", "model.name=tiny-random", "oops"])


def test_optional_loggers_offline(tmp_path, monkeypatch):
    """trainer.logger as in verl: wandb (offline mode) and mlflow (a local file store) receive every
    step's metrics; a logger whose package is missing is a clear error before any model loads."""
    import importlib.util

    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    import sys

    monkeypatch.delenv("TRACKIO_DIR", raising=False)
    names = [n for n in ("wandb", "mlflow", "trackio") if importlib.util.find_spec(n) is not None]
    if "trackio" in sys.modules:  # it reads TRACKIO_DIR once, at import; a fresh test process has not loaded it
        names.remove("trackio")
    if not names:
        pytest.skip("none of wandb, mlflow, trackio is installed (make test installs them)")
    out = tmp_path / "run"
    Trainer(cfg_for(out, "trainer.total_steps=2", f"trainer.logger=[console, tensorboard, {', '.join(names)}]")).run()
    if "wandb" in names:
        runs = list((out / "wandb").glob("offline-run-*"))
        assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    if "mlflow" in names:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{(out / 'mlflow.db').resolve()}")
        exp = client.get_experiment_by_name("sarl")
        (run,) = client.search_runs([exp.experiment_id])
        assert [m.step for m in client.get_metric_history(run.info.run_id, "reward/mean")] == [1, 2]
        assert run.data.params["actor.lr"] == "0.001"
    if "trackio" in names:
        import sqlite3

        (db,) = (out / "trackio").glob("*.db")
        tables = [r[0] for r in sqlite3.connect(db).execute("select name from sqlite_master where type='table'")]
        assert "metrics" in tables
        assert sqlite3.connect(db).execute("select count(*) from metrics").fetchone()[0] >= 2
    with pytest.raises(ConfigError, match="not a logger; choose from console, tensorboard, wandb, mlflow, trackio"):
        cfg_for(tmp_path / "x", "trainer.logger=[console, neptune]")
    if importlib.util.find_spec("trackio") is None:
        with pytest.raises(ConfigError, match="pip install trackio"):
            cfg_for(tmp_path / "x", "trainer.logger=[trackio]")


def test_multi_step_accuracy_pools_the_multi_step_counts():
    from sarl.quickstart import multi_step_accuracy

    by = {"1": {"samples": 8, "problems": 2, "accuracy": 1.0, "accuracy_se": 0.0},
          "2": {"samples": 4, "problems": 1, "accuracy": 0.5, "accuracy_se": 0.0},
          "3": {"samples": 12, "problems": 3, "accuracy": 0.25, "accuracy_se": 0.1}}
    m = multi_step_accuracy(by)
    assert m["accuracy"] == pytest.approx((0.5 * 4 + 0.25 * 12) / 16) and m["problems"] == 4
    assert m["accuracy_se"] == pytest.approx((0.1 ** 2 * 9 / 16) ** 0.5)
    assert multi_step_accuracy(None) is None and multi_step_accuracy({"1": by["1"]}) is None


def test_on_policy_update_supplies_old_logprobs_without_a_separate_pass(tmp_path):
    """One optimizer step per batch (ppo_epochs 1, one mini-batch) and no reward on the policy's
    log-probs: log π_old comes from the update's own forward (no no-grad pass of the policy), and the
    run equals one with the separate pass (ratio 1 either way; fp32)."""
    # one step: a later step's rollouts would be sampled from weights that differ by float rounding
    extra = ("trainer.total_steps=1", "trainer.precision=fp32", "actor.use_kl_loss=true",
             "rewards.weights={correctness: 1.0, o1_pruner: 0.5}")
    runs = {}
    for name, from_update in (("fused", True), ("separate", False)):
        tr = Trainer(cfg_for(tmp_path / name, *extra))
        assert tr.parts.old_from_update
        tr.parts.old_from_update = from_update
        calls = []
        orig = tr.parts.logprobs

        def spy(model, *a, _orig=orig, _tr=tr, _calls=calls, **k):
            _calls.append((model is _tr.policy, k.get("grad", False)))
            return _orig(model, *a, **k)

        tr.parts.logprobs = spy
        runs[name] = (tr, tr.run(), calls)
    (fused, mf, cf), (sep, ms, cs) = runs["fused"], runs["separate"]
    assert (True, False) not in cf and (True, False) in cs  # the policy's no-grad pass: only without fusion
    # AdamW's first step moves each weight by ~lr = 1e-3 whatever the gradient's size, so float rounding
    # in the smallest gradients shows as ~1e-5 on a few weights (measured); a wrong log π_old (not
    # detached, or another row's) changes the gradient itself and moves weights by ~lr
    for k, v in params(fused.policy).items():
        assert (v - params(sep.policy)[k]).abs().max() < 1e-4, k
    for k in ("actor/grad_norm", "actor/entropy", "kl/ref", "actor/pg_loss", "reward/mean"):
        assert mf[k] == pytest.approx(ms[k], rel=1e-3, abs=1e-6), k
    assert mf["actor/clipfrac"] == 0.0
    # anything that reads log π_old before the update keeps the pass
    for other in (("rewards.weights={correctness: 1.0, sar: 0.2}",), ("actor.ppo_epochs=2",),
                  ("actor.mini_batch_size=2",), ("algorithm.use_kl_in_reward=true",)):
        assert not Trainer(cfg_for(tmp_path / other[0][:12], "rewards.weights={correctness: 1.0}", *other)).parts.old_from_update
