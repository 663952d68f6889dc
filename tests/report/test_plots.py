"""Tests for rtc.report.plots: the plotted data is read back from the figures' artists."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from rtc.errors import IndexRangeError
from rtc.numerics.model import FlowPolicy, ModelConfig
from rtc.report import plots

BATCH, HORIZON, ACTION_DIM, STEPS = 3, 8, 6, 10
DELAY, PREFIX = 2, 4


@pytest.fixture(scope="module")
def policy() -> FlowPolicy:
    config = ModelConfig(channel_dim=32, channel_hidden_dim=64, token_hidden_dim=16, num_layers=2, action_chunk_size=8)
    return FlowPolicy(obs_dim=10, action_dim=ACTION_DIM, config=config, rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def obs() -> jax.Array:
    return jax.random.normal(jax.random.key(1), (BATCH, 10))


@pytest.fixture(scope="module")
def prev(policy: FlowPolicy, obs: jax.Array) -> jax.Array:
    return policy.action(jax.random.key(2), obs, STEPS)


@pytest.fixture(scope="module")
def rtc_run(policy: FlowPolicy, obs: jax.Array, prev: jax.Array) -> dict:
    _, tracked = policy.realtime_action(jax.random.key(3), obs, STEPS, prev, DELAY, PREFIX, "exp", 5.0, True)
    return tracked


@pytest.fixture(scope="module")
def plain_run(policy: FlowPolicy, obs: jax.Array) -> dict:
    _, tracked = policy.action(jax.random.key(3), obs, STEPS, True)
    return tracked


@pytest.fixture(scope="module")
def unguided_run(policy: FlowPolicy, obs: jax.Array, prev: jax.Array) -> dict:
    """An RTC run with every prefix weight 0, so the weighted error is exactly 0."""
    _, tracked = policy.realtime_action(jax.random.key(3), obs, STEPS, prev, 0, 0, "exp", 5.0, True)
    return tracked


@pytest.fixture(params=["rtc", "plain"])
def run(request: pytest.FixtureRequest) -> tuple[str, dict]:
    return request.param, request.getfixturevalue(f"{request.param}_run")


def np_(tracked: dict, key: str) -> np.ndarray:
    return np.asarray(tracked[key])


def axes_by_label(fig: Figure) -> dict[str, Axes]:
    return {ax.get_label(): ax for ax in fig.axes if ax.get_label()}


def lines_by_label(ax: Axes) -> dict[str, Line2D]:
    return {line.get_label(): line for line in ax.get_lines()}


# ------------------------------------------------------------------------------------------------
# plot_flow_matching_steps


@pytest.mark.parametrize(("b", "h", "a"), [(0, 0, 0), (1, 3, 2), (2, 7, 5)])
def test_flow_steps_plot_the_tracked_series(run: tuple[str, dict], b: int, h: int, a: int) -> None:
    kind, tracked = run
    fig = plots.plot_flow_matching_steps(tracked, batch_idx=b, action_dim_idx=a, horizon_idx=h)
    panels = axes_by_label(fig)
    keys = ["x_t", "v_t", "x_1_pred"] + (["correction", "applied"] if kind == "rtc" else [])
    assert list(panels) == keys
    for key in keys:
        line = lines_by_label(panels[key])[key]
        np.testing.assert_array_equal(line.get_xdata(), np_(tracked, "time"))
        np.testing.assert_array_equal(line.get_ydata(), np_(tracked, key)[:, b, h, a])
    for key in ("x_t", "x_1_pred"):
        final = lines_by_label(panels[key])[plots.FINAL_LABEL]
        np.testing.assert_array_equal(final.get_xdata(), [1.0])
        np.testing.assert_array_equal(final.get_ydata(), [np_(tracked, "action")[b, h, a]])
    assert fig.axes[-1].get_xlabel() == plots.TIME_LABEL
    assert "0 = noise" in plots.TIME_LABEL and "1 = data" in plots.TIME_LABEL


@pytest.mark.parametrize("h", range(HORIZON))
@pytest.mark.parametrize(("b", "a"), [(0, 0), (2, 4)])
def test_flow_steps_target_line_only_where_guided(rtc_run: dict, b: int, h: int, a: int) -> None:
    panels = axes_by_label(plots.plot_flow_matching_steps(rtc_run, b, a, h))
    guided = np_(rtc_run, "prefix_weights")[h] > 0
    assert guided == (h < PREFIX)
    for key in ("x_t", "x_1_pred"):
        lines = lines_by_label(panels[key])
        assert (plots.TARGET_LABEL in lines) == guided
        if guided:
            np.testing.assert_allclose(
                lines[plots.TARGET_LABEL].get_ydata(), np_(rtc_run, "prev_action_chunk")[b, h, a]
            )
    for key in ("v_t", "correction", "applied"):
        assert plots.TARGET_LABEL not in lines_by_label(panels[key])


def test_flow_steps_plain_run_has_no_target(plain_run: dict) -> None:
    fig = plots.plot_flow_matching_steps(plain_run)
    assert all(plots.TARGET_LABEL not in lines_by_label(ax) for ax in fig.axes)


# ------------------------------------------------------------------------------------------------
# plot_error_over_steps


@pytest.mark.parametrize("b", range(BATCH))
def test_error_plot_matches_independent_norms(rtc_run: dict, b: int) -> None:
    error = np_(rtc_run, "error")[:, b]
    expected_total = np.sqrt((error.astype(np.float64) ** 2).sum(axis=(1, 2)))
    fig = plots.plot_error_over_steps(rtc_run, batch_idx=b)
    panels = axes_by_label(fig)

    (total,) = panels["error_total"].get_lines()
    np.testing.assert_allclose(total.get_ydata(), expected_total, rtol=1e-5)
    np.testing.assert_array_equal(total.get_xdata(), np_(rtc_run, "time"))
    assert panels["error_total"].get_yscale() == "log"

    weights = np_(rtc_run, "prefix_weights")
    per_index = lines_by_label(panels["error_per_horizon"])
    assert len(per_index) == int((weights > 0).sum()) == PREFIX
    for h in range(PREFIX):
        (line,) = [line for label, line in per_index.items() if label.startswith(f"h={h} ")]
        np.testing.assert_allclose(line.get_ydata(), np.sqrt((error[:, h] ** 2).sum(axis=-1)), rtol=1e-5)
    assert panels["error_per_horizon"].get_xlabel() == plots.TIME_LABEL


def test_error_helpers_agree_with_the_brief(rtc_run: dict) -> None:
    error = np_(rtc_run, "error")
    n = error.shape[0]
    np.testing.assert_array_equal(plots.error_magnitude(rtc_run, 1), np.linalg.norm(error[:, 1].reshape(n, -1), axis=1))
    assert plots.horizon_error_norms(rtc_run, 1).shape == (n, HORIZON)


def test_error_plot_with_all_zero_error_stays_linear(unguided_run: dict, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = plots.plot_error_over_steps(unguided_run)
        fig.savefig(tmp_path / "zero.png")
    panels = axes_by_label(fig)
    assert np.all(panels["error_total"].get_lines()[0].get_ydata() == 0)
    assert panels["error_total"].get_yscale() == "linear"
    assert not panels["error_per_horizon"].get_lines()


def test_error_plot_uses_symlog_when_some_steps_have_zero_error(rtc_run: dict) -> None:
    tracked = {key: np.array(value) for key, value in rtc_run.items()}
    tracked["error"][-1] = 0.0
    panels = axes_by_label(plots.plot_error_over_steps(tracked))
    assert panels["error_total"].get_yscale() == "symlog"
    assert panels["error_total"].get_lines()[0].get_ydata()[-1] == 0.0


def test_error_plot_on_plain_run_names_missing_key(plain_run: dict) -> None:
    with pytest.raises(ValueError, match="'error'"):
        plots.plot_error_over_steps(plain_run)


# ------------------------------------------------------------------------------------------------
# plot_comparison_grid


@pytest.mark.parametrize(("b", "dims", "h"), [(0, None, 0), (1, [0, 1, 2], 2), (2, [5, 3], 6), (0, (4,), 1)])
def test_comparison_grid_plots_the_tracked_series(run: tuple[str, dict], b: int, dims: list | None, h: int) -> None:
    kind, tracked = run
    fig = plots.plot_comparison_grid(tracked, batch_idx=b, action_dim_indices=dims, horizon_idx=h)
    dims = [0, 1, 2] if dims is None else list(dims)
    columns = ["x_t", "v_t"] + (["correction"] if kind == "rtc" else [])
    panels = axes_by_label(fig)
    assert set(panels) == {f"{key} a={a}" for key in columns for a in dims}
    for a in dims:
        for key in columns:
            line = lines_by_label(panels[f"{key} a={a}"])[key]
            np.testing.assert_array_equal(line.get_xdata(), np_(tracked, "time"))
            np.testing.assert_array_equal(line.get_ydata(), np_(tracked, key)[:, b, h, a])
        target = lines_by_label(panels[f"x_t a={a}"]).get(plots.TARGET_LABEL)
        assert (target is not None) == (kind == "rtc" and h < PREFIX)
        if target is not None:
            np.testing.assert_allclose(target.get_ydata(), np_(tracked, "prev_action_chunk")[b, h, a])
    assert panels[f"x_t a={dims[-1]}"].get_xlabel() == plots.TIME_LABEL


def test_comparison_grid_refuses_empty_dims(rtc_run: dict) -> None:
    with pytest.raises(ValueError, match="action_dim_indices"):
        plots.plot_comparison_grid(rtc_run, action_dim_indices=[])


# ------------------------------------------------------------------------------------------------
# plot_chunk_overview


@pytest.mark.parametrize(("b", "dims"), [(0, None), (2, [1, 5])])
def test_chunk_overview_rtc(rtc_run: dict, plain_run: dict, b: int, dims: list | None) -> None:
    plain = np_(plain_run, "action")
    fig = plots.plot_chunk_overview(rtc_run, batch_idx=b, action_dim_indices=dims, plain_action=plain)
    dims = [0, 1, 2] if dims is None else dims
    panels = axes_by_label(fig)
    assert set(panels) == {f"chunk a={a}" for a in dims} | {plots.WEIGHTS_LABEL}
    for a in dims:
        ax = panels[f"chunk a={a}"]
        lines = lines_by_label(ax)
        expected = {
            plots.FINAL_LABEL: np_(rtc_run, "action")[b, :, a],
            plots.TARGET_LABEL: np_(rtc_run, "prev_action_chunk")[b, :PREFIX, a],  # not past the prefix horizon
            plots.PLAIN_LABEL: plain[b, :, a],
        }
        for label, values in expected.items():
            np.testing.assert_array_equal(lines[label].get_xdata(), np.arange(len(values)))
            np.testing.assert_array_equal(lines[label].get_ydata(), values)
        assert spans_of(ax) == [(-0.5, DELAY - 0.5), (DELAY - 0.5, PREFIX - 0.5), (PREFIX - 0.5, HORIZON - 0.5)]
        executed = [line for line in ax.get_lines() if line.get_label() in (plots.EXECUTED_LABEL, "_executed")]
        # s = H - p: the chunk runs d <= i < s before the next one takes over
        np.testing.assert_array_equal(executed[0].get_xdata(), [DELAY - 0.5, HORIZON - PREFIX - 0.5])
    first = panels[f"chunk a={dims[0]}"]
    labels = [patch.get_label() for patch in first.patches]
    assert labels == [plots.FROZEN_LABEL, plots.GUIDED_LABEL, plots.PADDING_LABEL]
    assert plots.EXECUTED_LABEL in lines_by_label(first)
    padding = first.patches[-1]
    assert padding.get_hatch() and padding.get_facecolor()[3] == 0  # hatched, unlike the frozen band
    weights = lines_by_label(panels[plots.WEIGHTS_LABEL])[plots.WEIGHTS_LABEL]
    np.testing.assert_array_equal(weights.get_ydata(), np_(rtc_run, "prefix_weights"))
    assert spans_of(panels[plots.WEIGHTS_LABEL]) == spans_of(first)


def spans_of(ax: Axes) -> list[tuple[float, float]]:
    """The shaded index ranges of ``ax`` (axvspan rectangles), in drawing order."""
    return [(patch.get_x(), patch.get_x() + patch.get_width()) for patch in ax.patches]


def test_chunk_overview_frozen_on_padding(policy: FlowPolicy, obs: jax.Array, prev: jax.Array) -> None:
    """d = 3 > p = H - s = 2: index 2 is frozen on the previous chunk's zero padding, shaded as such; the
    previous chunk's line stops before its padding and the executed window is [3, 6)."""
    padded = np.asarray(prev).copy()
    padded[:, 2:] = 0.0
    _, tracked = policy.realtime_action(jax.random.key(3), obs, STEPS, padded, 3, 2, "exp", 5.0, True)
    ax = axes_by_label(plots.plot_chunk_overview(tracked, 0, [1]))["chunk a=1"]
    labels = [patch.get_label() for patch in ax.patches]
    assert labels == [plots.FROZEN_LABEL, plots.FROZEN_PADDING_LABEL, plots.PADDING_LABEL]
    assert spans_of(ax) == [(-0.5, 1.5), (1.5, 2.5), (1.5, 7.5)]
    lines = lines_by_label(ax)
    np.testing.assert_array_equal(lines[plots.TARGET_LABEL].get_xdata(), [0, 1])
    np.testing.assert_array_equal(lines[plots.TARGET_LABEL].get_ydata(), padded[0, :2, 1])
    np.testing.assert_array_equal(lines[plots.EXECUTED_LABEL].get_xdata(), [2.5, 5.5])


