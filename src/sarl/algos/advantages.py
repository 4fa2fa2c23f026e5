"""Advantage estimators (verl's ``core_algos`` semantics), registered by the names users type.

Shapes: ``B`` sequences (rollouts), ``T`` response positions (right-padded).

* ``token_rewards [B, T]``: the sequence reward on the last valid response token, 0 elsewhere
  (any per-token reward, e.g. an in-reward KL penalty, may be added on other valid tokens).
* ``response_mask [B, T]``: 1.0 on valid response tokens, 0.0 on padding (bool is accepted).
* ``group_ids [B]`` (long): rollouts of the same prompt share an id (any values, not necessarily 0..G-1).
* ``values [B, T]``: critic values ``V(s_t)`` (GAE only).

Every registered estimator has the signature
``fn(token_rewards, response_mask, *, group_ids=None, values=None, **options) -> (advantages, returns)``,
both ``[B, T]``, zero outside the mask. Estimators run under ``torch.no_grad()`` (advantages and returns
are targets, not functions of the parameters) and never modify their inputs.

Each registry entry declares (``ADV_ESTIMATORS.meta(name)``, checked at registration) what its caller
must provide and how the configuration feeds it, so that callers read declarations instead of testing
names:

* ``needs`` — ``groups`` (``group_ids``; the estimator compares rollouts of one prompt, so a prompt needs
  n >= 2 rollouts), ``values`` (a critic's ``values``), ``reward_components`` (each reward's unweighted
  scores as ``components`` and their weights at this step, schedule applied, as ``weights``);
  ``needs_with(options)``, when given, computes them from the option values instead (grpo needs the
  reward components only with ``weighted=True``). Read them with :func:`estimator_needs`.
* ``options`` — the function's keyword options, each mapped to the config field that feeds it
  (``{"gamma": "algorithm.gamma", "lam": "algorithm.lam"}``); :func:`estimator_kwargs` reads them off a
  config.
* ``batch_wide`` — the statistics span the whole batch (whitening over all rows), not one prompt's
  group, so several data-parallel processes, each holding part of the batch, would compute different
  ones (``sarl.train.distributed.Dist.check_estimator`` refuses them); ``batch_wide_with(options)``,
  when given, decides it from the option values instead (grpo with ``aggregation="normalize_then_sum"``,
  GDPO, whose last step normalises over the batch). Read it with :func:`estimator_batch_wide`.

A caller runs an estimator as::

    ADV_ESTIMATORS[name](token_rewards, mask, **estimator_kwargs(name, cfg), **inputs)

with ``inputs`` holding ``group_ids``, ``values`` and ``components`` + ``weights`` as
``estimator_needs(name, cfg)`` says.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import torch

from sarl.registry import Registry

NEEDS = frozenset({"groups", "values", "reward_components"})
# algorithm.reward_aggregation: grpo's aggregation option (sarl.algos.aggregation; the first is the default)
REWARD_AGGREGATIONS = ("sum_then_normalize", "normalize_then_sum")


def declared_options(what: str, entry: Callable[..., Any],
                     options: Mapping[str, str] | None) -> dict[str, str]:
    """``options`` (keyword option -> the config field that feeds it, ``'section.field'``) checked against
    ``entry``'s signature, as a dict; ``what`` names the registry entry in the errors. Shared by the
    registries whose entries read options off a config (advantage estimators, policy losses)."""
    if not isinstance(options or {}, Mapping):
        raise TypeError(f"{what}: options must map each keyword option to the config field that feeds it, "
                        f"e.g. {{'gamma': 'algorithm.gamma'}}; got {options!r}")
    options = dict(options or {})
    params = inspect.signature(entry).parameters
    for kw, path in options.items():
        if kw not in params:
            raise ValueError(f"{what}: option {kw!r} is not a keyword of {getattr(entry, '__name__', entry)}")
        if not isinstance(path, str) or "." not in path:
            raise ValueError(f"{what}: option {kw!r} must name a config field as 'section.field', "
                             f"got {path!r}")
    return options


class EstimatorRegistry(Registry):
    """:class:`~sarl.registry.Registry` of advantage estimators: every entry declares ``needs``,
    ``options`` (keyword -> config field), ``needs_with``, ``batch_wide`` and ``batch_wide_with`` (see the
    module docstring), normalised and checked against the function's signature when it is registered."""

    def add(self, name: str, entry: Any, *, aliases: tuple[str, ...] = (), needs=(),
            options: Mapping[str, str] | None = None,
            needs_with: Callable[[dict[str, Any]], Any] | None = None, batch_wide: bool = False,
            batch_wide_with: Callable[[dict[str, Any]], bool] | None = None) -> Any:
        what = f"advantage estimator {name!r}"
        bad = sorted(set(needs) - NEEDS)
        if bad:
            raise ValueError(f"{what}: unknown needs {bad}; expected a subset of {sorted(NEEDS)}")
        options = declared_options(what, entry, options)
        return super().add(name, entry, aliases=aliases, needs=frozenset(needs), options=options,
                           needs_with=needs_with, batch_wide=bool(batch_wide),
                           batch_wide_with=batch_wide_with)


