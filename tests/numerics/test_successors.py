"""The methods that came after RTC: training-time RTC (per-token flow time, clean prefix) and BID's forward term."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rtc.errors import RTCError, SettingsError
from rtc.numerics import methods, sampler
from rtc.numerics.model import TokenTimes, sinusoidal_time_embedding, velocity_fn
from tests.conftest import random_policy


@pytest.fixture(scope="module")
def trained_flag_policy():
    """A small random policy flagged as trained for training-time RTC: enough for the mechanics."""
    policy = random_policy(seed=3)
    policy.max_simulated_delay = 4
    return policy


def test_a_per_example_time_gives_bit_identical_velocities_and_per_token_time_modulates_each_token(small_policy):
    obs = jax.random.normal(jax.random.key(0), (3, 10))
    x = jax.random.normal(jax.random.key(1), (3, 8, 6))
    time = jnp.asarray([0.1, 0.5, 0.8])
    per_example = small_policy(obs, x, time)
    # the same time on every token, given per token, is the same function (float rounding of the matmuls aside)
    per_token = small_policy(obs, x, jnp.broadcast_to(time[:, None], (3, 8)))
    np.testing.assert_allclose(per_token, per_example, atol=2e-5)
    # scalar and [B] times go through the reference's operations: bit-identical to each other
    np.testing.assert_array_equal(small_policy(obs, x, 0.5), small_policy(obs, x, jnp.full((3,), 0.5)))
    # a different time on the first two tokens changes the output (all tokens mix)
    mixed = jnp.where(jnp.arange(8)[None] < 2, 1.0, time[:, None])
    assert not np.allclose(small_policy(obs, x, mixed), per_example, atol=1e-3)
    # the same per-token times given as distinct values and an index (what training-time RTC passes)
    times = TokenTimes(jnp.stack([time, jnp.ones(3)], -1), jnp.broadcast_to(jnp.arange(8) < 2, (3, 8)).astype(int))
    np.testing.assert_allclose(small_policy(obs, x, times), small_policy(obs, x, mixed), atol=2e-5)


def test_training_time_rtc_keeps_the_frozen_prefix_exactly(trained_flag_policy):
    obs = jax.random.normal(jax.random.key(2), (4, 10))
    prev = jax.random.normal(jax.random.key(3), (4, 8, 6))
    noise = methods.candidate_noise(jax.random.key(4), (4, 8, 6), 1)
    for d in (0, 1, 3):
        inputs = methods.MethodInputs(obs, prev, noise, d, 5, 5.0, 5)
        chunk = methods.compare_methods(trained_flag_policy, inputs, ("training_time_rtc",))["training_time_rtc"]
        np.testing.assert_array_equal(chunk[:, :d], np.asarray(prev)[:, :d])
        tracked = methods.track_method(trained_flag_policy, "training_time_rtc", inputs)
        np.testing.assert_array_equal(tracked["action"], chunk)
        np.testing.assert_array_equal(tracked["x_t"][:, :, :d], np.broadcast_to(np.asarray(prev)[:, :d], (5, 4, d, 6)))
        np.testing.assert_array_equal(tracked["x_1_pred"][:, :, :d], tracked["x_t"][:, :, :d])
        assert "correction" not in tracked and "error" not in tracked
        assert not methods.has_correction("training_time_rtc")
    # d = 0: nothing frozen, the per-token time is the step's time everywhere: plain sampling up to rounding
    inputs = methods.MethodInputs(obs, prev, noise, 0, 5, 5.0, 5)
    chunks = methods.compare_methods(trained_flag_policy, inputs, ("naive", "training_time_rtc"))
    np.testing.assert_allclose(chunks["training_time_rtc"], chunks["naive"], atol=1e-4)
    # the suffix differs from plain sampling once a prefix is fed clean
    inputs = methods.MethodInputs(obs, prev, noise, 3, 5, 5.0, 5)
    chunks = methods.compare_methods(trained_flag_policy, inputs, ("naive", "training_time_rtc"))
    assert not np.allclose(chunks["training_time_rtc"][:, 3:], chunks["naive"][:, 3:], atol=1e-3)


def test_the_sampler_feeds_time_one_on_the_prefix_and_the_step_time_elsewhere(trained_flag_policy):
    seen = []

    def velocity(x, t):
        seen.append(t)
        return jnp.zeros_like(x)

    noise = jnp.ones((2, 8, 6))
    action, _ = sampler.training_time_sample(velocity, noise, jnp.zeros((2, 8, 6)), 3, 4)
    (t,) = seen  # traced once inside the scan: two time values per example, token i < 3 takes the second (1)
    assert t.values.shape == (2, 2) and t.index.shape == (2, 8)
    np.testing.assert_array_equal(t.index, np.broadcast_to(np.arange(8) < 3, (2, 8)))
    np.testing.assert_array_equal(action[:, :3], 0.0)
    np.testing.assert_array_equal(action[:, 3:], 1.0)  # zero velocity: the suffix keeps its noise
    network = velocity_fn(*nnx.split(trained_flag_policy), jnp.zeros((2, 10)))
    assert network(noise, jnp.full((2, 8), 0.5)).shape == (2, 8, 6)


def _reference_forward(policy, obs, x_t, time):
    """The model's forward pass as it was before per-token times (one adaLN modulation per example)."""
    batch = x_t.shape[0]
    time = jnp.broadcast_to(jnp.asarray(time, dtype=x_t.dtype), (batch,))
    te = policy.time_mlp(sinusoidal_time_embedding(time, policy.config.channel_dim))
    x = policy.in_proj(jnp.concatenate([x_t, jnp.broadcast_to(obs[:, None], (batch, 8, obs.shape[-1]))], -1))
    for block in policy.mlp_stack:
        s1, b1, g1 = jnp.split(block.adaln_1(te)[:, None], 3, axis=-1)
        s2, b2, g2 = jnp.split(block.adaln_2(te)[:, None], 3, axis=-1)
        y = jnp.swapaxes(block.norm_1(x) * (1 + s1) + b1, 1, 2)
        x = x + g1 * jnp.swapaxes(block.token_mix_out(jax.nn.gelu(block.token_mix_in(y))), 1, 2)
        y = block.norm_2(x) * (1 + s2) + b2
        x = x + g2 * block.channel_mix_out(jax.nn.gelu(block.channel_mix_in(y)))
    scale, shift = jnp.split(policy.final_adaln(te)[:, None], 2, axis=-1)
    return policy.out_proj(policy.final_norm(x) * (1 + scale) + shift)


