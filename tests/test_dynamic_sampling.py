"""Dynamic sampling (DAPO; ``algorithm.filter_groups``, sarl.train.filter_groups): which groups drop and how
the refill fills the batch (hand-computed), a tiny run that drops groups and resumes exactly, the limit's
error, verl's keys, TRL's refusal, and 2 gloo processes agreeing with one.

The tiny random model never answers right and always runs to the length limit, so the tests grade with
a stand-in: a response is "correct" when its text has an odd length (deterministic, so resume is exact)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sarl.config import ConfigError, load_config
from sarl.train.filter_groups import FilterGroupsError, FilterStats, informative_groups, select_groups

ARGS = ["model.name=tiny-random", "data.train=chain_sum", "data.train_size=64", "data.max_response_length=6",
        "data.max_prompt_length=128", "rollout.n=2", "rollout.batch_size=8", "trainer.prompts_per_step=2",
        "actor.lr=1e-3", "actor.weight_decay=0.0", "actor.micro_batch_size=2", "trainer.tensorboard=false",
        "trainer.precision=fp32", "model.threads=1", "algorithm.filter_groups.enable=true",
        "algorithm.filter_groups.metric=acc"]


def odd_length_grader(responses, golds, data_sources=None, problems=None, metadata=None):
    return torch.tensor([float(len(r) % 2) for r in responses], dtype=torch.float32)


def test_informative_groups_by_hand():
    values = torch.tensor([1.0, 1.0, 0.0, 1.0, 0.5, 0.5, 0.5, 2.0])
    groups = torch.tensor([0, 0, 1, 1, 2, 2, 3, 4])
    # group 0 all 1 (drop), 1 mixed (keep), 2 all 0.5 (drop), 3 and 4 one response each (kept, as verl)
    assert informative_groups(values, groups).tolist() == [False, True, False, True, True]
    # a group id with no rows is dropped
    assert informative_groups(torch.tensor([0.0, 1.0]), torch.tensor([1, 1])).tolist() == [False, True]


def test_refill_takes_the_first_informative_groups_in_draw_order():
    g = torch.tensor([0, 0, 1, 1, 2, 2])
    r0 = torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0, 1.0])  # keeps group 1
    r1 = torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # keeps groups 0 and 2
    chosen, stats = select_groups([r0], [g], 3)
    assert chosen == [(0, 1)] and stats == FilterStats(1, 1, 2, 0)  # short: another round is needed
    chosen, stats = select_groups([r0, r1], [g, g], 3)
    assert chosen == [(0, 1), (1, 0), (1, 2)] and stats == FilterStats(2, 3, 3, 0)
    chosen, stats = select_groups([r0, r1], [g, g], 2)  # the surplus (round 1's group 2) is left out
    assert chosen == [(0, 1), (1, 0)] and stats == FilterStats(2, 3, 3, 1)


def test_config_keys_verl_names_and_trl_refusal():
    cfg = load_config(None, ["actor_rollout_ref.rollout.n=2", "algorithm.filter_groups.enable=true",
                             "algorithm.filter_groups.metric=acc", "algorithm.filter_groups.max_num_gen_batches=5",
                             "algorithm.filter_groups.max_inflight_gen_batches=1"])
    fg = cfg.algorithm.filter_groups
    assert (fg.enable, fg.metric, fg.max_num_gen_batches) == (True, "acc", 5)
    with pytest.raises(ConfigError, match="algorithm.filter_groups.metric.*acc, reward, score, seq_reward"):
        load_config(None, ["algorithm.filter_groups.metric=seq_final_reward"])
    from sarl.integrations.trl.recipe import grpo_kwargs

    with pytest.raises(ConfigError, match="algorithm.filter_groups"):
        grpo_kwargs(cfg, num_processes=1)


def _run(out: Path, *extra: str, resume: bool = False):
    from sarl.train import Trainer

    tr = Trainer(load_config(None, ARGS + [f"trainer.out_dir={out}", *extra]), resume=resume)
    tr.run()
    return tr, [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_filtered_run_drops_groups_and_resumes_exactly(tmp_path, monkeypatch):
    monkeypatch.setattr("sarl.grading.grade_all", odd_length_grader)
    full, m = _run(tmp_path / "full", "trainer.total_steps=2")
    for row in m:
        assert row["filter/kept_groups"] + row["filter/dropped_groups"] == 2 * row["filter/gen_rounds"]
        assert row["filter/kept_groups"] - row["filter/surplus_groups"] == 2
        assert row["groups/all_correct"] == row["groups/all_wrong"] == 0  # every group trained on is mixed
        assert row["accuracy"] == 0.5
    assert sum(row["filter/dropped_groups"] for row in m) > 0  # the run did refill
    _run(tmp_path / "half", "trainer.total_steps=1")
    half, m2 = _run(tmp_path / "half", "trainer.total_steps=2", resume=True)
    assert [r["filter/gen_rounds"] for r in m2] == [r["filter/gen_rounds"] for r in m]
    assert [r["actor/pg_loss"] for r in m2] == [r["actor/pg_loss"] for r in m]
    for (k, a), b in zip(full.policy.state_dict().items(), half.policy.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_too_few_informative_groups_within_the_limit_raises(tmp_path, monkeypatch):
    monkeypatch.setattr("sarl.grading.grade_all", lambda responses, *a, **k: torch.zeros(len(responses)))
    with pytest.raises(FilterGroupsError, match="algorithm.filter_groups.max_num_gen_batches=2"):
        _run(tmp_path, "trainer.total_steps=1", "algorithm.filter_groups.max_num_gen_batches=2")


TORCHRUN = shutil.which("torchrun", path=str(Path(sys.executable).parent))
LAUNCH = """import sys, torch, sarl.grading
sys.path.insert(0, {tests!r})
from test_dynamic_sampling import odd_length_grader
sarl.grading.grade_all = odd_length_grader
from sarl.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""


@pytest.mark.skipif(TORCHRUN is None, reason="torchrun is not installed beside this Python")
def test_two_processes_refill_like_one(tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(LAUNCH.format(tests=str(Path(__file__).parent)))
    args = [*ARGS, "trainer.prompts_per_step=4", "trainer.total_steps=2"]
    for out, cmd in ((tmp_path / "one", [sys.executable]), (tmp_path / "two", [TORCHRUN, "--nproc-per-node", "2"])):
        r = subprocess.run([*cmd, str(script), *args, f"trainer.out_dir={out}"], capture_output=True, text=True,
                           timeout=300, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert r.returncode == 0, r.stderr[-2000:]
    m1, m2 = ([json.loads(x) for x in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("one", "two"))
    for a, b in zip(m1, m2, strict=True):  # the same rounds, groups and rollouts
        for k in ("filter/gen_rounds", "filter/kept_groups", "filter/dropped_groups", "response_length/mean",
                  "accuracy"):
            assert a[k] == b[k], k
        assert a["reward/mean"] == pytest.approx(b["reward/mean"], abs=1e-6)
    assert sum(m["filter/dropped_groups"] for m in m1) > 0  # the refill ran
    from safetensors.torch import load_file

    w1, w2 = (load_file(str(tmp_path / d / "final" / "model.safetensors")) for d in ("one", "two"))
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-4  # float rounding of the summed gradients
