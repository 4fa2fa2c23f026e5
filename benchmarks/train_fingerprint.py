"""Fingerprint of three 4-step tiny-model training runs (SA-GRPO, PPO, weighted GRPO): every logged
metric except timings, and a hash of the final weights. A refactor of the training loop must leave
them bit-identical on the same machine:

    python benchmarks/train_fingerprint.py -o before.json      # on the old code
    python benchmarks/train_fingerprint.py --compare before.json  # on the new code

(Floating-point paths differ between machines, so the JSON is compared on one machine, not stored.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

TINY = [
    "model.name=tiny-random", "data.train=chain_sum", "data.train_size=64", "data.max_response_length=12",
    "data.max_prompt_length=128", "rollout.n=4", "rollout.batch_size=8", "trainer.prompts_per_step=2",
    "actor.lr=1e-3", "actor.micro_batch_size=2", "actor.mini_batch_size=4", "trainer.tensorboard=false",
    "trainer.total_steps=4", "model.threads=1",
]
RUNS = {
    "sa_grpo": ["rewards.weights={correctness: 1.0, sar: 0.2, o1_pruner: 0.5}", "actor.use_kl_loss=true",
                "actor.kl_loss_coef=0.001", "actor.kl_loss_type=k3", "actor.loss_agg_mode=seq-mean-token-sum-norm",
                "algorithm.norm_adv_by_std_in_grpo=false", "actor.ppo_epochs=2"],
    "ppo": ["algorithm.adv_estimator=gae", "rewards.weights={correctness: 1.0, sar: 0.2}", "critic.lr=1e-3",
            "actor.ppo_epochs=2", "actor.entropy_coeff=0.01"],
    "weighted_grpo": ["algorithm.advantage_weighting_in_grpo=true",
                      "rewards.weights={correctness: 1.0, sar: 0.5, o1_pruner: 0.5}"],
}


def weights_hash(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def fingerprint(name: str, extra: list[str]) -> dict:
    import torch

    from sarl.config import load_config
    from sarl.train import Trainer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        cfg = load_config(None, TINY + extra + [f"trainer.out_dir={d}"])
        tr = Trainer(cfg)
        tr.run()
        steps = [json.loads(line) for line in (Path(d) / "metrics.jsonl").read_text().splitlines()]
        return {"metrics": [{k: v for k, v in m.items() if not k.startswith("time/")} for m in steps],
                "policy": weights_hash(tr.policy),
                "critic": None if tr.critic is None else weights_hash(tr.critic)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", type=Path)
    ap.add_argument("--compare", type=Path)
    args = ap.parse_args()
    got = {name: fingerprint(name, extra) for name, extra in RUNS.items()}
    if args.out:
        args.out.write_text(json.dumps(got, indent=1) + "\n")
    if not args.compare:
        return 0
    want = json.loads(args.compare.read_text())
    bad = 0
    for name in RUNS:
        for key in ("policy", "critic"):
            if got[name][key] != want[name][key]:
                print(f"{name}: {key} weights differ")
                bad += 1
        for s, (g, w) in enumerate(zip(got[name]["metrics"], want[name]["metrics"])):
            for k in sorted(set(g) | set(w)):
                if g.get(k) != w.get(k):
                    print(f"{name} step {s}: {k}: before {w.get(k)!r} after {g.get(k)!r}")
                    bad += 1
    print("identical" if not bad else f"{bad} difference(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
