"""``sarl eval``, ``sarl report`` and ``sarl data``."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from sarl.cli.ui import (
    HelpFormatter,
    add_model_args,
    load_lm,
    model_config,
    out_console,
    progress_bar,
    task_factory,
)


def cmd_eval(args) -> int:
    from sarl.data import load_dataset
    from sarl.evaluate import EvalSettings, evaluate_model, write_summary
    from sarl.rollout import GenerationConfig, make_backend
    from sarl.settings import from_args

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    settings = from_args(EvalSettings, args, datasets=datasets, gen=from_args(GenerationConfig, args))
    # check every model name and load (and so validate) every dataset before any model work
    from sarl.models import TINY_RANDOM, resolve_model_path

    for m in args.model or [None]:
        model_config(args, m)  # a bad --dtype or --threads fails before any model work
        if m != TINY_RANDOM:
            resolve_model_path(m, args.allow_download)
    problems = {ds: load_dataset(ds, limit=settings.limit, seed=settings.data_seed, size=settings.size)
                for ds in datasets}
    models = args.model or [None]
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    # --overwrite, and the refusal of samples made with other settings, also before any model loads
    import shutil

    from sarl.evaluate import check_model_settings, tag
    from sarl.models import DEFAULT_MODEL, model_dtype_name

    for m in models:
        cfg = model_config(args, m)
        name = m or DEFAULT_MODEL  # the name load_model gives it (its folder under -o)
        if args.overwrite:
            shutil.rmtree(out / tag(name), ignore_errors=True)
        dtype = model_dtype_name(m, cfg.dtype, cfg.device, args.allow_download, args.trust_remote_code)
        check_model_settings(out, name, dtype, settings)
    results = {}
    for m in models:
        margs = argparse.Namespace(**{**vars(args), "model": m})
        lm = load_lm(margs)
        backend = make_backend(lm, args.backend, model_path=m)
        with progress_bar() as prog:
            results[lm.name] = evaluate_model(lm, backend, lm.name, settings, out, task_factory(prog), problems,
                                              log=prog.console.print)
        del lm, backend
    reference = args.reference or (results and next(iter(results)))
    summary = write_summary(out, results, settings, reference)
    from sarl.evaluate import COMPARISON_COLUMNS, comparison_cells

    table = Table(title=f"sarl eval → {out} (reference: {reference})")
    for header, *_ in COMPARISON_COLUMNS:
        table.add_column(header, justify="left" if header in ("dataset", "model") else "right")
    for r in summary["comparison"]:
        table.add_row(*comparison_cells(r))
    out_console.print(table)
    out_console.print(f"wrote {out / 'summary.json'}, {out / 'compare.md'}, {out / 'plots'}/")
    return 0


# ------------------------------------------------------------------------------------------ report
def cmd_report(args) -> int:
    from sarl.report import build_report

    paths = build_report(args.run_dirs, args.output, reference=args.reference)
    out_console.print(f"wrote {paths['md']} and {paths['html']}")
    return 0


# -------------------------------------------------------------------------------------------- data
def cmd_data_list(args) -> int:
    from sarl.data import list_datasets

    table = Table(title="built-in datasets (also: a local .jsonl/.parquet path)")
    for c in ("name", "size", "grader", "source", "licence", "description"):
        table.add_column(c)
    for d in list_datasets():
        table.add_row(d["name"], str(d["size"]), str(d.get("grader", "")), str(d["source"]), str(d["licence"]),
                      str(d["description"]))
    out_console.print(table)
    return 0


def cmd_data_show(args) -> int:
    import json as _json

    from sarl.data import load_dataset
    from sarl.models import load_tokenizer
    from sarl.prompts import render_problem_prompt

    problems = load_dataset(args.name, limit=args.n, seed=args.seed)
    tok = load_tokenizer(args.model) if args.prompt else None
    for p in problems:
        row = p.to_dict()
        if tok is not None:
            row["prompt"] = render_problem_prompt(tok, p, instruction=args.instruction)
        out_console.print_json(_json.dumps(row, ensure_ascii=False, default=str))
    return 0


def register(sub) -> None:
    from sarl.evaluate import EvalSettings
    from sarl.rollout import BACKENDS, GenerationConfig
    from sarl.settings import add_arguments

    e = sub.add_parser("eval", help="accuracy and response length of one or more models on benchmarks",
                       formatter_class=HelpFormatter)
    e.add_argument("--datasets", default="gsm8k", help="comma-separated dataset names or file paths (see `sarl data list`)")
    e.add_argument("-o", "--output", type=Path, default=Path("runs/eval"),
                   help="output folder (resumed if it exists and was made with the same settings)")
    e.add_argument("--overwrite", action="store_true", help="replace the models' earlier samples instead of resuming")
    e.add_argument("--reference", default=None, help="model the comparison is relative to (None: the first)")
    add_arguments(e.add_argument_group("data and prompt"), EvalSettings)
    add_arguments(e.add_argument_group("decoding"), GenerationConfig, skip=("top_k",), flags={"n": ("-n", "--n")})
    e.add_argument("--backend", default="auto", choices=BACKENDS, help="auto: vLLM on a GPU when installed")
    add_model_args(e, multi=True)
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="Markdown + self-contained HTML report from eval/analyze folders",
                       formatter_class=HelpFormatter)
    r.add_argument("run_dirs", type=Path, nargs="+", help="eval and analyze output folders")
    r.add_argument("-o", "--output", type=Path, default=Path("runs/report"), help="output folder")
    r.add_argument("--reference", default=None, help="model the comparison is relative to (None: the first)")
    r.set_defaults(func=cmd_report)

    dp = sub.add_parser("data", help="built-in datasets", formatter_class=HelpFormatter)
    dsub = dp.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="list the built-in datasets", formatter_class=HelpFormatter)
    dl.set_defaults(func=cmd_data_list)
    dsh = dsub.add_parser("show", help="print the first problems of a dataset", formatter_class=HelpFormatter)
    dsh.add_argument("name", help="dataset name or file")
    dsh.add_argument("-n", type=int, default=3, help="problems to print")
    dsh.add_argument("--seed", type=int, default=0, help="seed of a generated dataset")
    dsh.add_argument("--prompt", action="store_true", help="also render the prompt with the model's chat template")
    dsh.add_argument("--instruction", default="noformat", help="instruction appended to each question")
    dsh.add_argument("--model", default=None, help="model whose chat template renders the prompt")
    dsh.set_defaults(func=cmd_data_show)
