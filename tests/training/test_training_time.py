"""Training for training-time RTC: simulated delays, the recorded metadata, and a sweep over every method."""

from __future__ import annotations

import dataclasses
import functools
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from rtc.commands import sweep as sweep_cli
from rtc.errors import RTCError, SettingsError
from rtc.io.checkpoints import discover_runs, load_policy, read_run, save_policy
from rtc.numerics import methods
from rtc.numerics.model import ModelConfig
from rtc.training import demo
from rtc.training.flow import TrainConfig, delay_probabilities, prefix_conditioned_loss, train_training_time_rtc
from tests.conftest import DEMO_RUN, random_policy

TINY = ModelConfig(channel_dim=16, channel_hidden_dim=32, token_hidden_dim=8, num_layers=1, action_chunk_size=8)


def test_delays_are_drawn_as_the_paper_code_does_and_settings_are_checked():
    np.testing.assert_allclose(delay_probabilities(4), np.exp(-np.arange(5)) / np.exp(-np.arange(5)).sum())
    np.testing.assert_allclose(delay_probabilities(3, "uniform"), [0.25] * 4)
    with pytest.raises(SettingsError, match="delay_distribution='poisson'"):
        TrainConfig(max_simulated_delay=2, delay_distribution="poisson")
    with pytest.raises(SettingsError, match="max_simulated_delay=0"):
        TrainConfig(max_simulated_delay=0)
    policy = random_policy()
    with pytest.raises(SettingsError, match="max_simulated_delay=8 is out of range"):
        train_training_time_rtc(policy, np.zeros((4, 10)), np.zeros((4, 8, 6)), TrainConfig(steps=1), max_delay=8)


def test_the_prefix_is_fed_clean_and_left_out_of_the_loss():
    policy = random_policy(seed=4)
    obs = jax.random.normal(jax.random.key(0), (16, 10))
    actions = jax.random.normal(jax.random.key(1), (16, 8, 6))
    always_three = jnp.asarray([0.0, 0.0, 0.0, 1.0])  # d = 3 for every example
    rng = jax.random.key(2)
    loss = prefix_conditioned_loss(policy, obs, actions, rng, always_three)
    # by hand: the same draws as the loss makes, tokens 0..2 clean at time 1, error averaged over tokens 3..7
    time_rng, noise_rng = jax.random.split(rng)
    time = jax.random.uniform(time_rng, (16,))
    noise = jax.random.normal(noise_rng, actions.shape)
    token_time = jnp.where(jnp.arange(8)[None] < 3, 1.0, time[:, None])
    x_t = (1 - token_time[..., None]) * noise + token_time[..., None] * actions
    np.testing.assert_array_equal(x_t[:, :3], actions[:, :3])
    error = (policy(obs, x_t, token_time) - (actions - noise)) ** 2
    np.testing.assert_allclose(loss, error[:, 3:].mean(), rtol=1e-5)


def test_a_policy_trained_for_it_says_so_in_its_checkpoint_and_others_do_not(tmp_path):
    policy = random_policy(seed=6)
    obs = np.asarray(jax.random.normal(jax.random.key(3), (32, 10)))
    actions = np.asarray(jax.random.normal(jax.random.key(4), (32, 8, 6)))
    losses, metadata = train_training_time_rtc(policy, obs, actions, TrainConfig(steps=3, batch_size=8), max_delay=3)
    assert policy.max_simulated_delay == 3 and all(math.isfinite(v) for v in losses)
    save_policy(policy, tmp_path / "trained", training={"training_time_rtc": metadata})
    stored = json.loads((tmp_path / "trained" / "metadata.json").read_text())["training"]["training_time_rtc"]
    assert stored["max_delay"] == 3 and stored["distribution"] == "exp"
    assert load_policy(tmp_path / "trained").max_simulated_delay == 3
    plain = load_policy(read_run(DEMO_RUN).checkpoint(-1, "worlds_l_grasp_easy"))
    assert plain.max_simulated_delay is None
    with pytest.raises(RTCError, match="trained without them"):
        methods.check_method("training_time_rtc", plain, "runs/demo")


