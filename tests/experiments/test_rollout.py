"""Closed-loop rollouts in Kinetix following the paper's protocol.

All rollouts here share static shapes (4 episodes, 5 flow steps, 4 BID samples, 16-step segments) and
record, so one compiled rollout program serves the module (test_sweep builds the unrecorded one).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from rtc.experiments import protocol, rollout
from rtc.experiments.rollout import program as rollout_program
from rtc.experiments.rollout import results as rollout_results
from rtc.io import levels
from rtc.io.checkpoints import load_policy, read_run
from rtc.report import animation, plots
from tests.conftest import DEMO_RUN

# Every test here runs (or shares a fixture that runs) a closed-loop rollout, compiled for 10-30 s per process.
pytestmark = pytest.mark.slow

EPISODES = 4
BASE = rollout.RolloutSettings(num_episodes=EPISODES, num_flow_steps=5, bid_samples=4, segment_steps=16, seed=0)


@functools.cache
def demo_setup():
    policy = load_policy(read_run(DEMO_RUN).checkpoint(-1, "worlds_l_grasp_easy"))
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    return policy, level


@functools.partial(jax.jit, static_argnames=("count",))
def _execute(env_state, actions, env_params, count=8):
    """Step a batch of states through ``actions [count, E, A]``; per step obs, reward, done and GoalR."""
    env = levels.make_env()

    def body(state, action):
        obs, state, reward, done, info = jax.vmap(lambda s, a: env.step_env(jax.random.key(0), s, a, env_params))(
            state, action
        )
        return state, (obs, reward, done, info["GoalR"])

    return jax.lax.scan(body, env_state, actions)


def batched_reset(level, count):
    obs, state = levels.reset(level)
    return jnp.broadcast_to(obs, (count, obs.shape[0])), jax.tree.map(lambda x: jnp.stack([x] * count), state)


@pytest.fixture(scope="module")
def recorded():
    policy, level = demo_setup()
    settings = rollout.RolloutSettings(**{**BASE.to_dict(), "inference_delay": 2, "execute_horizon": 3})
    settings = rollout.RolloutSettings(**{**settings.to_dict(), "episode_steps": 80, "method": "rtc_exp"})
    return rollout.run_rollout(policy, level, settings, record=True)


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_zero_delay_full_horizon_is_plain_chunked_execution():
    policy, level = demo_setup()
    horizon, steps = policy.action_chunk_size, 24
    settings = rollout.RolloutSettings(
        **{**BASE.to_dict(), "inference_delay": 0, "execute_horizon": horizon, "episode_steps": steps}
    )
    settings = rollout.RolloutSettings(**{**settings.to_dict(), "action_noise": 0.0, "method": "naive"})
    result = rollout.run_rollout(policy, level, settings)

    # by hand: a plain chunk from each block's observation, all 8 actions executed, no action noise
    obs, state = batched_reset(level, EPISODES)
    actions, rewards = [], []
    for block in range(steps // horizon):
        noise = jnp.concatenate(
            [rollout.block_noise(0, e, block + 1, 1, horizon, 6)[0] for e in range(EPISODES)]
        )  # [E, H, A]
        chunk = policy.action(None, obs, 5, noise=noise)
        state, (obs_steps, reward, _, _) = _execute(state, jnp.swapaxes(chunk, 0, 1), level.env_params)
        obs = obs_steps[-1]
        actions.append(np.asarray(chunk))
        rewards.append(np.asarray(reward).T)
    actions = np.concatenate(actions, axis=1)  # [E, T, A]
    alive = result.alive
    np.testing.assert_allclose(result.actions[alive], actions[alive], atol=2e-4)
    np.testing.assert_allclose(result.rewards[alive], np.concatenate(rewards, axis=1)[alive], atol=2e-3)
    np.testing.assert_array_equal(result.applied_actions, result.actions)

    # with p = H - s = 0 guidance is inert and BID's distances all vanish: the same episodes
    for method in ("rtc_exp", "bid"):
        other = rollout.run_rollout(policy, level, rollout.RolloutSettings(**{**settings.to_dict(), "method": method}))
        np.testing.assert_allclose(other.actions[alive], result.actions[alive], atol=1e-4, err_msg=method)


def test_executed_actions_follow_the_protocol(recorded):
    d, s = recorded.settings.inference_delay, recorded.settings.execute_horizon
    steps = recorded.settings.episode_steps
    np.testing.assert_array_equal(recorded.chunk_starts, np.arange(0, steps, s))
    np.testing.assert_array_equal(recorded.prev_chunks[:, 0], recorded.first_chunk)
    for k, start in enumerate(recorded.chunk_starts):
        if k > 0:
            expected_prev = protocol.next_prev_chunk(jnp.asarray(recorded.chunks[:, k - 1]), s)
            np.testing.assert_array_equal(recorded.prev_chunks[:, k], np.asarray(expected_prev))
        for i in range(min(s, steps - start)):
            source = recorded.prev_chunks[:, k, i] if i < d else recorded.chunks[:, k, i]
            np.testing.assert_array_equal(recorded.actions[:, start + i], source, err_msg=f"block {k}, index {i}")
    # the frozen actions of block k are the previous chunk's actions s..s+d-1
    for k in range(1, len(recorded.chunk_starts)):
        start = recorded.chunk_starts[k]
        np.testing.assert_array_equal(recorded.actions[:, start : start + d], recorded.chunks[:, k - 1, s : s + d])


def test_boundary_jumps_and_action_noise(recorded):
    d, s = recorded.settings.inference_delay, recorded.settings.execute_horizon
    for e in range(EPISODES):
        length = recorded.lengths[e]
        switches = [t for t in range(max(d, 1), length) if (t - d) % s == 0]
        expected = np.full(recorded.settings.episode_steps, np.nan)
        for t in switches:
            expected[t] = np.linalg.norm(recorded.actions[e, t] - recorded.actions[e, t - 1])
        np.testing.assert_allclose(recorded.jumps[e], expected, rtol=1e-5, atol=1e-6)
        assert recorded.jump_counts[e] == len(switches)
        assert recorded.jump_sums[e] == pytest.approx(np.nansum(expected), rel=1e-5)
        for t in (0, 5, length - 1):
            noise = rollout.action_noise(0, e, t, 6, recorded.settings.action_noise)
            np.testing.assert_allclose(recorded.applied_actions[e, t] - recorded.actions[e, t], noise, atol=1e-6)
    summary = recorded.summary()
    assert summary["mean_boundary_jump"] == pytest.approx(recorded.jump_sums.sum() / recorded.jump_counts.sum())
    # the baseline: mean ||a_t - a_(t-1)|| over the steps that are not switches
    steps = []
    for e in range(EPISODES):
        length = recorded.lengths[e]
        steps += [
            np.linalg.norm(recorded.actions[e, t] - recorded.actions[e, t - 1])
            for t in range(1, length)
            if not (t >= max(d, 1) and (t - d) % s == 0)
        ]
    assert summary["mean_step_size"] == pytest.approx(np.mean(steps), rel=1e-5)
    assert summary["jump_to_step_ratio"] == pytest.approx(summary["mean_boundary_jump"] / np.mean(steps), rel=1e-5)


@pytest.mark.parametrize(
    ("d", "s", "defined_after_first_block"),
    [(0, 3, True), (3, 5, True), (3, 6, False)],  # d = 0; the edge d - 1 = H - s - 1; d - 1 >= H - s (padding)
)
def test_boundary_jump_is_undefined_only_where_the_action_before_the_switch_was_padding(
    d, s, defined_after_first_block
):
    policy, level = demo_setup()
    settings = rollout.RolloutSettings(
        **{**BASE.to_dict(), "inference_delay": d, "execute_horizon": s, "episode_steps": 80, "method": "rtc_exp"}
    )
    result = rollout.run_rollout(policy, level, settings, record=True)
    horizon = result.first_chunk.shape[1]
    for e in range(EPISODES):
        switches = [t for t in range(max(d, 1), result.lengths[e]) if (t - d) % s == 0]
        for t in switches:
            before = result.actions[e, t - 1]
            jump = result.jumps[e, t]
            first_block = t < s
            if first_block or defined_after_first_block:
                assert jump == pytest.approx(np.linalg.norm(result.actions[e, t] - before), rel=1e-5)
            else:  # the action before the switch was prev[d - 1], past the H - s planned actions: zero padding
                assert d - 1 >= horizon - s
                np.testing.assert_array_equal(before, 0.0)
                assert np.isnan(jump)
        assert result.jump_counts[e] == np.isfinite(result.jumps[e]).sum()


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_returns_and_solved_flag_match_the_environment(recorded):
    _, level = demo_setup()
    steps = recorded.settings.episode_steps
    _, state = batched_reset(level, EPISODES)
    obs, rewards, dones, goals = [], [], [], []
    for start in range(0, steps, 8):
        state, (o, r, d, g) = _execute(
            state, jnp.swapaxes(recorded.applied_actions[:, start : start + 8], 0, 1), level.env_params
        )
        obs.append(np.asarray(o))
        rewards.append(np.asarray(r))
        dones.append(np.asarray(d))
        goals.append(np.asarray(g))
    rewards, dones, goals = (np.concatenate(x).T for x in (rewards, dones, goals))  # [E, T]
    obs = np.swapaxes(np.concatenate(obs), 0, 1)  # [E, T, O], after each step
    assert recorded.solved.any() and not recorded.solved.all()  # seed 0 has a solved and a failed episode
    for e in range(EPISODES):
        ended = np.flatnonzero(dones[e])
        length = ended[0] + 1 if ended.size else steps
        assert recorded.lengths[e] == length
        assert recorded.solved[e] == (ended.size > 0 and goals[e, ended[0]])
        assert recorded.returns[e] == pytest.approx(rewards[e, :length].sum(), abs=1e-4)
        np.testing.assert_array_equal(recorded.rewards[e, length:], 0)
        assert recorded.alive[e].sum() == length
        # the observation each block was sampled from is the one at the block start
        for k, start in enumerate(recorded.chunk_starts):
            if 0 < start <= length:
                np.testing.assert_allclose(recorded.chunk_obs[e, k], obs[e, start - 1], atol=1e-4)
    np.testing.assert_allclose(recorded.returns, recorded.rewards.sum(1), rtol=1e-5, atol=1e-6)


def test_chunk_inspection_reopens_a_block(recorded):
    policy, _ = demo_setup()
    tracked = rollout.chunk_inspection(policy, recorded, episode=3, chunk_index=5)
    np.testing.assert_allclose(tracked["action"][0], recorded.chunks[3, 5], atol=1e-4)
    np.testing.assert_array_equal(tracked["prev_action_chunk"][0], recorded.prev_chunks[3, 5])
    assert tracked["x_t"].shape == (5, 1, 8, 6) and "correction" in tracked
    assert int(tracked["chunk_start"]) == 15
    figures = plots.tracking_figures(tracked)  # the step-by-step pages accept it as an RTC run
    assert "error_b0" in figures and "chunk_overview_b0" in figures
    with pytest.raises(IndexError, match="chunk_index=99"):
        rollout.chunk_inspection(policy, recorded, 0, 99)
    ended = int(np.argmin(recorded.lengths))
    after = int(np.searchsorted(recorded.chunk_starts, recorded.lengths[ended]))
    with pytest.raises(IndexError, match=f"after episode {ended} ended"):
        rollout.chunk_inspection(policy, recorded, ended, after)


def test_frames_and_gif(recorded, tmp_path):
    episode = 1  # the shortest episode (ends early)
    length = int(recorded.lengths[episode])
    frames = animation.episode_frames(recorded, episode, every=8, size=96)
    expected_steps = sorted({*range(0, length + 1, 8), length})
    assert len(frames) == len(expected_steps)
    assert frames[0].shape == (96, 96, 3) and frames[0].dtype == np.uint8
    first = Image.fromarray(levels.render_level(recorded.level)).resize((96, 96), Image.Resampling.BILINEAR)
    np.testing.assert_array_equal(frames[0], np.asarray(first))
    assert not np.array_equal(frames[0], frames[-1])
    path = animation.save_animation(frames, tmp_path / "episode.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == len(frames)
    with pytest.raises(ValueError, match="GIF"):
        animation.save_animation(frames, tmp_path / "episode.mp4")


def test_progress_cancel_and_no_recompile():
    policy, level = demo_setup()
    settings = rollout.RolloutSettings(**{**BASE.to_dict(), "episode_steps": 40})
    progress = list(rollout.iterate_rollout(policy, level, settings))
    assert [p.steps_done for p in progress] == [16, 32, 40]
    assert progress[-1].result is not None and all(p.result is None for p in progress[:-1])
    with pytest.raises(rollout.RolloutCancelled, match="16/40"):
        rollout.run_rollout(policy, level, settings, progress_callback=lambda p: False)
    compiled = rollout_program.run_segment._cache_size(), rollout_program.init._cache_size()
    for method, d, s in (("hard_masking", 1, 5), ("bid", 3, 3)):
        changed = rollout.RolloutSettings(
            **{**settings.to_dict(), "method": method, "inference_delay": d, "execute_horizon": s}
        )
        rollout.run_rollout(policy, level, changed)
    assert (rollout_program.run_segment._cache_size(), rollout_program.init._cache_size()) == compiled


def test_carry_types_are_stable_so_segments_reuse_one_compilation(recorded):
    policy, level = demo_setup()
    graphdef, state = nnx.split(policy)
    mesh = rollout_program.make_mesh()
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(rollout_program.EPISODE_AXIS))
    sample_keys, env_keys = (jax.device_put(k, sharding) for k in rollout.episode_keys(0, EPISODES))
    structure = rollout_program.Structure(graphdef, num_flow_steps=5, bid_samples=4, mesh=mesh)
    dyn = rollout_program.dynamic(recorded.settings, 8)
    inputs = rollout_program.Inputs(state, state, level.env_params, level.state, dyn, sample_keys, env_keys)
    carry, _ = rollout_program.init(structure, inputs)
    segment = rollout_program.Segment(structure, steps=16, record=True)
    after, _ = rollout_program.run_segment(segment, inputs, carry, jnp.int32(0))
    compiled = rollout_program.run_segment._cache_size()
    before_types = [(jax.typeof(x), x.weak_type) for x in jax.tree.leaves(carry)]
    assert before_types == [(jax.typeof(x), x.weak_type) for x in jax.tree.leaves(after)]
    rollout_program.run_segment(segment, inputs, after, jnp.int32(16))
    assert rollout_program.run_segment._cache_size() == compiled


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "rtc_cosine"}, "rtc_cosine"),
        ({"inference_delay": 3, "execute_horizon": 2}, "execute horizon s=2 is out of range"),
        ({"num_episodes": 0}, "num_episodes=0"),
        ({"action_noise": -1.0}, "action_noise"),
    ],
)
def test_refused_settings(change, message):
    with pytest.raises(ValueError, match=message):
        rollout.RolloutSettings(**{**BASE.to_dict(), **change}).validate(8)


def test_steps_after_an_early_stop_are_filled_as_after_an_episode_end():
    actions = np.ones((2, 3, 6))
    np.testing.assert_array_equal(rollout_results.pad_steps("actions", actions, 5)[:, 3:], 0)
    assert not rollout_results.pad_steps("alive", np.ones((2, 3), bool), 5)[:, 3:].any()
    assert np.isnan(rollout_results.pad_steps("jumps", np.zeros((2, 3)), 5)[:, 3:]).all()
    states = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(rollout_results.pad_steps("states", states, 5)[:, 3:], [[2, 2], [5, 5]])
    assert rollout.padded_episode_count(1, 1) == 1 and rollout.padded_episode_count(5, 1) == 8
    assert rollout.padded_episode_count(5, 4) == 8 and rollout.padded_episode_count(16, 8) == 16
