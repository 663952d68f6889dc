"""Many seeds in one batched call, and percentile bands."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rtc.numerics import seeds
from rtc.numerics.sampler import GuidanceSettings

SEEDS = (0, 3, 11, 42)


@pytest.fixture(scope="module")
def batch(small_policy):
    obs = jax.random.normal(jax.random.key(1), (10,))
    prev = jax.random.normal(jax.random.key(2), (8, 6))
    settings = GuidanceSettings.create(2, 5, "exp", 5.0, chunk_size=8)
    return obs, prev, settings, seeds.seed_batch(small_policy, obs, prev, settings, SEEDS, 6)


def test_seed_noise_is_the_policy_noise_of_each_seed(small_policy):
    noise = seeds.seed_noise(SEEDS, 8, 6)
    for row, seed in zip(noise, SEEDS, strict=True):
        np.testing.assert_array_equal(row, small_policy.initial_noise(jax.random.key(seed), 1)[0])


def test_seed_batch_row_equals_a_single_call(small_policy, batch):
    obs, prev, _, result = batch
    assert result["rtc"]["x_t"].shape == (6, len(SEEDS), 8, 6)
    for k in (1, 3):
        _, single = small_policy.realtime_action(
            jax.random.key(SEEDS[k]), obs[None], 6, prev[None], 2, 5, "exp", 5.0, return_tracking=True
        )
        for key in ("x_t", "v_t", "error", "correction"):
            np.testing.assert_allclose(result["rtc"][key][:, k], np.asarray(single[key])[:, 0], rtol=1e-4, atol=1e-4)
        _, plain = small_policy.action(jax.random.key(SEEDS[k]), obs[None], 6, return_tracking=True)
        np.testing.assert_allclose(result["naive"]["action"][k], np.asarray(plain["action"])[0], rtol=1e-4, atol=1e-4)
    # same noise for both methods
    np.testing.assert_array_equal(result["rtc"]["x_t"][0], result["naive"]["x_t"][0])


def test_bands_are_percentiles():
    values = np.random.default_rng(0).normal(size=(9, 5, 3))
    median, q25, q75 = seeds.bands(values)
    np.testing.assert_array_equal(median, np.percentile(values, 50, axis=0))
    np.testing.assert_array_equal(q25, np.percentile(values, 25, axis=0))
    np.testing.assert_array_equal(q75, np.percentile(values, 75, axis=0))
    assert np.all(q25 <= median) and np.all(median <= q75)


def test_band_series_error_is_the_tracked_error_norm(batch):
    _, _, _, result = batch
    series = seeds.band_series(result, horizon_idx=1, action_dim_idx=2)
    rtc_error = np.asarray(result["rtc"]["error"])
    expected = np.sqrt((rtc_error**2).sum((2, 3))).T  # [seeds, steps]
    np.testing.assert_allclose(series["rtc"]["error"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(series["naive"]["x_t"], result["naive"]["x_t"][:, :, 1, 2].T)
    assert series["rtc"]["error"][:, -1].mean() < series["naive"]["error"][:, -1].mean()


def test_guidance_effects_over_seeds_on_the_demo_policy():
    """The paper's first block on the demo policy: one estimator (metrics.guidance_effect) over the seeds, its cost,
    and the jump at d against the first chunk's planned action prev[d - 1]."""
    import jax

    from rtc.experiments import protocol
    from rtc.io import levels
    from rtc.io.checkpoints import load_policy, read_run
    from rtc.numerics import metrics, seeds
    from rtc.numerics.sampler import GuidanceSettings
    from tests.conftest import DEMO_RUN

    policy = load_policy(read_run(DEMO_RUN).checkpoint(-1, "worlds_l_grasp_easy"))
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    situation = protocol.make_situation("same-observation", policy, level, 10, 4, jax.random.key(7))
    guidance = GuidanceSettings.create(2, 4, "exp", 5.0, 8)
    result = seeds.seed_batch(
        policy, situation.obs, situation.prev_action_chunk, guidance, list(range(48)), 10, prev_valid=8
    )
    effects = seeds.guidance_effects(result)
    assert effects["seeds"] == 48 and effects["effect"].samples.shape == (48,) and effects["effect"].n == 48
    prev, weights = result["rtc"]["prev_action_chunk"], result["rtc"]["prefix_weights"]
    expected = 1 - metrics.weighted_prefix_error(result["rtc"]["action"], prev, weights) / (
        metrics.weighted_prefix_error(result["naive"]["action"], prev, weights)
    )
    np.testing.assert_allclose(effects["effect"].samples, expected, rtol=1e-4, atol=1e-6)  # float64 ratio
    assert effects["effect"].median == pytest.approx(float(np.median(expected)), rel=1e-4)
    assert effects["effect"].low <= effects["effect"].median <= effects["effect"].high
    assert effects["effect"].median > 0.3
    cost = metrics.guidance_cost(result["rtc"]["action"], result["naive"]["action"], 2)
    np.testing.assert_allclose(effects["cost"].samples, cost.samples)
    # unshifted previous chunk (prev_valid = H): the jump at d = 2 is defined, against prev[1]
    jump = np.linalg.norm(result["rtc"]["action"][:, 2] - prev[:, 1], axis=-1)
    np.testing.assert_allclose(effects["jump_rtc"], jump, rtol=1e-6)


