"""The RTC sampler: prefix weights, guidance weights, tracking contract, same-noise comparisons, compiles."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rtc.numerics import model as model_module
from rtc.numerics.model import FlowPolicy, get_prefix_weights
from rtc.numerics.sampler import (
    SCHEDULES,
    GuidanceSettings,
    flow_times,
    guidance_weight,
    naive_sample,
    realtime_sample,
    unclipped_guidance_weight,
)

TRACKED_KEYS = ("x_t", "v_t", "correction", "error", "x_1_pred")


@pytest.mark.parametrize(
    ("start", "end", "total", "schedule", "expected"),
    [
        (2, 6, 10, "linear", [1, 1, 0.8, 0.6, 0.4, 0.2, 0, 0, 0, 0]),
        (1, 4, 8, "exp", [1, 0.488, 0.189, 0.041, 0, 0, 0, 0]),
        (2, 6, 10, "ones", [1, 1, 1, 1, 1, 1, 0, 0, 0, 0]),
        (2, 6, 10, "zeros", [1, 1, 0, 0, 0, 0, 0, 0, 0, 0]),
        (5, 3, 8, "zeros", [1, 1, 1, 0, 0, 0, 0, 0]),  # start clamped to end
        (5, 3, 8, "linear", [1, 1, 1, 0, 0, 0, 0, 0]),
        (0, 0, 8, "exp", [0] * 8),
    ],
)
def test_prefix_weights_match_reference_examples(start, end, total, schedule, expected):
    np.testing.assert_allclose(get_prefix_weights(start, end, total, schedule), expected, atol=1e-3)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_prefix_weights_accept_traced_schedule_and_bounds(schedule):
    traced = jax.jit(get_prefix_weights, static_argnums=2)(jnp.int32(2), jnp.int32(6), 8, SCHEDULES.index(schedule))
    np.testing.assert_allclose(traced, get_prefix_weights(2, 6, 8, schedule), atol=1e-6)


def test_unknown_schedule_is_refused_with_the_accepted_names():
    with pytest.raises(ValueError, match="cosine.*exp, linear, ones, zeros"):
        get_prefix_weights(1, 4, 8, "cosine")


@pytest.mark.parametrize(
    ("num_steps", "w_max", "expected"),
    [
        (5, 5.0, [5, 4.25, 2.1667, 2.1667, 4.25]),
        (10, 10.0, [10, 9.111, 4.25, 2.7619, 2.1667, 2.0, 2.1667, 2.7619, 4.25, 9.111]),
    ],
)
def test_guidance_weight_check_values(num_steps, w_max, expected):
    weights = guidance_weight(flow_times(num_steps), jnp.float32(w_max))
    np.testing.assert_allclose(weights, expected, atol=2e-3)


def test_unclipped_guidance_weight_is_at_least_the_clipped_one():
    t = flow_times(10)
    assert np.all(unclipped_guidance_weight(t, 5.0) >= guidance_weight(t, 5.0) - 1e-6)
    assert float(unclipped_guidance_weight(t, 5.0)[1]) > 5.0  # the curve the clip hides


def _rtc(policy: FlowPolicy, obs, prev, track: bool, schedule="exp", delay=2, prefix=5, w_max=5.0, steps=10):
    return policy.realtime_action(jax.random.key(7), obs, steps, prev, delay, prefix, schedule, w_max, track)


@pytest.fixture(scope="module")
def obs():
    return jax.random.normal(jax.random.key(1), (3, 10))


@pytest.fixture(scope="module")
def prev(small_policy, obs):
    return small_policy.action(jax.random.key(2), obs, 10)


def test_tracking_contract_shapes_and_keys(small_policy, obs, prev):
    action, tracked = _rtc(small_policy, obs, prev, True)
    for key in (*TRACKED_KEYS, "applied"):
        assert tracked[key].shape == (10, 3, 8, 6), key
    assert tracked["time"].shape == (10,)
    assert tracked["guidance_weight"].shape == (10,)
    assert tracked["prefix_weights"].shape == (8,)
    np.testing.assert_allclose(tracked["time"], np.arange(10) / 10, atol=1e-6)
    np.testing.assert_array_equal(tracked["action"], action)
    np.testing.assert_array_equal(tracked["x_t"][0], small_policy.initial_noise(jax.random.key(7), 3))
    np.testing.assert_allclose(
        tracked["applied"], tracked["guidance_weight"][:, None, None, None] * tracked["correction"]
    )


def test_tracked_states_follow_the_euler_update(small_policy, obs, prev):
    _, tracked = _rtc(small_policy, obs, prev, True)
    dt = 0.1
    stepped = tracked["x_t"][:-1] + dt * (tracked["v_t"][:-1] + tracked["applied"][:-1])
    np.testing.assert_allclose(tracked["x_t"][1:], stepped, atol=1e-5)
    np.testing.assert_allclose(
        tracked["x_1_pred"], tracked["x_t"] + (1 - tracked["time"])[:, None, None, None] * tracked["v_t"], atol=1e-5
    )
    weighted = (prev - tracked["x_1_pred"]) * tracked["prefix_weights"][None, None, :, None]
    np.testing.assert_allclose(tracked["error"], weighted, atol=1e-6)


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_tracking_off_returns_the_identical_bare_action(small_policy, obs, prev, schedule):
    bare = _rtc(small_policy, obs, prev, False, schedule)
    action, _ = _rtc(small_policy, obs, prev, True, schedule)
    assert isinstance(bare, jax.Array)
    np.testing.assert_array_equal(bare, action)


def test_plain_sampling_tracks_no_guidance(small_policy, obs):
    bare = small_policy.action(jax.random.key(3), obs, 10)
    action, tracked = small_policy.action(jax.random.key(3), obs, 10, return_tracking=True)
    np.testing.assert_array_equal(bare, action)
    assert set(tracked) == {"x_t", "v_t", "x_1_pred", "time", "action"}
    assert tracked["x_t"].shape == (10, 3, 8, 6)


def test_same_noise_makes_zero_guidance_equal_to_plain_sampling(small_policy, obs, prev):
    plain = small_policy.action(jax.random.key(7), obs, 10)
    unguided = _rtc(small_policy, obs, prev, False, w_max=0.0)
    np.testing.assert_allclose(unguided, plain, rtol=1e-6, atol=1e-6)  # vjp compiles another program
    noise = small_policy.initial_noise(jax.random.key(99), 3)
    from_noise = small_policy.action(None, obs, 10, noise=noise)
    np.testing.assert_array_equal(from_noise, small_policy.action(jax.random.key(99), obs, 10))


def test_correction_is_the_vector_jacobian_product_not_the_error(small_policy, obs, prev):
    _, tracked = _rtc(small_policy, obs, prev, True)
    step, b = 3, 1
    x, t = jnp.asarray(tracked["x_t"][step]), tracked["time"][step]

    def denoise(x_b):
        return x_b + (1 - t) * small_policy(obs[b : b + 1], x_b[None], t)[0]

    jacobian = jax.jacobian(denoise)(x[b]).reshape(48, 48)
    expected = (jacobian.T @ tracked["error"][step, b].reshape(-1)).reshape(8, 6)
    np.testing.assert_allclose(tracked["correction"][step, b], expected, atol=1e-4)
    assert not np.allclose(tracked["correction"][step, b], tracked["error"][step, b], atol=1e-3)


def test_hard_masking_pulls_frozen_actions_to_the_previous_chunk(small_policy, obs, prev):
    guided = _rtc(small_policy, obs, prev, False, "zeros", delay=3, prefix=5, w_max=50.0, steps=20)
    plain = small_policy.action(jax.random.key(7), obs, 20)
    frozen_gap = np.abs(np.asarray(guided - prev)[:, :3]).mean()
    assert frozen_gap < 0.5 * np.abs(np.asarray(plain - prev)[:, :3]).mean()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inference_delay": 9}, "inference_delay=9 is out of range; accepted: 0..8"),
        ({"prefix_attention_horizon": -1}, "prefix_attention_horizon=-1"),
        ({"prefix_attention_schedule": "cos"}, "'cos' is not one of"),
        ({"max_guidance_weight": float("nan")}, "max_guidance_weight=nan"),
    ],
)
def test_bad_settings_are_refused_by_name(small_policy, obs, prev, kwargs, message):
    args = {
        "inference_delay": 2,
        "prefix_attention_horizon": 4,
        "prefix_attention_schedule": "exp",
        "max_guidance_weight": 5.0,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        small_policy.realtime_action(jax.random.key(0), obs, 10, prev, **args)


def test_changing_settings_never_recompiles(small_policy, obs, prev):
    _rtc(small_policy, obs, prev, True)
    before = model_module._realtime_jit._cache_size()
    for schedule in SCHEDULES:
        for delay, prefix, w_max in [(0, 8, 1.0), (3, 2, 5.0), (4, 4, 0.0)]:
            small_policy.realtime_action(jax.random.key(delay), obs, 10, prev, delay, prefix, schedule, w_max, True)
    assert model_module._realtime_jit._cache_size() == before
    _rtc(small_policy, obs, prev, True, steps=12)
    assert model_module._realtime_jit._cache_size() == before + 1


def test_guidance_settings_are_a_pytree_of_arrays():
    settings = GuidanceSettings.create(2, 4, "linear", 3.0, chunk_size=8)
    leaves = jax.tree.leaves(settings)
    assert [leaf.dtype for leaf in leaves] == [jnp.int32, jnp.int32, jnp.int32, jnp.float32]
    assert int(settings.schedule) == SCHEDULES.index("linear")


# ------------------------------------------------------------------------------------------------
# Jacobian-free RTC (correction = error, no VJP)


def _primitive_count(jaxpr, name: str) -> int:
    """How many equations of primitive ``name`` a closed jaxpr holds, inside scans and calls too."""
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    count += _primitive_count(sub.jaxpr, name)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    count += _primitive_count(sub, name)
    return count


def test_jacobian_free_tracks_correction_equal_to_error_exactly(small_policy, obs, prev):
    free, tracked = small_policy.realtime_action(
        jax.random.key(7), obs, 10, prev, 2, 5, "exp", 5.0, True, jacobian_free=True
    )
    np.testing.assert_array_equal(tracked["correction"], tracked["error"])
    np.testing.assert_array_equal(tracked["action"], free)
    for key in (*TRACKED_KEYS, "applied"):
        assert tracked[key].shape == (10, 3, 8, 6), key
    weighted = (prev - tracked["x_1_pred"]) * tracked["prefix_weights"][None, None, :, None]
    np.testing.assert_allclose(tracked["error"], weighted, atol=1e-6)
    stepped = tracked["x_t"][:-1] + 0.1 * (tracked["v_t"][:-1] + tracked["applied"][:-1])
    np.testing.assert_allclose(tracked["x_t"][1:], stepped, atol=1e-5)
    bare = small_policy.realtime_action(jax.random.key(7), obs, 10, prev, 2, 5, "exp", 5.0, jacobian_free=True)
    np.testing.assert_array_equal(bare, free)
    # a trained-like network's Jacobian is not the identity, so the two guidances part ways
    rtc = _rtc(small_policy, obs, prev, False)
    assert float(np.abs(np.asarray(rtc - free)).max()) > 1e-2
    # without guidance both are plain sampling
    unguided = small_policy.realtime_action(jax.random.key(7), obs, 10, prev, 2, 5, "exp", 0.0, jacobian_free=True)
    np.testing.assert_array_equal(unguided, small_policy.action(jax.random.key(7), obs, 10))


def test_jacobian_free_equals_rtc_when_the_denoiser_jacobian_is_the_identity():
    """v(x, t) = a(t) independent of x: x_1_pred = x + (1 - t) a(t) has Jacobian I, so the VJP is the error."""
    keys = jax.random.split(jax.random.key(11), 4)
    scale, phase = jax.random.normal(keys[0], (3, 8, 6)), jax.random.normal(keys[1], (3, 8, 6))
    noise, prev = jax.random.normal(keys[2], (3, 8, 6)), jax.random.normal(keys[3], (3, 8, 6))

    def velocity(x, t):  # depends on t only (a different drift per batch element and entry)
        return scale * jnp.sin(3.0 * t + phase)

    settings = GuidanceSettings.create(2, 6, "linear", 5.0, chunk_size=8)
    run = jax.jit(realtime_sample, static_argnums=(0, 4), static_argnames=("track", "jacobian_free"))
    rtc_action, rtc = run(velocity, noise, prev, settings, 10, track=True)
    free_action, free = run(velocity, noise, prev, settings, 10, track=True, jacobian_free=True)
    np.testing.assert_allclose(rtc["correction"], rtc["error"], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(free_action, rtc_action, rtol=1e-6, atol=1e-6)
    for key in ("x_t", "correction", "error", "applied"):
        np.testing.assert_allclose(free[key], rtc[key], rtol=1e-6, atol=1e-6, err_msg=key)
    # and guidance did something: the guided chunk is not the plain one
    plain, _ = naive_sample(velocity, noise, 10)
    assert float(np.abs(np.asarray(free_action - plain)).max()) > 0.1


def test_jacobian_free_runs_the_network_once_per_step(small_policy, obs, prev):
    """Counted in the traced programs: the Jacobian-free sampler has exactly the plain sampler's matrix
    products (forward pass only); RTC's VJP adds a backward pass."""
    from rtc.numerics.model import velocity_fn

    graphdef, state = nnx.split(small_policy)
    settings = GuidanceSettings.create(2, 5, "exp", 5.0, chunk_size=8)
    noise = small_policy.initial_noise(jax.random.key(0), 3)

    def products(fn) -> int:
        return _primitive_count(jax.make_jaxpr(fn)(state).jaxpr, "dot_general")

    def guided(jacobian_free):
        return lambda s: realtime_sample(
            velocity_fn(graphdef, s, obs), noise, prev, settings, 4, jacobian_free=jacobian_free
        )[0]

    plain = products(lambda s: naive_sample(velocity_fn(graphdef, s, obs), noise, 4)[0])
    assert products(guided(True)) == plain
    assert products(guided(False)) > plain


