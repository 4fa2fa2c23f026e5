"""Benchmark of one sampling step of the transformers backend (JSON out): the batched sampler
(`sarl.rollout.hf.categorical_sample`: inverse CDF at a hashed uniform per sequence) against the
per-row sampler it replaced (probabilities copied to the CPU, one `torch.multinomial` per row with its
own generator), on random logits of the default model's vocabulary, alternating over rounds.

Usage: python benchmarks/bench_sampler.py [--rows 64] [--vocab 49152] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from sarl.rollout.hf import _filter_logits, categorical_sample


def per_row(logits: torch.Tensor, gens: list[torch.Generator]) -> torch.Tensor:
    probs = torch.softmax(_filter_logits(logits, 0, 1.0), dim=-1).cpu()
    return torch.stack([torch.multinomial(probs[j], 1, generator=gens[j]).squeeze(0) for j in range(len(gens))])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_sampler.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    logits = torch.randn(args.rows, args.vocab) * 3
    seeds = torch.arange(args.rows) * 104_729
    gens = [torch.Generator().manual_seed(int(s)) for s in seeds]
    ms: dict[str, list[float]] = {"per_row_multinomial": [], "batched_inverse_cdf": []}
    for _ in range(args.rounds):
        for name, times in ms.items():
            t = time.perf_counter()
            for step in range(args.steps):
                if name == "per_row_multinomial":
                    per_row(logits, gens)
                else:
                    categorical_sample(_filter_logits(logits, 0, 1.0), seeds, step)
            times.append((time.perf_counter() - t) / args.steps * 1000)
    mean = {k: sum(v) / len(v) for k, v in ms.items()}
    result = {"benchmark": "bench_sampler", "machine": platform.machine(), "threads": torch.get_num_threads(),
              "rows": args.rows, "vocab": args.vocab, "ms_per_step": mean, "rounds_ms": ms,
              "speedup": mean["per_row_multinomial"] / mean["batched_inverse_cdf"]}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
