"""The report of a training run (``sarl report RUN_DIR`` on a ``sarl train`` output folder): the run's
settings, curves of every logged metric group per step, and example answers from the first and the
last step with their rewards (``samples.jsonl``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sarl.io import read_rows
from sarl.run_folder import LEGACY_FACTS, RunFolder, read_yaml

# Metric groups plotted, in order: (title, metric-name prefixes or names).
GROUPS = [
    ("reward", ("reward/",)), ("accuracy", ("accuracy", "val/accuracy")), ("length", ("response_length/mean",)),
    ("KL to the reference", ("kl/ref",)), ("entropy", ("actor/entropy",)),
    ("losses", ("actor/pg_loss", "actor/kl_loss", "critic/loss")), ("gradient norm", ("actor/grad_norm",)),
    ("seconds per step", ("time/step",)), ("answer styles (share of the batch)", ("style/",)),
    ("each reward's share of the advantage", ("adv/share/",)), ("groups all correct / all wrong", ("groups/",)),
    ("advantage mass per style and reward", ("adv/style/",)),
]
# never plotted (names, or prefixes ending in "/"): the x axis, the schedule's constants and the per-stage
# timings (their sum, time/step, is "seconds per step")
NOT_PLOTTED = ("step", "progress", "reward/alpha", "time/")
SETTING_KEYS = ("model.name", "data.train", "algorithm.adv_estimator", "algorithm.advantage_weighting_in_grpo",
                "algorithm.reward_aggregation",
                "rewards.weights", "rewards.schedule.type", "actor.lr", "actor.policy_loss", "actor.loss_agg_mode",
                "actor.mask_truncated", "actor.use_kl_loss",
                "actor.kl_loss_coef", "actor.kl_loss_type", "rollout.n", "rollout.temperature",
                "trainer.prompts_per_step", "trainer.total_steps", "data.max_response_length", "trainer.seed")


def is_training_run(d: Path) -> bool:
    return (d / "metrics.jsonl").exists() and (d / "config.yaml").exists()


def load_run(d: Path) -> dict[str, Any]:
    """The run's config, its facts (``run.yaml``: engine, processes, precision), its metric rows (one per
    step) and its logged samples."""
    config = read_yaml(d / "config.yaml")
    facts = RunFolder(d).saved_facts()  # run.yaml, or the keys an older folder kept in its config
    for key in LEGACY_FACTS:
        config.pop(key, None)
    rows = [r for r in read_rows(d / "metrics.jsonl") if "step" in r]
    samples = read_rows(d / "samples.jsonl") if (d / "samples.jsonl").exists() else []
    return {"dir": d, "config": config, "facts": facts, "rows": rows, "samples": samples}


def config_value(config: dict, dotted: str) -> Any:
    """The value at a dotted key of a saved recipe (``actor.lr``), or None where it is absent (a run saved
    before the key existed)."""
    cur: Any = config
    for part in dotted.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return cur


def settings_markdown(run: dict[str, Any]) -> str:
    lines = ["| setting | value |", "|---|---|"]
    lines += [f"| {k} | {json.dumps(config_value(run['config'], k))} |" for k in SETTING_KEYS]
    lines += [f"| {k} (run) | {json.dumps(v)} |" for k, v in run.get("facts", {}).items()]
    return "\n".join(lines)


def metric_panels(rows: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    """``(title, metric names)`` per panel: the :data:`GROUPS` first, then every other logged numeric
    metric grouped by the part of its name before the first ``/`` (so every family is drawn)."""
    numeric = sorted({k for r in rows for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)})
    prefixes = tuple(p for p in NOT_PLOTTED if p.endswith("/"))
    numeric = [k for k in numeric if k == "time/step" or not (k in NOT_PLOTTED or k.startswith(prefixes))]

    def member(k: str, keys: tuple[str, ...]) -> bool:
        return any(k == p or (p.endswith("/") and k.startswith(p)) for p in keys)

    panels, used = [], set()
    for title, keys in GROUPS:
        names = [k for k in numeric if member(k, keys) and k not in used]
        if names:
            panels.append((title, names))
            used.update(names)
    families: dict[str, list[str]] = {}
    for k in numeric:
        if k not in used:
            families.setdefault(k.split("/", 1)[0], []).append(k)
    return panels + sorted(families.items())


def plot_curves(run: dict[str, Any], path: Path) -> Path | None:
    """One panel per metric group with at least one logged value; x = training step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in run["rows"] if r.get("step", 0) > 0 or any(k.startswith("val/") for k in r)]
    panels = metric_panels(rows)
    if not panels:
        return None
    cols = 4
    fig, axes = plt.subplots((len(panels) + cols - 1) // cols, cols, figsize=(16, 3.3 * ((len(panels) + cols - 1) // cols)),
                             squeeze=False)
    for ax, (title, names) in zip(axes.flat, panels):
        for name in names:
            pts = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), int | float)]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None, label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        if title == "accuracy":
            ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        if len(names) > 1:
            ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _fmt(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals; anything else (a missing value) as text, ``-`` for None."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        return f"{v:.{digits}f}"
    return "-" if v is None else str(v)


# the fields of a samples.jsonl row that are not rewards (sarl.run_folder.sample_rows)
SAMPLE_FIELDS = ("step", "question", "gold", "response", "length", "reward")


def _rewards_cell(s: dict[str, Any]) -> str:
    """Each reward of a sample (``reward/<name>``; a number under another name, as old TRL runs wrote
    them, counts too) and the total."""
    parts = [(n.removeprefix("reward/"), v) for n, v in s.items() if n not in SAMPLE_FIELDS
             and (n.startswith("reward/") or (isinstance(v, int | float) and not isinstance(v, bool)))]
    text = ", ".join(f"{n} {_fmt(v)}" for n, v in parts)
    return text + (f" (total {_fmt(s['reward'])})" if s.get("reward") is not None else "")


def examples_markdown(run: dict[str, Any], k: int = 2, width: int = 300) -> str:
    """Example answers of the first and the last logged step, with their rewards (a field a run did not
    log shows as ``-``)."""
    samples = [s for s in run["samples"] if isinstance(s.get("step"), int)]
    if not samples:
        return "_no samples logged (trainer.log_samples = 0)_"
    steps = sorted({s["step"] for s in samples})

    def cell(t: Any) -> str:
        return ("-" if t is None else str(t)).replace("|", "\\|").replace("\n", " ")[:width]

    lines = []
    for step in dict.fromkeys((steps[0], steps[-1])):
        lines += [f"#### step {step}", "", "| question | gold | answer | length | rewards |", "|---|---|---|---|---|"]
        for s in [s for s in samples if s["step"] == step][:k]:
            lines.append(f"| {cell(s.get('question'))} | {cell(s.get('gold'))} | {cell(s.get('response'))} | "
                         f"{cell(s.get('length'))} | {_rewards_cell(s)} |")
        lines.append("")
    return "\n".join(lines)


def run_section(run: dict[str, Any], plot_dir: Path) -> tuple[str, str, Path | None]:
    """One training run as Markdown: the part before the curves, the part after them, and the curves'
    PNG (the report puts the image between the two)."""
    d, rows = run["dir"], run["rows"]
    last = rows[-1] if rows else {}
    head = [f"## Training run `{d}`", "", f"{len(rows)} logged steps; final model: `{d / 'final'}`", "",
            "### Settings", "", settings_markdown(run), "", "### Curves", ""]
    png = plot_curves(run, plot_dir / f"train_{Path(d).name}.png")
    tail = []
    if last:
        tail += [(f"Last step: reward {_fmt(last.get('reward/mean'))}, accuracy {_fmt(last.get('accuracy'))}, "
                  f"length {_fmt(last.get('response_length/mean'), 1)}."), ""]
    tail += ["### Example answers", "", examples_markdown(run), ""]
    return "\n".join(head), "\n".join(tail), png
