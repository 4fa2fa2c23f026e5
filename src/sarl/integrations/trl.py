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
the single-process values. Sharded parameters (FSDP, DeepSpeed ZeRO-3) are not supported for policy
rewards: their forwards are collective and the processes' batch plans differ.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

if importlib.util.find_spec("trl") is None:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "sarl.integrations.trl needs TRL, an optional dependency: pip install 'sarl[trl]' "
        "(installs trl==1.16.0, the version this integration is tested with)"
    )
import trl  # light: TRL's package is lazy; GRPOTrainer (transformers' Trainer) loads on first use

from sarl.logprobs import answer_logprobs
from sarl.prompts import encode, render_null_prompt, render_prompt
from sarl.rewards import RewardInputs, get_reward, perplexity
from sarl.scoring import DEFAULT_MAX_ANSWER_TOKENS

__all__ = ["POLICY_NEEDS", "REUSE_VERIFIED_TRL", "SARGRPOTrainer", "SarlReward", "sarl_reward_funcs"]  # noqa: F822

# TRL versions whose GRPOTrainer internals (the order of the no-grad log-prob passes in
# `_generate_and_score_completions`) were checked for log-prob reuse. Other versions still work; they
# just recompute ppl(a|q).
REUSE_VERIFIED_TRL = ("1.16.",)
# What a reward may need from the policy (see sarl.rewards.registry.NEEDS).
POLICY_NEEDS = frozenset({"logp_qa", "logp_a", "self_certainty"})
# What a group reward may read; all of it is gathered across processes.
_GROUP_READS = frozenset({"golds", "correct", "lengths", "groups", "max_response_length"})
# Keyword arguments TRL adds to the dataset columns.
_TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


def _trl_reuse_verified() -> bool:
    return any(trl.__version__.startswith(v) for v in REUSE_VERIFIED_TRL)


# --------------------------------------------------------------------------------------- helpers
def _completion_text(completion: Any) -> str:
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


def _prompt_key(prompt: Any) -> str:
    """A short, order-sensitive fingerprint of a prompt (to check that a group shares one prompt)."""
    blob = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


