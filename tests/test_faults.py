"""Faults a training run survives, on the tiny random model: a checkpoint damaged on disk (skipped on
``--resume`` for the previous intact one, and said so), a checkpoint write that fails part-way (no space
left: the last good checkpoint and the logs stay, a one-line error names the folder), and one of two
torchrun workers killed mid-step (the run ends at once; ``--resume`` continues exactly)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sarl.config import load_config
from sarl.errors import SarlError
from sarl.train import Trainer
from sarl.train.checkpoint import CheckpointError, checkpoint_problem, latest_checkpoint, load_state

TINY = ["model.name=tiny-random", "data.train=chain_sum", "data.train_size=64", "data.max_response_length=12",
        "data.max_prompt_length=128", "rollout.n=2", "rollout.batch_size=8", "trainer.prompts_per_step=2",
        "actor.lr=1e-3", "actor.weight_decay=0.0", "actor.micro_batch_size=2", "trainer.tensorboard=false",
        "rewards.weights={correctness: 1.0, sar: 0.5, o1_pruner: 0.5}"]  # non-zero advantages
EVERY_STEP = ["trainer.save_every=1", "trainer.keep_last=3"]


def cfg_for(out: Path, *extra: str):
    return load_config(None, TINY + [f"trainer.out_dir={out}", *extra])


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


def copy_run(src: Path, dest: Path) -> Path:
    """A copy of the run folder ``src`` at ``dest`` that resumes there (its saved trainer.out_dir moved)."""
    shutil.copytree(src, dest)
    saved = dest / "config.yaml"
    saved.write_text(saved.read_text().replace(str(src), str(dest)))
    return dest


class Log:
    """A console that keeps what the trainer prints."""

    def __init__(self):
        self.lines: list[str] = []

    def print(self, msg, *args, **kwargs):
        self.lines.append(str(msg))


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory) -> Path:
    """An uninterrupted 3-step run checkpointed after every step (keep_last=3)."""
    out = tmp_path_factory.mktemp("faults") / "run"
    Trainer(cfg_for(out, "trainer.total_steps=3", *EVERY_STEP)).run()
    return out


def test_damaged_checkpoints_are_skipped_for_the_previous_intact_one(three_steps, tmp_path):
    out = copy_run(three_steps, tmp_path / "run")
    root = out / "checkpoints"
    state = root / "step_3" / "trainer_state.pt"  # truncated to half
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
    policy = root / "step_2" / "policy" / "model.safetensors"  # garbage of the same size: only the sha256 tells
    policy.write_bytes(os.urandom(policy.stat().st_size))
    assert checkpoint_problem(root / "step_3").startswith("trainer_state.pt: ")
    assert "bytes" in checkpoint_problem(root / "step_3")
    assert checkpoint_problem(root / "step_2") == "policy/model.safetensors: its bytes changed since it was written " \
                                                  "(sha256 differs)"
    assert checkpoint_problem(root / "step_1") is None
    log = Log()
    tr = Trainer(cfg_for(out, "trainer.total_steps=3", *EVERY_STEP), resume=True, console=log)
    assert tr.step == 1
    said = "\n".join(log.lines)
    assert "step_3 is damaged (trainer_state.pt: " in said and "moved to step_3.damaged, resuming from step_1" in said
    assert "step_2 is damaged (policy/model.safetensors: " in said
    assert not (root / "step_3").exists() and (root / "step_3.damaged" / "trainer_state.pt").exists()
    tr.run()  # steps 2 and 3 again: the same weights as the uninterrupted run
    assert steps(out / "metrics.jsonl") == [1, 2, 3]
    ref, now = weights(three_steps / "final"), weights(out / "final")
    assert all(torch.equal(ref[k], now[k]) for k in ref)
    assert sorted(p.name for p in root.iterdir()) == ["step_1", "step_2", "step_2.damaged", "step_3", "step_3.damaged"]


def test_no_intact_checkpoint_is_an_error_and_old_checkpoints_still_load(three_steps, tmp_path):
    out = copy_run(three_steps, tmp_path / "run")
    root = out / "checkpoints"
    for ckpt in root.iterdir():
        (ckpt / "config.yaml").write_text("damaged")  # another size: caught before any hashing
    with pytest.raises(CheckpointError, match=r"no intact checkpoint under .*checkpoints; step_3: config.yaml: .*; "
                                              r"step_2: config.yaml: .*; step_1: config.yaml: "):
        Trainer(cfg_for(out, "trainer.total_steps=3", *EVERY_STEP), resume=True)
    assert sorted(p.name for p in root.iterdir()) == ["step_1", "step_2", "step_3"]  # nothing moved
    # checkpoints written before the checksums (complete.json holds the step alone) load as they are ...
    shutil.rmtree(out)
    copy_run(three_steps, out)
    for ckpt in root.iterdir():
        (ckpt / "complete.json").write_text(json.dumps({"step": int(ckpt.name.split("_")[1])}))
    assert checkpoint_problem(root / "step_3") is None
    assert Trainer(cfg_for(out, "trainer.total_steps=3", *EVERY_STEP), resume=True).step == 3
    # ... and one of their files that cannot be read is an error that names it
    state = root / "step_3" / "trainer_state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"step_3/trainer_state.pt: cannot be read"):
        load_state(root / "step_3")


def test_a_checkpoint_write_that_fails_part_way_keeps_the_last_good_one(three_steps, tmp_path, monkeypatch):
    """A 1-step run (final/ written) extended to 3 steps whose checkpoint of step 2 runs out of disk space
    after the policy's weights were written: the half-written folder is removed, step 1's checkpoint,
    metrics.jsonl and final/ stay, and --resume continues from step 1 to the uninterrupted run's weights."""
    out = tmp_path / "run"
    Trainer(cfg_for(out, "trainer.total_steps=1", *EVERY_STEP)).run()
    final_before = (out / "final" / "model.safetensors").read_bytes()
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        if Path(f).name == "trainer_state.pt" and ".tmp-step_2" in str(f):
            Path(f).write_bytes(b"PK\x03\x04" + bytes(4096))  # part of the file, then the disk is full
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"checkpoint of step 2: writing .*/checkpoints/\.tmp-step_2 failed "
                                              r"\(OSError: \[Errno 28\] No space left on device\); removed it .*"
                                              r"the last complete checkpoint is .*step_1") as err:
        Trainer(cfg_for(out, "trainer.total_steps=3", *EVERY_STEP), resume=True).run()
    assert isinstance(err.value, SarlError) and "\n" not in str(err.value)  # the CLI prints it in one line
    monkeypatch.undo()
    root = out / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["step_1"] and checkpoint_problem(root / "step_1") is None
    assert steps(out / "metrics.jsonl") == [1]  # step 2 was not logged: it is redone
    assert (out / "final" / "model.safetensors").read_bytes() == final_before
    resumed = Trainer(cfg_for(out, "trainer.total_steps=3", *EVERY_STEP), resume=True)
    assert resumed.step == 1
    resumed.run()
    assert steps(out / "metrics.jsonl") == [1, 2, 3]
    assert sorted({s for s in steps(out / "samples.jsonl")}) == [1, 2, 3]
    assert len(steps(out / "samples.jsonl")) == 3 * 4  # step 2's rows from the failed attempt were dropped
    ref, now = weights(three_steps / "final"), weights(out / "final")
    assert all(torch.equal(ref[k], now[k]) for k in ref)


