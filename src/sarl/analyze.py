"""``sarl analyze``: the SAR paper's answer-quality analysis on real GSM8K problems.

For each problem, six answers are built from the gold solution and scored with SAR (default and
``use_log``). A good self-aligned reward ranks the concise gold answer above padded, wrong, partial
and irrelevant answers; the report shows where it does and where it does not (the restated question
is a known weak spot: it is very predictable given the question).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sarl.io import write_json_atomic
from sarl.rewards.self_aligned import SARConfig

VARIANTS = {
    "gold": "concise gold solution",
    "redundant": "gold with filler sentences between steps (>= 2x characters)",
    "wrong_final": "gold steps, wrong final number",
    "partial": "first half of the steps + wrong number",
    "irrelevant": "another problem's gold solution",
    "restated": "the question restated + wrong number",
}
# Pairs (a, b) reported as P(SAR(a) > SAR(b)).
PAIRS = [("gold", "redundant"), ("gold", "wrong_final"), ("gold", "partial"), ("gold", "irrelevant"),
         ("gold", "restated"), ("partial", "irrelevant"), ("wrong_final", "irrelevant")]

FILLERS = [
    "Let me think about this step carefully before moving on.",
    "Okay, so far everything seems to make sense here.",
    "I should double-check this to be completely sure.",
    "Let me re-read what we have so far to avoid mistakes.",
    "Hmm, that looks right, but let me keep going slowly.",
    "It is important to be careful with every calculation.",
    "Wait, let me verify that once more before continuing.",
    "Alright, now let me consider the next part of the problem.",
]


def _final(n: str) -> str:
    return f"The answer is {n}."


def _wrong_number(answer: str, rng: random.Random) -> str:
    try:
        v = float(answer)
    except ValueError:
        return str(rng.randint(2, 99))
    delta = rng.choice([1, 2, 3, 5, 10]) * rng.choice([-1, 1])
    w = v + delta if v + delta != v else v + 1
    return str(int(w)) if w == int(w) else f"{w:g}"


def build_variants(problems: list[dict], seed: int = 0) -> dict[str, list[str]]:
    """The six answers per problem (see :data:`VARIANTS`). Deterministic for a seed."""
    rng = random.Random(seed)
    out: dict[str, list[str]] = {k: [] for k in VARIANTS}
    n = len(problems)
    for i, p in enumerate(problems):
        steps = [s.strip() for s in p["solution"].split("\n") if s.strip()]
        gold_text = " ".join(steps)
        wrong = _wrong_number(p["answer"], rng)
        out["gold"].append(f"{gold_text} {_final(p['answer'])}")
        padded: list[str] = []
        target = 2 * len(gold_text)
        fill = iter(rng.sample(FILLERS, len(FILLERS)) * 4)
        for s in steps:
            padded.append(s)
            padded.append(next(fill))
        while len(" ".join(padded)) < target:
            padded.insert(rng.randrange(len(padded) + 1), next(fill, FILLERS[0]))
        out["redundant"].append(f"{' '.join(padded)} {_final(p['answer'])}")
        out["wrong_final"].append(f"{gold_text} {_final(wrong)}")
        half = steps[: max(1, len(steps) // 2)]
        out["partial"].append(f"{' '.join(half)} {_final(wrong)}")
        other = problems[(i + 1) % n] if n > 1 else p
        other_steps = " ".join(s.strip() for s in other["solution"].split("\n") if s.strip())
        out["irrelevant"].append(f"{other_steps} {_final(other['answer'])}")
        out["restated"].append(f"The question is: {p['question']} {_final(wrong)}")
    return out


@dataclass
class AnalysisResult:
    n: int
    means: dict[str, dict[str, float]]  # variant -> {sar, sar_log, tokens}
    win_rates: dict[str, dict[str, float]]  # "a>b" -> {sar, sar_log}
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "variants": VARIANTS, "means": self.means, "win_rates": self.win_rates}


def analyze(scorer, problems: list[dict], seed: int = 0,
            progress: Callable[[int, int], None] | None = None) -> AnalysisResult:
    """Score every variant of every problem; ``scorer`` is a :class:`sarl.scoring.SARScorer`."""
    variants = build_variants(problems, seed)
    log_cfg = SARConfig(use_log=True)
    scores: dict[str, list[dict]] = {}
    for name, answers in variants.items():
        qs = [p["question"] for p in problems]
        scores[name] = scorer.score(qs, answers, progress=progress, variants={"log": log_cfg})
    means = {}
    for name, rs in scores.items():
        means[name] = {
            "sar": sum(r["sar"] for r in rs) / len(rs),
            "sar_log": sum(r["sar_log"] for r in rs) / len(rs),
            "ppl_qa": sum(r["ppl_qa"] for r in rs) / len(rs),
            "ppl_a": sum(r["ppl_a"] for r in rs) / len(rs),
            "tokens": sum(r["answer_tokens"] for r in rs) / len(rs),
        }
    wins = {}
    for a, b in PAIRS:
        wins[f"{a}>{b}"] = {
            key: sum(x[key] > y[key] for x, y in zip(scores[a], scores[b])) / len(problems)
            for key in ("sar", "sar_log")
        }
    rows = []
    for i, p in enumerate(problems):
        for name in VARIANTS:
            rows.append({"id": p["id"], "variant": name, "answer": variants[name][i], **scores[name][i]})
    return AnalysisResult(n=len(problems), means=means, win_rates=wins, rows=rows)


def write_report(res: AnalysisResult, out_dir: str | Path, model_name: str) -> dict[str, Path]:
    """Write ``analysis.json``, ``scores.jsonl``, ``analysis.md`` and ``analysis.png`` into ``out_dir``."""
    from sarl.io import JsonlAppender

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "analysis.json", "rows": out / "scores.jsonl", "md": out / "analysis.md",
             "png": out / "analysis.png"}
    write_json_atomic(paths["json"], {"model": model_name, **res.to_json()})
    tmp_rows = paths["rows"].with_suffix(".jsonl.tmp")
    tmp_rows.unlink(missing_ok=True)
    with JsonlAppender(tmp_rows) as w:
        w.write(res.rows)
    tmp_rows.replace(paths["rows"])
    paths["md"].write_text(markdown_table(res, model_name), encoding="utf-8")
    plot(res, paths["png"], model_name)
    return paths


def markdown_table(res: AnalysisResult, model_name: str) -> str:
    lines = [f"# SAR answer-quality analysis ({model_name}, {res.n} GSM8K test problems)", "",
             "| variant | description | mean SAR | mean SAR (log) | mean tokens |", "|---|---|---:|---:|---:|"]
    for name, desc in VARIANTS.items():
        m = res.means[name]
        lines.append(f"| {name} | {desc} | {m['sar']:.3f} | {m['sar_log']:.3f} | {m['tokens']:.1f} |")
    lines += ["", "| pair | P(SAR a > SAR b) | P(log SAR a > log SAR b) |", "|---|---:|---:|"]
    for pair, w in res.win_rates.items():
        lines.append(f"| {pair.replace('>', ' > ')} | {w['sar']:.2f} | {w['sar_log']:.2f} |")
    best = max(res.means, key=lambda k: res.means[k]["sar"])
    lines += ["", f"Highest mean SAR: **{best}**."]
    if best != "gold":
        lines.append(f"SAR ranks `{best}` above the concise gold answer on average: a weakness of the "
                     "signal on this model, not a property to hide.")
    return "\n".join(lines) + "\n"


def plot(res: AnalysisResult, path: Path, model_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(VARIANTS)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = range(len(names))
    axes[0].bar([i - 0.2 for i in x], [res.means[n]["sar"] for n in names], 0.4, label="SAR")
    axes[0].bar([i + 0.2 for i in x], [res.means[n]["sar_log"] for n in names], 0.4, label="SAR (use_log)")
    axes[0].set_xticks(list(x), names, rotation=20)
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_title("Mean SAR per answer variant")
    axes[0].legend()
    pairs = list(res.win_rates)
    y = range(len(pairs))
    axes[1].barh([i - 0.2 for i in y], [res.win_rates[p]["sar"] for p in pairs], 0.4, label="SAR")
    axes[1].barh([i + 0.2 for i in y], [res.win_rates[p]["sar_log"] for p in pairs], 0.4, label="SAR (use_log)")
    axes[1].set_yticks(list(y), [p.replace(">", " > ") for p in pairs])
    axes[1].axvline(0.5, color="k", lw=0.5, ls="--")
    axes[1].set_xlim(0, 1)
    axes[1].set_title("P(SAR(a) > SAR(b))")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.suptitle(f"SAR answer-quality analysis — {model_name}, {res.n} GSM8K problems")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