def test_chunk_regions_cover_the_cases() -> None:
    weights = np.array([1.0, 1.0, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0])
    regions = plots.chunk_regions(2, 4, 8, weights)
    assert [(r.label, r.start, r.stop) for r in regions] == [
        (plots.FROZEN_LABEL, 0, 2),
        (plots.GUIDED_LABEL, 2, 4),
        (plots.PADDING_LABEL, 4, 8),
    ]
    assert plots.executed_window(2, 4) == plots.Region(plots.EXECUTED_LABEL, 2, 4)
    assert [(r.label, r.start, r.stop) for r in plots.chunk_regions(3, 2, 8)] == [
        (plots.FROZEN_LABEL, 0, 2),
        (plots.FROZEN_PADDING_LABEL, 2, 3),
        (plots.PADDING_LABEL, 2, 8),
    ]
    assert [r.label for r in plots.chunk_regions(0, 8, 8)] == []  # d = 0, s = 0: nothing frozen, no padding
    assert [(r.label, r.start, r.stop) for r in plots.chunk_regions(2, 0, 8)] == [
        (plots.FROZEN_PADDING_LABEL, 0, 2),
        (plots.PADDING_LABEL, 0, 8),
    ]
    assert plots.executed_window(3, 3) is None  # s = 3 = d: nothing of this chunk runs


