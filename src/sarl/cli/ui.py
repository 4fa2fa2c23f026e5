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


# `sarl score` and `sarl analyze` score in fp32 unless asked otherwise: with bf16 weights a pair's SAR
# depends on the rows batched with it (the README's pair on the default model: 0.4336 to 0.4415 in
# batches of other GSM8K rows, 0.4665 vs 0.4346 in an earlier report; fp32: 0.4453 alone and in every
# batch), and a score must not depend on the file it sits in. bf16 scored 20 GSM8K pairs 1.6x faster
# on a 2-core AVX512-BF16 CPU (9.1 vs 14.6 s).
SCORING_AUTO_DTYPE = "float32"


def add_model_args(p: argparse.ArgumentParser, multi: bool = False, scoring: bool = False) -> None:
    """The model flags, generated from :class:`sarl.config.ModelConfig` (its help, default and choices):
    ``--model`` (its ``name``; with ``multi``, repeatable), ``--dtype``, ``--device``, ``--threads``; and
    ``--trust-remote-code`` / ``--allow-download``, which say what loading may do. :func:`model_config`
    reads them back. ``scoring``: ``--dtype auto`` means fp32 (:data:`SCORING_AUTO_DTYPE`), and its help
    says so."""
    from sarl.config import ModelConfig
    from sarl.settings import add_arguments

    g = p.add_argument_group("model")
    made = add_arguments(g, ModelConfig, skip=("gradient_checkpointing",), flags={"name": ("--model",)},
                         dests={"name": "model"}, repeat=("name",) if multi else ())
    if multi:
        made["name"].help += " Repeat to compare several models (the first is the reference)."
    if scoring:
        made["dtype"].help += (" Scoring: auto means float32 here, so that a pair's SAR does not depend on the "
                               "rows batched with it; bfloat16 is faster on bf16 hardware, but its values move "
                               "with the rows batched together (by ~0.01 SAR on the default model) and differ "
                               "from fp32's.")
    g.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model folder's own Python code to run (off unless you ask)")
    g.add_argument("--allow-download", action="store_true",
                   help="let a hub id be fetched from the Hugging Face hub (also SARL_ALLOW_DOWNLOAD=1); "
                        "otherwise sarl stays offline")


def model_config(args, name: str | None, scoring: bool = False):
    """The :class:`~sarl.config.ModelConfig` of the model flags for the model ``name`` (validated: a bad
    ``--dtype`` or ``--threads`` fails here, before any model work). ``scoring``: ``--dtype auto`` becomes
    :data:`SCORING_AUTO_DTYPE` (fp32; an explicit ``--dtype bfloat16`` stays)."""
    from sarl.config import ModelConfig
    from sarl.settings import from_args

    cfg = from_args(ModelConfig, args, name=name)
    if scoring and cfg.dtype == "auto":
        cfg = from_args(ModelConfig, args, name=name, dtype=SCORING_AUTO_DTYPE)
    return cfg


def add_sar_args(p: argparse.ArgumentParser) -> None:
    """The SAR options: the scoring fields of :class:`~sarl.scoring.ScoreSettings` (``--system-prompt``,
    ``--max-answer-tokens``), one flag per :class:`~sarl.rewards.SARConfig` field (``--denominator`` /
    ``--no-denominator``, ``--comparison`` / ``--no-comparison``, ``--copy-ngram``, ...),
    ``--copy-robust`` / ``--copy-dense`` for the recommended copy-robust setting, and ``--batch-tokens``."""
    from sarl.logprobs import MAX_BATCH_TOKENS
    from sarl.rewards.self_aligned import SARConfig
    from sarl.scoring import INPUT_KEYS, ScoreSettings
    from sarl.settings import add_arguments

    g = p.add_argument_group("SAR")
    add_arguments(g, ScoreSettings, skip=INPUT_KEYS)  # --system-prompt, --max-answer-tokens
    add_arguments(g, SARConfig, flags={"use_denominator": ("--denominator",), "use_comparison": ("--comparison",)})
    g.add_argument("--copy-robust", action="store_true",
                   help="the recommended copy-robust SAR (SARConfig.copy_robust: copy_ngram=10, copy_mode=zero; "
                        "combines with the other flags, e.g. --use-log); answers that parrot the question stop "
                        "earning SAR for the copied tokens")
    g.add_argument("--copy-dense", action="store_true",
                   help="with --copy-robust: also catch reworded restatements (copy_dense_ngram=3; costs some gold "
                        "answers a little of their SAR)")
    g.add_argument("--batch-tokens", type=int, default=MAX_BATCH_TOKENS, help="padded tokens per forward pass")


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


def load_lm(args, scoring: bool = False):
    """The model of the model flags (``args.model``: one name or None); ``scoring``: as
    :func:`model_config`."""
    from sarl.models import load_model

    cfg = model_config(args, args.model, scoring)
    t = time.perf_counter()
    with console.status(f"loading model {cfg.name or 'smollm2-135m (default)'}..."):
        lm = load_model(cfg.name, dtype=cfg.dtype, device=cfg.device, threads=cfg.threads,
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
