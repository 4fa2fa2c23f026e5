"""RL training: the loop with named stages, the PPO critic, checkpoints."""

from sarl.train.loop import STAGES, Trainer, TrainingAborted, train

__all__ = ["STAGES", "Trainer", "TrainingAborted", "train"]
