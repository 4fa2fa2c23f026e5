"""``sarl score`` and ``sarl analyze``."""

from __future__ import annotations

import time
from pathlib import Path

from rich.table import Table

from sarl.cli.ui import (
    HelpFormatter,
    add_model_args,
    add_sar_args,
    console,
    load_lm,
    model_config,
    out_console,
    progress_bar,
    sar_config,
)
from sarl.errors import SarlError


def score_settings(args, **values):
    """The :class:`~sarl.scoring.ScoreSettings` of the flags (and ``values``: the model, the dtype)."""
    from sarl.scoring import ScoreSettings
    from sarl.settings import from_args

    return from_args(ScoreSettings, args, sar=sar_config(args), **values)


def load_scorer(args, settings):
    """The model and the :class:`~sarl.scoring.SARScorer` of ``settings`` on it."""
    from sarl.scoring import SARScorer

    lm = load_lm(args, scoring=True)  # --dtype auto scores in fp32
    return lm, SARScorer.from_settings(lm, settings, max_batch_tokens=args.batch_tokens)


def cmd_score(args) -> int:
    from sarl.io import check_output_file
    from sarl.models import DEFAULT_MODEL, TINY_RANDOM, model_dtype_name, resolve_model_path
    from sarl.scoring import check_resume, score_file

    # validate the input, the output, the model name and the settings before paying for the model load
    out = check_output_file(args.output)
    if args.overwrite:
        out.unlink(missing_ok=True)
    model = model_config(args, args.model, scoring=True)  # --dtype auto: float32 (ui.SCORING_AUTO_DTYPE)
    # a bad model name fails at once; the record names the dtype the model is loaded in, so a resume
    # never mixes fp32 and bf16 scores
    if model.name != TINY_RANDOM:
        resolve_model_path(model.name, args.allow_download)
    dtype = model_dtype_name(model.name, model.dtype, model.device, args.allow_download, args.trust_remote_code)
    settings = score_settings(args, model=model.name or DEFAULT_MODEL, dtype=dtype)
    checked = check_resume(args.input, out, settings)
    _, scorer = load_scorer(args, settings)
    t0 = time.perf_counter()
    with progress_bar() as prog:
        task = prog.add_task("scoring", total=None, rate="")

        def on_progress(done, total, tokens):
            dt = time.perf_counter() - t0
            prog.update(task, completed=done, total=total, rate=f"{tokens / dt:.0f} tok/s" if dt > 0 and tokens else "")

        summary = score_file(scorer, args.input, out, settings=settings, on_progress=on_progress, checked=checked,
                             flush_rows=args.flush_rows)
    table = Table(title=f"sarl score → {args.output}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in summary.items():
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    out_console.print(table)
    if summary["empty"] or summary["truncated"]:
        console.print(f"[yellow]{summary['empty']} empty answer(s) scored SAR 0; "
                      f"{summary['truncated']} over-long answer(s) cut to --max-answer-tokens[/yellow]")
    return 0


# ----------------------------------------------------------------------------------------- analyze
def cmd_analyze(args) -> int:
    from sarl.analyze import EXTRA_VARIANTS, SETTINGS, VARIANTS, analyze, settings_in, write_report
    from sarl.data import load_gsm8k

    problems = load_gsm8k()[args.offset : args.offset + args.limit]
    if len(problems) < 2:
        raise SarlError("sarl analyze: needs at least 2 problems (--limit)")
    lm, scorer = load_scorer(args, score_settings(args))
    t0 = time.perf_counter()
    n_variants = len(VARIANTS) + (len(EXTRA_VARIANTS) if args.extra_variants else 0)
    with progress_bar() as prog:
        task = prog.add_task(f"scoring {n_variants} variants x {len(problems)} problems",
                             total=len(problems) * n_variants, rate="")
        state = {"n": 0, "tok": 0}

        def on_progress(n, tokens):
            state["n"] += n
            state["tok"] += tokens
            dt = time.perf_counter() - t0
            prog.update(task, completed=state["n"], rate=f"{state['tok'] / dt:.0f} tok/s")

        res = analyze(scorer, problems, seed=args.seed, progress=on_progress, extra=args.extra_variants)
    paths = write_report(res, args.output, lm.name)
    keys = settings_in(res)
    table = Table(title=f"mean SAR per answer variant ({res.n} GSM8K problems, {lm.name})")
    for c in ("variant", *(SETTINGS[k][0] for k in keys), "tokens"):
        table.add_column(c, justify="left" if c == "variant" else "right")
    for name, m in res.means.items():
        table.add_row(name, *(f"{m[k]:.3f}" for k in keys), f"{m['tokens']:.0f}")
    out_console.print(table)
    wt = Table(title="win rates P(SAR(a) > SAR(b))")
    for c in ("pair", *(SETTINGS[k][0] for k in keys)):
        wt.add_column(c)
    for pair, w in res.win_rates.items():
        wt.add_row(pair.replace(">", " > "), *(f"{w[k]:.2f}" for k in keys))
    out_console.print(wt)
    best = max(res.means, key=lambda k: res.means[k]["sar"])
    if best != "gold":
        out_console.print(f"[yellow]note: `{best}` has the highest mean SAR, above the concise gold answer[/yellow]")
    out_console.print("wrote " + ", ".join(str(p) for p in paths.values()))
    console.print(f"[dim]{time.perf_counter() - t0:.0f}s[/dim]")
    return 0


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(sub) -> None:
    from dataclasses import fields

    from sarl.scoring import FLUSH_ROWS, INPUT_KEYS, ScoreSettings
    from sarl.settings import add_arguments

    s = sub.add_parser("score", help="compute ppl(a|q), ppl(a) and SAR for question/answer pairs in a file",
                       formatter_class=HelpFormatter)
    s.add_argument("input", type=Path, help="JSONL, Parquet or CSV file")
    s.add_argument("-o", "--output", type=Path, required=True,
                   help="output JSONL (resumed if it exists and was made with the same settings)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output instead of resuming it")
    s.add_argument("--flush-rows", type=_positive_int, default=FLUSH_ROWS,
                   help="rows scored together, then written to the output: an interrupted run keeps every row "
                        "but the last N at most (re-run to resume); larger batches run a little faster")
    add_arguments(s, ScoreSettings, skip=[f.name for f in fields(ScoreSettings) if f.name not in INPUT_KEYS])
    add_model_args(s, scoring=True)
    add_sar_args(s)
    s.set_defaults(func=cmd_score)

    a = sub.add_parser("analyze", help="SAR on six answer variants of GSM8K problems (the paper's analysis)",
                       formatter_class=HelpFormatter)
    a.add_argument("--limit", type=int, default=100, help="number of GSM8K test problems")
    a.add_argument("--offset", type=int, default=0, help="first problem index")
    a.add_argument("--seed", type=int, default=0, help="seed of the answer variants")
    a.add_argument("--extra-variants", action="store_true",
                   help="also score six other ways of restating the question (twice the model time)")
    a.add_argument("-o", "--output", type=Path, default=Path("runs/analyze"), help="output folder")
    add_model_args(a, scoring=True)
    add_sar_args(a)
    a.set_defaults(func=cmd_analyze)
