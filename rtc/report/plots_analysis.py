"""Matplotlib figures for the analysis pages: method comparison, guidance diagnostics, seed bands,
closed-loop rollouts and sweeps.

Like ``rtc.report.plots``, figures are ``matplotlib.figure.Figure`` objects with an Agg canvas (never pyplot),
every line carries a label and every panel an axes label (``Axes.get_label``), so tests and the app can
read the plotted data back. Flow time runs from t = 0 (noise) to t = 1 (data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from rtc.experiments.sweep import METRICS
from rtc.numerics.methods import METHOD_LABELS, METHODS
from rtc.numerics.sampler import SCHEDULES
from rtc.numerics.seeds import JACOBIAN_FREE
from rtc.report.plots import (
    PADDING_LABEL,
    TARGET_LABEL,
    TIME_LABEL,
    checked_dims,
    chunk_regions,
    executed_window,
    legend_outside,
    mark_executed,
    new_figure,
    shade_regions,
)

__all__ = [
    "CHUNK_START_LABEL",
    "CLIPPED_LABEL",
    "DIVERGES_LABEL",
    "HORIZON_LABEL",
    "JUMP_LABEL",
    "PADDING_LABEL",
    "STEP_LABEL",
    "SWITCH_LABEL",
    "UNCLIPPED_LABEL",
    "method_color",
    "plot_correction_vs_applied",
    "plot_guidance_weight",
    "plot_heatmaps",
    "plot_method_comparison",
    "plot_rollout_trace",
    "plot_schedule_weights",
    "plot_seed_bands",
    "plot_sweep",
]

HORIZON_LABEL = "horizon index i (0 = next action to execute)"
STEP_LABEL = "environment step"
CLIPPED_LABEL = "guidance weight (clipped at max)"
UNCLIPPED_LABEL = "unclipped c · inv_r2 (unbounded near t = 0 and t = 1)"
DIVERGES_LABEL = "unclipped → ∞ at t = 0"
STEP_MARKER_LABEL = "sampler steps"
CHUNK_START_LABEL = "chunk start (new observation)"
SWITCH_LABEL = "switch to the new chunk (start + d)"
JUMP_LABEL = "‖a_t − a_(t−1)‖ at switches"
_METHOD_COLORS = dict(
    zip(
        METHODS,
        (
            *("tab:gray", "tab:blue", "tab:cyan", "tab:olive", "tab:purple", "tab:green"),
            *("tab:orange", "tab:pink", "tab:brown"),  # RTC Jacobian-free: exp, linear, ones
            *("gold", "darkgreen"),  # training-time RTC, BID with its forward term
        ),
        strict=True,
    )
)
_SCHEDULE_COLORS = dict(zip(SCHEDULES, ("tab:blue", "tab:cyan", "tab:olive", "tab:purple"), strict=True))
_SEED_COLORS = {"rtc": "tab:blue", "naive": "tab:gray", JACOBIAN_FREE: "tab:orange"}
_SEED_LABELS = {"rtc": "RTC", "naive": "naive", JACOBIAN_FREE: "RTC Jacobian-free"}


def method_color(method: str) -> str:
    """The colour a method has in every figure."""
    return _METHOD_COLORS.get(method, "k")


# ------------------------------------------------------------------------------------------------
# Method comparison


def plot_method_comparison(
    chunks: Mapping[str, np.ndarray],
    prev_chunk: np.ndarray,
    inference_delay: int,
    prefix_weights: np.ndarray | None = None,
    batch_idx: int = 0,
    action_dim_indices: Sequence[int] | None = None,
    prev_valid: int | None = None,
    execute_horizon: int | None = None,
) -> Figure:
    """Final chunks of every method over the horizon, one panel per action dim, against the previous chunk.

    Lines are labelled with ``METHOD_LABELS`` (or the key) and ``TARGET_LABEL``. ``prev_valid`` (``H`` in the
    paper's first block, ``H - s`` in later ones; default ``H``) is where the previous chunk turns into zero
    padding: its line stops there and the padding is shaded (``PADDING_LABEL``); with ``execute_horizon`` the
    executed window ``d <= i < s`` is marked. The regions are those of ``rtc.report.plots.chunk_regions`` (frozen
    on planned actions, frozen on padding, guided).
    """
    prev = np.asarray(prev_chunk)
    _, horizon, action_dim = prev.shape
    dims = checked_dims(action_dim_indices, action_dim)
    index = np.arange(horizon)
    fig = new_figure(9.5, 2.3 * len(dims) + 0.8)
    axes = fig.subplots(len(dims), 1, sharex=True, squeeze=False)[:, 0]
    valid = horizon if prev_valid is None else int(prev_valid)
    regions = chunk_regions(inference_delay, valid, horizon, prefix_weights)
    executed = None if execute_horizon is None else executed_window(inference_delay, execute_horizon)
    for k, (ax, a) in enumerate(zip(axes, dims, strict=True)):
        ax.set_label(f"methods a={a}")
        shade_regions(ax, regions, label=k == 0)
        mark_executed(ax, executed, label=k == 0)
        target = prev[batch_idx, :, a]
        ax.plot(index[:valid], target[:valid], color="tab:red", linestyle="--", marker="s", label=TARGET_LABEL)
        for method, chunk in chunks.items():
            ax.plot(
                index,
                np.asarray(chunk)[batch_idx, :, a],
                marker="o",
                markersize=4,
                color=method_color(method),
                label=METHOD_LABELS.get(method, method),
            )
        ax.set_ylabel(f"action dim {a}")
        ax.grid(alpha=0.3)
    legend_outside(axes[0])
    axes[-1].set_xlabel(HORIZON_LABEL)
    axes[-1].set_xticks(index)
    axes[-1].set_xlim(-0.5, horizon - 0.5)
    fig.suptitle(f"Final chunks by method from the same noise — batch {batch_idx}, delay d={int(inference_delay)}")
    return fig


# ------------------------------------------------------------------------------------------------
# Guidance diagnostics


def plot_schedule_weights(
    table: Mapping[str, np.ndarray], inference_delay: int, prefix_attention_horizon: int, current: str | None = None
) -> Figure:
    """Prefix weights of every schedule over the horizon; the ``current`` schedule is drawn thicker.

    Shaded as in ``rtc.report.plots.chunk_regions`` with ``prev_valid = p`` (the protocol's ``H - s``), with the
    executed window ``d <= i < s = H - p`` marked."""
    fig = new_figure(8.5, 3.6)
    ax = fig.subplots()
    ax.set_label("prefix weights")
    horizon = len(next(iter(table.values())))
    index = np.arange(horizon)
    shade_regions(ax, chunk_regions(inference_delay, prefix_attention_horizon, horizon))
    mark_executed(ax, executed_window(inference_delay, horizon - prefix_attention_horizon))
    for schedule, weights in table.items():
        width = 3.0 if schedule == current else 1.5
        ax.plot(index, weights, marker="o", linewidth=width, color=_SCHEDULE_COLORS.get(schedule), label=schedule)
    ax.axvline(
        prefix_attention_horizon - 0.5, color="k", linestyle=":", label=f"prefix horizon p={prefix_attention_horizon}"
    )
    ax.set_xlabel(HORIZON_LABEL)
    ax.set_ylabel("prefix weight W_i")
    ax.set_xticks(index)
    ax.set_xlim(-0.5, horizon - 0.5)
    ax.set_ylim(-0.05, 1.1)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(f"Prefix weights per schedule (d={int(inference_delay)}, p={prefix_attention_horizon})")
    return fig


def plot_guidance_weight(curves: Mapping[str, np.ndarray], max_guidance_weight: float) -> Figure:
    """The guidance weight over flow time: clipped (what is used) and unclipped, with the sampler's steps.

    The unclipped curve is drawn only where it is finite (t > 0): at t = 0, ``c = (1 - t) / t`` diverges,
    which an arrow marked "→ ∞" at t = 0 shows instead of a point.
    """
    fig = new_figure(8.5, 3.6)
    ax = fig.subplots()
    ax.set_label("guidance weight")
    dense_time, unclipped = np.asarray(curves["dense_time"]), np.asarray(curves["dense_unclipped"])
    finite = (dense_time > 0) & np.isfinite(unclipped)
    ax.plot(dense_time[finite], unclipped[finite], color="tab:orange", linestyle="--", label=UNCLIPPED_LABEL)
    ax.plot(dense_time, curves["dense_clipped"], color="tab:blue", label=CLIPPED_LABEL)
    ax.plot(curves["time"], curves["clipped"], color="tab:blue", marker="o", linestyle="none", label=STEP_MARKER_LABEL)
    top = max(2.0 * float(max_guidance_weight), float(np.max(curves["clipped"], initial=0.0)), 1.0)
    ax.set_ylim(0.0, 1.05 * top)
    ax.set_xlim(0.0, 1.0)
    if np.any(~np.isfinite(unclipped[dense_time == 0])):  # the divergence at t = 0, pointing off the top
        ax.annotate(
            DIVERGES_LABEL,
            xy=(0.0, 1.0),
            xycoords="axes fraction",
            xytext=(0.15, 0.9),
            textcoords="axes fraction",
            color="tab:orange",
            ha="left",
            va="center",
            arrowprops={"arrowstyle": "->", "color": "tab:orange"},
        )
    ax.set_xlabel(TIME_LABEL)
    ax.set_ylabel("guidance weight")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(f"Guidance weight over flow time (max = {max_guidance_weight:g})")
    return fig


def plot_correction_vs_applied(series: Mapping[str, np.ndarray], label: str = "") -> Figure:
    """The raw correction and the applied term (guidance weight × correction) per step, and the weight."""
    fig = new_figure(8.5, 5.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    top.set_label("correction vs applied")
    top.plot(series["time"], series["correction"], marker="o", color="tab:green", label="correction (raw VJP)")
    top.plot(series["time"], series["applied"], marker="s", color="tab:red", label="applied = weight × correction")
    top.axhline(0.0, color="0.7", linewidth=0.8, label="_zero")
    top.set_ylabel("value")
    top.grid(alpha=0.3)
    legend_outside(top)
    bottom.set_label("guidance weight per step")
    bottom.plot(series["time"], series["guidance_weight"], marker="o", color="tab:blue", label=CLIPPED_LABEL)
    bottom.set_ylabel("weight")
    bottom.set_xlabel(TIME_LABEL)
    bottom.set_xlim(-0.03, 1.0)
    bottom.grid(alpha=0.3)
    legend_outside(bottom)
    fig.suptitle("Correction next to the applied guidance term" + (f" — {label}" if label else ""))
    return fig


def plot_heatmaps(data: Mapping[str, np.ndarray], time: np.ndarray) -> Figure:
    """One heatmap per key (``[num_steps, H]``: rows are flow steps, columns horizon indices)."""
    keys = list(data)
    time = np.asarray(time)
    fig = new_figure(4.0 * len(keys) + 0.5, 0.35 * len(time) + 2.2)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    titles = {"error": "‖weighted error‖", "correction": "‖correction‖", "applied": "‖applied term‖"}
    for ax, key in zip(axes, keys, strict=True):
        values = np.asarray(data[key])
        ax.set_label(f"heatmap {key}")
        image = ax.imshow(values, aspect="auto", origin="upper", cmap="magma", interpolation="nearest")
        fig.colorbar(image, ax=ax, shrink=0.9, label="norm over action dims")
        ax.set_title(titles.get(key, key))
        ax.set_xlabel("horizon index i")
        ax.set_xticks(np.arange(values.shape[1]))
        ax.set_yticks(np.arange(len(time)))
        ax.set_yticklabels([f"{t:.2f}" for t in time])
    axes[0].set_ylabel("flow time t at step start (0 = noise)")
    fig.suptitle("Guidance over flow step × horizon index")
    return fig


# ------------------------------------------------------------------------------------------------
# Seeds


def plot_seed_bands(series: Mapping[str, Mapping[str, np.ndarray]], horizon_idx: int, action_dim_idx: int) -> Figure:
    """Median (line) and inter-quartile range (band) over seeds of ``x_t`` at one entry and of the weighted
    error magnitude, RTC against naive and, if present, Jacobian-free RTC (``seeds.band_series`` output)."""
    from rtc.numerics.seeds import bands

    fig = new_figure(9.0, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_label("x_t bands")
    bottom.set_label("error bands")
    seeds = 0
    for name, values in sorted(series.items(), key=lambda item: item[0] != "naive"):  # naive underneath
        color, label = _SEED_COLORS.get(name, "k"), _SEED_LABELS.get(name, name)
        for ax, key in ((top, "x_t"), (bottom, "error")):
            median, q25, q75 = bands(values[key])
            ax.fill_between(values["time"], q25, q75, color=color, alpha=0.25, label=f"{label} 25–75%")
            ax.plot(values["time"], median, color=color, marker=".", label=f"{label} median")
        seeds = len(values["x_t"])
    top.set_ylabel(f"x_t[h={horizon_idx}, a={action_dim_idx}]")
    bottom.set_ylabel("‖W · (target − x_1_pred)‖")
    bottom.set_xlabel(TIME_LABEL)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        legend_outside(ax)
    fig.suptitle(f"Over {seeds} seeds: median and inter-quartile range")
    return fig


# ------------------------------------------------------------------------------------------------
# Rollouts and sweeps


def plot_rollout_trace(
    rollout: Any, episode: int = 0, action_dim_indices: Sequence[int] | None = None, max_marks: int = 80
) -> Figure:
    """Executed actions of one episode over its environment steps (up to its end), chunk starts (grey) and
    switches to the new chunk (red, dotted) marked when there are at most ``max_marks`` of them, and the
    jump ``||a_t - a_(t-1)||`` at every switch in the bottom panel."""
    length = int(rollout.lengths[episode])
    actions = np.asarray(rollout.actions[episode])[:length]
    dims = checked_dims(action_dim_indices, actions.shape[1])
    settings = rollout.settings
    t = np.arange(length)
    jumps = np.asarray(rollout.jumps[episode])[:length]
    switches = np.flatnonzero(np.isfinite(jumps))
    starts = np.asarray(rollout.chunk_starts)
    starts = starts[starts < length]
    fig = new_figure(10.0, 1.9 * len(dims) + 2.6)
    axes = fig.subplots(len(dims) + 1, 1, sharex=True, squeeze=False, height_ratios=[2] * len(dims) + [1.4])[:, 0]
    for ax, a in zip(axes[:-1], dims, strict=True):
        ax.set_label(f"actions a={a}")
        if len(starts) <= max_marks:
            for k, start in enumerate(starts):
                ax.axvline(start - 0.5, color="0.7", linewidth=0.8, label=CHUNK_START_LABEL if k == 0 else None)
        if len(switches) <= max_marks:
            for k, step in enumerate(switches):
                label = SWITCH_LABEL if k == 0 else None
                ax.axvline(step - 0.5, color="tab:red", linestyle=":", linewidth=1.0, label=label)
        ax.plot(t, actions[:, a], color="tab:blue", drawstyle="steps-mid", label="executed action (before noise)")
        ax.set_ylabel(f"action dim {a}")
        ax.grid(alpha=0.2)
    bottom = axes[-1]
    bottom.set_label("boundary jumps")
    bottom.plot(switches, jumps[switches], color="tab:red", marker="o", linestyle="none", label=JUMP_LABEL)
    bottom.set_ylabel("jump")
    bottom.set_xlabel(STEP_LABEL)
    bottom.set_xlim(-0.5, max(length, 1) - 0.5)
    bottom.grid(alpha=0.3)
    legend_outside(axes[0])
    legend_outside(bottom)
    outcome = "solved" if rollout.solved[episode] else "not solved"
    ended = "ended" if length < settings.episode_steps else "ran"
    fig.suptitle(
        f"Episode {episode}: {settings.method}, d={settings.inference_delay}, s={settings.execute_horizon} — "
        f"return {float(rollout.returns[episode]):.2f}, {outcome}, {ended} after {length} steps"
    )
    return fig


def plot_sweep(rows: Sequence[Mapping[str, Any]], metric: str = "solve_rate") -> Figure:
    """``metric`` against inference delay, one line per method (rows from ``sweep.sweep``); the tick
    labels give each delay's execute horizon."""
    from rtc.experiments.sweep import metric_by_method

    series = metric_by_method(rows, metric)
    fig = new_figure(8.0, 4.0)
    ax = fig.subplots()
    ax.set_label(f"sweep {metric}")
    banded = bool(rows) and f"{metric}_low" in rows[0]
    for method, (delays, values) in series.items():
        color = method_color(method)
        if banded:  # the 95 % interval of each point (rtc.experiments.sweep's statistics)
            low = metric_by_method(rows, metric, f"{metric}_low")[method][1]
            high = metric_by_method(rows, metric, f"{metric}_high")[method][1]
            ax.fill_between(delays, low, high, color=color, alpha=0.18, linewidth=0)
        ax.plot(delays, values, marker="o", color=color, label=METHOD_LABELS.get(method, method))
    horizon_of = {int(r["inference_delay"]): int(r["execute_horizon"]) for r in rows}
    delays = sorted(horizon_of)
    ax.set_xticks(delays)
    ax.set_xticklabels([f"d={d}\ns={horizon_of[d]}" for d in delays])
    ax.set_xlabel("inference delay d (execute horizon s below)")
    ax.set_ylabel(METRICS[metric])
    if metric == "solve_rate":
        ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    episodes = "/".join(str(e) for e in sorted({int(r["episodes"]) for r in rows}))
    band = "; 95 % band" if banded else ""
    ax.set_title(f"{METRICS[metric]} vs inference delay ({episodes} episodes per point{band})", fontsize="medium")
    return fig
