"""``sarl analyze``: the SAR paper's answer-quality analysis on real GSM8K problems.

For each problem, six answers are built from the gold solution and scored with SAR: default,
``use_log``, and the copy-robust setting (:meth:`SARConfig.copy_robust`, issue 14) with and without
``use_log``, side by side. A good self-aligned reward ranks the concise gold answer above padded,
wrong, partial and irrelevant answers; the report shows where it does and where it does not. The
restated question is default SAR's known weak spot (it is very predictable given the question);
``analyze(..., extra=True)`` adds other restatements (:data:`EXTRA_VARIANTS`) to check a fix on.
"""

from __future__ import annotations

import random
import re
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
# Other ways of parroting the question (``build_extra_variants``): held out when tuning a copy-robust
# SAR on ``restated``, so that a fix is not tuned to one template.
EXTRA_VARIANTS = {
    "restated_lead": "another lead-in, the question, another closing + wrong number",
    "restated_paraphrase": "the question with word substitutions every few words + wrong number",
    "restated_shuffled": "the question's sentences in another order + wrong number",
    "restated_half": "the first half of the question's sentences + wrong number",
    "restated_gold": "the question copied, then the gold solution (right answer)",
    "restated_interleaved": "the question's sentences interleaved with the gold steps (right answer)",
}
# Pairs (a, b) reported as P(SAR(a) > SAR(b)).
PAIRS = [("gold", "redundant"), ("gold", "wrong_final"), ("gold", "partial"), ("gold", "irrelevant"),
         ("gold", "restated"), ("partial", "irrelevant"), ("wrong_final", "irrelevant"), ("restated", "gold")]
EXTRA_PAIRS = [(name, "gold") for name in EXTRA_VARIANTS]
# SAR settings reported side by side: column key -> (label, name of the ``SARScorer.score`` variant, or
# None for the scorer's own setting). ``copy`` is the recommended copy-robust setting
# (:meth:`SARConfig.copy_robust`), ``copy_dense`` the same with the paraphrase catcher (``dense=True``).
SETTINGS = {
    "sar": ("SAR", None),
    "sar_log": ("SAR (use_log)", "log"),
    "sar_copy": ("SAR (copy-robust)", "copy"),
    "sar_copy_log": ("SAR (copy-robust, use_log)", "copy_log"),
    "sar_copy_dense": ("SAR (copy-robust + dense)", "copy_dense"),
}

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


# word substitutions for ``restated_paraphrase`` (applied left to right, whole words)
_PARAPHRASE = [
    ("How many", "What is the number of"), ("how many", "what number of"), ("How much", "What amount"),
    ("how much", "what amount"), ("has", "owns"), ("have", "own"), ("each", "every"), ("buys", "purchases"),
    ("bought", "purchased"), ("makes", "earns"), ("total", "overall"), ("gets", "receives"), ("then", "after that"),
    ("and", "as well as"), ("is", "happens to be"), ("are", "happen to be"), ("of", "out of"), ("for", "in exchange for"),
    ("in", "within"), ("the", "that"), ("a", "one"), ("to", "towards"), ("with", "along with"), ("If", "Suppose"),
]
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def paraphrase(text: str) -> str:
    """A crude, deterministic paraphrase: whole-word substitutions from :data:`_PARAPHRASE` in one pass
    (numbers and names are kept). It breaks a copied question into runs of a few words."""
    table = dict(_PARAPHRASE)
    pattern = re.compile(r"\b(" + "|".join(re.escape(a) for a in table) + r")\b")
    return pattern.sub(lambda m: table[m.group(0)], text)


