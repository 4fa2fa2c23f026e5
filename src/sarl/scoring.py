"""Scoring question/answer pairs with SAR: the model-forward layer over :mod:`sarl.rewards.self_aligned`,
and ``sarl score`` (file in, JSONL out, incremental and resumable).

:func:`encode_pairs` is the one place that turns (question, answer) pairs into the token ids SAR scores
(the empty-answer and truncation rules); :class:`SARScorer` and the TRL adapter
(:class:`sarl.integrations.trl.SarlReward`) both call it. :class:`ScoreSettings` is everything that
decides an output row of ``sarl score``, and, flattened, the record a resumed output is checked against."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sarl.errors import OutputExistsError
from sarl.io import (
    DataError,
    JsonlAppender,
    TokenProgress,
    count_complete_lines,
    flat_settings,
    get_key,
    guard_settings,
    read_rows,
    require_keys,
)
from sarl.logprobs import MAX_BATCH_TOKENS
from sarl.models import LoadedModel
from sarl.prompts import DEFAULT_SYSTEM_PROMPT, encode, render_null_prompt, render_prompt
from sarl.reward_inputs import reward_inputs
from sarl.rewards.registry import REWARDS
from sarl.rewards.self_aligned import SARConfig, self_aligned_reward
from sarl.rollout.batch import RolloutBatch
from sarl.settings import Settings, positive, setting

DEFAULT_MAX_ANSWER_TOKENS = 4096  # the reference's max_response_length
# Rows `sarl score` scores together and then writes (and fsyncs): what an interrupted run can lose at
# most. A fixed count, not a timer, so that the rows batched together (and so, in bf16, the values) do
# not depend on the machine's speed, and a resumed file equals an uninterrupted one. With the default
# model in fp32 on 2 CPU cores, 8 GSM8K pairs take ~6 s (32: ~22 s, minutes on a loaded machine), and
# groups of 8 cost 5% over groups of 32 (20 pairs: 14.6 vs 13.9 s).
FLUSH_ROWS = 8
# The ScoreSettings fields that name the input's columns (the rest decide how a pair is scored).
INPUT_KEYS = ("question_key", "answer_key", "gold_key")


@dataclass
class ScoreSettings(Settings):
    """Everything that decides the content of an output row of ``sarl score``; flattened
    (:meth:`record`), the record beside the output (``<output>.settings.json``) that a resumed run must
    match, so that an output never mixes models, dtypes or SAR variants."""

    model: str | None = setting(None, "The model that scores (a built-in name, a folder or a hub id).", cli=False)
    dtype: str | None = setting(None, "The dtype its weights are loaded in: what `auto` resolves to on this "
                                      "machine, so a resume elsewhere never mixes fp32 and bf16 scores.", cli=False)
    system_prompt: str | None = setting(DEFAULT_SYSTEM_PROMPT, "System prompt of both contexts (the question's and "
                                                               "the null prompt).")
    instruction: str | None = setting(None, "Text appended to each question after a space (None: none).", cli=False)
    question_key: str = setting("question", "Column with the question (dotted keys reach nested columns).")
    answer_key: str = setting("answer", "Column with the answer to score (dotted keys reach nested columns).")
    gold_key: str | None = setting(None, "Column with the gold answer; adds `correct` and `extracted_answer`.")
    max_answer_tokens: int = setting(DEFAULT_MAX_ANSWER_TOKENS, "Longer answers (or ones that overflow the "
                                                                "model's context) are cut and flagged.",
                                     check=positive)
    sar: SARConfig = setting(help="The SAR variant (the SAR flags).", factory=SARConfig)

    def record(self) -> dict[str, Any]:
        """The flat dict (``sar.<field>`` for the SAR options) that is stored beside an output and
        compared on resume."""
        return flat_settings(self)


def fit_answer(ids: list[int], max_answer_tokens: int, max_positions: int | None,
               context_len: int) -> tuple[list[int], str]:
    """The scored answer tokens and their status: ``empty`` (no tokens: SAR 0), ``truncated`` (cut to
    ``max_answer_tokens`` or to what fits the context window after ``context_len`` prompt tokens), or
    ``ok``. One rule for ``sarl score`` and the TRL adapter."""
    if not ids:
        return [], "empty"
    limit = max_answer_tokens if max_positions is None else min(max_answer_tokens, max_positions - context_len)
    if len(ids) > limit:
        return ids[: max(limit, 0)], "truncated"
    return ids, "ok"


def context_window(model) -> int | None:
    """The model's context window (``config.max_position_embeddings``), or None where it declares none."""
    return int(getattr(model.config, "max_position_embeddings", 0) or 0) or None


