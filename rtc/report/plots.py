"""Matplotlib figures of one tracked sampling run (``return_tracking=True``), step by flow step.

Figures are built from ``matplotlib.figure.Figure`` with an Agg canvas and never touch ``pyplot``,
so they are safe in servers and threads. Every line carries a label (see the ``*_LABEL`` constants and
the tracked key names) and every panel's axes carry the tracked key they show, so the plotted data can
be read back from the figure.

Time convention: ``time`` is the flow time at the start of each Euler step; t = 0 is noise, t = 1 is
data. The final action is the state at t = 1, one step after the last tracked one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rtc.errors import IndexRangeError, RTCError
from rtc.io.files import write_atomic
from rtc.numerics.metrics import prev_valid_of
from rtc.report.figure_layout import GridLayout
from rtc.report.render import FigureSource, render_figures

__all__ = [
    "EXECUTED_LABEL",
    "FINAL_LABEL",
    "FROZEN_LABEL",
    "FROZEN_PADDING_LABEL",
    "GUIDED_LABEL",
    "PADDING_LABEL",
    "PLAIN_LABEL",
    "RTC_KEYS",
    "TARGET_LABEL",
    "TIME_LABEL",
    "TOTAL_ERROR_LABEL",
    "WEIGHTS_LABEL",
    "Region",
    "chunk_regions",
    "error_magnitude",
    "executed_window",
    "horizon_error_norms",
    "is_rtc",
    "mark_executed",
    "plot_chunk_overview",
    "plot_comparison_grid",
    "plot_error_over_steps",
    "plot_flow_matching_steps",
    "save_tracking_plots",
    "shade_regions",
    "tracking_figures",
    "write_pngs",
]

TIME_LABEL = "flow time t (0 = noise, 1 = data)"
TARGET_LABEL = "previous chunk (target)"
FINAL_LABEL = "final action"
PLAIN_LABEL = "plain action (no guidance)"
FROZEN_LABEL = "frozen: previous chunk's planned actions (i < d)"
FROZEN_PADDING_LABEL = "frozen on the previous chunk's zero padding (H - s <= i < d)"
GUIDED_LABEL = "guided (prefix weight > 0, not frozen)"
PADDING_LABEL = "previous chunk: zero padding (i >= H - s)"
EXECUTED_LABEL = "executed from this chunk (d <= i < s)"
WEIGHTS_LABEL = "prefix weights"
TOTAL_ERROR_LABEL = "|error| (all horizon indices)"

RTC_KEYS: tuple[str, ...] = (
    "correction",
    "error",
    "applied",
    "guidance_weight",
    "prefix_weights",
    "prev_action_chunk",
    "inference_delay",
    "prefix_attention_horizon",
)
_STEP_KEYS: tuple[str, ...] = ("x_t", "v_t", "x_1_pred", "time", "action")
_PANEL_TITLES: dict[str, str] = {
    "x_t": "state x_t",
    "v_t": "velocity v_t",
    "x_1_pred": "denoiser prediction x_1_pred = x_t + (1 - t) v_t",
    "correction": "guidance correction (VJP of weighted error)",
    "applied": "applied term (guidance weight × correction)",
}
_DEFAULT_DIMS = 3
# Titles at a fixed height: matplotlib then skips its per-draw check for top tick labels (there are none).
TITLE_Y = 1.0

Tracked = Mapping[str, Any]


# ------------------------------------------------------------------------------------------------
# Small pure helpers


def _numpy(tracked: Tracked, *keys: str, what: str) -> list[np.ndarray]:
    """The arrays under ``keys`` as numpy; a missing key raises an ``RTCError`` naming it."""
    missing = [key for key in keys if key not in tracked]
    if missing:
        rtc_only = [key for key in missing if key in RTC_KEYS]
        hint = " (recorded only by RTC runs: realtime_action(..., return_tracking=True))" if rtc_only else ""
        raise RTCError(f"{what} needs tracked[{missing[0]!r}], which this run lacks{hint}")
    return [np.asarray(tracked[key]) for key in keys]


def is_rtc(tracked: Tracked) -> bool:
    """Whether ``tracked`` comes from a guided (RTC) run, i.e. holds every RTC key."""
    return all(key in tracked for key in RTC_KEYS)


def check_index(name: str, value: int, size: int) -> int:
    """``value`` as an int in ``0..size-1``, else an ``IndexError`` naming the argument and range."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise IndexRangeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise IndexRangeError(
            f"{name}={value} is negative; accepted 0..{size - 1} (negative indices are not supported)"
        )
    if value >= size:
        raise IndexRangeError(f"{name}={value} is out of range; accepted 0..{size - 1}")
    return int(value)


