"""sarl: train LLM reasoners to be correct and concise with RL and the self-aligned reward (SAR)."""

__version__ = "0.1.0"

from sarl.logprobs import answer_logprobs
from sarl.models import load_model
from sarl.prompts import DEFAULT_SYSTEM_PROMPT
from sarl.rewards import RewardComposer, RewardInputs, SARConfig, Schedule, get_reward
from sarl.scoring import SARScorer

__all__ = [
    "DEFAULT_SYSTEM_PROMPT", "RewardComposer", "RewardInputs", "SARConfig", "SARScorer", "Schedule", "__version__",
    "answer_logprobs", "get_reward", "load_model",
]
