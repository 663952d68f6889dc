"""rtc-sweep: the command line, the results store (intervals, resume, atomic writes) and the statistics."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from rtc.commands import sweep as sweep_cli
from rtc.experiments import rollout, sweep
from rtc.experiments.sweep import grid as sweep_grid
from rtc.experiments.sweep import run as sweep_run
from rtc.experiments.sweep import store as sweep_store
from rtc.io.checkpoints import open_run
from tests.conftest import DEMO_RUN, shared_path
from tests.experiments.test_rollout import demo_setup

LEVEL = "worlds_l_grasp_easy"
SMALL = ["--levels", LEVEL, "--methods", "naive", "rtc_exp", "--execute-horizons", "min"]
SMALL += ["--episodes", "4", "--episode-steps", "32", "--bid-samples", "4", "--action-noise", "0.05"]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = sweep_cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    first = run_cli(DEMO_RUN, "--out", folder, *SMALL, "--delays", "1", "2")
    before = pd.read_parquet(folder / "results.parquet")
    second = run_cli(DEMO_RUN, "--out", folder, *SMALL, "--delays", "1", "2", "3")
    return folder, first, before, second


def test_statistics_definitions():
    # Wilson 95 %: 0/4 -> [0, z²/(n+z²)]; 5/10 symmetric around 0.5 (textbook values)
    assert sweep.wilson_interval(0, 4) == pytest.approx((0.0, 0.4898908), abs=1e-6)
    assert sweep.wilson_interval(5, 10) == pytest.approx((0.2365931, 0.7634069), abs=1e-6)
    assert sweep.wilson_interval(4, 4)[1] == 1.0 and all(math.isnan(v) for v in sweep.wilson_interval(0, 0))
    mean, low, high = sweep.mean_interval(np.array([1.0, 2.0, 3.0, 4.0]))
    assert mean - low == pytest.approx(high - mean)
    assert mean == 2.5 and high - mean == pytest.approx(3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2, rel=1e-6)
    assert math.isnan(sweep.mean_interval(np.array([1.0]))[1])
    # equal cluster sizes: the pooled ratio's interval is the t interval of the cluster means
    sums, counts = np.array([2.0, 4.0, 9.0]), np.array([2, 2, 2])
    assert sweep.ratio_interval(sums, counts) == pytest.approx(sweep.mean_interval(sums / counts), rel=1e-9)
    assert sweep.ratio_interval(np.array([3.0, 0.0]), np.array([3, 0]))[0] == 1.0  # empty clusters skipped
    # the jump is undefined exactly where the action before the switch is padding: d - 1 >= H - s
    assert sweep.jump_defined(2, 6, 8) and not sweep.jump_defined(3, 6, 8) and not sweep.jump_defined(4, 5, 8)
    assert sweep.jump_defined(0, 8, 8) and sweep.jump_defined(4, 4, 8)


def test_paper_grid_rules():
    assert [sweep.execute_horizons_for(d, 8, "all") for d in range(5)] == [
        list(range(1, 9)),
        list(range(1, 8)),
        list(range(2, 7)),
        [3, 4, 5],
        [4],
    ]
    assert sweep.execute_horizons_for(3, 8, (2, 3, 8)) == [3, 8]
    args = sweep_cli.build_parser().parse_args([str(DEMO_RUN), "--out", "x"])
    settings = sweep_cli.sweep_settings(args)
    assert settings.methods == ("naive", "rtc_exp", "hard_masking", "bid") and settings.delays == (0, 1, 2, 3, 4)
    assert settings.template.bid_samples == 16 and settings.template.num_flow_steps == 5
    assert settings.template.num_episodes == 2048 and settings.template.action_noise == 0.1
    assert len(settings.points(8)) == 4 * 24  # 24 (d, s) pairs per method, as in the paper


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--episodes", "0"], "--episodes 0 is out of range; accepted: 1..65536"),
        (["--methods", "rtc"], "--methods 'rtc' is not accepted; choose one of naive, rtc_exp"),
        (["--execute-horizons", "most"], "--execute-horizons 'most' is not accepted"),
        (["--execute-horizons", "0"], "--execute-horizons 0 is out of range"),
        (["--delays", "-1"], "--delays -1 is out of range"),
        (["--bid-samples", "999"], "--bid-samples 999 is out of range; accepted: 1..256"),
        (["--action-noise", "-0.1"], "--action-noise -0.1 is out of range; accepted: 0..1"),
        (["--action-noise", "1.5"], "--action-noise 1.5 is out of range; accepted: 0..1"),
        (["--action-noise", "nan"], "--action-noise nan is out of range; accepted: 0..1"),
        (["--action-noise", "loud"], "argument --action-noise: invalid float value: 'loud'"),
        (["--preset", "slow"], "--preset 'slow' is not accepted; choose one of paper, quick"),
        (["--preset", "quick", "--episodes", "0"], "--episodes 0 is out of range; accepted: 1..65536"),
        (["--levels", "worlds_l_nowhere"], "level 'worlds_l_nowhere' has no policy in run demo epoch 1"),
        (["--epoch", "7"], "epoch"),
        (["--delays", "9", "--execute-horizons", "9"], "the grid is empty"),
    ],
)
def test_bad_values_exit_2_before_any_work(tmp_path, argv, message):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(DEMO_RUN, "--out", out, *argv)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert not out.exists()


def test_results_store_rows_match_direct_rollouts(swept):
    _, (code, stdout, _), before, _ = swept
    assert code == 0 and "points: 4 computed, 0 reused" in stdout
    assert list(before.columns) == list(sweep_store.COLUMNS) and len(before) == 4
    policy, level = demo_setup()
    row = before[(before.method == "rtc_exp") & (before.delay == 2)].iloc[0]
    point = rollout.RolloutSettings(
        method="rtc_exp",
        inference_delay=2,
        execute_horizon=2,
        num_episodes=4,
        episode_steps=32,
        bid_samples=4,
        action_noise=0.05,
    )
    direct = rollout.run_rollout(policy, level, point, record=False)
    assert row.episodes == 4 and row.solved == int(direct.solved.sum())
    assert row.solve_rate == direct.solved.mean()
    assert (row.solve_rate_low, row.solve_rate_high) == sweep.wilson_interval(int(direct.solved.sum()), 4)
    assert (row.mean_return, row.mean_return_low, row.mean_return_high) == pytest.approx(
        sweep.mean_interval(direct.returns), rel=1e-6
    )
    assert row.mean_boundary_jump == pytest.approx(direct.jump_sums.sum() / direct.jump_counts.sum(), rel=1e-6)
    assert row.mean_boundary_jump_low <= row.mean_boundary_jump <= row.mean_boundary_jump_high
    assert row.switches == direct.jump_counts.sum() and row.execute_horizon == 2
    assert row.mean_step_size == pytest.approx(direct.summary()["mean_step_size"], rel=1e-6)
    assert row.mean_step_size_low <= row.mean_step_size <= row.mean_step_size_high
    assert row.policy_fingerprint == sweep.policy_fingerprint(policy)
    assert row.level_sha256 == sweep_store.file_sha256(level.path)
    key = sweep_store.point_key(row.policy_fingerprint, row.level_sha256, point)
    assert row.point_id == sweep_store.point_id(key)


def test_rerun_with_larger_grid_computes_only_missing_points(swept):
    folder, _, before, (code, stdout, _) = swept
    assert code == 0 and "points: 2 computed, 4 reused" in stdout
    after = pd.read_parquet(folder / "results.parquet")
    assert len(after) == 6 and sorted(after.delay.unique()) == [1, 2, 3]
    kept = after.set_index("point_id").loc[before.point_id]
    pd.testing.assert_frame_equal(kept.reset_index()[before.columns], before)  # reused rows untouched
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["run"] == str(DEMO_RUN.resolve()) and manifest["epoch"] == 1
    assert manifest["settings"]["bid_samples"] == 4 and manifest["settings"]["delays"] == [1, 2, 3]
    assert manifest["settings"]["action_noise"] == 0.05 and set(after.action_noise) == {0.05}  # --action-noise
    assert manifest["seeds"]["seed"] == 0 and "fold_in" in manifest["seeds"]["rule"]
    assert manifest["packages"]["jax"] and LEVEL in manifest["levels"]
    assert [(h["computed"], h["reused"]) for h in manifest["history"]] == [(4, 0), (2, 4)]
    # another run into the same folder is refused before any work
    code, _, stderr = run_cli(shared_path("fixtures", "upstream_small_run"), "--out", folder, "--episodes", "1")
    assert code == 2 and "holds a sweep of run" in stderr and "choose another --out folder" in stderr


def test_interrupt_keeps_finished_points_whole(tmp_path):
    run = open_run(DEMO_RUN)
    entries = sweep_grid.load_entries(run, 1, sweep_grid.choose_levels(run, 1, [LEVEL])[0])
    settings = sweep.SweepSettings(
        methods=("naive",),
        delays=(1, 2, 3),
        execute_horizon_rule="min",
        template=rollout.RolloutSettings(num_episodes=4, episode_steps=32, bid_samples=4),
    )
    tasks = sweep_grid.plan(entries, settings)
    store = sweep_store.ResultsStore(tmp_path)
    points_done = []

    def progress(done, total, note):
        if "step" not in note:
            points_done.append(done)
            if len(points_done) == 2:
                raise KeyboardInterrupt  # Ctrl-C between points

    with pytest.raises(KeyboardInterrupt):
        sweep_run.run_grid(entries, tasks, store, progress)
    on_disk = sweep_store.read_results(tmp_path / "results.parquet")
    assert len(on_disk) == 2 and list(on_disk.delay) == [1, 2]
    assert not list(tmp_path.glob("*.part"))  # no temporary file left behind
    assert sweep_run.run_grid(entries, tasks, sweep_store.ResultsStore(tmp_path)) == (1, 2)


def test_stored_sweeps_are_found_inside_runs_and_roots_only(tmp_path, swept):
    import shutil

    from rtc.io import roots
    from rtc.io.checkpoints import read_run

    folder = swept[0]
    runs_root = tmp_path / "runs"
    run = runs_root / "r1"
    (run / "1" / "policies").mkdir(parents=True)
    (run / "1" / "policies" / "worlds_l_x.pkl").write_bytes(b"")
    shutil.copytree(folder, run / "sweeps" / "grid")
    (run / "sweeps" / "incomplete").mkdir()  # no results: not a sweep
    extra = tmp_path / "extra"
    shutil.copytree(folder, extra / "team" / "a")
    outside = tmp_path / "outside"
    shutil.copytree(folder, outside)
    (extra / "escape").symlink_to(outside, target_is_directory=True)  # a link out of the root is skipped
    found = roots.find_sweeps({"runs/r1": read_run(run)}, [extra])
    assert found == {"runs/r1/sweeps/grid": (run / "sweeps" / "grid").resolve(), "extra/team/a": extra / "team" / "a"}
    assert roots.sweeps_roots({"RTC_SWEEPS_ROOTS": f"{extra}:{tmp_path / 'missing'}"}) == [extra.resolve()]
