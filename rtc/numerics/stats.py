"""Paired comparisons of solve rates, pure numpy: methods evaluated on the same episodes (common random numbers).

For one point, episode ``e`` of method A and of the baseline B share their seeds, so their outcomes form a pair.
With ``n`` pairs, ``n11`` both solved, ``n10`` only A, ``n01`` only B, ``n00`` neither:

- **difference** ``p_A - p_B = (n10 - n01) / n``;
- **95 % interval** (``paired_difference_interval``): Newcombe's hybrid score interval for the difference of paired
  proportions, method 10 of Newcombe (1998, Statistics in Medicine 17, 2635-2650; also Fagerland, Lydersen and
  Laake 2014, "Newcombe square-and-add"): the Wilson score intervals ``[l1, u1]`` of ``p_A`` and ``[l2, u2]`` of
  ``p_B`` combined by square-and-add with the correlation of the pairs,
  ``phi = C / sqrt((n11 + n10)(n01 + n00)(n11 + n01)(n10 + n00))`` where ``C = A - n/2`` if ``A = n11 n00 - n10 n01``
  exceeds ``n/2``, 0 if ``0 <= A <= n/2``, ``A`` if negative (phi = 0 where a margin is empty):
  ``low  = d - sqrt((p_A - l1)^2 - 2 phi (p_A - l1)(u2 - p_B) + (u2 - p_B)^2)``,
  ``high = d + sqrt((u1 - p_A)^2 - 2 phi (u1 - p_A)(p_B - l2) + (p_B - l2)^2)``;
- **p-value** (``mcnemar_exact``): the exact (conditional) McNemar test, a two-sided binomial test of ``n10``
  successes in ``n10 + n01`` discordant pairs with probability 1/2, ``min(1, 2 P(X <= min(n10, n01)))``; 1 with
  no discordant pair;
- **multiplicity** (``holm``): Holm's step-down adjustment over every p-value of a table.

Pooled over levels (``stratified_mean``): levels are fixed strata, not a sample, so an average over them is the
equally weighted mean of the per-level estimates with the variance of that mean, ``sum_l var_l / L^2``, and a
normal 95 % interval. A solve rate's variance per level is ``p (1 - p) / n``; a paired difference's is
``((n10 + n01) / n - d^2) / n`` (the variance of the mean of the per-episode differences in {-1, 0, 1}).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5 % quantile


def _wilson(successes: float, trials: float, z: float) -> tuple[float, float]:
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def paired_table(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int, int]:
    """``(n11, n10, n01, n00)`` of two boolean outcome vectors of the same pairs (``first`` solved, ``second``
    solved; 1 = solved)."""
    a, b = np.asarray(first, bool).ravel(), np.asarray(second, bool).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired outcomes need the same number of pairs, got {a.size} and {b.size}")
    return int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()), int((~a & ~b).sum())


def paired_difference_interval(n11: int, n10: int, n01: int, n00: int, z: float = Z95) -> tuple[float, float, float]:
    """``(p_first - p_second, low, high)``: Newcombe's method 10 interval (module docstring); NaN for no pairs."""
    n = n11 + n10 + n01 + n00
    if n == 0:
        return math.nan, math.nan, math.nan
    p1, p2 = (n11 + n10) / n, (n11 + n01) / n
    diff = (n10 - n01) / n
    l1, u1 = _wilson(n11 + n10, n, z)
    l2, u2 = _wilson(n11 + n01, n, z)
    phi = _phi(n11, n10, n01, n00)
    below = (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2
    above = (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2
    low = max(-1.0, diff - math.sqrt(max(below, 0.0)))
    high = min(1.0, diff + math.sqrt(max(above, 0.0)))
    return diff, low, high


def _phi(n11: int, n10: int, n01: int, n00: int) -> float:
    """Newcombe's correlation estimate for method 10: ``A = n11 n00 - n10 n01`` reduced by ``n / 2`` when
    ``A > n / 2``, 0 when ``0 <= A <= n / 2``, ``A`` when negative, over the square root of the product of the
    four margins (0 when a margin is empty)."""
    n = n11 + n10 + n01 + n00
    margins = (n11 + n10) * (n01 + n00) * (n11 + n01) * (n10 + n00)
    if margins == 0:
        return 0.0
    cross = n11 * n00 - n10 * n01
    if cross > n / 2:
        cross -= n / 2
    elif cross >= 0:
        cross = 0
    return cross / math.sqrt(margins)


def binomial_cdf_half(k: int, n: int) -> float:
    """``P(X <= k)`` for ``X ~ Binomial(n, 1/2)``, exact to float precision (log-space sum)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top + math.log(sum(math.exp(t - top) for t in terms)) - n * math.log(2)))


def mcnemar_exact(n10: int, n01: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs: ``min(1, 2 P(X <= min(n10, n01)))`` with
    ``X ~ Binomial(n10 + n01, 1/2)``; 1.0 when there is no discordant pair."""
    discordant = n10 + n01
    if discordant == 0:
        return 1.0
    return min(1.0, 2.0 * binomial_cdf_half(min(n10, n01), discordant))


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given; NaN stays NaN and is not counted among the
    ``m`` tests): the i-th smallest becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def proportion_variance(successes: int, trials: int) -> float:
    """``p (1 - p) / n`` of a proportion (NaN for no trials)."""
    if trials == 0:
        return math.nan
    p = successes / trials
    return p * (1 - p) / trials


def paired_difference_variance(n10: int, n01: int, n: int) -> float:
    """Variance of the mean of per-pair differences in {-1, 0, 1}: ``((n10 + n01) / n - d^2) / n``."""
    if n == 0:
        return math.nan
    diff = (n10 - n01) / n
    return ((n10 + n01) / n - diff * diff) / n


def stratified_mean(
    estimates: Sequence[float] | np.ndarray, variances: Sequence[float] | np.ndarray, z: float = Z95
) -> tuple[float, float, float]:
    """``(mean, low, high)``: the equally weighted mean of independent per-stratum estimates with the normal
    interval of its variance ``sum var_l / L^2`` (NaN for no strata or any undefined stratum)."""
    values, var = np.asarray(estimates, float), np.asarray(variances, float)
    if values.size == 0 or np.isnan(values).any() or np.isnan(var).any():
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    half = z * math.sqrt(float(var.sum())) / values.size
    return mean, mean - half, mean + half
