"""Guidance diagnostics: schedule weights, guidance curves, inert-guidance warnings, heatmap data."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rtc.numerics import diagnostics


def test_schedule_weights_table_has_every_schedule():
    table = diagnostics.schedule_weights_table(2, 6, 10)
    assert list(table) == ["exp", "linear", "ones", "zeros"]
    np.testing.assert_allclose(table["linear"], [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0], atol=1e-6)
    np.testing.assert_array_equal(table["ones"], [1] * 6 + [0] * 4)
    np.testing.assert_array_equal(table["zeros"], [1, 1] + [0] * 8)
    np.testing.assert_allclose(
        diagnostics.schedule_weights_table(1, 4, 8)["exp"], [1, 0.488, 0.189, 0.041, 0, 0, 0, 0], atol=1e-3
    )
    # zeros with p <= d: only i < min(d, p) = p is weighted (not inert)
    np.testing.assert_array_equal(diagnostics.schedule_weights_table(3, 2, 8)["zeros"], [1, 1] + [0] * 6)


@pytest.mark.parametrize(
    ("num_steps", "w_max", "expected"),
    [
        (5, 5.0, [5, 4.25, 2.1667, 2.1667, 4.25]),
        (10, 10.0, [10, 9.111, 4.25, 2.7619, 2.1667, 2.0, 2.1667, 2.7619, 4.25, 9.111]),
    ],
)
def test_guidance_curves_match_the_reference(num_steps, w_max, expected):
    curves = diagnostics.guidance_curves(num_steps, w_max)
    np.testing.assert_allclose(curves["time"], np.arange(num_steps) / num_steps, atol=1e-6)
    np.testing.assert_allclose(curves["clipped"], expected, atol=2e-3)
    assert np.all(curves["unclipped"] >= curves["clipped"] - 1e-6)
    below = curves["clipped"] < w_max
    np.testing.assert_allclose(curves["unclipped"][below], curves["clipped"][below], rtol=1e-6)
    t = curves["dense_time"]
    assert t[0] == 0 and t[-1] < 1
    # at t = 0, c = (1 - t) / t diverges: the unclipped value is inf, the clipped one the maximum
    assert curves["dense_unclipped"][0] == np.inf and curves["unclipped"][0] == np.inf
    assert curves["dense_clipped"][0] == curves["clipped"][0] == np.float32(w_max)
    inner = (t > 0) & (t < 1)
    expected_dense = (t[inner] ** 2 + (1 - t[inner]) ** 2) / (t[inner] * (1 - t[inner]))
    np.testing.assert_allclose(curves["dense_unclipped"][inner], expected_dense, rtol=1e-4)
    np.testing.assert_allclose(curves["dense_clipped"], np.minimum(curves["dense_unclipped"], w_max), rtol=1e-6)


def test_inert_warnings_fire_for_zero_weight_and_not_for_defaults():
    assert diagnostics.inert_guidance_warnings(2, 4, "exp", 5.0, 8) == []
    assert diagnostics.inert_guidance_warnings(3, 5, "zeros", 5.0, 8) == []
    assert diagnostics.inert_guidance_warnings(0, 6, "exp", 5.0, 8) == []  # d = 0 still guides softly
    (warning,) = diagnostics.inert_guidance_warnings(2, 4, "exp", 0.0, 8)
    assert "inert: max guidance weight is 0" in warning
    (warning,) = diagnostics.inert_guidance_warnings(2, 0, "linear", 5.0, 8)
    assert "inert: prefix attention horizon p = 0" in warning
    (warning,) = diagnostics.inert_guidance_warnings(0, 5, "zeros", 5.0, 8)
    assert "zeros schedule" in warning and "d = 0" in warning
    (warning,) = diagnostics.inert_guidance_warnings(3, 2, "zeros", 5.0, 8)
    assert warning.startswith("guidance is partly inert") and "indices 2..2" in warning
    with pytest.raises(ValueError, match="cosine"):
        diagnostics.inert_guidance_warnings(1, 4, "cosine", 5.0, 8)


@pytest.mark.parametrize(
    ("d", "p", "schedule", "w_max"),
    [
        (2, 4, "exp", 0.0),
        (2, 0, "ones", 5.0),
        (0, 5, "zeros", 5.0),
        (3, 2, "zeros", 5.0),
        (0, 5, "exp", 5.0),
        (2, 4, "linear", 5.0),
    ],
)
def test_inert_means_the_sample_equals_the_plain_one(small_policy, d, p, schedule, w_max):
    obs = jax.random.normal(jax.random.key(1), (2, 10))
    prev = jax.random.normal(jax.random.key(2), (2, 8, 6))
    noise = small_policy.initial_noise(jax.random.key(3), 2)
    guided = np.asarray(small_policy.realtime_action(None, obs, 4, prev, d, p, schedule, w_max, noise=noise))
    plain = np.asarray(small_policy.action(None, obs, 4, noise=noise))
    inert = diagnostics.guidance_is_inert(d, p, schedule, w_max)
    assert np.allclose(guided, plain, atol=1e-5) == inert
    assert (
        any(w.startswith("guidance is inert") for w in diagnostics.inert_guidance_warnings(d, p, schedule, w_max, 8))
        == inert
    )


def test_heatmap_and_correction_data_are_norms_of_the_tracked_arrays(small_policy):
    obs = jax.random.normal(jax.random.key(1), (2, 10))
    prev = jax.random.normal(jax.random.key(2), (2, 8, 6))
    _, tracked = small_policy.realtime_action(jax.random.key(4), obs, 5, prev, 2, 5, "exp", 5.0, return_tracking=True)
    data = diagnostics.heatmap_data(tracked, batch_idx=1)
    for key in ("error", "correction", "applied"):
        assert data[key].shape == (5, 8)
        np.testing.assert_allclose(data[key], np.sqrt((np.asarray(tracked[key])[:, 1] ** 2).sum(-1)), rtol=1e-5)
    np.testing.assert_array_equal(data["error"][:, 5:], 0)  # weights are 0 from p on
    series = diagnostics.correction_vs_applied(tracked, 1, 2, 3)
    np.testing.assert_allclose(series["applied"], series["guidance_weight"] * series["correction"], rtol=1e-5)
    with pytest.raises(ValueError, match="error"):
        diagnostics.heatmap_data({"x_t": tracked["x_t"]})
