"""One definition per metric (rtc.numerics.metrics): boundary jump, frozen deviation, guidance effect, intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from rtc.numerics import metrics

RNG = np.random.default_rng(3)
H, A, B = 8, 6, 5


def _chunks():
    return RNG.normal(size=(B, H, A)), RNG.normal(size=(B, H, A))


def test_boundary_jump_for_d_at_least_one_is_against_the_previous_planned_action():
    new, prev = _chunks()
    d, valid = 2, 4  # s = 4
    np.testing.assert_allclose(
        metrics.boundary_jump(new, prev, d, valid), np.linalg.norm(new[:, 2] - prev[:, 1], axis=-1)
    )


def test_boundary_jump_at_d_zero_is_against_the_last_executed_action():
    new, prev = _chunks()
    last = RNG.normal(size=(B, A))
    np.testing.assert_allclose(metrics.boundary_jump(new, prev, 0, 5, last), np.linalg.norm(new[:, 0] - last, axis=-1))
    # never prev[0], which is the previous chunk's plan for the same step as new[0]
    assert np.isnan(metrics.boundary_jump(new, prev, 0, 5)).all()
    assert "last executed action" in metrics.boundary_jump_reason(0, 5, H)


@pytest.mark.parametrize(("d", "s"), [(3, 5), (1, 7), (4, 4)])  # the edge d - 1 = H - s - 1: prev[d-1] is real
def test_boundary_jump_is_defined_up_to_the_edge(d, s):
    new, prev = _chunks()
    valid = H - s
    assert d - 1 <= valid - 1
    assert metrics.boundary_jump_reason(d, valid, H) is None
    np.testing.assert_allclose(
        metrics.boundary_jump(new, prev, d, valid), np.linalg.norm(new[:, d] - prev[:, d - 1], axis=-1)
    )


@pytest.mark.parametrize(("d", "s"), [(3, 6), (2, 7), (4, 8)])  # d - 1 >= H - s: prev[d-1] is zero padding
def test_boundary_jump_is_undefined_against_padding(d, s):
    new, prev = _chunks()
    jump = metrics.boundary_jump(new, prev, d, H - s, last_executed=RNG.normal(size=(B, A)))
    assert np.isnan(jump).all()
    assert "zero padding" in metrics.boundary_jump_reason(d, H - s, H)
    assert metrics.mean_defined(jump) is None  # skipped, never 0


def test_frozen_max_deviation_covers_only_real_planned_actions():
    new, prev = _chunks()
    prev[:, 2:] = 0.0  # H - s = 2 real actions
    expected = np.abs(new[:, :2] - prev[:, :2]).max()
    assert metrics.frozen_max_deviation(new, prev, 3, 2) == pytest.approx(expected)
    assert np.isnan(metrics.frozen_max_deviation(new, prev, 0, 2))
    assert metrics.frozen_reason(0, 2) == "d = 0: no action is frozen"


def test_summarize_gives_null_not_zero_for_undefined_values():
    new, prev = _chunks()
    tracked = {
        "action": new,
        "prev_action_chunk": prev,
        "prefix_weights": np.r_[np.ones(2), np.zeros(H - 2)],
        "inference_delay": np.asarray(3),
        "prefix_attention_horizon": np.asarray(2),
        "correction": np.ones((2, B, H, A)),
        "applied": np.ones((2, B, H, A)),
    }
    plain = new + 1.0
    summary = metrics.summarize(tracked, plain_action=plain)
    assert summary["boundary_jump_rtc"] is None and summary["boundary_jump_plain"] is None
    # the guidance effect: the median of the per-sample ratio, with its n (B = 5: too few for a 95 % interval)
    weights = tracked["prefix_weights"]
    per_sample = 1 - metrics.weighted_prefix_error(new, prev, weights) / metrics.weighted_prefix_error(
        plain, prev, weights
    )
    assert summary["guidance_effect"] == pytest.approx(float(np.median(per_sample)))
    assert summary["guidance_effect_n"] == B and summary["guidance_effect_excluded"] == 0
    assert summary["guidance_effect_low"] is None and summary["guidance_effect_high"] is None
    # the guidance cost: mean distance per action to the plain chunk over i >= d = 3 (here exactly sqrt(A))
    assert summary["guidance_cost"] == pytest.approx(np.sqrt(A)) and summary["guidance_cost_n"] == B
    json.dumps(summary, allow_nan=False)  # strict JSON


def test_guidance_effect_by_hand_with_an_undefined_sample():
    """Per sample 1 - e_rtc / e_plain; e_plain = 0 is undefined: excluded and counted, never 0 or infinity."""
    estimate = metrics.guidance_effect(np.array([0.5, 0.25, 0.1]), np.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(estimate.samples, [0.5, 0.75, np.nan])
    assert estimate.median == pytest.approx(0.625) and estimate.n == 2 and estimate.excluded == 1
    assert estimate.low is None and estimate.high is None  # 2 samples cannot give a 95 % interval
    assert estimate.fields("guidance_effect") == {
        "guidance_effect": pytest.approx(0.625),
        "guidance_effect_low": None,
        "guidance_effect_high": None,
        "guidance_effect_n": 2,
        "guidance_effect_excluded": 1,
    }
    # seven samples: effects 0.9, 0.8, ..., 0.3; median 0.6; the 95 % interval is [min, max] (coverage 1 - 2/128)
    seven = metrics.guidance_effect(np.arange(1, 8) / 10, np.ones(7))
    assert seven.median == pytest.approx(0.6) and (seven.low, seven.high) == pytest.approx((0.3, 0.9))
    assert seven.low <= seven.median <= seven.high
    nothing = metrics.guidance_effect(np.array([0.1, 0.2]), np.zeros(2))
    assert nothing.median is None and nothing.n == 0 and nothing.excluded == 2
    assert metrics.guidance_effect(0.25, 1.0).median == pytest.approx(0.75)  # one sample given as scalars


def test_place_in_batch_says_where_the_drawn_sample_stands():
    """The overview's figures draw one batch element: the sentence gives its value, its place among the defined
    samples and the batch's median with its interval."""
    seven = metrics.guidance_effect(np.array([0.7, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), np.ones(7))  # 0.3, 0.9, ..., 0.4
    assert metrics.place_in_batch(seven, 0, "guidance effect") == (
        "Sample 0 of 7: its guidance effect is 0.300 (the lowest of 7); "
        "the batch's median is 0.600 [0.300, 0.900] (n = 7)."
    )
    assert "(the highest of 7)" in metrics.place_in_batch(seven, 1, "effect")
    assert "(3 of the other 6 are lower)" in metrics.place_in_batch(seven, 4, "effect")  # 0.6, the median
    with_undefined = metrics.guidance_effect(np.array([0.5, 0.5, 0.1]), np.array([1.0, 0.0, 1.0]))
    assert metrics.place_in_batch(with_undefined, 1, "effect") == (
        "Sample 1 of 3: its effect is undefined; the batch's median is 0.700 (n = 2)."
    )
    assert "(the lowest of 2)" in metrics.place_in_batch(with_undefined, 0, "effect")
    single = metrics.guidance_effect(np.array([0.5]), np.array([1.0]))
    assert "(the only defined one of 1)" in metrics.place_in_batch(single, 0, "effect")


@pytest.mark.parametrize(("count", "ranks"), [(5, None), (6, (0, 5)), (10, (1, 8)), (16, (3, 12)), (30, (9, 20))])
def test_median_ranks_are_the_binomial_order_statistics(count, ranks):
    """The tabulated distribution-free 95 % intervals for the median (e.g. n = 10: 2nd and 9th smallest)."""
    assert metrics.median_ranks(count) == ranks
    if ranks is not None:
        j = ranks[0]
        coverage = 1 - 2 * sum(math.comb(count, i) for i in range(j + 1)) / 2**count
        assert coverage >= 0.95
        wider = 1 - 2 * sum(math.comb(count, i) for i in range(j + 2)) / 2**count
        assert wider < 0.95  # the narrowest such interval


@pytest.mark.parametrize("count", [16, 40])
def test_median_interval_covers_the_true_median_at_its_level(count):
    """Coverage sanity: over 4000 draws from a skewed and a heavy-tailed distribution, the interval holds the
    true median at least 95 % of the time (binomial: its exact level is 1 - 2 P(Bin <= j))."""
    rng = np.random.default_rng(3)
    j = metrics.median_ranks(count)[0]
    exact = 1 - 2 * sum(math.comb(count, i) for i in range(j + 1)) / 2**count
    for draw, median in ((lambda: rng.exponential(size=count), np.log(2)), (lambda: rng.standard_cauchy(count), 0)):
        hits = 0
        for _ in range(4000):
            estimate = metrics.median_interval(draw())
            hits += estimate.low <= median <= estimate.high
        assert hits / 4000 == pytest.approx(exact, abs=0.01)
        assert hits / 4000 >= 0.94


def test_guidance_cost_is_the_distance_outside_the_frozen_prefix():
    plain = np.zeros((3, H, A))
    rtc = plain.copy()
    rtc[:, :2] = 5.0  # inside the frozen prefix (d = 2): no cost
    rtc[0, 2:] = 1.0  # every later action moved by sqrt(A)
    rtc[1, H - 1] = 2.0  # one action moved by 2 sqrt(A): mean over the H - 2 later ones
    estimate = metrics.guidance_cost(rtc, plain, 2)
    np.testing.assert_allclose(estimate.samples, [np.sqrt(A), 2 * np.sqrt(A) / (H - 2), 0.0])
    assert estimate.median == pytest.approx(2 * np.sqrt(A) / (H - 2)) and estimate.n == 3
    assert metrics.guidance_cost(rtc, plain, H).median is None  # d = H: nothing outside the frozen prefix


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (1, 4, 0.0456, 0.6994)],
)
def test_wilson_interval_known_values(k, n, low, high):
    lo, hi = metrics.wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)
    assert np.isnan(metrics.wilson_interval(0, 0)[0])
