"""A sarl reward as a TRL reward function (:class:`SarlReward`), and :func:`sarl_reward_funcs`."""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from sarl.integrations.trl.glue import (
    TRL_KWARGS,
    completion_text,
    eval_mode,
    gather_per_process,
    prompt_key,
    split_prompt,
)
from sarl.integrations.trl.reuse import reusable_rows
from sarl.logprobs import MAX_BATCH_TOKENS, answer_mask
from sarl.prompts import encode, render_null_prompt, render_prompt
from sarl.reward_inputs import reward_inputs
from sarl.rewards import RewardInputs, get_reward, perplexity
from sarl.rewards.compose import Schedule
from sarl.rewards.registry import POLICY_NEEDS
from sarl.rollout.batch import RolloutBatch
from sarl.scoring import DEFAULT_MAX_ANSWER_TOKENS, context_window, encode_pairs

# What this adapter gathers across processes for group rewards (length, correctness, prompt).
GATHERED_NEEDS = frozenset({"correct", "lengths", "groups", "max_response_length"})


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
        schedule: the weight schedule (:class:`sarl.rewards.Schedule`, ``rewards.schedule`` of a recipe).
            A scheduled reward (every reward but correctness) returns ``alpha(x) * r``, with the progress
            ``x`` of ``sarl train`` (:func:`schedule_progress` of ``trainer_state``), so that
            ``GRPOConfig.reward_weights`` times the values is ``sarl train``'s ``w_k alpha(x) r_k``.
            ``None`` or ``type: constant``: the values are returned unscaled.

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
        max_batch_tokens: int = MAX_BATCH_TOKENS,
        reuse_logprobs: bool = True,
        keep_history: int = 0,
        on_scored: Callable[[dict[str, Any], Any], None] | None = None,
        schedule: Schedule | None = None,
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
        if self.spec.group and not self.needs <= GATHERED_NEEDS:
            raise NotImplementedError(
                f"group reward {self.spec.name!r} reads {sorted(self.needs - GATHERED_NEEDS)}, which the TRL "
                f"adapter does not gather across processes (supported: {sorted(GATHERED_NEEDS)})"
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
        self.schedule = schedule if schedule is not None and self.spec.scheduled and schedule.type != "constant" else None
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
        if self.needs_policy and (getattr(trainer, "tools", None) or getattr(trainer, "environment_factories", None)):
            raise NotImplementedError(
                f"reward {self.__name__!r}: tool-calling / environment rollouts interleave tool output with the "
                "completion, which SAR's answer perplexity does not define; use it without tools"
            )
        self._trainer_ref = weakref.ref(trainer)
        self._ctx_cache.clear()
        return self

    @staticmethod
    def sharded(trainer) -> bool:
        """Whether the trainer shards the policy's parameters (FSDP, DeepSpeed ZeRO-3): every forward is then
        a collective, so the policy passes run through the wrapped model in lockstep across processes."""
        if getattr(trainer, "is_fsdp_enabled", False):
            return True
        ds = getattr(trainer.accelerator.state, "deepspeed_plugin", None)
        return bool(getattr(trainer, "is_deepspeed_enabled", False) and ds is not None and ds.zero_stage == 3)

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
        texts = [completion_text(c) for c in completions]
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
        fields: dict[str, Any] = {"responses": texts}
        if "correct" in self.needs:
            fields["correct"] = self._correct(kwargs, texts)
        if "lengths" in self.needs:
            fields["lengths"] = torch.tensor([len(c) for c in completion_ids], dtype=torch.float32)
        if "max_response_length" in self.needs:
            fields["max_response_length"] = self.max_response_length or (
                trainer.args.max_completion_length if trainer is not None else None)
        if self.needs_policy:
            fields.update(self._policy_inputs(prompts, texts, completion_ids, record))
        inputs = RewardInputs(**fields)
        if self.spec.group:
            values = self._group_values(inputs, prompts)
        else:
            values = self.spec(inputs, self.options)
        out = [float(v) for v in values.to(torch.float64).tolist()]
        if self.schedule is not None:
            alpha = self.schedule.alpha(self._progress(state))
            record["alpha"] = alpha
            out = [alpha * v for v in out]
        record["values"] = out
        record["seconds"] = time.perf_counter() - t0
        self._log(kwargs, record)
        self.last_batch = record
        if self.keep_history > 0:
            self.history.append(record)
            del self.history[: -self.keep_history]
        return out

    def _progress(self, state) -> float:
        """``sarl train``'s progress ``x = s / S`` of the step whose batch is being scored."""
        trainer = self.trainer
        if state is None or not getattr(state, "max_steps", 0):
            raise RuntimeError(f"reward {self.__name__!r} has a weight schedule, which needs trainer_state "
                               "(TRL passes it to reward functions during training)")
        per_batch = 1
        if trainer is not None:
            a = trainer.args
            per_batch = max(1, a.steps_per_generation * a.num_iterations // a.gradient_accumulation_steps)
        return schedule_progress(state.global_step, state.max_steps, per_batch)

    # ------------------------------------------------------------------------------- columns, grading
    def _column(self, kwargs: Mapping[str, Any], name: str | None, n: int, required: bool = False) -> list[Any]:
        if name is None:
            return [None] * n
        if name not in kwargs:
            if required:
                cols = sorted(k for k in kwargs if k not in TRL_KWARGS)
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

    def _correct(self, kwargs: Mapping[str, Any], texts: Sequence[str]) -> torch.Tensor:
        """1.0 where :func:`sarl.grading.grade` accepts the completion against the gold column (with the
        data source's grader and the problem's metadata), else 0.0 (also for a missing gold)."""
        from sarl.grading import grade_all

        n = len(texts)
        golds = [None if g is None else str(g) for g in self._column(kwargs, self.gold_column, n, required=True)]
        sources = [None if s is None else str(s) for s in self._column(kwargs, self.data_source_column, n)]
        metadata = [json.loads(m) if isinstance(m, str) and m else (None if isinstance(m, str) else m)
                    for m in self._column(kwargs, self.metadata_column, n)]
        return grade_all(texts, golds, sources, metadata=metadata)

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
        local = [(lengths[i], correct[i], prompt_key(prompts[i])) for i in range(n)]
        parts, rank = gather_per_process(local, self.trainer)
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
    def encode_batch(self, tok, prompts: Sequence[Any], texts: Sequence[str],
               completion_ids: Sequence[Sequence[int]] | None = None, *, trainer=None,
               max_positions: int | None = None) -> dict[str, list]:
        """The token ids this reward scores, by :func:`sarl.scoring.encode_pairs` (``sarl score``'s rules):
        ``contexts`` (prompt(q)), ``nulls`` (prompt(null)), ``answers`` (the texts re-encoded or the
        sampled ``completion_ids``, as ``answer_tokens`` says) and their ``status``; with each prompt's
        ``systems`` and ``questions``. ``trainer``: its chat template applies; ``max_positions``: the
        policy's context window."""
        template = getattr(trainer, "chat_template", None)
        kwargs = dict(getattr(trainer, "chat_template_kwargs", None) or {})
        plain = template is None and not kwargs  # render exactly as sarl.prompts does

        def render(system: Any, body: list[dict]) -> str:
            head = [{"role": "system", "content": system}] if system is not None else []
            return tok.apply_chat_template(head + body, tokenize=False, add_generation_prompt=True,
                                           chat_template=template, **kwargs)

        ctx, null, systems, questions = [], [], [], []
        for i, prompt in enumerate(prompts):
            key = prompt_key(prompt)
            if key not in self._ctx_cache:
                system, body = split_prompt(prompt, i)
                question = body[-1].get("content")
                if plain and len(body) == 1 and isinstance(question, str):
                    c = render_prompt(tok, question, system)
                else:
                    c = render(system, body)
                z = render_null_prompt(tok, system) if plain else render(system, [{"role": "user", "content": ""}])
                if len(self._ctx_cache) > 4096:
                    self._ctx_cache.clear()
                self._ctx_cache[key] = (encode(tok, c), encode(tok, z), system, question)
            for out, value in zip((ctx, null, systems, questions), self._ctx_cache[key]):
                out.append(value)
        answers = texts if self.answer_tokens == "text" else completion_ids
        ctx, ans, status = encode_pairs(tok, ctx, answers, null_contexts=null, max_answer_tokens=self.max_answer_tokens,
                                        max_positions=max_positions)
        return {"contexts": ctx, "nulls": null, "answers": ans, "status": status, "systems": systems,
                "questions": questions}

    def _policy_inputs(self, prompts, texts, completion_ids, record) -> dict[str, Any]:
        """The policy's fields of :class:`RewardInputs` (log-probs, mask, token ids); ``record`` gets
        the batch's description."""
        trainer = self._require_trainer()
        model = trainer.accelerator.unwrap_model(trainer.model)
        sharded = self.sharded(trainer)
        # sharded: the wrapped model gathers its parameters in each forward, so every process runs as many forwards
        runner = trainer.model if sharded else model
        tok = getattr(trainer, "_tokenizer", None) or getattr(trainer.processing_class, "tokenizer",
                                                              trainer.processing_class)
        pairs = self.encode_batch(tok, prompts, texts, completion_ids, trainer=trainer, max_positions=context_window(model))
        ctx, ans = pairs["contexts"], pairs["answers"]
        temperature = trainer.temperature if self.temperature is None else self.temperature
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        mask = answer_mask(ans)
        core = {"pad_token_id": pad, "temperature": temperature, "max_batch_tokens": self.max_batch_tokens,
                "lockstep": sharded}
        with eval_mode(runner):
            t0 = time.perf_counter()
            logp_qa, token_sc, reused = self._logp_qa(trainer, runner, ctx, ans, texts, core)
            t1 = time.perf_counter()
            batch = RolloutBatch(contexts=ctx, responses=ans, texts=list(texts), group_ids=torch.arange(len(ans)))
            full = reward_inputs(runner, batch, self.needs, null_contexts=pairs["nulls"], logp_qa=logp_qa,
                                 response_mask=mask, token_self_certainty=token_sc, **core)
            logp_a = None if full.logp_a is None else full.logp_a.cpu()
            t2 = time.perf_counter()
            record.update(
                systems=pairs["systems"], questions=pairs["questions"], answer_ids=ans, status=pairs["status"],
                ppl_qa=perplexity(logp_qa, mask).tolist(),
                ppl_a=None if logp_a is None else perplexity(logp_a, mask).tolist(),
                reuse_enabled=self.reuse_logprobs, reused_rows=len(reused), seconds_qa=t1 - t0, seconds_null=t2 - t1,
            )
            if self.on_scored is not None:
                self.on_scored(record, model)
        return {"logp_qa": logp_qa, "logp_a": logp_a, "response_mask": mask, "token_self_certainty": token_sc,
                "context_ids": ctx, "response_ids": ans}

    def _logp_qa(self, trainer, runner, ctx: list[list[int]], ans: list[list[int]], texts: Sequence[str],
                 core: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None, dict[int, torch.Tensor]]:
        """ppl(a|q)'s token log-probs ``[N, T]`` (read from TRL's old log-probs where they cover a row,
        else one pass), the token self-certainty where the reward needs it, and the reused rows."""
        n, t_max = len(ans), max((len(a) for a in ans), default=0)
        reuse = self.reuse_logprobs and "self_certainty" not in self.needs  # self-certainty needs the full softmax
        reused = reusable_rows(trainer, ctx, ans, core["temperature"], reuse)
        logp_qa = torch.zeros((n, t_max), dtype=torch.float32)
        for i, lp in reused.items():
            logp_qa[i, : lp.shape[0]] = lp.cpu()
        rest = [i for i in range(n) if i not in reused]
        token_sc = None
        if rest or core["lockstep"]:  # ppl(a|q) of the rows TRL's log-probs do not cover (sharded: every process)
            sub = RolloutBatch(contexts=[ctx[i] for i in rest], responses=[ans[i] for i in rest],
                               texts=[texts[i] for i in rest], group_ids=torch.arange(len(rest)))
            got = reward_inputs(runner, sub, self.needs & {"logp_qa", "self_certainty"} | {"logp_qa"},
                                null_ids=None, **core)
            if got.token_self_certainty is not None:
                token_sc = torch.zeros((n, t_max), dtype=torch.float32)
            for j, i in enumerate(rest):
                k = len(ans[i])
                logp_qa[i, :k] = got.logp_qa[j, :k].cpu()
                if token_sc is not None:
                    token_sc[i, :k] = got.token_self_certainty[j, :k].cpu()
        return logp_qa, token_sc, reused

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


def schedule_progress(global_step: int, max_steps: int, per_batch: int = 1) -> float:
    """The progress ``x = s / S`` of ``sarl train`` for the generation batch TRL scores at optimizer step
    ``global_step`` (completed steps): TRL spends ``per_batch`` optimizer steps on each generation batch
    (``steps_per_generation x num_iterations / gradient_accumulation_steps``), so the batch is sarl step
    ``s = global_step // per_batch + 1`` of ``S = ceil(max_steps / per_batch)``."""
    if max_steps < 1 or per_batch < 1 or global_step < 0:
        raise ValueError(f"schedule_progress: needs max_steps >= 1, per_batch >= 1, global_step >= 0; got "
                         f"{global_step}, {max_steps}, {per_batch}")
    total = -(-max_steps // per_batch)
    return min(1.0, (global_step // per_batch + 1) / total)


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
