"""Scoring question/answer pairs with SAR: the model-forward layer over :mod:`sarl.rewards.self_aligned`,
and ``sarl score`` (file in, JSONL out, incremental and resumable)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from sarl.errors import OutputExistsError
from sarl.io import (
    DataError,
    JsonlAppender,
    TokenProgress,
    count_complete_lines,
    get_key,
    guard_settings,
    read_rows,
    require_keys,
)
from sarl.models import LoadedModel
from sarl.prompts import DEFAULT_SYSTEM_PROMPT, encode, render_null_prompt, render_prompt
from sarl.reward_inputs import reward_inputs
from sarl.rewards.registry import REWARDS
from sarl.rewards.self_aligned import SARConfig, self_aligned_reward
from sarl.rollout.batch import RolloutBatch

DEFAULT_MAX_ANSWER_TOKENS = 4096  # the reference's max_response_length


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
    sar: SARConfig = SARConfig()
    max_answer_tokens: int = DEFAULT_MAX_ANSWER_TOKENS
    max_batch_tokens: int = 2048

    def __post_init__(self):
        tok = self.lm.tokenizer
        self._null_ids = encode(tok, render_null_prompt(tok, self.system_prompt))
        self._max_pos = int(getattr(self.lm.model.config, "max_position_embeddings", 0) or 0) or None

    def encode_pairs(self, questions: Sequence[str], answers: Sequence[str]):
        tok = self.lm.tokenizer
        ctx, ans, status = [], [], []
        for q, a in zip(questions, answers):
            c = encode(tok, render_prompt(tok, q, self.system_prompt, self.instruction))
            ids = [] if not a or not a.strip() else encode(tok, a)
            ids, st = fit_answer(ids, self.max_answer_tokens, self._max_pos, max(len(c), len(self._null_ids)))
            ctx.append(c)
            ans.append(ids)
            status.append(st)
        return ctx, ans, status

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


def check_resume(input_path: str | Path, output_path: str | Path, settings: dict[str, Any] | None = None, *,
                 question_key: str = "question", answer_key: str = "answer",
                 gold_key: str | None = None) -> tuple[list[dict[str, Any]], int]:
    """Validate the input and an existing output before any model work; returns (input rows, rows
    already scored). The first rows of an existing output must match the input's questions, and, with
    ``settings``, the output's record of the settings that made it (``<output>.settings.json``) must
    equal them: a resumed output never mixes SAR variants or models. The record is written when the
    output holds no rows yet."""
    src = str(input_path)
    rows = read_rows(input_path)
    keys = [question_key, answer_key] + ([gold_key] if gold_key else [])
    require_keys(rows, keys, src)
    for i, row in enumerate(rows, 1):
        for k in (question_key, answer_key):
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
            if prior[i].get(question_key) != get_key(rows[i], question_key):
                raise DataError(
                    f"{out}: row {i + 1} was scored from a different input than {src}; "
                    "use another -o (nothing was overwritten)"
                )
    if settings is not None:
        record = out.with_name(out.name + ".settings.json")
        way_out = "write to another -o, or pass --overwrite to replace it"
        if done and not record.exists():
            raise OutputExistsError(f"{out} holds rows with no record of the settings that made them; {way_out}")
        guard_settings(record, settings, out, way_out, has_results=done > 0)
    return rows, done


def score_file(
    scorer: SARScorer,
    input_path: str | Path,
    output_path: str | Path,
    *,
    question_key: str = "question",
    answer_key: str = "answer",
    gold_key: str | None = None,
    chunk_size: int = 32,
    on_progress: Callable[[int, int, int], None] | None = None,
    settings: dict[str, Any] | None = None,
    checked: tuple[list[dict[str, Any]], int] | None = None,
) -> dict[str, Any]:
    """Score every row of ``input_path`` and append it to ``output_path`` (JSONL) with ``ppl_qa``,
    ``ppl_a``, ``sar``, ``answer_tokens``, ``status`` and, when ``gold_key`` is given, ``correct``.

    Resumable: rows already in the output are skipped (a torn last line is dropped first), after
    :func:`check_resume` (the same input; with ``settings``, the same settings); ``checked`` is that
    function's result when the caller already ran it (so the files are not read twice).
    ``on_progress(rows_done, rows_total, answer_tokens_done)`` is called as work proceeds.
    Returns :func:`summarize` over the whole output plus ``tokens_per_s`` of this run.
    """
    from sarl.grading import grade

    rows, done = checked if checked is not None else check_resume(
        input_path, output_path, settings, question_key=question_key, answer_key=answer_key, gold_key=gold_key)
    out = Path(output_path)
    t0 = time.perf_counter()
    report = TokenProgress(on_progress, len(rows), done=done)
    report()
    with JsonlAppender(out) as writer:
        for start in range(done, len(rows), chunk_size):
            chunk = rows[start : start + chunk_size]
            qs = [get_key(r, question_key) or "" for r in chunk]
            ans = [get_key(r, answer_key) or "" for r in chunk]
            scored = scorer.score(qs, ans, progress=report)
            out_rows = []
            for r, s, a in zip(chunk, scored, ans):
                row = {**r, **s}
                if gold_key:
                    g = grade(a, str(get_key(r, gold_key)), r.get("data_source"))
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

