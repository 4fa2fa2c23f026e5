"""Rollout correction: importance weights for rollouts sampled by an engine that is not the trainer's
forward (vLLM, or the bf16 rollout copy under ``bf16-mixed``), and off-policy sequence masking; each
checked against TRL 1.16's ``GRPOTrainer`` (``vllm_importance_sampling_*``, ``off_policy_mask_threshold``).

Shapes: ``B`` sequences, ``T`` response positions; ``mask [B, T]`` is 1.0 on valid response tokens.
``old_logp`` is log π_old, the trainer's pass over the rollouts before the update; ``sampler_logp`` the
sampler's own log-prob of each sampled token (after temperature), ``NaN`` where the sampler gave none.
With ``d = (old_logp - sampler_logp) * mask`` (``NaN`` -> 0: no correction there)::

    token_truncate      w_t = clamp(exp(d_t), C_min, C_max)          (TIS; verl rollout_is=token)
    token_mask          w_t = exp(d_t) if C_min <= exp(d_t) <= C_max else 0            (MIS / IcePop)
    sequence_truncate   w   = clamp(exp(sum_t d_t), C_min, C_max), on every token of the sequence
    sequence_mask       w   = exp(sum_t d_t) if inside [C_min, C_max] else 0

``C_min`` / ``C_max`` may be ``None`` (no bound on that side); the exponent is clamped to +-20 (verl's
guard, so a long sequence's sum cannot overflow; with ``C_max`` set nothing changes). The weights are
constants (no gradient): the per-token policy loss is multiplied by them before aggregation, as TRL does.

Off-policy sequence masking (DeepSeek-V3.2, TRL's ``off_policy_mask_threshold`` = delta): a token keeps
its loss when its advantage is >= 0 or its sequence's mean ``sampler_logp - logp`` (the current policy,
detached) is <= delta; without a separate sampler, ``sampler_logp`` is log π_old (TRL's fallback).
"""

from __future__ import annotations

import math

import torch

CORRECTION_MODES = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")
LOG_WEIGHT_BOUND = 20.0

__all__ = ["CORRECTION_MODES", "correction_weights", "off_policy_mask", "sampler_logp_tensor"]


def _check(mode: str, clip_min: float | None, clip_max: float | None) -> None:
    if mode not in CORRECTION_MODES or mode == "none":
        raise ValueError(f"rollout correction mode must be one of {CORRECTION_MODES[1:]}, got {mode!r}")
    if clip_min is not None and clip_max is not None and clip_min > clip_max:
        raise ValueError(f"rollout correction: clip_min {clip_min} > clip_max {clip_max}")
    if clip_min is None and clip_max is None:
        raise ValueError(f"rollout correction {mode}: set clip_max or clip_min (both are None: nothing to "
                         f"{'truncate' if mode.endswith('truncate') else 'mask'})")


def correction_weights(old_logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor, mode: str, *,
                       clip_min: float | None = None, clip_max: float | None = 3.0
                       ) -> tuple[torch.Tensor, dict[str, float]]:
    """The importance weights ``[B, T]`` of ``mode`` (module docstring; 0 on padding) and their
    statistics over the valid tokens (token modes) or the sequences (sequence modes), as TRL reports
    them: ``is_ratio_min`` / ``_mean`` / ``_max`` of the weights as applied, and ``is_out_of_bounds``,
    the share whose raw ratio lay outside ``[C_min, C_max]`` (truncated, or masked to 0)."""
    _check(mode, clip_min, clip_max)
    if old_logp.shape != sampler_logp.shape or old_logp.shape != mask.shape:
        raise ValueError(f"old_logp, sampler_logp and mask must have one shape; got {tuple(old_logp.shape)}, "
                         f"{tuple(sampler_logp.shape)}, {tuple(mask.shape)}")
    m = mask.to(old_logp.dtype)
    diff = torch.nan_to_num((old_logp.detach() - sampler_logp) * m, nan=0.0)
    sequence = mode.startswith("sequence")
    log_w = diff.sum(-1, keepdim=True) if sequence else diff
    raw = torch.exp(log_w.clamp(-LOG_WEIGHT_BOUND, LOG_WEIGHT_BOUND))
    lo = -math.inf if clip_min is None else clip_min
    hi = math.inf if clip_max is None else clip_max
    outside = (raw < lo) | (raw > hi)
    w = raw.clamp(min=clip_min, max=clip_max) if mode.endswith("truncate") else raw.masked_fill(outside, 0.0)
    if sequence:
        valid = m.sum(-1) > 0
        flat, out = w[:, 0][valid], outside[:, 0][valid]
    else:
        valid = m > 0
        flat, out = w[valid], outside[valid]
    stats = {"is_ratio_min": float(flat.min()) if flat.numel() else 0.0,
             "is_ratio_mean": float(flat.mean()) if flat.numel() else 0.0,
             "is_ratio_max": float(flat.max()) if flat.numel() else 0.0,
             "is_out_of_bounds": float(out.float().mean()) if out.numel() else 0.0}
    return (w.expand_as(m) * m).detach(), stats


def off_policy_mask(advantages: torch.Tensor, logp: torch.Tensor, sampler_logp: torch.Tensor, mask: torch.Tensor,
                    threshold: float) -> torch.Tensor:
    """``[B, T]`` 1.0 where a token keeps its loss: ``advantages >= 0`` or its sequence's masked mean of
    ``sampler_logp - sg(logp)`` is <= ``threshold`` (``NaN`` sampler values count 0). With an advantage
    that is constant over a sequence (every group estimator) this is TRL's ``get_off_policy_mask``
    broadcast over the tokens; a per-token advantage (GAE) decides per token."""
    m = mask.to(logp.dtype)
    kl = torch.nan_to_num(sampler_logp - logp.detach(), nan=0.0)
    seq_kl = (kl * m).sum(-1, keepdim=True) / m.sum(-1, keepdim=True).clamp(min=1.0)
    return ((advantages >= 0) | (seq_kl <= threshold)).to(logp.dtype)


def sampler_logp_tensor(rollout_logprobs: list[list[float | None]] | None, like: torch.Tensor) -> torch.Tensor | None:
    """The sampler's per-token log-probs as ``[N, T]`` shaped like ``like`` (row i = response i; cut at
    ``T``, 0 past a response's end, ``NaN`` where a value is ``None``), or None when there are none."""
    if rollout_logprobs is None:
        return None
    if len(rollout_logprobs) != like.shape[0]:
        raise ValueError(f"{len(rollout_logprobs)} rows of sampler log-probs for {like.shape[0]} responses")
    out = torch.zeros_like(like)
    T = like.shape[1]
    for i, lp in enumerate(rollout_logprobs):
        row = [math.nan if x is None else float(x) for x in lp[:T]]
        out[i, : len(row)] = torch.tensor(row, dtype=like.dtype)
    return out

