"""The paper's chunked-execution protocol: previous chunks, executed actions, timing rules."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from rtc.errors import SettingsError
from rtc.experiments import protocol
from rtc.experiments.pipeline import RTCSettings, inspect
from rtc.io import levels
from rtc.numerics.sampler import get_prefix_weights
from tests.conftest import random_policy


def test_next_prev_chunk_shifts_and_pads_with_zeros():
    chunk = jnp.arange(2 * 8 * 6, dtype=jnp.float32).reshape(2, 8, 6)
    prev = protocol.next_prev_chunk(chunk, 5)
    np.testing.assert_array_equal(prev[:, :3], chunk[:, 5:])
    np.testing.assert_array_equal(prev[:, 3:], 0)
    np.testing.assert_array_equal(protocol.next_prev_chunk(chunk, 8), 0)


def test_executed_actions_take_the_frozen_part_from_the_previous_chunk():
    prev, new = jnp.zeros((1, 8, 6)), jnp.ones((1, 8, 6))
    executed = protocol.executed_actions(prev, new, 3)
    np.testing.assert_array_equal(executed[0, :3], 0)
    np.testing.assert_array_equal(executed[0, 3:], 1)


@pytest.mark.parametrize(
    ("d", "s", "message"),
    [
        (9, 9, "inference delay d=9 is out of range; accepted: 0..8"),
        (3, 2, "execute horizon s=2 is out of range; accepted: max\\(1, d\\)=3..8"),
        (0, 0, "execute horizon s=0 is out of range"),
        (2, 9, "execute horizon s=9"),
    ],
)
def test_refused_timings_name_the_value(d, s, message):
    with pytest.raises(ValueError, match=message):
        protocol.validate_timing(d, s, 8)


def test_documented_defaults_are_accepted_with_a_warning():
    (warning,) = protocol.validate_timing(3, 6, 8)
    assert "prefix horizon H - s = 2 is shorter than the delay d=3" in warning
    assert protocol.validate_timing(2, 5, 8) == []
    assert protocol.validate_timing(0, 8, 8) == []


@pytest.mark.slow  # steps Kinetix through the protocol: over 5 s of the fast set's time (--durations)
def test_inspection_follows_the_protocol(shared_worlds):
    policy = random_policy(obs_dim=levels.OBS_DIM, seed=4)
    level = levels.load_level(shared_worlds / "grasp_easy.json")
    settings = RTCSettings(
        num_flow_steps=5, inference_delay=2, execute_horizon=5, batch_size=3, seed=1, situation="protocol"
    )
    result = inspect(policy, level, settings)
    prev = result.tracked["prev_action_chunk"]
    np.testing.assert_array_equal(prev[:, :3], np.broadcast_to(result.first_chunk[:, 5:], (3, 3, 6)))
    np.testing.assert_array_equal(prev[:, 3:], 0)
    assert int(result.tracked["prefix_attention_horizon"]) == 3
    # the observation is the one after executing the first chunk's 5 actions
    reset_obs, state = levels.reset(level)
    obs, _ = protocol.advance(level, state, result.first_chunk[0], 5)
    np.testing.assert_allclose(result.obs, np.broadcast_to(obs, (3, obs.shape[-1])), atol=1e-6)
    assert not np.allclose(result.obs[0], reset_obs)
    # RTC and plain share their starting noise
    np.testing.assert_array_equal(result.tracked["x_t"][0], result.plain["x_t"][0])
    assert result.warnings == ()
    summary = result.summary
    assert summary["weighted_prefix_error_rtc"] < summary["weighted_prefix_error_plain"]
    np.testing.assert_array_equal(result.last_executed_action, np.broadcast_to(result.first_chunk[:, 4], (3, 6)))
    # a later block: the previous chunk holds H - s planned actions, and the chunk runs d <= i < s
    assert int(result.tracked["prev_valid"]) == 3 and int(result.tracked["execute_horizon"]) == 5
    assert "zero-padded" in result.situation_label


def test_same_observation_situation_is_the_papers_first_block(shared_worlds):
    """The previous chunk is the plain first chunk at the same observation, unshifted and unpadded (prev_valid = H),
    with the RTC call's prefix weights those of section 3 (d, p = H - s) and nothing executed before it."""
    policy = random_policy(obs_dim=levels.OBS_DIM, seed=4)
    level = levels.load_level(shared_worlds / "grasp_easy.json")
    result = inspect(policy, level, RTCSettings(num_flow_steps=5, batch_size=2, seed=1))
    assert result.settings.situation == "same-observation"
    assert (result.settings.inference_delay, result.settings.execute_horizon) == protocol.default_timing(8) == (2, 4)
    reset_obs, _ = levels.reset(level)
    np.testing.assert_array_equal(result.obs, np.broadcast_to(reset_obs, result.obs.shape))
    prev = result.tracked["prev_action_chunk"]
    np.testing.assert_array_equal(prev, np.broadcast_to(result.first_chunk, (2, 8, 6)))  # unshifted, no padding
    assert np.all(np.abs(prev[:, 4:]) > 0)
    assert int(result.tracked["prev_valid"]) == 8 and int(result.tracked["execute_horizon"]) == 4
    assert int(result.tracked["prefix_attention_horizon"]) == 4
    np.testing.assert_allclose(result.tracked["prefix_weights"], get_prefix_weights(2, 4, 8, "exp"))
    assert result.last_executed_action is None  # nothing ran before the first block
    # the previous chunk comes from another seed than the new chunk's noise
    assert not np.allclose(result.first_chunk[0], result.plain["action"][0])
    assert "first block" in result.situation_label and "unshifted" in result.situation_label
    summary = result.summary
    # the jump at d is against prev[d - 1], a planned action of the first chunk
    np.testing.assert_allclose(
        summary["boundary_jump_rtc"], np.linalg.norm(result.tracked["action"][:, 2] - prev[:, 1], axis=-1).mean()
    )
    arrays = result.arrays()
    np.testing.assert_array_equal(arrays["rtc/prev_action_chunk"], np.broadcast_to(arrays["first_chunk"], (2, 8, 6)))
    assert int(arrays["rtc/prev_valid"]) == 8 and "rtc/last_executed" not in arrays