@functools.cache
def tiny_world(root: str) -> str:
    """A two-epoch run on real demonstrations of grasp_easy, trained briefly, with its training-time RTC twin (same
    demonstrations and seed, simulated delays up to 4) in ``<run>/training_time``, as a world's command writes it."""
    out = f"{root}/run"
    data = demo.DemoConfig(episodes_per_mode=2, episode_steps=16)
    config = TrainConfig(steps=40, batch_size=32, warmup_steps=5)
    demo.build_demo_run(out, ("worlds/l/grasp_easy.json",), data, config, TINY, epochs=2)
    twin = dataclasses.replace(config, max_simulated_delay=4)
    demo.build_demo_run(f"{out}/training_time", ("worlds/l/grasp_easy.json",), data, twin, TINY, epochs=2)
    return out


@pytest.mark.slow
def test_rtc_sweep_writes_rows_for_every_method_with_training_time_rtc_on_the_twin(tmp_path_factory, capsys):
    run = tiny_world(str(tmp_path_factory.mktemp("world")))
    assert load_policy(read_run(run).checkpoint(-1, "worlds_l_grasp_easy")).max_simulated_delay is None
    twin = read_run(f"{run}/training_time").checkpoint(-1, "worlds_l_grasp_easy")
    assert load_policy(twin).max_simulated_delay == 4
    assert {r.path.name for r in discover_runs(run)} == {"run", "training_time"}  # the app lists the twin
    out = tmp_path_factory.mktemp("sweep") / "out"
    chosen = ["naive", "rtc_exp", "training_time_rtc", "bid", "bid_forward"]
    argv = [run, "--out", str(out), "--methods", *chosen, "--delays", "1", "3", "--execute-horizons", "min"]
    argv += ["--episodes", "2", "--episode-steps", "8", "--bid-samples", "3", "--bid-k", "2", "--bid-weak-epoch", "0"]
    assert sweep_cli.main(argv) == 0
    frame = pd.read_parquet(out / "results.parquet")
    assert sorted(frame["method"].unique()) == sorted(chosen)
    assert len(frame) == len(chosen) * 2
    # training-time RTC ran on the twin, every other method on the run's own policy
    fingerprints = frame.groupby("method")["policy_fingerprint"].first()
    assert fingerprints["training_time_rtc"] != fingerprints["naive"] == fingerprints["rtc_exp"]
    forward = frame[frame["method"] == "bid_forward"]
    assert (forward["bid_k"] == 2).all() and forward["bid_weak_fingerprint"].notna().all()
    assert frame[frame["method"] != "bid_forward"]["bid_k"].isna().all()
    manifest = json.loads((out / "manifest.json").read_text())
    described = manifest["levels"]["worlds_l_grasp_easy"]
    assert described["bid_weak_checkpoint"].endswith("run/0/policies/worlds_l_grasp_easy")
    assert described["training_time_checkpoint"] == str(twin)
    # a rerun computes nothing
    assert sweep_cli.main(argv) == 0
    assert "0 computed" in capsys.readouterr().out


def test_rtc_sweep_refuses_training_time_rtc_on_a_policy_not_trained_for_it_in_one_line(tmp_path, capsys):
    argv = [str(DEMO_RUN), "--out", str(tmp_path / "out"), "--methods", "naive", "training_time_rtc"]
    argv += ["--levels", "worlds_l_grasp_easy", "--delays", "1", "--episodes", "2", "--episode-steps", "4"]
    assert sweep_cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "training_time_rtc" in err[0] and "worlds_l_grasp_easy" in err[0]
    assert "trained without them" in err[0]
    assert not (tmp_path / "out" / "results.parquet").exists()
    argv = [str(DEMO_RUN), "--out", str(tmp_path / "out"), "--methods", "bid_forward", "--delays", "1"]
    assert sweep_cli.main(argv) == 2
    assert "--bid-weak-epoch" in capsys.readouterr().err
