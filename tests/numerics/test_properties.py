"""Property-based tests (hypothesis): prefix-weight invariants, finite RTC tracking, sampler equivalences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rtc.experiments import protocol
from rtc.numerics.model import FlowPolicy
from rtc.numerics.sampler import SCHEDULES, get_prefix_weights

CHUNK = 8  # the chunk size H of tests.conftest.SMALL_CONFIG
BATCH = 2

# Every distinct number of flow steps compiles the sampler once (about a second here), so half of
# the draws come from a few recurring values; the other half still range over all of 1..100.
FLOW_STEPS = st.one_of(st.sampled_from([1, 2, 10, 100]), st.integers(1, 100))
MAX_WEIGHTS = st.floats(0.0, 100.0, allow_nan=False, allow_infinity=False)
SEEDS = st.integers(0, 2**16)

# Compiles, not examples, dominate the sampler tests' time; no deadline, as the first call compiles.
WEIGHT_SETTINGS = settings(max_examples=200, deadline=None)
SAMPLER_SETTINGS = settings(max_examples=20, deadline=None)
EQUIVALENCE_SETTINGS = settings(max_examples=8, deadline=None)


@st.composite
def prefix_bounds(draw: st.DrawFn) -> tuple[int, int, int]:
    """``(start, end, total)`` with ``total`` in 1..64 and bounds reaching past both ends of the chunk."""
    total = draw(st.integers(1, 64))
    end = draw(st.integers(-2, total + 4))
    start = draw(st.integers(-total, total + 8))
    return start, end, total


@st.composite
def timings(draw: st.DrawFn) -> tuple[int, int]:
    """``(d, s)``: an inference delay and an execute horizon with ``0 <= d <= s <= H``."""
    execute_horizon = draw(st.integers(0, CHUNK))
    return draw(st.integers(0, execute_horizon)), execute_horizon


# ------------------------------------------------------------------------------------------------
# Prefix weights

_traced_prefix_weights = jax.jit(get_prefix_weights, static_argnums=2)


def _prefix_weights(start: int, end: int, total: int, schedule: str) -> np.ndarray:
    """The weights as the sampler computes them: bounds and schedule traced, one compile per ``total``."""
    return np.asarray(_traced_prefix_weights(start, end, total, SCHEDULES.index(schedule)))


@WEIGHT_SETTINGS
@given(bounds=prefix_bounds(), schedule=st.sampled_from(SCHEDULES))
def test_prefix_weights_lie_in_the_unit_interval(bounds: tuple[int, int, int], schedule: str) -> None:
    weights = _prefix_weights(*bounds, schedule)
    assert weights.shape == (bounds[2],)
    assert np.all((weights >= 0) & (weights <= 1)), weights


@WEIGHT_SETTINGS
@given(bounds=prefix_bounds(), schedule=st.sampled_from(["linear", "exp"]))
def test_decaying_prefix_weights_never_increase(bounds: tuple[int, int, int], schedule: str) -> None:
    weights = _prefix_weights(*bounds, schedule)
    assert np.all(np.diff(weights) <= 0), weights


@WEIGHT_SETTINGS
@given(bounds=prefix_bounds(), schedule=st.sampled_from(SCHEDULES))
def test_prefix_weights_vanish_from_the_end_on(bounds: tuple[int, int, int], schedule: str) -> None:
    _, end, _ = bounds
    weights = _prefix_weights(*bounds, schedule)
    assert np.all(weights[max(end, 0) :] == 0), weights


@WEIGHT_SETTINGS
@given(bounds=prefix_bounds(), schedule=st.sampled_from(SCHEDULES))
def test_start_past_the_end_is_clamped_to_the_end(bounds: tuple[int, int, int], schedule: str) -> None:
    start, end, total = bounds
    clamped = _prefix_weights(min(start, end), end, total, schedule)
    np.testing.assert_array_equal(_prefix_weights(start, end, total, schedule), clamped)


@WEIGHT_SETTINGS
@given(bounds=prefix_bounds(), schedule=st.sampled_from(SCHEDULES))
def test_frozen_actions_get_full_weight(bounds: tuple[int, int, int], schedule: str) -> None:
    """Indices before ``min(start, end)`` are frozen: weight 1 for every schedule."""
    start, end, _ = bounds
    weights = _prefix_weights(*bounds, schedule)
    np.testing.assert_allclose(weights[: max(min(start, end), 0)], 1.0, atol=1e-6)


@WEIGHT_SETTINGS
@given(bounds=prefix_bounds(), schedule=st.sampled_from(["linear", "exp", "ones"]))
def test_soft_schedules_guide_the_whole_prefix(bounds: tuple[int, int, int], schedule: str) -> None:
    """Every index before ``end`` keeps a positive weight unless the schedule is ``zeros``."""
    _, end, _ = bounds
    weights = _prefix_weights(*bounds, schedule)
    assert np.all(weights[: max(end, 0)] > 0), weights


@WEIGHT_SETTINGS
@given(bounds=prefix_bounds())
def test_hard_mask_is_the_indicator_of_the_frozen_part(bounds: tuple[int, int, int]) -> None:
    start, end, total = bounds
    expected = (np.arange(total) < min(start, end)).astype(np.float32)
    np.testing.assert_array_equal(_prefix_weights(start, end, total, "zeros"), expected)


# ------------------------------------------------------------------------------------------------
# Sampling with the small policy


@pytest.fixture(scope="module")
def policy(small_policy: FlowPolicy) -> FlowPolicy:
    assert small_policy.action_chunk_size == CHUNK
    return small_policy


def _inputs(policy: FlowPolicy, seed: int, execute_horizon: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Observations, starting noise and a previous chunk zero-padded after ``H - s`` as the protocol forms it."""
    obs_key, noise_key, chunk_key = jax.random.split(jax.random.key(seed), 3)
    obs = jax.random.normal(obs_key, (BATCH, policy.obs_dim))
    noise = policy.initial_noise(noise_key, BATCH)
    prev = protocol.next_prev_chunk(jax.random.normal(chunk_key, noise.shape), execute_horizon)
    return obs, noise, prev


