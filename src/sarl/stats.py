"""Intervals for accuracies measured over several training seeds and a shared set of problems.

A benchmark arm trained with S seeds and evaluated on the same P problems gives a matrix
``acc[s][p]`` (each entry: the share of that run's samples of problem p that are correct). Its mean has
two sources of noise: which seeds were drawn and which problems. With the two-way model
``acc[s][p] = mu + a_s + b_p + e_sp``, ``Var(mean) = var_a / S + var_b / P + var_e / (S P)``; the
estimate used here,

    SE² = var_s(seed means) / S + var_p(problem means over seeds) / P,

counts the residual twice (each of the two sample variances contains ``var_e / P`` resp.
``var_e / S``), so it is slightly conservative. With one seed it is the usual SE over problems; with
one problem, the SE over seeds.

A difference between two arms (independent seeds, the same problems) is paired over problems:
``SE² = var_s(A seed means) / S_A + var_s(B seed means) / S_B + var_p(A_p − B_p) / P`` with ``A_p``,
``B_p`` the problems' means over seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

Z95 = 1.959964

# Two-sided 95% quantiles of Student's t with df = 1..30 degrees of freedom (t.ppf(0.975, df)).
_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139,
         2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922, 2.093024, 2.085963,
         2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t975(df: int) -> float:
    """The 95% two-sided quantile of Student's t with ``df`` degrees of freedom (for an interval over a few
    seeds or rounds: mean ± t975(n − 1) · SE); :data:`Z95` beyond 30 (within 4%)."""
    if df < 1:
        raise ValueError(f"t975: df must be >= 1, got {df}")
    return _T975[df - 1] if df <= len(_T975) else Z95


def _var(values: Sequence[float]) -> float:
    return statistics.variance(values) if len(values) > 1 else 0.0


def _matrix(runs: Sequence[Mapping[str, float]]) -> tuple[list[str], list[list[float]]]:
    """The problems every run answered, and the runs x problems matrix over them."""
    if not runs:
        raise ValueError("no runs")
    shared = set(runs[0]).intersection(*runs[1:])
    if not shared:
        raise ValueError("the runs share no problem")
    pids = sorted(shared)
    return pids, [[float(r[p]) for p in pids] for r in runs]


def seeds_and_problems(runs: Sequence[Mapping[str, float]]) -> dict[str, float | int | list[float]]:
    """Mean, SE and 95% interval of an accuracy over seeds and problems (module docstring).

    ``runs``: one mapping per seed, problem id → that run's accuracy on the problem; only problems
    every run answered count. Returns ``mean, se, ci95, seeds, problems, per_seed``."""
    _, m = _matrix(runs)
    seed_means = [statistics.fmean(row) for row in m]
    problem_means = [statistics.fmean(col) for col in zip(*m)]
    mean = statistics.fmean(seed_means)
    se = math.sqrt(_var(seed_means) / len(m) + _var(problem_means) / len(problem_means))
    return {"mean": mean, "se": se, "ci95": [mean - Z95 * se, mean + Z95 * se], "seeds": len(m),
            "problems": len(problem_means), "per_seed": seed_means}


def difference(a: Sequence[Mapping[str, float]], b: Sequence[Mapping[str, float]]) -> dict[str, float | list[float]]:
    """Mean of ``a`` minus mean of ``b`` over their shared problems, with SE and 95% interval
    (independent seeds, paired problems; module docstring)."""
    shared = sorted(set(a[0]).intersection(*a[1:], *b))
    if not shared:
        raise ValueError("the two arms share no problem")
    ma = [[float(r[p]) for p in shared] for r in a]
    mb = [[float(r[p]) for p in shared] for r in b]
    sa, sb = [statistics.fmean(r) for r in ma], [statistics.fmean(r) for r in mb]
    diffs = [statistics.fmean(x) - statistics.fmean(y) for x, y in zip(zip(*ma), zip(*mb))]
    mean = statistics.fmean(sa) - statistics.fmean(sb)
    se = math.sqrt(_var(sa) / len(sa) + _var(sb) / len(sb) + _var(diffs) / len(diffs))
    return {"mean": mean, "se": se, "ci95": [mean - Z95 * se, mean + Z95 * se]}


def contrast(terms: Sequence[tuple[float, Sequence[Mapping[str, float]]]]) -> dict[str, float | list[float]]:
    """A linear combination ``sum_i c_i * mean(arm_i)`` of arms with independent seeds, paired over the
    problems every run answered, with a 95% interval that uses Student's t for the seed part.

    ``terms``: ``(c_i, runs_i)``, ``runs_i`` one mapping per seed (problem id → accuracy), as in
    :func:`difference` (which is ``[(1, a), (-1, b)]``). Two parts of the variance:

    - seeds: ``se_s² = sum_i c_i² var_s(arm i's seed means) / S_i``, with Welch–Satterthwaite's
      degrees of freedom ``df = se_s⁴ / sum_i (c_i² var_i / S_i)² / (S_i − 1)``;
    - problems: ``se_p² = var_p(sum_i c_i A_i,p) / P`` (``A_i,p``: arm i's mean over seeds on problem p).

    The interval is ``mean ± sqrt((t975(df) se_s)² + (Z95 se_p)²)``: each part at its own quantile, so a
    few seeds widen the interval as a t distribution says, and the many problems keep the normal one.
    With no seed variance (one seed per arm) it is the normal interval over problems. A linear
    interpolation along a frontier (fixed interpolation weights) is such a contrast."""
    terms = [(float(c), runs) for c, runs in terms if c != 0]
    if not terms or any(not runs for _, runs in terms):
        raise ValueError("contrast: every term needs at least one run")
    shared = set(terms[0][1][0]).intersection(*(r for _, runs in terms for r in runs))
    if not shared:
        raise ValueError("the arms share no problem")
    pids = sorted(shared)
    mean, parts, per_problem = 0.0, [], [0.0] * len(pids)
    for c, runs in terms:
        m = [[float(r[p]) for p in pids] for r in runs]
        seed_means = [statistics.fmean(row) for row in m]
        mean += c * statistics.fmean(seed_means)
        parts.append((c * c * _var(seed_means) / len(m), len(m)))
        for j, col in enumerate(zip(*m)):
            per_problem[j] += c * statistics.fmean(col)
    se_s2 = sum(v for v, _ in parts)
    se_p2 = _var(per_problem) / len(pids)
    denom = sum(v * v / (n - 1) for v, n in parts if n > 1 and v > 0)
    df = se_s2 * se_s2 / denom if denom > 0 else math.inf
    t = t975(max(1, math.floor(df))) if math.isfinite(df) else Z95
    half = math.sqrt((t * math.sqrt(se_s2)) ** 2 + (Z95 * math.sqrt(se_p2)) ** 2)
    return {"mean": mean, "se": math.sqrt(se_s2 + se_p2), "se_seeds": math.sqrt(se_s2),
            "se_problems": math.sqrt(se_p2), "df_seeds": df, "ci95": [mean - half, mean + half]}
