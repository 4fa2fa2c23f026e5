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

Edge cases (never NaN or inf):
- An answer with no tokens (empty) gets ppl = 1 (the empty geometric mean) and SAR = 0 for every
  variant; callers flag and count it. ``sarl score`` also treats whitespace-only answers as empty.
- Perplexities are computed in float64 from the mean NLL, which is capped at 700 so exp() stays finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_MAX_NLL = 700.0  # exp(700) ~ 1e304 < float64 max


@dataclass(frozen=True)
class SARConfig:
    """Options of the self-aligned reward (the reference's ``trainer.ppl_qa.*``)."""

    use_log: bool = False
    """Compare log-perplexities (mean token NLLs) instead of perplexities."""
    use_denominator: bool = True
    """Divide the difference by the null-context term (relative improvement)."""
    use_comparison: bool = True
    """Compare with the null context at all; False gives ``-QA + 5``."""
    clip_value: float = -1.0
    """Cap each term at this value when it is > 1; the default -1 disables capping."""

    def __post_init__(self):
        if not self.use_comparison and self.use_denominator:
            raise ValueError(
                "sar: use_comparison=False needs use_denominator=False (the reference asserts this); "
                "set both to False"
            )

    @property
    def needs_null_context(self) -> bool:
        return self.use_comparison


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
    response aligned with the columns of ``mask``) are read only by options that look at the tokens.

    Returns ``ppl_qa``, ``ppl_a`` and ``sar`` (each ``[N]``, float64) and ``empty`` (bool ``[N]``).
    ``logp_a`` may be None only when ``cfg.use_comparison`` is False (then ``ppl_a`` is NaN-free ones).
    """
    empty = mask.sum(-1) == 0
    ppl_qa = perplexity(logp_qa, mask)
    if logp_a is None:
        if cfg.needs_null_context:
            raise ValueError("sar: logp_a (the null-context log-probs) is required unless use_comparison=False")
        ppl_a = torch.ones_like(ppl_qa)
    else:
        ppl_a = perplexity(logp_a, mask)
    return {"ppl_qa": ppl_qa, "ppl_a": ppl_a, "sar": sar_from_ppl(ppl_qa, ppl_a, cfg, empty), "empty": empty}
