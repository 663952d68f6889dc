"""The Ray backend gives the in-process numbers, number for number, on a real local 2-CPU Ray instance."""

from __future__ import annotations

import pandas as pd
import pytest

from rtc.experiments import rollout, sweep
from rtc.experiments.sweep import grid as sweep_grid
from rtc.experiments.sweep import run as sweep_run
from rtc.experiments.sweep import store as sweep_store
from rtc.io.checkpoints import open_run
from tests.conftest import DEMO_RUN

SETTINGS = sweep.SweepSettings(
    methods=("naive", "rtc_exp"),
    delays=(1, 2),
    execute_horizon_rule="min",
    template=rollout.RolloutSettings(num_episodes=4, episode_steps=32, bid_samples=4),
)


@pytest.mark.slow
def test_ray_sweep_equals_in_process(tmp_path, ray_local):
    run = open_run(DEMO_RUN)
    entries = sweep_grid.load_entries(run, 1, sweep_grid.choose_levels(run, 1, ["worlds_l_grasp_easy"])[0])
    tasks = sweep_grid.plan(entries, SETTINGS)
    local_store = sweep_store.ResultsStore(tmp_path / "local")
    assert sweep_run.run_grid(entries, tasks, local_store) == (4, 0)
    ray_store = sweep_store.ResultsStore(tmp_path / "ray")
    updates: list[tuple[int, int]] = []
    assert sweep_run.run_grid(entries, tasks, ray_store, lambda d, t, _: updates.append((d, t)), "") == (4, 0)
    assert updates[0] == (0, 16) and updates[-1] == (16, 16)  # progress counts episodes of finished points
    assert sorted({d for d, _ in updates}) == [0, 4, 8, 12, 16]
    key = ["point_id"]
    local = sweep_store.read_results(local_store.path).sort_values(key).reset_index(drop=True)
    remote = sweep_store.read_results(ray_store.path).sort_values(key).reset_index(drop=True)
    assert set(remote.backend) == {"ray"} and set(local.backend) == {"in-process"}
    same = [c for c in sweep_store.COLUMNS if c not in ("backend", "seconds")]
    pd.testing.assert_frame_equal(local[same], remote[same], check_exact=True)
    assert remote.solve_rate.notna().all() and remote.mean_boundary_jump.notna().all()
    order = ["point_id", "episode"]
    local_episodes = local_store.episode_frame().sort_values(order).reset_index(drop=True)
    remote_episodes = ray_store.episode_frame().sort_values(order).reset_index(drop=True)
    pd.testing.assert_frame_equal(local_episodes, remote_episodes, check_exact=True)  # episode for episode
    # the command line's --ray (joining this process's instance) stores the same numbers
    from tests.commands.test_sweep_cli import SMALL, run_cli

    cli_argv = [*SMALL, "--action-noise", "0.1", "--delays", "1", "2", "--ray"]  # SMALL sets 0.05
    code, stdout, stderr = run_cli(DEMO_RUN, "--out", tmp_path / "cli", *cli_argv)
    assert code == 0 and "points: 4 computed, 0 reused" in stdout, stderr
    cli = sweep_store.read_results(tmp_path / "cli" / "results.parquet").sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(local[same], cli[same], check_exact=True)
    assert ray_local.is_initialized()  # the command line left the shared instance running
