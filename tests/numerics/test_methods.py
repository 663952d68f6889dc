"""Method comparison on identical noise: naive, RTC schedules, hard masking, BID."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtc.io import levels
from rtc.io.checkpoints import load_policy, read_run
from rtc.numerics import methods, metrics
from rtc.training import demo
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
    chunks = methods.compare_methods(
        small_policy, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5), methods=("naive", "bid")
    )
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
    details = methods.bid_details(small_policy, methods.MethodInputs(obs, jnp.asarray(prev), noise, d, p, 0.0, 5))
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
    chunks = methods.compare_methods(small_policy, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5))
    assert list(chunks) == list(methods.applicable_methods(small_policy))
    # the methods this policy cannot run (not trained with simulated delays, no weak policy) are left out
    assert set(methods.METHODS) - set(chunks) == {"training_time_rtc", "bid_forward"}
    for method, schedule, free in [
        ("rtc_exp", "exp", False),
        ("rtc_linear", "linear", False),
        ("rtc_ones", "ones", False),
        ("hard_masking", "zeros", False),
        ("rtc_exp_jacobian_free", "exp", True),
        ("rtc_linear_jacobian_free", "linear", True),
        ("rtc_ones_jacobian_free", "ones", True),
    ]:
        assert methods.method_schedule(method) == schedule and methods.is_jacobian_free(method) == free
        expected = small_policy.realtime_action(
            None, obs, 5, prev, 2, 4, schedule, 5.0, noise=noise[0], jacobian_free=free
        )
        np.testing.assert_array_equal(chunks[method], np.asarray(expected), err_msg=method)
    # with no guidance every method is the plain sample from the shared noise (up to float rounding: the
    # guided sampler evaluates the velocity inside a VJP)
    guided = [m for m in methods.applicable_methods(small_policy) if m not in ("naive", "bid")]
    unguided = methods.compare_methods(
        small_policy, methods.MethodInputs(obs, prev, noise, 2, 4, 0.0, 5), methods=guided
    )
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
    chunks = methods.compare_methods(
        policy, methods.MethodInputs(obs, prev, noise, d, 5, 20.0, 10), methods=("naive", "hard_masking")
    )
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
    # the guidance effect and cost against naive: metrics' one estimator, per sample then the median
    error = {m: (np.sqrt(((c - prev) ** 2).sum(-1)) * weights).sum(-1) for m, c in chunks.items()}
    effect = metrics.guidance_effect(error["rtc_exp"], error["naive"])
    assert rows["rtc_exp"]["guidance_effect"] == pytest.approx(effect.median)
    assert rows["rtc_exp"]["guidance_effect_n"] == len(prev)
    cost = np.sqrt(((chunks["rtc_exp"] - chunks["naive"])[:, d:] ** 2).sum(-1)).mean(-1)
    assert rows["rtc_exp"]["guidance_cost"] == pytest.approx(float(np.median(cost)))
    assert rows["naive"]["guidance_effect"] == 0.0 and rows["naive"]["guidance_cost"] == 0.0
    # the first block: an unshifted previous chunk (prev_valid = H) makes the jump at d = 6 > p defined
    first = {row["method"]: row for row in methods.comparison_table(chunks, prev, 6, p, prev_valid=8)}
    jump = np.sqrt(((chunks["naive"][:, 6] - prev[:, 5]) ** 2).sum(-1)).mean()
    assert first["naive"]["boundary_jump"] == pytest.approx(jump, rel=1e-5)
    later = {row["method"]: row for row in methods.comparison_table(chunks, prev, 6, p)}  # prev_valid = p = 5
    assert np.isnan(later["naive"]["boundary_jump"])  # prev[5] is zero padding there


def test_track_method_reproduces_the_compared_chunks(small_policy, inputs):
    obs, prev = inputs
    noise = methods.candidate_noise(jax.random.key(6), (3, 8, 6), 3)
    chunks = methods.compare_methods(small_policy, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5))
    for method in ("naive", "hard_masking", "bid", "rtc_ones_jacobian_free"):
        tracked = methods.track_method(small_policy, method, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5))
        np.testing.assert_allclose(tracked["action"], chunks[method], atol=1e-4, err_msg=method)
        assert tracked["x_t"].shape == (5, 3, 8, 6)
    assert "correction" in methods.track_method(
        small_policy, "rtc_linear", methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5)
    )
    assert methods.track_method(small_policy, "bid", methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 5))[
        "bid_distances"
    ].shape == (3, 3)


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="'rtc_cosine' is not one of naive, rtc_exp"):
        methods.method_index("rtc_cosine")
    with pytest.raises(ValueError, match="out of range"):
        methods.method_index(len(methods.METHODS))
    assert methods.method_schedule("hard_masking") == "zeros"


# ------------------------------------------------------------------------------------------------
# RTC without the Jacobian (issue 14)


@pytest.fixture(scope="module")
def demo_situation():
    """The demo policy at grasp_easy's reset observation, the previous chunk a plain sample from it (batch 8)."""
    policy = demo_policy()
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    obs, _ = levels.reset(level)
    batch = 8
    obs = jnp.broadcast_to(obs, (batch, obs.shape[0]))
    prev = policy.action(jax.random.key(0), obs, 10)
    noise = methods.candidate_noise(jax.random.key(1), (batch, 8, policy.action_dim), 2)
    return policy, obs, prev, noise


