"""Self-aligned reward (SAR): pure functions from token log-probs and masks to ppl(a|q), ppl(a), SAR.

Source: Han et al., "Self-Aligned Reward: Towards Effective and Efficient Reasoners" (ICLR 2026), and
its reference implementation (``compute_ppl_qa_log`` in the authors' verl fork).

    ppl(a|q) = exp(-(1/|a|) sum_t log p(a_t | prompt(q), a_<t))     prompt(q): system prompt + question
    ppl(a)   = exp(-(1/|a|) sum_t log p(a_t | prompt(∅), a_<t))     prompt(∅): same system prompt, empty user turn

    SAR = max((ppl(a) - ppl(a|q)) / (ppl(a) + 1e-9), -1)             (default)

The upper side needs no clip: ppl(a|q) > 0 keeps SAR < 1. Variants, with the reference's semantics:

- ``use_log``: the same formula on log-perplexities (mean token NLLs) instead of perplexities.
- ``clip_value``: when > 1, each term is capped from above at it (after the optional log);
  values <= 1 (the default, -1) switch capping off.
- ``use_denominator=False``: the plain difference ``A - QA``, no clip.
- ``use_comparison=False``: ``-QA + 5`` (ppl(a) is not used; the +5 only shifts the reward positive).
  It requires ``use_denominator=False``, as in the reference.

Copy-robust options (issue 14; off by default, see :mod:`sarl.rewards.copy_robust`). SAR pays for
answers that parrot the question, whose tokens the question context explains best:

- ``copy_ngram = n > 0``: answer tokens inside a run of >= n token ids that also occurs in the question
  context are *copied*; ``copy_mode`` says what they earn: ``"zero"`` (their log-ratio is set to 0, so
  they dilute the answer's mean) or ``"mask"`` (weight 0 in both perplexities). An answer whose every
  token is copied scores 0 in ``"mask"`` mode (as an empty one). Needs the token ids.
- ``copy_dense_ngram = m`` (with ``copy_dense_window`` / ``copy_dense_min``): shorter shared runs (>= m ids)
  count as copied too where they are dense (a paraphrased restatement); 0 is off.
- ``token_ratio_cap = c > 0``: each token's log-ratio ``log p(a_t|q) - log p(a_t|∅)`` is clamped to
  ``[-c, c]`` before the perplexities.

:meth:`SARConfig.copy_robust` is the recommended setting (``benchmarks/sar_copy_robust.py``).

Edge cases (never NaN or inf):
- An answer with no tokens (empty) gets ppl = 1 (the empty geometric mean) and SAR = 0 for every
  variant; callers flag and count it. ``sarl score`` also treats whitespace-only answers as empty.
- Perplexities are computed in float64 from the mean NLL, which is capped at 700 so exp() stays finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sarl.errors import ConfigError
from sarl.rewards.copy_robust import (
    COPY_MODES,
    cap_log_ratio,
    copied_token_mask,
    dense_copy_mask,
    discount_copies,
)
from sarl.settings import Settings, non_negative, setting

_MAX_NLL = 700.0  # exp(700) ~ 1e304 < float64 max


@dataclass(frozen=True)
class SARConfig(Settings):
    """Options of the self-aligned reward (the reference's ``trainer.ppl_qa.*``, and the copy-robust
    options; recipes: ``rewards.options.sar.<field>``)."""

    section = "rewards.options.sar"
    use_log: bool = setting(False, "Compare log-perplexities (mean token NLLs) instead of perplexities.")
    use_denominator: bool = setting(True, "Divide the difference by the null-context term (relative improvement).")
    use_comparison: bool = setting(True, "Compare with the null context at all; False gives -QA + 5 (and needs "
                                         "use_denominator=False).")
    clip_value: float = setting(-1.0, "Cap each term at this value when it is > 1; -1 disables capping.")
    copy_ngram: int = setting(0, "Answer tokens inside a run of at least this many token ids that also occurs in "
                                 "the question context count as copied (see copy_mode); 0 = off. Recommended: 10 "
                                 "(numbers and names a solution reuses stay below it; each digit is a token).",
                              check=non_negative)
    copy_mode: str = setting("zero", "What copied tokens earn: zero sets their log-ratio log p(a_t|q) - log p(a_t|0) "
                                     "to 0 (they still count in the length, so copying dilutes the reward); mask "
                                     "gives them weight 0 in both perplexities.", choices=COPY_MODES)
    copy_dense_ngram: int = setting(0, "Also count shorter shared runs (at least this many ids, fewer than "
                                       "copy_ngram) as copied where they are dense (copy_dense_min of the "
                                       "copy_dense_window tokens around them): catches paraphrased restatements. "
                                       "0 = off.", check=non_negative)
    copy_dense_window: int = setting(21, "Width (odd, in tokens) of the window copy_dense_ngram measures density in.")
    copy_dense_min: float = setting(0.5, "Fraction of short-run tokens in the window, in (0, 1], above which they "
                                         "count as copied.")
    token_ratio_cap: float = setting(0.0, "Clamp each token's log-ratio log p(a_t|q) - log p(a_t|0) to [-cap, cap] "
                                          "before the perplexities; 0 = off.", check=non_negative)

    def validate(self) -> None:
        if not self.use_comparison and self.use_denominator:
            raise ConfigError("sar: use_comparison=False needs use_denominator=False (the reference asserts this); "
                              "set both to False")
        for name in ("copy_ngram", "copy_dense_ngram", "copy_dense_window"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f"sar: {name} must be an integer, got {v!r}")
        d = self.copy_dense_ngram
        if d > 0 and not d < self.copy_ngram:
            raise ConfigError(f"sar: copy_dense_ngram ({d}) needs copy_ngram > copy_dense_ngram (got {self.copy_ngram})")
        if self.copy_dense_window < 1 or self.copy_dense_window % 2 == 0:
            raise ConfigError(f"sar: copy_dense_window must be an odd int >= 1, got {self.copy_dense_window!r}")
        if not isinstance(self.copy_dense_min, int | float) or not 0 < self.copy_dense_min <= 1:
            raise ConfigError(f"sar: copy_dense_min must be in (0, 1], got {self.copy_dense_min!r}")
        cap = self.token_ratio_cap
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not math.isfinite(cap):
            raise ConfigError(f"sar: token_ratio_cap must be a finite number >= 0 (0 = off), got {cap!r}")
        if not self.use_comparison and (cap > 0 or (self.copy_ngram > 0 and self.copy_mode == "zero")):
            raise ConfigError("sar: token_ratio_cap and copy_mode='zero' compare with the null context; "
                              "they need use_comparison=True (use copy_mode='mask' without comparison)")

    @property
    def needs_null_context(self) -> bool:
        return self.use_comparison

    @property
    def needs_token_ids(self) -> bool:
        """True when ``self_aligned_reward`` needs ``context_ids`` and ``response_ids``."""
        return self.copy_ngram > 0

    @classmethod
    def copy_robust(cls, dense: bool = False, **overrides) -> SARConfig:
        """The recommended copy-robust setting (issue 14, ``benchmarks/sar_copy_robust.py``):
        ``copy_ngram=10, copy_mode="zero"``. ``dense=True`` adds the paraphrase catcher
        ``copy_dense_ngram=3, copy_dense_window=21, copy_dense_min=0.5`` (stronger against reworded
        restatements, but it also discounts some of the gold solutions' restated facts). Other fields
        from ``overrides`` (e.g. ``use_log=True``)."""
        base = {"copy_ngram": 10, "copy_mode": "zero"}
        if dense:
            base.update(copy_dense_ngram=3, copy_dense_window=21, copy_dense_min=0.5)
        return cls(**{**base, **overrides})


def mean_nll(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood per row, in float64. ``logp``, ``mask``: ``[N, T]`` → ``[N]``.

    Rows with an all-zero mask get 0 (so their perplexity is 1)."""
    m = mask.to(torch.float64)
    total = -(logp.to(torch.float64) * m).sum(-1)
    count = m.sum(-1)
    return torch.where(count > 0, total / count.clamp(min=1.0), torch.zeros_like(total)).clamp(max=_MAX_NLL)


def perplexity(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``exp(mean NLL)`` per row, float64. ``[N, T]`` → ``[N]``."""
    return torch.exp(mean_nll(logp, mask))


def sar_from_ppl(ppl_qa: torch.Tensor, ppl_a: torch.Tensor, cfg: SARConfig = SARConfig(),
                 empty: torch.Tensor | None = None) -> torch.Tensor:
    """SAR from the two perplexities (``[N]`` each → ``[N]``), following :class:`SARConfig`.

    ``empty`` (bool ``[N]``) marks rows whose answer had no tokens; they get 0."""
    qa, a = ppl_qa.to(torch.float64), ppl_a.to(torch.float64)
    if cfg.use_log:
        qa, a = torch.log(qa), torch.log(a)
    if cfg.clip_value > 1:
        qa, a = qa.clamp(max=cfg.clip_value), a.clamp(max=cfg.clip_value)
    if not cfg.use_comparison:
        out = -qa + 5.0
    elif cfg.use_denominator:
        out = ((a - qa) / (a + 1e-9)).clamp(min=-1.0)
    else:
        out = a - qa
    if empty is not None:
        out = torch.where(empty, torch.zeros_like(out), out)
    return out


def self_aligned_reward(logp_qa: torch.Tensor, logp_a: torch.Tensor | None, mask: torch.Tensor,
                        cfg: SARConfig = SARConfig(), *, context_ids: list[list[int]] | None = None,
                        response_ids: list[list[int]] | None = None) -> dict[str, torch.Tensor]:
    """SAR from token log-probs. Shapes: ``logp_qa``, ``logp_a``, ``mask``: ``[N, T]``.

    ``context_ids`` / ``response_ids`` (token ids of each row's question context and response, the
    response aligned with the columns of ``mask``) are read only by options that look at the tokens
    (``copy_ngram``); those options raise ``ValueError`` without them.

    Returns ``ppl_qa``, ``ppl_a`` and ``sar`` (each ``[N]``, float64) and ``empty`` (bool ``[N]``: the
    answer had no tokens). With the copy-robust options the perplexities are those SAR was computed
    from (after discounting copies / capping), and ``copied`` (``[N]``, float64) counts each row's
    copied tokens. ``logp_a`` may be None only when ``cfg.use_comparison`` is False (then ``ppl_a`` is
    NaN-free ones).
    """
    empty = mask.sum(-1) == 0
    if logp_a is None and cfg.needs_null_context:
        raise ValueError("sar: logp_a (the null-context log-probs) is required unless use_comparison=False")
    extra: dict[str, torch.Tensor] = {}
    zero_rows = empty
    if cfg.copy_ngram > 0:
        if response_ids is None:
            raise ValueError("sar: copy_ngram > 0 needs response_ids (each row's answer token ids, aligned "
                             "with the columns of mask) and context_ids (the question context's token ids)")
        if len(response_ids) != mask.shape[0]:
            raise ValueError(f"sar: response_ids has {len(response_ids)} rows but mask has {mask.shape[0]}")
        copied = copied_token_mask(context_ids, response_ids, cfg.copy_ngram, mask.shape[-1])
        if cfg.copy_dense_ngram > 0:
            short = copied_token_mask(context_ids, response_ids, cfg.copy_dense_ngram, mask.shape[-1])
            copied = copied | dense_copy_mask(short, cfg.copy_dense_window, cfg.copy_dense_min)
        extra["copied"] = (copied & (mask > 0)).to(torch.float64).sum(-1)
        logp_qa, logp_a, mask = discount_copies(logp_qa, logp_a, mask, copied, cfg.copy_mode)
        zero_rows = empty | (mask.sum(-1) == 0)  # "mask": an answer that is all copy scores as an empty one
    if cfg.token_ratio_cap > 0:
        logp_qa = cap_log_ratio(logp_qa, logp_a, cfg.token_ratio_cap)
    ppl_qa = perplexity(logp_qa, mask)
    ppl_a = torch.ones_like(ppl_qa) if logp_a is None else perplexity(logp_a, mask)
    return {"ppl_qa": ppl_qa, "ppl_a": ppl_a, "sar": sar_from_ppl(ppl_qa, ppl_a, cfg, zero_rows), "empty": empty,
            **extra}
