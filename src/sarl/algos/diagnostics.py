"""What moves a multi-reward update: pure functions over one step's rewards, logged by the trainer.

With rewards r_k (``components``, unweighted, ``[N]``) and the weights in force w_k (α included for
scheduled rewards), group-relative estimators build the advantage from the group-centred total
reward R_i − mean_g(R) = Σ_k A_k,i with

    A_k,i = w_k (r_k,i − mean_{j in g(i)} r_k,j)          (the batch mean when there are no groups)

exactly for Dr.GRPO (RLOO's leave-one-out baseline multiplies it by G / (G − 1)). Where an estimator
rescales afterwards (std-normalised GRPO divides each group by its std; ``grpo_weighted`` divides each
component by its own group std; GAE and REINFORCE++ whiten over the batch), these are the shares of the
centred reward before that rescaling. A_k says how much of the update reward k drives:

- :func:`advantage_shares`: share_k = Σ_i |A_k,i| / Σ_j Σ_i |A_j,i|, each reward's share of the
  advantage's magnitude (all 0 when no reward varies within any group);
- :func:`group_outcomes`: the fractions of groups whose answers are all correct or all wrong
  (correctness gives them no advantage: only the other rewards move them);
- :func:`style_advantages`: per style and reward, Σ over the style's answers of A_k,i / N, the
  advantage mass reward k puts on that style (which styles each reward pushes up or down). Over all
  styles it sums to 0 for each reward (centred rewards); divided by the style's share it is the mean A_k
  of an answer of that style. Every style listed is reported (0 when absent), so processes that each hold
  a part of the batch report the same keys and their mean is the whole batch's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from sarl.algos.advantages import group_index, group_mean


def _centred(r: torch.Tensor, group_ids: torch.Tensor | None) -> torch.Tensor:
    """``r − mean of its group`` (``[N]``, float64); the batch mean without groups."""
    r = r.to(torch.float64)
    if group_ids is None:
        return r - r.mean()
    return r - group_mean(r, *group_index(group_ids))


def component_advantages(components: Mapping[str, torch.Tensor], weights: Mapping[str, float],
                         group_ids: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """``{name: A_k [N]}``, A_k,i = w_k (r_k,i − mean_g r_k) (module docstring); float64."""
    return {name: float(weights.get(name, 0.0)) * _centred(r, group_ids) for name, r in components.items()}


def advantage_shares(components: Mapping[str, torch.Tensor], weights: Mapping[str, float],
                     group_ids: torch.Tensor | None) -> dict[str, float]:
    """``{name: share}``, Σ_i |A_k,i| / Σ_j Σ_i |A_j,i| (summing to 1, or all 0 when nothing varies)."""
    parts = {k: float(a.abs().sum()) for k, a in component_advantages(components, weights, group_ids).items()}
    total = sum(parts.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in parts.items()}


def group_outcomes(correct: torch.Tensor, group_ids: torch.Tensor) -> dict[str, float]:
    """``{"all_correct": ..., "all_wrong": ...}``: the fractions of groups (rows sharing a group id)
    whose ``correct`` (``[N]``, 0/1) is 1 everywhere, or 0 everywhere."""
    inv, n_groups = group_index(group_ids)
    c = correct.to(torch.float64)
    sums = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv, c)
    counts = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, inv, torch.ones_like(c))
    return {"all_correct": float((sums == counts).double().mean()), "all_wrong": float((sums == 0).double().mean())}


def style_advantages(components: Mapping[str, torch.Tensor], weights: Mapping[str, float],
                     group_ids: torch.Tensor | None, styles: Sequence[str],
                     all_styles: Sequence[str]) -> dict[str, dict[str, float]]:
    """``{style: {name: Σ_{i of that style} A_k,i / N}}`` for every style of ``all_styles`` (``styles``:
    one label per answer, each in ``all_styles``)."""
    adv = component_advantages(components, weights, group_ids)
    n = max(1, len(styles))
    out: dict[str, dict[str, float]] = {}
    for style in all_styles:
        rows = torch.tensor([s == style for s in styles], dtype=torch.bool)
        out[style] = {k: float(a[rows].sum()) / n for k, a in adv.items()}
    return out
