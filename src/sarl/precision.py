"""Compute precision: ``fp32`` or ``bf16-mixed`` (fp32 master weights and optimizer state, forwards
under bf16 autocast), and whether this machine multiplies bf16 fast.

Why not bf16 weights: AdamW's update ``lr * m / sqrt(v)`` is about ``lr`` per weight, far below bf16's
resolution (8 bits of mantissa: a weight of 0.02 moves only by multiples of ~1e-4), so at lr 1e-6 almost
no bf16 weight changes (measured: 1.9% after 10 steps). Mixed precision keeps the weights in fp32 and
rounds only the matmul inputs.

    precision = resolve_precision("auto", "cpu", hidden=576)  # "bf16-mixed" on CPUs with AMX / AVX512-BF16
    with autocast(precision, "cpu"):
        logits = model(ids).logits                    # bf16 matmuls, fp32 weights
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "bf16-mixed")

# On a CPU, bf16 pays off only for wide enough matmuls. Measured on an AMX CPU, 2 cores
# (benchmarks/bench_bf16_width.py, docs/RESULTS.md): from hidden size 256 up, bf16 is faster than fp32
# for forwards, training steps (bf16 autocast) and decoding, with a 1k or a 49k vocabulary (ratios
# <= 0.90); at 128, decoding is slower (1.02x with bf16 weights, 1.24x under autocast), and rollouts
# dominate a small model's RL step (the quickstart's 1M model: 2.7 vs 1.5 s per step).
BF16_MIN_HIDDEN = 256


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


def hidden_size(config) -> int | None:
    """A model config's width (``hidden_size``, ``n_embd`` or ``d_model``), or None."""
    for key in ("hidden_size", "n_embd", "d_model"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    return None


def bf16_pays_off(device: str, hidden: int | None = None) -> tuple[bool, str]:
    """(whether bf16 is faster than fp32 for a model of width ``hidden`` on ``device``, why in words):
    :func:`fast_bf16`, and on a CPU also ``hidden >= BF16_MIN_HIDDEN`` when the width is known."""
    ok, why = fast_bf16(device)
    if ok and hidden is not None and torch.device(device).type == "cpu" and hidden < BF16_MIN_HIDDEN:
        return False, f"{why}, but at hidden size {hidden} (< {BF16_MIN_HIDDEN}) fp32 is faster"
    return ok, why


def resolve_precision(precision: str, device: str, hidden: int | None = None) -> str:
    """``auto`` → ``bf16-mixed`` where :func:`bf16_pays_off` for this width, else ``fp32``; the others
    pass through."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "auto":
        return "bf16-mixed" if bf16_pays_off(device, hidden)[0] else "fp32"
    return precision


def autocast(precision: str, device: str):
    """bf16 autocast on ``device``'s type for ``bf16-mixed``; nothing for ``fp32``."""
    if precision == "bf16-mixed":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
