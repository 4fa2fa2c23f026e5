"""Data parallel ``sarl train`` on torch.distributed: ``torchrun --nproc-per-node N -m sarl train ...`` or
``accelerate launch --num_processes N -m sarl train ...`` (both set ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and the rendezvous address; gloo on CPU, nccl on CUDA).

What each process does, for a step of P prompts x n rollouts and N processes:

- every process draws the same P prompts (the data order is seeded) and keeps its own P / N of them,
  so a prompt's group of n rollouts is generated, rewarded and normalised on one process (group
  advantages need nothing from the others). Sampling uses one generator per (seed, prompt, sample),
  so the rollouts do not depend on N;
- the update: an optimizer step takes ``mini_batch_size / N`` rows from each process. The loss
  normalisers (token and sequence counts) are summed over processes first and the gradients summed
  after the backward pass (an all-reduce, as DDP does), so the step equals one process's on the same
  rows; clipping and AdamW then run identically everywhere and the replicas stay equal;
- logging, checkpoints, the export and validation happen on rank 0 only; metrics are averaged over
  processes first (each holds the same number of rollouts, so means of means are global means).

``trainer.strategy=fsdp`` shards the weights instead of replicating them (:mod:`sarl.train.sharding`);
the split of the batch, the normalisers and the logging stay as here.

Estimators that normalise over the whole batch (those registered with ``batch_wide=True``:
``reinforce_plus_plus``, ``gae``) are refused with several processes: their statistics would be per process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

from sarl.algos import ADV_ESTIMATORS, group_local_estimators
from sarl.algos.advantages import estimator_batch_wide, read_field
from sarl.errors import ConfigError


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    sharded: bool = False  # trainer.strategy=fsdp over several processes (sarl.train.sharding)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def per_process(self, n: int, what: str) -> int:
        """``n / N``: this process's share of a count that must divide by the number of processes."""
        if n % self.world:
            raise ConfigError(f"{what}: {n} must be a multiple of the {self.world} processes")
        return n // self.world

    def shard(self, items: list, what: str = "trainer.prompts_per_step") -> list:
        """This process's contiguous 1/N of ``items`` (its length must divide by N)."""
        k = self.per_process(len(items), what)
        return items[self.rank * k:(self.rank + 1) * k]

    def check_estimator(self, estimator: str, cfg=None) -> None:
        """Several processes need an estimator whose statistics stay within a group: one registered
        without ``batch_wide``, and, given the config ``cfg``, whose options do not make it batch-wide
        (``batch_wide_with``, e.g. grpo with ``algorithm.reward_aggregation=normalize_then_sum``);
        unknown names raise ``KeyError``."""
        if not self.active:
            return
        if ADV_ESTIMATORS.meta(estimator)["batch_wide"]:
            raise ConfigError(f"algorithm.adv_estimator: {estimator} normalises over the whole batch, which several "
                              f"processes do not share; with {self.world} processes use one of "
                              f"{', '.join(group_local_estimators())}")
        if cfg is not None and estimator_batch_wide(estimator, cfg):
            options = ", ".join(f"{path}={read_field(cfg, path)}"
                                for path in ADV_ESTIMATORS.meta(estimator)["options"].values())
            raise ConfigError(f"algorithm.adv_estimator: {estimator} with {options} normalises over the whole "
                              f"batch, which {self.world} processes do not share; run it with one process")

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        if self.active:
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
        return t

    def sum_values(self, values: dict[str, float]) -> dict[str, float]:
        """Each value summed over processes (one all-reduce), e.g. the global mini-batch's token and
        sequence counts, or the parts of a loss."""
        if not self.active or not values:
            return dict(values)
        keys = sorted(values)
        t = self.sum_(torch.tensor([float(values[k]) for k in keys], dtype=torch.float64))
        return dict(zip(keys, t.tolist()))

    def reduce_grads(self, model: torch.nn.Module) -> None:
        """Sum every gradient over processes (one flat all-reduce); nothing when sharded (FSDP's
        reduce-scatter summed them in the backward pass)."""
        if not self.active or self.sharded:
            return
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1).to(torch.float32) for g in grads])
        self.sum_(flat)
        i = 0
        for g in grads:
            n = g.numel()
            g.copy_(flat[i:i + n].view_as(g))
            i += n

    def mean_metrics(self, metrics: dict) -> dict:
        """Numeric metrics averaged over processes (others kept as rank 0 has them)."""
        if not self.active:
            return metrics
        numeric = {k: v for k, v in metrics.items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and k != "step"}
        return {**metrics, **{k: v / self.world for k, v in self.sum_values(numeric).items()}}

    def gather_objects(self, obj) -> list:
        """Every process's ``obj`` (picklable), in rank order, on every process (one all-gather)."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world
        torch.distributed.all_gather_object(out, obj)
        return out

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every process (so all skip or all take an optimizer step)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0])
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return bool(t.item())

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


def launcher_strategy(strategy: str) -> tuple[str, str | None]:
    """``trainer.strategy`` as the launcher asks for it: ``accelerate launch --use_fsdp`` (which sets
    ``ACCELERATE_USE_FSDP=true``) means ``fsdp``, so that its FSDP flag is not silently ignored. Returns
    the strategy and a note when it changed; parameter offload (``--fsdp_offload_params``) is refused."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() not in ("1", "true"):
        return strategy, None
    if os.environ.get("FSDP_OFFLOAD_PARAMS", "").lower() in ("1", "true"):
        raise ConfigError("accelerate launch --fsdp_offload_params: sarl train shards without CPU offload; "
                          "launch without it (trainer.strategy=fsdp)")
    if strategy == "fsdp":
        return strategy, None
    return "fsdp", "accelerate launch --use_fsdp: trainer.strategy=fsdp"


def launched_rank() -> int:
    """This process's rank as the launcher (torchrun, accelerate) set it; 0 without one."""
    return int(os.environ.get("RANK", "0"))


def init_distributed(device: str, timeout_s: float | None = None) -> tuple[Dist, str]:
    """A :class:`Dist` from the launcher's environment (one process without ``WORLD_SIZE``) and the
    device this process uses: ``cuda:LOCAL_RANK`` on GPUs, else the configured device. ``timeout_s``: how
    long a collective waits for a stalled peer before it raises (``None``: torch's default, 30 min with
    gloo). A killed peer needs none: torchrun's agent sees the death and stops the others within ~2 s."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist(), device
    rank, local = launched_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    elif device == "auto":
        device = "cpu"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if cuda else "gloo",
                                             timeout=timedelta(seconds=timeout_s) if timeout_s else None)
    return Dist(rank=rank, world=world, local_rank=local), device
