"""trainer.precision: fp32 master weights with bf16 autocast (bf16-mixed) against fp32, the failure mode
it replaces (AdamW on bf16 weights), the detection of fast bf16, and the configuration checks."""

from __future__ import annotations

import pytest
import torch

from sarl.config import ConfigError, load_config
from sarl.precision import BF16_MIN_HIDDEN, autocast, bf16_pays_off, fast_bf16, resolve_precision
from sarl.train import step as stages

TINY = [
    "model.name=tiny-random", "data.train=chain_sum", "data.train_size=16", "data.max_response_length=12",
    "data.max_prompt_length=128", "rollout.n=4", "trainer.prompts_per_step=2", "actor.micro_batch_size=8",
    "trainer.tensorboard=false", "actor.weight_decay=0.0",
    "rewards.weights={correctness: 1.0, sar: 0.5, o1_pruner: 0.5}",  # advantages vary even when all are wrong
]


def _trainer(tmp_path, *extra):
    from sarl.train import Trainer

    return Trainer(load_config(None, [*TINY, f"trainer.out_dir={tmp_path}", *extra]))


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _changed(before, model) -> float:
    after = dict(model.named_parameters())
    total = sum(v.numel() for v in before.values())
    return sum(int((after[k].detach() != v).sum()) for k, v in before.items()) / total


def test_bf16_mixed_keeps_fp32_master_weights_so_a_tiny_lr_still_moves_them(tmp_path):
    """At lr 1e-6 one bf16-mixed step changes >= 99% of the weights (they are fp32). The same AdamW
    step applied to a bf16 copy of the weights, with the same gradients, changes almost none: the
    failure mode of training bf16 weights directly."""
    tr = _trainer(tmp_path, "trainer.precision=bf16-mixed", "actor.lr=1e-6")
    assert tr.parts.precision == "bf16-mixed"
    assert all(p.dtype == torch.float32 for p in tr.policy.parameters())
    before = _snapshot(tr.policy)
    grads: dict[str, torch.Tensor] = {}
    step = tr.parts.opt.step

    def capture(*a, **k):
        grads.update({n: p.grad.detach().clone() for n, p in tr.policy.named_parameters() if p.grad is not None})
        return step(*a, **k)

    tr.parts.opt.step = capture
    tr.train_step()
    assert tr.parts.opt.state and all(s["exp_avg"].dtype == torch.float32 for s in tr.parts.opt.state.values())
    assert _changed(before, tr.policy) >= 0.99

    # the contrast: bf16 weights, the same gradients, the same AdamW step
    bf16 = {k: torch.nn.Parameter(v.to(torch.bfloat16)) for k, v in before.items()}
    for k, p in bf16.items():
        p.grad = grads[k].to(torch.bfloat16)
    torch.optim.AdamW(bf16.values(), lr=1e-6, weight_decay=0.0).step()
    moved = sum(int((p.detach() != before[k].to(torch.bfloat16)).sum()) for k, p in bf16.items())
    assert moved / sum(v.numel() for v in before.values()) < 0.2


def test_bf16_mixed_logprobs_and_sar_agree_with_fp32(tmp_path):
    """The same rollouts scored in fp32 and under bf16 autocast: log-probs within 0.05 nats per token
    (bf16 keeps 8 mantissa bits; the logits go through log-softmax in fp32) and SAR within 0.02."""
    from sarl.rewards import REWARDS

    tr = _trainer(tmp_path, "trainer.precision=fp32")
    batch = stages.generate(tr.parts, 0)
    out = {}
    for precision in ("fp32", "bf16-mixed"):
        tr.parts.precision = precision
        old = stages.old_logprobs(tr.parts, batch)
        inputs = stages.null_logprobs(tr.parts, batch, old, old.mask)  # under the run's autocast
        sar = REWARDS["sar"](inputs, REWARDS["sar"].make_options(None))
        out[precision] = (old.logp, old.mask, sar)
    (lp32, mask, sar32), (lp16, _, sar16) = out["fp32"], out["bf16-mixed"]
    assert lp16.dtype == torch.float32  # returned in fp32 whatever the compute precision
    diff = ((lp32 - lp16).abs() * mask).max()
    assert 0 < diff < 0.05  # > 0: autocast really ran in bf16
    assert (sar32 - sar16).abs().max() < 0.02


