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
    p.add_argument("--steps", type=int, default=40, help="RL steps per run")
    p.add_argument("--lr", type=float, default=2e-4, help="RL learning rate")
    p.add_argument("--prompts-per-step", type=int, default=8)
    p.add_argument("--n", type=int, default=8, help="rollouts per prompt")
    p.add_argument("--max-response", type=int, default=160, help="max response tokens (RL and eval)")
    p.add_argument("--eval-limit", type=int, default=200, help="held-out problems per eval set")
    p.add_argument("--sft-model", default="layers=4,hidden=128,heads=4", help="new-model spec of the warm start")
    p.add_argument("--sft-data", default="synth_arith=3000,synth_logic=1000", help="SFT corpus: task=count,...")
    p.add_argument("--sft-epochs", type=float, default=1.0)
    p.add_argument("--sft-lr", type=float, default=1e-3)
    p.add_argument("--padded-fraction", type=float, default=0.5)
    p.add_argument("--threads", type=int, default=None)
    return p.parse_args(argv)


def _counts(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in (part.split("=") for part in text.split(",") if part)}


def warm_start(args, root: Path, console, factory) -> Path:
    from sarl.sft import SFTConfig, run_sft

    out = root / "sft"
    model = out / "model"
    if (out / "summary.json").exists() and model.exists():
        console.print(f"warm start: reusing {model}")
        return model
    cfg = SFTConfig(data="synthetic", synthetic_tasks=_counts(args.sft_data), padded_fraction=args.padded_fraction,
                    new_model=args.sft_model, epochs=args.sft_epochs, lr=args.sft_lr, batch_size=16,
                    out_dir=str(out), save_every=50, threads=args.threads)
    console.print(f"[bold]warm start[/bold]: SFT of a new Llama ({args.sft_model}) on {args.sft_data}")
    run_sft(cfg, resume=(out / "metrics.jsonl").exists(), progress_factory=factory)
    return model


def rl_overrides(args, arm: str, seed: int, model: Path, out: Path) -> list[str]:
    weights = dict(ARMS[arm])
    if args.alpha is not None:
        weights = {k: (v if k == "correctness" else args.alpha) for k, v in weights.items()}
    w = ", ".join(f"{k}: {v}" for k, v in weights.items())
    return [
        f"model.name={model}", "model.dtype=float32", "model.device=cpu",
        "data.train=synth_arith", "data.train_size=4000", "data.val=null", "data.instruction=none",
        "data.max_prompt_length=128", f"data.max_response_length={args.max_response}",
        f"rollout.n={args.n}", "rollout.temperature=1.0", f"rollout.batch_size={args.n * args.prompts_per_step}",
        f"trainer.prompts_per_step={args.prompts_per_step}", f"trainer.total_steps={args.steps}",
        f"trainer.seed={seed}", f"trainer.out_dir={out}", "trainer.save_every=10", "trainer.keep_last=1",
        "trainer.tensorboard=false",
        "algorithm.adv_estimator=grpo", "algorithm.norm_adv_by_std_in_grpo=false",
        f"actor.lr={args.lr}", "actor.loss_agg_mode=seq-mean-token-sum-norm", "actor.micro_batch_size=32",
        "actor.use_kl_loss=true", "actor.kl_loss_coef=0.001", "actor.kl_loss_type=k3",
        f"rewards.weights={{{w}}}",
    ] + ([f"model.threads={args.threads}"] if args.threads else [])


def train_run(args, arm: str, seed: int, model: Path, root: Path, console) -> Path:
    from sarl.config import load_config
    from sarl.train import train
    from sarl.train.checkpoint import latest_checkpoint

    out = root / "runs" / f"{arm}-s{seed}"
    final = out / "final"
    if final.exists():
        return final
    cfg = load_config(None, rl_overrides(args, arm, seed, model, out))
    resume = latest_checkpoint(out / "checkpoints") is not None
    console.print(f"[bold]{LABELS[arm]}[/bold] seed {seed}: {args.steps} steps" + (" (resumed)" if resume else ""))

    def on_step(m):
        if m["step"] % 5 == 0 or m["step"] == args.steps:
            sar = f" sar={m['sar/mean']:.3f}" if m.get("sar/mean") is not None else ""
            console.print(f"  step {m['step']}: acc={m['accuracy']:.3f} len={m['response_length/mean']:.1f}"
                          f"{sar} ({m['time/step']:.1f}s)")

    last = train(cfg, resume=resume, console=None, on_step=on_step)
    return Path(last["final_model"])


