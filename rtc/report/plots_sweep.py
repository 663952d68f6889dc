"""Figures of a sweep with their statistics: the paper's summary and one panel per level.

Input is a table of sweep points (a ``results.parquet`` frame from ``rtc.experiments.sweep.store``, or rows of
``rtc.experiments.sweep.sweep``; ``inference_delay`` is read as ``delay``). Every value is drawn with its 95 % interval
as a band (solve rate: Wilson; mean return and mean boundary jump: Student-t, see ``rtc.experiments.sweep``), and every
title gives the number of episodes per point. The execute horizon is chosen as in the paper's
delay figure: ``s = max(1, d)`` (``PAPER_HORIZON``), the most reactive execution for each delay.

The summary averages the solve rate over levels with equal weights. Levels are fixed strata (not sampled), so
its band carries the episodes' uncertainty only: the variance of the mean of independent per-level proportions,
``sum_l p_l (1 - p_l) / n_l / L^2``, with a normal 95 % interval clipped to [0, 1]
(``rtc.numerics.stats.stratified_mean``); with one level it is that level's Wilson interval.

The differences figure (``plot_sweep_differences``, from ``comparisons.parquet``) draws each method's solve rate
minus the baseline's against d, with paired 95 % intervals: for one level Newcombe's interval for paired
proportions (method 10), over several the stratified mean of the per-level differences with the variance of each,
``((n10 + n01) / n - diff^2) / n`` (``rtc.numerics.stats``). Truncated episodes (step limit reached unsolved) count
as unsolved everywhere; the per-level table gives their number beside each solve rate.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rtc.errors import RTCError, SettingsError
from rtc.experiments import sweep
from rtc.numerics import stats
from rtc.numerics.methods import METHOD_LABELS
from rtc.report.plots import legend_outside, new_figure
from rtc.report.plots_analysis import method_color

PAPER_HORIZON = "s = max(1, d)"
BAND_ALPHA = 0.18


def as_frame(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Sweep points as a DataFrame with a ``delay`` column."""
    frame = rows.copy() if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    if "delay" not in frame.columns and "inference_delay" in frame.columns:
        frame = frame.rename(columns={"inference_delay": "delay"})
    if frame.empty:
        raise RTCError("the sweep has no points to draw")
    return frame


