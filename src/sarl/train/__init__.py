"""RL training: the loop with named stages, the PPO critic, checkpoints."""

from sarl.train.loop import Trainer, TrainingAborted, train
from sarl.train.stages import STAGES

__all__ = ["STAGES", "Trainer", "TrainingAborted", "train"]
