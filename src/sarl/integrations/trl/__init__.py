"""sarl's rewards as TRL reward functions, with SAR computed by the policy ``trl.GRPOTrainer`` is training.

TRL passes reward functions the prompts, the completions (text and token ids), the dataset columns,
``trainer_state``, ``log_extra`` and ``log_metric``, but not the model. SAR, ``entropy`` and
``self_certainty`` need the policy, so their :class:`SarlReward` objects are *bound* to the trainer:
:class:`SARGRPOTrainer` (a ``GRPOTrainer`` subclass) binds them itself, or call ``reward.bind(trainer)``
after building a plain ``GRPOTrainer``::

    from trl import GRPOConfig
    from sarl.integrations.trl import SARGRPOTrainer, sarl_reward_funcs

    funcs, weights = sarl_reward_funcs({"correctness": 1.0, "sar": 0.2})   # R = correct + 0.2 SAR
    trainer = SARGRPOTrainer(model=model, processing_class=tokenizer, train_dataset=dataset,
                             reward_funcs=funcs, args=GRPOConfig(..., reward_weights=weights))
    trainer.train()

The dataset needs a ``prompt`` column of chat messages (``[{"role": "system", ...}, {"role": "user", ...}]``)
and, for correctness and the rewards built on it, the gold answer (column ``answer`` by default; an
optional ``data_source`` column selects the grader as in :func:`sarl.grading.grade`).

What each reward computes, for a completion ``a`` of prompt ``q`` (formulas and sources in
:mod:`sarl.rewards.builtin`; every value comes from the same registry function ``sarl train`` uses):

- ``sar``: ``SAR(q, a) = max((ppl(a) - ppl(a|q)) / ppl(a), -1)`` with
  ``ppl(a|q) = exp(-(1/|a|) sum_t log pi(a_t | prompt(q), a_<t))`` and
  ``ppl(a) = exp(-(1/|a|) sum_t log pi(a_t | prompt(null), a_<t))``; the :class:`~sarl.rewards.SARConfig`
  variants (``use_log``, ``clip_value``, ...) are options. ``pi`` is the trainer's current policy: the
  weights that generated the batch, before the optimizer step that uses it.
- ``entropy``: ``-log ppl(a|q)``; ``self_certainty``: ``(1/|a|) sum_t KL(U || pi(. | q, a_<t))``.
- ``correctness``: 1 if :func:`sarl.grading.grade` accepts the completion against the gold column, else 0
  (0 when the gold is missing).
- group rewards (``o1_pruner``, ``efficient_reasoner``, ``kimi_length``) over the ``G = num_generations``
  completions of a prompt, lengths ``L`` in sampled tokens (stop token included, as in ``sarl train``);
  ``cosine_length`` and ``overlong`` per completion, ``L_max = GRPOConfig.max_completion_length``.

Contexts (the definition ``sarl score`` uses). ``prompt(q)`` is the row's own messages through the chat
template with the generation prompt; for the usual ``[system, user]`` prompt that is exactly
:func:`sarl.prompts.render_prompt` ``(tokenizer, user, system)``, the prompt TRL generated from.
``prompt(null)`` is :func:`sarl.prompts.render_null_prompt` ``(tokenizer, system)``: the same system message
and an empty user turn (no system message: neither context has one, so the template's default applies
to both). A prompt with earlier turns keeps them in ``prompt(q)`` only. Plain-string prompts are
rejected: they have no user turn to empty. TRL's ``chat_template_kwargs`` apply to both contexts.

Answer tokens (``answer_tokens``). ``"text"`` (default) re-encodes the completion text TRL decoded
(special tokens skipped), so the value is exactly what ``sarl score`` computes for (question, completion)
with the same weights, edge cases included: an empty or whitespace-only completion gets 0
(``status: empty``), one longer than ``max_answer_tokens`` or the context window is scored on its kept
prefix (``truncated``). ``"sampled"`` scores the token ids TRL sampled, stop token included, as
``sarl train`` does. Log-probs come from :func:`sarl.logprobs.answer_logprobs` at ``temperature``
(default 1.0, the paper's perplexity; ``None`` = the trainer's sampling temperature, as ``sarl train``),
with the model in eval mode (no dropout) and no gradient, through the model's forward as the trainer
runs it: with ``GRPOConfig(bf16=True)`` (TRL's default, also on a CPU) accelerate's bf16 autocast
applies, as it does to TRL's own log-probs and to generation. With ``bf16=False`` and an fp32 model the
values equal ``sarl score``'s to float precision (the tests check 1e-4; measured ~1e-9); with bf16
autocast they differ from it by the autocast rounding (~4e-4 in SAR on the tiny test model).

Reusing TRL's log-probs (:class:`SARGRPOTrainer` only). When TRL computes the old policy's per-token
log-probs of the batch (``num_iterations > 1``, ``steps_per_generation`` not dividing
``gradient_accumulation_steps``, or vLLM with importance-sampling correction), those are
``log pi(a_t | prompt(q), a_<t)`` under the same weights, so ``ppl(a|q)`` is taken from them for every row
whose prompt tokens and answer tokens match TRL's exactly and ``temperature`` equals TRL's; other rows,
and the null-context pass, run :func:`~sarl.logprobs.answer_logprobs`. In TRL's default configuration
(one iteration, no vLLM) TRL computes no old log-probs, so there is nothing to reuse. ``self_certainty``
needs the full distribution and never reuses. Reuse is enabled only for the TRL versions in
:data:`REUSE_VERIFIED_TRL`, whose internals this module hooks.

Multiple processes (DDP, ``accelerate launch``). TRL calls reward functions on each process's local
slice of the generation batch and gathers the values afterwards. Policy rewards score the local slice
with that process's own unwrapped model replica (under DDP every replica holds the same weights) and
need no communication. The local slice does **not** always hold whole groups: in TRL 1.16 it is
``per_device_train_batch_size x steps_per_generation`` consecutive completions of the global order
(``num_generations`` consecutive completions per prompt), and only the global generation batch is
required to be a multiple of ``num_generations`` (e.g. 2 processes, 3 completions each, G = 2: the
second prompt's group spans both processes). Group rewards therefore gather (length, correctness,
prompt) from all processes in rank order (:func:`accelerate.utils.gather_object`; every process must
call the reward, which TRL does), compute on whole groups and return their local part, so they equal
the single-process values. Sharded parameters (FSDP, DeepSpeed ZeRO-3): every forward of the wrapped
model is a collective, so policy rewards run through the wrapped model and in lockstep
(:func:`sarl.logprobs.answer_forward` with ``lockstep``: each process plans its batches by the token
budget, then runs one-token forwards until all have run as many as the busiest). Tested with torch's
FSDP2 on 2 CPU processes (gloo) against unsharded values; TRL's own FSDP / ZeRO-3 launch is not
tested here.
"""
from __future__ import annotations

import importlib.util

if importlib.util.find_spec("trl") is None:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sarl.integrations.trl needs TRL, an optional dependency: pip install 'sarl[trl]' "
        "(installs trl 1.16.x; tested with 1.16.0)"
    )

from sarl.integrations.trl.recipe import KEY_MAP, grpo_config
from sarl.integrations.trl.reuse import REUSE_VERIFIED_TRL
from sarl.integrations.trl.reward import SarlReward, sarl_reward_funcs, schedule_progress
from sarl.rewards.registry import POLICY_NEEDS

__all__ = ["KEY_MAP", "POLICY_NEEDS", "REUSE_VERIFIED_TRL", "SARGRPOTrainer", "SarlReward", "grpo_config",
           "sarl_reward_funcs", "schedule_progress"]


def __getattr__(name: str):
    """``SARGRPOTrainer`` is built on first access, so importing the reward functions does not load
    transformers' ``Trainer`` (about 3 s)."""
    if name == "SARGRPOTrainer":
        from sarl.integrations.trl.reuse import make_trainer_class

        cls = make_trainer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