def evaluate_run(name: str, model_path: Path, root: Path, settings, problems, factory) -> dict[str, dict]:
    from sarl.evaluate import evaluate_model
    from sarl.models import load_model
    from sarl.rollout import make_backend

    lm = load_model(str(model_path), dtype="float32", device="cpu")
    return evaluate_model(lm, make_backend(lm, "transformers"), name, settings, root / "eval", factory, problems)


def summarise(results: dict[str, dict], arms: list[str], seeds: list[int]) -> dict[str, Any]:
    """Per-arm mean and range over seeds of accuracy and mean length on both held-out sets."""
    def agg(values):
        values = [v for v in values if v is not None]
        if not values:
            return None
        return {"mean": statistics.fmean(values), "min": min(values), "max": max(values), "n": len(values)}

    arms_out = {}
    for arm in ["sft"] + arms:
        runs = ["sft"] if arm == "sft" else [f"{arm}-s{s}" for s in seeds]
        runs = [r for r in runs if r in results]
        if not runs:
            continue
        arms_out[arm] = {ds: {k: agg([results[r][ds].get(k) for r in runs])
                              for k in ("accuracy", "mean_length", "truncation_rate")}
                         for ds in (IN_DOMAIN, OUT_OF_DOMAIN)}
        arms_out[arm]["runs"] = runs
    goal = None
    if "grpo" in arms_out and "sa_grpo" in arms_out:
        g, s = arms_out["grpo"][IN_DOMAIN], arms_out["sa_grpo"][IN_DOMAIN]
        ratio = s["mean_length"]["mean"] / g["mean_length"]["mean"]
        dacc = 100 * (s["accuracy"]["mean"] - g["accuracy"]["mean"])
        goal = {"length_ratio": ratio, "accuracy_delta_points": dacc,
                "met": ratio <= 0.8 and dacc >= -1.0, "target": "length ratio <= 0.8 and accuracy >= GRPO - 1 point"}
    return {"arms": arms_out, "goal": goal}


def _fmt(a: dict | None, pct: bool) -> str:
    if a is None:
        return "–"
    if pct:
        return f"{100 * a['mean']:.1f} ({100 * a['min']:.1f}–{100 * a['max']:.1f})" if a["n"] > 1 else f"{100 * a['mean']:.1f}"
    return f"{a['mean']:.1f} ({a['min']:.1f}–{a['max']:.1f})" if a["n"] > 1 else f"{a['mean']:.1f}"


