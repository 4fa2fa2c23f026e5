"""How grpo aggregates several rewards (``algorithm.reward_aggregation``, grpo's ``aggregation`` option).

* ``sum_then_normalize`` (the default; verl's and the reference's GRPO): the weighted rewards are summed
  into one sequence score, which :func:`sarl.algos.advantages.grpo_scores` normalises within its group.
  A reward with a small spread (SAR, ~0.03) then moves the advantage little next to the 0/1 spread of
  correctness: the group std is set by the largest spread.
* ``normalize_then_sum`` (GDPO, "Group reward-Decoupled Normalization Policy Optimization", arXiv
  2601.05242; TRL's ``GRPOConfig.multi_objective_aggregation="normalize_then_sum"``):
  :func:`normalize_then_sum` normalises each reward within its group first, so each reaches the
  advantage at its weight whatever its spread, then normalises the weighted sum over the batch.
"""

from __future__ import annotations

import torch

from sarl.algos.advantages import weighted_group_scores

# TRL 1.16's epsilon in both steps of normalize_then_sum (grpo_trainer.py); sarl's grpo uses verl's 1e-6
GDPO_EPS = 1e-4


@torch.no_grad()
def normalize_then_sum(component_scores: dict[str, torch.Tensor], weights: dict[str, float],
                       group_ids: torch.Tensor, response_mask: torch.Tensor, eps: float = GDPO_EPS):
    """GDPO's decoupled normalisation, as TRL 1.16 computes ``normalize_then_sum``. For each reward
    component k (unweighted sequence scores ``component_scores[k]``, ``[B]``) and row i in group g::

        z_k,i = (r_k,i - mean_g(r_k)) / (std_g(r_k) + eps)     per component, within the group
        S_i   = sum_k weights[k] * z_k,i                        weights in force (schedule applied)
        A_i   = (S_i - mean(S)) / (std(S) + eps)                over all B rows of the batch
        advantages[i, t] = A_i * mask[i, t];  returns = advantages          ([B, T])

    Both stds are unbiased (ddof = 1), eps = 1e-4 (TRL's). ``S`` is the advantage of
    :func:`sarl.algos.advantages.grpo_weighted` (the reference's ``advantage_weighting_in_grpo``) with
    this eps; the last step rescales it to unit spread over the batch (``mean(S)`` is 0 when every group
    has >= 2 rows), one factor for all rows: the same direction per step, a different step size. A group
    of one row takes grpo's rule (mean 0, std 1; TRL never has one); the std of a one-row batch is 0, as
    TRL's. The batch step makes the statistics batch-wide: data-parallel processes holding parts of the
    batch would each compute their own. Inputs are not modified."""
    s = weighted_group_scores(component_scores, weights, group_ids, True, eps)
    mean = s.mean()
    std = s.std() if s.numel() > 1 else torch.zeros_like(mean)
    mask = response_mask.to(dtype=s.dtype, device=s.device)
    adv = ((s - mean) / (std + eps)).unsqueeze(-1) * mask
    return adv, adv.clone()
