"""Benchmark the cost of SAR in a training step (JSON out).

- Step time of SA-GRPO (correctness + 0.2 SAR) vs GRPO (correctness only) on the default model, in the
  same run. Both trainers start from the same weights and seed, so they generate the same rollouts and
  the response lengths are equal. GRPO's update is on-policy, so it takes log π_old from the update's
  own forward; SA-GRPO keeps that pass (it is its ppl(a|q) pass) and adds the null-context pass. A third
  arm, ``grpo_old_pass``, is GRPO with the separate old-policy pass forced back on: the saving of the
  on-policy path. The arms alternate (``--rounds``) so machine noise hits them alike.
- Tokens the null-context pass processes (the null prompt at its real length + the response) vs the
  same pass with the null prompt left-padded to ``max_prompt_length`` and the response padded to
  ``max_response_length`` (the reference's batch layout, computed in full when padding is not removed).

Usage: python benchmarks/bench_train.py [--rounds 2] [--prompts 4] [--n 4] [--max-response-length 64]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from tempfile import TemporaryDirectory

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-response-length", type=int, default=64)
    ap.add_argument("--max-prompt-length", type=int, default=1024, help="the reference's max_prompt_length")
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_train.json")
    args = ap.parse_args()

    from sarl.config import load_config
    from sarl.train import Trainer

    arms = {"grpo": "{correctness: 1.0}", "grpo_old_pass": "{correctness: 1.0}", "sa_grpo": "{correctness: 1.0, sar: 0.2}"}
    steps: dict[str, list[dict]] = {k: [] for k in arms}
    with TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for arm, weights in arms.items():
                cfg = load_config("configs/cpu/sa_grpo.yaml", [
                    f"rewards.weights={weights}", f"trainer.prompts_per_step={args.prompts}", f"rollout.n={args.n}",
                    f"data.max_response_length={args.max_response_length}", "trainer.total_steps=1",
                    f"actor.mini_batch_size={args.prompts * args.n}", f"trainer.out_dir={tmp}/{arm}{r}",
                    "trainer.tensorboard=false", f"trainer.seed={r}"])
                tr = Trainer(cfg)
                if arm == "grpo_old_pass":
                    tr.parts.old_from_update = False
                m = tr.train_step()
                steps[arm].append(m)
                if arm == "sa_grpo":
                    null_len = len(tr.parts.null_ids)
                    lengths = m["response_length/mean"] * args.prompts * args.n
                    n_rows = args.prompts * args.n
                    ours = n_rows * null_len + lengths
                    padded = n_rows * (args.max_prompt_length + args.max_response_length)
                del tr
    mean = lambda xs: sum(xs) / len(xs)
    step = {k: mean([m["time/step"] for m in v]) for k, v in steps.items()}
    same_len = all(a["response_length/mean"] == b["response_length/mean"] for a, b in zip(steps["grpo"], steps["sa_grpo"]))
    result = {
        "benchmark": "bench_train",
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "rounds": args.rounds,
        "rollouts_per_step": args.prompts * args.n,
        "max_response_length": args.max_response_length,
        "equal_response_lengths": same_len,
        "response_length_mean": {k: [m["response_length/mean"] for m in v] for k, v in steps.items()},
        "step_seconds": step,
        "ratio_sar_vs_no_sar": step["sa_grpo"] / step["grpo"],
        "ratio_on_policy_vs_old_pass": step["grpo"] / step["grpo_old_pass"],
        "stage_seconds": {k: {s: mean([m.get(f"time/{s}", 0.0) for m in v]) for s in
                              ("generate", "old_logprobs", "ref_logprobs", "null_logprobs", "rewards", "advantages",
                               "update_actor")} for k, v in steps.items()},
        "null_pass_tokens_ours_last_round": ours,
        "null_pass_tokens_padded_layout": padded,
        "null_pass_token_ratio_padded_vs_ours": padded / ours,
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
