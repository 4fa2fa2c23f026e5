"""``trainer.strategy=fsdp``: the policy (and the reference model) sharded over the processes with torch's
FSDP2 (``fully_shard``), for models whose weights, gradients and AdamW state do not fit one device.

What changes against ``ddp`` (:mod:`sarl.train.distributed`), and why:

- each decoder layer (the classes the model lists in ``_no_split_modules``, as accelerate's transformer
  wrap policy does) is one FSDP unit, and the root holds the rest (embeddings, final norm, a tied LM
  head). A process stores 1/N of every parameter, gradient and AdamW moment; a forward gathers one
  layer at a time;
- every forward and backward is a collective, so every process must run the same number of them:
  the log-prob passes and the update's micro-batches run in ``lockstep``
  (:func:`sarl.logprobs.answer_forward`), and a non-finite loss no longer ends a mini-batch early on one
  process (its step is skipped everywhere by the non-finite gradient norm);
- gradients are summed (not averaged) by FSDP's reduce-scatter, because sarl's loss is already
  normalised by the global token and sequence counts; so the step equals one process's on the same
  rows, as under ``ddp``;
- rollouts: sampling runs on a full copy of the weights (bf16 under ``bf16-mixed`` with
  ``rollout.bf16_copy``, else fp32), refreshed from the shards after each update, the way verl's hybrid
  engine hands FSDP weights to its rollout engine; a decode loop on the sharded model would gather every
  layer at every token, and the processes' loops end at different lengths;
- checkpoints and the export gather full state dicts (every process takes part, rank 0 writes), so a
  checkpoint is the same plain HF folder as under ``ddp``, and AdamW's state is saved per parameter name.

Tested on the CPU with gloo (``tests/test_distributed.py``): the same weights as one process, and an exact
resume. With one process there is nothing to shard and training runs unsharded.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

_FULL = {"full_state_dict": True, "cpu_offload": True}


def shard_model(model: torch.nn.Module, world: int, device: str) -> int:
    """Shard ``model`` in place over the ``world`` processes of the default group: each module whose class
    is in ``model._no_split_modules`` becomes an FSDP unit, then the root. Gradients are reduced by sum.
    Returns the number of units (root included)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard

    mesh = init_device_mesh("cuda" if str(device).startswith("cuda") else "cpu", (world,))
    names = set(getattr(model, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names and m is not model]
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for m in model.modules():
        if isinstance(m, FSDPModule):
            # sum, not average: the loss is normalised by the global counts already (gloo has no
            # pre-multiplied sum, so the factor is applied as a plain sum)
            m.set_gradient_divide_factor(1.0)
            m.set_force_sum_reduction_for_comms(True)
    return len(layers) + 1


def local_fraction(model: torch.nn.Module) -> float:
    """The share of the model's parameter elements this process stores (1 / N when sharded evenly)."""
    total = local = 0
    for prm in model.parameters():
        total += prm.numel()
        local += prm.to_local().numel() if hasattr(prm, "to_local") else prm.numel()
    return local / max(1, total)


def full_named_parameters(model: torch.nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, full tensor)`` for each parameter of a sharded model, gathered one at a time (a collective:
    every process must consume the whole iterator, in the same order)."""
    for name, prm in model.named_parameters():
        yield name, prm.full_tensor() if hasattr(prm, "full_tensor") else prm


def full_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's full state dict on the CPU of rank 0 (``{}`` elsewhere; a collective), without the tied
    copies that ``save_pretrained`` leaves out (``lm_head.weight`` when tied to the embeddings)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    sd = get_model_state_dict(model, options=StateDictOptions(**_FULL))
    for target in dict(getattr(model, "all_tied_weights_keys", None) or {}):
        sd.pop(target, None)
    return sd


def load_full_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> None:
    """Load a full state dict (every process passes the same one) into the sharded ``model``. Tied copies
    may be absent."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    tied = set(dict(getattr(model, "all_tied_weights_keys", None) or {}))
    missing, unexpected = set_model_state_dict(model, sd, options=StateDictOptions(full_state_dict=True, strict=False))
    bad = sorted(set(missing) - tied) + sorted(unexpected)
    if bad:
        raise RuntimeError(f"the saved weights do not match the model ({bad[:3]}...)")


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer's full state keyed by parameter name, on the CPU of rank 0 (a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=StateDictOptions(**_FULL))


def load_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Load :func:`full_optimizer_state`'s dict (every process passes the same one)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=StateDictOptions(full_state_dict=True))


def grad_norm_value(norm: torch.Tensor) -> torch.Tensor:
    """``clip_grad_norm_``'s result as a plain tensor (over sharded parameters it is a replicated DTensor)."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm
