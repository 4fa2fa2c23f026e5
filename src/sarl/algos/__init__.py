"""RL algorithm pieces: advantage estimators, the PPO policy/value losses, KL estimators and loss
aggregation. Pure torch functions, each registered under the name users type.

Every registry is a :class:`Registry`: a dict from every accepted name (canonical names and their
reference-compatible aliases, e.g. ``low_var_kl`` for ``k3``) to the function, so ``tuple(REG)`` is
the list of valid names, ``name in REG`` checks one, and ``REG[bad]`` raises a ``KeyError`` that lists
the valid names. Registering a name twice raises ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Callable


class Registry(dict):
    """Name → function, aliases included as keys. ``aliases`` maps alias → canonical name."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
        """Decorator: register ``fn`` under ``name`` and ``aliases``; a name used twice raises."""

        def deco(fn: Callable) -> Callable:
            for key in (name, *aliases):
                if key in self:
                    raise ValueError(f"{self.kind} name {key!r} is registered twice")
            self[name] = fn
            for a in aliases:
                self[a] = fn
                self.aliases[a] = name
            return fn

        return deco

    @property
    def names(self) -> tuple[str, ...]:
        """Canonical names (aliases left out), in registration order."""
        return tuple(k for k in self if k not in self.aliases)

    def valid_names(self) -> str:
        return ", ".join([*self.names, *(f"{a} (= {t})" for a, t in self.aliases.items())])

    def canonical(self, name: str) -> str:
        """Map a user's name (or an alias) to the canonical name; unknown names list the valid ones."""
        if name not in self:
            raise KeyError(f"unknown {self.kind} {name!r}; valid names: {self.valid_names()}")
        return self.aliases.get(name, name)

    def __missing__(self, name):
        raise KeyError(f"unknown {self.kind} {name!r}; valid names: {self.valid_names()}")


# The submodules import Registry from here, so these imports come after its definition.
from sarl.algos.advantages import (
    ADV_ESTIMATORS,
    gae,
    get_adv_estimator,
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
    policy_loss,
    value_loss,
)

__all__ = [
    "ADV_ESTIMATORS", "KL_ESTIMATORS", "LOSS_AGG_MODES", "Registry", "aggregate_loss", "gae",
    "get_adv_estimator", "get_kl_estimator", "grpo", "grpo_scores", "grpo_weighted", "kl_penalty",
    "loss_normalizers", "masked_mean", "masked_var", "masked_whiten", "policy_loss", "reinforce_plus_plus",
    "rloo", "rloo_scores", "value_loss",
]
