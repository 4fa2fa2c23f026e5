"""The one place that runs a model forward to get token log-probs of answers given contexts.

Scoring, SAR, evaluation, the policy/reference/null-context passes of training and the TRL plug-in all
call :func:`answer_logprobs`.

How a batch is built (and why padding cannot change a result):
- Examples are sorted by total length and cut into buckets whose padded size stays under a token budget,
  so little compute goes to padding; results are scattered back to the input order.
- Each row is ``context + answer``, **left**-padded, so every answer ends at the last position. The
  attention mask hides the pads and ``position_ids = cumsum(mask) - 1`` gives every real token the
  position it would have alone, so a padded row computes what the unpadded row computes (up to float
  summation order: batched and one-by-one agree within 1e-4 on the default model).
- Only the last ``max_answer_len + 1`` positions go through the LM head (``logits_to_keep``), so context
  tokens never pay for the vocabulary projection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

# Padded tokens per forward pass, the default of every log-prob, SAR and update pass (and of
# actor.max_tokens_per_forward): on a 2-core CPU, 2048 measured fastest (8192 was 2x slower).
MAX_BATCH_TOKENS = 2048

STATS = ("entropy", "self_certainty")


@dataclass
class AnswerLogprobs:
    """Per-token results, right-padded to the longest answer.

    Shapes: ``logp``, ``mask`` and each of ``stats`` are ``[N, T]`` with ``T = max answer length``.
    ``mask`` is 1 on real answer tokens. ``stats`` holds the per-token extras that need the full
    distribution (``entropy`` = H(p); ``self_certainty`` = KL(U || p)) when asked for.
    """

    logp: torch.Tensor
    mask: torch.Tensor
    stats: dict[str, torch.Tensor]


def require_prompts(prompts: Sequence[Sequence[int]], paired: Sequence, what: str = "prompt",
                    paired_name: str = "keys") -> None:
    """Each prompt (or context) is non-empty, and there is one per ``paired`` item: the first generated
    or scored token needs something to condition on."""
    if len(prompts) != len(paired):
        raise ValueError(f"{len(prompts)} {what}s but {len(paired)} {paired_name}")
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"{what} {i} is empty; the first token needs a {what}")


def left_pad(seqs: Sequence[Sequence[int]], pad_token_id: int, width: int | None = None):
    """Left-padded ``input_ids [B, W]``, ``attention_mask [B, W]`` and ``position_ids [B, W]`` (long)
    for token lists; ``W = width`` or the longest list. ``position_ids = cumsum(mask) - 1`` (0 on the
    pads) gives every real token the position it has alone, so padding cannot change a result. The one
    padding helper of the log-prob passes, generation and SFT."""
    w = max((len(s) for s in seqs), default=0) if width is None else width
    ids = torch.full((len(seqs), w), pad_token_id, dtype=torch.long)
    attn = torch.zeros((len(seqs), w), dtype=torch.long)
    for r, seq in enumerate(seqs):
        if len(seq):
            ids[r, w - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
            attn[r, w - len(seq):] = 1
    return ids, attn, (attn.cumsum(-1) - 1).clamp(min=0)


def plan_batches(lengths: Sequence[int], answer_lengths: Sequence[int], max_batch_tokens: int,
                 max_logit_tokens: int) -> list[list[int]]:
    """Length bucketing: indices sorted by total length (longest first) and cut greedily so that
    ``rows x longest row <= max_batch_tokens`` and ``rows x (longest answer + 1) <= max_logit_tokens``.
    A single over-budget example still gets a batch of its own."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    cur_len = cur_ans = 0
    for i in order:
        new_len = max(cur_len, lengths[i])
        new_ans = max(cur_ans, answer_lengths[i] + 1)
        n = len(cur) + 1
        if cur and (n * new_len > max_batch_tokens or n * new_ans > max_logit_tokens):
            batches.append(cur)
            cur, new_len, new_ans = [], lengths[i], answer_lengths[i] + 1
        cur.append(i)
        cur_len, cur_ans = new_len, new_ans
    if cur:
        batches.append(cur)
    return batches


