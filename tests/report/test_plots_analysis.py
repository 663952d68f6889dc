"""Analysis figures: the plotted data read back from the figures equals the computed arrays."""

from __future__ import annotations

import io
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from matplotlib.figure import Figure

from rtc.numerics import diagnostics, methods, seeds
from rtc.numerics.sampler import GuidanceSettings
from rtc.report import plots_analysis as pa
from rtc.report.plots import EXECUTED_LABEL, FROZEN_LABEL, GUIDED_LABEL, PADDING_LABEL, TARGET_LABEL, TIME_LABEL

RNG = np.random.default_rng(0)


def axes_by_label(fig: Figure) -> dict[str, object]:
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label()}


def line(ax, label: str):
    (found,) = [ln for ln in ax.get_lines() if ln.get_label() == label]
    return found


def renders(fig: Figure) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=50)
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_method_comparison_overlay():
    prev = RNG.normal(size=(2, 8, 6))
    chunks = {m: RNG.normal(size=(2, 8, 6)) for m in methods.METHODS}
    weights = methods.comparison_weights(2, 4, 8)
    fig = pa.plot_method_comparison(
        chunks, prev, 2, weights, batch_idx=1, action_dim_indices=[0, 4], prev_valid=4, execute_horizon=4
    )
    panels = axes_by_label(fig)
    for a in (0, 4):
        ax = panels[f"methods a={a}"]
        for method, chunk in chunks.items():
            drawn = line(ax, methods.METHOD_LABELS[method])
            np.testing.assert_array_equal(drawn.get_ydata(), chunk[1, :, a])
            assert drawn.get_color() == pa.method_color(method)
        # the previous chunk stops where its zero padding starts (prev_valid = H - s = 4); the padding is shaded
        np.testing.assert_array_equal(line(ax, TARGET_LABEL).get_xdata(), np.arange(4))
        np.testing.assert_array_equal(line(ax, TARGET_LABEL).get_ydata(), prev[1, :4, a])
        spans = [(p.get_x(), p.get_x() + p.get_width()) for p in ax.patches]
        assert spans == [(-0.5, 1.5), (1.5, 3.5), (3.5, 7.5)]
        executed = [ln for ln in ax.get_lines() if ln.get_label() in (EXECUTED_LABEL, "_executed")]
        np.testing.assert_array_equal(executed[0].get_xdata(), [1.5, 3.5])  # d = 2 <= i < s = 4
    first = panels["methods a=0"]
    assert [p.get_label() for p in first.patches] == [FROZEN_LABEL, GUIDED_LABEL, PADDING_LABEL]
    assert pa.PADDING_LABEL == PADDING_LABEL
    assert fig.axes[-1].get_xlabel() == pa.HORIZON_LABEL
    colors = [pa.method_color(m) for m in methods.METHODS]
    assert len(set(colors)) == len(colors) and "tab:red" not in colors  # own colour each; red is the target
    renders(fig)


def test_method_comparison_in_the_first_block_draws_the_whole_previous_chunk():
    """The paper's first block: the previous chunk is unshifted (prev_valid = H), no padding; the chunk runs d..s."""
    prev = RNG.normal(size=(1, 8, 6))
    chunks = {"naive": RNG.normal(size=(1, 8, 6))}
    weights = methods.comparison_weights(2, 4, 8)
    fig = pa.plot_method_comparison(chunks, prev, 2, weights, 0, [0], prev_valid=8, execute_horizon=4)
    ax = axes_by_label(fig)["methods a=0"]
    np.testing.assert_array_equal(line(ax, TARGET_LABEL).get_ydata(), prev[0, :, 0])
    assert PADDING_LABEL not in [p.get_label() for p in ax.patches]
    executed = [ln for ln in ax.get_lines() if ln.get_label() == EXECUTED_LABEL]
    np.testing.assert_array_equal(executed[0].get_xdata(), [1.5, 3.5])


