"""Copy-robust SAR: pure functions that stop the self-aligned reward paying for parroting the question.

Why SAR pays for copies. Default SAR depends on the answer only through the mean per-token log-ratio

    r_t = log p(a_t | q, a_<t) - log p(a_t | ∅, a_<t)
    SAR = 1 - exp(-mean_t r_t)        (= (ppl(a) - ppl(a|q)) / ppl(a), before the clip at -1)

A token copied from the question is almost certain with the question in context (an induction copy,
log p ≈ 0) and as unlikely as any question text without it (log p ≈ -3 to -6), so every copied token
adds a large r_t. An answer that restates the question and then gives any number beats the gold
solution (issue 14: mean SAR 0.81 vs 0.47 on GSM8K with the default model).

What is a copy here. An answer token is *copied* when it lies inside a run of at least ``n``
consecutive answer token ids that also occurs, contiguously and in the same order, in the question
context (system prompt + question + chat template: the exact ids ppl(a|q) was computed after). Short
reuse is not a copy: numbers and names the solution needs ("17 + 8 = 25" when 17 and 8 are in the
question; "duck eggs") are runs of a few tokens, and with the default tokenizer a number costs one
token per digit plus a leading space, so ``n`` must stay above the length of the numbers and short
phrases a solution reuses (the benchmark settles on 10; see ``benchmarks/sar_copy_robust.py``).

The functions here take and return tensors (``[N, T]``: N answers, T = longest answer; ``mask`` is 1
on real answer tokens) and never edit their inputs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

COPY_MODES = ("zero", "mask")


def _check_ids(ids: Sequence[Sequence[int]] | None, name: str, n_rows: int) -> None:
    if ids is None:
        raise ValueError(f"sar: copy detection (copy_ngram > 0) needs {name}: the token ids of each row's "
                         f"{'question context' if name == 'context_ids' else 'answer'}; pass {name}=...")
    if len(ids) != n_rows:
        raise ValueError(f"sar: {name} has {len(ids)} rows but the log-probs have {n_rows}")


def copied_token_mask(context_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]], n: int,
                      width: int) -> torch.Tensor:
    """Which answer tokens are copied from the context: bool ``[N, width]``.

    ``copied[i, t]`` is True when some window ``response_ids[i][s : s + n]`` with ``s <= t < s + n``
    occurs as a contiguous run in ``context_ids[i]``, i.e. token t belongs to a shared run of length
    >= n (a run of length L >= n is covered exactly by its L - n + 1 windows of length n).

    Rationale: a copied span is what the question context explains without any reasoning; windows of
    length ``n`` let short shared pieces (numbers, names, units) through and catch restatements.
    Answers shorter than ``n`` and empty answers have no copied token. Columns past an answer's length
    are False. Cost: O(|context| + |answer|) set look-ups per row (no model work).
    """
    if n < 1:
        raise ValueError(f"copied_token_mask: n must be >= 1, got {n}")
    rows = len(response_ids)
    _check_ids(context_ids, "context_ids", rows)
    out = [[False] * width for _ in range(rows)]
    for i, (ctx, ans) in enumerate(zip(context_ids, response_ids)):
        if len(ans) > width:
            raise ValueError(f"sar: response_ids row {i} has {len(ans)} tokens but the log-probs have {width} columns")
        if len(ans) < n or len(ctx) < n:
            continue
        ctx, ans = tuple(ctx), tuple(ans)
        grams = {ctx[s : s + n] for s in range(len(ctx) - n + 1)}
        row = out[i]
        covered_to = 0  # first column not yet marked
        for s in range(len(ans) - n + 1):
            if ans[s : s + n] in grams:
                for t in range(max(s, covered_to), s + n):
                    row[t] = True
                covered_to = s + n
    return torch.tensor(out, dtype=torch.bool).reshape(rows, width)


def dense_copy_mask(short_copied: torch.Tensor, window: int, min_frac: float) -> torch.Tensor:
    """Short shared runs that sit in a densely copied stretch: bool ``[N, T]`` → bool ``[N, T]``.

    ``short_copied`` is :func:`copied_token_mask` with a small ``n`` (e.g. 3). Token t is kept when it
    is in ``short_copied`` and the fraction of ``short_copied`` tokens in the window of ``window``
    columns centred on t (zero-padded past both ends, always divided by ``window``) is >= ``min_frac``:

        dense[t] = short[t] and (1/w) sum_{|s - t| <= (w-1)/2} short[s] >= min_frac

    Rationale: a paraphrased restatement keeps the question's wording between word swaps, so it is a
    chain of 3-5-token runs with few gaps; a solution reuses a number ("17" is 2 tokens, " 16" is 3) or a
    short phrase here and there, which stays sparse. ``window`` must be odd.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"dense_copy_mask: window must be an odd int >= 1, got {window}")
    if not 0 < min_frac <= 1:
        raise ValueError(f"dense_copy_mask: min_frac must be in (0, 1], got {min_frac}")
    x = short_copied.to(torch.float64)
    half = window // 2
    padded = torch.nn.functional.pad(x, (half + 1, half))  # [N, T + w]: a leading 0 for the cumsum
    c = padded.cumsum(-1)
    sums = c[:, window:] - c[:, :-window]  # [N, T]: sum over columns t - half .. t + half
    # compare counts, not fractions, so the threshold is exact in floating point
    return short_copied.to(torch.bool) & (sums >= min_frac * window - 1e-9)