def _token_stats(logits: torch.Tensor, logp_all: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
    out = {}
    if "entropy" in names:
        out["entropy"] = -(logp_all.exp() * logp_all).sum(-1)
    if "self_certainty" in names:
        # KL(U || p) = sum_v (1/V) log((1/V) / p_v) = -log V - mean_v log p_v
        vocab = logp_all.shape[-1]
        out["self_certainty"] = -torch.log(torch.tensor(float(vocab))) - logp_all.mean(-1)
    return out


def answer_logprobs(
    model,
    contexts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    *,
    pad_token_id: int = 0,
    temperature: float = 1.0,
    stats: Sequence[str] = (),
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    max_logit_tokens: int = 512,
    grad: bool = False,
    lockstep: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> AnswerLogprobs:
    """Log-probs of each answer's tokens given its context: ``log p(a_t | context, a_<t)``.

    Args:
        model: a Hugging Face causal LM (anything accepting ``input_ids``, ``attention_mask``,
            ``position_ids`` and ``logits_to_keep``).
        contexts, answers: token-id lists, one pair per example. Contexts must be non-empty (the first
            answer token needs something to condition on); answers may be empty (all-zero mask row).
        temperature: logits are divided by it before the softmax (use the sampling temperature when
            these log-probs enter a policy-gradient ratio).
        stats: extra per-token quantities from the full distribution, any of ``STATS``. They cost a
            softmax-sized pass over ``[tokens, vocab]``, already materialised for the log-probs.
        max_batch_tokens: padded tokens per forward (rows x longest row). On CPU, small batches that
            stay in cache are fastest (2048 measured best on 2 cores; 8192 was 2x slower).
        max_logit_tokens: rows x (longest answer + 1) per forward; bounds the ``[B, K, V]`` logits.
        grad: keep the graph (for policy updates); otherwise runs under ``torch.no_grad``.
        lockstep: every process of the default process group runs the same number of forwards
            (:func:`answer_forward`): for sharded models (FSDP, DeepSpeed ZeRO-3), whose forwards (and,
            with ``grad``, backwards) are collectives.
        progress: called as ``progress(n_examples_done, n_answer_tokens_done)`` after each batch.

    Returns:
        :class:`AnswerLogprobs` in the input order.
    """
    unknown = set(stats) - set(STATS)
    if unknown:
        raise ValueError(f"unknown stats {sorted(unknown)}; expected any of {STATS}")

    def head(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        logits = logits.float()
        if temperature != 1.0:
            logits = logits / temperature
        if stats:
            logp_all = torch.log_softmax(logits, dim=-1)
            out = {"logp": logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)}  # [B, k]
            out.update(_token_stats(logits, logp_all, stats))
            return out
        # cheaper than log_softmax: no [B, k, V] output tensor is written
        return {"logp": logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)}

    out, mask = answer_forward(model, contexts, answers, head, ("logp", *stats), pad_token_id=pad_token_id,
                               max_batch_tokens=max_batch_tokens, max_logit_tokens=max_logit_tokens, grad=grad,
                               lockstep=lockstep, progress=progress)
    return AnswerLogprobs(logp=out.pop("logp"), mask=mask, stats=out)


def answer_forward(
    model,
    contexts: Sequence[Sequence[int]],
    answers: Sequence[Sequence[int]],
    head: Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]],
    names: Sequence[str],
    *,
    pad_token_id: int = 0,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    max_logit_tokens: int = 512,
    grad: bool = False,
    lockstep: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The batching engine under :func:`answer_logprobs`, for any per-position head.

    ``model(...).logits`` is taken at the ``k + 1`` last positions; ``head(outputs [B, k, ...],
    targets [B, k])`` maps the ``k`` positions that predict the answer tokens to per-token values
    ``{name: [B, k]}`` (the LM's log-probs, or a critic's values). Returns ``({name: [N, T]}, mask [N, T])``
    right-padded to the longest answer, in input order.

    ``lockstep``: the batches follow the token budget on each process as always; the processes of the
    default ``torch.distributed`` group agree on the busiest one's count of forwards (one all-reduce,
    before any forward), and a process with fewer then runs one-token forwards whose output is dropped.
    A sharded model (FSDP, ZeRO-3) gathers its parameters in every forward, a collective that hangs when
    the processes' counts differ; the token budget makes them differ whenever the processes' answers
    differ in number or length. With ``grad`` the dummy forwards join the graph with weight 0 (added to
    every returned value), so the backward pass also runs through each of them: FSDP reduce-scatters
    gradients in the backward of every forward, another collective.
    """
    require_prompts(contexts, answers, "context", "answers")
    n = len(answers)
    device = next(model.parameters()).device
    ans_lens = [len(a) for a in answers]
    tot_lens = [len(c) + len(a) for c, a in zip(contexts, answers)]
    rows: dict[str, list[torch.Tensor | None]] = {k: [None] * n for k in names}

    plan = plan_batches(tot_lens, ans_lens, max_batch_tokens, max_logit_tokens)
    # agreed before any forward: a count exchanged between forwards would meet another process's gather
    shortfall = _lockstep_shortfall(sum(1 for b in plan if max(ans_lens[i] for i in b) > 0)) if lockstep else 0
    ctx_mgr = torch.enable_grad() if grad else torch.no_grad()
    with ctx_mgr:
        for batch in plan:
            if max(ans_lens[i] for i in batch) == 0:  # nothing to score in this batch
                for i in batch:
                    for name in names:
                        rows[name][i] = torch.zeros(0, device=device)
                continue
            values = _batch_values(model, head, names, [list(contexts[i]) + list(answers[i]) for i in batch],
                                   [ans_lens[i] for i in batch], pad_token_id, device)
            for i, v in zip(batch, values):
                for name in names:
                    rows[name][i] = v[name]
            if progress is not None:
                progress(len(batch), sum(ans_lens[i] for i in batch))
        # lockstep: as many forwards as the busiest process
        dummy = _dummy_forwards(model, shortfall, pad_token_id, device, grad)
    t_max = max(ans_lens, default=0)
    out = {name: _right_pad(col, t_max, device, grad) for name, col in rows.items()}
    if dummy is not None:  # the dummy forwards' backward runs with everyone else's (gradient 0)
        out = {name: v + dummy for name, v in out.items()}
    return out, answer_mask(answers, device)


def _batch_values(model, head, names: Sequence[str], seqs: list[list[int]], ans_lens: list[int], pad_token_id: int,
                  device) -> list[dict[str, torch.Tensor]]:
    """One forward over ``seqs`` (each context + answer; answer lengths ``ans_lens``, the longest > 0),
    left-padded to the longest: each row's ``{name: [its answer length]}`` from ``head``."""
    width = max(len(s) for s in seqs)
    k = max(ans_lens)
    ids, attn, pos = left_pad(seqs, pad_token_id, width)
    ids, attn, pos = ids.to(device), attn.to(device), pos.to(device)
    out = model(input_ids=ids, attention_mask=attn, position_ids=pos, logits_to_keep=k + 1, use_cache=False)
    # position j of the window predicts token width-k+j
    values = head(out.logits[:, :-1], ids[:, width - k:])
    del out
    # the answer is right-aligned in the window
    return [{name: values[name][r, k - a:] for name in names} for r, a in enumerate(ans_lens)]


