"""One definition per metric (rtc.numerics.metrics): boundary jump, frozen deviation, guidance effect, intervals."""

from __future__ import annotations

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
    summary = metrics.summarize(tracked, plain_action=new + 1.0)
    assert summary["boundary_jump_rtc"] is None and summary["boundary_jump_plain"] is None
    assert summary["guidance_effect"] == pytest.approx(
        1 - summary["weighted_prefix_error_rtc"] / summary["weighted_prefix_error_plain"]
    )


def test_guidance_effect_is_undefined_without_a_plain_error():
    assert metrics.guidance_effect(0.1, 0.0) is None
    assert metrics.guidance_effect(0.25, 1.0) == pytest.approx(0.75)
    np.testing.assert_allclose(metrics.guidance_effect(np.array([0.5, 1.0]), np.array([1.0, 0.0])), [0.5, np.nan])


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (5, 10, 0.2366, 0.7634), (1, 4, 0.0456, 0.6994)],
)
def test_wilson_interval_known_values(k, n, low, high):
    lo, hi = metrics.wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4) and hi == pytest.approx(high, abs=1e-4)
    assert np.isnan(metrics.wilson_interval(0, 0)[0])


def test_left_behaviour_threshold_separates_modes():
    weights = np.r_[np.ones(4), np.zeros(H - 4)]
    modes = np.stack([np.full((H, A), -1.0), np.full((H, A), 1.0), np.full((H, A), 3.0)])
    plain = modes[np.arange(30) % 3] + 0.05 * RNG.normal(size=(30, H, A))
    threshold = metrics.left_behaviour_threshold(plain, weights)
    # between the within-mode spread (~0.05 * sqrt(A)) and the distance between modes (2 * sqrt(A))
    assert 0.5 < threshold < 2 * np.sqrt(A)
    distance = metrics.prefix_distance(plain, modes[0], weights)
    np.testing.assert_array_equal(distance > threshold, (np.arange(30) % 3) != 0)