def paper_points(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The points with the paper's execute horizon ``s = max(1, d)``."""
    frame = as_frame(rows)
    chosen = frame[frame["execute_horizon"] == np.maximum(1, frame["delay"])]
    if chosen.empty:
        raise RTCError(f"the sweep has no point with the paper's execute horizon {PAPER_HORIZON}")
    return chosen


def _episodes(frame: pd.DataFrame) -> str:
    counts = sorted({int(e) for e in frame["episodes"]})
    return "/".join(str(c) for c in counts)


def _check_metric(metric: str) -> None:
    if metric not in sweep.METRICS:
        raise SettingsError(f"metric={metric!r} is not one of {', '.join(sweep.METRICS)}")


def summary_series(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> dict[str, pd.DataFrame]:
    """``{method: frame(delay, solve_rate, low, high, levels, episodes, truncated)}``: the solve rate averaged over
    the levels that have the point, at ``s = max(1, d)``, with the band of the module docstring."""
    frame = paper_points(rows)
    out: dict[str, pd.DataFrame] = {}
    for method in dict.fromkeys(frame["method"]):
        records = []
        for delay, group in frame[frame["method"] == method].groupby("delay", sort=True):
            count = len(group)
            if count == 1:
                mean = float(group["solve_rate"].iloc[0])
                low, high = float(group["solve_rate_low"].iloc[0]), float(group["solve_rate_high"].iloc[0])
            else:
                pairs = zip(group["solved"], group["episodes"], strict=True)
                variances = [stats.proportion_variance(int(k), int(n)) for k, n in pairs]
                mean, low, high = stats.stratified_mean(group["solve_rate"].to_numpy(float), variances)
                low, high = max(0.0, low), min(1.0, high)
            truncated = group["truncated"].sum(min_count=len(group)) if "truncated" in group else float("nan")
            records.append(
                {
                    "delay": int(delay),
                    "solve_rate": mean,
                    "low": low,
                    "high": high,
                    "levels": count,
                    "episodes": int(group["episodes"].sum()),
                    "truncated": float(truncated),
                }
            )
        out[method] = pd.DataFrame.from_records(records)
    return out


def difference_series(comparisons: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``{method: frame(delay, diff, low, high, levels, episodes)}`` from a ``comparisons.parquet`` table at
    ``s = max(1, d)``: each method's solve rate minus the baseline's, pooled over levels as in the module
    docstring (one level: its Newcombe interval)."""
    if comparisons.empty:
        raise RTCError("the sweep has no comparison with a baseline (the baseline method was not swept)")
    frame = comparisons[comparisons["execute_horizon"] == np.maximum(1, comparisons["delay"])]
    if frame.empty:
        raise RTCError(f"the comparisons have no point with the paper's execute horizon {PAPER_HORIZON}")
    out: dict[str, pd.DataFrame] = {}
    for method in sorted(set(frame["method"])):
        records = []
        for delay, group in frame[frame["method"] == method].groupby("delay", sort=True):
            if len(group) == 1:
                row = group.iloc[0]
                diff, low, high = float(row.solve_rate_diff), float(row.diff_low), float(row.diff_high)
            else:
                variances = [
                    stats.paired_difference_variance(int(r.method_only), int(r.baseline_only), int(r.episodes))
                    for r in group.itertuples()
                ]
                diff, low, high = stats.stratified_mean(group["solve_rate_diff"].to_numpy(float), variances)
            records.append(
                {
                    "delay": int(delay),
                    "diff": diff,
                    "low": max(-1.0, low),
                    "high": min(1.0, high),
                    "levels": len(group),
                    "episodes": int(group["episodes"].sum()),
                }
            )
        out[method] = pd.DataFrame.from_records(records)
    return out


def plot_sweep_differences(comparisons: pd.DataFrame) -> Figure:
    """Each method's solve rate minus the baseline's against d (``s = max(1, d)``), with paired 95 % intervals
    (``difference_series``), pooled over the levels of the table."""
    series = difference_series(comparisons)
    baseline = str(comparisons["baseline"].iloc[0])
    levels = comparisons["level"].nunique()
    counts = "/".join(str(c) for c in sorted({int(e) for e in comparisons["episodes"]}))
    fig = new_figure(8.0, 4.2)
    ax = fig.subplots()
    ax.set_label("sweep differences")
    ax.axhline(0.0, color="0.4", linewidth=0.8)
    width = 0.08
    for index, (method, data) in enumerate(series.items()):
        color = method_color(method)
        shift = (index - (len(series) - 1) / 2) * width
        x = data["delay"].to_numpy(float) + shift
        below = data["diff"] - data["low"]
        above = data["high"] - data["diff"]
        ax.errorbar(x, data["diff"], yerr=[below, above], fmt="none", capsize=3, color=color)
        ax.plot(x, data["diff"], marker="o", color=color, label=METHOD_LABELS.get(method, method))
    delays = sorted({int(d) for d in comparisons["delay"]})
    ax.set_xticks(delays)
    ax.set_xticklabels([f"d={d}\ns={max(1, d)}" for d in delays])
    ax.set_xlabel(f"inference delay d (execute horizon {PAPER_HORIZON} below)")
    ax.set_ylabel(f"solve rate minus {METHOD_LABELS.get(baseline, baseline)}")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(
        f"Solve rate minus {baseline}, paired, {levels} level{'s' if levels != 1 else ''} "
        f"({counts} episode pairs per point; 95 % intervals)",
        fontsize="medium",
    )
    return fig


def plot_sweep_summary(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Figure:
    """The paper's summary: mean solve rate over levels against d, one line (and 95 % band) per method."""
    series = summary_series(rows)
    frame = paper_points(rows)
    levels = frame["level"].nunique()
    fig = new_figure(8.0, 4.2)
    ax = fig.subplots()
    ax.set_label("sweep summary")
    for method, data in series.items():
        color = method_color(method)
        label = METHOD_LABELS.get(method, method)
        ax.fill_between(data["delay"], data["low"], data["high"], color=color, alpha=BAND_ALPHA, linewidth=0)
        ax.plot(data["delay"], data["solve_rate"], marker="o", color=color, label=label)
    delays = sorted({int(d) for d in frame["delay"]})
    ax.set_xticks(delays)
    ax.set_xticklabels([f"d={d}\ns={max(1, d)}" for d in delays])
    ax.set_xlabel(f"inference delay d (execute horizon {PAPER_HORIZON} below)")
    ax.set_ylabel(f"solve rate, mean over {levels} level{'s' if levels != 1 else ''}")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)
    legend_outside(ax)
    ax.set_title(
        f"Mean solve rate over {levels} level{'s' if levels != 1 else ''} vs inference delay "
        f"({_episodes(frame)} episodes per point; 95 % band)",
        fontsize="medium",
    )
    return fig


def level_series(
    rows: pd.DataFrame | Sequence[Mapping[str, Any]], level: str, metric: str = "solve_rate"
) -> dict[str, pd.DataFrame]:
    """``{method: frame(delay, value, low, high, episodes)}`` of one level at ``s = max(1, d)``."""
    _check_metric(metric)
    frame = paper_points(rows)
    chosen = frame[frame["level"] == level]
    if chosen.empty:
        raise RTCError(f"level {level!r} is not in the sweep; it has {', '.join(sorted(set(frame['level'])))}")
    out = {}
    for method in dict.fromkeys(chosen["method"]):
        data = chosen[chosen["method"] == method].sort_values("delay")
        out[method] = pd.DataFrame(
            {
                "delay": data["delay"].astype(int).to_numpy(),
                "value": data[metric].astype(float).to_numpy(),
                "low": data[f"{metric}_low"].astype(float).to_numpy(),
                "high": data[f"{metric}_high"].astype(float).to_numpy(),
                "episodes": data["episodes"].astype(int).to_numpy(),
            }
        )
    return out


def plot_sweep_levels(rows: pd.DataFrame | Sequence[Mapping[str, Any]], metric: str = "solve_rate") -> Figure:
    """One panel per level: ``metric`` against d at ``s = max(1, d)``, one line and 95 % band per method.
    Undefined values (the jump against padding) are gaps."""
    _check_metric(metric)
    frame = paper_points(rows)
    names = sorted(set(frame["level"]))
    columns = min(3, len(names))
    rows_count = -(-len(names) // columns)
    fig = new_figure(4.2 * columns + 2.4, 3.2 * rows_count + 0.6)
    axes = fig.subplots(rows_count, columns, squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        if index >= len(names):
            ax.set_visible(False)
            continue
        level = names[index]
        ax.set_label(f"level {level} {metric}")
        series = level_series(frame, level, metric)
        for method, data in series.items():
            color = method_color(method)
            ax.fill_between(data["delay"], data["low"], data["high"], color=color, alpha=BAND_ALPHA, linewidth=0)
            ax.plot(data["delay"], data["value"], marker="o", color=color, label=METHOD_LABELS.get(method, method))
        delays = sorted({int(d) for d in frame[frame["level"] == level]["delay"]})
        ax.set_xticks(delays)
        ax.set_xlabel("inference delay d")
        ax.set_ylabel(sweep.METRICS[metric])
        if metric == "solve_rate":
            ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        episodes = _episodes(frame[frame["level"] == level])
        ax.set_title(f"{level.removeprefix('worlds_l_')} ({episodes} episodes per point)", fontsize="medium")
    legend_outside(axes[0, columns - 1])
    fig.suptitle(f"{sweep.METRICS[metric]} per level vs inference delay ({PAPER_HORIZON}; 95 % bands)")
    return fig


def level_table(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per level and method at ``s = max(1, d)``: the solve rate with its interval at every delay, as text
    (``0.62 [0.58, 0.66]``, followed by ``(3 truncated)`` where episodes hit the step limit unsolved), plus the
    episodes per point."""
    frame = paper_points(rows)
    records = []
    for (level, method), group in frame.groupby(["level", "method"], sort=True):
        record: dict[str, Any] = {"level": level, "method": method, "episodes": _episodes(group)}
        for row in group.sort_values("delay").itertuples():
            text = f"{row.solve_rate:.2f} [{row.solve_rate_low:.2f}, {row.solve_rate_high:.2f}]"
            truncated = getattr(row, "truncated", 0)
            shown = truncated == truncated and truncated  # NaN (not recorded) and 0 add nothing
            record[f"d={row.delay}"] = text + (f" ({int(truncated)} truncated)" if shown else "")
        records.append(record)
    return pd.DataFrame.from_records(records)


def sweep_figures(
    rows: pd.DataFrame | Sequence[Mapping[str, Any]], comparisons: pd.DataFrame | None = None
) -> dict[str, Figure]:
    """Every figure of a sweep by file stem: the summary, the differences against the baseline (when
    ``comparisons`` has any), then per-level panels of each metric."""
    figures = {"sweep_summary": plot_sweep_summary(rows)}
    if comparisons is not None and not comparisons.empty:
        figures["sweep_differences"] = plot_sweep_differences(comparisons)
    figures |= {f"sweep_levels_{metric}": plot_sweep_levels(rows, metric) for metric in sweep.METRICS}
    return figures


def bundle_bytes(folder: str | Path) -> bytes:
    """A stored sweep as one zip: ``results.parquet``, ``results.csv``, ``episodes.parquet`` and
    ``comparisons.parquet`` (where present), ``manifest.json``, ``level_table.csv`` and every figure of
    ``sweep_figures`` as ``figures/<name>.png`` (built in memory, whole or not at all)."""
    from rtc.experiments.sweep import store as sweep_store

    folder = Path(folder)
    parquet = (folder / sweep_store.RESULTS_FILE).read_bytes()
    frame = sweep_store.read_results(folder / sweep_store.RESULTS_FILE)
    comparisons = stored_comparisons(folder)
    files = {
        sweep_store.RESULTS_FILE: parquet,
        "results.csv": frame.to_csv(index=False).encode(),
        sweep_store.MANIFEST_FILE: (folder / sweep_store.MANIFEST_FILE).read_bytes(),
        "level_table.csv": level_table(frame).to_csv(index=False).encode(),
    }
    for name in (sweep_store.EPISODES_FILE, sweep_store.COMPARISONS_FILE):
        if (folder / name).exists():
            files[name] = (folder / name).read_bytes()
    for name, fig in sweep_figures(frame, comparisons).items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        files[f"figures/{name}.png"] = buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def stored_comparisons(folder: str | Path) -> pd.DataFrame | None:
    """A stored sweep's ``comparisons.parquet`` (None where the folder has none: a sweep of an older version)."""
    from rtc.experiments.sweep import store as sweep_store

    path = Path(folder) / sweep_store.COMPARISONS_FILE
    return sweep_store.read_comparisons(path) if path.exists() else None
