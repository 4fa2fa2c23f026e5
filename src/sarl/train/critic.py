"""The PPO critic: the policy's base model (decoder) with a scalar value head, initialised from the
policy as the reference does. Its values come through :func:`sarl.logprobs.answer_forward`, the same
batching as every log-prob pass: ``V[t]`` is read at the position that predicts response token ``t``
(the state before emitting it)."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch
from torch import nn


class ValueModel(nn.Module):
    """``decoder`` + ``Linear(hidden, 1)``. The head starts at zero, so the first values are 0 (the
    reference initialises a fresh head too; zero makes the start deterministic)."""

    def __init__(self, policy):
        super().__init__()
        self.decoder = copy.deepcopy(policy.get_decoder())
        hidden = policy.config.hidden_size
        self.v_head = nn.Linear(hidden, 1, dtype=next(policy.parameters()).dtype)
        nn.init.zeros_(self.v_head.weight)
        nn.init.zeros_(self.v_head.bias)
        self.config = policy.config

    def forward(self, input_ids, attention_mask=None, position_ids=None, logits_to_keep: int = 0, use_cache=False):
        h = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=use_cache).last_hidden_state
        if logits_to_keep:
            h = h[:, -logits_to_keep:]
        return SimpleNamespace(logits=self.v_head(h))  # [B, k, 1]


def values_head(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """``answer_forward`` head of the critic: ``[B, k, 1]`` → ``{"values": [B, k]}``."""
    return {"values": outputs[..., 0].float()}
