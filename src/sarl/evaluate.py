"""Benchmark evaluation: render → generate → grade → metrics, per model and dataset.

Layout of an evaluation folder (``sarl eval ... -o OUT_DIR``)::

    OUT_DIR/summary.json                      machine-readable: every model's metrics per dataset
    OUT_DIR/compare.md, compare.json          Δacc, Δlen and AES against the reference model
    OUT_DIR/plots/<dataset>.png               accuracy vs mean length, one point per model
    OUT_DIR/<model_tag>/<dataset_tag>.samples.jsonl   one line per sample, written batch by batch
    OUT_DIR/<model_tag>/metrics.json          that model's metrics per dataset

A crashed run loses nothing already generated: re-running the same command skips the problems whose
samples are all in ``samples.jsonl`` and generates the rest.

Metrics per dataset (lengths in response tokens, the stop token not counted):
- ``accuracy``: fraction of all samples that are correct (with n > 1 sampled: the policy's accuracy; greedy:
  the only sample), the headline everywhere, with ``accuracy_se``, its standard error over problems
  (the sd of the per-problem accuracies, ddof 1, over sqrt(problems): samples of one problem are not
  independent) and ``accuracy_ci95`` = accuracy ± Z95 · SE (:data:`sarl.stats.Z95`).
  ``sample_accuracy`` is the same value (older name);
- ``hit@1``: fraction of problems whose first sample is correct;
- ``hit@n``: fraction of problems with at least one correct sample among n;
- ``mean_length``: mean response length over all samples;
- ``mean_correct_length``: mean length over correct samples (NaN → null when none is correct);
- ``truncation_rate``: fraction of samples that hit ``max_new_tokens``;
- on the built-in synthetic tasks, where every sample row carries its ``style``
  (:func:`sarl.data.synthetic.style_of`) and ``steps``: ``style_shares`` (share of samples per style) and
  ``by_steps`` (accuracy ± SE, length and style shares per number of steps).

AES (accuracy-efficiency score, as the SAR paper reports it) of model M against reference R:
``Δlen = (L_R - L_M) / L_R`` (positive = shorter), ``Δacc = (A_M - A_R) / A_R`` (relative),
``AES = Δlen + 5 · Δacc``. When ``A_R = 0`` the relative Δacc is undefined; sarl then uses the
absolute difference ``A_M - A_R`` and marks the row. ``within_noise``: the accuracy difference is
smaller than Z95 · its standard error (:data:`sarl.stats.Z95`): paired over the shared problems when both
models answered the same ones (``per_problem_accuracy``; :func:`paired_se`), else sqrt(SE_R² + SE_M²).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sarl.data import Problem, load_dataset
from sarl.data.synthetic import answer_labels, style_shares
from sarl.errors import ConfigError, UnknownNameError
from sarl.grading import grade
from sarl.io import (
    JsonlAppender,
    TokenProgress,
    count_complete_lines,
    flat_settings,
    guard_settings,
    write_json_atomic,
)
from sarl.prompts import DEFAULT_SYSTEM_PROMPT, encode, render_problem_prompt
from sarl.rollout import GenerationConfig
from sarl.settings import Settings, names_in, positive, setting
from sarl.stats import Z95

AES_ACC_WEIGHT = 5.0


@dataclass
class EvalSettings(Settings):
    """Everything that decides what an evaluation generates (saved in ``summary.json``)."""

    datasets: list[str] = setting(help="Dataset names or file paths (sarl data list).", cli=False)
    limit: int | None = setting(None, "First N problems of each dataset.", check=positive)
    size: int | None = setting(None, "Size of generated (reasoning-gym) datasets.", check=positive)
    data_seed: int = setting(0, "Seed of generated datasets.")
    instruction: str = setting("noformat", "Instruction appended to each question (noformat: the reference's "
                                           "default).", choices=names_in("sarl.prompts", "INSTRUCTIONS"))
    system_prompt: str | None = setting(DEFAULT_SYSTEM_PROMPT, "System prompt (the reference's).")
    gen: GenerationConfig = setting(help="Decoding.", factory=GenerationConfig)

    def validate(self) -> None:
        if not self.datasets:
            raise ConfigError("datasets: empty; e.g. --datasets gsm8k,math500")


def tag(name: str) -> str:
    """A folder-safe tag for a model or dataset name (``org/model`` → ``org__model``)."""
    t = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name).replace("/", "__")).strip("._")
    return t or "model"


def _sample_stats(rows: list[dict]) -> dict[str, Any]:
    by_problem: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_problem.setdefault(r["id"], {})[r["sample"]] = r
    problems = list(by_problem.values())
    n_prob = len(problems)
    lengths = [r["length"] for r in rows]
    correct_lengths = [r["length"] for r in rows if r["correct"]]
    acc, se = accuracy_with_se([[bool(s["correct"]) for s in p.values()] for p in problems])
    per_problem = {pid: sum(bool(s["correct"]) for s in p.values()) / len(p) for pid, p in by_problem.items() if p}
    out = {
        "problems": n_prob,
        "samples": len(rows),
        "accuracy": acc,
        "accuracy_se": se,
        "accuracy_ci95": None if acc is None else [acc - Z95 * se, acc + Z95 * se],
        "hit@1": sum(bool(p.get(0, {}).get("correct")) for p in problems) / n_prob if n_prob else None,
        "hit@n": sum(any(s["correct"] for s in p.values()) for p in problems) / n_prob if n_prob else None,
        "sample_accuracy": acc,
        "per_problem_accuracy": per_problem,
        "mean_length": sum(lengths) / len(lengths) if lengths else None,
        "mean_correct_length": sum(correct_lengths) / len(correct_lengths) if correct_lengths else None,
        "truncation_rate": sum(r["truncated"] for r in rows) / len(rows) if rows else None,
    }
    if rows and all("style" in r for r in rows):  # synthetic problems: style shares, and all by steps
        out["style_shares"] = style_shares([r["style"] for r in rows])
        out["by_steps"] = {}
        for k in sorted({r["steps"] for r in rows}):
            part = [r for r in rows if r["steps"] == k]
            groups: dict[str, list[bool]] = {}
            for r in part:
                groups.setdefault(r["id"], []).append(bool(r["correct"]))
            acc_k, se_k = accuracy_with_se(list(groups.values()))
            out["by_steps"][str(k)] = {"problems": len(groups), "samples": len(part), "accuracy": acc_k,
                                       "accuracy_se": se_k, "mean_length": sum(r["length"] for r in part) / len(part),
                                       "style_shares": style_shares([r["style"] for r in part])}
    return out


def accuracy_with_se(per_problem: Sequence[Sequence[bool]]) -> tuple[float | None, float]:
    """(accuracy over all samples, its standard error over problems) from each problem's sample
    outcomes: SE = sd of the per-problem accuracies (ddof 1) / sqrt(problems); 0 for one problem."""
    scored = [p for p in per_problem if len(p)]
    n = sum(len(p) for p in scored)
    if not n:
        return None, 0.0
    acc = sum(sum(p) for p in scored) / n
    means = [sum(p) / len(p) for p in scored]
    if len(means) < 2:
        return acc, 0.0
    mu = sum(means) / len(means)
    var = sum((m - mu) ** 2 for m in means) / (len(means) - 1)
    return acc, math.sqrt(var / len(means))


def read_samples(path: Path) -> list[dict]:
    if not path.exists():
        return []
    count_complete_lines(path)  # drop a torn last line left by a crash
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def first_batch_estimate(model_name: str, dataset: str, seconds: float, first: int, todo: int, batch: int,
                         cfg: GenerationConfig) -> str:
    """The time the rest of a dataset will take, from its first decode batch (``first`` problems in
    ``seconds``) when ``todo`` problems go in batches of ``batch``: the remaining batches, the last
    (smaller) one counted as a full one: a decode batch runs until its longest answer stops, so a smaller
    batch is slower per problem and takes about as long as a full one."""
    rest = todo - first
    batches = -(-rest // batch)
    last = rest - (batches - 1) * batch
    shape = f"{batches} batch(es)" + (f", the last of {last} problem(s)" if last < batch else "")
    return (f"{model_name} · {dataset}: {seconds:.1f} s for the first batch of {first} problem(s); about "
            f"{seconds * batches / 60:.1f} min for the remaining {rest} ({shape}; at most {cfg.max_new_tokens} "
            f"new tokens, {cfg.n} sample(s) each)")


def evaluate_dataset(backend, tokenizer, model_name: str, dataset: str, problems: Sequence[Problem],
                     settings: EvalSettings, out_path: Path,
                     progress: Callable[[int, int, int], None] | None = None,
                     log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate, grade and append samples for the problems not yet in ``out_path``; return metrics.

    ``progress(problems_done, problems_total, tokens_generated)``; ``log(message)`` gets, after the first
    decode batch, an estimate of the time the rest will take (:func:`first_batch_estimate`), or, when every
    problem fits one batch, a note that the bar moves only when it ends."""
    cfg = settings.gen
    existing = read_samples(out_path)
    have: dict[str, set[int]] = {}
    for r in existing:
        have.setdefault(r["id"], set()).add(r["sample"])
    complete = {pid for pid, s in have.items() if len(s) >= cfg.n}
    # a problem with only some of its samples (an edited file, or an earlier run with a smaller n) is
    # regenerated whole
    prior = [r for r in existing if r["id"] in complete]
    todo = [(i, p) for i, p in enumerate(problems) if p.id not in complete]
    wanted = {p.id for p in problems}
    report = TokenProgress(progress, len(problems), done=len(wanted & complete))
    report()
    if todo:
        if len(prior) != len(existing):  # rewrite without the partial problems before appending
            tmp = out_path.with_suffix(".tmp")
            with JsonlAppender(tmp) as w:
                w.write(prior)
            tmp.replace(out_path)
        prompts_text = [render_problem_prompt(tokenizer, p, instruction=settings.instruction,
                                              system=settings.system_prompt) for _, p in todo]
        prompt_ids = [encode(tokenizer, t) for t in prompts_text]
        # generate one decode batch at a time, writing each before the next starts: a crash loses at
        # most the batch in flight
        slice_size = max(1, cfg.batch_size // cfg.n)
        n_batches = -(-len(todo) // slice_size)
        if n_batches == 1 and log is not None:  # no batch to measure a rate on before it all ends
            log(f"{model_name} · {dataset}: {len(todo)} problem(s) in one decode batch (at most {cfg.max_new_tokens} "
                f"new tokens, {cfg.n} sample(s) each); the bar moves when it ends")
        t_start = time.perf_counter()
        with JsonlAppender(out_path) as writer:
            for s in range(0, len(todo), slice_size):
                part = todo[s : s + slice_size]
                ids = prompt_ids[s : s + slice_size]
                outs = backend.generate(ids, cfg, keys=[i for i, _ in part], progress=report)
                rows = []
                for (i, p), prompt, samples in zip(part, prompts_text[s : s + slice_size], outs):
                    for k, smp in enumerate(samples):
                        g = grade(smp.text, p.answer, problem=p)
                        n_tok = smp.num_tokens - (1 if smp.finish_reason == "stop" else 0)
                        rows.append({
                            "id": p.id, "sample": k, "data_source": p.data_source, "dataset": dataset,
                            "model": model_name, "prompt": prompt, "response": smp.text,
                            "extracted": g.extracted, "gold": p.answer, "correct": bool(g.correct),
                            "length": n_tok, "truncated": smp.truncated, "finish_reason": smp.finish_reason,
                            **answer_labels(p, smp.text),
                        })
                writer.write(rows)
                report.done += len(part)
                report()
                if s == 0 and log is not None and n_batches > 1:
                    log(first_batch_estimate(model_name, dataset, time.perf_counter() - t_start, len(part),
                                             len(todo), slice_size, cfg))
    rows = [r for r in read_samples(out_path) if r["id"] in wanted]
    return _sample_stats(rows)


def check_model_settings(out_dir: Path, model_name: str, dtype: str, settings: EvalSettings) -> Path:
    """Record the settings that decide a model's samples (model, dtype, prompt, decoding, generated-data
    seed and size) in ``<model_tag>/settings.json``, or refuse when its samples were made with other
    ones; returns the model's folder. Needs no model: ``sarl eval`` calls it before any model loads
    (``dtype``: what the model will be loaded in), :func:`evaluate_model` again with the loaded one."""
    mdir = out_dir / tag(model_name)
    mdir.mkdir(parents=True, exist_ok=True)
    record = {"model": model_name, "dtype": dtype, "instruction": settings.instruction,
              "system_prompt": settings.system_prompt, "data_seed": settings.data_seed, "size": settings.size,
              **flat_settings(settings.gen, "gen.")}
    guard_settings(mdir / "settings.json", record, mdir,
                   "evaluate into another -o, or pass --overwrite to replace this model's samples",
                   has_results=any(f.stat().st_size for f in mdir.glob("*.samples.jsonl")))
    return mdir


def evaluate_model(lm, backend, model_name: str, settings: EvalSettings, out_dir: Path,
                   progress_factory: Callable[[str, int], Callable[[int, int, int], None]] | None = None,
                   problems_by_dataset: dict[str, list[Problem]] | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, dict]:
    """Evaluate one model on every dataset of ``settings``; writes ``<model_tag>/metrics.json``.

    The settings that decide the samples (model, dtype, prompt, decoding, generated-data seed and size;
    not ``limit``: more problems extend the same samples) are recorded in ``<model_tag>/settings.json``;
    a rerun with different ones refuses instead of mixing samples."""
    mdir = check_model_settings(out_dir, model_name, str(lm.dtype).removeprefix("torch."), settings)
    metrics: dict[str, dict] = {}
    for ds in settings.datasets:
        problems = (problems_by_dataset or {}).get(ds) or load_dataset(
            ds, limit=settings.limit, seed=settings.data_seed, size=settings.size)
        prog = progress_factory(f"{model_name} · {ds}", len(problems)) if progress_factory else None
        t0 = time.perf_counter()
        m = evaluate_dataset(backend, lm.tokenizer, model_name, ds, problems, settings,
                             mdir / f"{tag(ds)}.samples.jsonl", progress=prog, log=log)
        m["seconds_this_run"] = time.perf_counter() - t0
        metrics[ds] = m
        write_json_atomic(mdir / "metrics.json", metrics)
    return metrics


# ------------------------------------------------------------------------------ comparison and summary
def aes(ref: dict[str, Any], cur: dict[str, Any]) -> dict[str, Any]:
    """Δacc (relative), Δlen (relative, positive = shorter) and AES = Δlen + 5·Δacc against ``ref``."""
    a_r, a_m = ref.get("accuracy"), cur.get("accuracy")
    l_r, l_m = ref.get("mean_length"), cur.get("mean_length")
    if a_r is None or a_m is None or not l_r or l_m is None:
        return {"delta_acc": None, "delta_len": None, "aes": None, "acc_delta_absolute": False}
    absolute = a_r == 0
    d_acc = (a_m - a_r) if absolute else (a_m - a_r) / a_r
    d_len = (l_r - l_m) / l_r
    se, paired = paired_se(ref.get("per_problem_accuracy"), cur.get("per_problem_accuracy"))
    if se is None:  # no shared problems: unpaired, conservative
        se = math.hypot(ref.get("accuracy_se") or 0.0, cur.get("accuracy_se") or 0.0)
    return {"delta_acc": d_acc, "delta_len": d_len, "aes": d_len + AES_ACC_WEIGHT * d_acc,
            "acc_delta_absolute": absolute, "delta_acc_points": a_m - a_r, "delta_acc_se": se,
            "delta_acc_paired": paired, "within_noise": abs(a_m - a_r) < Z95 * se}


def paired_se(ref: dict[str, float] | None, cur: dict[str, float] | None) -> tuple[float | None, bool]:
    """Standard error of the accuracy difference from the per-problem accuracies of both models on their
    shared problems: sd of the per-problem differences (ddof 1) / sqrt(shared). (None, False) when they
    share fewer than 2 problems. Pairing removes the problems' own difficulty from the noise, so it is
    the precise test when both models answered the same problems."""
    if not ref or not cur:
        return None, False
    shared = [k for k in ref if k in cur]
    if len(shared) < 2:
        return None, False
    d = [cur[k] - ref[k] for k in shared]
    mu = sum(d) / len(d)
    var = sum((x - mu) ** 2 for x in d) / (len(d) - 1)
    return math.sqrt(var / len(d)), True


def comparison(summary: dict[str, Any], reference: str | None = None) -> list[dict[str, Any]]:
    """Rows (dataset, model, accuracy, hit@n, sample accuracy, mean length, Δacc, Δlen, AES) for every model and dataset,
    relative to ``reference`` (default: the first model)."""
    models = list(summary["models"])
    if not models:
        return []
    ref = reference or models[0]
    if ref not in summary["models"]:
        raise UnknownNameError(f"reference model {ref!r} is not in this evaluation; models: {', '.join(models)}")
    rows = []
    datasets: list[str] = []
    for m in models:
        for ds in summary["models"][m]:
            if ds not in datasets:
                datasets.append(ds)
    for ds in datasets:
        base = summary["models"][ref].get(ds)
        for m in models:
            cur = summary["models"][m].get(ds)
            if cur is None:
                continue
            row = {"dataset": ds, "model": m, "reference": ref, **{k: cur.get(k) for k in (
                "problems", "samples", "accuracy", "accuracy_se", "hit@1", "hit@n", "sample_accuracy", "mean_length",
                "mean_correct_length", "truncation_rate")}}
            alone = len(models) == 1 or m == ref  # Δ columns only where there is a reference to compare with
            row.update(aes(base, cur) if base and not alone else {"delta_acc": None, "delta_len": None, "aes": None})
            rows.append(row)
    return rows


def fmt_value(v: Any, pct: bool = False, signed: bool = False) -> str:
    """A metric for a table: percent (``pct``), with a sign (``signed``), ``–`` when missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        if pct:
            return f"{v * 100:+.1f}%" if signed else f"{v * 100:.1f}%"
        return f"{v:+.3f}" if signed else f"{v:.1f}"
    return str(v)


# The comparison table's columns: (header, row key, percent, signed). The Markdown file and the
# console table both render these.
COMPARISON_COLUMNS = [
    ("dataset", "dataset", False, False), ("model", "model", False, False), ("problems", "problems", False, False),
    ("accuracy (all samples)", "accuracy", True, False), ("± SE", "accuracy_se", True, False),
    ("hit@1", "hit@1", True, False), ("hit@n", "hit@n", True, False), ("mean length", "mean_length", False, False),
    ("correct length", "mean_correct_length", False, False), ("truncated", "truncation_rate", True, False),
    ("Δacc", "delta_acc", True, True), ("Δlen", "delta_len", True, True), ("AES", "aes", False, True),
]


def comparison_cells(row: dict[str, Any]) -> list[str]:
    """One comparison row as the table's cells (Δacc marked * where it is absolute)."""
    cells = [fmt_value(row.get(key), pct=pct, signed=signed) for _, key, pct, signed in COMPARISON_COLUMNS]
    keys = [k for _, k, _, _ in COMPARISON_COLUMNS]
    if row.get("acc_delta_absolute"):
        cells[keys.index("delta_acc")] += "*"
    if row.get("within_noise"):
        cells[keys.index("delta_acc")] += " (noise)"
    return cells


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "_no results_\n"
    ref = rows[0]["reference"]
    lines = [(f"Reference model: `{ref}`. Accuracy over all samples, ± its standard error over problems. "
             "Δlen = (L_ref − L)/L_ref (positive = shorter); Δacc relative to the reference's accuracy (absolute, "
             f"marked *, when that is 0), marked (noise) when the difference is below {Z95:.2f} · its standard error "
             "(paired over the shared problems); "
             "AES = Δlen + 5·Δacc."), "",
             "| " + " | ".join(h for h, _, _, _ in COMPARISON_COLUMNS) + " |",
             "|---|---|" + "---:|" * (len(COMPARISON_COLUMNS) - 2)]
    lines += ["| " + " | ".join(comparison_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_length(summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """One PNG per dataset (in the order the comparison table lists them): accuracy over all samples
    (± Z95 · SE) against mean response length, a point per model; the accuracy axis spans 0–100%."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    datasets: list[str] = []
    for per in summary["models"].values():
        datasets += [ds for ds in per if ds not in datasets]
    out_dir.mkdir(parents=True, exist_ok=True)
    for ds in datasets:
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for model, per in summary["models"].items():
            m = per.get(ds)
            if not m or m.get("accuracy") is None or m.get("mean_length") is None:
                continue
            acc = m["accuracy"] * 100
            ax.errorbar(m["mean_length"], acc, yerr=Z95 * (m.get("accuracy_se") or 0.0) * 100, fmt="o", capsize=3,
                        markersize=8)
            label = Path(model).name if "/" in model and Path(model).exists() else model
            ax.annotate(label, (m["mean_length"], acc), textcoords="offset points", xytext=(5, 5), fontsize=8)
        ax.set_xlabel("mean response length (tokens)")
        ax.set_ylabel("accuracy over all samples (%)")
        ax.set_ylim(-4, 104)  # 0-100%, with room for a marker at either end
        ax.set_title(ds)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        p = out_dir / f"{tag(ds)}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        paths.append(p)
    return paths


def write_summary(out_dir: Path, results: dict[str, dict], settings: EvalSettings,
                  reference: str | None = None) -> dict[str, Any]:
    """Merge ``results`` ({model: {dataset: metrics}}) into ``summary.json`` and rewrite the comparison
    and plots."""
    path = out_dir / "summary.json"
    summary = json.loads(path.read_text()) if path.exists() else {"models": {}}
    for model, per in results.items():
        summary["models"].setdefault(model, {}).update(per)
    summary["settings"] = {**asdict(settings), "gen": asdict(settings.gen)}
    rows = comparison(summary, reference)
    summary["comparison"] = rows
    write_json_atomic(path, summary)
    write_json_atomic(out_dir / "compare.json", rows)
    (out_dir / "compare.md").write_text(comparison_markdown(rows), encoding="utf-8")
    plot_accuracy_vs_length(summary, out_dir / "plots")
    return summary