def test_a_scalar_or_per_example_time_is_bit_identical_to_the_model_before_per_token_times(small_policy):
    obs = jax.random.normal(jax.random.key(9), (3, 10))
    x = jax.random.normal(jax.random.key(10), (3, 8, 6))
    for time in (0.3, jnp.asarray([0.0, 0.4, 0.8])):
        np.testing.assert_array_equal(small_policy(obs, x, time), _reference_forward(small_policy, obs, x, time))


def test_training_time_rtc_refuses_an_untrained_policy_in_one_line(small_policy, trained_flag_policy):
    with pytest.raises(RTCError) as err:
        methods.check_method("training_time_rtc", small_policy, "runs/demo epoch 1 worlds_l_grasp_easy")
    message = str(err.value)
    assert "\n" not in message and "runs/demo epoch 1 worlds_l_grasp_easy" in message
    assert "max_simulated_delay" in message
    obs, prev = jnp.zeros((1, 10)), jnp.zeros((1, 8, 6))
    inputs = methods.MethodInputs(obs, prev, jnp.zeros((1, 1, 8, 6)), 2, 4, 5.0, 5)
    with pytest.raises(RTCError, match="trained without them"):
        methods.compare_methods(small_policy, inputs, ("training_time_rtc",))
    assert "training_time_rtc" not in methods.applicable_methods(small_policy)
    assert "training_time_rtc" in methods.applicable_methods(trained_flag_policy)
    with pytest.raises(SettingsError, match="up to 4"):
        methods.check_method("training_time_rtc", trained_flag_policy, "p", inference_delay=5)


