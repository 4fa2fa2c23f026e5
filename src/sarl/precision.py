"""Compute precision: ``fp32`` or ``bf16-mixed`` (fp32 master weights and optimizer state, forwards
under bf16 autocast), and whether this machine multiplies bf16 fast.

Why not bf16 weights: AdamW's update ``lr * m / sqrt(v)`` is about ``lr`` per weight, far below bf16's
resolution (8 bits of mantissa: a weight of 0.02 moves only by multiples of ~1e-4), so at lr 1e-6 almost
no bf16 weight changes (measured: 1.9% after 10 steps). Mixed precision keeps the weights in fp32 and
rounds only the matmul inputs.

    precision = resolve_precision("auto", "cpu")      # "bf16-mixed" on CPUs with AMX / AVX512-BF16
    with autocast(precision, "cpu"):
        logits = model(ids).logits                    # bf16 matmuls, fp32 weights
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16-mixed")


@functools.lru_cache(maxsize=8)
def fast_bf16(device: str) -> tuple[bool, str]:
    """(whether ``device`` has fast bf16 matmul, the reason in words). CUDA: ``is_bf16_supported``
    (Ampere and later). CPU: the AMX-BF16 or AVX512-BF16 instructions (Linux ``/proc/cpuinfo``), which
    oneDNN uses for bf16 matmuls; other CPUs emulate bf16 and are slower than fp32."""
    dev = torch.device(device)
    if dev.type == "cuda":
        ok = bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
        return ok, "CUDA with bf16" if ok else "CUDA without bf16 (pre-Ampere)"
    if dev.type != "cpu":
        return False, f"{dev.type}: not checked, fp32"
    try:
        flags = set()
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        return False, "CPU (no /proc/cpuinfo to check for bf16 units)"
    found = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    if found and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return True, f"CPU with {' and '.join(f.upper() for f in found)}"
    return False, "CPU without AMX-BF16 / AVX512-BF16 (bf16 would be emulated)"


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` → ``bf16-mixed`` where :func:`fast_bf16`, else ``fp32``; the others pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bf16-mixed" if fast_bf16(device)[0] else "fp32"
    return precision


def autocast(precision: str, device: str):
    """bf16 autocast on ``device``'s type for ``bf16-mixed``; nothing for ``fp32``."""
    if precision == "bf16-mixed":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