def test_chunk_overview_plain_run_shows_only_the_action(plain_run: dict) -> None:
    fig = plots.plot_chunk_overview(plain_run, batch_idx=1, action_dim_indices=[3])
    (ax,) = fig.axes
    lines = lines_by_label(ax)
    assert list(lines) == [plots.FINAL_LABEL]
    np.testing.assert_array_equal(lines[plots.FINAL_LABEL].get_ydata(), np_(plain_run, "action")[1, :, 3])


def test_chunk_overview_refuses_misshapen_plain_action(rtc_run: dict) -> None:
    with pytest.raises(ValueError, match="plain_action"):
        plots.plot_chunk_overview(rtc_run, plain_action=np.zeros((1, HORIZON, ACTION_DIM)))


# ------------------------------------------------------------------------------------------------
# Index checks

OUT_OF_RANGE = [
    (plots.plot_flow_matching_steps, {"batch_idx": BATCH}, "batch_idx", BATCH, BATCH - 1),
    (plots.plot_flow_matching_steps, {"batch_idx": -1}, "batch_idx", -1, BATCH - 1),
    (plots.plot_flow_matching_steps, {"action_dim_idx": ACTION_DIM}, "action_dim_idx", ACTION_DIM, ACTION_DIM - 1),
    (plots.plot_flow_matching_steps, {"action_dim_idx": -2}, "action_dim_idx", -2, ACTION_DIM - 1),
    (plots.plot_flow_matching_steps, {"horizon_idx": HORIZON}, "horizon_idx", HORIZON, HORIZON - 1),
    (plots.plot_flow_matching_steps, {"horizon_idx": -1}, "horizon_idx", -1, HORIZON - 1),
    (plots.plot_error_over_steps, {"batch_idx": 5}, "batch_idx", 5, BATCH - 1),
    (plots.plot_error_over_steps, {"batch_idx": -3}, "batch_idx", -3, BATCH - 1),
    (plots.plot_comparison_grid, {"batch_idx": 9}, "batch_idx", 9, BATCH - 1),
    (plots.plot_comparison_grid, {"horizon_idx": 8}, "horizon_idx", 8, HORIZON - 1),
    (plots.plot_comparison_grid, {"action_dim_indices": [0, 6]}, "action_dim_idx", 6, ACTION_DIM - 1),
    (plots.plot_comparison_grid, {"action_dim_indices": [-1]}, "action_dim_idx", -1, ACTION_DIM - 1),
    (plots.plot_chunk_overview, {"batch_idx": 3}, "batch_idx", 3, BATCH - 1),
    (plots.plot_chunk_overview, {"action_dim_indices": (7,)}, "action_dim_idx", 7, ACTION_DIM - 1),
]