def test_fp32_runs_no_autocast():
    with autocast("fp32", "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("bf16-mixed", "cpu"):
        assert torch.is_autocast_enabled("cpu")
        x = torch.randn(4, 4)
        assert (x @ x).dtype == torch.bfloat16


def test_auto_resolves_by_hardware_and_width():
    ok, why = fast_bf16("cpu")
    assert isinstance(why, str) and why
    assert resolve_precision("auto", "cpu") == ("bf16-mixed" if ok else "fp32")
    # on a CPU, bf16 only from BF16_MIN_HIDDEN up (narrow models decode slower in bf16)
    assert resolve_precision("auto", "cpu", hidden=BF16_MIN_HIDDEN) == ("bf16-mixed" if ok else "fp32")
    assert resolve_precision("auto", "cpu", hidden=BF16_MIN_HIDDEN - 1) == "fp32"
    assert resolve_precision("fp32", "cpu", hidden=4096) == "fp32"
    assert resolve_precision("bf16-mixed", "cpu", hidden=64) == "bf16-mixed"
    if ok:
        assert "fp32 is faster" in bf16_pays_off("cpu", 128)[1]
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16-mixed", "cpu") == "bf16-mixed"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16", "cpu")


def test_half_precision_weights_are_refused_for_training():
    with pytest.raises(ConfigError, match=r"model.dtype: bfloat16 .* trainer.precision=bf16-mixed"):
        load_config(None, ["model.dtype=bfloat16"])
    with pytest.raises(ConfigError, match="trainer.precision"):
        load_config(None, ["trainer.precision=fp16"])


def test_model_dtype_auto_follows_the_same_rule():
    """``--dtype auto`` (sarl eval / score / analyze): bf16 weights for the default model (hidden 576) on
    a CPU with bf16 units, fp32 for tiny-random (hidden 64); what a record names is the resolved dtype."""
    from sarl.models import load_model, model_dtype_name, resolve_dtype

    ok = fast_bf16("cpu")[0]
    assert model_dtype_name(None, "auto", "cpu") == ("bfloat16" if ok else "float32")
    assert model_dtype_name(None, "float32", "cpu") == "float32"
    assert model_dtype_name("tiny-random", "auto", "cpu") == "float32"
    assert load_model("tiny-random", device="cpu").dtype == torch.float32
    assert resolve_dtype("auto", "cpu") == torch.float32  # width unknown: fp32 on a CPU


def test_bf16_mixed_rollouts_sample_from_a_bf16_copy_synced_after_each_update(tmp_path):
    """Under bf16-mixed the hf backend decodes a bf16 copy of the policy (bf16 weights decode faster than
    autocast); the sync_weights stage refreshes it before the rollout that follows an update, and the
    policy itself stays fp32. rollout.bf16_copy=false samples with the policy under autocast."""
    from sarl.rollout import CopyBackend, HFBackend
    from sarl.train import Trainer

    base = ["model.name=tiny-random", "data.train=chain_sum", "data.train_size=16", "data.max_response_length=8",
            "rollout.n=2", "trainer.prompts_per_step=2", "actor.lr=1e-2", "trainer.tensorboard=false",
            "trainer.precision=bf16-mixed", "rewards.weights={correctness: 1.0, sar: 0.5}"]
    tr = Trainer(load_config(None, base + [f"trainer.out_dir={tmp_path / 'copy'}"]))
    assert isinstance(tr.parts.backend, CopyBackend) and tr.parts.backend.model is not tr.policy
    assert next(tr.policy.parameters()).dtype == torch.float32
    copy = dict(tr.parts.backend.model.named_parameters())
    assert all(p.dtype == torch.bfloat16 for p in copy.values())
    m = tr.train_step()  # syncs (no change yet), samples from the copy, updates the fp32 policy
    assert m["response_length/mean"] > 0
    stale = [k for k, p in tr.policy.named_parameters() if not torch.equal(copy[k], p.detach().to(torch.bfloat16))]
    assert stale  # the update moved the policy; the copy still holds the weights it sampled with
    stages.sync_weights(tr.parts, synced=None)  # the stage that runs before the next rollout
    for k, p in tr.policy.named_parameters():
        assert torch.equal(copy[k], p.detach().to(torch.bfloat16)), k
    plain = Trainer(load_config(None, base + ["rollout.bf16_copy=false", f"trainer.out_dir={tmp_path / 'plain'}"]))
    assert type(plain.parts.backend) is HFBackend and plain.parts.backend.model is plain.policy