def _realtime(
    policy: FlowPolicy,
    seed: int,
    num_steps: int,
    timing: tuple[int, int],
    schedule: str,
    max_guidance_weight: float,
    track: bool,
) -> tuple[Any, Callable[[], jax.Array]]:
    """RTC sampling as the pipeline calls it (prefix horizon ``H - s``), plus the plain sample from the same noise."""
    delay, execute_horizon = timing
    obs, noise, prev = _inputs(policy, seed, execute_horizon)
    horizon = protocol.prefix_attention_horizon(execute_horizon, CHUNK)
    result = policy.realtime_action(
        None, obs, num_steps, prev, delay, horizon, schedule, max_guidance_weight, track, noise=noise
    )
    return result, lambda: policy.action(None, obs, num_steps, noise=noise)


def _assert_same_chunk(actual: jax.Array, expected: jax.Array) -> None:
    """Equal up to float32 rounding at the chunk's scale.

    RTC evaluates the network inside ``jax.vjp``, a different XLA program from plain sampling, so
    the velocities differ by an ulp or two even when the guidance term is exactly zero.
    """
    scale = max(1.0, float(np.abs(np.asarray(expected)).max()))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6 * scale)


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
@SAMPLER_SETTINGS
@given(timing=timings(), num_steps=FLOW_STEPS, max_guidance_weight=MAX_WEIGHTS, seed=SEEDS)
@example(timing=(0, 0), num_steps=1, max_guidance_weight=100.0, seed=0)
@example(timing=(0, 0), num_steps=100, max_guidance_weight=100.0, seed=0)
@example(timing=(CHUNK, CHUNK), num_steps=2, max_guidance_weight=0.0, seed=1)
def test_every_tracked_array_is_finite(
    policy: FlowPolicy, timing: tuple[int, int], num_steps: int, max_guidance_weight: float, seed: int
) -> None:
    """No NaN or infinity anywhere, for each schedule (a traced setting, so the loop costs no compile)."""
    for schedule in SCHEDULES:
        (action, tracked), _ = _realtime(policy, seed, num_steps, timing, schedule, max_guidance_weight, True)
        assert {"x_t", "v_t", "correction", "error", "applied", "guidance_weight", "prefix_weights"} <= set(tracked)
        assert np.all(np.isfinite(action)), schedule
        for key, value in tracked.items():
            assert np.all(np.isfinite(np.asarray(value))), f"{key} holds NaN or infinity ({schedule})"


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
@EQUIVALENCE_SETTINGS
@given(schedule=st.sampled_from(SCHEDULES), timing=timings(), num_steps=FLOW_STEPS, seed=SEEDS)
def test_zero_guidance_weight_is_plain_sampling(
    policy: FlowPolicy, schedule: str, timing: tuple[int, int], num_steps: int, seed: int
) -> None:
    (action, tracked), plain = _realtime(policy, seed, num_steps, timing, schedule, 0.0, True)
    assert np.all(np.asarray(tracked["guidance_weight"]) == 0)
    assert np.all(np.asarray(tracked["applied"]) == 0)
    _assert_same_chunk(action, plain())


# All prefix weights vanish with the hard mask and no delay, or with no prefix horizon (s = H).
UNGUIDED = st.one_of(
    st.tuples(st.just("zeros"), st.integers(0, CHUNK).map(lambda s: (0, s))),
    st.tuples(st.sampled_from(SCHEDULES), st.integers(0, CHUNK).map(lambda d: (d, CHUNK))),
)


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
@EQUIVALENCE_SETTINGS
@given(case=UNGUIDED, num_steps=FLOW_STEPS, max_guidance_weight=MAX_WEIGHTS, seed=SEEDS)
def test_all_zero_prefix_weights_give_plain_sampling(
    policy: FlowPolicy, case: tuple[str, tuple[int, int]], num_steps: int, max_guidance_weight: float, seed: int
) -> None:
    schedule, timing = case
    (action, tracked), plain = _realtime(policy, seed, num_steps, timing, schedule, max_guidance_weight, True)
    assert np.all(np.asarray(tracked["prefix_weights"]) == 0)
    assert np.all(np.asarray(tracked["correction"]) == 0)
    assert np.all(np.asarray(tracked["applied"]) == 0)
    _assert_same_chunk(action, plain())


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
@EQUIVALENCE_SETTINGS
@given(timing=timings(), num_steps=FLOW_STEPS, max_guidance_weight=MAX_WEIGHTS, seed=SEEDS)
def test_tracking_does_not_change_the_action(
    policy: FlowPolicy, timing: tuple[int, int], num_steps: int, max_guidance_weight: float, seed: int
) -> None:
    for schedule in SCHEDULES:
        (tracked_action, tracked), _ = _realtime(policy, seed, num_steps, timing, schedule, max_guidance_weight, True)
        bare, _ = _realtime(policy, seed, num_steps, timing, schedule, max_guidance_weight, False)
        np.testing.assert_array_equal(bare, tracked_action, err_msg=schedule)
        np.testing.assert_array_equal(tracked["action"], tracked_action, err_msg=schedule)