def test_bid_forward_picks_the_candidate_its_definition_says_on_a_hand_checked_case():
    """One batch element, H = 2, A = 1, N = 3, k = 1, weights (1, 0), previous chunk y = (0, 0).

    Strong candidates a1 = (0, 0), a2 = (0.5, 4), a3 = (1, 4); weak samples w1 = (0, 0.2), w2 = w3 = (5, 5).
    Backward B = |a_0 - y_0|: 0, 0.5, 1 (backward only picks a1). A+ = {a1} (smallest B), A- = {w1} (smallest B
    among the weak: 0, 5, 5). D(a, z) = sum_h |a_h - z_h|:
      F(a1) = D(a1, a1) - D(a1, w1) = 0 - 0.2       = -0.2
      F(a2) = D(a2, a1) - D(a2, w1) = 4.5 - 4.3     = 0.2
      F(a3) = D(a3, a1) - D(a3, w1) = 5 - 4.8       = 0.2
    Scores B + F / 3: -0.0667, 0.5667, 1.0667 -> a1. With k = 2: A+ = {a1, a2}, A- = {w1, w2}:
      F(a1) = (0 + 4.5) - (0.2 + 10)               = -5.7
      F(a2) = (4.5 + 0) - (4.3 + 5.5)              = -5.3
      F(a3) = (5 + 0.5) - (4.8 + 5)                = -4.3
    Scores: -1.9, -1.2667, -0.4333 -> a1 again. The second half builds a case where the forward term overrules
    the backward term (worked out inline).
    """
    y = jnp.zeros((1, 2, 1))
    strong = jnp.asarray([[[0.0], [0.0]], [[0.5], [4.0]], [[1.0], [4.0]]])[:, None]  # [3, 1, 2, 1]
    weak = jnp.asarray([[[0.0], [0.2]], [[5.0], [5.0]], [[5.0], [5.0]]])[:, None]
    weights = jnp.asarray([1.0, 0.0])
    scores, forward = methods.bid_forward_scores(strong, weak, y, weights, 1)
    np.testing.assert_allclose(forward[:, 0], [-0.2, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(scores[:, 0], [-0.2 / 3, 0.5 + 0.2 / 3, 1 + 0.2 / 3], atol=1e-6)
    assert int(jnp.argmin(scores[:, 0])) == 0
    scores, forward = methods.bid_forward_scores(strong, weak, y, weights, jnp.int32(2))
    np.testing.assert_allclose(forward[:, 0], [-5.7, -5.3, -4.3], atol=1e-5)
    assert int(jnp.argmin(scores[:, 0])) == 0
    # A weak policy whose likely samples sit on a1 and a2: the contrast pushes the choice to a3 even though a3 is
    # the farthest from the previous chunk. k = 2, weights (0.1, 0): B = 0, 0.05, 0.1.
    weak = jnp.asarray([[[0.0], [0.0]], [[0.5], [4.0]], [[9.0], [9.0]]])[:, None]
    weights = jnp.asarray([0.1, 0.0])
    # A+ = {a1, a2}, A- = {w1 = a1, w2 = a2}: F = 0 for every candidate, so backward decides -> a1
    scores, forward = methods.bid_forward_scores(strong, weak, y, weights, 2)
    np.testing.assert_allclose(forward[:, 0], 0.0, atol=1e-6)
    assert int(jnp.argmin(scores[:, 0])) == 0
    # k = 1: A+ = {a1}, A- = {w1 = a1}: F = 0 again; now make A+ bigger than A- by using the strong set as weak
    # shifted away from a3: w = (a1, a2, a2) and k = 3: A+ = {a1, a2, a3}, A- = {a1, a2, a2}:
    #   F(a1) = (0 + 4.5 + 5) - (0 + 4.5 + 4.5) = 0.5;  F(a2) = (4.5 + 0 + 0.5) - (4.5 + 0 + 0) = 0.5
    #   F(a3) = (5 + 0.5 + 0) - (5 + 0.5 + 0.5) = -0.5
    # scores B + F / 3 = 0 + 0.1667, 0.05 + 0.1667, 0.1 - 0.1667 -> a3
    weak = jnp.stack([strong[0], strong[1], strong[1]])
    scores, forward = methods.bid_forward_scores(strong, weak, y, weights, 3)
    np.testing.assert_allclose(forward[:, 0], [0.5, 0.5, -0.5], atol=1e-5)
    assert int(jnp.argmin(scores[:, 0])) == 2
    assert int(jnp.argmin(methods.bid_distances(strong, y, weights)[:, 0])) == 0  # backward only: a1


def test_bid_forward_in_the_shared_program_matches_its_definition(small_policy):
    weak = random_policy(seed=5)
    obs = jax.random.normal(jax.random.key(6), (2, 10))
    prev = jax.random.normal(jax.random.key(7), (2, 8, 6))
    noise = methods.candidate_noise(jax.random.key(8), (2, 8, 6), 4)
    inputs = methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5, weak_policy=weak, bid_k=2)
    chunk = methods.compare_methods(small_policy, inputs, ("bid_forward",))["bid_forward"]
    strong_samples = jnp.stack([small_policy.action(None, obs, 5, noise=n) for n in noise])
    weak_samples = jnp.stack([weak.action(None, obs, 5, noise=n) for n in noise])
    weights = sampler.get_prefix_weights(2, 4, 8, "exp")
    scores, _ = methods.bid_forward_scores(strong_samples, weak_samples, prev, weights, 2)
    best = np.asarray(jnp.argmin(scores, axis=0))
    np.testing.assert_allclose(chunk, np.asarray(strong_samples)[best, np.arange(2)], atol=1e-5)
    tracked = methods.track_method(small_policy, "bid_forward", inputs)
    np.testing.assert_array_equal(tracked["bid_index"], best)
    # the weak policy is required, and k must fit in N
    with pytest.raises(SettingsError, match="weak policy"):
        methods.compare_methods(small_policy, dataclasses.replace(inputs, weak_policy=None), ("bid_forward",))
    with pytest.raises(SettingsError, match="bid_k=5"):
        methods.compare_methods(small_policy, dataclasses.replace(inputs, bid_k=5), ("bid_forward",))
    # backward-only BID is still there and unchanged by the weak policy
    both = methods.compare_methods(small_policy, inputs, ("bid",))
    backward = np.asarray(jnp.argmin(methods.bid_distances(strong_samples, prev, weights), axis=0))
    np.testing.assert_allclose(both["bid"], np.asarray(strong_samples)[backward, np.arange(2)], atol=1e-5)
