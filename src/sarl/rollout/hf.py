"""Batched generation with transformers models, on any device: :class:`HFBackend` decodes with a model
as it is, :class:`CopyBackend` with a copy of a policy's weights (bf16, or beside a sharded policy).

A small decode loop instead of ``model.generate`` because it gives three things ``generate`` does not:
- per-sequence randomness, so a sample depends only on (seed, prompt key, sample index), not on batch
  composition (resumed and uninterrupted runs agree): inverse-CDF sampling at a counter-based uniform,
  a hash of (sequence seed, step), for the whole batch in one call on the device;
- finished sequences leave the batch (their KV-cache rows are dropped), so a batch costs what its
  live sequences cost, not what its longest sequence costs;
- a prompt is prefilled once and its cache repeated for its n samples.

Prompts are sorted by length into batches (little left padding); position ids come from the attention
mask, so left padding does not shift positions.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from sarl.logprobs import left_pad, require_prompts
from sarl.rollout.base import Backend, GenerationConfig, ProgressFn, Sample


def _filter_logits(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Mask (to -inf) tokens outside top-k / the top-p nucleus. ``[B, V]`` → ``[B, V]`` (a new tensor)."""
    out = logits.clone()
    if top_k and top_k < out.shape[-1]:
        kth = torch.topk(out, top_k, dim=-1).values[:, -1:]
        out[out < kth] = float("-inf")
    if top_p < 1.0:
        sorted_logits, idx = torch.sort(out, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the mass before it already reaches top_p (the first token always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits[drop] = float("-inf")
        out = torch.full_like(out, float("-inf")).scatter(-1, idx, sorted_logits)
    return out


def cache_kwarg(model) -> str:
    """The name of the KV-cache argument of ``model.forward``: ``cache`` in recent transformers 5.x,
    ``past_key_values`` before (and deprecated after)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def sample_seed(seed: int, key: int, sample_index: int) -> int:
    """The seed of one sequence's generator (a fixed mix; stable across runs and machines)."""
    return (seed * 1_000_003 + key * 7_919 + sample_index * 104_729) % (2**63 - 1)


_M32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (two xor-shift-multiply rounds, multiplier 0x45d9f3b) on int64 tensors
    holding values below 2**32; every product stays below 2**59, so nothing overflows."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    return (x >> 16) ^ x


def counter_uniform(row_seeds: torch.Tensor, step: int) -> torch.Tensor:
    """``[B]`` uniforms in (0, 1), a pure function of (row seed, decode step): a sequence's noise does not
    depend on the other rows of the batch, and it is made on the seeds' device in one call (no per-row
    generator, no copy to the CPU). 24 bits per uniform."""
    salt = (step * 0x9E3779B9 + 0x7F4A7C15) & _M32
    bits = _mix32(_mix32(row_seeds & _M32) ^ salt)
    return ((bits >> 8).to(torch.float32) + 0.5) * (1.0 / (1 << 24))


def categorical_sample(logits: torch.Tensor, row_seeds: torch.Tensor, step: int) -> torch.Tensor:
    """One token per row from ``softmax(logits)`` (``-inf`` entries are never drawn), by inverting the
    cumulative distribution at a :func:`counter_uniform` point: one softmax, one cumsum and one search
    for the whole batch."""
    cdf = torch.softmax(logits.float(), dim=-1).cumsum(-1)
    target = counter_uniform(row_seeds, step).unsqueeze(-1) * cdf[:, -1:]
    return torch.searchsorted(cdf, target, right=True).squeeze(-1).clamp(max=logits.shape[-1] - 1)


class HFBackend(Backend):
    """Generation with a Hugging Face causal LM and its tokenizer (backend ``hf``, alias ``transformers``)."""

    name = "hf"

    def __init__(self, model, tokenizer, stop_token_ids: Sequence[int] | None = None, logprobs: bool = False):
        self.model = model
        self.logprobs = logprobs  # record each sampled token's log-prob (Sample.logprobs)
        self.tokenizer = tokenizer
        stops = set(stop_token_ids or [])
        if not stops:
            for tid in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
                if isinstance(tid, int):
                    stops.add(tid)
                elif isinstance(tid, list | tuple):
                    stops.update(tid)
        if not stops:
            raise ValueError("no stop token: the tokenizer has no eos_token_id; pass stop_token_ids")
        self.stop_ids = stops
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(stops)
        self._cache_kw = cache_kwarg(model)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def generate(self, prompt_ids, cfg: GenerationConfig, keys=None, progress: ProgressFn | None = None):
        if keys is None:
            keys = list(range(len(prompt_ids)))
        require_prompts(prompt_ids, keys)
        results: list[list[Sample] | None] = [None] * len(prompt_ids)
        per_batch = max(1, cfg.batch_size // cfg.n)
        order = sorted(range(len(prompt_ids)), key=lambda i: (-len(prompt_ids[i]), i))
        was_training = self.model.training
        self.model.eval()
        try:
            for start in range(0, len(order), per_batch):
                idx = order[start : start + per_batch]
                samples = self._generate_batch([prompt_ids[i] for i in idx], [keys[i] for i in idx], cfg)
                n_tok = 0
                for j, i in enumerate(idx):
                    results[i] = samples[j]
                    n_tok += sum(s.num_tokens for s in samples[j])
                if progress is not None:
                    progress(len(idx), n_tok)
        finally:
            self.model.train(was_training)
        return results  # type: ignore[return-value]

    @torch.no_grad()
    def _generate_batch(self, prompts: list[Sequence[int]], keys: list[int], cfg: GenerationConfig) -> list[list[Sample]]:
        from transformers import DynamicCache

        dev = self.device
        n = cfg.n
        ids, attn, pos = left_pad(prompts, self.pad_id)
        ids, attn, pos = ids.to(dev), attn.to(dev), pos.to(dev)
        cache = DynamicCache()
        ckw = {self._cache_kw: cache}
        out = self.model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, logits_to_keep=1,
                         **ckw)
        logits = out.logits[:, -1, :].float()
        if n > 1:  # one prefill per prompt, then n copies of its cache
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, dim=0)
            attn = attn.repeat_interleave(n, dim=0)
            pos = pos.repeat_interleave(n, dim=0)
        rows = len(prompts) * n
        # one seed per sequence, as a tensor on the device; the live rows' seeds follow the KV cache
        seeds = torch.tensor([sample_seed(cfg.seed, k, s) & 0xFFFFFFFF for k in keys for s in range(n)],
                             dtype=torch.int64, device=dev)
        tokens: list[list[int]] = [[] for _ in range(rows)]
        finish = ["length"] * rows
        live = list(range(rows))  # row ids still decoding, in cache order
        next_pos = pos[:, -1] + 1
        stop = torch.tensor(sorted(self.stop_ids), device=dev)
        logps: list[list[float]] = [[] for _ in range(rows)]
        for step in range(cfg.max_new_tokens):
            if cfg.greedy:
                nxt = logits.argmax(-1)
                scaled = logits
            else:
                scaled = _filter_logits(logits / cfg.temperature, cfg.top_k, cfg.top_p)
                nxt = categorical_sample(scaled, seeds, step)
            done = torch.isin(nxt, stop)
            picked, ended = nxt.tolist(), done.tolist()  # one device-to-host copy per step
            if self.logprobs:  # the sampled token's log-prob under the sampling distribution
                lp = torch.log_softmax(scaled.float(), dim=-1).gather(-1, nxt.unsqueeze(-1)).squeeze(-1).tolist()
                for j, r in enumerate(live):
                    logps[r].append(lp[j])
            for j, r in enumerate(live):
                tokens[r].append(picked[j])
                if ended[j]:
                    finish[r] = "stop"
            if step == cfg.max_new_tokens - 1:
                break
            if bool(done.any()):
                keep = (~done).nonzero().squeeze(-1)
                if keep.numel() == 0:
                    break
                cache.batch_select_indices(keep)
                live = [live[int(j)] for j in keep]
                nxt, attn, next_pos, seeds = nxt[keep], attn[keep], next_pos[keep], seeds[keep]
            attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], dim=1)
            out = self.model(input_ids=nxt.unsqueeze(-1), attention_mask=attn, position_ids=next_pos.unsqueeze(-1),
                             use_cache=True, **ckw)
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        dec = self.tokenizer.batch_decode(tokens, skip_special_tokens=True)
        samples = [Sample(token_ids=t, text=d, finish_reason=f, logprobs=lp if self.logprobs else None)
                   for t, d, f, lp in zip(tokens, dec, finish, logps)]
        return [samples[i * n : (i + 1) * n] for i in range(len(prompts))]


class CopyBackend(HFBackend):
    """The transformers decode loop on a copy of the policy's weights, in ``dtype``, refreshed by
    :meth:`sync_weights`, which the trainer calls before each rollout that follows an update (the
    ``sync_weights`` stage, as for vLLM).

    Two uses: a bf16 copy under ``bf16-mixed`` (``rollout.bf16_copy``): decoding a fp32 model under bf16
    autocast casts inputs op by op and was slower than fp32 itself in sarl's decode loop
    (docs/RESULTS.md), bf16 weights are the fast path, and the update stays fp32 under autocast; and a full
    copy beside a sharded policy (``trainer.strategy=fsdp``, whose shards are gathered into it)."""

    def __init__(self, policy, tokenizer, dtype: torch.dtype = torch.bfloat16, logprobs: bool = True):
        super().__init__(copy.deepcopy(policy).to(dtype).eval().requires_grad_(False), tokenizer, logprobs=logprobs)

    def sync_weights(self, named_tensors) -> None:
        own = dict(self.model.named_parameters())  # tied weights appear once, as in the policy
        with torch.no_grad():
            for name, tensor in named_tensors:
                own[name].copy_(tensor)
