"""SAR of a model's own answers, split by style and correctness (JSON out).

Reads an evaluation's samples on a synthetic set (``sarl eval`` / ``benchmarks/reproduce.py`` output),
scores every answer with the model that wrote it, and reports mean SAR and length per (style,
correct) cell. The style is the one :func:`sarl.data.synthetic.style_of` gives (concise, padded,
shortcut, restated, other); rows written before styles were recorded are labelled on the fly.

    python benchmarks/sar_by_style.py runs/reproduce/sft/model \\
        runs/reproduce/eval/sampled/sft/synth_chain_test.samples.jsonl -o benchmarks/results/sar_by_style.json

The slim per-sample files ``benchmarks/frontier.py`` commits (``*.jsonl.gz``, no dataset column) are read
too, with ``--dataset``:

    python benchmarks/sar_by_style.py benchmarks/results/frontier_test/sft0/model \\
        benchmarks/results/frontier_test/samples/sft0/step0.sampled.jsonl.gz --dataset synth_chain_v2_test \\
        --limit 1200 -o benchmarks/results/sar_by_style_v2_sft0.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def style(row: dict, problem) -> str:
    from sarl.data.synthetic import style_of

    return row.get("style") or style_of(problem, row["response"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("samples", type=Path)
    ap.add_argument("--limit", type=int, default=400)
    ap.add_argument("--dataset", default=None, help="the rows' dataset, for files without a dataset column")
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/sar_by_style.json"))
    args = ap.parse_args(argv)

    from sarl.data import load_dataset
    from sarl.evaluate import read_samples
    from sarl.io import read_rows
    from sarl.models import load_model
    from sarl.scoring import SARScorer

    # an evaluation's samples.jsonl (a torn last line dropped), or a committed .jsonl.gz (errors name the line)
    rows = (read_rows(args.samples) if args.samples.name.endswith(".gz") else read_samples(args.samples))[: args.limit]
    if not rows:
        raise SystemExit(f"{args.samples}: no samples")
    if args.dataset is not None:
        rows = [{**r, "dataset": args.dataset} for r in rows]
    missing = next((i for i, r in enumerate(rows) if "dataset" not in r), None)
    if missing is not None:
        raise SystemExit(f"{args.samples}: row {missing + 1} has no dataset column; pass --dataset NAME")
    datasets = {r["dataset"] for r in rows}
    by_id = {p.id: p for ds in datasets for p in load_dataset(ds)}
    questions = {pid: p.question for pid, p in by_id.items()}
    unknown = [r["id"] for r in rows if r["id"] not in questions]
    if unknown:
        raise SystemExit(f"{args.samples}: {len(unknown)} sample id(s) are not in the default "
                         f"{'/'.join(sorted(datasets))} set (first: {unknown[0]}); evaluate with the default seed and size")
    lm = load_model(args.model, dtype="float32", device="cpu")
    scored = SARScorer(lm, instruction=None).score([questions[r["id"]] for r in rows], [r["response"] for r in rows])
    cells: dict[str, list[tuple[float, int]]] = {}
    for r, s in zip(rows, scored):
        key = f"{style(r, by_id[r['id']])}/{'correct' if r['correct'] else 'wrong'}"
        cells.setdefault(key, []).append((s["sar"], r["length"]))
    # se_sar: the standard error over answers (several answers of one problem are not independent, so
    # it understates the uncertainty somewhat)
    table = {k: {"n": len(v), "mean_sar": statistics.fmean(x for x, _ in v),
                 "se_sar": statistics.stdev(x for x, _ in v) / len(v) ** 0.5 if len(v) > 1 else None,
                 "mean_length": statistics.fmean(n for _, n in v)} for k, v in sorted(cells.items())}
    out = {"model": args.model, "samples": str(args.samples), "answers": len(rows), "cells": table}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(out, indent=2) + "\n")
    for k, v in table.items():
        se = f" ± {1.96 * v['se_sar']:.3f}" if v["se_sar"] is not None else ""
        print(f"{k:16s} n={v['n']:4d}  mean SAR={v['mean_sar']:.3f}{se}  mean length={v['mean_length']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
