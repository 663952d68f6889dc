"""Sweep figures with their statistics: the data drawn (lines and 95 % bands), the paper's s, titles."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rtc.experiments import sweep
from rtc.numerics.methods import METHOD_LABELS
from rtc.report import plots_sweep as ps


def point(level, method, delay, horizon, solved, episodes=64, ret=1.0, jump=0.5):
    low, high = sweep.wilson_interval(solved, episodes)
    return {
        "level": level,
        "method": method,
        "delay": delay,
        "execute_horizon": horizon,
        "episodes": episodes,
        "solved": solved,
        "solve_rate": solved / episodes,
        "solve_rate_low": low,
        "solve_rate_high": high,
        "mean_return": ret,
        "mean_return_low": ret - 0.1,
        "mean_return_high": ret + 0.1,
        "mean_boundary_jump": jump,
        "mean_boundary_jump_low": jump - 0.05,
        "mean_boundary_jump_high": jump + 0.05,
    }


FRAME = pd.DataFrame(
    [
        point(level, method, d, s, solved)
        for level, base in (("worlds_l_a", 40), ("worlds_l_b", 20))
        for method, drop in (("naive", 8), ("rtc_exp", 2))
        for d in range(3)
        for s in sorted({max(1, d), 8 - d})
        for solved in [max(0, base - drop * d - (0 if s == max(1, d) else 30))]
    ]
)


def axes_by_label(fig):
    return {ax.get_label(): ax for ax in fig.axes}


def line(ax, label):
    return next(li for li in ax.get_lines() if li.get_label() == label)


def band(ax, index):
    """(x, low, high) of the index-th filled band (a PolyCollection from fill_between)."""
    vertices = ax.collections[index].get_paths()[0].vertices  # start, lower x0..xn, upper xn..x0, end
    n = (len(vertices) - 3) // 2
    lower, upper = vertices[1 : n + 1], vertices[n + 2 : 2 * n + 2][::-1]
    np.testing.assert_array_equal(lower[:, 0], upper[:, 0])
    return lower[:, 0], lower[:, 1], upper[:, 1]


def test_summary_averages_levels_at_the_paper_horizon_with_the_stratified_band():
    series = ps.summary_series(FRAME)
    rtc = series["rtc_exp"]
    np.testing.assert_array_equal(rtc["delay"], [0, 1, 2])
    np.testing.assert_allclose(rtc["solve_rate"], [(40 + 20) / 128, (38 + 18) / 128, (36 + 16) / 128])
    # the variance of the mean of two independent proportions, (p_a q_a / n + p_b q_b / n) / 2^2, not Wilson
    # half-widths read as standard errors
    z = sweep._z()
    half = z * math.sqrt(40 / 64 * 24 / 64 / 64 + 20 / 64 * 44 / 64 / 64) / 2
    assert rtc["low"][0] == pytest.approx(60 / 128 - half) and rtc["high"][0] == pytest.approx(60 / 128 + half)
    a, b = sweep.wilson_interval(40, 64), sweep.wilson_interval(20, 64)
    old_half = z * math.hypot((a[1] - a[0]) / (2 * z), (b[1] - b[0]) / (2 * z)) / 2
    assert abs(old_half - half) > 1e-3
    fig = ps.plot_sweep_summary(FRAME)
    ax = axes_by_label(fig)["sweep summary"]
    drawn = line(ax, METHOD_LABELS["rtc_exp"])
    np.testing.assert_allclose(drawn.get_ydata(), rtc["solve_rate"])
    x, low, high = band(ax, 1)  # second method drawn: rtc_exp
    np.testing.assert_allclose(x, [0, 1, 2])
    np.testing.assert_allclose(low, rtc["low"]) and np.testing.assert_allclose(high, rtc["high"])
    assert "64 episodes per point" in ax.get_title() and "2 levels" in ax.get_title()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["d=0\ns=1", "d=1\ns=1", "d=2\ns=2"]
    assert ax.get_ylim() == (-0.03, 1.03)
    fig.canvas.draw()


def test_one_level_band_is_its_wilson_interval():
    one = FRAME[FRAME.level == "worlds_l_b"]
    naive = ps.summary_series(one)["naive"]
    assert (naive["low"][2], naive["high"][2]) == pytest.approx(sweep.wilson_interval(4, 64))


def test_level_panels_plot_each_metric_with_its_interval_and_gaps_for_undefined():
    frame = FRAME.copy()
    undefined = (frame.method == "naive") & (frame.delay == 2)
    frame.loc[undefined, ["mean_boundary_jump", "mean_boundary_jump_low", "mean_boundary_jump_high"]] = np.nan
    fig = ps.plot_sweep_levels(frame, "mean_boundary_jump")
    axes = axes_by_label(fig)
    assert set(axes) >= {"level worlds_l_a mean_boundary_jump", "level worlds_l_b mean_boundary_jump"}
    ax = axes["level worlds_l_a mean_boundary_jump"]
    ys = line(ax, METHOD_LABELS["naive"]).get_ydata()
    assert ys[:2].tolist() == [0.5, 0.5] and math.isnan(ys[2])
    assert ax.get_title() == "a (64 episodes per point)"
    solve = axes_by_label(ps.plot_sweep_levels(frame, "solve_rate"))["level worlds_l_b solve_rate"]
    np.testing.assert_allclose(line(solve, METHOD_LABELS["naive"]).get_ydata(), [20 / 64, 12 / 64, 4 / 64])
    _, low, high = band(solve, 0)
    np.testing.assert_allclose(low, [sweep.wilson_interval(k, 64)[0] for k in (20, 12, 4)])
    np.testing.assert_allclose(high, [sweep.wilson_interval(k, 64)[1] for k in (20, 12, 4)])
    table = ps.level_table(frame)
    assert table.columns.tolist() == ["level", "method", "episodes", "d=0", "d=1", "d=2"]
    low, high = sweep.wilson_interval(40, 64)
    assert table.iloc[0]["d=0"] == f"{40 / 64:.2f} [{low:.2f}, {high:.2f}]"
    assert set(ps.sweep_figures(frame)) == {"sweep_summary", *(f"sweep_levels_{m}" for m in sweep.METRICS)}
    with pytest.raises(ValueError, match="metric"):
        ps.plot_sweep_levels(frame, "return")
    with pytest.raises(ValueError, match="paper's execute horizon"):
        ps.plot_sweep_summary(frame[frame.execute_horizon == 8])


def comparisons_table() -> pd.DataFrame:
    """Two levels, rtc_exp against naive at d = 0..2 (s = max(1, d)), plus a row at another s that is not drawn."""
    from rtc.numerics import stats

    rows = []
    for level, tables in (
        ("worlds_l_a", [(20, 10, 2, 32), (18, 12, 3, 31), (15, 14, 1, 34)]),
        ("worlds_l_b", [(5, 6, 6, 47), (4, 9, 2, 49), (3, 11, 0, 50)]),
    ):
        for delay, (n11, n10, n01, n00) in enumerate(tables):
            diff, low, high = stats.paired_difference_interval(n11, n10, n01, n00)
            rows.append(
                {
                    "level": level,
                    "delay": delay,
                    "execute_horizon": max(1, delay),
                    "method": "rtc_exp",
                    "baseline": "naive",
                    "episodes": n11 + n10 + n01 + n00,
                    "solve_rate_diff": diff,
                    "diff_low": low,
                    "diff_high": high,
                    "p_value": stats.mcnemar_exact(n10, n01),
                    "method_only": n10,
                    "baseline_only": n01,
                }
            )
    rows.append({**rows[0], "execute_horizon": 7, "solve_rate_diff": 0.9})
    table = pd.DataFrame(rows)
    table["p_holm"] = stats.holm(table["p_value"])
    return table


def test_differences_plot_method_minus_baseline_with_paired_intervals():
    from rtc.numerics import stats

    table = comparisons_table()
    series = ps.difference_series(table)["rtc_exp"]
    np.testing.assert_array_equal(series["delay"], [0, 1, 2])
    # d = 1, pooled over the two levels: mean of (12 - 3) / 64 and (9 - 2) / 64 with the paired variances
    expected = np.mean([9 / 64, 7 / 64])
    variance = stats.paired_difference_variance(12, 3, 64) + stats.paired_difference_variance(9, 2, 64)
    half = stats.Z95 * math.sqrt(variance) / 2
    assert series["diff"][1] == pytest.approx(expected)
    assert (series["low"][1], series["high"][1]) == pytest.approx((expected - half, expected + half))
    # one level alone: its Newcombe interval as stored
    one = ps.difference_series(table[table.level == "worlds_l_b"])["rtc_exp"]
    assert (one["low"][2], one["high"][2]) == pytest.approx(stats.paired_difference_interval(3, 11, 0, 50)[1:])
    fig = ps.plot_sweep_differences(table)
    ax = axes_by_label(fig)["sweep differences"]
    drawn = line(ax, METHOD_LABELS["rtc_exp"])
    np.testing.assert_allclose(drawn.get_xdata(), [0, 1, 2])  # one method: no offset
    np.testing.assert_allclose(drawn.get_ydata(), series["diff"])
    segments = ax.collections[0].get_segments()  # the error bars, one vertical segment per delay
    np.testing.assert_allclose([seg[:, 1].min() for seg in segments], series["low"])
    np.testing.assert_allclose([seg[:, 1].max() for seg in segments], series["high"])
    title = ax.get_title()
    assert "minus" in title and "2 levels" in title and "64 episode pairs per point" in title
    fig.canvas.draw()


@pytest.mark.parametrize("figure", ["plot_sweep_summary", "plot_sweep_differences", "plot_sweep_levels"])
def test_sweep_figures_of_the_committed_mode_switch_sweep_keep_their_texts_inside(figure):
    """Six methods with their full labels (the mode-switch world's stored sweep): titles, labels and the legend
    stay on the canvas and clear of each other."""
    from rtc.experiments.sweep import store as sweep_store
    from rtc.training import mode_switch
    from tests.report.test_figure_geometry import assert_texts_fit

    results = sweep_store.read_results(mode_switch.SWEEP_FOLDER / "results.parquet")
    comparisons = sweep_store.read_comparisons(mode_switch.SWEEP_FOLDER / "comparisons.parquet")
    data = comparisons if figure == "plot_sweep_differences" else results
    assert data["method"].nunique() >= 5
    assert_texts_fit(getattr(ps, figure)(data))
