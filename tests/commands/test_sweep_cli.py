"""rtc-sweep: the command line, the results store (intervals, resume, atomic writes) and the statistics."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import time

import numpy as np
import pandas as pd
import pytest

from rtc.commands import sweep as sweep_cli
from rtc.errors import SettingsError
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
        # one range for d, 0..H - 1, named before the policy is loaded and as numbers after (H = 8 here)
        (["--delays", "-1"], "--delays -1 is out of range; accepted: 0..H - 1"),
        (["--delays", "8"], "--delays 8 is out of range; accepted: 0..7"),
        (["--delays", "9"], "--delays 9 is out of range; accepted: 0..7"),
        (["--execute-horizons", "4", "9"], "--execute-horizons 9 is out of range; accepted: 'all', 'min', 'max', 1..8"),
        (["--methods", "naive", "rtc_exp", "--baseline", "bid"], "--baseline 'bid' is not accepted; choose one of"),
        (["--ray-timeout", "0"], "--ray-timeout 0 is out of range; accepted: 0.1..3600 seconds"),
        (["--bid-samples", "999"], "--bid-samples 999 is out of range; accepted: 1..256"),
        (["--action-noise", "-0.1"], "--action-noise -0.1 is out of range; accepted: 0..1"),
        (["--action-noise", "1.5"], "--action-noise 1.5 is out of range; accepted: 0..1"),
        (["--action-noise", "nan"], "--action-noise nan is out of range; accepted: 0..1"),
        (["--action-noise", "loud"], "argument --action-noise: invalid float value: 'loud'"),
        (["--preset", "slow"], "--preset 'slow' is not accepted; choose one of paper, quick"),
        (["--preset", "quick", "--episodes", "0"], "--episodes 0 is out of range; accepted: 1..65536"),
        (["--levels", "worlds_l_nowhere"], "level 'worlds_l_nowhere' has no policy in run demo epoch 1"),
        (["--epoch", "7"], "epoch"),
        (["--delays", "3", "--execute-horizons", "2"], "the grid is empty"),
    ],
)
def test_bad_values_exit_2_before_any_work(tmp_path, argv, message):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(DEMO_RUN, "--out", out, *argv)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("/proc/rtc-sweep-out", "--out /proc/rtc-sweep-out cannot be created"),
        ("{file}/sub", "/sub cannot be created: "),
        ("{file}", "is a file; accepted: a folder"),
    ],
)
def test_an_out_folder_that_cannot_be_written_is_refused_before_any_work(tmp_path, out, message):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    out = out.format(file=a_file)
    started = time.monotonic()
    code, stdout, stderr = run_cli(DEMO_RUN, "--out", out, *SMALL, "--delays", "1")
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2 and stdout == "" and len(lines) == 1 and message in lines[0], stderr
    assert time.monotonic() - started < 10  # before loading a policy, let alone computing a point
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_execute_horizons_left_out_at_some_delays_are_named():
    settings = sweep.SweepSettings(delays=(0, 2, 3), execute_horizon_rule=(1, 4))
    assert sweep.check_grid(settings, 8) == ["s=1 is left out at d=2, 3: the protocol needs max(1, d) <= s"]
    pairs = [(p.inference_delay, p.execute_horizon) for p in settings.points(8)]
    assert pairs[:4] == [(0, 1), (0, 4), (2, 4), (3, 4)]
    with pytest.raises(SettingsError, match="--execute-horizons 9 is out of range; accepted: 'all', 'min', 'max'"):
        sweep.check_grid(dataclasses.replace(settings, execute_horizon_rule=(4, 9)), 8)
    with pytest.raises(SettingsError, match="delays=8 is out of range; accepted: 0..7"):
        dataclasses.replace(settings, delays=(8,)).points(8)  # the library refuses what the command line does


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
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
    assert row.truncated == int(direct.truncated.sum())
    # the point's episodes, as stored in episodes.parquet, are the rollout's episodes one by one
    folder = swept[0]
    episodes = sweep_store.read_episodes(folder / "episodes.parquet")
    mine = episodes[episodes.point_id == row.point_id].sort_values("episode")
    assert list(mine.episode) == [0, 1, 2, 3] and set(mine.seed) == {0} and set(mine.method) == {"rtc_exp"}
    np.testing.assert_array_equal(mine.solved, direct.solved)
    np.testing.assert_array_equal(mine.truncated, direct.truncated)
    np.testing.assert_array_equal(mine.length, direct.lengths)
    np.testing.assert_allclose(mine["return"], direct.returns, rtol=1e-6)
    np.testing.assert_array_equal(mine.switches, direct.jump_counts)


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_results_rows_are_derivable_from_the_episodes(swept):
    folder = swept[0]
    results = sweep_store.read_results(folder / "results.parquet")
    episodes = sweep_store.read_episodes(folder / "episodes.parquet")
    assert len(episodes) == 4 * len(results) and set(episodes.point_id) == set(results.point_id)
    for row in results.itertuples():
        mine = episodes[episodes.point_id == row.point_id]
        assert (mine.level.iloc[0], mine.method.iloc[0]) == (row.level, row.method)
        assert (mine.delay.iloc[0], mine.execute_horizon.iloc[0]) == (row.delay, row.execute_horizon)
        assert row.episodes == len(mine) and row.solved == mine.solved.sum()
        assert row.solve_rate == mine.solved.mean()  # truncated episodes count as unsolved
        assert row.truncated == mine.truncated.sum() and not (mine.truncated & mine.solved).any()
        assert row.mean_return == pytest.approx(mine["return"].mean(), rel=1e-6)
        assert row.mean_length == pytest.approx(mine.length.mean())
        assert row.switches == mine.switches.sum()
        jumps = (mine.mean_jump * mine.switches).where(mine.switches > 0, 0.0)
        assert row.mean_boundary_jump == pytest.approx(jumps.sum() / mine.switches.sum(), rel=1e-6)


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_comparisons_recompute_from_the_episodes(swept):
    """McNemar's exact p-value and the paired interval of every row, recomputed from episodes.parquet."""
    from rtc.numerics import stats

    folder = swept[0]
    episodes = sweep_store.read_episodes(folder / "episodes.parquet")
    table = sweep_store.read_comparisons(folder / "comparisons.parquet")
    assert list(table.columns) == list(sweep_store.COMPARISON_COLUMNS)
    assert set(table.method) == {"rtc_exp"} and set(table.baseline) == {"naive"} and sorted(table.delay) == [1, 2, 3]
    for row in table.itertuples():
        at = episodes[(episodes.delay == row.delay) & (episodes.execute_horizon == row.execute_horizon)]
        method = at[at.method == row.method].set_index("episode").solved.sort_index()
        base = at[at.method == "naive"].set_index("episode").solved.sort_index()
        only_method = int((method & ~base).sum())
        only_base = int((~method & base).sum())
        assert (row.method_only, row.baseline_only, row.episodes) == (only_method, only_base, 4)
        assert row.p_value == stats.mcnemar_exact(only_method, only_base)
        assert row.solve_rate_diff == method.mean() - base.mean()
        assert row.diff_low <= row.solve_rate_diff <= row.diff_high
    np.testing.assert_array_equal(table.p_holm, stats.holm(table.p_value))


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
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
    assert [h["status"] for h in manifest["history"]] == ["finished", "finished"]
    episodes = sweep_store.read_episodes(folder / "episodes.parquet")
    assert len(episodes) == 6 * 4 and set(episodes.point_id) == set(after.point_id)  # the two stores in step
    # another run into the same folder is refused before any work
    code, _, stderr = run_cli(shared_path("fixtures", "upstream_small_run"), "--out", folder, "--episodes", "1")
    assert code == 2 and "holds a sweep of run" in stderr and "choose another --out folder" in stderr


