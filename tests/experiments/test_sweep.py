"""Sweeps of closed-loop metrics against inference delay, cached and exported as CSV."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from rtc.experiments import rollout, sweep
from tests.experiments.test_rollout import demo_setup

# Every test here runs (or shares a fixture that runs) a closed-loop rollout, compiled for 10-30 s per process.
pytestmark = pytest.mark.slow

SETTINGS = sweep.SweepSettings(
    methods=("naive", "rtc_exp"),
    delays=(0, 2),
    execute_horizon_rule="min",
    template=rollout.RolloutSettings(num_episodes=4, episode_steps=32, segment_steps=16, bid_samples=4),
)


@pytest.fixture(scope="module")
def swept():
    policy, level = demo_setup()
    cache: dict = {}
    updates: list[sweep.SweepProgress] = []
    rows = sweep.sweep(policy, level, SETTINGS, progress_callback=updates.append, cache=cache)
    return rows, cache, updates


def test_execute_horizon_rules():
    assert [sweep.execute_horizon_for(d, 8) for d in range(5)] == [1, 1, 2, 3, 4]
    assert [sweep.execute_horizon_for(d, 8, "max") for d in range(5)] == [8, 7, 6, 5, 4]
    assert sweep.execute_horizon_for(2, 8, 5) == 5
    with pytest.raises(ValueError, match="accepted 3..8"):
        sweep.execute_horizon_for(3, 8, 2)
    with pytest.raises(ValueError, match="'median'"):
        sweep.execute_horizon_for(3, 8, "median")
    points = sweep.SweepSettings(methods=("bid",), delays=(0, 4), execute_horizon_rule="min").points(8)
    assert [(p.method, p.inference_delay, p.execute_horizon) for p in points] == [("bid", 0, 1), ("bid", 4, 4)]


def test_sweep_rows_equal_direct_rollouts(swept):
    rows, _, updates = swept
    policy, level = demo_setup()
    assert [(r["method"], r["inference_delay"], r["execute_horizon"]) for r in rows] == [
        ("naive", 0, 1),
        ("naive", 2, 2),
        ("rtc_exp", 0, 1),
        ("rtc_exp", 2, 2),
    ]
    point = SETTINGS.points(8)[3]
    direct = rollout.run_rollout(policy, level, point, record=False)
    summary = direct.summary()
    for key in ("solve_rate", "mean_return", "mean_boundary_jump", "mean_length"):
        assert rows[3][key] == pytest.approx(summary[key], rel=1e-6), key
    assert rows[3]["episodes"] == 4 and rows[3]["level"] == "worlds_l_grasp_easy"
    assert rows[3]["mean_return"] == pytest.approx(direct.returns.mean(), rel=1e-6)
    # progress: each point reports its segments, then its row
    finished = [u for u in updates if u.row is not None]
    assert [u.points_done for u in finished] == [1, 2, 3, 4]
    assert [u.steps_done for u in updates if u.row is None][:1] == [16]
    assert updates[-1].fraction == 1.0


def test_cached_points_are_not_recomputed_and_cancel_keeps_them(swept):
    rows, cache, _ = swept
    policy, level = demo_setup()
    points = [k for k in cache if k[-1] != "episodes"]
    assert len(points) == 4 and all((*k, "episodes") in cache for k in points)  # each row with its episodes
    updates: list[sweep.SweepProgress] = []
    again = sweep.sweep(policy, level, SETTINGS, progress_callback=updates.append, cache=cache)
    assert again == rows
    assert all(u.row is not None for u in updates)  # no rollout segment ran
    more = dataclasses.replace(SETTINGS, delays=(0, 2, 3))
    with pytest.raises(rollout.RolloutCancelled):
        sweep.sweep(policy, level, more, progress_callback=lambda u: u.row is not None, cache=cache)
    assert len(cache) == 8  # the cancelled point is not cached, the others are kept


def test_episodes_come_with_the_rows_and_pair_the_methods(swept):
    """``episodes`` receives every point's episode records (from the cache too): the row's solve rate is their
    mean, and naive and RTC share episode indices, so ``store.comparison_table`` pairs them."""
    from rtc.experiments.sweep import store

    rows, cache, _ = swept
    policy, level = demo_setup()
    episodes: list[dict] = []
    updates: list[sweep.SweepProgress] = []
    again = sweep.sweep(policy, level, SETTINGS, progress_callback=updates.append, cache=cache, episodes=episodes)
    assert again == rows and all(u.row is not None for u in updates)  # all from the cache
    assert len(episodes) == len(rows)
    for row, records in zip(rows, episodes, strict=True):
        assert records["method"][0] == row["method"] and len(records["solved"]) == row["episodes"]
        assert np.mean(records["solved"]) == pytest.approx(row["solve_rate"])
    fresh: list[dict] = []
    recomputed = sweep.sweep(policy, level, SETTINGS, episodes=fresh)  # no cache: computed again, the same numbers
    pd.testing.assert_frame_equal(pd.DataFrame(recomputed), pd.DataFrame(rows))
    for cached, computed in zip(episodes, fresh, strict=True):
        np.testing.assert_array_equal(cached["solved"], computed["solved"])
    frame = pd.concat([pd.DataFrame(r) for r in episodes], ignore_index=True)
    table = store.comparison_table(frame, "naive")
    assert set(table["method"]) == {"rtc_exp"} and sorted(table["delay"]) == [0, 2]
    assert (table["episodes"] == SETTINGS.template.num_episodes).all()


def test_csv_round_trip_and_metric_series(swept):
    rows, _, _ = swept
    text = sweep.to_csv(rows)
    assert text.splitlines()[0] == ",".join(sweep.CSV_COLUMNS)
    pd.testing.assert_frame_equal(pd.DataFrame(sweep.from_csv(text)), pd.DataFrame(rows))  # NaN == NaN here
    assert np.isnan(rows[0]["mean_step_size"])  # d = 0, s = 1: every step is a switch, no step away from one
    series = sweep.metric_by_method(rows, "mean_boundary_jump")
    delays, values = series["rtc_exp"]
    np.testing.assert_array_equal(delays, [0, 2])
    np.testing.assert_array_equal(values, [rows[2]["mean_boundary_jump"], rows[3]["mean_boundary_jump"]])
    with pytest.raises(ValueError, match="solve rate"):
        sweep.metric_by_method(rows, "solve rate")


def test_finished_points_of_bid_forward_are_kept_per_weak_policy():
    """The server's cache of finished points: a bid_forward point against another weak policy is another point;
    the weak policy does not change the key of a method that does not use it."""
    from rtc.experiments.sweep import _cache_key
    from rtc.io import levels

    level = levels.open_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    forward, backward = (rollout.RolloutSettings(method=m) for m in ("bid_forward", "bid"))
    assert _cache_key("p", level, forward, "weak-a") != _cache_key("p", level, forward, "weak-b")
    assert _cache_key("p", level, backward, "weak-a") == _cache_key("p", level, backward, "weak-b")
    assert _cache_key("p", level, backward, "weak-a") == _cache_key("p", level, backward)