@contextlib.contextmanager
def _eval_mode(model):
    """Eval mode (no dropout) for the duration; every module's own training flag is restored after."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _split_prompt(prompt: Any, index: int) -> tuple[Any, list[dict]]:
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


def _gather_per_process(obj: Any, trainer=None) -> tuple[list[Any], int]:
    """Every process's ``obj`` in rank order, and this process's rank (no communication with one process)."""
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = trainer.accelerator.state if trainer is not None else PartialState()
    if state.num_processes == 1:
        return [obj], 0
    return gather_object([obj]), state.process_index


# --------------------------------------------------------------------------------------- the reward
class SarlReward:
    """A sarl reward (any name in :data:`sarl.rewards.REWARDS`, aliases included) as a TRL reward function.

    Called by TRL as ``reward(prompts=..., completions=..., completion_ids=..., **columns)``; returns one
    float per completion. See the module docstring for the formulas and definitions.

    Args:
        name: the reward (``"sar"``, ``"entropy"``, ``"self_certainty"``, ``"correctness"``,
            ``"o1_pruner"``, ``"efficient_reasoner"``, ``"kimi_length"``, ``"cosine_length"``,
            ``"overlong"``, or a reference alias such as ``"ppl_qa"``).
        options: the reward's options, as a dict or its options object (``SARConfig(use_log=True)``).
        label: the name TRL logs it under (``rewards/<label>/mean``); default: the reward's name.
        gold_column, data_source_column, metadata_column: dataset columns with the gold answer, the data
            source (selects the grader; absent column = math grader) and, optionally, the problem's
            ``metadata`` (a dict or a JSON string; reasoning-gym's ``propositional_logic`` needs it).
        answer_tokens: ``"text"`` (re-encode the completion text, = ``sarl score``) or ``"sampled"``
            (the sampled token ids, stop token included, = ``sarl train``). Policy rewards only.
        temperature: logits are divided by it; ``None`` = the trainer's sampling temperature.
        num_generations: completions per prompt, for group rewards used without binding. A bound reward
            reads the trainer's (``num_generations_eval`` during evaluation).
        max_response_length: ``L_max`` for ``cosine_length``/``overlong``; default: the trainer's
            ``max_completion_length``.
        max_answer_tokens, max_batch_tokens: as in :class:`sarl.scoring.SARScorer`.
        reuse_logprobs: under :class:`SARGRPOTrainer`, take ppl(a|q) from TRL's old log-probs when it
            computed them (module docstring).
        keep_history: how many scored batches to keep in :attr:`history` (``last_batch`` is always kept).
        on_scored: called as ``on_scored(record, model)`` right after a policy reward scored a batch,
            before TRL's optimizer step changes the weights (``model`` is the unwrapped policy).

    Attributes:
        last_batch: a dict describing the last batch scored: ``step`` (``trainer_state.global_step``),
            ``mode``, ``prompts``, ``systems``, ``questions``, ``completions`` (text), ``completion_ids``,
            ``values`` (the returned rewards), and for policy rewards ``answer_ids`` (the scored
            tokens), ``status``, ``ppl_qa``, ``ppl_a``, ``reuse_enabled``, ``reused_rows``, ``seconds_qa``
            (the ppl(a|q) part, reuse included), ``seconds_null``;
            ``seconds`` for the whole call.
        history: the last ``keep_history`` such dicts.
    """

    def __init__(
        self,
        name: str = "sar",
        options: Any = None,
        *,
        label: str | None = None,
        gold_column: str = "answer",
        data_source_column: str | None = "data_source",
        metadata_column: str | None = None,
        answer_tokens: str = "text",
        temperature: float | None = 1.0,
        num_generations: int | None = None,
        max_response_length: int | None = None,
        max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS,
        max_batch_tokens: int = 2048,
        reuse_logprobs: bool = True,
        keep_history: int = 0,
        on_scored: Callable[[dict[str, Any], Any], None] | None = None,
    ):
        self.spec = get_reward(name)
        if options is not None and self.spec.options is not None and isinstance(options, self.spec.options):
            self.options = options
        else:
            self.options = self.spec.make_options(options)
        if answer_tokens not in ("text", "sampled"):
            raise ValueError(f"answer_tokens must be 'text' or 'sampled', got {answer_tokens!r}")
        if num_generations is not None and num_generations < 1:
            raise ValueError(f"num_generations must be >= 1, got {num_generations}")
        self.needs = self.spec.needs_for(self.options)
        if self.spec.group and not self.needs <= _GROUP_READS:
            raise NotImplementedError(
                f"group reward {self.spec.name!r} reads {sorted(self.needs - _GROUP_READS)}, which the TRL "
                f"adapter does not gather across processes (supported: {sorted(_GROUP_READS)})"
            )
        self.__name__ = label or self.spec.name  # TRL names the reward by __name__
        self.gold_column = gold_column
        self.data_source_column = data_source_column
        self.metadata_column = metadata_column
        self.answer_tokens = answer_tokens
        self.temperature = temperature
        self.num_generations = num_generations
        self.max_response_length = max_response_length
        self.max_answer_tokens = max_answer_tokens
        self.max_batch_tokens = max_batch_tokens
        self.reuse_logprobs = reuse_logprobs
        self.keep_history = keep_history
        self.on_scored = on_scored
        self.last_batch: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self._trainer_ref: weakref.ReferenceType | None = None
        self._ctx_cache: dict[str, tuple[list[int], list[int], Any, Any]] = {}

    def __repr__(self) -> str:
        return f"SarlReward({self.spec.name!r}, label={self.__name__!r}, bound={self.trainer is not None})"

    # ------------------------------------------------------------------------------- binding
    @property
    def needs_policy(self) -> bool:
        """Whether this reward runs the policy (SAR, entropy, self-certainty)."""
        return bool(self.needs & POLICY_NEEDS)

    @property
    def trainer(self):
        return self._trainer_ref() if self._trainer_ref is not None else None

    def bind(self, trainer) -> SarlReward:
        """Attach the trainer whose policy scores completions (and whose ``num_generations``,
        ``max_completion_length`` and temperature apply). Returns ``self``. The trainer is held weakly."""
        for attr in ("accelerator", "model", "processing_class", "args"):
            if not hasattr(trainer, attr):
                raise TypeError(f"bind() expects a trl.GRPOTrainer; {type(trainer).__name__} has no {attr!r}")
        if self.needs_policy:
            if getattr(trainer, "is_fsdp_enabled", False):
                raise NotImplementedError(
                    f"reward {self.__name__!r} runs the policy on each process's own completions, which needs a "
                    "full model replica per process (DDP); FSDP shards the parameters. Use DDP."
                )
            ds = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
            if getattr(trainer, "is_deepspeed_enabled", False) and ds is not None and ds.zero_stage == 3:
                raise NotImplementedError(
                    f"reward {self.__name__!r} needs a full model replica per process; DeepSpeed ZeRO-3 shards the "
                    "parameters. Use ZeRO stage 1 or 2, or plain DDP."
                )
            if getattr(trainer, "tools", None) or getattr(trainer, "environment_factories", None):
                raise NotImplementedError(
                    f"reward {self.__name__!r}: tool-calling / environment rollouts interleave tool output with the "
                    "completion, which SAR's answer perplexity does not define; use it without tools"
                )
        self._trainer_ref = weakref.ref(trainer)
        self._ctx_cache.clear()
        return self

    def _require_trainer(self):
        trainer = self.trainer
        if trainer is None:
            raise RuntimeError(
                f"reward {self.__name__!r} scores completions with the policy being trained, and TRL does not pass "
                "the model to reward functions. Bind it once the trainer exists:\n"
                f"    trainer = GRPOTrainer(..., reward_funcs=[..., reward]); reward.bind(trainer)\n"
                "or build the trainer with sarl.integrations.trl.SARGRPOTrainer, which binds its sarl rewards."
            )
        return trainer

    # ------------------------------------------------------------------------------- the call
    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any],
                 completion_ids: Sequence[Sequence[int]] | None = None, **kwargs) -> list[float]:
        t0 = time.perf_counter()
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{len(prompts)} prompts but {n} completions")
        texts = [_completion_text(c) for c in completions]
        needs_ids = "lengths" in self.needs or (self.needs_policy and self.answer_tokens == "sampled")
        if completion_ids is None and needs_ids:
            raise ValueError(f"reward {self.__name__!r} needs completion_ids (TRL passes them to every reward)")
        if completion_ids is not None and len(completion_ids) != n:
            raise ValueError(f"{len(completion_ids)} completion_ids but {n} completions")
        state = kwargs.get("trainer_state")
        trainer = self.trainer
        record: dict[str, Any] = {
            "step": getattr(state, "global_step", None),
            "mode": None if trainer is None else ("train" if trainer.model.training else "eval"),
            "prompts": list(prompts),
            "completions": texts,
            "completion_ids": None if completion_ids is None else [list(c) for c in completion_ids],
        }
        inputs = RewardInputs(responses=texts)
        if self.needs & {"golds", "correct"}:
            golds = self._column(kwargs, self.gold_column, n, required=True)
            sources = self._column(kwargs, self.data_source_column, n)
            metas = self._column(kwargs, self.metadata_column, n)
            inputs.golds = [None if g is None else str(g) for g in golds]
            inputs.data_sources = [None if s is None else str(s) for s in sources]
            inputs.correct = self._grade(texts, inputs.golds, inputs.data_sources, metas)
        if "lengths" in self.needs:
            inputs.lengths = torch.tensor([len(c) for c in completion_ids], dtype=torch.float32)
        if "max_response_length" in self.needs:
            inputs.max_response_length = self.max_response_length or (
                trainer.args.max_completion_length if trainer is not None else None)
        if self.needs_policy:
            self._policy_inputs(inputs, prompts, texts, completion_ids, record)
        if self.spec.group:
            values = self._group_values(inputs, prompts)
        else:
            values = self.spec(inputs, self.options)
        out = [float(v) for v in values.to(torch.float64).tolist()]
        record["values"] = out
        record["seconds"] = time.perf_counter() - t0
        self._log(kwargs, record)
        self.last_batch = record
        if self.keep_history > 0:
            self.history.append(record)
            del self.history[: -self.keep_history]
        return out

    # ------------------------------------------------------------------------------- columns, grading
    def _column(self, kwargs: Mapping[str, Any], name: str | None, n: int, required: bool = False) -> list[Any]:
        if name is None:
            return [None] * n
        if name not in kwargs:
            if required:
                cols = sorted(k for k in kwargs if k not in _TRL_KWARGS)
                raise ValueError(
                    f"reward {self.__name__!r} grades completions against the gold answer in dataset column "
                    f"{name!r}, which the batch does not have (its columns: {cols}); add it to the dataset or "
                    "pass gold_column=<your column>"
                )
            return [None] * n
        col = list(kwargs[name])
        if len(col) != n:
            raise ValueError(f"column {name!r} has {len(col)} values for {n} completions")
        return col

    @staticmethod
    def _grade(texts: Sequence[str], golds: Sequence[str | None], sources: Sequence[str | None],
               metas: Sequence[Any]) -> torch.Tensor:
        """1.0 where :func:`sarl.grading.grade` accepts the completion, else 0.0 (also for a missing gold)."""
        from sarl.grading import grade

        vals = []
        for text, gold, source, meta in zip(texts, golds, sources, metas):
            if gold is None:
                vals.append(0.0)
                continue
            if isinstance(meta, str):
                meta = json.loads(meta) if meta else None
            vals.append(float(grade(text, gold, source, metadata=meta).correct))
        return torch.tensor(vals, dtype=torch.float32)

    # ------------------------------------------------------------------------------- groups
    def _group_size(self) -> int:
        trainer = self.trainer
        if trainer is not None:
            return trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        if self.num_generations is None:
            raise RuntimeError(
                f"group reward {self.__name__!r} needs to know which completions share a prompt: pass "
                "num_generations=<GRPOConfig.num_generations>, or bind it to the trainer (reward.bind(trainer), "
                "or use SARGRPOTrainer, which binds it)"
            )
        return self.num_generations

    def _group_values(self, inputs: RewardInputs, prompts: Sequence[Any]) -> torch.Tensor:
        """Gather (length, correct, prompt) from every process, compute on whole groups of G consecutive
        completions (TRL's grouping of the global batch), return this process's part."""
        g = self._group_size()
        n = len(inputs)
        lengths = inputs.lengths.tolist() if inputs.lengths is not None else [0.0] * n
        correct = inputs.correct.tolist() if inputs.correct is not None else [None] * n
        local = [(lengths[i], correct[i], _prompt_key(prompts[i])) for i in range(n)]
        parts, rank = _gather_per_process(local, self.trainer)
        rows = [r for part in parts for r in part]
        offset = sum(len(part) for part in parts[:rank])
        total = len(rows)
        if total % g:
            raise ValueError(f"group reward {self.__name__!r}: {total} completions in the batch (all processes) "
                             f"is not a multiple of num_generations={g}")
        for start in range(0, total, g):
            if len({rows[j][2] for j in range(start, start + g)}) != 1:
                raise ValueError(
                    f"group reward {self.__name__!r}: completions {start}..{start + g - 1} of the batch do not share "
                    f"one prompt; num_generations={g} does not match how the batch was generated"
                )
        glob = RewardInputs(
            responses=[""] * total,
            lengths=torch.tensor([r[0] for r in rows], dtype=torch.float32) if inputs.lengths is not None else None,
            correct=torch.tensor([r[1] for r in rows], dtype=torch.float32) if inputs.correct is not None else None,
            group_ids=torch.arange(total) // g,
            max_response_length=inputs.max_response_length,
        )
        return self.spec(glob, self.options)[offset: offset + n]

    # ------------------------------------------------------------------------------- the policy passes
    def _contexts(self, tok, prompts: Sequence[Any], trainer) -> tuple[list[list[int]], list[list[int]], list, list]:
        """Token ids of prompt(q) and prompt(null) per row, plus each row's system and question."""
        template = getattr(trainer, "chat_template", None)
        kwargs = dict(getattr(trainer, "chat_template_kwargs", None) or {})
        plain = template is None and not kwargs  # render exactly as sarl.prompts does

        def render(messages: list[dict]) -> str:
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                           chat_template=template, **kwargs)

        ctx, null, systems, questions = [], [], [], []
        for i, prompt in enumerate(prompts):
            key = _prompt_key(prompt)
            if key not in self._ctx_cache:
                system, body = _split_prompt(prompt, i)
                question = body[-1].get("content")
                if plain and len(body) == 1 and isinstance(question, str):
                    c = render_prompt(tok, question, system)
                else:
                    c = render(([{"role": "system", "content": system}] if system is not None else []) + body)
                if plain:
                    z = render_null_prompt(tok, system)
                else:
                    z = render(([{"role": "system", "content": system}] if system is not None else [])
                               + [{"role": "user", "content": ""}])
                if len(self._ctx_cache) > 4096:
                    self._ctx_cache.clear()
                self._ctx_cache[key] = (encode(tok, c), encode(tok, z), system, question)
            c_ids, z_ids, system, question = self._ctx_cache[key]
            ctx.append(c_ids)
            null.append(z_ids)
            systems.append(system)
            questions.append(question)
        return ctx, null, systems, questions

    def _answers(self, tok, texts, completion_ids, ctx, null, model) -> tuple[list[list[int]], list[str]]:
        """The scored answer tokens and their status, with :class:`sarl.scoring.SARScorer`'s rules."""
        max_pos = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        ans, status = [], []
        for i, text in enumerate(texts):
            if self.answer_tokens == "text":
                ids, st = ([], "empty") if not text or not text.strip() else (encode(tok, text), "ok")
            else:
                ids = [int(t) for t in completion_ids[i]]
                st = "ok" if ids else "empty"
            if st == "ok":
                limit = self.max_answer_tokens
                if max_pos is not None:
                    limit = min(limit, max_pos - max(len(ctx[i]), len(null[i])))
                if len(ids) > limit:
                    ids, st = ids[: max(limit, 0)], "truncated"
            ans.append(ids)
            status.append(st)
        return ans, status

    def _reusable_rows(self, trainer, ctx, ans, temperature) -> dict[int, torch.Tensor]:
        """Rows whose ppl(a|q) log-probs can be read from TRL's old log-probs of this batch."""
        captured = getattr(trainer, "_sarl_old_logps", None)
        if not self.reuse_logprobs or captured is None or "self_certainty" in self.needs:
            return {}
        if temperature != trainer.temperature:
            return {}
        ids, attn, keep, logps = captured
        if ids.shape[0] != len(ans):
            return {}
        ids, attn = ids.cpu(), attn.cpu()
        p = ids.shape[1] - keep
        out = {}
        for i, (c, a) in enumerate(zip(ctx, ans)):
            k = len(a)
            if k == 0 or k > keep or not bool(attn[i, p: p + k].all()):
                continue
            if ids[i, p: p + k].tolist() != a:
                continue
            if ids[i, :p][attn[i, :p].bool()].tolist() != c:
                continue
            out[i] = logps[i, :k].detach().float()
        return out

    def _policy_inputs(self, inputs: RewardInputs, prompts, texts, completion_ids, record) -> None:
        trainer = self._require_trainer()
        model = trainer.accelerator.unwrap_model(trainer.model)
        tok = getattr(trainer, "_tokenizer", None) or getattr(trainer.processing_class, "tokenizer",
                                                              trainer.processing_class)
        ctx, null, systems, questions = self._contexts(tok, prompts, trainer)
        ans, status = self._answers(tok, texts, completion_ids, ctx, null, model)
        temperature = trainer.temperature if self.temperature is None else self.temperature
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        kw = {"pad_token_id": pad, "temperature": temperature, "max_batch_tokens": self.max_batch_tokens}
        stats = ("self_certainty",) if "self_certainty" in self.needs else ()
        n = len(ans)
        t_max = max((len(a) for a in ans), default=0)
        mask = torch.zeros((n, t_max), dtype=torch.float32)
        for i, a in enumerate(ans):
            mask[i, : len(a)] = 1.0
        with _eval_mode(model):
            t0 = time.perf_counter()
            reused = self._reusable_rows(trainer, ctx, ans, temperature)
            logp_qa = torch.zeros((n, t_max), dtype=torch.float32)
            for i, lp in reused.items():
                logp_qa[i, : lp.shape[0]] = lp.cpu()
            rest = [i for i in range(n) if i not in reused]
            token_sc = None
            if rest:
                qa = answer_logprobs(model, [ctx[i] for i in rest], [ans[i] for i in rest], stats=stats, **kw)
                sub_logp = qa.logp.cpu()
                sub_sc = qa.stats["self_certainty"].cpu() if stats else None
                if stats:
                    token_sc = torch.zeros((n, t_max), dtype=torch.float32)
                for j, i in enumerate(rest):
                    k = len(ans[i])
                    logp_qa[i, :k] = sub_logp[j, :k]
                    if sub_sc is not None:
                        token_sc[i, :k] = sub_sc[j, :k]
            t1 = time.perf_counter()
            logp_a = None
            if "logp_a" in self.needs:
                logp_a = answer_logprobs(model, null, ans, **kw).logp.cpu()
            t2 = time.perf_counter()
            inputs.logp_qa = logp_qa
            inputs.logp_a = logp_a
            inputs.response_mask = mask
            inputs.token_self_certainty = token_sc
            record.update(
                systems=systems, questions=questions, answer_ids=ans, status=status,
                ppl_qa=perplexity(logp_qa, mask).tolist(),
                ppl_a=None if logp_a is None else perplexity(logp_a, mask).tolist(),
                reuse_enabled=self.reuse_logprobs, reused_rows=len(reused), seconds_qa=t1 - t0, seconds_null=t2 - t1,
            )
            if self.on_scored is not None:
                self.on_scored(record, model)

    # ------------------------------------------------------------------------------- logging
    def _log(self, kwargs: Mapping[str, Any], record: dict[str, Any]) -> None:
        """Per-batch metrics through TRL's ``log_metric`` (averaged over logging steps and processes)
        and per-completion ``ppl_qa``/``ppl_a`` columns through ``log_extra`` (the completions table)."""
        log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
        if not self.needs_policy:
            return
        ok = [i for i, s in enumerate(record["status"]) if s != "empty"]
        name = self.__name__
        if log_metric is not None:
            if ok:
                log_metric(f"{name}/ppl_qa", sum(record["ppl_qa"][i] for i in ok) / len(ok))
                if record["ppl_a"] is not None:
                    log_metric(f"{name}/ppl_a", sum(record["ppl_a"][i] for i in ok) / len(ok))
            log_metric(f"{name}/reused_fraction", record["reused_rows"] / max(len(record["status"]), 1))
            log_metric(f"{name}/seconds", record["seconds"])
        if log_extra is not None:
            log_extra(f"{name}_ppl_qa", record["ppl_qa"])
            if record["ppl_a"] is not None:
                log_extra(f"{name}_ppl_a", record["ppl_a"])


def sarl_reward_funcs(weights: Mapping[str, float], options: Mapping[str, Any] | None = None,
                      **common: Any) -> tuple[list[SarlReward], list[float]]:
    """``(reward_funcs, reward_weights)`` for ``GRPOTrainer``/``GRPOConfig`` from ``{name: weight}``.

    TRL's total reward is ``R = sum_k w_k r_k`` (``GRPOConfig.reward_weights``), so
    ``{"correctness": 1.0, "sar": 0.2}`` gives the paper's ``R = correct + 0.2 SAR`` (constant schedule).
    ``options`` maps a name to that reward's options; ``common`` keyword arguments go to every
    :class:`SarlReward` (e.g. ``gold_column="solution"``)."""
    if not weights:
        raise ValueError("weights is empty; give at least one reward, e.g. {'correctness': 1.0, 'sar': 0.2}")
    options = dict(options or {})
    unknown = set(options) - set(weights)
    if unknown:
        raise ValueError(f"options given for rewards not in weights: {sorted(unknown)}")
    funcs = [SarlReward(name, options.get(name), **common) for name in weights]
    return funcs, [float(w) for w in weights.values()]


# --------------------------------------------------------------------------------------- the trainer
def _make_trainer_class():
    from trl import GRPOTrainer

    class SARGRPOTrainer(GRPOTrainer):
        """``trl.GRPOTrainer`` that binds its :class:`SarlReward` reward functions to itself and lets them
        reuse the old-policy log-probs TRL computes, so SAR's ``ppl(a|q)`` costs no extra forward when TRL
        runs that pass anyway (``num_iterations > 1``, ``steps_per_generation`` not dividing
        ``gradient_accumulation_steps``, vLLM importance sampling). Everything else is ``GRPOTrainer``.

        The hook: while a generation batch is scored, the first no-grad call of
        ``_get_per_token_logps_and_entropies`` on ``self.model`` is TRL's old-policy pass (TRL 1.16 runs it
        before the reference pass and before the rewards); its inputs and log-probs are kept until the batch's
        rewards are computed and then dropped. Rows are reused only on exact token equality (see
        :meth:`SarlReward._reusable_rows`)."""

        def __init__(self, *args, **kwargs):
            self._sarl_capture = False
            self._sarl_old_logps: tuple[torch.Tensor, torch.Tensor, int, torch.Tensor] | None = None
            super().__init__(*args, **kwargs)
            for func in self.reward_funcs:
                if isinstance(func, SarlReward):
                    func.bind(self)

        @property
        def sarl_rewards(self) -> list[SarlReward]:
            return [f for f in self.reward_funcs if isinstance(f, SarlReward)]

        def trl_computes_old_logprobs(self) -> bool:
            """TRL 1.16's condition for computing old per-token log-probs in ``_generate_and_score_completions``."""
            generate_every = self.args.steps_per_generation * self.num_iterations
            return (self.args.gradient_accumulation_steps % generate_every != 0
                    or bool(self.use_vllm and self.vllm_importance_sampling_correction))

        def _generate_and_score_completions(self, inputs):
            self._sarl_old_logps = None
            self._sarl_capture = (
                _trl_reuse_verified()
                and any(f.reuse_logprobs and f.needs_policy for f in self.sarl_rewards)
                and self.trl_computes_old_logprobs()
            )
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                self._sarl_capture = False
                self._sarl_old_logps = None

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
            out = super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                             *args, **kwargs)
            if self._sarl_capture and model is self.model and not torch.is_grad_enabled():
                self._sarl_capture = False  # only the first such pass of a batch is the old policy's
                extra = {k: v for k, v in kwargs.items() if k not in ("batch_size", "compute_entropy", "compute_aux_loss")}
                # positional args after logits_to_keep: batch_size, compute_entropy, compute_aux_loss, then images
                if all(v is None for v in args[3:]) and all(v is None for v in extra.values()):  # text only
                    self._sarl_old_logps = (input_ids.detach(), attention_mask.detach(), int(logits_to_keep),
                                            out[0].detach())
            return out

    SARGRPOTrainer.__module__ = __name__
    SARGRPOTrainer.__qualname__ = "SARGRPOTrainer"
    return SARGRPOTrainer


def __getattr__(name: str):
    """``SARGRPOTrainer`` is built on first access, so importing the reward functions does not load
    transformers' ``Trainer`` (about 3 s)."""
    if name == "SARGRPOTrainer":
        cls = _make_trainer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