def discount_copies(logp_qa: torch.Tensor, logp_a: torch.Tensor | None, mask: torch.Tensor,
                    copied: torch.Tensor, mode: str = "zero") -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Remove what copied tokens earn. All tensors ``[N, T]``; returns new ``(logp_qa, logp_a, mask)``.

    - ``"zero"``: a copied token's log-ratio is set to 0 by giving it its null-context log-prob,
      ``log p(a_t|q) := log p(a_t|∅)``. It still counts in the length, so copying dilutes the mean
      log-ratio towards 0: ``SAR = 1 - exp(-(1/|a|) sum_{t not copied} r_t)``. Padding an answer with the
      question lowers its reward. Needs ``logp_a``.
    - ``"mask"``: copied tokens get weight 0 in both perplexities (``mask := mask * not copied``):
      ``SAR = 1 - exp(-mean_{t not copied} r_t)``. Copying neither earns nor costs directly; the tokens
      after a copy are still scored with the copy in both contexts (so the null context catches up).
      ``logp_a`` may be None (``use_comparison=False``).
    """
    if mode not in COPY_MODES:
        raise ValueError(f"discount_copies: mode must be one of {COPY_MODES}, got {mode!r}")
    hit = copied.to(torch.bool) & (mask > 0)
    if mode == "mask":
        return logp_qa, logp_a, torch.where(hit, torch.zeros_like(mask), mask)
    if logp_a is None:
        raise ValueError("sar: copy_mode='zero' needs logp_a (the null-context log-probs)")
    return torch.where(hit, logp_a.to(logp_qa.dtype), logp_qa), logp_a, mask


def cap_log_ratio(logp_qa: torch.Tensor, logp_a: torch.Tensor, cap: float) -> torch.Tensor:
    """``log p(a_t|q)`` with each token's log-ratio capped: ``logp_a + clamp(logp_qa - logp_a, -cap, cap)``.

    ``[N, T]`` → ``[N, T]``. Rationale: a copied token's log-ratio is huge (≈ its whole null-context
    NLL), a reasoning token's is moderate; capping bounds what any single token can earn (or lose) from
    the question, so no span can dominate the mean. ``cap`` must be > 0.
    """
    if not cap > 0:
        raise ValueError(f"cap_log_ratio: cap must be > 0, got {cap}")
    return logp_a + (logp_qa - logp_a).clamp(min=-cap, max=cap)