@pytest.mark.slow  # runs a closed-loop rollout or steps Kinetix: over 10 s of the fast set's time (--durations)
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
    kept = sweep_store.read_episodes(tmp_path / "episodes.parquet")  # no finished point's episodes are lost
    assert len(kept) == 2 * 4 and set(kept.point_id) == set(on_disk.point_id)
    assert not list(tmp_path.glob("*.part"))  # no temporary file left behind
    assert sweep_run.run_grid(entries, tasks, sweep_store.ResultsStore(tmp_path)) == (1, 2)


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
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


@pytest.mark.slow
def test_mcnemar_of_a_real_two_method_sweep_recomputes_from_its_episodes(tmp_path):
    """A sweep whose methods disagree on some episodes (demo run, lunar lander, 16 episodes of 128 steps): the
    stored p-value is the exact McNemar test of the discordant pairs counted in episodes.parquet."""
    from rtc.numerics import stats

    out = tmp_path / "pair"
    argv = ["--levels", "worlds_l_hard_lunar_lander", "--methods", "naive", "rtc_exp", "--delays", "1"]
    argv += ["--execute-horizons", "min", "--episodes", "16", "--episode-steps", "128"]
    code, _, stderr = run_cli(DEMO_RUN, "--out", out, *argv)
    assert code == 0, stderr
    episodes = sweep_store.read_episodes(out / "episodes.parquet")
    table = sweep_store.read_comparisons(out / "comparisons.parquet")
    assert len(table) == 1
    naive = episodes[episodes.method == "naive"].sort_values("episode").solved.to_numpy()
    rtc = episodes[episodes.method == "rtc_exp"].sort_values("episode").solved.to_numpy()
    b, c = int((rtc & ~naive).sum()), int((~rtc & naive).sum())
    assert b + c > 0  # the test means something: the methods disagree on at least one episode
    # exact two-sided binomial test written out: 2 * sum_{i <= min(b, c)} C(b + c, i) / 2^(b + c), capped at 1
    expected = min(1.0, 2 * sum(math.comb(b + c, i) for i in range(min(b, c) + 1)) / 2 ** (b + c))
    row = table.iloc[0]
    assert (row.method_only, row.baseline_only) == (b, c)
    assert row.p_value == pytest.approx(expected, rel=1e-12) and row.p_holm == row.p_value
    assert row.solve_rate_diff == pytest.approx((b - c) / 16)
    assert (row.diff_low, row.diff_high) == pytest.approx(
        stats.paired_difference_interval(int((rtc & naive).sum()), b, c, int((~rtc & ~naive).sum()))[1:]
    )


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_a_store_written_before_truncated_was_recorded_still_reads(swept, tmp_path):
    from rtc.report import plots_sweep

    frame = pd.read_parquet(swept[0] / "results.parquet").drop(columns=["truncated"])
    frame.to_parquet(tmp_path / "results.parquet", index=False)
    old = sweep_store.read_results(tmp_path / "results.parquet")
    assert list(old.columns) == list(sweep_store.COLUMNS) and old.truncated.isna().all()
    assert "truncated" not in " ".join(plots_sweep.level_table(old).iloc[0].astype(str))
    assert np.isnan(plots_sweep.summary_series(old)["naive"]["truncated"]).all()
