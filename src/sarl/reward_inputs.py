"""The one function that turns a model and a batch of rollouts into the inputs rewards read.

The trainer, ``sarl score`` (:class:`sarl.scoring.SARScorer`), the quickstart (through the scorer) and
the TRL adapter all call :func:`reward_inputs`, so ppl(a|q) and ppl(a) are computed one way everywhere:

- ``logp_qa``: ``log p(a_t | context, a_<t)`` for each response after its own context; taken from the
  caller when it already has them (the trainer's old-policy pass, TRL's own log-probs), else one pass.
- ``logp_a``: ``log p(a_t | null prompt, a_<t)`` after the null prompt (same system prompt, empty user
  turn) at its real length, only when a chosen reward needs it (SAR with ``use_comparison``).
- ``token_self_certainty``: ``KL(U || p)`` per token, only when a reward needs it.

Both passes use :func:`sarl.logprobs.answer_logprobs` at the same ``temperature``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

import torch

from sarl.logprobs import MAX_BATCH_TOKENS, answer_logprobs
from sarl.rewards.registry import RewardInputs
from sarl.rollout.batch import RolloutBatch


def reward_inputs(model, batch: RolloutBatch, needs: Collection[str], *, null_ids: list[int] | None = None,
                  null_contexts: Sequence[list[int]] | None = None, pad_token_id: int,
                  temperature: float = 1.0, logp_qa: torch.Tensor | None = None,
                  response_mask: torch.Tensor | None = None, token_self_certainty: torch.Tensor | None = None,
                  max_response_length: int | None = None, max_batch_tokens: int = MAX_BATCH_TOKENS,
                  lockstep: bool = False, progress: Callable[[int, int], None] | None = None) -> RewardInputs:
    """:class:`~sarl.rewards.RewardInputs` for ``batch`` with every input in ``needs`` (a reward
    composer's ``needs``) filled in, running only the passes that are missing.

    The null prompt is ``null_ids`` for every row, or ``null_contexts[i]`` per row (prompts with
    different system prompts). ``logp_qa`` / ``response_mask`` ``[N, T]`` (and ``token_self_certainty``)
    may be given by a caller
    that computed them for the same rows with the same model and temperature; they are used as they are.
    The model's mode is left as it is (callers put it in eval mode; dropout would change the values).
    ``lockstep`` (a sharded model, every forward a collective): every process runs the same passes, each
    with the same number of forwards (:func:`sarl.logprobs.answer_forward`); the ``needs`` and the given
    inputs must then agree across processes, as they do when every process holds the same reward.
    """
    kw = {"pad_token_id": pad_token_id, "temperature": temperature, "max_batch_tokens": max_batch_tokens,
          "lockstep": lockstep}
    want_sc = "self_certainty" in needs and token_self_certainty is None
    if (logp_qa is None and "logp_qa" in needs) or want_sc:
        qa_progress = None if "logp_a" in needs else progress
        qa = answer_logprobs(model, batch.contexts, batch.responses, stats=("self_certainty",) if want_sc else (),
                             progress=qa_progress, **kw)
        if logp_qa is None:
            logp_qa, response_mask = qa.logp, qa.mask
        if want_sc:
            token_self_certainty = qa.stats["self_certainty"]
    logp_a = None
    if "logp_a" in needs:
        # progress is reported once per answer token, after its second (null-context) pass
        if null_contexts is None:
            if null_ids is None:
                raise ValueError("reward_inputs: the null-context pass needs null_ids or null_contexts")
            null_contexts = [null_ids] * len(batch)
        logp_a = answer_logprobs(model, list(null_contexts), batch.responses, progress=progress, **kw).logp
    return RewardInputs(
        responses=batch.texts, correct=batch.correct,
        lengths=batch.lengths, group_ids=batch.group_ids, logp_qa=logp_qa, logp_a=logp_a,
        response_mask=response_mask, token_self_certainty=token_self_certainty,
        max_response_length=max_response_length, context_ids=batch.contexts, response_ids=batch.responses)