def checked_dims(action_dim_indices: Sequence[int] | None, action_dim: int) -> list[int]:
    """Checked action dims; ``None`` means the first (up to) three."""
    if action_dim_indices is None:
        return list(range(min(_DEFAULT_DIMS, action_dim)))
    dims = [check_index("action_dim_idx", a, action_dim) for a in action_dim_indices]
    if not dims:
        raise RTCError("action_dim_indices is empty; give at least one action dim")
    return dims


def error_magnitude(tracked: Tracked, batch_idx: int = 0) -> np.ndarray:
    """L2 norm of the weighted error over horizon and action dims, per step ``[num_steps]``."""
    (error,) = _numpy(tracked, "error", what="the error magnitude")
    b = check_index("batch_idx", batch_idx, error.shape[1])
    return np.linalg.norm(error[:, b].reshape(error.shape[0], -1), axis=1)


def horizon_error_norms(tracked: Tracked, batch_idx: int = 0) -> np.ndarray:
    """L2 norm of the weighted error over action dims, per step and horizon index ``[num_steps, H]``."""
    (error,) = _numpy(tracked, "error", what="the per-horizon error")
    b = check_index("batch_idx", batch_idx, error.shape[1])
    return np.linalg.norm(error[:, b], axis=-1)


def new_figure(width: float, height: float) -> Figure:
    """A figure with an Agg canvas (no pyplot) laid out by ``GridLayout`` (texts fit, no tick artists built)."""
    fig = Figure(figsize=(width, height), layout=GridLayout())
    FigureCanvasAgg(fig)
    return fig


