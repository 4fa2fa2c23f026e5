"""Benchmark the log-prob scorer on the default model (JSON out).

Measures, in one run and on the same GSM8K test answers (gold solutions, with their question prompts):
- forward tokens/s of the batched scorer (``answer_logprobs`` with its default budget);
- the same function called one example at a time (the baseline for the batching ratio);
- a plain one-at-a-time loop (full logits, log_softmax over every position), what most scripts do;
- this machine's fp32 matmul FLOP/s (2048^3, best of the rounds), and the scorer's compute efficiency:
  ``2 x parameters x tokens/s / matmul FLOP/s`` (the usual approximation) and the FLOPs the scorer
  really does (linear layers on every token, the LM head only on answer tokens, attention) / s /
  matmul FLOP/s.

The methods alternate on chunks of the data (``--rounds``) so a noisy, shared machine affects them
alike; the ratios are the figures to read.

Usage: python benchmarks/bench_logprobs.py [--n 200] [--threads 2] [-o benchmarks/results/bench_logprobs.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def matmul_flops(n: int = 2048, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=4, help="chunks the methods alternate on")
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_logprobs.json")
    args = ap.parse_args()

    from sarl.data import load_gsm8k
    from sarl.logprobs import answer_logprobs
    from sarl.models import load_model
    from sarl.prompts import encode, render_prompt

    lm = load_model(threads=args.threads)
    tok, model = lm.tokenizer, lm.model
    probs = load_gsm8k()[: args.n]
    ctx = [encode(tok, render_prompt(tok, p["question"])) for p in probs]
    ans = [encode(tok, p["solution"] + f" The answer is {p['answer']}.") for p in probs]
    fwd_tokens = sum(len(c) + len(a) for c, a in zip(ctx, ans))
    ans_tokens = sum(len(a) for a in ans)
    pad = tok.pad_token_id
    answer_logprobs(model, ctx[:4], ans[:4], pad_token_id=pad)  # warm-up

    def batched(c, a):
        return list(answer_logprobs(model, c, a, pad_token_id=pad, max_batch_tokens=args.batch_tokens).logp)

    def single(c, a):
        return [answer_logprobs(model, [x], [y], pad_token_id=pad).logp[0] for x, y in zip(c, a)]

    def naive(c, a):
        outs = []
        with torch.no_grad():
            for x, y in zip(c, a):
                logits = model(torch.tensor([x + y])).logits[0].float()
                lp = torch.log_softmax(logits, -1)[len(x) - 1 : -1]
                outs.append(lp.gather(-1, torch.tensor(y).unsqueeze(-1)).squeeze(-1))
        return outs

    # The machine is shared and noisy: run the methods interleaved on the same chunks so that every
    # method sees the same conditions, and measure the matmul peak in every round (best kept).
    methods = {"batched": batched, "single": single, "naive_loop": naive}
    seconds = dict.fromkeys(methods, 0.0)
    results: dict[str, list] = {k: [] for k in methods}
    peaks = []
    chunk = max(1, len(ans) // args.rounds)
    for start in range(0, len(ans), chunk):
        c, a = ctx[start : start + chunk], ans[start : start + chunk]
        peaks.append(matmul_flops())
        for name, fn in methods.items():
            t = time.perf_counter()
            results[name].extend(fn(c, a))
            seconds[name] += time.perf_counter() - t
    flops = max(peaks)
    max_diff = max(
        max((results["batched"][i][: len(a)] - results["single"][i][: len(a)]).abs().max().item(),
            (results["batched"][i][: len(a)] - results["naive_loop"][i]).abs().max().item())
        for i, a in enumerate(ans) if a
    )
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    n_embed = model.get_input_embeddings().weight.numel()
    # FLOPs the scorer really does: every linear layer on every token, the LM head on answer tokens
    # only, and attention scores/values (2 matmuls of ctx_len x head_dim per head and layer).
    attn = sum(4 * cfg.num_hidden_layers * cfg.hidden_size * (len(c) + len(a)) ** 2 / 2 for c, a in zip(ctx, ans))
    model_flops = 2 * (n_params - n_embed) * fwd_tokens + 2 * n_embed * ans_tokens + attn
    tps = fwd_tokens / seconds["batched"]
    result = {
        "benchmark": "bench_logprobs",
        "model": lm.name,
        "device": lm.device,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "examples": len(ans),
        "rounds": len(peaks),
        "forward_tokens": fwd_tokens,
        "answer_tokens": ans_tokens,
        "batch_tokens": args.batch_tokens,
        "seconds": seconds,
        "batched_tokens_per_s": tps,
        "single_tokens_per_s": fwd_tokens / seconds["single"],
        "naive_loop_tokens_per_s": fwd_tokens / seconds["naive_loop"],
        "ratio_batched_vs_single": seconds["single"] / seconds["batched"],
        "ratio_batched_vs_naive_loop": seconds["naive_loop"] / seconds["batched"],
        "max_abs_logp_diff": max_diff,
        "matmul_flops_per_s": flops,
        "matmul_flops_per_s_rounds": peaks,
        "params": n_params,
        "non_embedding_params": n_params - n_embed,
        "efficiency_2x_params": 2 * n_params * tps / flops,
        "efficiency_model_flops": model_flops / seconds["batched"] / flops,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