@pytest.mark.parametrize(("function", "kwargs", "name", "value", "last"), OUT_OF_RANGE)
def test_out_of_range_indices_are_refused(
    rtc_run: dict, function, kwargs: dict, name: str, value: int, last: int
) -> None:
    with pytest.raises(IndexError) as info:
        function(rtc_run, **kwargs)
    message = str(info.value)
    assert f"{name}={value}" in message
    assert f"0..{last}" in message


def test_non_integer_index_is_refused(rtc_run: dict) -> None:
    with pytest.raises(IndexRangeError, match="horizon_idx must be an integer, got 1.5"):
        plots.plot_flow_matching_steps(rtc_run, horizon_idx=1.5)


# ------------------------------------------------------------------------------------------------
# save_tracking_plots


@pytest.mark.parametrize(("b", "prefix"), [(0, "rtc"), (2, "run7")])
def test_save_tracking_plots_rtc(rtc_run: dict, tmp_path: Path, b: int, prefix: str) -> None:
    out = tmp_path / "nested" / "plots"
    paths = plots.save_tracking_plots(rtc_run, out, batch_idx=b, prefix=prefix)
    expected = [f"{prefix}_flow_steps_b{b}_h0_a{a}.png" for a in range(3)] + [
        f"{prefix}_error_b{b}.png",
        f"{prefix}_comparison_grid_b{b}_h0.png",
        f"{prefix}_chunk_overview_b{b}.png",
    ]
    assert all(isinstance(path, str) for path in paths)
    assert [Path(path).name for path in paths] == expected
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG"
            assert image.width > 300 and image.height > 300
            image.verify()


