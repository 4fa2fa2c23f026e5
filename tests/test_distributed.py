"""Data-parallel ``sarl train`` (sarl.train.distributed) with 2 gloo processes under torchrun on the CPU,
replicated (ddp) and sharded (fsdp, sarl.train.sharding): the same updated weights as one process, an exact
resume, and the refusals."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sarl.errors import ConfigError
from sarl.train.distributed import Dist

TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
ARGS = ["model.name=tiny-random", "data.train=chain_sum", "data.train_size=32", "data.max_response_length=12",
        "data.max_prompt_length=128", "rollout.n=2", "trainer.prompts_per_step=4", "actor.micro_batch_size=2",
        "trainer.tensorboard=false", "trainer.precision=fp32", "actor.lr=1e-3", "model.threads=1",
        "rewards.weights={correctness: 1.0, sar: 0.5, o1_pruner: 0.5}"]  # advantages vary though all are wrong


def _train(out: Path, procs: int, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = ([TORCHRUN, "--nproc-per-node", str(procs), "-m"] if procs > 1 else [sys.executable, "-m"])
    return subprocess.run([*cmd, "sarl", "train", *ARGS, f"trainer.out_dir={out}", *extra],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **(env or {})})


def _weights(out: Path):
    from safetensors.torch import load_file

    return load_file(str(out / "final" / "model.safetensors"))


def _max_diff(a, b) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


pytestmark = pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")


def test_two_processes_update_like_one_and_resume_exactly(tmp_path):
    one, two, res = tmp_path / "one", tmp_path / "two", tmp_path / "res"
    for out, procs, extra in ((one, 1, ["trainer.total_steps=2"]), (two, 2, ["trainer.total_steps=2"]),
                              (res, 2, ["trainer.total_steps=1"]), (res, 2, ["trainer.total_steps=2", "--resume"])):
        r = _train(out, procs, *extra)
        assert r.returncode == 0, r.stderr[-2000:]
    # the same rollouts (sampling keys are global prompt positions), rewards and losses ...
    m1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in m2] == [1, 2]  # rank 0 alone writes the log
    for a, b in zip(m1, m2):
        assert a["response_length/mean"] == b["response_length/mean"]
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], abs=1e-6)
    # ... and the same weights: gradients summed over processes equal one process's (float rounding only;
    # measured max |difference| 1.6e-5 after 2 AdamW steps at lr 1e-3)
    w1, w2 = _weights(one), _weights(two)
    assert _max_diff(w1, w2) < 1e-4
    # a 2-process run stopped after step 1 and resumed with 2 processes continues exactly
    assert _max_diff(w2, _weights(res)) == 0
    assert [json.loads(x)["step"] for x in (res / "metrics.jsonl").read_text().splitlines()] == [1, 2]


# Rank 0's rows are longer than rank 1's (prompts of 81 and 68 tokens vs 71 and 64 at step 1), so this
# token budget plans 3 forwards for rank 0's log-prob pass and 2 for rank 1's, and 2 vs 1 forwards for the
# first micro-batch of the update: without lockstep forwards (and backwards) the sharded run hangs (tried).
FSDP = ["trainer.strategy=fsdp", "actor.max_tokens_per_forward=170", "actor.use_kl_loss=true"]


def test_fsdp_two_processes_update_like_one_and_resume_exactly(tmp_path):
    one, two, res = tmp_path / "one", tmp_path / "two", tmp_path / "res"
    for out, procs, extra in ((one, 1, ["trainer.total_steps=2"]), (two, 2, ["trainer.total_steps=2"]),
                              (res, 2, ["trainer.total_steps=1"]), (res, 2, ["trainer.total_steps=2", "--resume"])):
        r = _train(out, procs, *FSDP, *extra)
        assert r.returncode == 0, r.stderr[-2000:]
        if procs == 1:
            assert "nothing to shard" in r.stderr  # the run log goes to stderr
    # the policy and the reference model were sharded: rank 0 stores half of the parameters
    r_log = " ".join(r.stderr.split())
    assert "the policy and the reference model sharded over 2 processes" in r_log
    assert "rank 0 stores 50.0% of the parameters" in r_log
    m1 = [json.loads(x) for x in (one / "metrics.jsonl").read_text().splitlines()]
    m2 = [json.loads(x) for x in (two / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in m2] == [1, 2]
    for a, b in zip(m1, m2):
        assert a["response_length/mean"] == b["response_length/mean"]
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], abs=1e-6)
        assert a["kl/ref"] == pytest.approx(b["kl/ref"], abs=1e-6)
    # FSDP's summed reduce-scatter gives one process's step (measured max |difference| 1.3e-6 after 2 AdamW
    # steps at lr 1e-3), and the gathered checkpoint and export are plain HF folders with the same keys
    w1, w2 = _weights(one), _weights(two)
    assert sorted(w1) == sorted(w2)
    assert _max_diff(w1, w2) < 1e-4
    assert _max_diff(w2, _weights(res)) == 0  # stopped after step 1, resumed with 2 sharded processes
    ckpt = res / "checkpoints" / "step_2" / "policy"
    assert sorted(_weights_at(ckpt)) == sorted(w1)
    # a sharded run's checkpoint holds AdamW's state by parameter name: resuming it unsharded is refused
    r = _train(res, 1, *FSDP, "trainer.total_steps=3", "--resume")
    assert r.returncode != 0 and "sharded optimizer state" in r.stderr


def test_accelerate_launch_use_fsdp_means_the_fsdp_strategy(tmp_path):
    """``accelerate launch --use_fsdp`` sets ACCELERATE_USE_FSDP=true (accelerate's launcher, on GPUs; its
    CPU mode does not start several processes here, so the variable is set by hand under torchrun): the
    run shards and records the strategy; CPU offload is refused."""
    r = _train(tmp_path / "a", 2, "trainer.total_steps=1", env={"ACCELERATE_USE_FSDP": "true"})
    assert r.returncode == 0, r.stderr[-2000:]
    log = " ".join(r.stderr.split())
    assert "accelerate launch --use_fsdp: trainer.strategy=fsdp" in log and "sharded over 2 processes" in log
    # the resolved strategy is recorded beside the config, which stays as the user wrote it
    assert "strategy: fsdp" in (tmp_path / "a" / "run.yaml").read_text()
    assert "strategy: ddp" in (tmp_path / "a" / "config.yaml").read_text()
    r = _train(tmp_path / "b", 2, "trainer.total_steps=1",
               env={"ACCELERATE_USE_FSDP": "true", "FSDP_OFFLOAD_PARAMS": "true"})
    assert r.returncode != 0 and "sarl train shards without CPU offload" in r.stderr


def _weights_at(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_batch_wide_estimators_and_uneven_batches_are_refused_with_two_processes(tmp_path):
    r = _train(tmp_path / "a", 2, "trainer.total_steps=1", "algorithm.adv_estimator=reinforce_plus_plus")
    assert r.returncode != 0 and "normalises over the whole batch" in r.stderr
    r = _train(tmp_path / "b", 2, "trainer.total_steps=1", "trainer.prompts_per_step=3")
    assert r.returncode != 0 and "multiple of the 2 processes" in r.stderr


def test_estimator_refusal_reads_the_batch_wide_declaration():
    """check_estimator refuses what is registered batch_wide (no list of names to edit): a new group-local
    estimator is accepted with 2 processes, a new batch-wide one refused, and the message lists the
    group-local ones from the registry."""
    from sarl.algos import ADV_ESTIMATORS

    def est(token_rewards, response_mask, *, group_ids=None, values=None):
        return token_rewards, token_rewards

    two = Dist(rank=0, world=2)
    ADV_ESTIMATORS.register("test_group_local", needs=("groups",))(est)
    ADV_ESTIMATORS.register("test_batch_wide", batch_wide=True)(est)
    try:
        two.check_estimator("test_group_local")
        Dist().check_estimator("test_batch_wide")  # one process: anything goes
        with pytest.raises(ConfigError, match="test_batch_wide normalises over the whole batch.*with 2 processes use "
                                              "one of grpo, grpo_weighted, rloo, test_group_local$"):
            two.check_estimator("test_batch_wide")
    finally:
        ADV_ESTIMATORS.remove("test_group_local")
        ADV_ESTIMATORS.remove("test_batch_wide")
    for name in ("grpo", "grpo_weighted", "rloo"):
        two.check_estimator(name)
    for name in ("gae", "reinforce_plus_plus"):
        with pytest.raises(ConfigError, match=f"{name} normalises over the whole batch.*use one of grpo, grpo_weighted, rloo$"):
            two.check_estimator(name)


def test_one_process_is_a_no_op():
    d = Dist()
    assert d.shard([1, 2, 3]) == [1, 2, 3] and d.main and not d.active
    assert d.sum_values({"global_tokens": 3.0}) == {"global_tokens": 3.0}
    assert d.mean_metrics({"accuracy": 0.5}) == {"accuracy": 0.5} and d.all_true(False) is False
    two = Dist(rank=1, world=2)
    assert two.shard([0, 1, 2, 3]) == [2, 3] and not two.main
    with pytest.raises(ConfigError, match="multiple of the 2 processes"):
        two.shard([0, 1, 2])


def test_sar_passes_on_an_fsdp_sharded_model_run_in_lockstep(tmp_path):
    """Sharded parameters (FSDP, ZeRO-3) make every forward a collective. Two processes with different
    numbers and lengths of answers plan different numbers of forwards; with ``lockstep`` the SAR passes
    on a model sharded by torch's FSDP2 (gloo, CPU) finish and equal the unsharded values."""
    worker = Path(__file__).with_name("fsdp_sar_worker.py")
    r = subprocess.run([TORCHRUN, "--nproc-per-node", "2", str(worker), str(tmp_path)], capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    assert ranks[0]["forwards_per_pass"] > ranks[1]["forwards_per_pass"] == 1  # the plans differ
    for rk in ranks:
        assert rk["tokens"] > 0 and rk["max_abs_diff"] < 1e-5, rk