def markdown_table(summary: dict[str, Any], command: str) -> str:
    lines = [f"Command: `{command}`", "",
             "| arm | in-domain acc % | in-domain length | OOD (logic) acc % | OOD length | runs |",
             "|---|---|---|---|---|---|"]
    for arm, a in summary["arms"].items():
        i, o = a[IN_DOMAIN], a[OUT_OF_DOMAIN]
        lines.append(f"| {LABELS[arm]} | {_fmt(i['accuracy'], True)} | {_fmt(i['mean_length'], False)} | "
                     f"{_fmt(o['accuracy'], True)} | {_fmt(o['mean_length'], False)} | {len(a['runs'])} |")
    lines.append("")
    lines.append("Mean over seeds, (min–max) across seeds; length in tokens; greedy decoding.")
    g = summary.get("goal")
    if g:
        lines.append(f"SA-GRPO vs GRPO (in-domain): length ratio {g['length_ratio']:.2f}, accuracy "
                     f"{g['accuracy_delta_points']:+.1f} points; goal ({g['target']}): "
                     f"{'met' if g['met'] else 'missed'}.")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, dict], summary: dict[str, Any], root: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"sft": "black", "grpo": "tab:blue", "sa_grpo": "tab:red", "grpo_o1": "tab:green",
              "grpo_er": "tab:purple", "grpo_entropy": "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, ds, title in ((axes[0], IN_DOMAIN, "in-domain: arithmetic (held out)"),
                          (axes[1], OUT_OF_DOMAIN, "out-of-domain: logic (held out)")):
        for arm, a in summary["arms"].items():
            for run in a["runs"]:
                m = results[run][ds]
                ax.scatter(m["mean_length"], 100 * m["accuracy"], color=colors[arm], alpha=0.35, s=25)
            ax.scatter(a[ds]["mean_length"]["mean"], 100 * a[ds]["accuracy"]["mean"], color=colors[arm], s=110,
                       marker="*" if arm == "sa_grpo" else "o", edgecolor="black", label=LABELS[arm], zorder=3)
        ax.set_xlabel("mean response length (tokens)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Accuracy vs length (up-left is better); small dots = seeds, large = mean")
    fig.tight_layout()
    fig.savefig(root / "pareto.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for arm in summary["arms"]:
        if arm == "sft":
            continue
        per_step: dict[int, list[dict]] = {}
        for run in summary["arms"][arm]["runs"]:
            path = root / "runs" / run / "metrics.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    row = json.loads(line)
                    if "accuracy" in row:
                        per_step.setdefault(row["step"], []).append(row)
        steps = sorted(per_step)
        for ax, key in zip(axes, ("accuracy", "response_length/mean", "sar/mean")):
            ys = [statistics.fmean(r[key] for r in per_step[s] if r.get(key) is not None)
                  if any(r.get(key) is not None for r in per_step[s]) else float("nan") for s in steps]
            ax.plot(steps, ys, color=colors[arm], label=LABELS[arm])
            ax.set_title(f"training {key} (mean over seeds)")
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(root / "curves.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from sarl.cli import progress_bar, task_factory
    from sarl.data import load_dataset
    from sarl.evaluate import EvalSettings, write_summary
    from sarl.io import write_json_atomic
    from sarl.rollout import GenerationConfig

    args = parse_args(argv)
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; choose from {', '.join(ARMS)}")
    seeds = [int(s) for s in args.seeds.split(",") if s]
    root = args.output
    root.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/reproduce.py " + " ".join(argv if argv is not None else sys.argv[1:])
    settings = EvalSettings(datasets=[IN_DOMAIN, OUT_OF_DOMAIN], limit=args.eval_limit, instruction="none",
                            gen=GenerationConfig(max_new_tokens=args.max_response, batch_size=64))
    problems = {ds: load_dataset(ds, limit=args.eval_limit) for ds in settings.datasets}
    t0 = time.perf_counter()
    results: dict[str, dict] = {}
    with progress_bar() as prog:
        console, factory = prog.console, task_factory(prog)
        model = warm_start(args, root, console, factory)
        results["sft"] = evaluate_run("sft", model, root, settings, problems, factory)
        for arm in arms:
            for seed in seeds:
                final = train_run(args, arm, seed, model, root, console)
                name = f"{arm}-s{seed}"
                results[name] = evaluate_run(name, final, root, settings, problems, factory)
                write_summary(root / "eval", {name: results[name]}, settings, reference="sft")
                summary = summarise(results, arms, seeds)
                write_json_atomic(root / "results.json", {"args": vars(args) | {"output": str(root)},
                                                          "command": command, "runs": results, **summary})
    write_summary(root / "eval", results, settings, reference="sft")
    summary = summarise(results, arms, seeds)
    write_json_atomic(root / "results.json", {"args": vars(args) | {"output": str(root)}, "command": command,
                                              "runs": results, **summary, "seconds": time.perf_counter() - t0})
    (root / "results.md").write_text(markdown_table(summary, command))
    plot(results, summary, root)
    print(markdown_table(summary, command))
    print(f"wrote {root / 'results.json'}, {root / 'results.md'}, {root / 'pareto.png'}, {root / 'curves.png'} "
          f"({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
