"""GRPO with TRL and the self-aligned reward, on a CPU, with sarl's built-in model and data.

    R = correctness + alpha * SAR          (alpha = --sar-weight, 0.2 as in the paper's recipes)

SAR's ppl(a|q) and ppl(a) are computed with the policy TRL is training (see
:mod:`sarl.integrations.trl`). Needs the extra: ``pip install 'sarl[trl]'``.

    python examples/trl_grpo_sar.py --steps 2 --output-dir runs/trl_sar
    python examples/trl_grpo_sar.py --model tiny-random --steps 2          # seconds, for a smoke test
    python examples/trl_grpo_sar.py --steps 8 --num-iterations 2 --compare-reuse   # SAR log-prob reuse on/off

The dataset is a small reasoning-gym set (``basic_arithmetic`` by default) turned into a
``datasets.Dataset`` with a ``prompt`` column of chat messages (sarl's system prompt, then the question
and sarl's default instruction, exactly the prompt ``sarl eval`` uses) and ``answer``/``data_source``/
``metadata`` columns for the grader. At the end the script prints, per step, the wall time, the time
spent in the SAR reward and how many completions reused TRL's log-probs, and writes them with the
log history to ``OUTPUT_DIR/timings.json``.

``--compare-reuse`` (needs ``--num-iterations`` >= 2, so that TRL computes the old policy's log-probs)
alternates reuse on and off from one generation batch to the next in the same run and prints the mean
time of the generation steps and of the SAR reward for each setting.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def build_dataset(name: str, limit: int, instruction: str | None):
    from datasets import Dataset

    from sarl.data import load_dataset
    from sarl.prompts import DEFAULT_SYSTEM_PROMPT, get_instruction, user_message

    text = get_instruction(instruction)
    rows = []
    for p in load_dataset(name, limit=limit):
        user = user_message(p.question, text)
        rows.append({
            "prompt": [{"role": "system", "content": DEFAULT_SYSTEM_PROMPT}, {"role": "user", "content": user}],
            "answer": p.answer,
            "data_source": p.data_source,
            "metadata": json.dumps(p.metadata),  # a JSON string: Arrow needs one schema for every row
        })
    return Dataset.from_list(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="default: the built-in SmolLM2-135M-Instruct; 'tiny-random' for "
                                                  "a tiny random Llama (smoke tests)")
    ap.add_argument("--dataset", default="basic_arithmetic")
    ap.add_argument("--limit", type=int, default=16, help="problems in the training set")
    ap.add_argument("--instruction", default="noformat", help="noformat | format | none")
    ap.add_argument("--steps", type=int, default=2, help="optimizer steps (GRPOConfig.max_steps)")
    ap.add_argument("--output-dir", default="runs/trl_grpo_sar")
    ap.add_argument("--num-generations", type=int, default=4, help="completions per prompt (G)")
    ap.add_argument("--batch-size", type=int, default=8, help="completions per step (per_device_train_batch_size)")
    ap.add_argument("--max-completion-length", type=int, default=64)
    ap.add_argument("--num-iterations", type=int, default=1, help="optimizer steps per generation batch")
    ap.add_argument("--sar-weight", type=float, default=0.2)
    ap.add_argument("--answer-tokens", default="text", choices=["text", "sampled"])
    ap.add_argument("--lr", type=float, default=1e-6)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast, TRL's default (off here so that SAR equals `sarl score` exactly)")
    ap.add_argument("--gradient-checkpointing", action="store_true",
                    help="recompute activations in the backward pass (TRL's default; saves memory, costs time)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare-reuse", action="store_true",
                    help="alternate SAR log-prob reuse on/off per generation batch and report both timings")
    args = ap.parse_args(argv)
    if args.compare_reuse and args.num_iterations < 2:
        ap.error("--compare-reuse needs --num-iterations >= 2 (otherwise TRL computes no log-probs to reuse)")

    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig

    from sarl.integrations.trl import SARGRPOTrainer, sarl_reward_funcs
    from sarl.models import load_model

    lm = load_model(args.model, threads=args.threads)
    dataset = build_dataset(args.dataset, args.limit, args.instruction)
    funcs, weights = sarl_reward_funcs({"correctness": 1.0, "sar": args.sar_weight}, metadata_column="metadata",
                                       answer_tokens=args.answer_tokens, keep_history=10_000)
    sar = funcs[1]
    config = GRPOConfig(
        output_dir=args.output_dir, max_steps=args.steps, learning_rate=args.lr, seed=args.seed,
        per_device_train_batch_size=args.batch_size, num_generations=args.num_generations,
        max_completion_length=args.max_completion_length, num_iterations=args.num_iterations,
        reward_weights=weights, bf16=args.bf16, gradient_checkpointing=args.gradient_checkpointing,
        use_cpu=not torch.cuda.is_available(),
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True,
    )

    step_times: dict[int, float] = {}

    class Timing(TrainerCallback):
        """Wall time of each optimizer step; with --compare-reuse, switches reuse per generation batch."""

        def on_step_begin(self, targs, state, control, **kw):
            self.t0 = time.perf_counter()
            if args.compare_reuse:  # one generation batch every num_iterations steps (grad accumulation 1)
                sar.reuse_logprobs = (state.global_step // args.num_iterations) % 2 == 0

        def on_step_end(self, targs, state, control, **kw):
            step_times[state.global_step - 1] = time.perf_counter() - self.t0

    trainer = SARGRPOTrainer(model=lm.model, processing_class=lm.tokenizer, args=config, reward_funcs=funcs,
                             train_dataset=dataset, callbacks=[Timing()])
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0

    by_step = {rec["step"]: rec for rec in sar.history if rec["mode"] == "train"}
    rows = []
    print(f"\n{'step':>4} {'wall s':>8} {'SAR s':>7} {'reused':>7} {'reward':>8} {'SAR mean':>9}")
    logs = {h["step"]: h for h in trainer.state.log_history if "reward" in h}
    for step in sorted(step_times):
        rec = by_step.get(step)
        row = {"step": step, "seconds": step_times[step], "generated": rec is not None}
        if rec is not None:
            row.update(sar_seconds=rec["seconds"], sar_seconds_qa=rec["seconds_qa"],
                       sar_seconds_null=rec["seconds_null"], reused_rows=rec["reused_rows"], rows=len(rec["values"]),
                       reuse_enabled=rec.get("reuse_enabled"), sar_mean=statistics.fmean(rec["values"]))
        log = logs.get(step + 1, {})
        rows.append(row)
        print(f"{step:>4} {row['seconds']:>8.2f} {row.get('sar_seconds', float('nan')):>7.2f} "
              f"{str(row.get('reused_rows', '-')) + '/' + str(row.get('rows', '-')):>7} "
              f"{log.get('reward', float('nan')):>8.4f} {row.get('sar_mean', float('nan')):>9.4f}")
    print(f"total training time {total:.1f} s for {args.steps} steps")
    summary: dict = {"args": vars(args), "total_seconds": total, "steps": rows, "log_history": trainer.state.log_history}
    if args.compare_reuse:
        gen = [r for r in rows if r["generated"]]
        for flag in (True, False):
            sel = [r for r in gen if r["reuse_enabled"] == flag]
            if sel:
                summary[f"reuse_{'on' if flag else 'off'}"] = {
                    "generation_steps": len(sel),
                    "mean_step_seconds": statistics.fmean(r["seconds"] for r in sel),
                    "mean_sar_seconds": statistics.fmean(r["sar_seconds"] for r in sel),
                    "mean_sar_qa_seconds": statistics.fmean(r["sar_seconds_qa"] for r in sel),
                    "reused_fraction": sum(r["reused_rows"] for r in sel) / sum(r["rows"] for r in sel),
                }
        for key in ("reuse_on", "reuse_off"):
            if key in summary:
                s = summary[key]
                print(f"{key}: {s['generation_steps']} generation steps, step {s['mean_step_seconds']:.2f} s, "
                      f"SAR reward {s['mean_sar_seconds']:.3f} s (ppl(a|q) pass {s['mean_sar_qa_seconds']:.3f} s), "
                      f"reused {s['reused_fraction']:.0%} of completions")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "timings.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"wrote {out / 'timings.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
