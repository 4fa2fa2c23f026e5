"""TRL glue: what TRL passes reward functions (prompts as chat messages, completions as text or
messages, per-process slices of the batch) turned into what sarl's reward code takes."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

# Keyword arguments TRL adds to the dataset columns.
TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


def completion_text(completion: Any) -> str:
    """TRL passes a string (standard format) or a list of messages (conversational format)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        parts = []
        for msg in completion:
            content = msg.get("content", "") if isinstance(msg, Mapping) else msg
            if isinstance(content, list):  # content blocks
                content = "".join(b.get("text", "") for b in content if isinstance(b, Mapping))
            parts.append(content or "")
        return "".join(parts)
    raise TypeError(f"unexpected completion of type {type(completion).__name__}; expected str or a list of messages")


def prompt_key(prompt: Any) -> str:
    """A short, order-sensitive fingerprint of a prompt (to check that a group shares one prompt)."""
    blob = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def eval_mode(model):
    """Eval mode (no dropout) for the duration; every module's own training flag is restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def split_prompt(prompt: Any, index: int) -> tuple[Any, list[dict]]:
    """(system content or None, the messages after it). Raises a clear error for unusable prompts."""
    if isinstance(prompt, str):
        raise TypeError(
            "SAR needs conversational prompts: ppl(a) is measured after the same system prompt and an empty "
            "user turn, which a plain-string prompt does not have. Give the dataset a 'prompt' column of "
            "messages, e.g. [{'role': 'system', 'content': SYSTEM}, {'role': 'user', 'content': QUESTION}] "
            f"(row {index} is a string)."
        )
    msgs = list(prompt)
    if not msgs or not all(isinstance(m, Mapping) and "role" in m for m in msgs):
        raise ValueError(f"prompt {index} is not a list of chat messages with roles: {prompt!r}")
    system = msgs[0].get("content") if msgs[0]["role"] == "system" else None
    body = msgs[1:] if msgs[0]["role"] == "system" else msgs
    if not body or body[-1]["role"] != "user":
        raise ValueError(f"prompt {index} must end with a user message (the question); got roles "
                         f"{[m['role'] for m in msgs]}")
    return system, body


def gather_per_process(obj: Any, trainer=None) -> tuple[list[Any], int]:
    """Every process's ``obj`` in rank order, and this process's rank (no communication with one process)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = trainer.accelerator.state if trainer is not None else PartialState()
    if state.num_processes == 1:
        return [obj], 0
    return gather_object([obj]), state.process_index
