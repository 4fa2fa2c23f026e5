"""The training problems in a seeded order per epoch (its position is saved in checkpoints)."""

from __future__ import annotations

import torch

from sarl.errors import SarlError


class DataStream:
    """Training problems in a seeded order per epoch; its position is saved in checkpoints."""

    def __init__(self, problems: list, seed: int, shuffle: bool, epoch: int = 0, pos: int = 0):
        if not problems:
            raise SarlError("the training dataset is empty")
        self.problems, self.seed, self.shuffle = problems, seed, shuffle
        self.epoch, self.pos = epoch, pos
        self._order = self._make_order()

    def _make_order(self) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.problems)))
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(len(self.problems), generator=g).tolist()

    def take(self, k: int) -> list:
        out = []
        while len(out) < k:
            if self.pos >= len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._make_order()
            out.append(self.problems[self._order[self.pos]])
            self.pos += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, state: dict) -> None:
        """Continue from a position :meth:`state` returned (the epoch's order is re-drawn from the seed)."""
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._order = self._make_order()
