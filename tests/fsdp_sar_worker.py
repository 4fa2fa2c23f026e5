"""Run by tests/test_distributed.py under ``torchrun --nproc-per-node 2``: SAR's two passes
(:func:`sarl.reward_inputs.reward_inputs` with ``lockstep``) on a tiny model sharded with torch's FSDP2
over gloo, each process scoring answers of its own number and lengths (so their token-budget batch plans
differ), against the same passes on the unsharded model. Writes ``<out>/rank<r>.json``."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from sarl.logprobs import plan_batches
    from sarl.models import load_model
    from sarl.reward_inputs import reward_inputs
    from sarl.rollout.batch import RolloutBatch

    lm = load_model("tiny-random", dtype="float32", device="cpu")  # the same weights on every process
    model = lm.model.eval()
    g = torch.Generator().manual_seed(rank)
    n_rows, ans_len = (5, 20) if rank == 0 else (1, 4)  # rank 0 needs several forwards, rank 1 one
    ctx = [torch.randint(3, 500, (12,), generator=g).tolist() for _ in range(n_rows)]
    ans = [torch.randint(3, 500, (ans_len - i % 3,), generator=g).tolist() for i in range(n_rows)]
    batch = RolloutBatch(contexts=ctx, responses=ans, texts=[""] * n_rows, group_ids=torch.arange(n_rows))
    null = [[1, 2, 3]] * n_rows
    kw = {"null_contexts": null, "pad_token_id": 0, "max_batch_tokens": 64}
    needs = {"logp_qa", "logp_a"}
    want = reward_inputs(model, batch, needs, **kw)
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    got = reward_inputs(model, batch, needs, lockstep=True, **kw)
    forwards = len(plan_batches([len(c) + len(a) for c, a in zip(ctx, ans)], [len(a) for a in ans], 64, 512))
    diff = max(float((got.logp_qa - want.logp_qa).abs().max()), float((got.logp_a - want.logp_a).abs().max()))
    (out / f"rank{rank}.json").write_text(json.dumps({"rank": rank, "forwards_per_pass": forwards,
                                                      "max_abs_diff": diff, "tokens": int(want.response_mask.sum())}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
