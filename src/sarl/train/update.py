"""The optimizer-step machinery shared by the actor, the critic and SFT: mini-batches, gradient
accumulation over micro-batches with the mini-batch's normalisers (:func:`accumulate_update`), and one
optimizer step with gradient clipping, skipping non-finite steps, and the learning-rate schedule
(:func:`optimizer_step`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sarl.algos import loss_normalizers
from sarl.train.sharding import grad_norm_value

# micro_loss(rows, normalisers) -> (loss to backpropagate, loss parts to log, per-micro-batch statistics)
MicroLoss = Callable[[list[int], dict], tuple[torch.Tensor, dict[str, float], dict[str, float]]]


def lr_lambda(warmup: int, total: int, schedule: str = "constant") -> Callable[[int], float]:
    """LambdaLR factor at optimizer step ``s`` (0-based): ``(s + 1) / warmup`` during warm-up, then 1
    (``constant``) or ``0.5 (1 + cos(pi min(1, (s - warmup) / max(1, total - warmup))))`` (``cosine``,
    to 0 at step ``total``)."""

    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if schedule == "cosine":
            span = max(1, total - warmup)
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span)))
        return 1.0

    return f


def optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, grad_clip: float, *,
                   finite: bool = True, dist=None) -> tuple[float, bool]:
    """One optimizer step on the accumulated gradients: ``(pre-clip gradient norm, stepped)``.

    ``finite``: whether every loss that was backpropagated was finite. With ``dist`` (several processes)
    the step is taken everywhere or nowhere (:meth:`~sarl.train.distributed.Dist.all_true`) and the
    gradients are summed over processes first. The norm is clipped at ``grad_clip``; then the optimizer
    and the scheduler step, or, for a non-finite loss or norm, the gradients are dropped and the step is
    skipped (the norm is then NaN for a non-finite loss). Used by every optimizer step: actor, critic, SFT."""
    if dist is not None:
        finite = dist.all_true(finite)
        dist.reduce_grads(model)
    gn = (grad_norm_value(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)) if finite
          else torch.tensor(float("nan")))
    norm = float(gn)
    if finite and torch.isfinite(gn):
        optimizer.step()
        scheduler.step()
        return norm, True
    optimizer.zero_grad(set_to_none=True)
    return norm, False


@dataclass
class UpdateStats:
    """What one call of :func:`accumulate_update` did. ``losses``: each logged loss part as a mean per
    optimizer step; ``stats``: means over micro-batches; ``grad_norm``: mean pre-clip norm per step."""

    losses: dict[str, float] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)
    grad_norm: float = 0.0
    steps: int = 0
    skipped: int = 0


def accumulate_update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, *, mask: torch.Tensor,
                      mini_batch: int, micro_batch: int, epochs: int, grad_clip: float,
                      micro_loss: MicroLoss, dist=None) -> UpdateStats:
    """``epochs`` passes over the rows of ``mask [N, T]`` in order; each mini-batch of ``mini_batch``
    rows is one optimizer step whose gradient is accumulated over micro-batches of ``micro_batch`` rows.
    Every micro-batch loss is normalised with the whole mini-batch's totals
    (:func:`sarl.algos.loss_normalizers`), so the gradient equals one big batch's for any split. The
    norm is clipped at ``grad_clip``; a non-finite loss or norm skips the step (counted in ``skipped``).
    ``dist`` (:class:`sarl.train.distributed.Dist`, several processes): the normalisers and gradients
    are summed over processes, and a step is skipped everywhere when any process's loss is non-finite.
    Sharded (``dist.sharded``): every micro-batch runs its forward and backward even after a non-finite
    loss (each is a collective), and the non-finite gradient then skips the step on every process."""
    n = mask.shape[0]
    sharded = dist is not None and dist.sharded
    sums: dict[str, float] = defaultdict(float)
    stats: dict[str, list[float]] = defaultdict(list)
    norms: list[float] = []
    out = UpdateStats()
    for _ in range(epochs):
        for start in range(0, n, mini_batch):
            idx = list(range(start, min(n, start + mini_batch)))
            norm = loss_normalizers(mask[idx])
            norm = {"global_tokens": float(norm["global_tokens"]), "global_seqs": float(norm["global_seqs"])}
            if dist is not None:
                norm = dist.sum_values(norm)
            # no valid token (every response masked out, actor.mask_truncated): loss 0, not 0/0 (TRL's clamp)
            norm["global_tokens"] = max(norm["global_tokens"], 1.0)
            optimizer.zero_grad(set_to_none=True)
            finite = True
            for m0 in range(0, len(idx), micro_batch):
                loss, parts, micro_stats = micro_loss(idx[m0 : m0 + micro_batch], norm)
                for k, v in parts.items():
                    sums[k] += v
                for k, v in micro_stats.items():
                    stats[k].append(v)
                if not torch.isfinite(loss):
                    finite = False
                    if not sharded:
                        break
                loss.backward()
            gn, stepped = optimizer_step(model, optimizer, scheduler, grad_clip, finite=finite, dist=dist)
            norms.append(gn)
            out.steps += 1
            out.skipped += not stepped
    out.losses = {k: v / max(1, out.steps) for k, v in sums.items()}
    if dist is not None:  # each process's loss is its part of the global loss
        out.losses = dist.sum_values(out.losses)
    out.stats = {k: sum(v) / max(1, len(v)) for k, v in stats.items()}
    out.grad_norm = sum(norms) / max(1, len(norms))
    return out