def test_situation_prev_valid():
    assert protocol.situation_prev_valid("same-observation", 4, 8) == 8
    assert protocol.situation_prev_valid("protocol", 4, 8) == 4
    with pytest.raises(SettingsError, match="situation='x'"):
        protocol.situation_prev_valid("x", 4, 8)


@pytest.mark.parametrize("horizon", [1, 2, 3, 4, 8, 10, 16, 50])
def test_default_timing_is_inside_the_paper_range_and_separates_the_schedules(horizon):
    d, s = protocol.default_timing(horizon)
    assert protocol.validate_timing(d, s, horizon) == []
    assert max(1, d) <= s <= horizon - d
    if horizon >= 3:  # room for a decaying part between d and H - s
        weights = {
            name: np.asarray(get_prefix_weights(d, horizon - s, horizon, name)) for name in ("exp", "linear", "ones")
        }
        assert not np.allclose(weights["exp"], weights["linear"])
        assert not np.allclose(weights["linear"], weights["ones"])


def test_unknown_situation_is_refused():
    with pytest.raises(SettingsError, match="situation='x' is not accepted; choose one of same-observation, protocol"):
        RTCSettings(situation="x").validate(8)


@pytest.mark.slow  # steps Kinetix through the protocol: over 5 s of the fast set's time (--durations)
def test_inspection_refuses_a_policy_of_another_observation_size(shared_worlds):
    level = levels.load_level(shared_worlds / "grasp_easy.json")
    with pytest.raises(levels.LevelError, match="expects observations of 10 floats"):
        inspect(random_policy(obs_dim=10), level, RTCSettings(num_flow_steps=2))