# ------------------------------------------------------------------------------ a killed torchrun worker
TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
DIST = ["model.name=tiny-random", "data.train=chain_sum", "data.train_size=32", "data.max_response_length=12",
        "data.max_prompt_length=128", "rollout.n=2", "trainer.prompts_per_step=4", "actor.micro_batch_size=2",
        "trainer.tensorboard=false", "trainer.precision=fp32", "actor.lr=1e-3", "model.threads=1",
        "rewards.weights={correctness: 1.0, sar: 0.5, o1_pruner: 0.5}", "trainer.total_steps=4",
        "trainer.save_every=1"]


def _torchrun(out: Path, *extra: str) -> list[str]:
    return [TORCHRUN, "--nproc-per-node", "2", "-m", "sarl", "train", *DIST, f"trainer.out_dir={out}", *extra]


def _worker(launcher: int, rank: int) -> int:
    """The pid of the torchrun worker of ``rank`` among the descendants of ``launcher``."""
    import psutil

    for p in psutil.Process(launcher).children(recursive=True):
        try:
            if p.environ().get("RANK") == str(rank) and "LOCAL_RANK" in p.environ():
                return p.pid
        except psutil.Error:
            continue
    raise AssertionError(f"no worker of rank {rank} under {launcher}")


def _kill_tree(proc: subprocess.Popen) -> None:
    import psutil

    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            p.kill()
        except psutil.Error:
            pass
    proc.kill()
    proc.wait()


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_a_killed_worker_ends_the_run_and_resume_continues_exactly(tmp_path):
    """kill -9 of rank 1 during step 2 (rank 0 then waits in a gloo collective): torchrun's agent sees the
    death and stops rank 0, so the run ends within seconds; --resume with 2 processes continues from the
    last checkpoint to the uninterrupted run's weights."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = subprocess.run(_torchrun(full), capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(tmp_path / "cut.log", "w") as log:
        proc = subprocess.Popen(_torchrun(cut), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while latest_checkpoint(cut / "checkpoints") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before a worker could be killed"
        os.kill(_worker(proc.pid, 1), signal.SIGKILL)
        killed = time.monotonic()
        proc.wait(timeout=120)
        ended = time.monotonic() - killed
    finally:
        if proc.poll() is None:  # never leave a launcher or its workers behind
            _kill_tree(proc)
    assert proc.returncode != 0 and ended < 30, ended
    assert not (cut / "final").exists()
    r = subprocess.run(_torchrun(cut, "--resume"), capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resumed from" in r.stderr
    assert steps(cut / "metrics.jsonl") == [1, 2, 3, 4]
    a, b = weights(full / "final"), weights(cut / "final")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) == 0


STALL = """
import sys, time
from sarl.train.distributed import init_distributed

