"""What every command shares: consoles, progress bars, model and SAR options, loading a model."""

from __future__ import annotations

import argparse
import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)
# Wide enough for the comparison tables when output goes to a file or a pipe (rich assumes 80 there).
out_console = Console(width=None if sys.stdout.isatty() else 160)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows every option's default."""


def add_model_args(p: argparse.ArgumentParser, multi: bool = False) -> None:
    g = p.add_argument_group("model")
    help_ = "built-in name (None: smollm2-135m), a local Hugging Face folder, or a hub id"
    if multi:
        g.add_argument("--model", action="append", default=None,
                       help=help_ + "; repeat to compare several models (the first is the reference)")
    else:
        g.add_argument("--model", default=None, help=help_)
    g.add_argument("--dtype", default="auto", help="auto (fp32 on CPU, bf16 on GPU), float32, bfloat16, float16")
    g.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda, cuda:N")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (None: torch's choice)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (off unless you ask)")


def add_sar_args(p: argparse.ArgumentParser) -> None:
    from sarl.prompts import DEFAULT_SYSTEM_PROMPT

    g = p.add_argument_group("SAR")
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT, help="system prompt for both contexts")
    g.add_argument("--use-log", action="store_true", help="compare log-perplexities")
    g.add_argument("--no-denominator", action="store_true", help="plain difference ppl(a) - ppl(a|q)")
    g.add_argument("--no-comparison", action="store_true", help="-ppl(a|q) + 5 (implies --no-denominator)")
    g.add_argument("--clip-value", type=float, default=-1.0, help="cap each term at this value when > 1")
    g.add_argument("--max-answer-tokens", type=int, default=4096, help="longer answers are cut and flagged")
    g.add_argument("--batch-tokens", type=int, default=2048, help="padded tokens per forward pass")


def sar_config(args):
    from sarl.rewards.self_aligned import SARConfig

    return SARConfig(use_log=args.use_log, use_denominator=not (args.no_denominator or args.no_comparison),
                     use_comparison=not args.no_comparison, clip_value=args.clip_value)


def load_lm(args):
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
