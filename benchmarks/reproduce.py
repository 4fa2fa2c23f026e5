"""CPU reproduction of SAR's claim: shorter answers at equal accuracy, against length baselines.

Pipeline (every stage is resumable: rerun the same command after an interruption):

1. **warm start**: ``sarl sft`` trains a new small Llama (default tokenizer) on the built-in synthetic
   corpus (:mod:`sarl.data.synthetic`): arithmetic word problems and Boolean logic, half of the
   solutions written concisely, half padded with question-independent filler;
2. **RL arms**, identical except the reward: GRPO (correctness), SA-GRPO (+ α·SAR), GRPO + O1-Pruner,
   GRPO + ER, GRPO + entropy; Dr.GRPO (no std normalisation, ``seq-mean-token-sum-norm``), trained on
   ``synth_arith`` only, each with several seeds;
3. **held-out evaluation** (greedy) of the warm start and every run: in-domain ``synth_arith_test``
   (no arithmetic shared with training) and out-of-domain ``synth_logic_test`` (logic was in SFT, never in
   RL);
4. **results**: ``results.json``, ``results.md`` (table), ``pareto.png`` (accuracy vs length),
   ``curves.png`` (training curves).

    python benchmarks/reproduce.py                 # the full comparison (make reproduce)
    python benchmarks/reproduce.py --arms grpo,sa_grpo --seeds 0 --steps 5   # a smaller one
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from sarl.quickstart import SYNTH_SFT
from sarl.sft import format_task_counts, parse_task_counts

ARMS: dict[str, dict[str, float]] = {
    "grpo": {"correctness": 1.0},
    "sa_grpo": {"correctness": 1.0, "sar": 0.2},
    "grpo_o1": {"correctness": 1.0, "o1_pruner": 0.2},
    "grpo_er": {"correctness": 1.0, "efficient_reasoner": 0.2},
    "grpo_entropy": {"correctness": 1.0, "entropy": 0.2},
}
LABELS = {"sft": "SFT warm start", "grpo": "GRPO", "sa_grpo": "SA-GRPO", "grpo_o1": "GRPO + O1-Pruner",
          "grpo_er": "GRPO + ER", "grpo_entropy": "GRPO + entropy"}
IN_DOMAIN, OUT_OF_DOMAIN = "synth_arith_test", "synth_logic_test"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--output", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from: {', '.join(ARMS)}")
    p.add_argument("--seeds", default="0,1", help="comma-separated RL seeds")
    p.add_argument("--alpha", type=float, default=None,
                   help="override the weight of every arm's extra reward (default: 0.2, the reference's)")
    p.add_argument("--steps", type=int, default=80, help="RL steps per run")
    p.add_argument("--lr", type=float, default=3e-5, help="RL learning rate")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--n", type=int, default=8, help="rollouts per prompt")
    p.add_argument("--max-response", type=int, default=160, help="max response tokens (RL and eval)")
    p.add_argument("--eval-limit", type=int, default=300, help="held-out problems per eval set")
    p.add_argument("--eval-samples", type=int, default=4, help="samples per problem in the sampled evaluation (T=1)")
    p.add_argument("--sft-model", default=SYNTH_SFT["new_model"], help="new-model spec of the warm start")
    p.add_argument("--sft-tokenizer", type=int, default=SYNTH_SFT["new_tokenizer"], help="vocabulary of the warm start's new tokenizer")
    p.add_argument("--sft-data", default=format_task_counts(SYNTH_SFT["synthetic_tasks"]), help="SFT corpus: task=count,...")
    p.add_argument("--sft-epochs", type=float, default=SYNTH_SFT["epochs"])
    p.add_argument("--sft-lr", type=float, default=SYNTH_SFT["lr"])
    p.add_argument("--padded-fraction", type=float, default=SYNTH_SFT["padded_fraction"])
    p.add_argument("--sft-from", type=Path, default=None,
                   help="reuse the warm start of an earlier run (its output folder) instead of training one")
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def warm_start(args, root: Path, console, factory) -> Path:
    from sarl.quickstart import warm_start as train_warm_start

    out = args.sft_from or root / "sft"
    if args.sft_from is not None and not (out / "summary.json").exists():
        raise SystemExit(f"--sft-from {out}: no finished warm start there (expected {out}/summary.json)")
    return train_warm_start(out, console, factory, {
        "synthetic_tasks": parse_task_counts(args.sft_data), "padded_fraction": args.padded_fraction,
        "new_model": args.sft_model, "new_tokenizer": args.sft_tokenizer, "epochs": args.sft_epochs,
        "lr": args.sft_lr, "threads": args.threads})


def rl_overrides(args, arm: str, seed: int, model: Path, out: Path) -> list[str]:
    from sarl.quickstart import synth_rl_overrides

    weights = dict(ARMS[arm])
    if args.alpha is not None:
        weights = {k: (v if k == "correctness" else args.alpha) for k, v in weights.items()}
    return synth_rl_overrides(model, out, weights=weights, steps=args.steps, seed=seed, lr=args.lr, n=args.n,
                              prompts_per_step=args.prompts_per_step, max_response=args.max_response
                              ) + ["trainer.tensorboard=false"] + ([f"model.threads={args.threads}"] if args.threads else [])


def train_run(args, arm: str, seed: int, model: Path, root: Path, console) -> Path:
    from sarl.config import load_config
    from sarl.quickstart import train_or_resume

    out = root / "runs" / f"{arm}-s{seed}"
    cfg = load_config(None, rl_overrides(args, arm, seed, model, out))
    console.print(f"[bold]{LABELS[arm]}[/bold] seed {seed}: {args.steps} steps")

    def on_step(m):
        if m["step"] % 5 == 0 or m["step"] == args.steps:
            sar = f" sar={m['reward/sar']:.3f}" if m.get("reward/sar") is not None else ""
            console.print(f"  step {m['step']}: acc={m['accuracy']:.3f} len={m['response_length/mean']:.1f}"
                          f"{sar} ({m['time/step']:.1f}s)")

    return train_or_resume(cfg, console, on_step)


def eval_modes(args) -> dict[str, Any]:
    """The two held-out evaluations: sampled as in training (T=1, several samples per problem; the
    policy's own accuracy and length) and greedy."""
    from sarl.rollout import GenerationConfig

    return {"sampled": GenerationConfig(max_new_tokens=args.max_response, temperature=1.0, n=args.eval_samples,
                                        seed=0, batch_size=64),
            "greedy": GenerationConfig(max_new_tokens=args.max_response, batch_size=64)}


ACC_KEY = {"sampled": "sample_accuracy", "greedy": "accuracy"}


def evaluate_run(name: str, model_path: Path, root: Path, settings_by_mode, problems, factory) -> dict[str, dict]:
    from sarl.evaluate import evaluate_model
    from sarl.models import load_model
    from sarl.rollout import make_backend

    lm = load_model(str(model_path), dtype="float32", device="cpu")
    backend = make_backend(lm, "transformers")
    return {mode: evaluate_model(lm, backend, name, st, root / "eval" / mode, factory, problems)
            for mode, st in settings_by_mode.items()}


def summarise(results: dict[str, dict], arms: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per arm and evaluation mode: mean and range over seeds of accuracy, length and truncation on both
    held-out sets, and whether SA-GRPO met the goal against GRPO (sampled, in-domain)."""
    def agg(values):
        values = [v for v in values if v is not None]
        if not values:
            return None
        return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values)}

    out: dict[str, Any] = {}
    for mode, acc_key in ACC_KEY.items():
        arms_out = {}
        for arm in ["sft"] + arms:
            runs = ["sft"] if arm == "sft" else [f"{arm}-s{s}" for s in seeds]
            runs = [r for r in runs if r in results and mode in results[r]]
            if not runs:
                continue
            arms_out[arm] = {ds: {"accuracy": agg([results[r][mode][ds].get(acc_key) for r in runs]),
                                  **{k: agg([results[r][mode][ds].get(k) for r in runs])
                                     for k in ("mean_length", "truncation_rate")}}
                             for ds in (IN_DOMAIN, OUT_OF_DOMAIN)}
            arms_out[arm]["runs"] = runs
        out[mode] = arms_out
    goal = None
    arms_s = out.get("sampled", {})
    if "grpo" in arms_s and "sa_grpo" in arms_s:
        g, a = arms_s["grpo"][IN_DOMAIN], arms_s["sa_grpo"][IN_DOMAIN]
        ratio = a["mean_length"]["mean"] / g["mean_length"]["mean"]
        dacc = 100 * (a["accuracy"]["mean"] - g["accuracy"]["mean"])
        goal = {"length_ratio": ratio, "accuracy_delta_points": dacc, "met": ratio <= 0.8 and dacc >= -1.0,
                "target": "length <= 0.8 x GRPO's and accuracy >= GRPO's - 1 point (sampled, in-domain)"}
    return {"arms": out, "goal": goal}


def _fmt(a: dict | None, pct: bool) -> str:
    if a is None:
        return "–"
    scale = 100 if pct else 1
    text = f"{scale * a['mean']:.1f}"
    return text + (f" ({scale * a['min']:.1f}–{scale * a['max']:.1f})" if a["n"] > 1 else "")


def markdown_table(summary: dict[str, Any], command: str, args) -> str:
    lines = [f"Command: `{command}`", ""]
    for mode, title in (("sampled", f"sampled (T=1, {args.eval_samples} samples per problem)"), ("greedy", "greedy")):
        lines += [f"**Held-out evaluation, {title}**; {args.eval_limit} problems per set", "",
                  "| arm | in-domain acc % | in-domain length | OOD (logic) acc % | OOD length | runs |",
                  "|---|---|---|---|---|---|"]
        for arm, a in summary["arms"].get(mode, {}).items():
            i, o = a[IN_DOMAIN], a[OUT_OF_DOMAIN]
            lines.append(f"| {LABELS[arm]} | {_fmt(i['accuracy'], True)} | {_fmt(i['mean_length'], False)} | "
                         f"{_fmt(o['accuracy'], True)} | {_fmt(o['mean_length'], False)} | {len(a['runs'])} |")
        lines.append("")
    lines.append("Mean over seeds, (min–max) across seeds; length in tokens of the warm start's tokenizer.")
    g = summary.get("goal")
    if g:
        lines.append(f"SA-GRPO vs GRPO: length ratio {g['length_ratio']:.2f}, accuracy "
                     f"{g['accuracy_delta_points']:+.1f} points; goal ({g['target']}): "
                     f"**{'met' if g['met'] else 'missed'}**.")
    return "\n".join(lines) + "\n"


COLORS = {"sft": "black", "grpo": "tab:blue", "sa_grpo": "tab:red", "grpo_o1": "tab:green",
          "grpo_er": "tab:purple", "grpo_entropy": "tab:orange"}


def plot(results: dict[str, dict], summary: dict[str, Any], root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for row, mode in enumerate(("sampled", "greedy")):
        for col, (ds, title) in enumerate(((IN_DOMAIN, "in-domain: arithmetic"), (OUT_OF_DOMAIN, "out-of-domain: logic"))):
            ax = axes[row][col]
            for arm, a in summary["arms"].get(mode, {}).items():
                for run in a["runs"]:
                    m = results[run][mode][ds]
                    ax.scatter(m["mean_length"], 100 * m[ACC_KEY[mode]], color=COLORS[arm], alpha=0.35, s=25)
                ax.scatter(a[ds]["mean_length"]["mean"], 100 * a[ds]["accuracy"]["mean"], color=COLORS[arm], s=120,
                           marker="*" if arm == "sa_grpo" else "o", edgecolor="black", label=LABELS[arm], zorder=3)
            ax.set_xlabel("mean response length (tokens)")
            ax.set_ylabel("accuracy (%)")
            ax.set_title(f"{title}, held out, {mode}")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Accuracy vs length (up-left is better); small dots = seeds, large = mean over seeds")
    fig.tight_layout()
    fig.savefig(root / "pareto.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for arm, a in summary["arms"].get("sampled", {}).items():
        if arm == "sft":
            continue
        per_step: dict[int, list[dict]] = {}
        for run in a["runs"]:
            path = root / "runs" / run / "metrics.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    row = json.loads(line)
                    if "accuracy" in row:
                        per_step.setdefault(row["step"], []).append(row)
        steps = sorted(per_step)
        for ax, key in zip(axes, ("accuracy", "response_length/mean", "reward/sar")):
            vals = [[r[key] for r in per_step[s] if r.get(key) is not None] for s in steps]
            ax.plot(steps, [statistics.fmean(v) if v else float("nan") for v in vals], color=COLORS[arm],
                    label=LABELS[arm])
            ax.set_title(f"training {key} (mean over seeds)", fontsize=10)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(root / "curves.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from sarl.cli import progress_bar, task_factory
    from sarl.data import load_dataset
    from sarl.evaluate import EvalSettings, write_summary
    from sarl.io import write_json_atomic

    args = parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    root = args.output
    root.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
    settings = {mode: EvalSettings(datasets=[IN_DOMAIN, OUT_OF_DOMAIN], limit=args.eval_limit, instruction="none",
                                   gen=gen) for mode, gen in eval_modes(args).items()}
    problems = {ds: load_dataset(ds, limit=args.eval_limit) for ds in (IN_DOMAIN, OUT_OF_DOMAIN)}
    t0 = time.perf_counter()
    results: dict[str, dict] = {}

    def save() -> dict[str, Any]:
        summary = summarise(results, arms, seeds)
        write_json_atomic(root / "results.json", {"args": {**vars(args), "output": str(root)}, "command": command,
                                                  "runs": results, **summary,
                                                  "seconds_this_invocation": time.perf_counter() - t0})
        return summary

    with progress_bar() as prog:
        console, factory = prog.console, task_factory(prog)
        model = warm_start(args, root, console, factory)
        results["sft"] = evaluate_run("sft", model, root, settings, problems, factory)
        for arm in arms:
            for seed in seeds:
                final = train_run(args, arm, seed, model, root, console)
                name = f"{arm}-s{seed}"
                results[name] = evaluate_run(name, final, root, settings, problems, factory)
                save()
    for mode, st in settings.items():
        write_summary(root / "eval" / mode, {name: r[mode] for name, r in results.items()}, st, reference="sft")
    summary = save()
    table = markdown_table(summary, command, args)
    (root / "results.md").write_text(table)
    plot(results, summary, root)
    print(table)
    print(f"wrote {root / 'results.json'}, {root / 'results.md'}, {root / 'pareto.png'}, {root / 'curves.png'} "
          f"({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
