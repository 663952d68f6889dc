"""Paired statistics against values computed by hand (the arithmetic is written out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rtc.numerics import stats


def test_newcombe_paired_interval_by_hand():
    # Bentur et al. 2009 (Fagerland, Lydersen & Laake's paired example): n11=1, n10=1, n01=7, n00=12, n=21.
    # p1 = 2/21 = 0.095238, p2 = 8/21 = 0.380952, difference -0.285714.
    # Wilson 95 %: 2/21 -> [0.026517, 0.289143]; 8/21 -> [0.207509, 0.591211].
    # A = 1*12 - 1*7 = 5 <= n/2 = 10.5, so phi = 0:
    # low  = -0.285714 - sqrt(0.068721^2 + 0.210259^2) = -0.285714 - 0.221205 = -0.506919
    # high = -0.285714 + sqrt(0.173443^2 + 0.193905^2) = -0.285714 + 0.260158 = -0.025556
    diff, low, high = stats.paired_difference_interval(1, 1, 7, 12)
    assert diff == pytest.approx(-0.285714, abs=1e-6)
    assert low == pytest.approx(-0.506919, abs=5e-6) and high == pytest.approx(-0.025556, abs=5e-6)
    # n11=2, n10=6, n01=1, n00=11 (n=20): p1 = 0.40, p2 = 0.15, difference 0.25; Wilson 8/20 -> [0.218809,
    # 0.613421], 3/20 -> [0.052368, 0.360424]; A = 22 - 6 = 16 > n/2 = 10, so phi = (16 - 10) / sqrt(8*12*3*17)
    # = 0.085749: low = 0.25 - sqrt(0.181191^2 - 2 phi 0.181191*0.210424 + 0.210424^2) = 0.25 - 0.265650
    # high = 0.25 + sqrt(0.213421^2 - 2 phi 0.213421*0.097632 + 0.097632^2) = 0.25 + 0.226950
    diff, low, high = stats.paired_difference_interval(2, 6, 1, 11)
    assert diff == 0.25
    assert low == pytest.approx(-0.015650, abs=5e-6) and high == pytest.approx(0.476950, abs=5e-6)
    # no discordant pair: difference 0 inside a non-degenerate interval (phi = (25 - 5) / 25 = 0.8, not 1)
    diff, low, high = stats.paired_difference_interval(5, 0, 0, 5)
    assert diff == 0 and -1 <= low < 0 < high <= 1 and low == pytest.approx(-high)
    # an empty margin (everything solved by both): phi is 0, the interval is the Wilson half-widths combined
    diff, low, high = stats.paired_difference_interval(10, 0, 0, 0)
    assert diff == 0 and low == pytest.approx(-0.2775, abs=1e-3) and high == pytest.approx(0.2775, abs=1e-3)
    assert all(math.isnan(v) for v in stats.paired_difference_interval(0, 0, 0, 0))


def test_paired_table_counts_pairs():
    first = np.array([1, 1, 0, 0, 1], bool)
    second = np.array([1, 0, 1, 0, 0], bool)
    assert stats.paired_table(first, second) == (1, 2, 1, 1)
    with pytest.raises(ValueError):
        stats.paired_table(first, second[:3])


def test_mcnemar_exact_by_hand():
    # 6 vs 1 discordant: P(X <= 1), X ~ Bin(7, 1/2) = (1 + 7) / 128 = 0.0625; two-sided 0.125
    assert stats.mcnemar_exact(6, 1) == pytest.approx(0.125, abs=1e-12)
    assert stats.mcnemar_exact(1, 6) == pytest.approx(0.125, abs=1e-12)
    assert stats.mcnemar_exact(0, 5) == pytest.approx(2 / 32, abs=1e-12)  # 2 * (1/2)^5
    assert stats.mcnemar_exact(3, 3) == 1.0 and stats.mcnemar_exact(0, 0) == 1.0
    # 10 vs 2: P(X <= 2) = (1 + 12 + 66) / 4096 = 79/4096; two-sided 158/4096
    assert stats.mcnemar_exact(10, 2) == pytest.approx(158 / 4096, abs=1e-12)
    # large counts stay finite and exact in log space: Bin(2000, 1/2) at its mean is > 0.5 one-sided
    assert stats.mcnemar_exact(1000, 1000) == 1.0 and 0 < stats.mcnemar_exact(900, 1100) < 1e-5


def test_holm_by_hand():
    # m = 4 valid p-values (NaN is left out): sorted 0.01*4 = 0.04, 0.03*3 = 0.09, 0.04*2 = 0.08 -> 0.09 (monotone),
    # 0.5*1 = 0.5
    adjusted = stats.holm([0.01, 0.04, 0.03, float("nan"), 0.5])
    np.testing.assert_allclose(adjusted, [0.04, 0.09, 0.09, np.nan, 0.5])
    np.testing.assert_allclose(stats.holm([0.3, 0.6]), [0.6, 0.6])  # 0.3*2, max(0.6, 0.6*1); capped at 1 below
    assert stats.holm([0.9, 0.8]).tolist() == [1.0, 1.0] and stats.holm([]).size == 0


def test_stratified_mean_by_hand():
    # two levels: 8/16 and 4/16 -> mean 0.375; var = (0.5*0.5/16 + 0.25*0.75/16) / 4 = 0.02734375/4
    variances = [stats.proportion_variance(8, 16), stats.proportion_variance(4, 16)]
    mean, low, high = stats.stratified_mean([0.5, 0.25], variances)
    half = 1.959964 * math.sqrt(0.02734375) / 2
    assert mean == 0.375 and low == pytest.approx(0.375 - half, abs=1e-6) and high == pytest.approx(0.375 + half)
    # paired difference variance: n10=6, n01=1, n=20 -> ((7/20) - 0.25^2) / 20 = 0.014375
    assert stats.paired_difference_variance(6, 1, 20) == pytest.approx(0.014375)
    assert math.isnan(stats.stratified_mean([], [])[0])
