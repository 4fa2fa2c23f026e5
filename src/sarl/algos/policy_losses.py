"""Policy losses, registered by the names users type (``actor.policy_loss``; verl's
``actor.policy_loss.loss_mode``), each checked against TRL 1.16's ``GRPOTrainer._compute_loss``.

Shapes: ``B`` sequences, ``T`` response positions; ``mask [B, T]`` is 1.0 on valid response tokens. With
``log_ratio = clamp(logp - old_logp, -20, 20)`` (verl's guard against overflow; no value with
``|log_ratio| < 20`` changes) and ``r = exp(log_ratio)`` per token, the per-token loss ``L`` is::

    vanilla  max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high)), dual clip at clip_ratio_c for A < 0
             (TRL: loss_type grpo / dapo / dr_grpo, importance_sampling_level="token")
    gspo     vanilla with r replaced by the sequence ratio s_i = exp(mean_t log_ratio_it)
             (TRL: importance_sampling_level="sequence")
    cispo    -sg(min(r, 1 + clip_high)) A logp                                   (TRL: loss_type="cispo")
    sapo     -A (4 / tau) sigmoid(tau (r - 1)), tau = tau_pos if A > 0 else tau_neg  (TRL: loss_type="sapo")

Every entry has the signature ``fn(logp, old_logp, advantages, mask, **options) -> (L [B, T], metrics)``
and declares its ``options`` (keyword -> the config field that feeds it, read with
:func:`policy_loss_kwargs`). :func:`policy_loss` calls the entry and reduces ``L`` with
:func:`~sarl.algos.losses.aggregate_loss`, so every loss combines with every ``loss_agg_mode``. TRL ties
the aggregation to its ``loss_type`` instead: its cispo is ``token-mean`` over the accumulated batch (as
its dapo), its sapo is ``seq-mean-token-mean`` (as its grpo), and a sequence-level ratio is aggregated
with any of grpo (``seq-mean-token-mean``), dapo (``token-mean``) and dr_grpo
(``seq-mean-token-sum-norm``), the sequence's loss counting once per token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from sarl.algos.advantages import declared_options, masked_mean, masked_sum, read_field
from sarl.algos.losses import Number, aggregate_loss
from sarl.registry import Registry

LOG_RATIO_BOUND = 20.0  # |log r| is clamped here (verl's guard), so exp never overflows


class PolicyLossRegistry(Registry):
    """:class:`~sarl.registry.Registry` of policy losses: every entry declares ``options`` (keyword ->
    config field), checked against the function's signature when it is registered."""

    def add(self, name: str, entry: Any, *, aliases: tuple[str, ...] = (),
            options: Mapping[str, str] | None = None) -> Any:
        return super().add(name, entry, aliases=aliases,
                           options=declared_options(f"policy loss {name!r}", entry, options))


POLICY_LOSSES = PolicyLossRegistry("policy loss")
_CLIP_OPTIONS = {"clip_low": "actor.clip_ratio_low", "clip_high": "actor.clip_ratio_high",
                 "clip_ratio_c": "actor.clip_ratio_c"}


def get_policy_loss(name: str) -> Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """The policy loss registered as ``name``; unknown names raise ``KeyError`` listing the valid ones."""
    return POLICY_LOSSES[name]


def policy_loss_kwargs(name: str, cfg: Any) -> dict[str, Any]:
    """The keyword options of policy loss ``name``, each read off ``cfg`` at the config field its
    registration declares: e.g. ``{"tau_pos": cfg.actor.sapo_temperature_pos, "tau_neg": ...}`` for sapo."""
    return {kw: read_field(cfg, path) for kw, path in POLICY_LOSSES.meta(name)["options"].items()}


def _log_ratio(logp: torch.Tensor, old_logp: torch.Tensor) -> torch.Tensor:
    return torch.clamp(logp - old_logp, min=-LOG_RATIO_BOUND, max=LOG_RATIO_BOUND)


def _zero(like: torch.Tensor) -> torch.Tensor:
    return torch.zeros((), dtype=like.dtype, device=like.device)


