"""Benchmark of ``trainer.strategy``: SA-GRPO on the default model with 2 processes (torchrun, gloo),
replicated (``ddp``) against sharded (``fsdp``), in one run (JSON out): seconds per step and each
process's peak memory (``perf/max_memory_gb``: the peak resident set size on a CPU, averaged over the 2
processes), with the ratios fsdp / ddp.

The ``-mmap1m`` arms run the same with ``MALLOC_MMAP_THRESHOLD_=1048576``: glibc then returns freed
buffers of 1 MiB and more to the system at once, where it otherwise keeps them in its heap, and FSDP's
per-layer parameter gathers free such buffers at every forward (on a CPU; a GPU has its own allocator).

The arms alternate over ``--rounds`` so that machine noise hits both; the first step of each run is not
timed (warm-up). Run it alone: the 2 processes take the machine's cores.

Usage: python benchmarks/bench_fsdp.py [--rounds 2] [--steps 3] [--arms ddp,fsdp,ddp-mmap1m,fsdp-mmap1m]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = {"ddp": ["trainer.strategy=ddp"], "fsdp": ["trainer.strategy=fsdp"],
        "ddp-mmap1m": ["trainer.strategy=ddp"], "fsdp-mmap1m": ["trainer.strategy=fsdp"]}
MMAP_1M = {"MALLOC_MMAP_THRESHOLD_": "1048576"}


def run_arm(name: str, steps: int, work: Path) -> dict:
    out = work / f"{name}-{time.time_ns()}"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    args = ["sarl", "train", "cpu/sa_grpo", f"trainer.total_steps={steps}", "trainer.val_every=0", "data.val=null",
            "trainer.save_every=0", "trainer.prompts_per_step=4", "actor.mini_batch_size=16",
            "data.max_response_length=64", f"trainer.out_dir={out}", *ARMS[name]]
    env = {**os.environ, **(MMAP_1M if name.endswith("-mmap1m") else {})}
    r = subprocess.run([torchrun, "--nproc-per-node", "2", "-m", *args], capture_output=True, text=True,
                       timeout=3000, check=False, env=env)
    if r.returncode:
        raise RuntimeError(f"{name}: {r.stderr[-2000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [x for x in rows if "time/step" in x]
    timed = rows[1:]  # the first step pays for warm-up
    shutil.rmtree(out, ignore_errors=True)
    log = " ".join(r.stderr.split())
    share = log.split("rank 0 stores ")[1].split(" of the parameters")[0] if "rank 0 stores" in log else "100%"
    return {"time/step": statistics.mean(x["time/step"] for x in timed),
            "time/update_actor": statistics.mean(x["time/update_actor"] for x in timed),
            "time/generate": statistics.mean(x["time/generate"] for x in timed),
            "time/sync_weights": statistics.mean(x.get("time/sync_weights", 0.0) for x in timed),
            "perf/max_memory_gb": rows[-1]["perf/max_memory_gb"],
            "reward/mean": [x["reward/mean"] for x in rows],
            "parameter_share_rank0": share}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="training steps per run (the first is not timed)")
    ap.add_argument("--arms", default=",".join(ARMS), help="comma-separated, of: " + ", ".join(ARMS))
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_fsdp.json")
    args = ap.parse_args()
    arms = [a for a in args.arms.split(",") if a]
    work = Path(tempfile.mkdtemp(prefix="sarl-bench-fsdp-"))
    runs: dict[str, list[dict]] = {a: [] for a in arms}
    for _ in range(args.rounds):
        for name in arms:
            runs[name].append(run_arm(name, args.steps, work))
            print(name, runs[name][-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    mean = {a: {k: statistics.mean(r[k] for r in v) for k in ("time/step", "time/update_actor", "time/generate",
                                                             "time/sync_weights", "perf/max_memory_gb")}
            for a, v in runs.items()}
    result = {
        "benchmark": "bench_fsdp",
        "machine": platform.machine(),
        "recipe": "cpu/sa_grpo (default model), 4 prompts x 4 samples x 64 tokens, 2 processes (gloo), "
                  "trainer.precision auto (this machine's)",
        "rounds": args.rounds, "steps_timed": args.steps - 1,
        "mean": mean,
        "ratio_fsdp_vs_ddp": {f"{k}{tag}": mean[f"fsdp{tag}"][k] / mean[f"ddp{tag}"][k]
                              for tag in ("", "-mmap1m") if f"fsdp{tag}" in mean and f"ddp{tag}" in mean
                              for k in ("time/step", "perf/max_memory_gb")},
        "runs": runs,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("mean", "ratio_fsdp_vs_ddp")}, indent=2))


if __name__ == "__main__":
    main()