ADV_ESTIMATORS = EstimatorRegistry("advantage estimator")


def get_adv_estimator(name: str):
    """The estimator registered as ``name``; unknown names raise ``KeyError`` listing the valid ones."""
    return ADV_ESTIMATORS[name]


def read_field(cfg: Any, dotted: str) -> Any:
    """``cfg.<a>.<b>`` for ``dotted = "a.b"`` (any object with those attributes, e.g. a ``TrainConfig``)."""
    obj = cfg
    for part in dotted.split("."):
        if not hasattr(obj, part):
            raise AttributeError(f"{dotted}: the config has no {part!r} there")
        obj = getattr(obj, part)
    return obj


def estimator_kwargs(name: str, cfg: Any) -> dict[str, Any]:
    """The keyword options of estimator ``name`` (or an alias), each read off ``cfg`` at the config field
    its registration declares: e.g. ``{"gamma": cfg.algorithm.gamma, "lam": cfg.algorithm.lam}`` for gae."""
    return {kw: read_field(cfg, path) for kw, path in ADV_ESTIMATORS.meta(name)["options"].items()}


def estimator_needs(name: str, cfg: Any) -> frozenset[str]:
    """What estimator ``name`` needs from its caller with the options ``cfg`` gives it (a subset of
    ``groups``, ``values``, ``reward_components``): the declared ``needs``, or ``needs_with`` of
    :func:`estimator_kwargs` where the needs depend on an option."""
    meta = ADV_ESTIMATORS.meta(name)
    if meta["needs_with"] is None:
        return meta["needs"]
    needs = frozenset(meta["needs_with"](estimator_kwargs(name, cfg)))
    bad = sorted(needs - NEEDS)
    if bad:
        raise ValueError(f"advantage estimator {name!r}: needs_with gave unknown needs {bad}")
    return needs


def estimator_batch_wide(name: str, cfg: Any) -> bool:
    """Whether estimator ``name``'s statistics span the whole batch with the options ``cfg`` gives it (then
    several data-parallel processes, each holding part of the batch, would compute different ones): the
    declared ``batch_wide``, or ``batch_wide_with`` of :func:`estimator_kwargs` where it depends on an
    option."""
    meta = ADV_ESTIMATORS.meta(name)
    if meta["batch_wide_with"] is None:
        return meta["batch_wide"]
    return bool(meta["batch_wide_with"](estimator_kwargs(name, cfg)))


def batch_wide_estimators() -> tuple[str, ...]:
    """Canonical names of the estimators whose statistics span the whole batch (declared ``batch_wide``)."""
    return tuple(n for n in ADV_ESTIMATORS.names if ADV_ESTIMATORS.meta(n)["batch_wide"])


def group_local_estimators() -> tuple[str, ...]:
    """Canonical names of the estimators whose statistics stay within a prompt's group (or a row)."""
    return tuple(n for n in ADV_ESTIMATORS.names if not ADV_ESTIMATORS.meta(n)["batch_wide"])


# ----------------------------------------------------------------------------------------------- helpers


def _float_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return mask.to(dtype=like.dtype if like.is_floating_point() else torch.float32, device=like.device)