def build_extra_variants(problems: list[dict], seed: int = 0,
                         base: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """More ways of parroting the question (see :data:`EXTRA_VARIANTS`). Deterministic for a seed.

    The wrong number is the one ``restated`` uses (taken from ``base``, :func:`build_variants`'s output
    for the same seed), so :func:`build_variants`' outputs and random stream are untouched."""
    base = base if base is not None else build_variants(problems, seed)
    rng = random.Random(f"extra-{seed}")
    out: dict[str, list[str]] = {k: [] for k in EXTRA_VARIANTS}
    for i, p in enumerate(problems):
        q = p["question"]
        wrong = base["restated"][i].rsplit("The answer is ", 1)[1].rstrip(".")
        steps = [s.strip() for s in p["solution"].split("\n") if s.strip()]
        gold_text = " ".join(steps)
        sents = _sentences(q)
        out["restated_lead"].append(f"Let me restate the problem to be sure I understand it. {q} "
                                    f"Therefore the final result is {wrong}.")
        out["restated_paraphrase"].append(f"In other words: {paraphrase(q)} {_final(wrong)}")
        shuffled = sents[:]
        if len(shuffled) > 1:
            while shuffled == sents:
                rng.shuffle(shuffled)
        out["restated_shuffled"].append(f"{' '.join(shuffled)} {_final(wrong)}")
        out["restated_half"].append(f"{' '.join(sents[: max(1, len(sents) // 2)])} {_final(wrong)}")
        out["restated_gold"].append(f"{q} {gold_text} {_final(p['answer'])}")
        mixed: list[str] = []
        for k in range(max(len(sents), len(steps))):
            mixed += sents[k : k + 1] + steps[k : k + 1]
        out["restated_interleaved"].append(f"{' '.join(mixed)} {_final(p['answer'])}")
    return out


def setting_configs() -> dict[str, SARConfig]:
    """The extra ``SARScorer.score`` variants behind :data:`SETTINGS` (the scorer's own setting is ``sar``)."""
    return {"log": SARConfig(use_log=True), "copy": SARConfig.copy_robust(),
            "copy_log": SARConfig.copy_robust(use_log=True), "copy_dense": SARConfig.copy_robust(dense=True)}


@dataclass
class AnalysisResult:
    n: int
    means: dict[str, dict[str, float]]  # variant -> {sar, sar_log, sar_copy, sar_copy_log, ppl_qa, ppl_a, tokens}
    win_rates: dict[str, dict[str, float]]  # "a>b" -> {sar, sar_log, sar_copy, sar_copy_log}
    rows: list[dict[str, Any]]
    variants: dict[str, str] | None = None  # name -> description of the variants scored (default: VARIANTS)

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "variants": self.variants or VARIANTS, "means": self.means, "win_rates": self.win_rates}


def analyze(scorer, problems: list[dict], seed: int = 0,
            progress: Callable[[int, int], None] | None = None, extra: bool = False) -> AnalysisResult:
    """Score every variant of every problem; ``scorer`` is a :class:`sarl.scoring.SARScorer`.

    Every answer is scored under each setting of :data:`SETTINGS` (the scorer's own, ``use_log``, the
    copy-robust setting and its ``use_log`` form); all share the two forward passes. ``extra`` adds the
    restatements of :data:`EXTRA_VARIANTS` (twice the model time)."""
    variants = build_variants(problems, seed)
    descriptions = dict(VARIANTS)
    pairs = list(PAIRS)
    if extra:
        variants.update(build_extra_variants(problems, seed, base=variants))
        descriptions.update(EXTRA_VARIANTS)
        pairs += EXTRA_PAIRS
    cfgs = setting_configs()
    keys = list(SETTINGS)
    scores: dict[str, list[dict]] = {}
    for name, answers in variants.items():
        qs = [p["question"] for p in problems]
        scores[name] = scorer.score(qs, answers, progress=progress, variants=cfgs)
    means = {}
    for name, rs in scores.items():
        means[name] = {k: sum(r[k] for r in rs) / len(rs) for k in (*keys, "ppl_qa", "ppl_a")}
        means[name]["tokens"] = sum(r["answer_tokens"] for r in rs) / len(rs)
    wins = {}
    for a, b in pairs:
        wins[f"{a}>{b}"] = {
            key: sum(x[key] > y[key] for x, y in zip(scores[a], scores[b])) / len(problems) for key in keys
        }
    rows = []
    for i, p in enumerate(problems):
        for name in variants:
            rows.append({"id": p["id"], "variant": name, "answer": variants[name][i], **scores[name][i]})
    return AnalysisResult(n=len(problems), means=means, win_rates=wins, rows=rows, variants=descriptions)


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


