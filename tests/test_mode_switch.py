"""The mode-switch world: its level is built from code, its experts solve it, its committed policy is bimodal."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rtc.io import levels
from rtc.io.checkpoints import load_policy, read_run
from rtc.training import mode_switch as ms


def test_builder_reproduces_the_committed_level_bit_for_bit(tmp_path):
    written = ms.build_level(tmp_path / "worlds" / "designed" / "mode_switch.json")
    assert written.read_bytes() == ms.LEVEL_PATH.read_bytes()


def test_committed_level_is_size_l_with_the_paper_spaces():
    level = levels.load_level(ms.LEVEL_PATH)
    assert level.key == "worlds_designed_mode_switch"
    obs, _ = levels.reset(level)
    assert obs.shape == (levels.OBS_DIM,)
    roles = np.asarray(level.state.polygon_shape_roles)[np.asarray(level.state.polygon.active)]
    assert {1, 2, 3} <= set(roles.tolist())  # green agent, blue goal, red wall


@pytest.mark.slow
def test_each_expert_solves_from_tuning_seeds_with_the_papers_noise():
    level = levels.load_level(ms.LEVEL_PATH)
    count = 8
    keys = jax.random.split(jax.random.key(ms.TUNING_SEEDS["checks"]), 2 * count)
    routes = jnp.repeat(jnp.array([1.0, -1.0]), count)[:, None] * jnp.ones((1, 60))
    out = ms.expert_rollout(level, routes, keys, 60, 0.1)
    assert out["solved"].all(), out["solved"]
    # switching from one route to the other a few steps in costs the episode (a red touch)
    switched = routes.at[:, 4:].multiply(-1)
    out = ms.expert_rollout(level, switched, keys, 60, 0.1)
    assert out["failed"].mean() >= 0.75


def test_committed_run_is_small_and_complete():
    size = sum(p.stat().st_size for p in ms.RUN_PATH.rglob("*") if p.is_file())
    assert size < 10 * 2**20, f"run is {size / 2**20:.1f} MB"
    run = read_run(ms.RUN_PATH)
    assert run is not None
    assert run.levels(-1) == ["worlds_designed_mode_switch"]
    summary = json.loads((ms.RUN_PATH / "summary.json").read_text())
    assert summary["seeds"]["evaluation"] not in summary["seeds"]["tuning"].values()
    assert summary["losses"]["final"] < summary["losses"]["first"]


def test_committed_policy_takes_both_routes_at_the_reset_observation():
    policy = load_policy(read_run(ms.RUN_PATH).checkpoint(-1, "worlds_designed_mode_switch"))
    obs = levels.reset_observation(levels.open_level(ms.LEVEL_PATH))
    shares = ms.reset_route_shares(policy, obs, num_samples=64)
    assert min(shares["over"], shares["under"]) >= 0.2, shares


def test_committed_evaluation_meets_the_issue_targets():
    """The reported sweep (seed 0, 512 episodes per point, s = max(1, d)): both methods solve at d = 0, and at
    d = 3 RTC beats naive by at least 0.2 with the paired 95 % interval above 0."""
    summary = json.loads((ms.RUN_PATH / "sweeps" / "paper_seed0" / "paired.json").read_text())
    by = {(p["method"], p["d"]): p for p in summary["points"]}
    assert {p["seed"] for p in summary["points"]} == {ms.EVALUATION_SEED}
    assert {p["episodes"] for p in summary["points"]} == {512}
    assert by[("naive", 0)]["solve_rate"] >= 0.8 and by[("rtc_exp", 0)]["solve_rate"] >= 0.8
    rtc = by[("rtc_exp", 3)]
    assert rtc["s"] == 3 and rtc["minus_naive"] >= 0.2 and rtc["minus_naive_paired_95"][0] > 0
    assert set(m for m, _ in by) == set(ms.SWEEP_METHODS) and {d for _, d in by} == {0, 1, 2, 3, 4}
