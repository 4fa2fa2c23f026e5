"""Fingerprint of short tiny-model training runs through the command line: every logged metric except
timings, and a hash of the final weights (and of the last checkpoint's critic). A refactor of the
training code must leave them bit-identical on the same machine:

    python benchmarks/train_fingerprint.py -o before.json         # on the old code
    python benchmarks/train_fingerprint.py --compare before.json  # on the new code

Runs: SA-GRPO (with KL loss, 2 PPO epochs), PPO (GAE, critic, entropy bonus), weighted GRPO, SA-GRPO
with 2 gloo processes under torchrun, and SA-GRPO through ``--engine trl``. Each run goes through
``python -m sarl train`` so the fingerprint does not depend on the trainer's internals.
(Floating-point paths differ between machines, so the JSON is compared on one machine, not stored.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TINY = [
    "model.name=tiny-random", "data.train=chain_sum", "data.train_size=64", "data.max_response_length=12",
    "data.max_prompt_length=128", "rollout.n=4", "rollout.batch_size=8", "trainer.prompts_per_step=2",
    "actor.lr=1e-3", "actor.micro_batch_size=2", "actor.mini_batch_size=4", "trainer.tensorboard=false",
    "trainer.total_steps=4", "model.threads=1",
]
SA_GRPO = ["rewards.weights={correctness: 1.0, sar: 0.2, o1_pruner: 0.5}", "actor.use_kl_loss=true",
           "actor.kl_loss_coef=0.001", "actor.kl_loss_type=k3", "actor.loss_agg_mode=seq-mean-token-sum-norm",
           "algorithm.norm_adv_by_std_in_grpo=false", "actor.ppo_epochs=2"]
# name: (processes, engine, overrides)
RUNS = {
    "sa_grpo": (1, "native", SA_GRPO),
    "ppo": (1, "native", ["algorithm.adv_estimator=gae", "rewards.weights={correctness: 1.0, sar: 0.2}",
                          "critic.lr=1e-3", "actor.ppo_epochs=2", "actor.entropy_coeff=0.01"]),
    "weighted_grpo": (1, "native", ["algorithm.advantage_weighting_in_grpo=true",
                                    "rewards.weights={correctness: 1.0, sar: 0.5, o1_pruner: 0.5}"]),
    "sa_grpo_2proc": (2, "native", SA_GRPO),
    "sa_grpo_trl": (1, "trl", ["rewards.weights={correctness: 1.0, sar: 0.2}", "trainer.total_steps=2",
                               "actor.ppo_epochs=1", "trainer.precision=fp32"]),
}


def weights_hash(files: list[Path]) -> str | None:
    from safetensors.torch import load_file

    if not files:
        return None
    h = hashlib.sha256()
    sd = {}
    for f in files:
        sd.update(load_file(str(f)))
    for k, v in sorted(sd.items()):
        h.update(k.encode())
        h.update(v.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def _volatile(key: str) -> bool:
    """Wall-clock and memory readings, which differ between any two runs."""
    return (key.startswith(("time/", "perf/")) or key.endswith(("seconds", "_runtime", "_per_second", "step_time")))


def fingerprint(procs: int, engine: str, extra: list[str]) -> dict:
    bindir = Path(sys.executable).parent
    cmd = ([str(bindir / "torchrun"), "--nproc-per-node", str(procs), "-m"] if procs > 1 else [sys.executable, "-m"])
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "run"
        r = subprocess.run([*cmd, "sarl", "train", *TINY, *extra, f"trainer.out_dir={out}", "--engine", engine],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, check=False)
        if r.returncode:
            raise SystemExit(f"training failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
        steps = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        ckpts = sorted((out / "checkpoints").glob("step_*"), key=lambda p: int(p.name.split("_")[1])) \
            if (out / "checkpoints").exists() else []
        critic = [ckpts[-1] / "critic.safetensors"] if ckpts and (ckpts[-1] / "critic.safetensors").exists() else []
        return {"metrics": [{k: v for k, v in m.items() if not _volatile(k)} for m in steps],
                "policy": weights_hash(sorted((out / "final").glob("*.safetensors"))),
                "critic": weights_hash(critic)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--runs", nargs="*", default=list(RUNS), choices=list(RUNS))
    args = ap.parse_args()
    if "sa_grpo_2proc" in args.runs and not shutil.which("torchrun", path=str(Path(sys.executable).parent)):
        raise SystemExit("torchrun is not installed beside this Python")
    got = {name: fingerprint(*RUNS[name]) for name in args.runs}
    if args.out:
        args.out.write_text(json.dumps(got, indent=1) + "\n")
    if not args.compare:
        return 0
    want = json.loads(args.compare.read_text())
    bad = 0
    for name in args.runs:
        for key in ("policy", "critic"):
            if got[name][key] != want[name][key]:
                print(f"{name}: {key} weights differ")
                bad += 1
        if len(got[name]["metrics"]) != len(want[name]["metrics"]):
            print(f"{name}: {len(want[name]['metrics'])} logged rows before, {len(got[name]['metrics'])} after")
            bad += 1
        for s, (g, w) in enumerate(zip(got[name]["metrics"], want[name]["metrics"])):
            for k in sorted(k for k in set(g) | set(w) if not _volatile(k)):
                if g.get(k) != w.get(k):
                    print(f"{name} row {s}: {k}: before {w.get(k)!r} after {g.get(k)!r}")
                    bad += 1
    print("identical" if not bad else f"{bad} difference(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
