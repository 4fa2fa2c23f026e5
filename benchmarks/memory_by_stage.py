"""Where a training process's memory goes, stage by stage: resident (VmRSS) and peak (VmHWM) memory of
each process after the trainer's setup and after each stage of two SA-GRPO steps (default model, the
``bench_fsdp`` recipe). Linux only (reads ``/proc/self/status``). Writes one JSON line per stage to
``OUT_DIR/memory_rank<r>.jsonl`` (the run itself goes to ``OUT_DIR/run``).

Usage (2 processes; the strategy is the first argument):

    torchrun --nproc-per-node 2 benchmarks/memory_by_stage.py fsdp OUT_DIR
    MALLOC_MMAP_THRESHOLD_=1048576 torchrun --nproc-per-node 2 benchmarks/memory_by_stage.py ddp OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STAGES = ("sync_rollout_weights", "generate", "old_logprobs", "reward_inputs", "update_actor")


def memory_gib() -> dict[str, float]:
    with open("/proc/self/status") as fh:
        rows = dict(line.split(":", 1) for line in fh if line.startswith(("VmRSS", "VmHWM")))
    return {k: round(int(v.split()[0]) / 2**20, 3) for k, v in rows.items()}  # kB -> GiB


def main(strategy: str, out: str) -> None:
    from sarl.config import load_config
    from sarl.train.loop import Trainer

    rank = int(os.environ.get("RANK", "0"))

    log = Path(out) / f"memory_rank{rank}.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)

    def report(step: int, stage: str) -> None:
        row = {"rank": rank, "strategy": strategy, "step": step, "stage": stage, **memory_gib()}
        with open(log, "a") as fh:
            fh.write(json.dumps(row) + "\n")

    cfg = load_config("cpu/sa_grpo", ["trainer.total_steps=2", "data.val=null", "trainer.prompts_per_step=4",
                                      "actor.mini_batch_size=16", "data.max_response_length=64", "trainer.logger=[]",
                                      f"trainer.out_dir={Path(out) / 'run'}", f"trainer.strategy={strategy}"])
    report(0, "start")
    trainer = Trainer(cfg)
    report(0, "setup")
    from sarl.train import step as stages

    for name in STAGES:  # each stage is a function of sarl.train.step, called through the module
        if not hasattr(stages, name):
            continue
        func = getattr(stages, name)

        def measured(*args, _func=func, _name=name, **kwargs):
            result = _func(*args, **kwargs)
            report(trainer.step + 1, _name)
            return result

        setattr(stages, name, measured)
    for _ in range(2):
        trainer.train_step()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
