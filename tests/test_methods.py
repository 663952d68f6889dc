"""Method comparison on identical noise: naive, RTC schedules, hard masking, BID."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtc import demo, levels, methods, metrics
from rtc.checkpoints import load_policy, read_run
from tests.conftest import DEMO_RUN


@functools.cache
def demo_policy():
    return load_policy(read_run(DEMO_RUN).checkpoint(-1, "worlds_l_grasp_easy"))


@pytest.fixture(scope="module")
def inputs():
    obs = jax.random.normal(jax.random.key(1), (3, 10))
    prev = jax.random.normal(jax.random.key(2), (3, 8, 6))
    return obs, prev


def test_candidate_noise_starts_with_the_plain_noise(small_policy):
    rng = jax.random.key(7)
    noise = methods.candidate_noise(rng, (3, 8, 6), 4)
    assert noise.shape == (4, 3, 8, 6)
    np.testing.assert_array_equal(noise[0], small_policy.initial_noise(rng, 3))
    np.testing.assert_array_equal(methods.candidate_noise(rng, (3, 8, 6), 1)[0], noise[0])
    assert not np.allclose(noise[1], noise[0])


def test_bid_with_one_sample_equals_naive_exactly(small_policy, inputs):
    obs, prev = inputs
    noise = methods.candidate_noise(jax.random.key(3), (3, 8, 6), 1)
    chunks = methods.compare_methods(small_policy, obs, prev, noise, 2, 4, 5.0, 5, methods=("naive", "bid"))
    plain = np.asarray(small_policy.action(None, obs, 5, noise=noise[0]))
    np.testing.assert_array_equal(chunks["naive"], plain)
    np.testing.assert_array_equal(chunks["bid"], plain)


def test_bid_keeps_the_candidate_nearest_to_the_previous_chunk(small_policy, inputs):
    obs, _ = inputs
    noise = methods.candidate_noise(jax.random.key(4), (3, 8, 6), 5)
    candidates = np.stack([np.asarray(small_policy.action(None, obs, 5, noise=n)) for n in noise])  # [N, B, H, A]
    # previous chunks close to candidates 3, 1 and 4 (plus a perturbation), so the choice is clear
    wanted = [3, 1, 4]
    prev = np.stack([candidates[k, b] for b, k in enumerate(wanted)]) + 0.05
    d, p = 2, 5
    details = methods.bid_details(small_policy, obs, jnp.asarray(prev), noise, d, p, 5)
    weights = methods.comparison_weights(d, p, 8)
    brute = np.stack([metrics.weighted_prefix_error(c, prev, weights) for c in candidates])  # [N, B]
    np.testing.assert_array_equal(details["index"], np.argmin(brute, axis=0))
    np.testing.assert_array_equal(details["index"], wanted)
    np.testing.assert_allclose(details["distances"], brute, rtol=1e-4, atol=1e-4)
    chosen = candidates[details["index"], np.arange(3)]
    np.testing.assert_allclose(details["chunk"], chosen, atol=1e-4)


def test_rtc_methods_match_the_policy_sampler_and_share_noise(small_policy, inputs):
    obs, prev = inputs
    noise = methods.candidate_noise(jax.random.key(5), (3, 8, 6), 3)
    chunks = methods.compare_methods(small_policy, obs, prev, noise, 2, 4, 5.0, 5)
    assert list(chunks) == list(methods.METHODS)
    for method, schedule in [
        ("rtc_exp", "exp"),
        ("rtc_linear", "linear"),
        ("rtc_ones", "ones"),
        ("hard_masking", "zeros"),
    ]:
        expected = small_policy.realtime_action(None, obs, 5, prev, 2, 4, schedule, 5.0, noise=noise[0])
        np.testing.assert_array_equal(chunks[method], np.asarray(expected), err_msg=method)
    # with no guidance every method is the plain sample from the shared noise (up to float rounding: the
    # guided sampler evaluates the velocity inside a VJP)
    unguided = methods.compare_methods(small_policy, obs, prev, noise, 2, 4, 0.0, 5, methods=methods.METHODS[:5])
    for method, chunk in unguided.items():
        np.testing.assert_allclose(chunk, chunks["naive"], rtol=1e-5, atol=1e-5, err_msg=method)


def test_hard_masking_keeps_the_frozen_actions_on_the_demo_policy():
    policy = demo_policy()
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    obs, _ = levels.reset(level)
    batch, d = 8, 3
    obs = jnp.broadcast_to(obs, (batch, obs.shape[0]))
    prev = jnp.broadcast_to(demo.mode_prototypes(0, 8)[1], (batch, 8, 6))  # the "pull" behaviour
    noise = methods.candidate_noise(jax.random.key(5), (batch, 8, 6), 1)
    chunks = methods.compare_methods(policy, obs, prev, noise, d, 5, 20.0, 10, methods=("naive", "hard_masking"))
    frozen = np.abs(chunks["hard_masking"][:, :d] - np.asarray(prev)[:, :d]).max()
    plain = np.abs(chunks["naive"][:, :d] - np.asarray(prev)[:, :d]).max()
    assert frozen < 0.15, frozen
    assert plain > 1.0 > 10 * frozen
    table = {row["method"]: row for row in methods.comparison_table(chunks, np.asarray(prev), d, 5)}
    assert table["hard_masking"]["frozen_max_deviation"] == pytest.approx(frozen)


def test_comparison_table_values(inputs):
    _, prev = inputs
    prev = np.asarray(prev)
    rng = np.random.default_rng(0)
    chunks = {"naive": rng.normal(size=prev.shape), "rtc_exp": prev + 0.1 * rng.normal(size=prev.shape)}
    d, p = 2, 5
    rows = {row["method"]: row for row in methods.comparison_table(chunks, prev, d, p)}
    weights = methods.comparison_weights(d, p, 8)
    np.testing.assert_allclose(weights[:d], 1.0, rtol=1e-6)  # exp schedule: frozen part 1, zero from p on
    np.testing.assert_array_equal(weights[p:], 0.0)
    for method, chunk in chunks.items():
        row = rows[method]
        distance = np.sqrt(((chunk - prev) ** 2).sum(-1))  # [B, H]
        assert row["weighted_prefix_error"] == pytest.approx((distance * weights).sum(-1).mean(), rel=1e-5)
        jump = np.sqrt(((chunk[:, d] - prev[:, d - 1]) ** 2).sum(-1)).mean()
        assert row["boundary_jump"] == pytest.approx(jump, rel=1e-5)
        assert row["frozen_max_deviation"] == pytest.approx(np.abs(chunk[:, :d] - prev[:, :d]).max())
        to_plain = np.sqrt(((chunk - chunks["naive"]) ** 2).sum((1, 2))).mean()
        assert row["distance_to_plain"] == pytest.approx(to_plain, rel=1e-5, abs=1e-9)
    assert rows["naive"]["distance_to_plain"] == 0.0


def test_track_method_reproduces_the_compared_chunks(small_policy, inputs):
    obs, prev = inputs
    noise = methods.candidate_noise(jax.random.key(6), (3, 8, 6), 3)
    chunks = methods.compare_methods(small_policy, obs, prev, noise, 2, 4, 5.0, 5)
    for method in ("naive", "hard_masking", "bid"):
        tracked = methods.track_method(small_policy, method, obs, prev, noise, 2, 4, 5.0, 5)
        np.testing.assert_allclose(tracked["action"], chunks[method], atol=1e-4, err_msg=method)
        assert tracked["x_t"].shape == (5, 3, 8, 6)
    assert "correction" in methods.track_method(small_policy, "rtc_linear", obs, prev, noise, 2, 4, 5.0, 5)
    assert methods.track_method(small_policy, "bid", obs, prev, noise, 2, 4, 5.0, 5)["bid_distances"].shape == (3, 3)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="'rtc_cosine' is not one of naive, rtc_exp"):
        methods.method_index("rtc_cosine")
    with pytest.raises(ValueError, match="out of range"):
        methods.method_index(6)
    assert methods.method_schedule("hard_masking") == "zeros"