def _dummy_forwards(model, count: int, pad_token_id: int, device, grad: bool) -> torch.Tensor | None:
    """``count`` one-token forwards whose output is dropped (lockstep's missing forwards). With ``grad``,
    their logits' sum times 0, a scalar to add to every returned value so that their backward runs too;
    else None."""
    dummy = None
    if not count:
        return dummy
    one = torch.full((1, 1), pad_token_id, dtype=torch.long, device=device)
    for _ in range(count):
        logits = model(input_ids=one, attention_mask=torch.ones_like(one), logits_to_keep=1, use_cache=False).logits
        if grad:
            dummy = logits.float().sum() * 0.0 + (0.0 if dummy is None else dummy)
    return dummy


def _right_pad(col: list[torch.Tensor | None], t_max: int, device, grad: bool) -> torch.Tensor:
    """Rows of different lengths as ``[N, t_max]``, zero on the right."""
    if grad:  # keep the graph: build by concatenation instead of in-place writes
        padded = [torch.cat([r, r.new_zeros(t_max - r.shape[0])]) for r in col]  # type: ignore[union-attr]
        return torch.stack(padded) if padded else torch.zeros((0, t_max), device=device)
    out = torch.zeros((len(col), t_max), device=device, dtype=torch.float32)
    for i, r in enumerate(col):
        out[i, : r.shape[0]] = r  # type: ignore[union-attr]
    return out


def _lockstep_shortfall(count: int) -> int:
    """How many forwards this process must add so that every process of the default group has run the
    busiest one's ``count`` (0 outside ``torch.distributed``)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return 0
    t = torch.tensor([count], dtype=torch.long)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item()) - count


def answer_mask(answers: Sequence[Sequence[int]], device=None) -> torch.Tensor:
    """``mask [N, T]`` (fp32, ``T`` = longest answer): 1 on each answer's tokens, 0 on the right padding;
    the mask every pass of :func:`answer_forward` returns, without running a model."""
    t_max = max((len(a) for a in answers), default=0)
    mask = torch.zeros((len(answers), t_max), device=device, dtype=torch.float32)
    for i, a in enumerate(answers):
        mask[i, : len(a)] = 1.0
    return mask
