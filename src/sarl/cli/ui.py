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
    g.add_argument("--dtype", default="auto", help="auto (bf16 where it is faster: a GPU with bf16, or a CPU with AMX/AVX512-BF16 and a wide enough model, as `sarl doctor` shows; fp32 otherwise), float32 (force fp32), bfloat16, float16")
    g.add_argument("--device", default="auto", help="auto (cuda if present, else cpu), cpu, cuda, cuda:N")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (None: torch's choice)")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (off unless you ask)")
    g.add_argument("--allow-download", action="store_true",
                   help="let a hub id be fetched from the Hugging Face hub (also SARL_ALLOW_DOWNLOAD=1); "
                        "otherwise sarl stays offline")


def add_sar_args(p: argparse.ArgumentParser) -> None:
    """The SAR options: one flag per :class:`~sarl.rewards.SARConfig` field (``--denominator`` /
    ``--no-denominator``, ``--comparison`` / ``--no-comparison``, ``--copy-ngram``, ...), and
    ``--copy-robust`` / ``--copy-dense`` for the recommended copy-robust setting."""
    from sarl.prompts import DEFAULT_SYSTEM_PROMPT
    from sarl.rewards.self_aligned import SARConfig
    from sarl.scoring import DEFAULT_MAX_ANSWER_TOKENS
    from sarl.settings import add_arguments

    g = p.add_argument_group("SAR")
    g.add_argument("--system-prompt", default=DEFAULT_SYSTEM_PROMPT, help="system prompt for both contexts")
    add_arguments(g, SARConfig, flags={"use_denominator": ("--denominator",), "use_comparison": ("--comparison",)})
    g.add_argument("--copy-robust", action="store_true",
                   help="the recommended copy-robust SAR (SARConfig.copy_robust: copy_ngram=10, copy_mode=zero; "
                        "combines with the other flags, e.g. --use-log); answers that parrot the question stop "
                        "earning SAR for the copied tokens")
    g.add_argument("--copy-dense", action="store_true",
                   help="with --copy-robust: also catch reworded restatements (copy_dense_ngram=3; costs some gold "
                        "answers a little of their SAR)")
    g.add_argument("--max-answer-tokens", type=int, default=DEFAULT_MAX_ANSWER_TOKENS,
                   help="longer answers are cut and flagged")
    g.add_argument("--batch-tokens", type=int, default=2048, help="padded tokens per forward pass")


def sar_config(args):
    """The :class:`~sarl.rewards.SARConfig` of the flags (``--no-comparison`` implies ``--no-denominator``)."""
    import dataclasses

    from sarl.rewards.self_aligned import SARConfig

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(SARConfig)}
    if not values["use_comparison"]:
        values["use_denominator"] = False
    if args.copy_robust or args.copy_dense:
        preset = dataclasses.asdict(SARConfig.copy_robust(dense=args.copy_dense))
        defaults = dataclasses.asdict(SARConfig())
        for key in ("copy_ngram", "copy_mode", "copy_dense_ngram", "copy_dense_window", "copy_dense_min"):
            if values[key] == defaults[key]:  # flags the user set explicitly win over the preset
                values[key] = preset[key]
    return SARConfig(**values)


def load_lm(args):
    from sarl.models import load_model

    t = time.perf_counter()
    with console.status(f"loading model {args.model or 'smollm2-135m (default)'}..."):
        lm = load_model(args.model, dtype=args.dtype, device=args.device, threads=args.threads,
                        trust_remote_code=args.trust_remote_code, allow_download=args.allow_download)
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
