"""sarl: train LLM reasoners to be correct and concise with RL and the self-aligned reward (SAR)."""

__version__ = "0.1.0"

from sarl.logprobs import answer_logprobs  # noqa: E402
from sarl.models import load_model  # noqa: E402
from sarl.prompts import DEFAULT_SYSTEM_PROMPT  # noqa: E402
from sarl.rewards import RewardComposer, RewardInputs, SARConfig, Schedule, get_reward  # noqa: E402
from sarl.scoring import SARScorer  # noqa: E402

__all__ = ["DEFAULT_SYSTEM_PROMPT", "RewardComposer", "RewardInputs", "SARConfig", "SARScorer", "Schedule",
           "answer_logprobs", "get_reward", "load_model", "__version__"]
