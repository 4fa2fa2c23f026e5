"""The report of a ``sarl quickstart`` folder, told as the run's story: what ran, the verdict (warm start,
SA-GRPO and GRPO on the same held-out problems, in accuracy points with 95% intervals), the training
curves of both runs on the same axes, accuracy by number of steps, answer styles, and the same example
problems answered by the three models. ``report.md`` and a self-contained ``report.html`` (plots inlined
as base64 PNG, no scripts, no network).

It reads only what the quickstart wrote: ``before_after.json``, ``eval/summary.json`` and
``eval/<model>/metrics.json`` + ``<dataset>.samples.jsonl``, ``train/`` and ``train_grpo/``
(``metrics.jsonl``, ``config.yaml``), and ``sft/`` (``config.yaml``, ``summary.json``) when there was a
warm start."""

from __future__ import annotations

import html
import json
import unicodedata
from pathlib import Path
from typing import Any

from sarl.evaluate import read_samples, tag
from sarl.io import DataError
from sarl.report import CSS, img_tag, md_to_html
from sarl.run_folder import read_yaml
from sarl.stats import Z95
from sarl.train_report import config_value, is_training_run, load_run, metric_panels

# the three models of the table: key in before_after.json, the name shown, its colour in every plot
MODELS = (("before", "warm start", "#8c8c8c"), ("after", "SA-GRPO", "#1f77b4"), ("grpo", "GRPO", "#ff7f0e"))
# the two training runs: folder, name, line style
RUNS = (("train", "SA-GRPO", "-"), ("train_grpo", "GRPO", "--"))
# the story's curves first (title, metric names or prefixes ending in "/"); every other family both runs
# logged follows in a second figure
STORY_PANELS = (
    ("reward (total and correctness)", ("reward/mean", "reward/correctness")),
    ("SAR reward (SA-GRPO only: GRPO does not compute it)", ("reward/sar",)),
    ("accuracy of the rollouts", ("accuracy",)), ("response length (tokens)", ("response_length/mean",)),
    ("KL to the reference", ("kl/ref",)), ("answer styles (share of the batch)", ("style/",)),
)
WINDOW = 10  # steps of the running mean of the curves
SEED_NOTE = ("One seed per run: a difference between two single runs is not a measured effect of SAR. "
             "Seed-to-seed spread is several points (docs/RESULTS.md); compare several seeds before trusting it.")


def load_quickstart(out_dir: Path) -> dict[str, Any]:
    """Everything the report reads from a quickstart folder (missing parts, such as the GRPO run without
    a baseline or the warm start with ``--model``, are absent)."""
    table_path = out_dir / "before_after.json"
    if not table_path.exists():
        raise DataError(f"{out_dir}: no before_after.json; is this a finished `sarl quickstart` folder?")
    table = json.loads(table_path.read_text())
    summary = json.loads((out_dir / "eval" / "summary.json").read_text())
    dataset = summary["settings"]["datasets"][0]
    warm_start = (out_dir / "sft" / "summary.json").exists()
    models = [(k, n if warm_start or k != "before" else "starting model", c) for k, n, c in MODELS
              if isinstance(table.get(k), dict)]
    evals = {}
    for key, _, _ in models:
        d = out_dir / "eval" / tag(key)
        metrics = json.loads((d / "metrics.json").read_text()).get(dataset, {})
        evals[key] = {"metrics": metrics, "samples": read_samples(d / f"{tag(dataset)}.samples.jsonl")}
    runs = {name: {**load_run(out_dir / folder), "style": style} for folder, name, style in RUNS
            if is_training_run(out_dir / folder)}
    sft = out_dir / "sft"
    warm = {"config": read_yaml(sft / "config.yaml"),
            "summary": json.loads((sft / "summary.json").read_text())} if warm_start else None
    return {"dir": out_dir, "table": table, "settings": summary["settings"], "dataset": dataset,
            "models": models, "evals": evals, "runs": runs, "warm": warm}


def _interval(acc: float, se: float | None) -> tuple[float, float]:
    """The 95% interval of an accuracy in points, clipped to [0, 100]."""
    se = se or 0.0
    return max(0.0, (acc - Z95 * se) * 100), min(100.0, (acc + Z95 * se) * 100)


