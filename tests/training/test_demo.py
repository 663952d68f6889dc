"""The committed demo run: real Kinetix demonstrations, multimodal, and RTC keeps a mode."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from rtc.io import levels
from rtc.io.checkpoints import load_policy, read_run
from rtc.numerics.model import ModelConfig
from rtc.training import demo
from rtc.training.flow import TrainConfig, flow_matching_loss, train
from tests.conftest import DEMO_RUN, random_policy


def test_demo_run_is_committed_small_and_complete():
    size = sum(p.stat().st_size for p in DEMO_RUN.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"demo run is {size / 2**20:.1f} MB"
    run = read_run(DEMO_RUN)
    assert run is not None and len(run.epochs) >= 2
    for epoch in run.epochs:
        assert set(run.levels(epoch)) == {"worlds_l_grasp_easy", "worlds_l_hard_lunar_lander"}
    metadata = json.loads((run.checkpoint(-1, "worlds_l_grasp_easy") / "metadata.json").read_text())
    # recorded before the packages-by-role move; the old module path still runs the same module
    assert metadata["training"]["command"] in (
        "python -m rtc.demo --out runs/demo",
        "python -m rtc.training.demo --out runs/demo",
    )
    assert metadata["config"] == ModelConfig(**metadata["config"]).to_dict()


@pytest.mark.parametrize("key", ["worlds_l_grasp_easy", "worlds_l_hard_lunar_lander"])
def test_plain_samples_split_into_modes_and_rtc_keeps_the_previous_mode(key):
    policy = load_policy(read_run(DEMO_RUN).checkpoint(-1, key))
    level = levels.load_level(levels.resolve_level_path(f"worlds/l/{key.removeprefix('worlds_l_')}.json"))
    obs, _ = levels.reset(level)
    measured = demo.mode_consistency(policy, obs, num_samples=64)
    fractions = measured["naive_fractions"]
    assert measured["naive_modes_hit"] >= 2, fractions
    assert max(fractions.values()) <= 0.8, fractions
    for mode, stay in measured["rtc_stay"].items():
        assert stay >= 0.9, measured
        assert stay > fractions[mode] + 0.15, measured


def test_scripted_behaviours_are_distinct_and_classified():
    prototypes = demo.mode_prototypes(0, 8)
    assert prototypes.shape == (3, 8, 6)
    np.testing.assert_array_equal(demo.classify_modes(prototypes), [0, 1, 2])
    shifted = demo.mode_prototypes(5, 8)
    np.testing.assert_array_equal(demo.classify_modes(shifted, start_step=5), [0, 1, 2])
    actions = demo.scripted_actions(2, np.arange(32))
    assert np.all(actions[:, :4] <= 1) and np.all(actions[:, 4:] >= 0)


@pytest.mark.slow  # runs a closed-loop rollout or steps Kinetix: over 10 s of the fast set's time (--durations)
def test_demonstrations_come_from_kinetix_rollouts():
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    config = demo.DemoConfig(episodes_per_mode=1, episode_steps=6)
    obs, chunks = demo.generate_demonstrations(level, config, 8)
    assert obs.shape == (18, levels.OBS_DIM) and chunks.shape == (18, 8, 6)
    reset_obs, _ = levels.reset(level)
    np.testing.assert_array_equal(obs[0], reset_obs)  # episode starts at the level's reset
    assert not np.allclose(obs[5], obs[0])  # and the simulator moved it
    np.testing.assert_array_equal(demo.classify_modes(chunks[[0, 6, 12]]), [0, 1, 2])


def test_training_lowers_the_flow_matching_loss():
    policy = random_policy(obs_dim=4, perturb=0.0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(256, 4)).astype(np.float32)
    actions = np.repeat(np.sign(obs[:, :1, None]), 8, axis=1) * np.ones((1, 1, 6), np.float32)
    before = float(flow_matching_loss(policy, obs, actions, jax.random.key(0)))
    train(policy, obs, actions, TrainConfig(steps=150, batch_size=64, warmup_steps=10))
    after = float(flow_matching_loss(policy, obs, actions, jax.random.key(0)))
    assert after < 0.6 * before
