"""The built-in rewards. Each docstring gives the formula and its source; each has a hand-computed test
in ``tests/test_rewards.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sarl.algos.advantages import group_index, group_mean, group_sum
from sarl.errors import SarlError
from sarl.rewards.registry import RewardInputs, register
from sarl.rewards.self_aligned import SARConfig, self_aligned_reward
from sarl.settings import Settings, positive, setting


# --------------------------------------------------------------------------------------- per answer
def _correct(inp: RewardInputs, reward: str) -> torch.Tensor:
    inp.require(reward, "correct")
    return inp.correct > 0.5  # type: ignore[operator]


def _length_limit(inp: RewardInputs, max_len: int | None, reward: str) -> int:
    """L_max of a length reward: its ``max_len`` option, else the inputs' ``max_response_length``."""
    inp.require(reward, "lengths")
    lmax = max_len or inp.max_response_length
    if not lmax:
        raise SarlError(f"{reward} needs max_len (option) or max_response_length")
    return lmax


@register("correctness", needs={"correct"}, aliases=("base",), scheduled=False)
def correctness(inp: RewardInputs) -> torch.Tensor:
    """1 if the response's final answer matches the gold answer, else 0: ``inputs.correct``.

    Source: the reference's ``general_math_reward.compute_score`` (last number or ``\\frac``, string
    equality then math-verify), with its extraction bugs fixed; see :mod:`sarl.grading.math`. The caller
    grades each response once with :func:`sarl.grading.grade_all` (the grader chosen by the row's
    ``data_source``), the same code path evaluation uses. The weight schedule does not scale it."""
    return _correct(inp, "correctness").float()


def _sar_needs(cfg: SARConfig) -> frozenset[str]:
    needs = {"logp_qa"} | ({"logp_a"} if cfg.needs_null_context else set())
    return frozenset(needs | ({"token_ids"} if cfg.needs_token_ids else set()))


@register("sar", needs={"logp_qa", "logp_a", "token_ids"}, options=SARConfig, aliases=("ppl_qa",),
          needs_with=_sar_needs)
def sar(inp: RewardInputs, cfg: SARConfig) -> torch.Tensor:
    """Self-aligned reward: ``max((ppl(a) - ppl(a|q)) / ppl(a), -1)`` and its variants.

    Source: Han et al., ICLR 2026, and the reference's ``compute_ppl_qa_log``; formula, variants and
    edge cases in :mod:`sarl.rewards.self_aligned`. Needs the policy's log-probs of the response with
    the question (``logp_qa``) and with the null prompt (``logp_a``)."""
    inp.require("sar", "logp_qa", "response_mask")
    if cfg.needs_null_context:
        inp.require("sar", "logp_a")
    return self_aligned_reward(inp.logp_qa, inp.logp_a, inp.response_mask, cfg, context_ids=inp.context_ids,
                               response_ids=inp.response_ids)["sar"]


@register("entropy", needs={"logp_qa"})
def entropy(inp: RewardInputs) -> torch.Tensor:
    """Self-confidence baseline of the SAR paper: ``-log ppl(a|q)`` = the mean token log-prob of the
    response given the question (higher = more confident). Empty responses get 0."""
    from sarl.rewards.self_aligned import mean_nll

    inp.require("entropy", "logp_qa", "response_mask")
    return -mean_nll(inp.logp_qa, inp.response_mask)


@register("self_certainty", needs={"self_certainty"})
def self_certainty(inp: RewardInputs) -> torch.Tensor:
    """Self-certainty (Zhao et al. 2025, "Learning to Reason without External Rewards"):
    ``(1/|a|) sum_t KL(U || p(. | q, a_<t))`` where U is uniform over the vocabulary.

    Cost: it needs the full next-token distribution at every response position, a ``[tokens, vocab]``
    pass that :func:`sarl.logprobs.answer_logprobs` computes with ``stats=("self_certainty",)`` from
    the logits it already holds (no extra forward, but one extra reduction over the vocabulary,
    49k entries per token on the default model). Empty responses get 0."""
    inp.require("self_certainty", "token_self_certainty", "response_mask")
    m = inp.response_mask.to(torch.float64)
    tot = (inp.token_self_certainty.to(torch.float64) * m).sum(-1)
    return tot / m.sum(-1).clamp(min=1)


@dataclass(frozen=True)
class CosineOptions(Settings):
    """Cosine length scaling; defaults are open-r1's ``cosine_scaled_reward`` scale."""

    section = "rewards.options.cosine_length"
    max_len: int | None = setting(None, "Length (tokens) where the cosine reaches its end value; default: "
                                        "max_response_length.", check=positive)
    r0_correct: float = setting(1.0, "Reward of a correct answer of length 0.")
    rL_correct: float = setting(0.5, "Reward of a correct answer of length max_len.")
    r0_wrong: float = setting(-1.0, "Reward of a wrong answer of length 0 (short wrong answers are punished hardest).")
    rL_wrong: float = setting(-0.5, "Reward of a wrong answer of length max_len.")