def clipped_objective(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, clip_low: float,
                      clip_high: float, clip_ratio_c: float | None
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped objective of a ratio ``[B, T]`` (verl's ``compute_policy_loss``)::

        L1 = -A r;   L2 = -A clip(r, 1 - clip_low, 1 + clip_high);   Lc = max(L1, L2)
        L  = min(-A clip_ratio_c, Lc)  if A < 0  else  Lc          (dual clip; clip_ratio_c=None: L = Lc)

    TRL's two-sided clip (``delta``, caps r at delta before the min) gives the same L when
    ``delta = clip_ratio_c > 1 + clip_high``. Returns ``(L, {"clipfrac": masked mean of [L2 > L1],
    "clipfrac_lower": masked mean of [A < 0 and Lc > -A clip_ratio_c]})``."""
    if clip_ratio_c is not None and clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (or None to disable the dual clip), got {clip_ratio_c}")
    l1 = -advantages * ratio
    l2 = -advantages * torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high)
    lc = torch.maximum(l1, l2)
    metrics = {"clipfrac": masked_mean(torch.gt(l2, l1).to(ratio.dtype), mask),
               "clipfrac_lower": _zero(ratio)}
    if clip_ratio_c is None:
        return lc, metrics
    l3 = -advantages * clip_ratio_c
    negative = advantages < 0
    metrics["clipfrac_lower"] = masked_mean((torch.gt(lc, l3) & negative).to(ratio.dtype), mask)
    return torch.where(negative, torch.minimum(l3, lc), lc), metrics


@POLICY_LOSSES.register("vanilla", options=_CLIP_OPTIONS)
def vanilla(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
            clip_low: float = 0.2, clip_high: float = 0.2, clip_ratio_c: float | None = 3.0
            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped token-level objective with clip-higher and dual clip (verl ``vanilla``; TRL's grpo,
    dapo, dr_grpo loss types at ``importance_sampling_level="token"``): :func:`clipped_objective` of
    ``r = exp(log_ratio)`` per token."""
    return clipped_objective(torch.exp(_log_ratio(logp, old_logp)), advantages, mask, clip_low, clip_high,
                             clip_ratio_c)


@POLICY_LOSSES.register("gspo", options=_CLIP_OPTIONS)
def gspo(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
         clip_low: float = 0.2, clip_high: float = 0.2, clip_ratio_c: float | None = 3.0
         ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO (Zheng et al., arXiv 2507.18071): :func:`clipped_objective` of the sequence-level ratio, the
    geometric mean of the token ratios, in the token-level stop-gradient form (GSPO-token, verl ``gspo``)::

        log s_i   = sum_t m_it (logp_it - old_logp_it) / max(sum_t m_it, 1)   (clamped to +-20)
        s_it      = sg(s_i) * pi_it / sg(pi_it) = exp(logp_it - sg(logp_it) + sg(log s_i))

    ``s_it`` equals ``s_i`` in value; its gradient is ``s_i grad logp_it``. TRL 1.16
    (``importance_sampling_level="sequence"``) uses ``exp(log s_i)`` itself, one value per sequence
    broadcast over its tokens; with an advantage that is constant over a sequence's tokens (every group
    estimator) loss and gradient are the same, since the aggregation weighs a sequence's tokens equally.
    Unlike verl's gspo, the dual clip applies (as TRL's ``delta`` does); ``clip_ratio_c=None`` is verl's."""
    m = mask.to(logp.dtype)
    seq = masked_sum(logp - old_logp, m, dim=-1) / m.sum(dim=-1).clamp(min=1.0)  # [B]
    seq = torch.clamp(seq, min=-LOG_RATIO_BOUND, max=LOG_RATIO_BOUND).detach()
    ratio = torch.exp(logp - logp.detach() + seq.unsqueeze(-1))  # [B, T]
    return clipped_objective(ratio, advantages, mask, clip_low, clip_high, clip_ratio_c)


@POLICY_LOSSES.register("cispo", options={"clip_high": "actor.clip_ratio_high"})
def cispo(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
          clip_high: float = 0.2) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CISPO (MiniMax-M1, arXiv 2506.13585), as TRL 1.16's ``loss_type="cispo"``: the importance weight,
    capped from above and detached, times the REINFORCE term::

        L = -sg(min(r, 1 + clip_high)) * A * logp

    so every token keeps its gradient ``-w A grad logp`` (no token is dropped by clipping). TRL's cap is
    its ``epsilon_high`` itself (ScaleRL's eps_max = 5 is ``clip_high = 4``); there is no lower bound
    (verl's cispo also raises weights below ``1 - clip_low``). ``clipfrac``: masked mean of
    ``[r > 1 + clip_high]``, the tokens whose weight the cap changed, for either sign of A (TRL's
    ``cispo_clip_ratio`` counts only tokens with A > 0)."""
    ratio = torch.exp(_log_ratio(logp, old_logp))
    cap = 1.0 + clip_high
    weight = torch.clamp(ratio, max=cap).detach()
    return -weight * advantages * logp, {"clipfrac": masked_mean(torch.gt(ratio, cap).to(logp.dtype), mask),
                                         "clipfrac_lower": _zero(logp)}


@POLICY_LOSSES.register("sapo", options={"tau_pos": "actor.sapo_temperature_pos",
                                         "tau_neg": "actor.sapo_temperature_neg"})
def sapo(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
         tau_pos: float = 1.0, tau_neg: float = 1.05) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SAPO (Soft Adaptive Policy Optimization, arXiv 2511.20347), as TRL 1.16's ``loss_type="sapo"``
    and verl's ``sapo``: a soft, temperature-gated clip instead of the hard one::

        tau = tau_pos if A > 0 else tau_neg
        L   = -A * (4 / tau) * sigmoid(tau * (r - 1))

    At ``r = 1`` the gate's slope is 1 (the gradient is PPO's, ``-A grad logp``); away from it the
    gradient ``-A r sigmoid'(tau (r - 1)) 4`` decays smoothly, faster with a larger ``tau``. There is no
    hard clip: ``clipfrac`` and ``clipfrac_lower`` are 0."""
    if tau_pos <= 0 or tau_neg <= 0:
        raise ValueError(f"SAPO temperatures must be > 0, got tau_pos={tau_pos}, tau_neg={tau_neg}")
    ratio = torch.exp(_log_ratio(logp, old_logp))
    tau = torch.where(advantages > 0, tau_pos, tau_neg).to(ratio.dtype)
    gate = torch.sigmoid(tau * (ratio - 1.0)) * 4.0 / tau
    return -gate * advantages, {"clipfrac": _zero(logp), "clipfrac_lower": _zero(logp)}


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                loss: str = "vanilla", loss_agg_mode: str = "token-mean", norm_length: int | None = None,
                global_tokens: Number | None = None, global_seqs: Number | None = None,
                token_weights: torch.Tensor | None = None, **options: Any
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The policy loss ``loss`` (a name of :data:`POLICY_LOSSES`) with its ``options``, aggregated.

    All inputs ``[B, T]``. ``token_weights`` (constants, e.g. the rollout correction's importance weights
    times an off-policy mask, :mod:`sarl.algos.rollout_correction`) multiply ``L`` before the
    aggregation, as TRL multiplies its ``per_token_loss``; the normalisers still count every token of
    ``mask``. Returns ``(aggregate_loss(L * token_weights, mask, loss_agg_mode, norm_length, global_*),
    metrics)``; the metrics are detached 0-d tensors over this batch: the entry's ``clipfrac`` and
    ``clipfrac_lower``, and ``approx_kl`` = masked mean of ``-log_ratio`` (verl's ``ppo_kl``). Options the
    entry does not declare raise ``TypeError`` naming the ones it takes."""
    for name, x in (("old_logp", old_logp), ("advantages", advantages), ("mask", mask),
                    ("token_weights", logp if token_weights is None else token_weights)):
        if x.shape != logp.shape:
            raise ValueError(f"{name} must be [B, T] = {tuple(logp.shape)}, got {tuple(x.shape)}")
    fn = POLICY_LOSSES[loss]
    declared = POLICY_LOSSES.meta(loss)["options"]
    extra = sorted(set(options) - set(declared))
    if extra:
        raise TypeError(f"policy loss {loss!r} takes the options {sorted(declared)}; got {extra}")
    losses, metrics = fn(logp, old_logp, advantages, mask, **options)
    if token_weights is not None:
        losses = losses * token_weights.detach()
    value = aggregate_loss(losses, mask, loss_agg_mode, norm_length, global_tokens=global_tokens,
                           global_seqs=global_seqs)
    metrics = {k: v.detach() for k, v in metrics.items()}
    metrics["approx_kl"] = masked_mean(-_log_ratio(logp, old_logp), mask).detach()
    return value, metrics
