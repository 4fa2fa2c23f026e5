"""The PPO value loss, KL estimators and loss aggregation (verl ``core_algos`` semantics); the policy
losses are in :mod:`sarl.algos.policy_losses`.

Shapes: ``B`` sequences, ``T`` response positions; ``mask [B, T]`` is 1.0 on valid response tokens.

Gradient accumulation. A mini-batch (one optimizer step) is split into micro-batches whose losses are
back-propagated one after the other and the gradients summed. :func:`aggregate_loss` takes the totals
of the whole mini-batch (``global_tokens`` = its valid-token count, ``global_seqs`` = its sequence count;
see :func:`loss_normalizers`) so that the summed micro-batch gradients equal, to rounding, the gradient
of the same loss computed on the whole mini-batch at once, for every mode: splitting a mini-batch never
changes the gradient. (verl instead divides each micro-batch's own aggregate by the number of
micro-batches, which matches only when every micro-batch has the same token/sequence counts.)
"""

from __future__ import annotations

import torch

from sarl.algos.advantages import _float_mask, masked_mean, masked_sum
from sarl.registry import Registry

LOSS_AGG_MODES = Registry("loss aggregation mode")
KL_ESTIMATORS = Registry("KL estimator")

Number = float | int | torch.Tensor


# ------------------------------------------------------------------------------------------ aggregation


def loss_normalizers(mask: torch.Tensor) -> dict[str, Number]:
    """The totals of a whole mini-batch to pass to every micro-batch's :func:`aggregate_loss`:
    ``{"global_tokens": sum(mask) (0-d tensor, no host sync), "global_seqs": B}``."""
    return {"global_tokens": _float_mask(mask, mask).sum(), "global_seqs": mask.shape[0]}


def _n_seqs(mask: torch.Tensor, global_seqs: Number | None) -> Number:
    return mask.shape[0] if global_seqs is None else global_seqs


@LOSS_AGG_MODES.register("token-mean")
def _token_mean(loss_mat, mask, norm_length, global_tokens, global_seqs):
    """``sum_{i,t} l*m / N_tok``; ``N_tok = global_tokens`` or ``sum(m) + 1e-8`` (verl)."""
    total = masked_sum(loss_mat, mask)
    if global_tokens is None:
        return total / (_float_mask(mask, loss_mat).sum() + 1e-8)
    return total / global_tokens


@LOSS_AGG_MODES.register("seq-mean-token-sum")
def _seq_mean_token_sum(loss_mat, mask, norm_length, global_tokens, global_seqs):
    """``sum_i (sum_t l*m) / N_seq``; ``N_seq = global_seqs`` or B."""
    return masked_sum(loss_mat, mask, dim=-1).sum() / _n_seqs(mask, global_seqs)


@LOSS_AGG_MODES.register("seq-mean-token-mean")
def _seq_mean_token_mean(loss_mat, mask, norm_length, global_tokens, global_seqs):
    """``sum_i [(sum_t l*m) / (sum_t m + 1e-8)] / N_seq``; ``N_seq = global_seqs`` or B. A sequence with
    no valid token contributes 0 (and still counts in B; pass ``global_seqs`` to count otherwise)."""
    per_seq = masked_sum(loss_mat, mask, dim=-1) / (_float_mask(mask, loss_mat).sum(dim=-1) + 1e-8)
    return per_seq.sum() / _n_seqs(mask, global_seqs)


@LOSS_AGG_MODES.register("seq-mean-token-sum-norm")
def _seq_mean_token_sum_norm(loss_mat, mask, norm_length, global_tokens, global_seqs):
    """Dr.GRPO: ``sum_{i,t} l*m / (L * N_seq)``; ``L = norm_length`` or T, ``N_seq = global_seqs`` or B."""
    length = mask.shape[-1] if norm_length is None else norm_length
    return masked_sum(loss_mat, mask) / (length * _n_seqs(mask, global_seqs))