def test_jacobian_free_differs_from_rtc_on_the_demo_policy(demo_situation):
    policy, obs, prev, noise = demo_situation
    chosen = ("naive", "rtc_exp", "rtc_exp_jacobian_free")
    chunks = methods.compare_methods(policy, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 10), methods=chosen)
    tracked = {
        m: methods.track_method(policy, m, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 10)) for m in chosen[1:]
    }
    free, rtc = tracked["rtc_exp_jacobian_free"], tracked["rtc_exp"]
    np.testing.assert_array_equal(free["correction"], free["error"])
    np.testing.assert_allclose(free["action"], chunks["rtc_exp_jacobian_free"], atol=1e-5)
    # the trained network's denoiser Jacobian is not the identity: RTC's VJP is not its error ...
    step = 1
    gap = np.linalg.norm(rtc["correction"][step] - rtc["error"][step]) / np.linalg.norm(rtc["error"][step])
    assert gap > 0.05, gap
    # ... so the chunks differ, by more than float noise, on the guided part
    difference = np.abs(chunks["rtc_exp"] - chunks["rtc_exp_jacobian_free"])[:, :4].max()
    assert difference > 1e-2, difference
    # both still pull the frozen part towards the previous chunk compared with plain sampling
    table = {row["method"]: row for row in methods.comparison_table(chunks, np.asarray(prev), 2, 4)}
    assert table["rtc_exp_jacobian_free"]["weighted_prefix_error"] < table["naive"]["weighted_prefix_error"]
    assert table["rtc_exp"]["distance_to_rtc"] == 0.0
    expected = np.linalg.norm((chunks["rtc_exp_jacobian_free"] - chunks["rtc_exp"]).reshape(8, -1), axis=-1).mean()
    assert table["rtc_exp_jacobian_free"]["distance_to_rtc"] == pytest.approx(expected, rel=1e-5)
    assert np.isnan(table["naive"]["seconds_per_chunk"])  # no timings given


def test_time_methods_times_each_method_on_the_shared_program(demo_situation):
    policy, obs, prev, noise = demo_situation
    chosen = ("rtc_exp", "rtc_exp_jacobian_free", "naive")
    seconds = methods.time_methods(policy, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 10), chosen, repeats=3)
    assert list(seconds) == list(chosen)
    assert all(0 < value < 30 for value in seconds.values()), seconds
    rows = methods.comparison_table(
        methods.compare_methods(policy, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 10), chosen),
        np.asarray(prev),
        2,
        4,
        seconds_per_chunk=seconds,
    )
    assert [row["seconds_per_chunk"] for row in rows] == [seconds[m] for m in chosen]
    with pytest.raises(ValueError, match="repeats=0"):
        methods.time_methods(policy, methods.MethodInputs(obs, prev, noise, 2, 4, 5.0, 10), chosen, repeats=0)


@pytest.mark.slow  # runs a closed-loop rollout or steps Kinetix: over 10 s of the fast set's time (--durations)
def test_jacobian_free_in_closed_loop_rollouts_and_sweeps():
    """The variant runs in the shared rollout program (traced method index) and as sweep points; a recorded
    chunk re-sampled with tracking reproduces the rollout's chunk and has correction == error."""
    from rtc.experiments import rollout, sweep
    from tests.experiments.test_rollout import BASE, demo_setup

    policy, level = demo_setup()
    settings = dataclasses.replace(
        BASE, method="rtc_exp_jacobian_free", inference_delay=2, execute_horizon=3, episode_steps=32
    )
    result = rollout.run_rollout(policy, level, settings, record=True)
    rtc = rollout.run_rollout(policy, level, dataclasses.replace(settings, method="rtc_exp"), record=True)
    np.testing.assert_array_equal(result.first_chunk, rtc.first_chunk)  # same seeds, same first chunk
    assert not np.allclose(result.chunks[:, 0], rtc.chunks[:, 0], atol=1e-3)  # block 0: same inputs, other guidance
    tracked = rollout.chunk_inspection(policy, result, 1, 2)
    np.testing.assert_array_equal(tracked["correction"], tracked["error"])
    np.testing.assert_allclose(tracked["action"][0], result.chunks[1, 2], atol=1e-4)
    inspection = rollout.chunk_as_inspection(policy, result, 1, 2, tracked)
    assert inspection.settings.prefix_attention_schedule == "exp"

    chosen = sweep.SweepSettings(
        methods=("rtc_exp_jacobian_free",),
        delays=(2,),
        execute_horizon_rule="min",
        template=rollout.RolloutSettings(num_episodes=4, episode_steps=32, segment_steps=16, bid_samples=4),
    )
    (row,) = sweep.sweep(policy, level, chosen)
    direct = rollout.run_rollout(policy, level, chosen.points(8)[0], record=False).summary()
    assert row["method"] == "rtc_exp_jacobian_free" and row["episodes"] == 4
    assert row["solve_rate"] == pytest.approx(direct["solve_rate"])
    assert row["mean_boundary_jump"] == pytest.approx(direct["mean_boundary_jump"], rel=1e-6)