def test_schedule_weights_and_guidance_curves():
    table = diagnostics.schedule_weights_table(2, 5, 8)
    fig = pa.plot_schedule_weights(table, 2, 5, current="linear")
    ax = axes_by_label(fig)["prefix weights"]
    for schedule, weights in table.items():
        np.testing.assert_array_equal(line(ax, schedule).get_ydata(), weights)
    assert line(ax, "linear").get_linewidth() > line(ax, "exp").get_linewidth()
    renders(fig)

    curves = diagnostics.guidance_curves(5, 5.0)
    fig = pa.plot_guidance_weight(curves, 5.0)
    ax = axes_by_label(fig)["guidance weight"]
    np.testing.assert_array_equal(line(ax, pa.CLIPPED_LABEL).get_ydata(), curves["dense_clipped"])
    # the unclipped curve only where it is finite (t > 0); its divergence at t = 0 is an arrow marked → ∞
    unclipped = line(ax, pa.UNCLIPPED_LABEL)
    np.testing.assert_array_equal(unclipped.get_xdata(), curves["dense_time"][1:])
    np.testing.assert_array_equal(unclipped.get_ydata(), curves["dense_unclipped"][1:])
    assert np.all(np.isfinite(unclipped.get_ydata())) and unclipped.get_ydata()[0] > 100
    (arrow,) = [t for t in ax.texts if t.get_text() == pa.DIVERGES_LABEL]
    assert arrow.xy == (0.0, 1.0) and arrow.xycoords == "axes fraction"  # points off the top at t = 0
    assert "∞" in pa.DIVERGES_LABEL
    np.testing.assert_allclose(line(ax, "sampler steps").get_ydata(), [5, 4.25, 2.1667, 2.1667, 4.25], atol=2e-3)
    assert ax.get_xlabel() == TIME_LABEL
    renders(fig)


def test_correction_vs_applied_and_heatmaps(small_policy):
    obs = jax.random.normal(jax.random.key(1), (1, 10))
    prev = jax.random.normal(jax.random.key(2), (1, 8, 6))
    _, tracked = small_policy.realtime_action(jax.random.key(3), obs, 4, prev, 2, 5, "exp", 5.0, return_tracking=True)
    series = diagnostics.correction_vs_applied(tracked, 0, 1, 2)
    fig = pa.plot_correction_vs_applied(series)
    panels = axes_by_label(fig)
    ax = panels["correction vs applied"]
    np.testing.assert_array_equal(
        line(ax, "correction (raw VJP)").get_ydata(), np.asarray(tracked["correction"])[:, 0, 1, 2]
    )
    np.testing.assert_array_equal(
        line(ax, "applied = weight × correction").get_ydata(), np.asarray(tracked["applied"])[:, 0, 1, 2]
    )
    np.testing.assert_array_equal(
        line(panels["guidance weight per step"], pa.CLIPPED_LABEL).get_ydata(), tracked["guidance_weight"]
    )
    renders(fig)

    data = diagnostics.heatmap_data(tracked)
    fig = pa.plot_heatmaps(data, tracked["time"])
    panels = axes_by_label(fig)
    for key, values in data.items():
        np.testing.assert_array_equal(panels[f"heatmap {key}"].images[0].get_array(), values)
    renders(fig)


