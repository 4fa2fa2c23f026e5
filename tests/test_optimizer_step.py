"""sarl.train.update.optimizer_step: the one optimizer step of the actor, the critic and SFT (clip, skip a
non-finite step, step the optimizer and the schedule)."""

import copy
import math

import torch

from sarl.train.update import lr_lambda, optimizer_step


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(2, 10, "cosine"))
    return model, opt, sched


def _backward(model, scale=1.0):
    x = torch.linspace(-1, 1, 18).reshape(3, 6)
    (model(x).pow(2).sum() * scale).backward()


def test_a_finite_step_is_clip_then_adamw_then_schedule_bit_for_bit():
    model, opt, sched = _setup()
    ref = copy.deepcopy(model)
    ropt = torch.optim.AdamW(ref.parameters(), lr=1e-2, weight_decay=0.01)
    rsched = torch.optim.lr_scheduler.LambdaLR(ropt, lr_lambda(2, 10, "cosine"))
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        _backward(model)
        norm, stepped = optimizer_step(model, opt, sched, grad_clip=0.1)
        ropt.zero_grad(set_to_none=True)
        _backward(ref)
        rnorm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.1)
        ropt.step()
        rsched.step()
        assert stepped and norm == float(rnorm) and norm > 0.1  # the pre-clip norm
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters()))
    assert sched.last_epoch == rsched.last_epoch == 3 and sched.get_last_lr() == rsched.get_last_lr()


def test_a_non_finite_gradient_or_loss_skips_the_step():
    model, opt, sched = _setup()
    before = [p.detach().clone() for p in model.parameters()]
    _backward(model, scale=float("inf"))
    norm, stepped = optimizer_step(model, opt, sched, grad_clip=1.0)
    assert not stepped and not math.isfinite(norm)
    assert all(p.grad is None for p in model.parameters()) and sched.last_epoch == 0
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
    _backward(model)
    norm, stepped = optimizer_step(model, opt, sched, grad_clip=1.0, finite=False)  # a loss was non-finite
    assert not stepped and math.isnan(norm) and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