def legend_outside(ax: Axes) -> None:
    """A legend right of the axes, so it never covers the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _target_if_guided(tracked: Tracked, b: int, h: int, a: int) -> float | None:
    """``prev_action_chunk[b, h, a]`` when horizon index ``h`` is guided (weight > 0), else ``None``."""
    if not is_rtc(tracked):
        return None
    weights, target = _numpy(tracked, "prefix_weights", "prev_action_chunk", what="the target")
    return float(target[b, h, a]) if weights[h] > 0 else None


def _index_colors(count: int) -> list[tuple[float, float, float, float]]:
    """``count`` distinct colours from a sequential colormap (early indices dark)."""
    cmap = colormaps["viridis"]
    return [cmap(x) for x in np.linspace(0.0, 0.9, max(count, 1))]


def _log_scale_if_sensible(ax: Axes, values: np.ndarray) -> None:
    """Log y scale for positive data; symlog when some values are exactly 0; linear when all are."""
    positive = values[values > 0]
    if positive.size == 0:
        return
    if positive.size == values.size:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=float(positive.min()))


# ------------------------------------------------------------------------------------------------
# Regions of the horizon


@dataclasses.dataclass(frozen=True)
class Region:
    """Horizon indices ``start <= i < stop`` that share a role, with the legend label naming the role."""

    label: str
    start: int
    stop: int


# Shading per region: what the frozen, guided and padded parts of a chunk look like in every figure.
REGION_STYLES: dict[str, dict[str, Any]] = {
    FROZEN_LABEL: {"color": "tab:purple", "alpha": 0.15, "linewidth": 0},
    FROZEN_PADDING_LABEL: {"color": "tab:red", "alpha": 0.2, "linewidth": 0},
    GUIDED_LABEL: {"color": "tab:orange", "alpha": 0.15, "linewidth": 0},
    PADDING_LABEL: {"facecolor": "none", "edgecolor": "0.7", "hatch": "///", "linewidth": 0},
}


def chunk_regions(
    inference_delay: int, prev_valid: int, horizon: int, prefix_weights: np.ndarray | None = None
) -> list[Region]:
    """The roles of the horizon indices of a new chunk, against a previous chunk with ``prev_valid`` planned
    actions (``H`` in the paper's first block, ``H - s`` in later ones; the rest is zero padding).

    Frozen on planned actions ``i < min(d, prev_valid)``; frozen on zero padding ``prev_valid <= i < d``;
    guided but not frozen (``prefix_weights > 0`` at ``i >= d``); the previous chunk's padding
    ``i >= prev_valid``. Regions may overlap (padding and frozen on padding do).
    """
    d, valid, horizon = int(inference_delay), int(prev_valid), int(horizon)
    regions = []
    if min(d, valid) > 0:
        regions.append(Region(FROZEN_LABEL, 0, min(d, valid)))
    if d > valid:
        regions.append(Region(FROZEN_PADDING_LABEL, valid, min(d, horizon)))
    if prefix_weights is not None:
        guided = np.flatnonzero(np.asarray(prefix_weights)[d:] > 0) + d  # the frozen part is guided too
        if guided.size:
            regions.append(Region(GUIDED_LABEL, int(guided.min()), int(guided.max()) + 1))
    if valid < horizon:
        regions.append(Region(PADDING_LABEL, valid, horizon))
    return regions


def executed_window(inference_delay: int, execute_horizon: int) -> Region | None:
    """Indices ``d <= i < s`` the new chunk executes before the next one takes over; ``None`` when that is empty
    (``s <= d``)."""
    d, s = int(inference_delay), int(execute_horizon)
    return Region(EXECUTED_LABEL, d, s) if d < s else None


def shade_regions(ax: Axes, regions: Sequence[Region], label: bool = True) -> None:
    """One vertical band per region over its indices (``i - 0.5`` to ``i + 0.5``), styled by ``REGION_STYLES``."""
    for region in regions:
        style = REGION_STYLES[region.label]
        ax.axvspan(region.start - 0.5, region.stop - 0.5, label=region.label if label else None, **style)


def mark_executed(ax: Axes, window: Region | None, label: bool = True) -> None:
    """A bar along the top of the axes over the executed indices, labelled ``EXECUTED_LABEL`` and "executed"."""
    if window is None:
        return
    span = [window.start - 0.5, window.stop - 0.5]
    ax.plot(
        span,
        [0.95, 0.95],
        transform=ax.get_xaxis_transform(),
        color="k",
        linewidth=2.5,
        marker="|",
        markersize=9,
        solid_capstyle="butt",
        label=EXECUTED_LABEL if label else "_executed",
    )
    ax.text(
        sum(span) / 2, 0.91, "executed", transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize="small"
    )


def tracked_executed_window(tracked: Tracked, horizon: int) -> Region | None:
    """The executed window of a record, when its execute horizon ``s`` is known: recorded as ``execute_horizon``
    (inspections, rollout blocks), or, in a record without it, ``H - prev_valid`` where the previous chunk holds
    ``H - s`` planned actions and the prefix horizon is ``H - s`` too (a protocol block). A record where they
    differ (e.g. LeRobot's, whose "execution horizon" is the prefix horizon and whose executed count is not
    recorded) gets no window rather than a guessed one."""
    delay = int(np.asarray(tracked["inference_delay"]))
    if "execute_horizon" in tracked:
        return executed_window(delay, int(np.asarray(tracked["execute_horizon"])))
    valid = prev_valid_of(tracked)
    prefix = int(np.asarray(tracked.get("prefix_attention_horizon", valid)))
    if prefix != valid:
        return None
    return executed_window(delay, int(horizon) - valid)


def _tracked_regions(tracked: Tracked, horizon: int) -> tuple[list[Region], Region | None]:
    weights, delay = _numpy(tracked, "prefix_weights", "inference_delay", what="the region shading")
    valid = prev_valid_of(tracked)
    return chunk_regions(int(delay), valid, horizon, weights), tracked_executed_window(tracked, horizon)


# ------------------------------------------------------------------------------------------------
# Figures


def plot_flow_matching_steps(
    tracked: Tracked, batch_idx: int = 0, action_dim_idx: int = 0, horizon_idx: int = 0
) -> Figure:
    """One action entry over flow time: x_t, v_t, x_1_pred and (RTC) correction and applied term.

    The target ``prev_action_chunk[b, h, a]`` is a horizontal line on the x_t and x_1_pred panels when
    horizon index ``h`` is guided; the final action is marked at t = 1 on both.
    """
    x_t, v_t, x_1_pred, time, action = _numpy(tracked, *_STEP_KEYS, what="plot_flow_matching_steps")
    _, batch, horizon, action_dim = x_t.shape
    b = check_index("batch_idx", batch_idx, batch)
    h = check_index("horizon_idx", horizon_idx, horizon)
    a = check_index("action_dim_idx", action_dim_idx, action_dim)
    series = {"x_t": x_t, "v_t": v_t, "x_1_pred": x_1_pred}
    if is_rtc(tracked):
        correction, applied = _numpy(tracked, "correction", "applied", what="plot_flow_matching_steps")
        series.update(correction=correction, applied=applied)
    target = _target_if_guided(tracked, b, h, a)

    fig = new_figure(8.0, 1.9 * len(series) + 0.6)
    axes = fig.subplots(len(series), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (key, values) in zip(axes, series.items(), strict=True):
        ax.set_label(key)
        ax.plot(time, values[:, b, h, a], marker=".", label=key)
        if key == "x_t":  # the last Euler step lands on the final action at t = 1
            last = [time[-1], 1.0], [values[-1, b, h, a], action[b, h, a]]
            ax.plot(*last, linestyle=":", color=ax.get_lines()[0].get_color(), label="_last step")
        if key in ("x_t", "x_1_pred"):
            if target is not None:
                ax.axhline(target, color="tab:red", linestyle="--", label=TARGET_LABEL)
            ax.plot([1.0], [action[b, h, a]], marker="*", markersize=11, linestyle="none", color="k", label=FINAL_LABEL)
        elif key in ("correction", "applied"):
            ax.axhline(0.0, color="0.7", linewidth=0.8, label="_zero")
        ax.set_title(_PANEL_TITLES[key], fontsize="medium", loc="left", y=TITLE_Y)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        legend_outside(ax)
    axes[-1].set_xlabel(TIME_LABEL)
    axes[-1].set_xlim(-0.03, 1.03)
    if is_rtc(tracked):
        (weights,) = _numpy(tracked, "prefix_weights", what="plot_flow_matching_steps")
        guided = f"RTC, prefix weight {weights[h]:.2f}" + ("" if target is not None else ", not guided")
    else:
        guided = "plain, no guidance"
    fig.suptitle(f"Flow matching steps — batch {b}, horizon index {h}, action dim {a}\n({guided})")
    return fig


def plot_error_over_steps(tracked: Tracked, batch_idx: int = 0) -> Figure:
    """Magnitude of the weighted error per step, and its norm per guided horizon index (RTC only)."""
    _, time, weights = _numpy(tracked, "error", "time", "prefix_weights", what="plot_error_over_steps")
    total = error_magnitude(tracked, batch_idx)
    per_index = horizon_error_norms(tracked, batch_idx)
    b = int(batch_idx)

    fig = new_figure(8.5, 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_label("error_total")
    top.plot(time, total, marker="o", color="k", label=TOTAL_ERROR_LABEL)
    _log_scale_if_sensible(top, total)
    top.set_ylabel("‖weighted error‖₂")
    top.set_title("weighted error  w · (target − x_1_pred)  over horizon and action dims", fontsize="medium", y=TITLE_Y)
    legend_outside(top)

    bottom.set_label("error_per_horizon")
    guided = np.flatnonzero(weights > 0)
    colors = _index_colors(len(weights))
    for h in guided:
        bottom.plot(time, per_index[:, h], marker=".", color=colors[h], label=f"h={h} (w={weights[h]:.2f})")
    if guided.size == 0:
        bottom.text(
            0.5, 0.5, "no guided horizon index (all prefix weights are 0)", ha="center", transform=bottom.transAxes
        )
    _log_scale_if_sensible(bottom, per_index[:, guided])
    bottom.set_ylabel("‖error[h]‖₂ over action dims")
    bottom.set_title("per guided horizon index h", fontsize="medium", y=TITLE_Y)
    bottom.set_xlabel(TIME_LABEL)
    bottom.set_xlim(-0.03, 1.0)
    if guided.size:
        legend_outside(bottom)
    for ax in (top, bottom):
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"RTC guidance error over flow steps — batch {b}")
    return fig


def plot_comparison_grid(
    tracked: Tracked,
    batch_idx: int = 0,
    action_dim_indices: Sequence[int] | None = None,
    horizon_idx: int = 0,
) -> Figure:
    """Grid over flow time: one row per action dim (default 0, 1, 2), columns x_t, v_t and (RTC) correction."""
    x_t, v_t, time = _numpy(tracked, "x_t", "v_t", "time", what="plot_comparison_grid")
    _, batch, horizon, action_dim = x_t.shape
    b = check_index("batch_idx", batch_idx, batch)
    h = check_index("horizon_idx", horizon_idx, horizon)
    dims = checked_dims(action_dim_indices, action_dim)
    columns = {"x_t": x_t, "v_t": v_t}
    if is_rtc(tracked):
        (columns["correction"],) = _numpy(tracked, "correction", what="plot_comparison_grid")

    fig = new_figure(3.6 * len(columns) + 0.4, 2.3 * len(dims) + 0.8)
    grid = fig.subplots(len(dims), len(columns), sharex=True, squeeze=False)
    for row, a in enumerate(dims):
        target = _target_if_guided(tracked, b, h, a)
        for col, (key, values) in enumerate(columns.items()):
            ax = grid[row, col]
            ax.set_label(f"{key} a={a}")
            ax.plot(time, values[:, b, h, a], marker=".", label=key)
            if key == "x_t" and target is not None:
                ax.axhline(target, color="tab:red", linestyle="--", label=TARGET_LABEL)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(key, y=TITLE_Y)
            if col == 0:
                ax.set_ylabel(f"action dim {a}")
            if row == len(dims) - 1:
                ax.set_xlabel(TIME_LABEL)
    if any(line.get_label() == TARGET_LABEL for line in grid[0, 0].get_lines()):
        grid[0, 0].legend(fontsize="small", loc="best")
    kind = "RTC" if is_rtc(tracked) else "plain"
    fig.suptitle(f"Flow steps ({kind}) at horizon index {h} — batch {b}")
    return fig


def plot_chunk_overview(
    tracked: Tracked,
    batch_idx: int = 0,
    action_dim_indices: Sequence[int] | None = None,
    plain_action: np.ndarray | None = None,
) -> Figure:
    """The final chunk over horizon index against ``prev_action_chunk`` (and a plain chunk, if given).

    ``action_dim_indices`` defaults to the first (up to) three dims, 0, 1, 2.
    RTC runs shade the regions of ``chunk_regions`` (frozen on planned actions, frozen on zero padding,
    guided, the previous chunk's zero padding from ``prev_valid`` on (``H - s`` in a later block; none in the
    first), where its line stops), mark
    the executed window ``d <= i < s`` along the top and show the prefix weights in a bottom panel.
    """
    (action,) = _numpy(tracked, "action", what="plot_chunk_overview")
    batch, horizon, action_dim = action.shape
    b = check_index("batch_idx", batch_idx, batch)
    dims = checked_dims(action_dim_indices, action_dim)
    if plain_action is not None:
        plain_action = np.asarray(plain_action)
        if plain_action.shape != action.shape:
            raise RTCError(f"plain_action has shape {plain_action.shape}; expected {action.shape} like the action")
    rtc = is_rtc(tracked)
    index = np.arange(horizon)

    heights = [2.2] * len(dims) + ([1.1] if rtc else [])
    fig = new_figure(9.0, sum(heights) + 0.8)
    axes = fig.subplots(len(heights), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    regions, executed = _tracked_regions(tracked, horizon) if rtc else ([], None)
    for k, (ax, a) in enumerate(zip(axes[: len(dims)], dims, strict=True)):
        ax.set_label(f"chunk a={a}")
        if rtc:
            shade_regions(ax, regions, label=k == 0)
            mark_executed(ax, executed, label=k == 0)
            # From prev_valid on (H - s in a later block) the previous chunk is zero padding: not drawn, no plan.
            (target,) = _numpy(tracked, "prev_action_chunk", what="plot_chunk_overview")
            valid = prev_valid_of(tracked)
            ax.plot(
                index[:valid], target[b, :valid, a], color="tab:red", linestyle="--", marker="s", label=TARGET_LABEL
            )
        if plain_action is not None:
            ax.plot(index, plain_action[b, :, a], color="tab:gray", marker="^", label=PLAIN_LABEL)
        ax.plot(index, action[b, :, a], color="tab:blue", marker="o", label=FINAL_LABEL)
        ax.set_ylabel(f"action dim {a}")
        ax.grid(alpha=0.3)
    legend_outside(axes[0])
    if rtc:
        (weights,) = _numpy(tracked, "prefix_weights", what="plot_chunk_overview")
        ax = axes[-1]
        ax.set_label(WEIGHTS_LABEL)
        shade_regions(ax, regions, label=False)
        ax.plot(index, weights, color="k", marker="o", drawstyle="default", label=WEIGHTS_LABEL)
        ax.set_ylim(-0.05, 1.1)
        ax.set_ylabel("prefix weight")
        ax.grid(alpha=0.3)
        legend_outside(ax)
    axes[-1].set_xlabel("horizon index i (0 = next action to execute)")
    axes[-1].set_xticks(index if horizon <= 16 else index[:: -(-horizon // 16)])  # readable for long chunks
    axes[-1].set_xlim(-0.5, horizon - 0.5)
    fig.suptitle(f"Action chunk over the horizon — batch {b}")
    return fig


def tracking_figure_makers(
    tracked: Tracked,
    batch_idx: int = 0,
    action_dim_indices: Sequence[int] | None = None,
    horizon_idx: int = 0,
    plain_action: np.ndarray | None = None,
) -> dict[str, Callable[[], Figure]]:
    """``tracking_figures`` as picklable functions that build each figure, by the same names: for render
    workers (``rtc.report.render``), which then receive the arrays rather than the drawn figures."""
    tracked = {key: np.asarray(value) for key, value in tracked.items()}  # numpy travels without jax
    plain_action = None if plain_action is None else np.asarray(plain_action)
    (action,) = _numpy(tracked, "action", what="tracking_figures")
    batch, horizon, action_dim = action.shape
    b = check_index("batch_idx", batch_idx, batch)
    h = check_index("horizon_idx", horizon_idx, horizon)
    dims = checked_dims(action_dim_indices, action_dim)
    makers: dict[str, Callable[[], Figure]] = {}
    for a in dims:
        makers[f"flow_steps_b{b}_h{h}_a{a}"] = functools.partial(plot_flow_matching_steps, tracked, b, a, h)
    if is_rtc(tracked):
        makers[f"error_b{b}"] = functools.partial(plot_error_over_steps, tracked, b)
    makers[f"comparison_grid_b{b}_h{h}"] = functools.partial(plot_comparison_grid, tracked, b, dims, h)
    if is_rtc(tracked):
        makers[f"chunk_overview_b{b}"] = functools.partial(plot_chunk_overview, tracked, b, dims, plain_action)
    return makers


def tracking_figures(
    tracked: Tracked,
    batch_idx: int = 0,
    action_dim_indices: Sequence[int] | None = None,
    horizon_idx: int = 0,
    plain_action: np.ndarray | None = None,
) -> dict[str, Figure]:
    """Every figure of one run by a file-name stem that says what it holds.

    ``flow_steps_b{b}_h{h}_a{a}`` per chosen action dim, ``comparison_grid_b{b}_h{h}`` and, for RTC
    runs, ``error_b{b}`` and ``chunk_overview_b{b}``.
    """
    makers = tracking_figure_makers(tracked, batch_idx, action_dim_indices, horizon_idx, plain_action)
    return {name: make() for name, make in makers.items()}


def save_tracking_plots(
    tracked: Tracked,
    output_dir: str | os.PathLike[str],
    batch_idx: int = 0,
    prefix: str = "rtc",
    *,
    action_dim_indices: Sequence[int] | None = None,
    horizon_idx: int = 0,
    plain_action: np.ndarray | None = None,
    executor: Executor | None = None,
) -> list[str]:
    """Write every figure of ``tracking_figures`` as ``{prefix}_{stem}.png`` into ``output_dir``; return the paths.

    By default: ``{prefix}_flow_steps_b{b}_h0_a{a}.png`` for the first (up to) three action dims,
    ``{prefix}_comparison_grid_b{b}_h0.png`` and, for RTC runs, ``{prefix}_error_b{b}.png`` and
    ``{prefix}_chunk_overview_b{b}.png``. With an ``executor`` (``rtc.report.render.render_pool``) the
    figures are drawn in parallel.
    """
    figures = tracking_figures(tracked, batch_idx, action_dim_indices, horizon_idx, plain_action)
    return write_pngs({f"{prefix}_{name}": fig for name, fig in figures.items()}, output_dir, executor=executor)


def write_pngs(
    figures: Mapping[str, FigureSource], output_dir: str | os.PathLike[str], *, executor: Executor | None = None
) -> list[str]:
    """Write each figure as ``{name}.png`` (100 dpi, each file whole or not at all); return the paths in order.

    A figure may be given as a function that builds it (``tracking_figure_makers``): with an ``executor`` the
    workers then build it too."""
    os.makedirs(output_dir, exist_ok=True)
    rendered = render_figures(figures, ("png",), dpi=100, executor=executor)()
    paths = []
    for name, formats in rendered.items():
        path = os.path.join(os.fspath(output_dir), f"{name}.png")
        write_atomic(path, formats["png"])
        paths.append(path)
    return paths