def settings_in(res: AnalysisResult) -> list[str]:
    """The :data:`SETTINGS` keys present in a result (older ``analysis.json`` files hold only two)."""
    first = next(iter(res.means.values()), {})
    return [k for k in SETTINGS if k in first]


def markdown_table(res: AnalysisResult, model_name: str) -> str:
    keys = settings_in(res)
    desc = {**VARIANTS, **EXTRA_VARIANTS, **(res.variants or {})}
    labels = [SETTINGS[k][0] for k in keys]
    lines = [f"# SAR answer-quality analysis ({model_name}, {res.n} GSM8K test problems)", "",
             "| variant | description | " + " | ".join(f"mean {x}" for x in labels) + " | mean tokens |",
             "|---|---|" + "---:|" * (len(keys) + 1)]
    for name, m in res.means.items():
        vals = " | ".join(f"{m[k]:.3f}" for k in keys)
        lines.append(f"| {name} | {desc.get(name, '')} | {vals} | {m['tokens']:.1f} |")
    lines += ["", "| pair | " + " | ".join(f"P(a > b), {x}" for x in labels) + " |", "|---|" + "---:|" * len(keys)]
    for pair, w in res.win_rates.items():
        lines.append(f"| {pair.replace('>', ' > ')} | " + " | ".join(f"{w[k]:.2f}" for k in keys) + " |")
    best = max(res.means, key=lambda k: res.means[k]["sar"])
    lines += ["", f"Highest mean SAR: **{best}**."]
    if best != "gold":
        lines.append(f"SAR ranks `{best}` above the concise gold answer on average: a weakness of the "
                     "signal on this model, not a property to hide.")
    if "restated>gold" in res.win_rates:
        w = res.win_rates["restated>gold"]
        lines.append("P(restated > gold): " + ", ".join(f"{SETTINGS[k][0]} {w[k]:.2f}" for k in keys) + ".")
    return "\n".join(lines) + "\n"


def _grouped_bars(draw, keys: list[str], width: float, values: dict[str, list[float]]) -> None:
    """One bar per setting at each position, side by side (``draw`` is ``ax.bar`` or ``ax.barh``)."""
    for j, k in enumerate(keys):
        off = (j - (len(keys) - 1) / 2) * width
        draw([i + off for i in range(len(values[k]))], values[k], width, label=SETTINGS[k][0])


def plot(res: AnalysisResult, path: Path, model_name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = settings_in(res)
    names = list(res.means)
    width = 0.8 / len(keys)
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6 + 0.12 * len(res.win_rates)))
    x = range(len(names))
    _grouped_bars(axes[0].bar, keys, width, {k: [res.means[n][k] for n in names] for k in keys})
    axes[0].set_xticks(list(x), names, rotation=30, ha="right")
    axes[0].axhline(0, color="k", lw=0.5)
    axes[0].set_title("Mean SAR per answer variant")
    axes[0].legend(fontsize=8)
    pairs = list(res.win_rates)
    y = range(len(pairs))
    _grouped_bars(axes[1].barh, keys, width, {k: [res.win_rates[p][k] for p in pairs] for k in keys})
    axes[1].set_yticks(list(y), [p.replace(">", " > ") for p in pairs])
    axes[1].invert_yaxis()
    axes[1].axvline(0.5, color="k", lw=0.5, ls="--")
    axes[1].set_xlim(0, 1)
    axes[1].set_title("P(SAR(a) > SAR(b))")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.suptitle(f"SAR answer-quality analysis — {model_name}, {res.n} GSM8K problems")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