def masked_sum(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """``sum(values * mask)`` over ``dim`` (all dims when None). Positions with mask 0 are replaced by 0
    first, so a NaN/inf there (e.g. a padded log-prob) cannot leak into the sum."""
    mask = _float_mask(mask, values)
    prod = torch.where(mask != 0, values * mask, torch.zeros((), dtype=mask.dtype, device=mask.device))
    return prod.sum() if dim is None else prod.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim=None) -> torch.Tensor:
    """verl's ``masked_mean``: ``sum(values * mask) / (sum(mask) + 1e-8)`` over ``dim`` (all when None)."""
    mask = _float_mask(mask, values)
    denom = mask.sum() if dim is None else mask.sum(dim=dim)
    return masked_sum(values, mask, dim) / (denom + 1e-8)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over all masked positions (scalar): ``masked_mean((v - masked_mean(v))^2)``, times the
    Bessel factor ``n / (n - 1)`` when ``unbiased`` (n = sum(mask)).

    verl raises for n <= 1; to stay free of host syncs we clamp ``n - 1`` at 1 instead, which gives
    variance 0 for n = 1 (a single token has zero spread) and for n = 0."""
    mask = _float_mask(mask, values)
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        n = mask.sum()
        var = var * n / (n - 1).clamp(min=1.0)
    return var


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """verl's ``masked_whiten`` over the whole batch: ``(v - mean) * rsqrt(var + 1e-8)`` with the masked
    mean and the unbiased masked variance; with ``shift_mean=False`` the mean is added back. ``[B, T]``
    (values outside the mask are whitened too; callers multiply by the mask)."""
    mean = masked_mean(values, mask)
    var = masked_var(values, mask, unbiased=True)
    white = (values - mean) * torch.rsqrt(var + 1e-8)
    return white if shift_mean else white + mean


def group_index(group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Map arbitrary group ids ``[N]`` to dense indices 0..G-1; returns (index ``[N]``, G)."""
    uniq, inv = torch.unique(group_ids, return_inverse=True)
    return inv, int(uniq.numel())


