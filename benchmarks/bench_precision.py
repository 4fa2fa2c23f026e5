"""Benchmark ``trainer.precision``: bf16-mixed against fp32 step time on the default model (JSON out).

The arms are SA-GRPO steps of ``configs/cpu/sa_grpo.yaml`` on the default model (SmolLM2-135M-Instruct)
from the same weights, in the same run, alternating (``--rounds``) so machine noise hits them alike:
fp32, bf16-mixed (rollouts from a bf16 copy of the policy, ``rollout.bf16_copy``), and bf16-mixed with
rollouts from the fp32 policy under autocast (``rollout.bf16_copy=false``).
Rollouts are sampled, so the two precisions generate different responses: the time per generated
token and per trained token is reported beside the step time, and the headline ratio is per token.

Usage: python benchmarks/bench_precision.py [--rounds 2] [--prompts 4] [--n 4] [--max-response-length 64]
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
    ap.add_argument("-o", "--output", default="benchmarks/results/bench_precision.json")
    args = ap.parse_args()

    from sarl.config import load_config
    from sarl.precision import fast_bf16
    from sarl.train import Trainer

    # bf16-mixed samples from a bf16 copy of the policy (rollout.bf16_copy); "bf16-mixed-autocast" samples
    # with the fp32 policy under autocast instead, the earlier default
    arms = {"fp32": ["trainer.precision=fp32"], "bf16-mixed": ["trainer.precision=bf16-mixed"],
            "bf16-mixed-autocast": ["trainer.precision=bf16-mixed", "rollout.bf16_copy=false"]}
    steps: dict[str, list[dict]] = {k: [] for k in arms}
    with TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for arm, keys in arms.items():
                cfg = load_config("configs/cpu/sa_grpo.yaml", [
                    *keys, f"trainer.prompts_per_step={args.prompts}", f"rollout.n={args.n}",
                    f"data.max_response_length={args.max_response_length}", "trainer.total_steps=1",
                    f"actor.mini_batch_size={args.prompts * args.n}", f"trainer.out_dir={tmp}/{arm}{r}",
                    "trainer.tensorboard=false", f"trainer.seed={r}"])
                tr = Trainer(cfg)
                steps[arm].append(tr.train_step())
                del tr

    def mean(xs):
        return sum(xs) / len(xs)

    rows = args.prompts * args.n
    out = {}
    for arm, ms in steps.items():
        tokens = mean([m["response_length/mean"] * rows for m in ms])
        out[arm] = {
            "step_s": mean([m["time/step"] for m in ms]),
            "generate_s": mean([m["time/generate"] for m in ms]),
            "update_s": mean([m["time/update_actor"] for m in ms]),
            "response_tokens": tokens,
            "s_per_1k_tokens": 1000 * mean([m["time/step"] / (m["response_length/mean"] * rows) for m in ms]),
        }
    result = {
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "fast_bf16": fast_bf16("cpu")[1], "args": vars(args), "arms": out,
        "ratio_step_time": out["bf16-mixed"]["step_s"] / out["fp32"]["step_s"],
        "ratio_per_token": out["bf16-mixed"]["s_per_1k_tokens"] / out["fp32"]["s_per_1k_tokens"],
        "ratio_update": out["bf16-mixed"]["update_s"] / out["fp32"]["update_s"],
        "ratio_generate": out["bf16-mixed"]["generate_s"] / out["fp32"]["generate_s"],
        "ratio_generate_autocast": out["bf16-mixed-autocast"]["generate_s"] / out["fp32"]["generate_s"],
        "ratio_step_time_autocast": out["bf16-mixed-autocast"]["step_s"] / out["fp32"]["step_s"],
        "steps": {k: [{kk: v for kk, v in m.items() if kk.startswith(("time/", "response_length"))} for m in ms]
                  for k, ms in steps.items()},
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("fast_bf16", "ratio_step_time", "ratio_per_token", "ratio_update",
                                             "ratio_generate", "ratio_generate_autocast", "ratio_step_time_autocast")},
                     indent=2))
    for arm, o in out.items():
        print(f"{arm:>19}: step {o['step_s']:.1f}s (generate {o['generate_s']:.1f}s, update {o['update_s']:.1f}s), "
              f"{o['response_tokens']:.0f} response tokens, {o['s_per_1k_tokens']:.2f} s per 1k tokens")


if __name__ == "__main__":
    main()