def test_seed_bands_show_percentiles(small_policy):
    settings = GuidanceSettings.create(2, 5, "exp", 5.0, chunk_size=8)
    result = seeds.seed_batch(
        small_policy, np.zeros(10, np.float32), np.zeros((8, 6), np.float32), settings, range(7), 4, True
    )
    free = result[seeds.JACOBIAN_FREE]
    np.testing.assert_array_equal(free["correction"], free["error"])  # Jacobian-free RTC, same noise
    np.testing.assert_array_equal(free["x_t"][0], result["rtc"]["x_t"][0])
    series = seeds.band_series(result, horizon_idx=2, action_dim_idx=1)
    fig = pa.plot_seed_bands(series, 2, 1)
    panels = axes_by_label(fig)
    assert line(panels["x_t bands"], "RTC Jacobian-free median").get_color() == "tab:orange"
    for name, label in (("rtc", "RTC"), ("naive", "naive"), (seeds.JACOBIAN_FREE, "RTC Jacobian-free")):
        np.testing.assert_allclose(
            line(panels["x_t bands"], f"{label} median").get_ydata(), np.median(series[name]["x_t"], axis=0)
        )
        np.testing.assert_allclose(
            line(panels["error bands"], f"{label} median").get_ydata(), np.median(series[name]["error"], axis=0)
        )
        (band,) = [c for c in panels["x_t bands"].collections if c.get_label() == f"{label} 25–75%"]
        ys = band.get_paths()[0].vertices[:, 1]
        q25, q75 = np.percentile(series[name]["x_t"], [25, 75], axis=0)
        assert np.all(np.isclose(ys[:, None], q25[None]).any(0)) and np.all(np.isclose(ys[:, None], q75[None]).any(0))
    assert "7 seeds" in fig.get_suptitle()
    renders(fig)


def fake_rollout(length: int, steps: int = 24, d: int = 1, s: int = 3):
    actions = RNG.normal(size=(1, steps, 6))
    jumps = np.full((1, steps), np.nan)
    switches = [t for t in range(max(d, 1), length) if (t - d) % s == 0]
    jumps[0, switches] = RNG.uniform(size=len(switches))
    settings = SimpleNamespace(method="rtc_exp", inference_delay=d, execute_horizon=s, episode_steps=steps)
    return SimpleNamespace(
        actions=actions,
        jumps=jumps,
        lengths=np.array([length]),
        chunk_starts=np.arange(0, steps, s),
        returns=np.array([1.25]),
        solved=np.array([True]),
        settings=settings,
    ), switches


def test_rollout_trace_marks_chunks_and_jumps():
    rollout, switches = fake_rollout(length=20)
    fig = pa.plot_rollout_trace(rollout, 0, action_dim_indices=[0, 5])
    panels = axes_by_label(fig)
    ax = panels["actions a=5"]
    np.testing.assert_array_equal(line(ax, "executed action (before noise)").get_ydata(), rollout.actions[0, :20, 5])
    red = [ln for ln in ax.get_lines() if ln.get_color() == "tab:red"]
    assert sorted(x + 0.5 for ln in red for x in ln.get_xdata()[:1]) == switches
    grey = [ln for ln in ax.get_lines() if ln.get_color() == "0.7"]
    assert len(grey) == 7  # chunk starts 0, 3, ..., 18 (the episode ended at 20)
    jumps = line(panels["boundary jumps"], pa.JUMP_LABEL)
    np.testing.assert_array_equal(jumps.get_xdata(), switches)
    np.testing.assert_array_equal(jumps.get_ydata(), rollout.jumps[0, switches])
    assert "solved" in fig.get_suptitle() and "ended after 20 steps" in fig.get_suptitle()
    renders(fig)


def test_sweep_plot_per_method():
    rows = [
        {"method": m, "inference_delay": d, "execute_horizon": max(1, d), "solve_rate": v, "episodes": 16}
        for m, values in (("naive", [0.5, 0.25, 0.0]), ("rtc_exp", [0.5, 0.5, 0.4]))
        for d, v in zip((2, 0, 1), values, strict=True)
    ]
    fig = pa.plot_sweep(rows, "solve_rate")
    ax = axes_by_label(fig)["sweep solve_rate"]
    naive = line(ax, methods.METHOD_LABELS["naive"])
    np.testing.assert_array_equal(naive.get_xdata(), [0, 1, 2])
    np.testing.assert_array_equal(naive.get_ydata(), [0.25, 0.0, 0.5])
    np.testing.assert_array_equal(line(ax, methods.METHOD_LABELS["rtc_exp"]).get_ydata(), [0.5, 0.4, 0.5])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["d=0\ns=1", "d=1\ns=1", "d=2\ns=2"]
    renders(fig)
    with pytest.raises(ValueError, match="metric"):
        pa.plot_sweep(rows, "return")
