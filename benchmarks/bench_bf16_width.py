"""Where bf16 pays off on this machine, by model width (JSON out): the rule behind ``dtype=auto`` and
``precision=auto`` (:data:`sarl.precision.BF16_MIN_HIDDEN`).

For fresh Llamas of several hidden sizes (4 layers, the default model's 49,152-token vocabulary, or
``--vocab``), times in one run, alternating arms over ``--rounds``:
- ``forward``: a no-grad forward of ``[batch, seq]`` tokens (scoring, evaluation prefill), fp32 weights
  against bf16 weights;
- ``train``: forward + backward of the same batch, fp32 against bf16 autocast on fp32 weights
  (``trainer.precision=bf16-mixed``);
- ``decode``: ``--decode-rows`` sequences decoded ``--decode-steps`` tokens with a KV cache after a
  32-token prompt (rollouts, evaluation), fp32 against bf16 weights, and against bf16 autocast on the
  fp32 weights (how the trainer samples under ``bf16-mixed``).
The ratio bf16 / fp32 (< 1: bf16 is faster) is reported per width; the default model is hidden 576.

Usage: python benchmarks/bench_bf16_width.py [--widths 128,256,384,576,768] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch


def build(hidden: int, vocab: int, layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    heads = max(2, hidden // 64)
    kv = max(d for d in range(1, heads // 2 + 1) if heads % d == 0)  # grouped-query attention, as SmolLM2
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=int(hidden * 8 / 3) // 32 * 32,
                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    return LlamaForCausalLM(cfg).eval()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (oneDNN picks kernels on the first call)
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def make_arms(model, bf16, ids, prompt, decode_steps: int) -> dict:
    """The six timed arms for one width (closures over this width's two models)."""

    def fwd(m):
        with torch.no_grad():
            m(input_ids=ids, logits_to_keep=64).logits.float().sum()

    def train(autocast: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, logits_to_keep=64).logits.float().logsumexp(-1).mean()
        loss.backward()
        model.zero_grad(set_to_none=True)

    def decode(m, autocast: bool = False):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = m(input_ids=prompt, use_cache=True, logits_to_keep=1)
            for _ in range(decode_steps):
                nxt = out.logits[:, -1].float().argmax(-1, keepdim=True)
                out = m(input_ids=nxt, past_key_values=out.past_key_values, use_cache=True)

    arms = {"forward_fp32": lambda: fwd(model), "forward_bf16": lambda: fwd(bf16),
            "train_fp32": lambda: train(False), "train_bf16mixed": lambda: train(True),
            "decode_fp32": lambda: decode(model), "decode_bf16": lambda: decode(bf16),
            "decode_bf16mixed": lambda: decode(model, True)}
    return arms


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", default="128,256,384,576,768")
    ap.add_argument("--vocab", type=int, default=49152)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--decode-rows", type=int, default=64)
    ap.add_argument("--decode-steps", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_bf16_width.json")
    args = ap.parse_args()
    from sarl.precision import fast_bf16

    ids = torch.randint(0, args.vocab, (args.batch, args.seq))
    prompt = torch.randint(0, args.vocab, (args.decode_rows, 32))
    rows = []
    for hidden in (int(w) for w in args.widths.split(",")):
        model = build(hidden, args.vocab, args.layers)
        bf16 = build(hidden, args.vocab, args.layers).to(torch.bfloat16)
        n_params = sum(p.numel() for p in model.parameters())

        arms = make_arms(model, bf16, ids, prompt, args.decode_steps)
        secs: dict[str, list[float]] = {k: [] for k in arms}
        for _ in range(args.rounds):
            for k, fn in arms.items():
                secs[k].append(timed(fn, args.repeats))
        best = {k: min(v) for k, v in secs.items()}
        row = {"hidden": hidden, "params": n_params, "seconds_best": best,
               "forward_ratio_bf16_vs_fp32": best["forward_bf16"] / best["forward_fp32"],
               "train_ratio_bf16mixed_vs_fp32": best["train_bf16mixed"] / best["train_fp32"],
               "decode_ratio_bf16_vs_fp32": best["decode_bf16"] / best["decode_fp32"],
               "decode_ratio_bf16mixed_vs_fp32": best["decode_bf16mixed"] / best["decode_fp32"]}
        rows.append(row)
        print(f"hidden {hidden:4d} ({n_params / 1e6:5.1f}M): forward bf16/fp32 {row['forward_ratio_bf16_vs_fp32']:.2f}"
              f"  train bf16-mixed/fp32 {row['train_ratio_bf16mixed_vs_fp32']:.2f}"
              f"  decode bf16/fp32 {row['decode_ratio_bf16_vs_fp32']:.2f}"
              f"  decode bf16-mixed/fp32 {row['decode_ratio_bf16mixed_vs_fp32']:.2f}", flush=True)
    result = {"benchmark": "bench_bf16_width", "machine": platform.machine(), "fast_bf16": fast_bf16("cpu")[1],
              "threads": torch.get_num_threads(), "vocab": args.vocab, "layers": args.layers,
              "batch": args.batch, "seq": args.seq, "rounds": args.rounds, "rows": rows}
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