def _points(acc: float | None, se: float | None) -> str:
    """An accuracy in points with its 95% interval (clipped to [0, 100]): ``42.5 [38.1, 46.9]``."""
    if acc is None:
        return "–"
    lo, hi = _interval(acc, se)
    return f"{acc * 100:.1f} [{lo:.1f}, {hi:.1f}]"


def _plural(n: Any, word: str) -> str:
    return f"{n:g} {word}{'' if n == 1 else 's'}" if isinstance(n, int | float) else f"{n} {word}s"


def _count(n: Any) -> str:
    """A parameter count: ``1.05M``, ``28k``."""
    if not isinstance(n, int | float):
        return "?"
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}k"


def _style_mix(sft_config: dict[str, Any]) -> str:
    """The SFT corpus's styles as ``30% concise, 30% padded, …``."""
    from sarl.data.synthetic import parse_style_mix

    mix = sft_config.get("style_mix")
    shares = parse_style_mix(mix) if mix else {"padded": sft_config.get("padded_fraction", 0)}
    return ", ".join(f"{share:.0%} {style}" for style, share in shares.items())


def what_ran(q: dict[str, Any]) -> str:
    """Section 1: the warm start, the RL recipe and the evaluation, a few lines."""
    run = next(iter(q["runs"].values()), None)
    cfg = run["config"] if run else {}
    lines = ["## 1. What ran", ""]
    if q["warm"]:
        c, s = q["warm"]["config"], q["warm"]["summary"]
        corpus = ", ".join(f"{n} {t}" for t, n in (c.get("synthetic_tasks") or {}).items()) or str(c.get("data"))
        lines.append(f"- **Warm start**: a new Llama ({c.get('new_model')}; {_count(s.get('parameters'))} parameters; "
                     f"{c.get('new_tokenizer')}-token vocabulary) trained by SFT on {corpus} problems "
                     f"({_style_mix(c)} solutions), {_plural(c.get('epochs'), 'epoch')}, lr {c.get('lr'):g}.")
    else:
        lines.append(f"- **Starting model**: `{config_value(cfg, 'model.name')}` (no warm start).")
    weights = config_value(cfg, "rewards.weights") or {}
    alpha = q["table"].get("alpha")
    arms = f"SA-GRPO (correctness + α·SAR, α = {alpha:g})" if alpha is not None else "SA-GRPO"
    if "GRPO" in q["runs"]:
        arms += " and, from the same start with the same seed, GRPO (correctness only)"
    kl = (f"KL loss {config_value(cfg, 'actor.kl_loss_type')} × {config_value(cfg, 'actor.kl_loss_coef'):g}"
          if config_value(cfg, "actor.use_kl_loss") else "no KL loss")
    lines.append(f"- **RL**: {arms} on {config_value(cfg, 'data.train')}: {_plural(config_value(cfg, 'trainer.total_steps'), 'step')} of "
                 f"{config_value(cfg, 'trainer.prompts_per_step')} prompts × {config_value(cfg, 'rollout.n')} rollouts "
                 f"(T = {config_value(cfg, 'rollout.temperature')}, at most {config_value(cfg, 'data.max_response_length')} tokens), "
                 f"lr {config_value(cfg, 'actor.lr'):g}, advantage {config_value(cfg, 'algorithm.adv_estimator')} (std normalisation "
                 f"{'on' if config_value(cfg, 'algorithm.norm_adv_by_std_in_grpo') else 'off'}), loss "
                 f"{config_value(cfg, 'actor.loss_agg_mode')}, {kl}, seed {config_value(cfg, 'trainer.seed')}; reward weights "
                 + ", ".join(f"{k} {v:g}" for k, v in weights.items()) + ".")
    gen = q["settings"].get("gen") or {}
    problems = next(iter(q["evals"].values()), {}).get("metrics", {}).get("problems")
    decoding = (f"sampled (T = {gen.get('temperature')}, {gen.get('n')} samples per problem)" if gen.get("temperature")
                else "greedy")
    lines.append(f"- **Evaluation**: {problems} held-out problems of {q['dataset']}, {decoding}, at most "
                 f"{gen.get('max_new_tokens')} new tokens; every model answers the same problems.")
    return "\n".join(lines + [""])


