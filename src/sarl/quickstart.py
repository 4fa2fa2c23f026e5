"""``sarl quickstart``: the whole loop, sized for about ten CPU minutes (8 measured on 2 cores).

With no ``--model`` (the default set-up):

1. **warm start**: ``sarl sft`` trains a new small Llama (1M parameters, its own 1,024-entry tokenizer)
   on ``synth_chain`` (:mod:`sarl.data.synthetic`): problems needing 1–4 dependent steps, solutions in
   four styles (concise, padded, shortcut, restated; reused when present);
2. evaluate it on held-out problems (``synth_chain_test``: no test problem is a training problem, but
   every 1-step and most 2-step test computations open some SFT solution; see :mod:`sarl.data.synthetic`),
   sampled as in training (T=1, 4 samples per problem), with the share of each answer style;
3. train it with SA-GRPO (correctness + 0.2 SAR, Dr.GRPO) on ``synth_chain``;
4. evaluate the trained model on the same problems;
5. score both models' sampled answers with SAR (each with its own weights), print a before/after
   table (accuracy, mean length, mean SAR) and write a report (Markdown + HTML with plots).

With ``--model`` (the built-in ``default`` SmolLM2-135M-Instruct, a folder or a hub id) there is no
warm start and the task is reasoning-gym ``basic_arithmetic`` (training items from seed 0, evaluation
items from ``data.val_seed``), evaluated greedy. The default model barely solves it (4/100 greedy), so
a few steps show the pipeline, not an effect.

Re-running the same command resumes: finished stages are reused, training continues from its last
checkpoint.

The same recipes (:data:`SYNTH_SFT`; :data:`SYNTH_RECIPE`, the YAML file ``configs/cpu/quickstart.yaml``,
through :func:`synth_rl_overrides`) drive ``benchmarks/reproduce.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The warm start: a new 4-layer, 128-wide Llama with a 1,024-entry tokenizer trained on synth_chain
# solutions in four styles (sarl.data.synthetic.STYLES).
SYNTH_SFT: dict[str, Any] = {
    "data": "synthetic", "synthetic_tasks": {"synth_chain": 12000},
    "style_mix": "concise=0.3,padded=0.3,shortcut=0.25,restated=0.15",
    "new_model": "layers=4,hidden=128,heads=4", "new_tokenizer": 1024, "epochs": 3.0, "lr": 2e-3, "batch_size": 32,
    "save_every": 100,
}
SYNTH_TRAIN, SYNTH_EVAL = "synth_chain", "synth_chain_test"


# The RL recipes (YAML files shipped in sarl/configs/cpu/).
SYNTH_RECIPE, MODEL_RECIPE = "cpu/quickstart", "cpu/quickstart_model"


def synth_rl_overrides(model: str | Path, out_dir: str | Path, *, weights: dict[str, float], steps: int | None = None,
                       seed: int = 0, lr: float | None = None, n: int | None = None,
                       prompts_per_step: int | None = None, max_response: int | None = None) -> list[str]:
    """Overrides of :data:`SYNTH_RECIPE` (RL on ``synth_arith`` from a warm start: Dr.GRPO, no std
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
    run_sft(cfg, resume=(out / "metrics.jsonl").exists(), progress_factory=progress_factory)
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


def run_quickstart(out_dir: Path, steps: int, limit: int, console, progress_factory, extra: list[str] | None = None,
                   model: str | None = None, sft_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    from sarl.config import load_config, recipe_path
    from sarl.data import load_dataset
    from sarl.evaluate import EvalSettings, evaluate_model, read_samples, tag, write_summary
    from sarl.models import load_model
    from sarl.prompts import get_instruction
    from sarl.report import build_report
    from sarl.rollout import GenerationConfig, make_backend
    from sarl.scoring import SARScorer

    out_dir.mkdir(parents=True, exist_ok=True)
    extra = list(extra or [])
    n_steps = 5 if model is None else 4
    k = 1 if model is None else 0  # stage numbers: the warm start comes first when there is one
    if model is None:
        console.print(f"[bold]1/{n_steps}[/bold] warm start")
        start = str(warm_start(out_dir / "sft", console, progress_factory, sft_overrides))
        recipe = SYNTH_RECIPE
        base = synth_rl_overrides(start, out_dir / "train", weights={"correctness": 1.0, "sar": 0.2}, steps=steps)
        dataset = SYNTH_EVAL
    else:
        start, recipe = model, MODEL_RECIPE
        base = [f"model.name={model}", f"trainer.total_steps={steps}", f"trainer.out_dir={out_dir / 'train'}"]
    cfg = load_config(recipe_path(recipe), base + ["trainer.tensorboard=false"] + extra)
    if model is not None:
        dataset = cfg.data.train
    # sampled like the training rollouts (the policy's own accuracy and length) for the warm start;
    # greedy for a pretrained model, as the reference evaluates
    sampled = model is None
    gen = GenerationConfig(max_new_tokens=cfg.data.max_response_length, batch_size=64 if sampled else 32,
                           temperature=1.0 if sampled else 0.0, n=4 if sampled else 1)
    settings = EvalSettings(datasets=[dataset], limit=limit, data_seed=cfg.data.val_seed,
                            instruction=cfg.data.instruction, system_prompt=cfg.data.system_prompt, gen=gen)
    eval_dir = out_dir / "eval"
    results: dict[str, dict] = {}
    # the held-out problems, loaded once for both evaluations and the SAR scoring
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
    console.print(f"[bold]{2 + k}/{n_steps}[/bold] training with SA-GRPO for {steps} steps")
    final = train_or_resume(cfg, console, lambda m: console.print(
        f"  step {m['step']}/{steps}: reward={m['reward/mean']:.3f} acc={m['accuracy']:.3f} "
        f"len={m['response_length/mean']:.0f} sar={m['reward/sar']:.3f} ({m['time/step']:.1f}s)"))
    console.print(f"[bold]{3 + k}/{n_steps}[/bold] evaluating the trained model")
    evaluate("after", str(final))
    console.print(f"[bold]{4 + k}/{n_steps}[/bold] writing the report")
    write_summary(eval_dir, results, settings, reference="before")
    paths = build_report([eval_dir], out_dir / "report")
    from sarl.evaluate import aes

    keys = ("accuracy", "accuracy_se", "hit@1", "hit@n", "mean_length", "mean_sar", "truncation_rate", "style_shares")
    table = {name: {k: m[dataset].get(k) for k in keys} for name, m in results.items()}
    for name, m in results.items():  # accuracy on the problems that need >= 2 steps (synthetic tasks)
        table[name]["multi_step_accuracy"] = multi_step_accuracy(m[dataset].get("by_steps"))
    change = aes(results["before"][dataset], results["after"][dataset])
    table["change"] = {"accuracy_points": change["delta_acc_points"], "se": change["delta_acc_se"],
                       "paired": change["delta_acc_paired"], "within_noise": change["within_noise"],
                       "length_relative": -change["delta_len"]}
    (out_dir / "before_after.json").write_text(json.dumps(table, indent=2) + "\n")
    decoding = f"sampled (T=1, {gen.n} per problem)" if sampled else "greedy"
    return {"table": table, "report": paths, "final_model": str(final), "dataset": dataset,
            "problems": limit, "decoding": decoding}
