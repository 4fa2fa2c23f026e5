"""``sarl quickstart``: the whole loop on the built-in default, sized for a few CPU minutes.

1. evaluate the starting model on held-out problems (greedy);
2. train it with SA-GRPO (correctness + 0.2 SAR, Dr.GRPO);
3. evaluate the trained model on the same problems;
4. score both models' answers with SAR (each with its own weights) and print a before/after table;
5. write a report (Markdown + HTML with plots).

The task is reasoning-gym ``basic_arithmetic``: training items come from seed ``trainer.seed`` (0),
evaluation items from a different seed (``data.val_seed``), so no evaluation problem is trained on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

QUICKSTART_OVERRIDES = [
    "data.train=basic_arithmetic", "data.train_size=2000", "data.val=null", "data.max_response_length=96",
    "data.max_prompt_length=256", "rollout.n=4", "rollout.batch_size=32", "trainer.prompts_per_step=4",
    "actor.lr=1e-5", "actor.loss_agg_mode=seq-mean-token-sum-norm", "actor.micro_batch_size=8",
    "actor.use_kl_loss=true", "actor.kl_loss_coef=0.001", "actor.kl_loss_type=k3",
    "algorithm.adv_estimator=grpo", "algorithm.norm_adv_by_std_in_grpo=false",
    "rewards.weights={correctness: 1.0, sar: 0.2}", "trainer.save_every=0", "trainer.keep_last=1",
]


def run_quickstart(out_dir: Path, steps: int, limit: int, console, progress_factory, extra: list[str] | None = None
                   ) -> dict[str, Any]:
    from sarl.config import load_config
    from sarl.data import get_instruction, load_dataset
    from sarl.evaluate import EvalSettings, evaluate_model, read_samples, tag, write_summary
    from sarl.models import load_model
    from sarl.report import build_report
    from sarl.rollout import GenerationConfig, make_backend
    from sarl.scoring import SARScorer
    from sarl.train import train

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, QUICKSTART_OVERRIDES + [f"trainer.total_steps={steps}",
                                                    f"trainer.out_dir={out_dir / 'train'}"] + list(extra or []))
    settings = EvalSettings(datasets=[cfg.data.train], limit=limit, data_seed=cfg.data.val_seed,
                            instruction=cfg.data.instruction, system_prompt=cfg.data.system_prompt,
                            gen=GenerationConfig(max_new_tokens=cfg.data.max_response_length, batch_size=32))
    eval_dir = out_dir / "eval"
    results: dict[str, dict] = {}
    # the held-out problems, loaded once for both evaluations and the SAR scoring
    problems = load_dataset(cfg.data.train, limit=limit, seed=cfg.data.val_seed)
    questions = {p.id: p.question for p in problems}

    def evaluate(name: str, model_arg: str | None) -> None:
        lm = load_model(model_arg)
        metrics = evaluate_model(lm, make_backend(lm, "transformers"), name, settings, eval_dir, progress_factory,
                                 {cfg.data.train: problems})
        # mean SAR of the model's own answers, scored with its own weights
        rows = read_samples(eval_dir / tag(name) / f"{tag(cfg.data.train)}.samples.jsonl")
        scored = SARScorer(lm, system_prompt=cfg.data.system_prompt, instruction=get_instruction(cfg.data.instruction)
                           ).score([questions[r["id"]] for r in rows], [r["response"] for r in rows])
        metrics[cfg.data.train]["mean_sar"] = sum(s["sar"] for s in scored) / max(1, len(scored))
        results[name] = metrics

    console.print("[bold]1/4[/bold] evaluating the starting model")
    evaluate("before", cfg.model.name)
    console.print(f"[bold]2/4[/bold] training with SA-GRPO for {steps} steps")
    last = train(cfg, console=console, on_step=lambda m: console.print(
        f"  step {m['step']}/{steps}: reward={m['reward/mean']:.3f} acc={m['accuracy']:.3f} "
        f"len={m['response_length/mean']:.0f} sar={m['sar/mean']:.3f} ({m['time/step']:.0f}s)"))
    console.print("[bold]3/4[/bold] evaluating the trained model")
    evaluate("after", last["final_model"])
    console.print("[bold]4/4[/bold] writing the report")
    write_summary(eval_dir, results, settings, reference="before")
    paths = build_report([eval_dir], out_dir / "report")
    table = {name: {k: m[cfg.data.train].get(k) for k in ("accuracy", "mean_length", "mean_sar", "truncation_rate")}
             for name, m in results.items()}
    (out_dir / "before_after.json").write_text(json.dumps(table, indent=2) + "\n")
    return {"table": table, "report": paths, "final_model": last["final_model"], "dataset": cfg.data.train,
            "problems": limit}

