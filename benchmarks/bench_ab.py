"""Step time of two source trees of sarl in one run (JSON out): for a refactor, "within noise of
before" is a ratio measured on the same machine at the same time, never two numbers from two days.

Each round trains every arm once with each tree (``python -m sarl train`` with ``PYTHONPATH`` set to the
tree's ``src``), alternating A and B so that machine noise hits both alike, and reads ``time/step`` of the
steps after the first (the first includes warm-up) from ``metrics.jsonl``. Reported per arm: the mean
step time of each tree and the ratio B / A with a t interval over rounds (paired by round).

    git worktree add ../sarl-before <old commit>
    python benchmarks/bench_ab.py --a ../sarl-before/src --b src --rounds 3

Arms: SA-GRPO (correctness + 0.2 SAR) and GRPO (correctness only) from the CPU recipe on the default
model, 4 prompts x 4 rollouts, 64 tokens, 3 steps.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ARMS = {"sa_grpo": "{correctness: 1.0, sar: 0.2}", "grpo": "{correctness: 1.0}"}
COMMON = ["trainer.prompts_per_step=4", "rollout.n=4", "data.max_response_length=64", "trainer.total_steps=3",
          "actor.mini_batch_size=16", "trainer.tensorboard=false", "trainer.logger=[]", "data.val=null",
          "trainer.save_every=0", "trainer.log_samples=0"]


def step_times(src: Path, weights: str, seed: int, out: Path) -> list[dict[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(src.resolve())}
    cmd = [sys.executable, "-m", "sarl", "train", "cpu/sa_grpo", f"rewards.weights={weights}", *COMMON,
           f"trainer.seed={seed}", f"trainer.out_dir={out}"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if r.returncode:
        raise SystemExit(f"{src}: training failed:\n{r.stderr[-3000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in m.items() if k.startswith("time/")} for m in rows
            if m.get("step", 0) > 1 and "time/step" in m]


def t_interval(x: list[float]) -> tuple[float, float, float]:
    """Mean and a 95% t interval (n - 1 degrees of freedom) of paired per-round values."""
    from sarl.stats import t975

    m = statistics.fmean(x)
    if len(x) < 2:
        return m, float("nan"), float("nan")
    h = t975(len(x) - 1) * statistics.stdev(x) / len(x) ** 0.5
    return m, m - h, m + h


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True, help="the baseline tree's src folder")
    ap.add_argument("--b", type=Path, required=True, help="the new tree's src folder")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_ab.json")
    args = ap.parse_args()
    res: dict = {arm: {"a": [], "b": [], "ratio": [], "stages_a": [], "stages_b": []} for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for arm, weights in ARMS.items():
                order = ("a", "b") if r % 2 == 0 else ("b", "a")
                got = {k: step_times(getattr(args, k), weights, r, Path(tmp) / f"{arm}{r}{k}") for k in order}
                a, b = (statistics.fmean(s["time/step"] for s in got[k]) for k in ("a", "b"))
                for k in ("a", "b"):  # each stage's mean seconds per step in this run
                    res[arm][f"stages_{k}"].append({n: statistics.fmean(s.get(n, 0.0) for s in got[k])
                                                    for n in got[k][0]})
                res[arm]["a"].append(a)
                res[arm]["b"].append(b)
                res[arm]["ratio"].append(b / a)
                print(f"round {r} {arm}: A {a:.2f} s/step, B {b:.2f} s/step, B/A {b / a:.3f}", flush=True)
    summary = {arm: {"a_mean_s": statistics.fmean(v["a"]), "b_mean_s": statistics.fmean(v["b"]),
                     "ratio_mean_ci95": t_interval(v["ratio"]),
                     "stage_b_minus_a_s": {n: statistics.fmean(sb.get(n, 0.0) - sa.get(n, 0.0)
                                                               for sa, sb in zip(v["stages_a"], v["stages_b"]))
                                           for n in v["stages_b"][0]}} for arm, v in res.items()}
    out = {"a": str(args.a), "b": str(args.b), "rounds": args.rounds, "arms": ARMS, "settings": COMMON,
           "per_round": res, "summary": summary, "machine": platform.processor() or platform.machine(),
           "cpus": os.cpu_count()}
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
