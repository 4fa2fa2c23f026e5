"""``sarl quickstart``: the whole loop, sized for about fifteen CPU minutes on 2 cores.

With no ``--model`` (the default set-up):

1. **warm start**: ``sarl sft`` trains a new small Llama (1M parameters, its own 1,024-entry tokenizer)
   on ``synth_chain_v2`` (:mod:`sarl.data.synthetic_v2`): problems needing 1–4 dependent steps, solutions
   in four styles (concise, padded, shortcut, restated), each style opening with its own phrase
   (reused when present);
2. evaluate it on held-out problems (``synth_chain_v2_test``: no test problem shares its first step with
   an SFT or RL problem; single operations do recur inside SFT solutions, see
   :mod:`sarl.data.synthetic_v2`), sampled as in training (T=1, 4 samples per problem), with the share of
   each answer style;
3. train it with SA-GRPO (correctness + α·SAR, Dr.GRPO) on ``synth_chain_v2``'s RL split, and, from the
   same warm start with the same seed and settings, with GRPO (correctness only): the baseline SAR is
   measured against. On a machine with 2 or more cores the two runs train side by side, one thread each;
4. evaluate both trained models on the same problems;
5. score the models' sampled answers with SAR (each with its own weights), print the table (accuracy,
   mean length, mean SAR, styles), SA-GRPO's change against the warm start and **SA-GRPO − GRPO** (length
   ratio, accuracy difference with its interval, paired over problems) and write a report.

With ``--model`` (the built-in ``default`` SmolLM2-135M-Instruct, a folder or a hub id) there is no
warm start and the task is reasoning-gym ``basic_arithmetic`` (training items from seed 0, evaluation
items from ``data.val_seed``), evaluated greedy. The default model barely solves it (4/100 greedy), so
a few steps show the pipeline, not an effect.

Re-running the same command resumes: finished stages are reused, training continues from its last
checkpoint.

:data:`SYNTH_SFT` and :data:`SYNTH_RECIPE` (the YAML file ``configs/cpu/quickstart.yaml``, through
:func:`synth_rl_overrides`) also drive ``benchmarks/frontier.py``; ``benchmarks/reproduce.py`` (the
earlier reproduction on ``synth_chain``) pins its own task.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The warm start: a new 4-layer, 128-wide Llama with a 1,024-entry tokenizer trained on synth_chain_v2
# solutions in four styles (sarl.data.synthetic.STYLES).
SYNTH_SFT: dict[str, Any] = {
    "data": "synthetic", "synthetic_tasks": {"synth_chain_v2": 12000},
    "style_mix": "concise=0.3,padded=0.3,shortcut=0.25,restated=0.15",
    "new_model": "layers=4,hidden=128,heads=4", "new_tokenizer": 1024, "epochs": 3.0, "lr": 2e-3, "batch_size": 32,
    "save_every": 100,
}
SYNTH_TRAIN, SYNTH_EVAL = "synth_chain_v2", "synth_chain_v2_test"
# The quickstart's own SFT runs each batch as two length-sorted micro-batches (``sarl sft
# --micro-batch-size``): the same update in exact arithmetic at 0.79x the step time
# (benchmarks/bench_sft_micro.py), on another floating-point path, so another warm start (docs/RESULTS.md);
# the frontier's warm starts, pre-registered as SYNTH_SFT, keep whole batches.
QUICKSTART_SFT: dict[str, Any] = {"micro_batch_size": 16}
# SA-GRPO's reward in the quickstart: α = 1, the middle of the SA-GRPO grid the validation pilot chose for
# the frontier test (0.88x GRPO's length at 240 steps there; α = 0.2, the reference's, gave 0.97x).
QUICKSTART_WEIGHTS: dict[str, float] = {"correctness": 1.0, "sar": 1.0}


# The RL recipes (YAML files shipped in sarl/configs/cpu/).
SYNTH_RECIPE, MODEL_RECIPE = "cpu/quickstart", "cpu/quickstart_model"


def synth_rl_overrides(model: str | Path, out_dir: str | Path, *, weights: dict[str, float], steps: int | None = None,
                       seed: int = 0, lr: float | None = None, n: int | None = None,
                       prompts_per_step: int | None = None, max_response: int | None = None) -> list[str]:
    """Overrides of :data:`SYNTH_RECIPE` (RL on ``synth_chain_v2`` from a warm start: Dr.GRPO, no std
    normalisation, ``seq-mean-token-sum-norm``, k3 KL loss 0.001, T=1, as the reference's SA-GRPO recipe)
    for one run: the warm start, the output, the reward ``weights`` (the only difference between the arms
    of the reproduction), steps and seed; ``lr``, ``n``, ``prompts_per_step`` and ``max_response`` change
    the recipe's values only when given."""
    from sarl.config import load_config, recipe_path

    w = ", ".join(f"{k}: {v}" for k, v in weights.items())
    out = [f"model.name={model}", f"trainer.out_dir={out_dir}", f"rewards.weights={{{w}}}", f"trainer.seed={seed}"]
    if steps is not None:
        out.append(f"trainer.total_steps={steps}")
    if lr is not None:
        out.append(f"actor.lr={lr}")
    if max_response is not None:
        out.append(f"data.max_response_length={max_response}")
    if n is not None or prompts_per_step is not None:
        if n is None or prompts_per_step is None:  # the other one from the recipe
            base = load_config(recipe_path(SYNTH_RECIPE))
            n, prompts_per_step = n or base.rollout.n, prompts_per_step or base.trainer.prompts_per_step
        out += [f"rollout.n={n}", f"trainer.prompts_per_step={prompts_per_step}",
                f"rollout.batch_size={n * prompts_per_step}"]
    return out


def warm_start(out: Path, console, progress_factory, sft_overrides: dict[str, Any] | None = None) -> Path:
    """Train (or reuse, when ``out/summary.json`` exists) the warm start; returns its model folder."""
    from sarl.sft import SFTConfig, run_sft

    model = out / "model"
    if (out / "summary.json").exists() and model.exists():
        console.print(f"warm start: reusing {model}")
        return model
    cfg = SFTConfig(**{**SYNTH_SFT, **(sft_overrides or {}), "out_dir": str(out)})
    console.print(f"warm start: SFT of a new Llama ({cfg.new_model}, {cfg.new_tokenizer}-token vocabulary) on "
                  + ", ".join(f"{n} {t}" for t, n in cfg.synthetic_tasks.items())
                  + f" problems ({_styles_text(cfg)} solutions), {cfg.epochs:g} epochs")
    run_sft(cfg, resume=(out / "metrics.jsonl").exists(), progress_factory=progress_factory, say=console.print)
    return model


def _styles_text(cfg) -> str:
    from sarl.data.synthetic import parse_style_mix

    mix = parse_style_mix(cfg.style_mix) if cfg.style_mix else {"padded": cfg.padded_fraction}
    return ", ".join(f"{share:.0%} {style}" for style, share in mix.items())


def train_or_resume(cfg, console, on_step) -> Path:
    """Train ``cfg``; a rerun of the same command continues from the last checkpoint, or reuses the
    final model when training already finished (so an interrupted quickstart or reproduction resumes)."""
    from sarl.train import train
    from sarl.train.checkpoint import latest_checkpoint

    out = Path(cfg.trainer.out_dir)
    if (out / "final" / "config.json").exists():
        console.print(f"  reusing the finished run in {out}")
        return out / "final"
    resume = latest_checkpoint(out / "checkpoints") is not None
    if not resume and (out / "metrics.jsonl").exists():
        (out / "metrics.jsonl").unlink()  # steps logged after the last checkpoint of a run killed before any
    return Path(train(cfg, resume=resume, console=console, on_step=on_step)["final_model"])


def multi_step_accuracy(by_steps: dict[str, dict] | None) -> dict[str, float] | None:
    """Accuracy (over samples) and its SE (over problems, pooled) on the problems of ``by_steps`` (an
    evaluation's per-step-count metrics) that need at least 2 steps; None without them."""
    if not by_steps:
        return None
    parts = [m for k, m in by_steps.items() if int(k) >= 2]
    samples, problems = sum(m["samples"] for m in parts), sum(m["problems"] for m in parts)
    if not samples:
        return None
    acc = sum(m["accuracy"] * m["samples"] for m in parts) / samples
    # per-problem variance of each part, pooled: SE_k² · P_k = var_k
    var = sum((m["accuracy_se"] ** 2) * m["problems"] * m["problems"] for m in parts) / problems ** 2
    return {"accuracy": acc, "accuracy_se": var ** 0.5, "problems": problems}


def _train_side_by_side(cfgs: dict[str, Any], overrides: dict[str, list[str]], recipe: str, console,
                        on_step, parallel: bool) -> dict[str, Path]:
    """Train each config of ``cfgs`` (name → config; the first in this process, printing its steps) and
    return name → final model. With ``parallel`` the others train at the same time in ``sarl train``
    subprocesses (``overrides[name]`` on ``recipe``), every run on one thread; their output goes to
    ``<out_dir>.log``. Finished runs are reused and interrupted ones resume, as :func:`train_or_resume`."""
    import subprocess
    import sys

    from sarl.errors import SarlError
    from sarl.models import set_threads
    from sarl.train.checkpoint import latest_checkpoint

    names = list(cfgs)
    first, rest = names[0], names[1:]
    procs = {}
    if parallel:
        for name in rest:
            out = Path(cfgs[name].trainer.out_dir)
            if (out / "final" / "config.json").exists():
                continue
            resume = ["--resume"] if latest_checkpoint(out / "checkpoints") is not None else []
            if not resume and out.exists():
                import shutil

                shutil.rmtree(out)  # a run killed before its first checkpoint starts again
            log = out.with_suffix(".log")
            log.parent.mkdir(parents=True, exist_ok=True)
            console.print(f"  {name}: training in a second process (log: {log})")
            with log.open("w") as f:
                procs[name] = (subprocess.Popen([sys.executable, "-m", "sarl", "train", recipe, *overrides[name], *resume],
                                                stdout=f, stderr=subprocess.STDOUT), log)
    threads = set_threads(None)
    try:
        finals = {first: train_or_resume(cfgs[first], console, lambda m: on_step(first, m))}
    finally:
        set_threads(threads)  # the evaluations use every core again
    for name in rest:
        if name in procs:
            proc, log = procs[name]
            if proc.wait() != 0:
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
                raise SarlError(f"the {name} run failed (exit code {proc.returncode}); its log {log} ends:\n{tail}\n"
                                "rerun the same command to resume")
            finals[name] = Path(cfgs[name].trainer.out_dir) / "final"
        else:
            finals[name] = train_or_resume(cfgs[name], console, lambda m, n=name: on_step(n, m))
    return finals


def before_after_table(results: dict[str, dict], dataset: str, baseline: bool, alpha: float | None) -> dict[str, Any]:
    """``before_after.json``: each model's headline metrics on ``dataset``, SA-GRPO's change from the warm
    start and (with the baseline) SA-GRPO - GRPO, each an accuracy difference in points with its SE and
    the length ratio."""
    from sarl.evaluate import aes

    keys = ("accuracy", "accuracy_se", "hit@1", "hit@n", "mean_length", "mean_sar", "truncation_rate", "style_shares")
    table: dict[str, Any] = {name: {k: m[dataset].get(k) for k in keys} for name, m in results.items()}
    for name, m in results.items():  # accuracy on the problems that need >= 2 steps (synthetic tasks)
        table[name]["multi_step_accuracy"] = multi_step_accuracy(m[dataset].get("by_steps"))

    def change(ref: str, cur: str) -> dict[str, Any]:
        c = aes(results[ref][dataset], results[cur][dataset])
        return {"accuracy_points": c["delta_acc_points"], "se": c["delta_acc_se"], "paired": c["delta_acc_paired"],
                "within_noise": c["within_noise"], "length_relative": -c["delta_len"],
                "length_ratio": results[cur][dataset]["mean_length"] / results[ref][dataset]["mean_length"]}

    table["change"] = change("before", "after")
    if baseline:
        table["sa_grpo_minus_grpo"] = change("grpo", "after")
    table["alpha"] = alpha
    return table


def run_quickstart(out_dir: Path, steps: int, limit: int, console, progress_factory, extra: list[str] | None = None,
                   model: str | None = None, sft_overrides: dict[str, Any] | None = None,
                   baseline: bool = True, parallel: bool | None = None) -> dict[str, Any]:
    """The quickstart (module docstring). ``baseline``: train GRPO beside SA-GRPO; ``parallel``: side by
    side (default: when the machine has 2 or more cores)."""
    import os

    from sarl.config import load_config, recipe_path
    from sarl.data import load_dataset
    from sarl.evaluate import EvalSettings, evaluate_model, read_samples, tag, write_summary
    from sarl.models import load_model
    from sarl.prompts import get_instruction
    from sarl.quickstart_report import build_quickstart_report
    from sarl.rollout import GenerationConfig, make_backend
    from sarl.scoring import SARScorer

    out_dir.mkdir(parents=True, exist_ok=True)
    extra = list(extra or [])
    n_steps = 5 if model is None else 4
    k = 1 if model is None else 0  # stage numbers: the warm start comes first when there is one
    if model is None:
        console.print(f"[bold]1/{n_steps}[/bold] warm start")
        start = str(warm_start(out_dir / "sft", console, progress_factory, {**QUICKSTART_SFT, **(sft_overrides or {})}))
        recipe = SYNTH_RECIPE
        base = synth_rl_overrides(start, out_dir / "train", weights=QUICKSTART_WEIGHTS, steps=steps)
    else:
        start, recipe = model, MODEL_RECIPE
        base = [f"model.name={model}", f"trainer.total_steps={steps}", f"trainer.out_dir={out_dir / 'train'}"]
    parallel = baseline and ((os.cpu_count() or 1) >= 2 if parallel is None else parallel)
    threads = ["model.threads=1"] if parallel else []
    overrides = {"SA-GRPO": base + ["trainer.tensorboard=false"] + threads + extra}
    if baseline:  # the same run with the correctness reward only
        overrides["GRPO"] = overrides["SA-GRPO"] + [f"trainer.out_dir={out_dir / 'train_grpo'}",
                                                    "rewards.weights={correctness: 1.0}"]
    cfgs = {name: load_config(recipe_path(recipe), ov) for name, ov in overrides.items()}
    cfg = cfgs["SA-GRPO"]
    alpha = cfg.rewards.weights.get("sar")
    dataset = SYNTH_EVAL if model is None else cfg.data.train
    # sampled like the training rollouts (the policy's own accuracy and length) for the warm start;
    # greedy for a pretrained model, as the reference evaluates
    sampled = model is None
    gen = GenerationConfig(max_new_tokens=cfg.data.max_response_length, batch_size=64 if sampled else 32,
                           temperature=1.0 if sampled else 0.0, n=4 if sampled else 1)
    settings = EvalSettings(datasets=[dataset], limit=limit, data_seed=cfg.data.val_seed,
                            instruction=cfg.data.instruction, system_prompt=cfg.data.system_prompt, gen=gen)
    eval_dir = out_dir / "eval"
    results: dict[str, dict] = {}
    # the held-out problems, loaded once for every evaluation and the SAR scoring
    problems = load_dataset(dataset, limit=limit, seed=cfg.data.val_seed)
    questions = {p.id: p.question for p in problems}

    def evaluate(name: str, model_arg: str | None) -> None:
        lm = load_model(model_arg, dtype=cfg.model.dtype, device=cfg.model.device)
        metrics = evaluate_model(lm, make_backend(lm, "hf"), name, settings, eval_dir, progress_factory,
                                 {dataset: problems})
        # mean SAR of the model's own answers, scored with its own weights
        rows = read_samples(eval_dir / tag(name) / f"{tag(dataset)}.samples.jsonl")
        scored = SARScorer(lm, system_prompt=cfg.data.system_prompt, instruction=get_instruction(cfg.data.instruction)
                           ).score([questions[r["id"]] for r in rows], [r["response"] for r in rows])
        metrics[dataset]["mean_sar"] = sum(s["sar"] for s in scored) / max(1, len(scored))
        results[name] = metrics

    console.print(f"[bold]{1 + k}/{n_steps}[/bold] evaluating the starting model")
    evaluate("before", start)
    what = f"SA-GRPO (α = {alpha:g})" + (" and GRPO" if baseline else "")
    console.print(f"[bold]{2 + k}/{n_steps}[/bold] training {what} for {steps} steps"
                  + (", side by side on one thread each" if parallel else ""))

    def on_step(name, m):
        sar = f" sar={m['reward/sar']:.3f}" if m.get("reward/sar") is not None else ""
        console.print(f"  {name} step {m['step']}/{steps}: reward={m['reward/mean']:.3f} acc={m['accuracy']:.3f} "
                      f"len={m['response_length/mean']:.0f}{sar} ({m['time/step']:.1f}s)")

    finals = _train_side_by_side(cfgs, overrides, str(recipe_path(recipe)), console, on_step, parallel)
    console.print(f"[bold]{3 + k}/{n_steps}[/bold] evaluating the trained model" + ("s" if baseline else ""))
    evaluate("after", str(finals["SA-GRPO"]))
    if baseline:
        evaluate("grpo", str(finals["GRPO"]))
    console.print(f"[bold]{4 + k}/{n_steps}[/bold] writing the report")
    write_summary(eval_dir, results, settings, reference="before")

    table = before_after_table(results, dataset, baseline, alpha)
    (out_dir / "before_after.json").write_text(json.dumps(table, indent=2) + "\n")
    paths = build_quickstart_report(out_dir)  # the run's story: settings, verdict, curves, styles, examples
    decoding = f"sampled (T=1, {gen.n} per problem)" if sampled else "greedy"
    return {"table": table, "report": paths, "final_model": str(finals["SA-GRPO"]), "dataset": dataset,
            "problems": limit, "decoding": decoding, "alpha": alpha,
            "baseline_model": str(finals["GRPO"]) if baseline else None}
