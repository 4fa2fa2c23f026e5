"""Composing rewards: weights per reward and the reference's weight schedule.

    R = w_correctness * correctness + alpha(progress) * sum_{k != correctness} w_k * r_k

``progress`` = step / total_steps in [0, 1]; alpha scales every reward registered with
``scheduled=True`` (all but correctness). This is the reference's ``reward_types`` /
``reward_factors`` with ``trainer.alpha_scheduler``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from sarl.errors import ConfigError, SarlError
from sarl.rewards.registry import REWARDS, RewardInputs, canonical_name
from sarl.settings import Settings, setting

SCHEDULE_TYPES = ("constant", "linear")


@dataclass(frozen=True)
class Schedule(Settings):
    """The weight schedule of every scheduled reward (the reference's ``alpha_scheduler``)."""

    section = "rewards.schedule"
    type: str = setting("constant", "constant (alpha = 1) or linear.", choices=SCHEDULE_TYPES)
    peak_pos: float = setting(0.5, "Progress (0-1) where a linear schedule peaks at alpha = 1.")
    bottom: float = setting(0.0, "Alpha at progress 0 (when increase) and at progress 1 (when decrease).")
    increase: bool = setting(False, "Linear ramp from bottom up to 1 before peak_pos (else alpha = 1 there).")
    decrease: bool = setting(False, "Linear ramp from 1 down to bottom after peak_pos (else alpha = 1 there).")

    def validate(self) -> None:
        if self.type == "linear" and not 0.0 < self.peak_pos < 1.0:
            raise ConfigError(f"rewards.schedule.peak_pos: must be in (0, 1), got {self.peak_pos}")

    def alpha(self, progress: float) -> float:
        """alpha(x): constant → 1. linear → ``bottom + (1-bottom) x/peak`` for x <= peak if increase,
        ``1 - (1-bottom)(x-peak)/(1-peak)`` for x > peak if decrease, else 1."""
        if self.type == "constant":
            return 1.0
        x, p, b = float(progress), self.peak_pos, self.bottom
        if x <= p:
            return b + (1 - b) * x / p if self.increase else 1.0
        return 1 - (1 - b) * (x - p) / (1 - p) if self.decrease else 1.0


@dataclass
class RewardOutput:
    total: torch.Tensor  # [N] float32
    components: dict[str, torch.Tensor]  # unweighted value of each reward, [N]
    alpha: float


@dataclass
class RewardComposer:
    """Weighted sum of registered rewards. ``weights`` maps user names (aliases allowed) to weights;
    ``options`` maps reward names to option dicts (e.g. ``{"sar": {"use_log": True}}``)."""

    weights: dict[str, float]
    options: dict[str, dict] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=Schedule)

    def __post_init__(self):
        if not self.weights:
            raise SarlError("no rewards chosen; give at least one, e.g. {'correctness': 1.0, 'sar': 0.2}")
        self.weights = {canonical_name(k): float(v) for k, v in self.weights.items()}
        opts = {}
        for k, v in self.options.items():
            name = canonical_name(k)
            opts[name] = REWARDS[name].make_options(v)
        self._opts = opts

    @property
    def needs(self) -> frozenset[str]:
        """Inputs the chosen rewards need (so callers skip passes nobody uses)."""
        out: set[str] = set()
        for name in self.weights:
            out |= REWARDS[name].needs_for(self._opts.get(name))
        return frozenset(out)

    def scheduled_weights(self, progress: float) -> dict[str, float]:
        """Each reward's weight at ``progress``: ``w_k * alpha(progress)`` for scheduled rewards, ``w_k``
        for the others (correctness)."""
        alpha = self.schedule.alpha(progress)
        return {name: w * (alpha if REWARDS[name].scheduled else 1.0) for name, w in self.weights.items()}

    def __call__(self, inputs: RewardInputs, progress: float = 0.0) -> RewardOutput:
        n = len(inputs)
        total = torch.zeros(n, dtype=torch.float64)
        comps: dict[str, torch.Tensor] = {}
        for name, weight in self.scheduled_weights(progress).items():
            val = REWARDS[name](inputs, self._opts.get(name)).to(torch.float64)
            comps[name] = val.float()
            total += weight * val
        return RewardOutput(total=total.float(), components=comps, alpha=self.schedule.alpha(progress))