def test_jacobian_free_compiles_its_own_program_and_leaves_rtc_alone(small_policy, obs, prev):
    steps = 7  # a step count no other test uses, so both programs are new here
    _rtc(small_policy, obs, prev, False, steps=steps)
    before = model_module._realtime_jit._cache_size()
    small_policy.realtime_action(jax.random.key(0), obs, steps, prev, 2, 5, "exp", 5.0, jacobian_free=True)
    assert model_module._realtime_jit._cache_size() == before + 1
    for schedule in SCHEDULES:  # settings stay traced for the variant too
        small_policy.realtime_action(jax.random.key(1), obs, steps, prev, 3, 4, schedule, 2.0, jacobian_free=True)
    _rtc(small_policy, obs, prev, False, steps=steps)
    assert model_module._realtime_jit._cache_size() == before + 1


@pytest.mark.parametrize(("batch", "steps", "from_disk"), [(1, 13, False), (2, 3, False), (1, 11, True)])
def test_warm_up_compiles_everything_inspect_runs(batch, steps, from_disk, tmp_path, monkeypatch):
    """The app compiles while the level is read in the background (``pipeline.warm_up`` on a zero observation); the
    inspection afterwards must compile nothing, or the first page would pay for the compile twice."""
    from jax import monitoring

    from rtc.experiments import pipeline
    from rtc.io import levels
    from rtc.io.checkpoints import load_policy, read_run

    policy = load_policy(read_run(levels.PROJECT_ROOT / "runs" / "demo").checkpoint(-1, "worlds_l_grasp_easy"))
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    levels.reset_observation(level)  # the level's own programs, compiled once
    settings = pipeline.RTCSettings(num_flow_steps=steps, batch_size=batch, seed=5)  # shapes no other test compiles
    from rtc.io import export_cache

    # from disk, the app's way: the whole same-observation inspection is one program kept on disk
    monkeypatch.setattr(export_cache, "cache_folder", lambda: tmp_path if from_disk else None)
    programs = (model_module._naive_jit, model_module._realtime_jit)
    before = [p._cache_size() for p in programs]
    pipeline.warm_up(policy, settings)
    if from_disk:
        assert len(list((tmp_path / "exported").glob("*.jaxexport"))) == 1
    else:  # the first chunk (plain, batch 1), the plain and the RTC samples
        assert [p._cache_size() for p in programs] == [before[0] + 2, before[1] + 1]
    compiled = []

    def listen(event: str, duration: float, **_) -> None:
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(duration)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        result = pipeline.inspect(policy, level, dataclasses.replace(settings, seed=6, max_guidance_weight=2.0))
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiled == []
    assert result.tracked["action"].shape == (batch, policy.action_chunk_size, policy.action_dim)
