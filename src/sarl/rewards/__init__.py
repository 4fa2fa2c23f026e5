"""The reward library: a registry keyed by the names users type, plus composition with weights and
the weight schedule. Importing this package registers the built-in rewards."""

from sarl.rewards import builtin as _builtin  # noqa: F401  (registers the rewards)
from sarl.rewards.compose import RewardComposer, RewardOutput, Schedule
from sarl.rewards.registry import ALIASES, REWARDS, RewardInputs, RewardSpec, canonical_name, get_reward
from sarl.rewards.self_aligned import SARConfig, mean_nll, perplexity, sar_from_ppl, self_aligned_reward

__all__ = [
    "ALIASES", "REWARDS", "RewardComposer", "RewardInputs", "RewardOutput", "RewardSpec", "SARConfig",
    "Schedule", "canonical_name", "get_reward", "mean_nll", "perplexity", "sar_from_ppl", "self_aligned_reward",
]
