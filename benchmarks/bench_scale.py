"""Benchmark of the scale paths on this machine, in one run (JSON out): rollout tokens/s of the
transformers backend (fp32 weights, fp32 weights under bf16 autocast as in training, bf16 weights) and of
vLLM (fp32, bf16); and the SA-GRPO step time of ``sarl train`` with the transformers and the vLLM
rollout engine, and with 1 and 2 processes (torchrun, gloo), at the machine's default precision.

Every measurement runs in its own process (vLLM binds the threads of the process it starts in), the
arms alternate over ``--rounds`` so that machine noise hits all of them, and ratios are taken against
the transformers fp32 arm of the same run.

Usage: python benchmarks/bench_scale.py [--prompts 64] [--max-new-tokens 128] [--rounds 2] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROLLOUT = """
import json, sys, time
import torch

def main(arm, prompts_n, new_tokens):
    from sarl.data import load_dataset
    from sarl.prompts import render_problem_prompt
    from sarl.models import load_model, resolve_model_path
    from sarl.precision import autocast
    from sarl.prompts import encode
    from sarl.rollout import GenerationConfig, HFBackend

    engine, dtype = arm.split("-", 1)
    lm = load_model(dtype="bfloat16" if dtype == "bf16" else "float32", device="cpu")
    tok = lm.tokenizer
    prompts = [encode(tok, render_problem_prompt(tok, p)) for p in load_dataset("gsm8k", limit=prompts_n)]
    cfg = GenerationConfig(max_new_tokens=new_tokens, temperature=1.0, n=1, batch_size=64, seed=0)
    if engine == "vllm":
        from sarl.rollout.vllm_backend import VLLMBackend
        be = VLLMBackend(resolve_model_path(None), tok, dtype="bfloat16" if dtype != "fp32" else "float32",
                         max_model_len=1024)
    else:
        be = HFBackend(lm.model, tok)
    precision = "bf16-mixed" if dtype == "bf16mixed" else "fp32"
    with autocast(precision, "cpu"):
        be.generate(prompts[:2], GenerationConfig(max_new_tokens=4))  # warm-up
        t = time.perf_counter()
        out = be.generate(prompts, cfg, keys=list(range(len(prompts))))
        secs = time.perf_counter() - t
    n = sum(s[0].num_tokens for s in out)
    print(json.dumps({"arm": arm, "tokens": n, "seconds": secs, "threads": torch.get_num_threads()}))

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
"""

ROLLOUT_ARMS = ("hf-fp32", "hf-bf16mixed", "hf-bf16", "vllm-fp32", "vllm-bf16")
TRAIN_ARMS = {  # name: (processes, extra overrides)
    "hf-1proc": (1, ["rollout.backend=hf"]),
    "vllm-1proc": (1, ["rollout.backend=vllm"]),
    "hf-2proc": (2, ["rollout.backend=hf", "model.threads=1"]),
}


def _last_json(stdout: str) -> dict:
    return json.loads([x for x in stdout.splitlines() if x.startswith("{")][-1])


def rollout_arm(arm: str, prompts: int, new_tokens: int, script: Path) -> dict:
    r = subprocess.run([sys.executable, str(script), arm, str(prompts), str(new_tokens)], capture_output=True,
                       text=True, timeout=1200, check=False)
    if r.returncode:
        raise RuntimeError(f"{arm}: {r.stderr[-2000:]}")
    return _last_json(r.stdout)


def train_arm(name: str, steps: int, work: Path) -> dict:
    procs, extra = TRAIN_ARMS[name]
    out = work / f"{name}-{time.time_ns()}"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    head = [torchrun, "--nproc-per-node", str(procs), "-m"] if procs > 1 else [sys.executable, "-m"]
    args = ["sarl", "train", "cpu/sa_grpo", f"trainer.total_steps={steps}", "trainer.val_every=0", "data.val=null",
            "trainer.save_every=0", "trainer.prompts_per_step=4", "actor.mini_batch_size=16",
            "data.max_response_length=64", f"trainer.out_dir={out}", *extra]
    r = subprocess.run([*head, *args], capture_output=True, text=True, timeout=3000, check=False)
    if r.returncode:
        raise RuntimeError(f"{name}: {r.stderr[-2000:]}")
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    rows = [x for x in rows if "time/step" in x][1:]  # the first step pays for warm-up
    shutil.rmtree(out, ignore_errors=True)
    keys = ("time/step", "time/generate", "time/sync_weights", "time/update_actor", "response_length/mean")
    return {k: statistics.mean(x.get(k, 0.0) for x in rows) for k in keys}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="training steps per arm (the first is not timed)")
    ap.add_argument("--rollout-arms", default=",".join(ROLLOUT_ARMS))
    ap.add_argument("--train-arms", default=",".join(TRAIN_ARMS), help="comma-separated; empty: none")
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_scale.json")
    args = ap.parse_args()
    rollout_arms = [a for a in args.rollout_arms.split(",") if a]
    train_arms = [a for a in args.train_arms.split(",") if a]

    work = Path(tempfile.mkdtemp(prefix="sarl-bench-scale-"))
    script = work / "rollout.py"
    script.write_text(ROLLOUT)
    rollout: dict[str, list[dict]] = {a: [] for a in rollout_arms}
    train: dict[str, list[dict]] = {a: [] for a in train_arms}
    for _ in range(args.rounds):
        for arm in rollout_arms:
            rollout[arm].append(rollout_arm(arm, args.prompts, args.max_new_tokens, script))
            print(arm, rollout[arm][-1], flush=True)
    for _ in range(max(1, args.rounds // 2)):
        for name in train_arms:
            train[name].append(train_arm(name, args.steps, work))
            print(name, train[name][-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)

    tps = {a: sum(x["tokens"] for x in v) / sum(x["seconds"] for x in v) for a, v in rollout.items()}
    step = {a: {k: statistics.mean(r[k] for r in v) for k in v[0]} for a, v in train.items()}
    result = {
        "benchmark": "bench_scale",
        "machine": platform.machine(),
        "prompts": args.prompts, "max_new_tokens": args.max_new_tokens, "rounds": args.rounds,
        "rollout_tokens_per_s": tps,
        "rollout_ratio_vs_hf_fp32": {a: v / tps["hf-fp32"] for a, v in tps.items()} if "hf-fp32" in tps else None,
        "rollout_runs": rollout,
        "train_recipe": "cpu/sa_grpo, 4 prompts x 4 samples x 64 tokens, trainer.precision auto (this machine's)", "train_steps_timed": args.steps - 1,
        "train_seconds": step,
        "step_ratio_vs_hf_1proc": ({a: v["time/step"] / step["hf-1proc"]["time/step"] for a, v in step.items()}
                                   if "hf-1proc" in step else None),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("rollout_tokens_per_s", "rollout_ratio_vs_hf_fp32",
                                             "step_ratio_vs_hf_1proc")}, indent=2))


if __name__ == "__main__":
    main()