def answer_ids(tokenizer, answer: str | Sequence[int] | None) -> list[int]:
    """The token ids an answer is scored on: text is encoded (an empty or whitespace-only text has none:
    SAR 0), token ids (sampled ones, stop token included) are taken as they are."""
    if answer is None or isinstance(answer, str):
        return encode(tokenizer, answer) if answer and answer.strip() else []
    return [int(t) for t in answer]


def encode_pairs(tokenizer, questions: Sequence[str | Sequence[int]], answers: Sequence[str | Sequence[int]], *,
                 null_ids: Sequence[int] | None = None, null_contexts: Sequence[Sequence[int]] | None = None,
                 system_prompt: str | None = DEFAULT_SYSTEM_PROMPT, instruction: str | None = None,
                 max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS, max_positions: int | None = None,
                 ) -> tuple[list[list[int]], list[list[int]], list[str]]:
    """``(contexts, answers, status)``: the token ids of (question, answer) pairs as SAR scores them.

    A question is text, rendered with :func:`sarl.prompts.render_prompt` (``system_prompt``,
    ``instruction``), or the token ids of a context the caller rendered (taken as they are). An answer
    goes through :func:`answer_ids` (text or sampled ids), then :func:`fit_answer` after the longer of
    its context and its null prompt (``null_ids`` for every row, or ``null_contexts[i]``), so that both
    passes fit ``max_positions``. One rule for ``sarl score`` (:class:`SARScorer`) and the TRL adapter."""
    if len(questions) != len(answers):
        raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
    if null_contexts is None:
        if null_ids is None:
            raise ValueError("encode_pairs: give null_ids (one null prompt) or null_contexts (one per row)")
        null_contexts = [null_ids] * len(answers)
    elif len(null_contexts) != len(answers):
        raise ValueError(f"{len(null_contexts)} null contexts but {len(answers)} answers")
    ctx, ans, status = [], [], []
    for q, a, z in zip(questions, answers, null_contexts):
        c = encode(tokenizer, render_prompt(tokenizer, q, system_prompt, instruction)) if isinstance(q, str) else list(q)
        ids, st = fit_answer(answer_ids(tokenizer, a), max_answer_tokens, max_positions, max(len(c), len(z)))
        ctx.append(c)
        ans.append(ids)
        status.append(st)
    return ctx, ans, status