@register("cosine_length", needs={"correct", "lengths", "max_response_length"}, options=CosineOptions)
def cosine_length(inp: RewardInputs, o: CosineOptions) -> torch.Tensor:
    """Cosine length reward (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs"):
    ``r = r_L + 0.5 (r_0 - r_L)(1 + cos(pi min(L, L_max) / L_max))`` with ``(r_0, r_L)`` chosen by
    correctness, so short correct answers earn most and short wrong answers lose most. The paper uses
    r0c=2, rLc=1, r0w=-10, rLw=0; our defaults are open-r1's, on the scale of the 0/1 correctness."""
    correct = _correct(inp, "cosine_length")
    lmax = _length_limit(inp, o.max_len, "cosine_length")
    t = inp.lengths.to(torch.float64).clamp(max=lmax) / lmax
    cos = torch.cos(math.pi * t)
    r0 = torch.where(correct, o.r0_correct, o.r0_wrong).to(torch.float64)
    rl = torch.where(correct, o.rL_correct, o.rL_wrong).to(torch.float64)
    return rl + 0.5 * (r0 - rl) * (1 + cos)


@dataclass(frozen=True)
class OverlongOptions(Settings):
    """DAPO's soft overlong punishment."""

    section = "rewards.options.overlong"
    max_len: int | None = setting(None, "L_max in tokens; default: max_response_length.", check=positive)
    buffer_len: int | None = setting(None, "L_cache, the soft zone before L_max; default: L_max // 5 (DAPO: 4096 "
                                           "of 20480).", check=positive)


@register("overlong", needs={"lengths", "max_response_length"}, options=OverlongOptions)
def overlong(inp: RewardInputs, o: OverlongOptions) -> torch.Tensor:
    """DAPO soft overlong punishment (Yu et al. 2025, eq. 13):
    ``0`` if ``L <= L_max - L_cache``; ``((L_max - L_cache) - L) / L_cache`` inside the buffer;
    ``-1`` if ``L > L_max``."""
    lmax = _length_limit(inp, o.max_len, "overlong")
    cache = o.buffer_len if o.buffer_len is not None else lmax // 5
    if not 0 < cache <= lmax:
        raise SarlError(f"overlong: buffer_len must be in (0, max_len={lmax}], got {cache}")
    L = inp.lengths.to(torch.float64)
    soft = ((lmax - cache) - L) / cache
    return torch.where(L <= lmax - cache, torch.zeros_like(L), torch.where(L <= lmax, soft, -torch.ones_like(L)))


# --------------------------------------------------------------------------------------- per group
@register("o1_pruner", needs={"lengths", "groups"}, group=True, aliases=("O1-pruner", "o1-pruner"))
def o1_pruner(inp: RewardInputs) -> torch.Tensor:
    """O1-Pruner length reward as the SAR reference implements it (``compute_score_o1p``):
    ``-clip((L - mean_group L) / L, -1, 1)`` over all rollouts of the same prompt, correct or not;
    L in tokens. Accuracy enters only through the correctness term. (Luo et al. 2025; the reference
    ships this branch with a NameError, so it never ran there.)"""
    inp.require("o1_pruner", "lengths", "group_ids")
    idx, g = group_index(inp.group_ids)
    L = inp.lengths.to(torch.float64)
    mean = group_mean(L, idx, g)
    return -((L - mean) / L.clamp(min=1)).clamp(-1, 1)


@register("efficient_reasoner", needs={"correct", "lengths", "groups"}, group=True, aliases=("ER", "er"))
def efficient_reasoner(inp: RewardInputs) -> torch.Tensor:
    """Efficient Reasoner length reward (Arora & Zanette 2025) as the SAR reference implements it
    (``compute_score_er``): for a correct rollout with at least one other correct rollout of the same
    prompt, ``-(2 sigmoid((L - mu_c) / (sigma_c + 1e-5)) - 1)`` where mu_c, sigma_c are the mean and
    population std (ddof=0) of the correct rollouts' lengths; 0 for wrong rollouts and when <= 1 is
    correct."""
    correct = _correct(inp, "efficient_reasoner").to(torch.float64)
    inp.require("efficient_reasoner", "lengths", "group_ids")
    idx, g = group_index(inp.group_ids)
    L = inp.lengths.to(torch.float64)
    mu = group_mean(L, idx, g, correct)
    var = group_mean((L - mu) ** 2, idx, g, correct)
    n_correct = group_sum(correct, idx, g)
    pen = 2 * torch.sigmoid((L - mu) / (var.sqrt() + 1e-5)) - 1
    return torch.where((correct > 0) & (n_correct > 1), -pen, torch.zeros_like(pen))


@register("kimi_length", needs={"correct", "lengths", "groups"}, group=True)
def kimi_length(inp: RewardInputs) -> torch.Tensor:
    """Kimi k1.5 length reward (Kimi Team 2025, sec. 2.3.3): with min/max length over the prompt's
    rollouts, ``lambda = 0.5 - (L - min) / (max - min)``; reward ``lambda`` if correct, else
    ``min(0, lambda)``; 0 for every rollout when all lengths are equal."""
    correct = _correct(inp, "kimi_length")
    inp.require("kimi_length", "lengths", "group_ids")
    idx, g = group_index(inp.group_ids)
    L = inp.lengths.to(torch.float64)
    lo = torch.full((g,), math.inf, dtype=torch.float64).scatter_reduce(0, idx, L, "amin")[idx]
    hi = torch.full((g,), -math.inf, dtype=torch.float64).scatter_reduce(0, idx, L, "amax")[idx]
    span = hi - lo
    lam = torch.where(span > 0, 0.5 - (L - lo) / span.clamp(min=1e-12), torch.zeros_like(L))
    return torch.where(correct, lam, lam.clamp(max=0))