def verdict(q: dict[str, Any]) -> str:
    """Section 2: the three models in accuracy points with 95% intervals, then the two differences."""
    t = q["table"]
    rows = [(name, t[key]) for key, name, _ in q["models"]]
    styles = list(next(iter(m for _, m in rows), {}).get("style_shares") or {})
    multi = any(m.get("multi_step_accuracy") for _, m in rows)
    head = (["model", "accuracy [95% CI]"] + ["multi-step [95% CI]"] * multi
            + ["hit@1", "hit@n", "length", "SAR", "truncated"] + styles)
    lines = ["## 2. The verdict", "",
             f"**Accuracy** over all samples in points (100 = every sample correct) with its 95% interval "
             f"(± {Z95:.2f} SE over problems, clipped to [0, 100])"
             + ("; **multi-step**: the same on the problems that need 2 or more steps" * multi)
             + "; **hit@1** / **hit@n**: % of problems whose first / any sample is correct; **length**: mean "
             "answer length in tokens; **SAR**: mean self-aligned reward of the model's own answers; "
             + ("then the share of each answer style." if styles else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in rows:
        ms = m.get("multi_step_accuracy") or {}
        cells = ([name, _points(m["accuracy"], m["accuracy_se"])]
                 + [_points(ms.get("accuracy"), ms.get("accuracy_se"))] * multi
                 + [f"{m['hit@1'] * 100:.1f}", f"{m['hit@n'] * 100:.1f}", f"{m['mean_length']:.1f}",
                    "–" if m.get("mean_sar") is None else f"{m['mean_sar']:.3f}", f"{m['truncation_rate'] * 100:.0f}%"]
                 + [f"{m['style_shares'][s] * 100:.0f}%" for s in styles])
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| comparison | accuracy difference, points | 95% interval | verdict | length ratio |",
              "|---|---|---|---|---|"]
    pairs = [("change", f"SA-GRPO vs {rows[0][0]}"), ("sa_grpo_minus_grpo", "SA-GRPO − GRPO (what SAR adds)")]
    for key, title in [p for p in pairs if p[0] in t]:
        c = t[key]
        d, se = c["accuracy_points"] * 100, c["se"] * 100
        kind = "paired over the same problems" if c["paired"] else "unpaired"
        noise = ("no difference" if d == 0 and se == 0 else "within noise" if c["within_noise"]
                 else "outside the noise")
        lines.append(f"| {title} | {d:+.1f} | [{d - Z95 * se:+.1f}, {d + Z95 * se:+.1f}] | {noise} ({kind}) | "
                     f"{c['length_ratio']:.2f}× |")
    lines += ["", f"**{SEED_NOTE}**", ""]
    return "\n".join(lines)


def running_mean(values: list[float], window: int = WINDOW) -> list[float]:
    """The mean of each value and the up to ``window - 1`` before it."""
    out = []
    for i in range(len(values)):
        part = values[max(0, i - window + 1): i + 1]
        out.append(sum(part) / len(part))
    return out


def _member(name: str, keys: tuple[str, ...]) -> bool:
    return any(name == k or (k.endswith("/") and name.startswith(k)) for k in keys)


def curve_panels(runs: dict[str, dict[str, Any]]) -> tuple[list, list]:
    """(story panels, other panels), each ``(title, metric names)``: the :data:`STORY_PANELS` with the
    metrics either run logged, then every other family of :func:`sarl.train_report.metric_panels` with
    a metric both runs logged, with every metric of that family either run logged (per-stage timings
    excluded as there)."""
    rows = {name: [r for r in run["rows"] if r.get("step", 0) > 0] for name, run in runs.items()}
    logged = {name: {k for r in rs for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
              for name, rs in rows.items()}
    either, both = set().union(*logged.values()), set.intersection(*logged.values())
    story = [(title, sorted(k for k in either if _member(k, keys))) for title, keys in STORY_PANELS]
    story = [(t, names) for t, names in story if names]
    used = {k for _, names in story for k in names}
    merged = [r for rs in rows.values() for r in rs]
    other = [(t, [k for k in names if k not in used]) for t, names in metric_panels(merged)]
    return story, [(t, names) for t, names in other if any(k in both for k in names)]


# metric colours of multi-metric panels: tab10 without the runs' blue and orange and the warm start's grey
METRIC_COLOURS = ("#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")


def _short_labels(names: list[str]) -> list[str]:
    """The metric names without the ``family/`` part they all share (``style/concise`` → ``concise``)."""
    parts = [n.split("/") for n in names]
    common = 0
    while all(len(p) > common + 1 and p[common] == parts[0][common] for p in parts):
        common += 1
    return ["/".join(p[common:]) for p in parts]


def _draw_panel(ax, runs: dict[str, dict[str, Any]], title: str, names: list[str]) -> None:
    """One panel: each metric of ``names`` for each run (running mean), SA-GRPO solid and wide, GRPO
    dashed on top of it (the two runs often overlap: both stay visible)."""
    import matplotlib.pyplot as plt

    colour = {name: c for _, name, c in MODELS}
    many = plt.get_cmap("tab20")
    for i, (metric, label) in enumerate(zip(names, _short_labels(names))):
        for run_name, run in runs.items():
            pts = [(r["step"], r[metric]) for r in run["rows"] if r.get("step", 0) > 0
                   and isinstance(r.get(metric), int | float)]
            if not pts:
                continue
            c = (colour[run_name] if len(names) == 1 else METRIC_COLOURS[i] if len(names) <= len(METRIC_COLOURS)
                 else many(i % 20))
            solid = run["style"] == "-"
            ax.plot([p[0] for p in pts], running_mean([p[1] for p in pts]), linestyle=run["style"], color=c,
                    linewidth=2.2 if solid else 1.4, marker="." if len(pts) < 15 else None, label=label)
            label = None  # the legend names each metric once
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("training step", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if len(names) == 1:
        ax.set_ylabel(names[0], fontsize=8)
    if title.startswith(("accuracy", "answer styles", "each reward's share")):
        ax.set_ylim(-0.02, 1.02)
    if len(names) > 1:
        ax.legend(fontsize=7 if len(names) <= 6 else 6, ncol=2 if len(names) > 4 else 1, framealpha=0.7)


def plot_curves(runs: dict[str, dict[str, Any]], panels: list, path: Path, cols: int = 3) -> Path | None:
    """Both runs on the same axes, one panel per ``panels`` entry: the :data:`WINDOW`-step running mean
    per step; solid SA-GRPO, dashed GRPO; one colour per run (single-metric panels) or per metric."""
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    colour = {name: c for _, name, c in MODELS}
    n_rows = (len(panels) + cols - 1) // cols
    height = 3.3 * n_rows + 0.6
    fig, axes = plt.subplots(n_rows, cols, figsize=(5.2 * cols, height), squeeze=False)
    for ax, (title, names) in zip(axes.flat, panels):
        _draw_panel(ax, runs, title, names)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    handles = [Line2D([], [], color=colour[n], linestyle=run["style"], linewidth=2.2 if run["style"] == "-" else 1.4,
                      label=f"{n} ({'solid' if run['style'] == '-' else 'dashed'})") for n, run in runs.items()]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), frameon=False, fontsize=10,
               title=f"{WINDOW}-step running mean; in panels with several metrics the colour is the metric",
               title_fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.75 / height))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _bars(ax, q: dict[str, Any], groups: list[str], values: dict[str, list[float]],
          errors: dict[str, list[list[float]]] | None = None) -> None:
    """Grouped bars: one group per ``groups`` entry, one bar per model (its colour), optional 95% errors
    (``[below, above]`` per model); the legend under the axes."""
    width = 0.8 / max(1, len(values))
    colour = {name: c for _, name, c in q["models"]}
    for i, (name, vals) in enumerate(values.items()):
        xs = [g + (i - (len(values) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, vals, width, color=colour[name], label=name,
               yerr=errors[name] if errors else None, capsize=3 if errors else 0)
    ax.set_xticks(range(len(groups)), groups)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=9, ncol=len(values), loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _figure(width: float, height: float):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, height))