def test_guidance_effects_include_jacobian_free_runs_when_asked(small_policy):
    from rtc.numerics import metrics

    guidance = GuidanceSettings.create(2, 4, "exp", 5.0, 8)
    obs, prev = np.linspace(-1, 1, 10, dtype=np.float32), np.full((8, 6), 0.5, np.float32)
    result = seeds.seed_batch(small_policy, obs, prev, guidance, list(range(6)), 4, jacobian_free=True)
    assert set(result) == {"rtc", "naive", seeds.JACOBIAN_FREE}
    free = result[seeds.JACOBIAN_FREE]
    np.testing.assert_array_equal(free["correction"], free["error"])
    np.testing.assert_array_equal(free["x_t"][0], result["rtc"]["x_t"][0])  # same noise per seed
    effects = seeds.guidance_effects(result)
    assert effects["names"] == ("plain", "rtc", seeds.JACOBIAN_FREE)
    weights = result["rtc"]["prefix_weights"]
    expected = 1 - metrics.weighted_prefix_error(free["action"], prev[None], weights) / (
        metrics.weighted_prefix_error(result["naive"]["action"], prev[None], weights)
    )
    np.testing.assert_allclose(effects[f"effect_{seeds.JACOBIAN_FREE}"].samples, expected, rtol=1e-4, atol=1e-6)
    assert effects[f"cost_{seeds.JACOBIAN_FREE}"].n == 6
    assert effects[f"jump_{seeds.JACOBIAN_FREE}"].shape == (6,)
    assert "names" in seeds.guidance_effects({k: result[k] for k in ("rtc", "naive")})
    assert f"effect_{seeds.JACOBIAN_FREE}" not in seeds.guidance_effects({k: result[k] for k in ("rtc", "naive")})
    membership = seeds.behaviour_membership(result)
    assert membership["reason"] is not None  # 6 seeds are too few to find behaviours: no share
    assert not any(key.startswith("stay_") for key in membership)


def test_seed_batch_records_the_previous_chunks_planned_actions(small_policy):
    guidance = GuidanceSettings.create(2, 4, "exp", 5.0, 8)
    obs, prev = np.linspace(-1, 1, 10, dtype=np.float32), np.full((8, 6), 0.5, np.float32)
    result = seeds.seed_batch(small_policy, obs, prev, guidance, list(range(6)), 4, prev_valid=8)
    assert int(result["rtc"]["prev_valid"]) == 8 and "prev_valid" not in result["naive"]