def test_save_tracking_plots_plain(plain_run: dict, tmp_path: Path) -> None:
    paths = plots.save_tracking_plots(plain_run, tmp_path, prefix="plain")
    names = [Path(path).name for path in paths]
    assert names == [f"plain_flow_steps_b0_h0_a{a}.png" for a in range(3)] + ["plain_comparison_grid_b0_h0.png"]
    for path in paths:
        with Image.open(path) as image:
            image.verify()


def test_save_tracking_plots_checks_batch_before_writing(rtc_run: dict, tmp_path: Path) -> None:
    with pytest.raises(IndexError, match="batch_idx=3"):
        plots.save_tracking_plots(rtc_run, tmp_path / "out", batch_idx=3)
    assert not (tmp_path / "out").exists()


def test_save_tracking_plots_with_few_action_dims(tmp_path: Path) -> None:
    """Defaults adapt to a chunk with fewer than three action dims."""
    rng = np.random.default_rng(0)
    n, b, h, a = 4, 1, 5, 2
    tracked = {key: rng.normal(size=(n, b, h, a)) for key in ("x_t", "v_t", "x_1_pred")}
    tracked.update(time=np.arange(n) / n, action=rng.normal(size=(b, h, a)))
    names = [Path(path).name for path in plots.save_tracking_plots(tracked, tmp_path, prefix="p")]
    assert names == ["p_flow_steps_b0_h0_a0.png", "p_flow_steps_b0_h0_a1.png", "p_comparison_grid_b0_h0.png"]


# ------------------------------------------------------------------------------------------------
# No pyplot


@pytest.mark.slow  # starts a subprocess
def test_plots_never_import_pyplot(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from rtc.report import plots
        rng = np.random.default_rng(0)
        tracked = {{key: rng.normal(size=(3, 1, 4, 2)) for key in ("x_t", "v_t", "x_1_pred")}}
        tracked.update(time=np.arange(3) / 3, action=rng.normal(size=(1, 4, 2)))
        plots.plot_flow_matching_steps(tracked).savefig({str(tmp_path / "a.png")!r})
        plots.save_tracking_plots(tracked, {str(tmp_path)!r})
        assert "matplotlib.pyplot" not in sys.modules, "rtc.report.plots imported matplotlib.pyplot"
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
