"""SFT step time with and without length-sorted micro-batches (``sarl sft --micro-batch-size``), JSON out.

The quickstart's warm start (:data:`sarl.quickstart.SYNTH_SFT`: a new 4-layer, 128-wide Llama, its own
1,024-entry tokenizer, 12,000 ``synth_chain_v2`` solutions, batch 32) has examples of 76–206 tokens, so
a whole batch padded to its longest is about a third padding. sarl's own ``_sft_step`` is timed on the
run's first batches for each ``--sizes`` value (``none`` = the whole batch at once), every arm on its own
copy of the same new model, alternating arms over ``--rounds`` rounds of ``--steps`` steps, in one
process. Reported: seconds per step per arm, each arm's ratio to ``none`` (the median over rounds), the
padding share of the computed tokens, and the largest relative difference of the first step's loss from
the whole batch's (the update is the same; only the summation order differs).

Usage: python benchmarks/bench_sft_micro.py [--sizes none,16,8] [--rounds 3] [--steps 20] [-o FILE]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="none,16,8")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("-o", "--out", default="benchmarks/results/bench_sft_micro.json")
    args = ap.parse_args()

    import torch

    from sarl.models import set_threads
    from sarl.precision import hidden_size, resolve_precision
    from sarl.quickstart import SYNTH_SFT
    from sarl.sft import SFTConfig, _batches, _sft_step, _start_model, encode_examples, load_examples, micro_batches
    from sarl.train.update import lr_lambda

    set_threads(args.threads)
    cfg = SFTConfig(**{**SYNTH_SFT, "out_dir": "unused"})
    examples = load_examples(cfg)
    t = time.perf_counter()
    model, tok = _start_model(cfg, None, examples)  # the new Llama and its tokenizer, as sarl sft builds them
    setup_s = time.perf_counter() - t
    precision = resolve_precision(cfg.precision, "cpu", hidden_size(model.config))
    data = encode_examples(tok, examples, cfg)
    batches = [[data[i] for i in b] for b in _batches(len(data), cfg.batch_size, cfg.epochs, cfg.seed)]
    sizes = [None if s == "none" else int(s) for s in args.sizes.split(",")]
    arms = {}
    for size in sizes:
        m = copy.deepcopy(model).train()
        opt = torch.optim.AdamW(m.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.warmup_steps, len(batches), "cosine"))
        arms[size] = (m, opt, sched)

    def step(size, i):
        m, opt, sched = arms[size]
        return _sft_step(m, opt, sched, batches[i], tok.pad_token_id, precision, cfg.grad_clip, i + 1, size)

    first_loss = {size: step(size, 0)["loss"] for size in sizes}  # also the warm-up (kernel choice)
    seconds: dict[str, list[float]] = {str(s).lower(): [] for s in sizes}
    for r in range(args.rounds):
        span = range(1 + r * args.steps, 1 + (r + 1) * args.steps)
        for size in sizes:
            t = time.perf_counter()
            for i in span:
                step(size, i)
            seconds[str(size).lower()].append((time.perf_counter() - t) / args.steps)

    def padding(size) -> float:
        real = padded = 0
        for b in batches:
            for part in micro_batches(b, size):
                real += sum(len(ids) for ids, _ in part)
                padded += max(len(ids) for ids, _ in part) * len(part)
        return 1 - real / padded

    base = seconds["none"] if "none" in seconds else None
    out = {
        "what": "sarl sft step time, whole batch vs length-sorted micro-batches (quickstart warm start)",
        "command": "python benchmarks/bench_sft_micro.py " + " ".join(
            f"--{k} {v}" for k, v in (("sizes", args.sizes), ("rounds", args.rounds), ("steps", args.steps))),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "threads": args.threads,
                    "torch": torch.__version__},
        "precision": precision, "batch_size": cfg.batch_size, "examples": len(data), "setup_seconds": setup_s,
        "arms": {
            str(size).lower(): {
                "seconds_per_step": seconds[str(size).lower()],
                "median_seconds_per_step": statistics.median(seconds[str(size).lower()]),
                "ratio_to_whole_batch": (None if base is None else statistics.median(
                    a / b for a, b in zip(seconds[str(size).lower()], base))),
                "padding_share": padding(size),
                "first_loss_relative_difference": (abs(first_loss[size] - first_loss[None]) / first_loss[None]
                                                   if None in first_loss else None),
            } for size in sizes},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: {"s/step": round(v["median_seconds_per_step"], 3), "ratio": v["ratio_to_whole_batch"],
                          "padding": round(v["padding_share"], 3)} for k, v in out["arms"].items()}, indent=1))


if __name__ == "__main__":
    main()