def aggregate_loss(loss_mat: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean",
                   norm_length: int | None = None, *, global_tokens: Number | None = None,
                   global_seqs: Number | None = None) -> torch.Tensor:
    """Reduce a per-token loss ``loss_mat [B, T]`` over ``mask [B, T]`` to a scalar.

    With ``m`` the mask, ``N_tok = global_tokens`` (default ``sum(m) + 1e-8``), ``N_seq = global_seqs``
    (default B) and ``L = norm_length`` (default T)::

        token-mean               sum_{i,t} l*m / N_tok
        seq-mean-token-sum       sum_i (sum_t l*m) / N_seq
        seq-mean-token-mean      sum_i [(sum_t l*m) / (sum_t m + 1e-8)] / N_seq
        seq-mean-token-sum-norm  sum_{i,t} l*m / (L * N_seq)                         (Dr.GRPO)

    Without the ``global_*`` totals these are verl's ``agg_loss`` for one batch, except
    ``seq-mean-token-sum-norm``: verl computes ``sum_{i,t} l*m / L`` per micro-batch and then divides by
    the number of micro-batches (gradient accumulation), which equals dividing by ``N_seq`` only when a
    micro-batch holds one sequence; otherwise verl's loss is ours times the micro-batch size, i.e. it
    depends on how the mini-batch is split. We define it as Dr.GRPO does (``1/G`` over sequences, a
    constant ``L`` instead of ``1/|o_i|``) so that splitting never changes the gradient. The constant
    factor versus verl is not a learning-rate rescale under AdamW: Adam's update ignores a constant
    gradient factor except through the gradient-norm clip (the same threshold meets a scaled gradient)
    and eps. Pass ``norm_length`` = the max response length so
    ``L`` does not depend on how much the batch was padded.

    For gradient accumulation pass the mini-batch totals (:func:`loss_normalizers`) to each micro-batch:
    the sum over micro-batches then equals the whole-batch value for every mode. ``global_tokens`` and
    ``global_seqs`` must be > 0. Unknown modes raise ``KeyError`` listing the valid ones.
    """
    if loss_mat.shape != mask.shape:
        raise ValueError(f"loss_mat {tuple(loss_mat.shape)} and mask {tuple(mask.shape)} must have the same shape")
    fn = LOSS_AGG_MODES[mode]
    return fn(loss_mat, mask, norm_length, global_tokens, global_seqs)


# ------------------------------------------------------------------------------------------ value loss


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_range: float | None = 0.5, loss_agg_mode: str = "token-mean", norm_length: int | None = None,
               *, global_tokens: Number | None = None, global_seqs: Number | None = None
               ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """verl's clipped value loss (``compute_value_loss``). All inputs ``[B, T]``; per token::

        v_clip = clamp(v, old_v - clip_range, old_v + clip_range)
        L = 0.5 * max((v - R)^2, (v_clip - R)^2)               (clip_range=None: 0.5 * (v - R)^2)

    Returns ``(aggregate_loss(L, mask, loss_agg_mode, ...), {"clipfrac": masked mean of
    [(v_clip - R)^2 > (v - R)^2]})`` (metric detached)."""
    for name, x in (("old_values", old_values), ("returns", returns), ("mask", mask)):
        if x.shape != values.shape:
            raise ValueError(f"{name} must be [B, T] = {tuple(values.shape)}, got {tuple(x.shape)}")
    l1 = (values - returns) ** 2
    if clip_range is None:
        losses, clipfrac = l1, torch.zeros((), dtype=values.dtype, device=values.device)
    else:
        clipped = torch.clamp(values, old_values - clip_range, old_values + clip_range)
        l2 = (clipped - returns) ** 2
        losses = torch.maximum(l1, l2)
        clipfrac = masked_mean(torch.gt(l2, l1).to(values.dtype), mask)
    loss = 0.5 * aggregate_loss(losses, mask, loss_agg_mode, norm_length, global_tokens=global_tokens,
                                global_seqs=global_seqs)
    return loss, {"clipfrac": clipfrac.detach()}


# ------------------------------------------------------------------------------------------ KL


@KL_ESTIMATORS.register("k1", aliases=("kl",))
def _kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1: ``logp - ref_logp`` (unbiased, high variance, can be negative)."""
    return logp - ref_logp


@KL_ESTIMATORS.register("abs")
def _kl_abs(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """abs: ``|logp - ref_logp|``."""
    return (logp - ref_logp).abs()


@KL_ESTIMATORS.register("k2", aliases=("mse",))
def _kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2: ``0.5 * (logp - ref_logp)^2``."""
    return 0.5 * (logp - ref_logp).square()


@KL_ESTIMATORS.register("k3", aliases=("low_var_kl",))
def _kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 (Schulman's low-variance estimator, verl ``low_var_kl``)::

        kl = clamp(ref_logp - logp, -20, 20);  kld = clamp(exp(kl) - kl - 1, -10, 10)
    """
    kl = torch.clamp(ref_logp - logp, min=-20.0, max=20.0)
    return torch.clamp(torch.exp(kl) - kl - 1.0, min=-10.0, max=10.0)


def get_kl_estimator(name: str):
    """The KL estimator registered as ``name`` (``k1``/``kl``, ``abs``, ``k2``/``mse``, ``k3``/``low_var_kl``);
    unknown names raise ``KeyError`` listing the valid ones."""
    return KL_ESTIMATORS[name]


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token KL estimate of KL(policy || reference), ``[B, T] -> [B, T]`` (verl ``kl_penalty``), with
    ``kind`` one of k1, abs, k2, k3 (aliases kl, mse, low_var_kl). Not masked: callers multiply by the
    mask (in-reward KL) or aggregate with :func:`aggregate_loss` (KL loss)."""
    if logp.shape != ref_logp.shape:
        raise ValueError(f"logp {tuple(logp.shape)} and ref_logp {tuple(ref_logp.shape)} must have the same shape")
    return get_kl_estimator(kind)(logp, ref_logp)