def group_sum(values: torch.Tensor, index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-row sum of ``values [N]`` over the row's group (``index`` from :func:`group_index`). ``[N]``."""
    zeros = torch.zeros(n_groups, dtype=values.dtype, device=values.device)
    return zeros.index_add(0, index.to(values.device), values)[index.to(values.device)]


def group_mean(values: torch.Tensor, index: torch.Tensor, n_groups: int,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Per-row mean of ``values [N]`` over its group (optionally only over rows with ``weight`` 1). ``[N]``.

    Groups with no weighted rows get 0."""
    w = torch.ones_like(values) if weight is None else weight.to(values.dtype)
    return group_sum(values * w, index, n_groups) / group_sum(w, index, n_groups).clamp(min=1)


def _group_stats(scores: torch.Tensor, group_ids: torch.Tensor):
    """Per-row (group sum, group size, unbiased group variance) for ``scores [B]``; each ``[B]``.

    Variance is two-pass: ``sum((s - mean)^2) / (n - 1)``, 0 for singletons."""
    if group_ids.shape != scores.shape:
        raise ValueError(f"group_ids must be [B] like the scores {tuple(scores.shape)}, got {tuple(group_ids.shape)}")
    inv, g = group_index(group_ids.to(scores.device))
    sums = group_sum(scores, inv, g)
    counts = group_sum(torch.ones_like(scores), inv, g)
    mean = sums / counts.clamp(min=1.0)
    var = group_sum((scores - mean) ** 2, inv, g) / (counts - 1).clamp(min=1.0)
    return sums, counts, var


def _check_2d(name: str, x: torch.Tensor, like: torch.Tensor) -> None:
    if x.shape != like.shape:
        raise ValueError(f"{name} must be [B, T] = {tuple(like.shape)}, got {tuple(x.shape)}")


# ------------------------------------------------------------------------------------------ group based


@torch.no_grad()
def grpo_scores(scores: torch.Tensor, group_ids: torch.Tensor, norm_adv_by_std: bool = True,
                eps: float = 1e-6) -> torch.Tensor:
    """GRPO advantage of each sequence score, ``[B] -> [B]``.

    Per group g (rows sharing a ``group_ids`` value): ``mean_g = mean(s)``, ``std_g = torch.std(s)``
    (unbiased, ddof = 1); a group of size 1 gets ``mean_g = 0, std_g = 1`` (verl)::

        A_i = (s_i - mean_g) / (std_g + eps)   if norm_adv_by_std   (GRPO)
        A_i =  s_i - mean_g                    otherwise            (Dr.GRPO)
    """
    sums, counts, var = _group_stats(scores, group_ids)
    multi = counts > 1
    mean = torch.where(multi, sums / counts.clamp(min=1.0), torch.zeros_like(scores))
    if not norm_adv_by_std:
        return scores - mean
    std = torch.where(multi, var.sqrt(), torch.ones_like(scores))
    return (scores - mean) / (std + eps)


def _gdpo(options: dict[str, Any]) -> bool:
    return options.get("aggregation") == "normalize_then_sum"


def _grpo_needs(options: dict[str, Any]) -> frozenset[str]:
    """grpo's needs given its options: the reward components as well when ``weighted`` or GDPO."""
    components = options.get("weighted") or _gdpo(options)
    return frozenset({"groups", "reward_components"} if components else {"groups"})


@ADV_ESTIMATORS.register("grpo", needs=("groups",), needs_with=_grpo_needs, batch_wide_with=_gdpo,
                         options={"norm_adv_by_std": "algorithm.norm_adv_by_std_in_grpo",
                                  "weighted": "algorithm.advantage_weighting_in_grpo",
                                  "aggregation": "algorithm.reward_aggregation"})
@torch.no_grad()
def grpo(token_rewards: torch.Tensor, response_mask: torch.Tensor, *, group_ids: torch.Tensor | None = None,
         values: torch.Tensor | None = None, components: dict[str, torch.Tensor] | None = None,
         weights: dict[str, float] | None = None, norm_adv_by_std: bool = True, weighted: bool = False,
         aggregation: str = "sum_then_normalize", eps: float = 1e-6):
    """GRPO (verl ``compute_grpo_outcome_advantage``). ``s_i = sum_t token_rewards[i, t] * mask[i, t]``;
    ``A_i`` = :func:`grpo_scores` (s, group_ids); ``advantages[i, t] = A_i * mask[i, t]``;
    returns = advantages. ``values`` is ignored.

    ``weighted=True`` (``algorithm.advantage_weighting_in_grpo``, the reference's option): each reward
    component is group-normalised separately, then weighted and summed, i.e. :func:`grpo_weighted` of
    ``components`` and ``weights`` (needed then; ``token_rewards`` is not read), the same as the
    ``grpo_weighted`` estimator. ``components`` and ``weights`` are ignored otherwise.

    ``aggregation`` (``algorithm.reward_aggregation``): ``"sum_then_normalize"`` (the default) is all of the
    above; ``"normalize_then_sum"`` is GDPO, :func:`sarl.algos.aggregation.normalize_then_sum` of
    ``components`` and ``weights`` (TRL's ``multi_objective_aggregation`` of that name: the weighted sum
    of group-normalised components, then normalised over the batch, eps 1e-4 in both steps, not ``eps``);
    it needs ``norm_adv_by_std=True`` and ``weighted=False``."""
    if group_ids is None:
        raise ValueError("grpo needs group_ids (rollouts of the same prompt share an id)")
    if aggregation not in REWARD_AGGREGATIONS:
        choices = ", ".join(REWARD_AGGREGATIONS)
        raise ValueError(f"grpo: aggregation must be one of {choices}, got {aggregation!r}")
    if aggregation == "normalize_then_sum":
        if weighted or not norm_adv_by_std or components is None or weights is None:
            raise ValueError("grpo with aggregation='normalize_then_sum' (GDPO) needs components and "
                             "weights, norm_adv_by_std=True and weighted=False")
        from sarl.algos.aggregation import normalize_then_sum

        return normalize_then_sum(components, weights, group_ids, response_mask)
    if weighted:
        if components is None or weights is None:
            raise ValueError("grpo with weighted=True (advantage_weighting_in_grpo) needs components and weights")
        return grpo_weighted(components, weights, group_ids, response_mask, norm_adv_by_std, eps)
    mask = _float_mask(response_mask, token_rewards)
    adv = grpo_scores(masked_sum(token_rewards, mask, dim=-1), group_ids, norm_adv_by_std, eps)
    adv = adv.unsqueeze(-1) * mask
    return adv, adv.clone()


@torch.no_grad()
def grpo_weighted(component_scores: dict[str, torch.Tensor], weights: dict[str, float],
                  group_ids: torch.Tensor, response_mask: torch.Tensor, norm_adv_by_std: bool = True,
                  eps: float = 1e-6):
    """The reference's ``advantage_weighting_in_grpo``: each reward component is group-normalised
    separately, then the advantages are weighted and summed::

        A_i = sum_k weights[k] * grpo_scores(component_scores[k], group_ids)_i      ([B])
        advantages[i, t] = A_i * mask[i, t];  returns = advantages                 ([B, T])

    ``component_scores`` maps a component name to its unweighted sequence scores ``[B]``; ``weights``
    must have exactly the same keys (schedule factors already applied by the caller)."""
    total = weighted_group_scores(component_scores, weights, group_ids, norm_adv_by_std, eps)
    mask = _float_mask(response_mask, total)
    adv = total.unsqueeze(-1) * mask
    return adv, adv.clone()


@torch.no_grad()
def weighted_group_scores(component_scores: dict[str, torch.Tensor], weights: dict[str, float],
                          group_ids: torch.Tensor, norm_adv_by_std: bool = True,
                          eps: float = 1e-6) -> torch.Tensor:
    """``sum_k weights[k] * grpo_scores(component_scores[k], group_ids)``, ``[B]`` (float32 for integer
    scores): the per-sequence advantage of :func:`grpo_weighted`, before it is broadcast over the mask."""
    missing = sorted(set(weights) - set(component_scores))
    extra = sorted(set(component_scores) - set(weights))
    if missing or extra:
        raise ValueError(f"grpo_weighted: weights and components differ: weights without scores {missing}, "
                         f"scores without weights {extra}")
    if not weights:
        raise ValueError("grpo_weighted: no components")
    first = next(iter(component_scores.values()))
    ref = first if first.is_floating_point() else first.float()
    total = torch.zeros_like(ref)
    for name, w in weights.items():
        s = component_scores[name].to(ref.dtype)
        total = total + float(w) * grpo_scores(s, group_ids, norm_adv_by_std, eps)
    return total


@ADV_ESTIMATORS.register("grpo_weighted", needs=("groups", "reward_components"),
                         options={"norm_adv_by_std": "algorithm.norm_adv_by_std_in_grpo"})
@torch.no_grad()
def grpo_weighted_estimator(token_rewards: torch.Tensor, response_mask: torch.Tensor, *,
                            group_ids: torch.Tensor | None = None, values: torch.Tensor | None = None,
                            components: dict[str, torch.Tensor] | None = None,
                            weights: dict[str, float] | None = None, norm_adv_by_std: bool = True,
                            eps: float = 1e-6):
    """The reference's ``advantage_weighting_in_grpo`` as an estimator of its own (= ``grpo`` with
    ``weighted=True``): :func:`grpo_weighted` of the reward ``components`` with ``weights``
    (``token_rewards`` and ``values`` are not read).

    The weights are the ones in force at this step: ``w_k * alpha(progress)`` for every scheduled reward
    (all but correctness), so a weight schedule acts here as it does on the summed reward. The
    reference multiplies by the bare ``reward_factors`` on this path (its schedule only enters the
    summed reward), which silently ignores a schedule; sarl applies it on both paths."""
    if group_ids is None or components is None or weights is None:
        raise ValueError("grpo_weighted needs group_ids, components and weights")
    return grpo_weighted(components, weights, group_ids, response_mask, norm_adv_by_std, eps)


@torch.no_grad()
def rloo_scores(scores: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantage, ``[B] -> [B]``: for a group of size n > 1,
    ``A_i = s_i - (sum_g - s_i) / (n - 1)`` (= ``n/(n-1) * (s_i - mean_g)``, verl's form);
    groups of size 1 get 0 (verl leaves the raw score there; a lone rollout has no baseline, so we give
    it no signal)."""
    sums, counts, _ = _group_stats(scores, group_ids)
    loo = scores - (sums - scores) / (counts - 1).clamp(min=1.0)
    return torch.where(counts > 1, loo, torch.zeros_like(scores))


@ADV_ESTIMATORS.register("rloo", needs=("groups",))
@torch.no_grad()
def rloo(token_rewards: torch.Tensor, response_mask: torch.Tensor, *, group_ids: torch.Tensor | None = None,
         values: torch.Tensor | None = None):
    """RLOO (verl ``compute_rloo_outcome_advantage``): ``s_i = sum_t token_rewards[i, t] * mask[i, t]``,
    ``A_i`` = :func:`rloo_scores` (s, group_ids), broadcast over the mask; returns = advantages."""
    if group_ids is None:
        raise ValueError("rloo needs group_ids (rollouts of the same prompt share an id)")
    mask = _float_mask(response_mask, token_rewards)
    adv = rloo_scores(masked_sum(token_rewards, mask, dim=-1), group_ids).unsqueeze(-1) * mask
    return adv, adv.clone()


# ------------------------------------------------------------------------------------------ token based


@ADV_ESTIMATORS.register("gae", needs=("values",), options={"gamma": "algorithm.gamma", "lam": "algorithm.lam"},
                         batch_wide=True)
@torch.no_grad()
def gae(token_rewards: torch.Tensor, response_mask: torch.Tensor, *, values: torch.Tensor | None = None,
        group_ids: torch.Tensor | None = None, gamma: float = 1.0, lam: float = 1.0):
    """Generalised advantage estimation (verl ``compute_gae_advantage_return``), ``[B, T]`` each.

    The recursion runs backwards over every position t = T-1 .. 0, vectorised over the batch, with
    ``nextV`` and ``nextA`` starting at 0::

        delta_t = r_t + gamma * nextV - V_t
        A_t     = delta_t + gamma * lam * nextA
        if mask_t:  nextV, nextA = V_t, A_t        (else both carry over unchanged)

    So positions with mask 0 are skipped: they neither contribute a value nor a TD error, and the value
    after the last valid token is 0 whatever the critic wrote on the padding (right padding needs no
    pre-masked values). For right-padded responses this equals verl's original recursion with values
    pre-multiplied by the mask (the critic does ``values * response_mask``); for masks with holes
    (multi-turn observation tokens) it equals current verl, which carries ``nextvalues``/``lastgaelam``
    through masked positions the same way. Rewards and values on masked positions are ignored.

    Then ``returns = (A + V) * mask`` (before whitening) and
    ``advantages = masked_whiten(A, mask) * mask``: ``(A - mean) * rsqrt(var + 1e-8)`` with the mean and
    the unbiased variance over all valid tokens of the batch (verl ``masked_whiten``, shift_mean=True).
    """
    if values is None:
        raise ValueError("gae needs the critic's values [B, T]")
    _check_2d("values", values, token_rewards)
    _check_2d("response_mask", response_mask, token_rewards)
    mask = _float_mask(response_mask, values)
    valid = mask != 0
    zero = torch.zeros((), dtype=values.dtype, device=values.device)
    r = torch.where(valid, token_rewards.to(values.dtype), zero)
    v = torch.where(valid, values, zero)
    next_v = torch.zeros_like(v[:, 0])
    next_a = torch.zeros_like(v[:, 0])
    cols = []
    for t in reversed(range(v.shape[1])):
        delta = r[:, t] + gamma * next_v - v[:, t]
        a = delta + gamma * lam * next_a
        cols.append(a)
        next_v = torch.where(valid[:, t], v[:, t], next_v)
        next_a = torch.where(valid[:, t], a, next_a)
    adv = torch.stack(cols[::-1], dim=1) if cols else torch.zeros_like(v)
    returns = (adv + v) * mask
    return masked_whiten(adv, mask) * mask, returns


@ADV_ESTIMATORS.register("reinforce_plus_plus", options={"gamma": "algorithm.gamma"}, batch_wide=True)
@torch.no_grad()
def reinforce_plus_plus(token_rewards: torch.Tensor, response_mask: torch.Tensor, *,
                        group_ids: torch.Tensor | None = None, values: torch.Tensor | None = None,
                        gamma: float = 1.0):
    """REINFORCE++ (verl ``compute_reinforce_plus_plus_outcome_advantage``), ``[B, T]`` each.

    Discounted return-to-go, backwards over every position with ``G`` starting at 0::

        G    = r_t + gamma * G;   returns_t = G;   G = G * mask_t   (verl's "reset after EOS")

    i.e. for a right-padded response ``returns_t = sum_{k >= t} gamma^(k-t) r_k`` over its valid tokens;
    a masked position cuts the sum (rewards after a hole do not reach tokens before it, as in verl).
    Then ``advantages = masked_whiten(returns, mask) * mask`` (batch-wide, unbiased variance, mean
    shifted) and ``returns = returns * mask`` (verl leaves padded returns unmasked; they are 0 there
    anyway when padding carries no reward). Rewards on masked positions are ignored (in verl they only
    reach the return at that masked position)."""
    _check_2d("response_mask", response_mask, token_rewards)
    mask = _float_mask(response_mask, token_rewards)
    zero = torch.zeros((), dtype=mask.dtype, device=mask.device)
    r = torch.where(mask != 0, token_rewards.to(mask.dtype), zero)
    running = torch.zeros_like(r[:, 0])
    cols = []
    for t in reversed(range(r.shape[1])):
        running = r[:, t] + gamma * running
        cols.append(running)
        running = running * mask[:, t]
    ret = torch.stack(cols[::-1], dim=1) * mask if cols else torch.zeros_like(r)
    return masked_whiten(ret, mask) * mask, ret