def by_steps(q: dict[str, Any], plot_dir: Path) -> tuple[str, Path | None]:
    """Section 4: accuracy per number of steps the problem needs (the evaluations' ``by_steps``)."""
    per = {name: q["evals"][key]["metrics"].get("by_steps") or {} for key, name, _ in q["models"]}
    ks = sorted({k for m in per.values() for k in m}, key=int)
    lines = ["## 4. Accuracy by number of steps", ""]
    if not ks:
        return "\n".join(lines + ["_This evaluation has no step counts (not a synthetic task)._", ""]), None
    names = list(per)
    lines += ["Accuracy in points [95% CI] on the problems that need k dependent steps.", "",
              "| steps | problems | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for k in ks:
        problems = next((m[k]["problems"] for m in per.values() if k in m), 0)
        cells = [_points(m[k]["accuracy"], m[k]["accuracy_se"]) if k in m else "–" for m in per.values()]
        lines.append(f"| {k} | {problems} | " + " | ".join(cells) + " |")
    fig, ax = _figure(7.5, 3.8)
    _bars(ax, q, [f"{k} step{'s' if k != '1' else ''}" for k in ks],
          {n: [m.get(k, {}).get("accuracy", 0) * 100 for k in ks] for n, m in per.items()},
          {n: [[m[k]["accuracy"] * 100 - _interval(m[k]["accuracy"], m[k]["accuracy_se"])[0] if k in m else 0
                for k in ks], [_interval(m[k]["accuracy"], m[k]["accuracy_se"])[1] - m[k]["accuracy"] * 100
                               if k in m else 0 for k in ks]] for n, m in per.items()})
    ax.set_ylabel("accuracy (points)")
    ax.set_ylim(0, 105)
    ax.set_title("accuracy by number of steps (± 95% interval)", fontsize=10)
    return "\n".join(lines + [""]), _save(fig, plot_dir / "accuracy_by_steps.png")


def styles(q: dict[str, Any], plot_dir: Path) -> tuple[str, Path | None]:
    """Section 5: the share of each answer style among the evaluation samples, per model."""
    shares = {name: q["table"][key].get("style_shares") or {} for key, name, _ in q["models"]}
    labels = list(next(iter(shares.values()), {}))
    lines = ["## 5. Answer styles", ""]
    if not labels:
        return "\n".join(lines + ["_This evaluation has no style labels (not a synthetic task)._", ""]), None
    lines += ["Share of the evaluation samples in each answer style (`other`: no boxed final answer).", "",
              "| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {n} | " + " | ".join(f"{s.get(x, 0) * 100:.0f}%" for x in labels) + " |" for n, s in shares.items()]
    fig, ax = _figure(7.5, 3.6)
    _bars(ax, q, labels, {n: [s.get(x, 0) * 100 for x in labels] for n, s in shares.items()})
    ax.set_ylabel("share of samples (%)")
    top = max((v * 100 for sh in shares.values() for v in sh.values()), default=0)
    ax.set_ylim(0, min(100, max(40, 10 * (top // 10 + 2))))
    ax.set_title("answer styles before and after training", fontsize=10)
    return "\n".join(lines + [""]), _save(fig, plot_dir / "styles.png")


def _printable(text: str) -> str:
    """``text`` with control characters other than newline and tab shown as U+FFFD (a tiny model's
    answers hold any token)."""
    return "".join(c if c in "\n\t" or unicodedata.category(c) != "Cc" else "\ufffd" for c in text)


def pick_examples(q: dict[str, Any], k: int = 3) -> list[str]:
    """``k`` problem ids every model answered, those whose first samples differ in correctness first
    (then in the evaluation's order)."""
    first = {key: {r["id"]: r for r in q["evals"][key]["samples"] if r.get("sample", 0) == 0}
             for key, _, _ in q["models"]}
    keys = [key for key, _, _ in q["models"]]
    shared = [i for i in first[keys[0]] if all(i in first[key] for key in keys)] if keys else []
    differ = [i for i in shared if len({bool(first[key][i].get("correct")) for key in keys}) > 1]
    return (differ + [i for i in shared if i not in differ])[:k]


def examples(q: dict[str, Any], k: int = 3) -> str:
    """Section 6: the same problems answered by each model (its first sample, in full)."""
    from sarl.data import load_dataset

    ids = pick_examples(q, k)
    lines = ["## 6. Example answers", "",
             (f"The first sample of each model on the same {len(ids)} held-out problems, in full"
              " (problems where the models disagree first)."), ""]
    by_id = {key: {r["id"]: r for r in q["evals"][key]["samples"] if r.get("sample", 0) == 0}
             for key, _, _ in q["models"]}
    try:
        questions = {p.id: p.question for p in load_dataset(q["dataset"], limit=q["settings"].get("limit"),
                                                             seed=q["settings"].get("data_seed", 0))}
    except Exception:  # noqa: BLE001 - the question is a nicety; the answers are the point
        questions = {}
    for n, pid in enumerate(ids, 1):
        row = next(iter(by_id.values()))[pid]
        steps = f"{row['steps']} step{'s' if row['steps'] != 1 else ''}; " if row.get("steps") else ""
        lines += [f"### Problem {n} ({steps}gold answer {row.get('gold')})", "", f"`{pid}`", ""]
        if pid in questions:
            lines += [f"> {_printable(questions[pid])}".replace("\n", " "), ""]
        for key, name, _ in q["models"]:
            r = by_id[key][pid]
            mark = "✓ correct" if r.get("correct") else "✗ wrong"
            text = _printable(r.get("response", ""))
            fence = "```" + "`" * text.count("```")  # longer than any fence inside the answer
            style = f", style {r['style']}" if r.get("style") else ""
            lines += [f"**{name}**: {mark}{style}, {r.get('length')} tokens"
                      + (" (truncated)" if r.get("truncated") else ""), "", fence, text, fence, ""]
    return "\n".join(lines)


def training_curves(q: dict[str, Any], plot_dir: Path) -> list:
    """Section 3 as blocks: the story's curves, then the other families both runs logged."""
    runs = q["runs"]
    if not runs:
        return ["## 3. Training curves\n\n_No training run found._\n"]
    together = " and ".join(f"{n} ({'solid' if r['style'] == '-' else 'dashed'})" for n, r in runs.items())
    blocks: list = [f"## 3. Training curves\n\n{together}" + (" on the same axes" if len(runs) > 1 else "")
                    + f", {WINDOW}-step running mean of each logged metric; x: training step.\n"]
    story, other = curve_panels(runs)
    png = plot_curves(runs, story, plot_dir / "curves.png")
    if png:
        blocks.append((png, ("reward, SAR, rollout accuracy, length, KL to the reference and answer styles per "
                             f"training step ({WINDOW}-step running mean)")))
    png = plot_curves(runs, other, plot_dir / "curves_other.png")
    if png:
        blocks += ["### Every other logged metric" + (" (both runs)" if len(runs) > 1 else "") + "\n",
                   (png, "the other logged metric families, both runs, same running mean")]
    return blocks


def build_quickstart_report(out_dir: Path) -> dict[str, Path]:
    """Write ``<out_dir>/report/report.md``, ``report.html`` and the plots (``report/plots/``) from a
    finished quickstart folder; returns ``{"md": ..., "html": ...}``."""
    q = load_quickstart(out_dir)
    rep = out_dir / "report"
    plot_dir = rep / "plots"
    steps_md, steps_png = by_steps(q, plot_dir)
    styles_md, styles_png = styles(q, plot_dir)
    blocks: list = [what_ran(q), verdict(q), *training_curves(q, plot_dir), steps_md]
    if steps_png:
        blocks.append((steps_png, "accuracy by the number of steps a problem needs, per model (± 95% interval)"))
    blocks.append(styles_md)
    if styles_png:
        blocks.append((styles_png, "share of each answer style among the evaluation samples, per model"))
    blocks.append(examples(q))
    title = f"sarl quickstart: {q['dataset']}"
    md, body = [f"# {title}", "", f"Run folder: `{out_dir}`", ""], []
    for b in blocks:
        if isinstance(b, str):
            md.append(b)
            body.append(md_to_html(b))
        else:
            png, caption = b
            md += [f"![{caption}](plots/{png.name})", ""]
            body.append(img_tag(png, caption))
    rep.mkdir(parents=True, exist_ok=True)
    md_path, html_path = rep / "report.md", rep / "report.html"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    css = CSS + ("td{white-space:nowrap}td:nth-child(2){text-align:right}table{font-size:13px}pre{white-space:pre-wrap;overflow-wrap:break-word;background:#f7f7f7;padding:6px 8px;"
                 "border-left:3px solid #ccc;font-size:13px}blockquote{margin:0.5em 0;padding:0 1em;color:#444;"
                 "border-left:3px solid #ddd}ul{line-height:1.45}")
    html_path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                         f"<style>{css}</style></head><body><h1>{html.escape(title)}</h1>"
                         f"<p>Run folder: <code>{html.escape(str(out_dir))}</code></p>"
                         + "\n".join(body) + "</body></html>\n", encoding="utf-8")
    return {"md": md_path, "html": html_path}