@dataclass
class SARScorer:
    """Computes ppl(a|q), ppl(a) and SAR for (question, answer) text pairs with one model.

    Answer edge cases: an empty or whitespace-only answer is not scored (``status="empty"``, SAR 0,
    both perplexities 1). An answer longer than ``max_answer_tokens`` (or than the model's context
    window minus the prompt) is cut to fit and scored on the kept prefix (``status="truncated"``).
    """

    lm: LoadedModel
    system_prompt: str | None = DEFAULT_SYSTEM_PROMPT
    instruction: str | None = None
    sar: SARConfig = field(default_factory=SARConfig)
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS
    max_batch_tokens: int = MAX_BATCH_TOKENS

    def __post_init__(self):
        tok = self.lm.tokenizer
        self._null_ids = encode(tok, render_null_prompt(tok, self.system_prompt))
        self._max_pos = context_window(self.lm.model)

    @classmethod
    def from_settings(cls, lm: LoadedModel, settings: ScoreSettings,
                      max_batch_tokens: int = MAX_BATCH_TOKENS) -> SARScorer:
        """The scorer of ``settings`` (its prompt, SAR variant and answer limit) on ``lm``."""
        return cls(lm, system_prompt=settings.system_prompt, instruction=settings.instruction, sar=settings.sar,
                   max_answer_tokens=settings.max_answer_tokens, max_batch_tokens=max_batch_tokens)

    def differs_from(self, settings: ScoreSettings) -> list[str]:
        """The scoring settings (prompt, SAR variant, answer limit) in which this scorer differs from
        ``settings``: a record must describe the scorer that made the rows."""
        keys = ("system_prompt", "instruction", "sar", "max_answer_tokens")
        return [k for k in keys if getattr(self, k) != getattr(settings, k)]

    def encode_pairs(self, questions: Sequence[str], answers: Sequence[str]):
        """``(contexts, answers, status)`` token ids of the pairs (:func:`encode_pairs`)."""
        return encode_pairs(self.lm.tokenizer, questions, answers, null_ids=self._null_ids,
                            system_prompt=self.system_prompt, instruction=self.instruction,
                            max_answer_tokens=self.max_answer_tokens, max_positions=self._max_pos)

    def score(self, questions: Sequence[str], answers: Sequence[str],
              progress: Callable[[int, int], None] | None = None,
              variants: dict[str, SARConfig] | None = None) -> list[dict[str, Any]]:
        """One dict per pair: ``ppl_qa``, ``ppl_a``, ``sar``, ``answer_tokens``, ``status`` (and
        ``sar_<name>`` for each extra SAR variant; all variants share the two forward passes)."""
        if len(questions) != len(answers):
            raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
        ctx, ans, status = self.encode_pairs(questions, answers)
        batch = RolloutBatch(contexts=ctx, responses=ans, texts=list(answers), group_ids=torch.arange(len(ans)))
        configs = [self.sar, *(variants or {}).values()]
        # ppl(a) is reported for every row, so the null-context pass always runs
        needs = set().union({"logp_a"}, *(REWARDS["sar"].needs_for(c) for c in configs))
        inputs = reward_inputs(self.lm.model, batch, needs, null_ids=self._null_ids,
                               pad_token_id=self.lm.tokenizer.pad_token_id, max_batch_tokens=self.max_batch_tokens,
                               progress=progress)
        lq, m = inputs.logp_qa.cpu(), inputs.response_mask.cpu()
        la = None if inputs.logp_a is None else inputs.logp_a.cpu()
        parts = self_aligned_reward(lq, la, m, self.sar, context_ids=ctx, response_ids=ans)
        extra = {name: self_aligned_reward(lq, la, m, cfg, context_ids=ctx, response_ids=ans)["sar"]
                 for name, cfg in (variants or {}).items()}
        rows = []
        for i in range(len(ans)):
            row = {
                "ppl_qa": float(parts["ppl_qa"][i]),
                "ppl_a": float(parts["ppl_a"][i]),
                "sar": float(parts["sar"][i]),
                "answer_tokens": len(ans[i]),
                "status": status[i],
            }
            if "copied" in parts:  # copy-robust SAR: answer tokens counted as copied from the question
                row["copied_tokens"] = int(parts["copied"][i])
            for name, vals in extra.items():
                row[f"sar_{name}"] = float(vals[i])
            for k in ("ppl_qa", "ppl_a", "sar"):
                assert math.isfinite(row[k]), f"non-finite {k} for row {i}"
            rows.append(row)
        return rows


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means over scored rows (empty answers excluded from the perplexity means) and edge-case counts."""
    n = len(rows)
    scored = [r for r in rows if r.get("status") != "empty"]
    out: dict[str, Any] = {
        "rows": n,
        "empty": sum(r.get("status") == "empty" for r in rows),
        "truncated": sum(r.get("status") == "truncated" for r in rows),
    }
    for k in ("sar", "ppl_qa", "ppl_a", "answer_tokens"):
        vals = [float(r[k]) for r in scored if k in r]
        out[f"mean_{k}"] = sum(vals) / len(vals) if vals else float("nan")
    if any("correct" in r for r in rows):
        graded = [r for r in rows if "correct" in r]
        out["accuracy"] = sum(bool(r["correct"]) for r in graded) / len(graded)
    return out


def check_resume(input_path: str | Path, output_path: str | Path,
                 settings: ScoreSettings | None = None) -> tuple[list[dict[str, Any]], int]:
    """Validate the input and an existing output before any model work; returns (input rows, rows
    already scored). The input's columns are ``settings``' keys (default: ``question``, ``answer``). The
    first rows of an existing output must hold the input's questions (read with the same, possibly
    dotted, key), and, with ``settings``, the output's record of the settings that made it
    (``<output>.settings.json``, :meth:`ScoreSettings.record`) must equal them: a resumed output never
    mixes SAR variants or models. The record is written when the output holds no rows yet."""
    keys = settings if settings is not None else ScoreSettings()
    src = str(input_path)
    rows = read_rows(input_path)
    require_keys(rows, [keys.question_key, keys.answer_key] + ([keys.gold_key] if keys.gold_key else []), src)
    for i, row in enumerate(rows, 1):
        for k in (keys.question_key, keys.answer_key):
            v = get_key(row, k)
            if v is not None and not isinstance(v, str):
                raise DataError(f"{src}: row {i} column {k!r} must be text, got {type(v).__name__}")
    out = Path(output_path)
    done = count_complete_lines(out)
    if done > len(rows):
        raise DataError(f"{out} already holds {done} rows but {src} has only {len(rows)}; use another -o")
    if done:
        prior = read_rows(out)
        for i in range(done):
            if not _same_key(prior[i], rows[i], keys.question_key):
                raise DataError(
                    f"{out}: row {i + 1} was scored from a different input than {src}; "
                    "use another -o (nothing was overwritten)"
                )
    if settings is not None:
        record = out.with_name(out.name + ".settings.json")
        way_out = "write to another -o, or pass --overwrite to replace it"
        if done and not record.exists():
            raise OutputExistsError(f"{out} holds rows with no record of the settings that made them; {way_out}")
        guard_settings(record, settings.record(), out, way_out, has_results=done > 0)
    return rows, done


def _same_key(scored: dict[str, Any], row: dict[str, Any], key: str) -> bool:
    """Whether an output row holds the input row's value of ``key`` (dotted keys reach nested columns,
    which the output keeps nested)."""
    try:
        return get_key(scored, key) == get_key(row, key)
    except KeyError:
        return False


def score_file(
    scorer: SARScorer,
    input_path: str | Path,
    output_path: str | Path,
    *,
    settings: ScoreSettings | None = None,
    flush_rows: int = FLUSH_ROWS,
    on_progress: Callable[[int, int, int], None] | None = None,
    checked: tuple[list[dict[str, Any]], int] | None = None,
) -> dict[str, Any]:
    """Score every row of ``input_path`` and append it to ``output_path`` (JSONL) with ``ppl_qa``,
    ``ppl_a``, ``sar``, ``answer_tokens``, ``status`` and, when ``settings.gold_key`` is given,
    ``correct`` and ``extracted_answer``.

    ``settings`` names the input's columns and is recorded beside the output; the scorer must be the
    one it describes (:meth:`SARScorer.from_settings`). None: the default columns and no record.
    Resumable: rows already in the output are skipped (a torn last line is dropped first), after
    :func:`check_resume` (the same input; with ``settings``, the same settings); ``checked`` is that
    function's result when the caller already ran it (so the files are not read twice).
    ``flush_rows`` rows are scored together, then appended and fsynced, so an interrupted run keeps every
    row scored before the last ``flush_rows``; a rerun scores the same groups of rows as an uninterrupted
    run would (with the same ``flush_rows``).
    ``on_progress(rows_done, rows_total, answer_tokens_done)`` is called as work proceeds.
    Returns :func:`summarize` over the whole output plus ``tokens_per_s`` of this run.
    """
    from sarl.grading import grade

    if flush_rows < 1:
        raise ValueError(f"flush_rows must be >= 1, got {flush_rows}")
    if settings is not None and scorer.differs_from(settings):
        raise ValueError(f"score_file: the scorer's {', '.join(scorer.differs_from(settings))} differ from the "
                         "settings recorded for the output; build it with SARScorer.from_settings")
    keys = settings if settings is not None else ScoreSettings()
    rows, done = checked if checked is not None else check_resume(input_path, output_path, settings)
    out = Path(output_path)
    t0 = time.perf_counter()
    report = TokenProgress(on_progress, len(rows), done=done)
    report()
    with JsonlAppender(out) as writer:
        for start in range(done, len(rows), flush_rows):
            chunk = rows[start : start + flush_rows]
            qs = [get_key(r, keys.question_key) or "" for r in chunk]
            ans = [get_key(r, keys.answer_key) or "" for r in chunk]
            scored = scorer.score(qs, ans, progress=report)
            out_rows = []
            for r, s, a in zip(chunk, scored, ans):
                row = {**r, **s}
                if keys.gold_key:
                    g = grade(a, str(get_key(r, keys.gold_key)), r.get("data_source"))
                    row["correct"] = bool(g.correct)
                    row["extracted_answer"] = g.extracted
                out_rows.append(row)
            writer.write(out_rows)
            report.done = start + len(chunk)
            report()
    elapsed = time.perf_counter() - t0
    summary = summarize(read_rows(out) if out.exists() and out.stat().st_size else [])
    summary["resumed_from"] = done
    summary["tokens_scored"] = tokens = report.tokens
    summary["tokens_per_s"] = tokens / elapsed if elapsed > 0 and tokens else 0.0
    return summary

