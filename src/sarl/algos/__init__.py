"""RL algorithm pieces: advantage estimators, the policy losses (PPO's clip, GSPO, CISPO, SAPO), the
value loss, KL estimators and loss aggregation. Pure torch functions, each registered under the name
users type.

Every registry is a :class:`sarl.registry.Registry` (the one registry type of sarl): a dict from every
accepted name (canonical names and their aliases, e.g. ``low_var_kl`` for ``k3``) to the function, with
what each entry declared at registration in ``REG.meta(name)``. An advantage estimator's caller reads its
declarations through :func:`estimator_kwargs` (its options, off a config), :func:`estimator_needs` (what to
pass it) and ``meta(name)["batch_wide"]`` (whether several processes may split its batch); a policy
loss's through :func:`policy_loss_kwargs` (its options, off a config).
"""

from __future__ import annotations

from sarl.algos.advantages import (
    ADV_ESTIMATORS,
    batch_wide_estimators,
    estimator_kwargs,
    estimator_needs,
    gae,
    get_adv_estimator,
    group_local_estimators,
    grpo,
    grpo_scores,
    grpo_weighted,
    masked_mean,
    masked_var,
    masked_whiten,
    reinforce_plus_plus,
    rloo,
    rloo_scores,
)
from sarl.algos.losses import (
    KL_ESTIMATORS,
    LOSS_AGG_MODES,
    aggregate_loss,
    get_kl_estimator,
    kl_penalty,
    loss_normalizers,
    value_loss,
)
from sarl.algos.policy_losses import (
    POLICY_LOSSES,
    get_policy_loss,
    policy_loss,
    policy_loss_kwargs,
)
from sarl.registry import Registry

__all__ = [
    "ADV_ESTIMATORS", "KL_ESTIMATORS", "LOSS_AGG_MODES", "POLICY_LOSSES", "Registry", "aggregate_loss",
    "batch_wide_estimators", "estimator_kwargs", "estimator_needs", "gae", "get_adv_estimator",
    "get_kl_estimator", "get_policy_loss", "group_local_estimators", "grpo", "grpo_scores", "grpo_weighted",
    "kl_penalty",
    "loss_normalizers", "masked_mean", "masked_var", "masked_whiten", "policy_loss", "policy_loss_kwargs",
    "reinforce_plus_plus", "rloo", "rloo_scores", "value_loss",
]