dist, _ = init_distributed("cpu", timeout_s=float(sys.argv[1]))
dist.barrier()
if dist.rank == 1:
    time.sleep(120)  # stalled, not dead: torchrun cannot tell
dist.sum_values({"x": 1.0})
"""


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_a_stalled_worker_is_bounded_by_the_collective_timeout(tmp_path):
    """A stalled peer (alive, never joining the collective) blocks the others until gloo's timeout (torch's
    default: 30 min); with ``init_distributed(timeout_s=3)`` the waiting process raises after 3 s and
    torchrun stops the run (measured 9 s end to end, process start-up included)."""
    worker = tmp_path / "stall.py"
    worker.write_text(STALL)
    start = time.monotonic()
    r = subprocess.run([TORCHRUN, "--nproc-per-node", "2", str(worker), "3"], capture_output=True, text=True,
                       timeout=120, check=False)
    assert r.returncode != 0 and "Timed out waiting 3000ms" in r.stderr + r.stdout, r.stderr[-2000:]
    assert time.monotonic() - start < 60


def test_a_setting_added_after_a_run_was_saved_does_not_block_its_resume(tmp_path):
    """A config.yaml written before a setting existed lacks its key: the run had the setting's default
    (new settings default to the old behaviour), so resuming with the default is allowed and resuming
    with another value is refused, naming the key."""
    import yaml

    from sarl.config import load_config, to_dict
    from sarl.errors import OutputExistsError
    from sarl.train.checkpoint import check_resume_settings

    saved = to_dict(load_config(None, []))
    del saved["algorithm"]["reward_aggregation"]
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(saved))
    check_resume_settings(path, to_dict(load_config(None, [])), tmp_path)
    other = load_config(None, ["algorithm.reward_aggregation=normalize_then_sum", "algorithm.norm_adv_by_std_in_grpo=true"])
    with pytest.raises(OutputExistsError, match="reward_aggregation"):
        check_resume_settings(path, to_dict(other), tmp_path)
