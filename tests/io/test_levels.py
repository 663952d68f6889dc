"""Levels and environment: observations equal the paper's stack for all 12 levels; clear refusals."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtc.io import levels
from tests.conftest import shared_path

PAPER_LEVELS = sorted(p.stem for p in shared_path("worlds", "l").glob("*.json"))


@jax.jit
def _ten_steps(state, env_params):
    env = levels.make_env()

    def body(state, k):
        action = jnp.sin(0.7 * jnp.arange(6) + 0.3 * k)
        obs, state, *_ = env.step_env(jax.random.key(k), state, action, env_params)
        return state, obs

    return jax.lax.scan(body, state, jnp.arange(10))[1]


@pytest.fixture(scope="module")
def upstream_obs():
    return np.load(shared_path("fixtures", "upstream_obs.npz"))


def test_there_are_twelve_paper_levels():
    assert len(PAPER_LEVELS) == 12


@pytest.mark.parametrize("name", PAPER_LEVELS)
def test_observations_match_the_paper_stack(upstream_obs, shared_worlds, name):
    level = levels.load_level(shared_worlds / f"{name}.json")
    assert level.key == f"worlds_l_{name}"
    obs, state = levels.reset(level, jax.random.key(0))
    expected = upstream_obs[level.key]
    assert obs.shape == (levels.OBS_DIM,)
    np.testing.assert_array_equal(obs, expected[0])
    np.testing.assert_allclose(_ten_steps(state, level.env_params), expected[1:], rtol=0, atol=2e-5)


def test_project_worlds_hold_all_twelve_paper_levels_and_reset_exactly(upstream_obs):
    """Every one of the 12 project levels resets to the paper stack's observation bit for bit (the fixture's
    first row), and the committed copy (worlds/prepared) is what kinetix gives."""
    shipped = sorted(p.stem for p in (levels.PROJECT_WORLDS / "l").glob("*.json"))
    assert shipped == PAPER_LEVELS and len(shipped) == 12
    assert sorted(upstream_obs.files) == [f"worlds_l_{name}" for name in PAPER_LEVELS]
    for name in shipped:
        level = levels.load_level(levels.PROJECT_WORLDS / "l" / f"{name}.json")
        assert level.key == f"worlds_l_{name}"
        obs, _ = levels.reset(level, jax.random.key(0))
        expected = upstream_obs[level.key][0]
        assert np.asarray(obs).dtype == expected.dtype and obs.shape == expected.shape
        np.testing.assert_array_equal(np.asarray(obs), expected, err_msg=name)
        assert levels.paper_level_note(level.key, level.path) is None
        np.testing.assert_array_equal(levels._load_cached(levels._prepared_file(level.path, "reset_obs")), obs)


def test_kinetix_versions_of_two_levels_differ_from_the_papers_and_are_noted(upstream_obs):
    """kinetix-env's car_launch and chain_lander are other levels (pinned: a kinetix-env change is noticed); the
    project ships the paper's files for them, and a warning names kinetix's when it is used."""
    for name, count in levels.KINETIX_DIFFERS_FROM_PAPER.items():
        path = levels.kinetix_levels_folder() / f"{name}.json"
        obs, _ = levels.reset(levels.load_level(path), jax.random.key(0))
        assert int((np.asarray(obs) != upstream_obs[f"worlds_l_{name}"][0]).sum()) == count
        assert levels.paper_level_note(f"worlds_l_{name}", path) is not None
        assert levels.paper_level_note(f"worlds_l_{name}", levels.PROJECT_WORLDS / "l" / f"{name}.json") is None


def test_project_worlds_are_kinetix_levels_or_the_paper_files_with_their_notice():
    shipped = sorted(p.stem for p in (levels.PROJECT_WORLDS / "l").glob("*.json"))
    assert shipped == PAPER_LEVELS
    notice = (levels.PROJECT_WORLDS / "NOTICE").read_text()
    assert "MIT License, Copyright (c) 2025 Physical Intelligence" in notice
    assert "MIT License, Copyright (c) 2024 Michael Matthews" in notice
    paper_part, kinetix_part = notice.split("Physical Intelligence.", 1)
    for name in shipped:
        ours = (levels.PROJECT_WORLDS / "l" / f"{name}.json").read_bytes()
        if name in levels.KINETIX_COPIES:
            assert ours == (levels.kinetix_levels_folder() / f"{name}.json").read_bytes()
            assert f"{name}.json" in kinetix_part.split("Michael Matthews")[0]
        else:
            assert ours == shared_path("worlds", "l", f"{name}.json").read_bytes()
            assert f"{name}.json" in paper_part


def test_level_candidates_offer_configured_then_project_then_kinetix_levels(tmp_path):
    from rtc.io import roots

    shutil.copy(shared_path("worlds", "l", "catapult.json"), tmp_path / "catapult.json")
    candidates = roots.level_candidates([tmp_path, levels.PROJECT_WORLDS])
    assert candidates[0] == (tmp_path / "catapult.json").resolve()
    assert candidates[1].parent in {folder.resolve() for folder in levels.PROJECT_LEVEL_FOLDERS}
    assert levels.kinetix_levels_folder() / "h4_cartpole.json" in candidates


def test_render_level_draws_the_scene(shared_worlds):
    image = levels.render_level(levels.load_level(shared_worlds / "grasp_easy.json"))
    assert image.shape == (levels.RENDER_SIZE, levels.RENDER_SIZE, 3)
    assert image.dtype == np.uint8
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 5  # floor, shapes, background
    floor, sky = image[-5].mean(axis=0), image[5].mean(axis=0)
    assert not np.allclose(floor, sky)  # upright: the floor is at the bottom


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.json", None, "does not exist"),
        ("level.txt", "{}", "not a .json file"),
        ("broken.json", "{not json", "not a valid Kinetix level"),
        ("empty.json", "{}", "not a valid Kinetix level"),
    ],
)
def test_bad_level_files_are_refused_with_the_reason(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(levels.LevelError, match=message):
        levels.load_level(path)


def test_a_level_of_another_size_is_refused(tmp_path):
    medium = levels.kinetix_levels_folder().parent / "m" / "arm_left.json"
    with pytest.raises(levels.LevelError, match="policies here use size 'L'.*679"):
        levels.load_level(medium)


def test_a_policy_with_another_observation_size_is_refused(shared_worlds):
    level = levels.load_level(shared_worlds / "grasp_easy.json")
    with pytest.raises(levels.LevelError, match="expects observations of 100 floats.*gives 679"):
        levels.check_obs_dim(level, 100)
    levels.check_obs_dim(level, 679)


def test_level_json_parse_is_checked_before_kinetix(tmp_path):
    data = json.loads(shared_path("worlds", "l", "grasp_easy.json").read_text())
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(data))
    assert levels.load_level(path).name == "copy"


def test_reset_observation_is_kept_on_disk_so_a_warm_open_never_reads_the_level(tmp_path, monkeypatch):
    from rtc.io import export_cache

    monkeypatch.setattr(export_cache, "cache_folder", lambda: tmp_path / "cache")
    path = tmp_path / "grasp_easy.json"  # same level, other bytes: no committed copy under worlds/prepared
    path.write_text(json.dumps(json.loads((levels.PROJECT_WORLDS / "l" / "grasp_easy.json").read_text()), indent=1))
    cold = levels.open_level(path)
    assert cold.loaded  # nothing stored yet: read at once (and validated)
    obs = levels.reset_observation(cold)
    stored = list((tmp_path / "cache" / "reset_obs").glob("*.npy"))
    assert len(stored) == 1 and "kinetix-env3.0.2" in stored[0].name
    warm = levels.open_level(path)
    assert not warm.loaded
    np.testing.assert_array_equal(levels.reset_observation(warm), obs)
    assert not warm.loaded  # the observation came from disk
    np.testing.assert_array_equal(warm.state.polygon.position, cold.state.polygon.position)  # read on demand
    assert warm.loaded
    # another file content is another entry; a corrupt entry is recomputed, not trusted
    stored[0].write_bytes(b"not an array")
    np.testing.assert_array_equal(levels.reset_observation(levels.open_level(path)), obs)
    with pytest.raises(levels.LevelError, match="does not exist"):
        levels.open_level(tmp_path / "missing.json")


def test_level_picture_is_kept_on_disk_and_prepare_stores_both(tmp_path, monkeypatch):
    from rtc.io import export_cache

    monkeypatch.setattr(export_cache, "cache_folder", lambda: tmp_path)
    path = tmp_path / "grasp_easy.json"  # same level, other bytes: no committed copy under worlds/prepared
    path.write_text(json.dumps(json.loads((levels.PROJECT_WORLDS / "l" / "grasp_easy.json").read_text()), indent=1))
    assert not levels.is_prepared(path)
    levels.reset_observation(levels.open_level(path))
    assert not levels.is_prepared(path)  # the picture is missing
    levels.level_picture(levels.open_level(path))
    assert levels.is_prepared(path)
    stored = list((tmp_path / "level_picture").glob("*.npy"))
    assert len(stored) == 1 and stored[0].name.endswith(f"-{levels.RENDER_SIZE}px.npy")
    warm = levels.open_level(path)
    picture = levels.level_picture(warm)
    assert not warm.loaded  # the picture came from disk
    np.testing.assert_array_equal(picture, levels.render_level(levels.load_level(path)))
    stored[0].write_bytes(b"not an array")  # a damaged entry is drawn again, not trusted
    np.testing.assert_array_equal(levels.level_picture(levels.open_level(path)), picture)


def test_prepared_worlds_cover_every_project_level_and_nothing_stale():
    """worlds/prepared holds, for each project level (worlds/l and worlds/designed), its reset observation and
    picture keyed by the file's
    current sha256 and the installed kinetix-env/jax; an edited level or a version bump fails here (rerun
    ``python -m rtc.io.levels --prepare``)."""
    expected = set()
    for path in levels.project_level_files():
        expected |= {
            levels._prepared_file(path, "reset_obs"),
            levels._prepared_file(path, "level_picture", f"-{levels.RENDER_SIZE}px"),
        }
    assert len(expected) == 2 * 13  # the paper's 12 and the mode-switch world
    assert set(levels.PREPARED.rglob("*.npz")) == expected
    for path in levels.project_level_files():
        assert levels.is_prepared(path)


@pytest.mark.slow  # starts a subprocess
def test_a_fresh_machine_shows_a_project_level_without_kinetix(tmp_path):
    """Empty cache: the observation and picture of a worlds/ level come from worlds/prepared; kinetix is not
    imported, and they equal what kinetix computes."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np; from rtc.io import export_cache, levels; "
        f"export_cache.cache_folder = lambda: __import__('pathlib').Path({str(tmp_path)!r}); "
        "level = levels.open_level(levels.PROJECT_WORLDS / 'l' / 'grasp_easy.json'); "
        "obs = np.asarray(levels.reset_observation(level)); pic = levels.level_picture(level); "
        "assert 'kinetix' not in sys.modules, 'kinetix imported'; "
        f"np.save({str(tmp_path / 'obs.npy')!r}, obs); np.save({str(tmp_path / 'pic.npy')!r}, pic)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=levels.PROJECT_ROOT)
    level = levels.load_level(levels.PROJECT_WORLDS / "l" / "grasp_easy.json")
    np.testing.assert_array_equal(np.load(tmp_path / "obs.npy"), levels.reset(level)[0])
    picture, drawn = np.load(tmp_path / "pic.npy"), levels.render_level(level)
    assert picture.shape == drawn.shape == (levels.RENDER_SIZE, levels.RENDER_SIZE, 3)
    assert (picture == drawn).all(axis=-1).mean() > 0.999  # rasterisation may differ by a pixel on other CPUs
    assert picture.std() > 10  # a scene, not a blank canvas
