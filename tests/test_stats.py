"""sarl.stats: intervals over seeds and problems, hand-computed."""

import math

import pytest

from sarl.stats import difference, seeds_and_problems


def test_seeds_and_problems_by_hand():
    # seed means 0.5 and 1.0 (var 0.125); problem means a=1.0, b=0.5 (var 0.125)
    r = seeds_and_problems([{"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 1.0}])
    assert r["mean"] == pytest.approx(0.75)
    assert r["se"] == pytest.approx(math.sqrt(0.125 / 2 + 0.125 / 2))
    assert r["ci95"][0] == pytest.approx(0.75 - 1.959964 * r["se"])
    assert (r["seeds"], r["problems"], r["per_seed"]) == (2, 2, [0.5, 1.0])


def test_one_seed_is_the_se_over_problems_and_only_shared_problems_count():
    r = seeds_and_problems([{"a": 1.0, "b": 0.0, "c": 0.5}])
    assert r["se"] == pytest.approx(math.sqrt(0.25 / 3))
    # problem c was answered by one run only: it is left out
    r2 = seeds_and_problems([{"a": 1.0, "b": 0.0, "c": 1.0}, {"a": 1.0, "b": 0.0}])
    assert r2["problems"] == 2 and r2["mean"] == pytest.approx(0.5) and r2["se"] == pytest.approx(math.sqrt(0.5 / 2))
    with pytest.raises(ValueError, match="share no problem"):
        seeds_and_problems([{"a": 1.0}, {"b": 1.0}])


def test_difference_pairs_problems_and_adds_both_arms_seed_noise():
    a = [{"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 1.0}]
    b = [{"a": 0.0, "b": 0.0}]
    d = difference(a, b)
    # A's seed means 0.5, 1.0 (var 0.125, 2 seeds); B one seed; per-problem differences 1.0, 0.5 (var 0.125)
    assert d["mean"] == pytest.approx(0.75)
    assert d["se"] == pytest.approx(math.sqrt(0.125 / 2 + 0.125 / 2))
    # identical arms: zero difference and no problem-level variance left
    same = difference(a, a)
    assert same["mean"] == 0 and same["se"] == pytest.approx(math.sqrt(0.125))


def test_t975_quantiles():
    from sarl.stats import Z95, t975

    assert t975(1) == pytest.approx(12.706, abs=1e-3) and t975(2) == pytest.approx(4.303, abs=1e-3)
    assert t975(30) == pytest.approx(2.042, abs=1e-3) and t975(200) == Z95
    with pytest.raises(ValueError):
        t975(0)


def test_contrast_uses_t_for_the_seed_part_and_reduces_to_difference_without_seed_noise():
    from sarl.stats import contrast, t975

    a = [{"a": 1.0, "b": 0.0}, {"a": 1.0, "b": 1.0}, {"a": 0.5, "b": 0.5}]
    b = [{"a": 0.0, "b": 0.0}]
    r = contrast([(1, a), (-1, b)])
    # A's seed means 0.5, 1.0, 0.5: mean 2/3, var 1/12 over 3 seeds -> se_s^2 = 1/36, df = 2 (B has one run)
    assert r["mean"] == pytest.approx(2 / 3)
    assert r["se_seeds"] == pytest.approx(1 / 6) and r["df_seeds"] == pytest.approx(2)
    # problem means of A: a 5/6, b 1/2; minus B's 0, 0 -> var ((1/6)^2 * 2) / 1 = 1/18, se_p^2 = 1/36
    assert r["se_problems"] == pytest.approx(1 / 6)
    half = math.sqrt((t975(2) / 6) ** 2 + (1.959964 / 6) ** 2)
    assert r["ci95"] == pytest.approx([2 / 3 - half, 2 / 3 + half])
    # the point estimate and the SE equal difference()'s; only the interval is wider
    d = difference(a, b)
    assert r["mean"] == pytest.approx(d["mean"]) and r["se"] == pytest.approx(d["se"])
    assert r["ci95"][1] - r["ci95"][0] > d["ci95"][1] - d["ci95"][0]
    # one seed per arm: the normal interval over problems
    one = contrast([(1, [a[0]]), (-1, b)])
    assert one["df_seeds"] == math.inf and one["ci95"][1] - one["mean"] == pytest.approx(1.959964 * one["se"])


def test_contrast_interpolation_weights():
    from sarl.stats import contrast

    hi, lo, x = [{"p": 1.0}, {"p": 1.0}], [{"p": 0.0}, {"p": 0.0}], [{"p": 0.5}, {"p": 0.5}]
    # x minus the point 30% of the way from lo to hi
    r = contrast([(1, x), (-0.7, lo), (-0.3, hi)])
    assert r["mean"] == pytest.approx(0.2) and r["se"] == 0
    with pytest.raises(ValueError, match="at least one run"):
        contrast([(1, x), (-1, [])])
