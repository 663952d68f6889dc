"""Checkpoints: discovery, both formats, config inference, the restricted unpickler, level keys."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from rtc.io.checkpoints import (
    CheckpointError,
    discover_runs,
    infer_dims,
    level_key,
    load_policy,
    match_level_key,
    read_paper_pickle,
    read_run,
    save_policy,
)
from rtc.numerics.model import ModelConfig
from tests.conftest import DEMO_RUN, SMALL_CONFIG, random_policy

FIXTURE_CONFIG = ModelConfig(
    channel_dim=32, channel_hidden_dim=64, token_hidden_dim=16, num_layers=2, action_chunk_size=8
)


def test_discover_runs_finds_the_paper_layout(fixture_run):
    (run,) = discover_runs(fixture_run)
    assert run.path == fixture_run
    assert sorted(run.epochs) == [0, 3]
    assert run.latest_epoch == 3
    assert run.levels(-1) == ["worlds_l_grasp_easy", "worlds_l_hard_lunar_lander"]
    assert run.checkpoint(0, "worlds_l_grasp_easy") == fixture_run / "0" / "policies" / "worlds_l_grasp_easy.pkl"


def test_discover_runs_finds_both_layouts_below_a_root(tmp_path, fixture_run):
    shutil.copytree(fixture_run, tmp_path / "group" / "paper_run")
    save_policy(random_policy(679), tmp_path / "mine" / "5" / "policies" / "worlds_l_catapult")
    (tmp_path / "notes").mkdir()
    runs = discover_runs(tmp_path)
    assert [r.name for r in runs] == ["paper_run", "mine"] or [r.name for r in runs] == ["mine", "paper_run"]
    mine = next(r for r in runs if r.name == "mine")
    assert mine.epochs == {5: {"worlds_l_catapult": tmp_path / "mine" / "5" / "policies" / "worlds_l_catapult"}}


def test_discover_runs_lists_the_demo_run():
    (run,) = [r for r in discover_runs(DEMO_RUN.parent) if r.name == "demo"]
    assert set(run.levels()) >= {"worlds_l_grasp_easy", "worlds_l_hard_lunar_lander"}
    assert len(run.epochs) >= 2


@pytest.mark.parametrize("epoch", [0, 3])
def test_paper_checkpoint_config_is_inferred_from_shapes(fixture_run, epoch):
    policy = load_policy(fixture_run / str(epoch) / "policies" / "worlds_l_grasp_easy.pkl")
    assert policy.config == FIXTURE_CONFIG
    assert (policy.obs_dim, policy.action_dim) == (679, 6)


def test_paper_pickle_keeps_int_keys_and_none_leaves_until_cleaned(fixture_run):
    raw = read_paper_pickle(fixture_run / "0" / "policies" / "worlds_l_grasp_easy.pkl")
    assert set(raw["mlp_stack"]) == {0, 1}
    assert raw["final_norm"]["scale"] is None
    config, obs_dim, action_dim = infer_dims(raw)
    assert (config, obs_dim, action_dim) == (FIXTURE_CONFIG, 679, 6)


def test_project_checkpoint_round_trips_exactly(tmp_path):
    policy = random_policy(obs_dim=679, seed=3)
    path = save_policy(policy, tmp_path / "0" / "policies" / "worlds_l_x", level="worlds/l/x.json", training={"k": 1})
    loaded = load_policy(path)
    assert loaded.config == SMALL_CONFIG
    original, restored = nnx.to_pure_dict(nnx.state(policy)), nnx.to_pure_dict(nnx.state(loaded))
    assert jax.tree.structure(original) == jax.tree.structure(restored)
    for a, b in zip(jax.tree.leaves(original), jax.tree.leaves(restored), strict=True):
        np.testing.assert_array_equal(a, b)
    obs = np.ones((2, 679), np.float32)
    np.testing.assert_array_equal(policy.action(jax.random.key(0), obs, 4), loaded.action(jax.random.key(0), obs, 4))


def test_project_weights_kept_as_npz_load_exactly_and_follow_the_checkpoint_files(tmp_path, monkeypatch):
    from rtc.io import checkpoints, export_cache

    monkeypatch.setattr(export_cache, "cache_folder", lambda: tmp_path / "cache")
    path = save_policy(random_policy(obs_dim=679, seed=4), tmp_path / "0" / "policies" / "worlds_l_x")
    by_orbax = load_policy(path)  # reads params/ with orbax and keeps an .npz
    (kept,) = (tmp_path / "cache" / "params").glob("*.npz")
    monkeypatch.setattr(checkpoints, "_restore_params", lambda *args: pytest.fail("orbax must not be needed now"))
    by_numpy = load_policy(path)
    first, second = nnx.to_pure_dict(nnx.state(by_orbax)), nnx.to_pure_dict(nnx.state(by_numpy))
    assert jax.tree.structure(first) == jax.tree.structure(second)
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        assert a.dtype == b.dtype and np.asarray(a).tobytes() == np.asarray(b).tobytes()

    kept.write_bytes(b"damaged")  # an unreadable copy: orbax reads the folder again
    monkeypatch.undo()
    monkeypatch.setattr(export_cache, "cache_folder", lambda: tmp_path / "cache")
    np.testing.assert_array_equal(load_policy(path).out_proj.kernel[...], by_orbax.out_proj.kernel[...])

    newer = random_policy(obs_dim=679, seed=5)
    save_policy(newer, path)  # new weights in the same folder: a new key, never the old copy
    np.testing.assert_array_equal(load_policy(path).out_proj.kernel[...], newer.out_proj.kernel[...])
    assert len(list((tmp_path / "cache" / "params").glob("*.npz"))) == 2


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_pickle_that_would_run_code_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "worlds_l_evil.pkl"
    path.write_bytes(pickle.dumps({"in_proj": _RunsCode(str(marker))}, protocol=4))
    with pytest.raises(CheckpointError, match=r"references posix\.mkdir.*Nothing was executed"):
        load_policy(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a pickle at all", "not a readable checkpoint pickle"),
        (pickle.dumps([1, 2, 3]), "expected a dict of parameters, found list"),
        (pickle.dumps({"in_proj": {"kernel": np.zeros((3, 2))}}), "missing parameter out_proj.kernel"),
    ],
)
def test_malformed_pickles_get_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_policy(path)


def test_wrong_shapes_are_named(tmp_path, fixture_run):
    raw = read_paper_pickle(fixture_run / "0" / "policies" / "worlds_l_grasp_easy.pkl")
    raw["mlp_stack"][1]["adaln_1"]["kernel"] = np.zeros((32, 95), np.float32)
    path = tmp_path / "worlds_l_bad.pkl"
    path.write_bytes(pickle.dumps(jax.tree.map(np.asarray, raw), protocol=4))
    with pytest.raises(CheckpointError, match=r"\['mlp_stack'\]\[1\]\['adaln_1'\]\['kernel'\] has shape \(32, 95\)"):
        load_policy(path)


def test_missing_and_non_checkpoint_paths_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_policy(tmp_path / "nope.pkl")
    with pytest.raises(CheckpointError, match="is not a checkpoint"):
        load_policy(tmp_path)
    assert read_run(tmp_path) is None


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("worlds/l/grasp_easy.json", "worlds_l_grasp_easy"),
        ("/any/where/worlds/l/catapult.json", "worlds_l_catapult"),
        ("/a/worlds/b/worlds/l/x.json", "worlds_l_x"),
        ("/data/mine/levels/foo.json", "mine_levels_foo"),
    ],
)
def test_level_keys_from_relative_and_absolute_paths(path, key):
    assert level_key(path) == key


def test_level_key_matching(fixture_run, shared_worlds):
    available = read_run(fixture_run).levels()
    assert match_level_key(shared_worlds / "grasp_easy.json", available) == "worlds_l_grasp_easy"
    assert match_level_key(Path("/elsewhere/hard_lunar_lander.json"), available) == "worlds_l_hard_lunar_lander"
    with pytest.raises(CheckpointError, match="no policy for level.*catapult.*available: worlds_l_grasp_easy"):
        match_level_key(shared_worlds / "catapult.json", available)


def test_unknown_epoch_lists_the_available_ones(fixture_run):
    with pytest.raises(CheckpointError, match=r"epoch 7 is not in run .*available: \[0, 3\]"):
        read_run(fixture_run).checkpoint(7, "worlds_l_grasp_easy")
