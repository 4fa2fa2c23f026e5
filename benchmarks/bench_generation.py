"""Benchmark generation and grading (JSON out).

- Generation tokens/s of the batched transformers backend vs the same backend one prompt at a time,
  in the same run, on the same GSM8K prompts, greedy, a fixed number of new tokens per prompt budget.
  The two methods alternate on chunks of prompts so machine noise hits both alike.
- Grading throughput: responses graded per second by the math grader (main thread and a worker
  thread) on real model-style responses.

Usage: python benchmarks/bench_generation.py [--prompts 32] [--max-new-tokens 128] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_generation.json")
    args = ap.parse_args()

    from sarl.data import load_dataset
    from sarl.grading import grade
    from sarl.models import load_model
    from sarl.prompts import encode, render_problem_prompt
    from sarl.rollout import GenerationConfig, HFBackend

    lm = load_model()
    problems = load_dataset("gsm8k", limit=args.prompts)
    prompts = [encode(lm.tokenizer, render_problem_prompt(lm.tokenizer, p)) for p in problems]
    be = HFBackend(lm.model, lm.tokenizer)
    be.generate(prompts[:2], GenerationConfig(max_new_tokens=4))  # warm-up
    batched_cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
    single_cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, batch_size=1)
    secs = {"batched": 0.0, "single": 0.0}
    toks = {"batched": 0, "single": 0}
    outs: dict[str, list] = {"batched": [], "single": []}
    chunk = max(1, len(prompts) // args.rounds)
    for s in range(0, len(prompts), chunk):
        part = prompts[s : s + chunk]
        keys = list(range(s, s + len(part)))
        for name, cfg in (("batched", batched_cfg), ("single", single_cfg)):
            t = time.perf_counter()
            res = be.generate(part, cfg, keys=keys)
            secs[name] += time.perf_counter() - t
            toks[name] += sum(x[0].num_tokens for x in res)
            outs[name].extend(res)
    same = sum(a[0].token_ids == b[0].token_ids for a, b in zip(outs["batched"], outs["single"]))

    # grading throughput on the responses just generated (plus their gold answers)
    responses = [(o[0].text, p.answer) for o, p in zip(outs["batched"], problems)]
    reps = max(1, 2000 // len(responses))
    work = responses * reps
    t = time.perf_counter()
    n_correct = sum(grade(r, g).correct for r, g in work)
    main_thread = len(work) / (time.perf_counter() - t)
    box = {}

    def worker():
        t0 = time.perf_counter()
        for r, g in work:
            grade(r, g)
        box["rate"] = len(work) / (time.perf_counter() - t0)

    th = threading.Thread(target=worker)
    th.start()
    th.join()

    result = {
        "benchmark": "bench_generation",
        "model": lm.name,
        "device": lm.device,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "prompts": len(prompts),
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "seconds": secs,
        "generated_tokens": toks,
        "batched_tokens_per_s": toks["batched"] / secs["batched"],
        "single_tokens_per_s": toks["single"] / secs["single"],
        "ratio_batched_vs_single": (toks["batched"] / secs["batched"]) / (toks["single"] / secs["single"]),
        "greedy_outputs_identical": f"{same}/{len(prompts)}",
        "grading_responses": len(work),
        "grading_per_s_main_thread": main_thread,
        "grading_per_s_worker_thread": box["rate"],
        "grading_correct_fraction": n_correct / len(work),
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
