"""`sarl score` in fp32 vs bf16 on the default model (docs/RESULTS.md, "`sarl score` in fp32 by default"):
the time for 20 GSM8K pairs (question, gold solution) through score_file as `sarl score` runs it (flush 8),
fp32 with the old 32-row flush, and the README pair scored alone and inside a 7-row batch in each dtype.

Usage: python benchmarks/bench_score_dtype.py OUT_DIR
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from sarl.data import load_gsm8k
from sarl.models import load_model
from sarl.precision import bf16_pays_off
from sarl.scoring import SARScorer, ScoreSettings, score_file

tmp = Path(sys.argv[1])
tmp.mkdir(parents=True, exist_ok=True)
probs = load_gsm8k()[:20]
src = tmp / "pairs.jsonl"
src.write_text("".join(json.dumps({"question": p["question"], "answer": p["solution"] + " The answer is "
                                   + p["answer"] + "."}) + "\n" for p in probs))
print("torch", torch.__version__, "threads", torch.get_num_threads(), "bf16:", bf16_pays_off("cpu", 576))
results = {}
for dtype, flush in (("float32", 8), ("bfloat16", 8), ("float32", 32)):
    lm = load_model(dtype=dtype)
    settings = ScoreSettings(model="smollm2-135m", dtype=dtype)
    scorer = SARScorer.from_settings(lm, settings)
    scorer.score([p["question"] for p in probs[:2]], [p["solution"] for p in probs[:2]])  # warm-up, not timed
    out = tmp / f"out_{dtype}_{flush}.jsonl"
    out.unlink(missing_ok=True)
    t = time.perf_counter()
    summ = score_file(scorer, src, out, settings=settings, flush_rows=flush)
    dt = time.perf_counter() - t
    results[(dtype, flush)] = dt
    print(f"{dtype} flush_rows={flush}: {dt:.1f} s for 20 pairs ({summ['tokens_scored']} answer tokens, "
          f"{summ['tokens_per_s']:.0f} tok/s), mean SAR {summ['mean_sar']:.4f}", flush=True)
    del lm, scorer
# the README pair alone and in a 7-row file, both dtypes
pair = {"question": "Tom has 17 apples and buys 8 more. How many does he have?", "answer": "17 + 8 = 25. The answer is 25."}
others = [{"question": p["question"], "answer": p["solution"]} for p in probs[:6]]
for dtype in ("float32", "bfloat16"):
    sc = SARScorer(load_model(dtype=dtype))
    alone = sc.score([pair["question"]], [pair["answer"]])[0]
    rows = others[:3] + [pair] + others[3:]
    inside = sc.score([r["question"] for r in rows], [r["answer"] for r in rows])[3]
    print(f"{dtype}: README pair alone sar={alone['sar']:.4f} answer_tokens={alone['answer_tokens']}; "
          f"inside 7 rows sar={inside['sar']:.4f}")
