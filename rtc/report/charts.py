"""Interactive Altair views of one tracked RTC run (and its plain twin), for the app and the HTML report.

Every chart is built from the same tracked arrays as the matplotlib figures in ``rtc.report.plots``: hover
for values, drag/scroll to pan and zoom, click a legend entry to show only that series
(shift-click for several, double-click to reset). Flow time runs from t = 0 (noise) to 1 (data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from rtc.errors import RTCError
from rtc.numerics.metrics import prev_valid_of
from rtc.report import plots

__all__ = [
    "chunk_chart",
    "correction_chart",
    "error_chart",
    "guidance_weight_chart",
    "heatmap_chart",
    "methods_chart",
    "schedule_weights_chart",
    "seed_band_chart",
    "steps_chart",
    "steps_frame",
    "v_t_chart",
    "x_t_chart",
]

Tracked = Mapping[str, Any]
WIDTH, HEIGHT = 280, 220
FIT_WIDTH = alt.AutoSizeParams(type="fit-x", contains="padding")  # stretch to the page, keep the plot height
H_TITLE = "horizon index h"
INDEX_TITLE = "horizon index i (0 = next action to execute)"


def _array(tracked: Tracked, key: str) -> np.ndarray:
    if key not in tracked:
        raise RTCError(f"this chart needs tracked[{key!r}], which the run lacks")
    return np.asarray(tracked[key])


def steps_frame(
    series: Mapping[str, np.ndarray],
    time: np.ndarray,
    batch_index: int,
    dims: Sequence[int],
    final: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Long table of ``[steps, B, H, A]`` arrays: one row per series, step, horizon index and action dim.

    ``final`` (per series, ``[B, H, A]``) appends the state after the last step at t = 1.
    """
    frames = []
    for name, values in series.items():
        values = np.asarray(values)
        times = np.asarray(time, dtype=float)
        if final is not None and name in final:
            values = np.concatenate([values, np.asarray(final[name])[None]], axis=0)
            times = np.append(times, 1.0)
        steps, batch, horizon, action_dim = values.shape
        b = plots.check_index("batch_index", batch_index, batch)
        for a in dims:
            plots.check_index("action dim", a, action_dim)
            block = values[:, b, :, a]  # [steps, H]
            frames.append(
                pd.DataFrame(
                    {
                        "series": name,
                        "step": np.repeat(np.arange(steps), horizon),
                        "t": np.repeat(times, horizon),
                        "h": np.tile(np.arange(horizon), steps),
                        "dim": f"action dim {a}",
                        "value": block.reshape(-1).astype(float),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _targets_frame(tracked: Tracked, batch_index: int, dims: Sequence[int]) -> pd.DataFrame:
    """The previous chunk's value at every guided horizon index (weight > 0), per action dim."""
    weights = _array(tracked, "prefix_weights")
    prev = _array(tracked, "prev_action_chunk")
    plots.check_index("batch_index", batch_index, prev.shape[0])
    rows = [
        {"h": h, "dim": f"action dim {a}", "target": float(prev[batch_index, h, a]), "weight": float(weights[h])}
        for a in dims
        for h in np.flatnonzero(weights > 0)
    ]
    return pd.DataFrame(rows, columns=["h", "dim", "target", "weight"])


def steps_chart(
    series: Mapping[str, np.ndarray],
    time: np.ndarray,
    batch_index: int,
    dims: Sequence[int],
    horizon_index: int,
    *,
    title: str,
    y_title: str,
    targets: pd.DataFrame | None = None,
    final: Mapping[str, np.ndarray] | None = None,
) -> alt.FacetChart:
    """Lines over flow time, one colour per horizon index, one dash per series, one panel per action dim.

    The chosen ``horizon_index`` is drawn thicker; ``targets`` (columns ``h, dim, target``) adds the
    previous chunk's value as a dotted rule in the matching colour; ``final`` ends each line at t = 1.
    """
    names = list(series)
    frame = steps_frame(series, time, batch_index, dims, final).assign(layer="line")
    if targets is not None and len(targets):
        frame = pd.concat([frame, targets.assign(layer="target", series="previous chunk (target)")], ignore_index=True)
    pick = alt.selection_point(fields=["h"], bind="legend", name="pick_h")
    color = alt.Color("h:O", title=H_TITLE, scale=alt.Scale(scheme="viridis"))
    opacity = alt.condition(pick, alt.value(0.95), alt.value(0.08))
    lines = (
        alt.Chart()
        .transform_filter(alt.datum.layer == "line")
        .mark_line(point=alt.OverlayMarkDef(size=18))
        .encode(
            x=alt.X("t:Q", title=plots.TIME_LABEL, scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("value:Q", title=y_title),
            color=color,
            strokeDash=alt.StrokeDash(
                "series:N",
                title="series",
                scale=alt.Scale(domain=names, range=[[1, 0], [6, 4], [2, 2]][: len(names)]),
                legend=alt.Legend(labelLimit=300, symbolType="stroke", symbolStrokeWidth=2),
            ),
            strokeWidth=alt.condition(alt.datum.h == int(horizon_index), alt.value(3.0), alt.value(1.2)),
            opacity=opacity,
            detail="series:N",
            tooltip=[
                alt.Tooltip("series:N"),
                alt.Tooltip("h:O", title="h"),
                alt.Tooltip("step:Q"),
                alt.Tooltip("t:Q", format=".3f"),
                alt.Tooltip("value:Q", format=".4f"),
            ],
        )
        .add_params(pick)
        .interactive()
    )
    layers: list[alt.Chart] = [lines]
    if targets is not None and len(targets):
        rules = (
            alt.Chart()
            .transform_filter(alt.datum.layer == "target")
            .mark_rule(strokeDash=[4, 3], strokeWidth=2)
            .encode(
                y="target:Q",
                color=color,
                opacity=opacity,
                tooltip=[
                    alt.Tooltip("series:N"),
                    alt.Tooltip("h:O", title="h"),
                    alt.Tooltip("target:Q", format=".4f"),
                    alt.Tooltip("weight:Q", title="prefix weight", format=".3f"),
                ],
            )
        )
        layers.append(rules)
    width = WIDTH if len(dims) < 3 else 2 * WIDTH // 3 + 40
    layered = alt.layer(*layers, data=frame).properties(width=width, height=HEIGHT)
    facet = alt.Facet("dim:N", title=None)
    return layered.facet(facet=facet, columns=3, title=title).resolve_scale(y="independent")


def _samples(tracked: Tracked | None, plain: Tracked | None, key: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``key`` of the RTC and plain samples that exist (a recorded trace may lack one), and their flow times."""
    present = {name: sample for name, sample in (("RTC", tracked), ("plain", plain)) if sample}
    if not present:
        raise RTCError(f"this chart needs an RTC or a plain sample with {key!r}; neither was given")
    return {name: _array(sample, key) for name, sample in present.items()}, _array(next(iter(present.values())), "time")


def x_t_chart(
    tracked: Tracked | None, plain: Tracked | None, batch_index: int, dims: Sequence[int], horizon_index: int
) -> alt.FacetChart:
    """x_t of the RTC and plain samples over flow time, with the previous chunk at guided indices.

    Either sample may be ``None`` (a recorded trace holds an RTC call, a plain first chunk, or both).
    """
    series, time = _samples(tracked, plain, "x_t")
    finals, _ = _samples(tracked, plain, "action")
    return steps_chart(
        series,
        time,
        batch_index,
        dims,
        horizon_index,
        title="State x_t over the denoising steps, ending at the final action at t = 1",
        y_title="x_t",
        targets=_targets_frame(tracked, batch_index, dims) if tracked else None,
        final=finals,
    )


def v_t_chart(
    tracked: Tracked | None, plain: Tracked | None, batch_index: int, dims: Sequence[int], horizon_index: int
) -> alt.FacetChart:
    """Velocity v_t (before guidance) of the RTC and plain samples over flow time (either may be ``None``)."""
    series, time = _samples(tracked, plain, "v_t")
    return steps_chart(
        series,
        time,
        batch_index,
        dims,
        horizon_index,
        title="Velocity v_t before guidance (RTC solid, plain dashed)",
        y_title="v_t",
    )


def correction_chart(tracked: Tracked, batch_index: int, dims: Sequence[int], horizon_index: int) -> alt.FacetChart:
    """The guidance correction (VJP of the weighted error) and the applied term (× guidance weight)."""
    series = {"correction": _array(tracked, "correction"), "applied = weight × correction": _array(tracked, "applied")}
    return steps_chart(
        series,
        _array(tracked, "time"),
        batch_index,
        dims,
        horizon_index,
        title="RTC correction per step (solid: before the guidance weight; dashed: as applied)",
        y_title="correction",
    )


def guidance_weight_chart(tracked: Tracked) -> alt.Chart:
    """The guidance weight used at every step (clipped at the maximum guidance weight)."""
    frame = pd.DataFrame(
        {
            "step": np.arange(len(_array(tracked, "time"))),
            "t": _array(tracked, "time").astype(float),
            "guidance weight": _array(tracked, "guidance_weight").astype(float),
        }
    )
    return (
        alt.Chart(frame, title="Guidance weight per step")
        .mark_line(point=alt.OverlayMarkDef(color="black"), color="black")
        .encode(
            x=alt.X("t:Q", title=plots.TIME_LABEL, scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("guidance weight:Q"),
            tooltip=["step:Q", alt.Tooltip("t:Q", format=".3f"), alt.Tooltip("guidance weight:Q", format=".4f")],
        )
        .properties(width=2 * WIDTH, height=HEIGHT - 40, autosize=FIT_WIDTH)
        .interactive()
    )


def error_chart(tracked: Tracked, batch_index: int) -> alt.LayerChart:
    """Norm of the weighted error per step: in total and per guided horizon index (log scale)."""
    time = _array(tracked, "time").astype(float)
    weights = _array(tracked, "prefix_weights")
    total = plots.error_magnitude(tracked, batch_index)
    per_index = plots.horizon_error_norms(tracked, batch_index)
    rows = [
        {"t": t, "step": i, "series": "all indices", "h": -1, "error": float(v)}
        for i, (t, v) in enumerate(zip(time, total, strict=True))
    ]
    for h in np.flatnonzero(weights > 0):
        rows += [
            {"t": t, "step": i, "series": f"h={h} (w={weights[h]:.2f})", "h": int(h), "error": float(v)}
            for i, (t, v) in enumerate(zip(time, per_index[:, h], strict=True))
        ]
    frame = pd.DataFrame(rows)
    positive = frame[frame["error"] > 0]
    scale = alt.Scale(type="log") if len(positive) == len(frame) and len(frame) else alt.Scale(type="symlog")
    pick = alt.selection_point(fields=["series"], bind="legend", name="pick_series")
    return (
        alt.Chart(frame, title="‖weighted error‖ over the denoising steps (click the legend to isolate)")
        .mark_line(point=True)
        .encode(
            x=alt.X("t:Q", title=plots.TIME_LABEL, scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("error:Q", title="‖weighted error‖₂", scale=scale),
            color=alt.Color("series:N", title="horizon index", sort=alt.SortField("h")),
            opacity=alt.condition(pick, alt.value(0.95), alt.value(0.08)),
            tooltip=["series:N", "step:Q", alt.Tooltip("t:Q", format=".3f"), alt.Tooltip("error:Q", format=".3e")],
        )
        .add_params(pick)
        .properties(width=2 * WIDTH, height=HEIGHT + 40, autosize=FIT_WIDTH)
        .interactive()
    )


_REGION_COLORS: dict[str, str] = {
    plots.FROZEN_LABEL: "#9467bd",
    plots.FROZEN_PADDING_LABEL: "#d62728",
    plots.GUIDED_LABEL: "#ff7f0e",
    plots.PADDING_LABEL: "#7f7f7f",
    plots.EXECUTED_LABEL: "#000000",
}


def _region_rows(
    regions: Sequence[plots.Region], executed: plots.Region | None, field: str, panel: str
) -> list[dict[str, Any]]:
    """Rows of the region layers (as ``rtc.report.plots.chunk_regions``) for one facet panel ``{field: panel}``."""
    rows = [
        {"layer": "region", field: panel, "region": r.label, "x0": r.start - 0.5, "x1": r.stop - 0.5} for r in regions
    ]
    if executed is not None:
        rows.append(
            {
                "layer": "executed",
                field: panel,
                "region": executed.label,
                "x0": executed.start - 0.5,
                "x1": executed.stop - 0.5,
            }
        )
    return rows


def _region_layers(regions: Sequence[plots.Region], executed: plots.Region | None, horizon: int) -> list[alt.Chart]:
    """Shaded bands per region and a bar along the top over the executed window, in the figures' colours."""
    present = [r.label for r in regions] + ([executed.label] if executed is not None else [])
    domain = [label for label in _REGION_COLORS if label in present]
    color = alt.Color(
        "region:N",
        title="region",
        scale=alt.Scale(domain=domain, range=[_REGION_COLORS[label] for label in domain]),
        legend=alt.Legend(orient="bottom", direction="vertical", labelLimit=400, symbolOpacity=0.5),
    )
    x = alt.X("x0:Q", title=INDEX_TITLE, scale=alt.Scale(domain=[-0.5, horizon - 0.5], nice=False))
    shading = (
        alt.Chart()
        .transform_filter(alt.datum.layer == "region")
        .mark_rect(opacity=0.15)
        .encode(x=x, x2="x1:Q", color=color, tooltip=["region:N"])
    )
    bar = (
        alt.Chart()
        .transform_filter(alt.datum.layer == "executed")
        .mark_rect(opacity=0.9)
        .encode(x=x, x2="x1:Q", y=alt.value(0), y2=alt.value(5), color=color, tooltip=["region:N"])
    )
    return [shading, bar]


def _horizon_lines(pick_name: str, stroke: alt.Stroke, **encodings: Any) -> alt.Chart:
    """The line layer of a chunk-over-the-horizon chart: the rows with ``layer == "line"`` as ``value`` (action)
    over index ``i``, one line per ``series`` (``stroke``); clicking a legend entry isolates it."""
    pick = alt.selection_point(fields=["series"], bind="legend", name=pick_name)
    return (
        alt.Chart()
        .transform_filter(alt.datum.layer == "line")
        .mark_line(point=True)
        .encode(
            x=alt.X("i:Q", title=INDEX_TITLE, axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("value:Q", title="action"),
            stroke=stroke,
            opacity=alt.condition(pick, alt.value(0.95), alt.value(0.1)),
            **encodings,
        )
        .add_params(pick)
    )


def chunk_chart(
    tracked: Tracked, plain_action: np.ndarray | None, batch_index: int, dims: Sequence[int]
) -> alt.FacetChart:
    """Previous chunk, RTC chunk and (when given) plain chunk over the horizon, regions shaded as in the figures
    (``rtc.report.plots.chunk_regions``: frozen, frozen on zero padding, guided, the previous chunk's zero padding)
    and the executed window ``d <= i < s`` as a bar along the top.

    The previous chunk is drawn where it holds planned actions (i < prev_valid: ``H`` in the first block,
    ``H - s`` later; ``metrics.prev_valid_of``), not over its zero padding.
    """
    action = _array(tracked, "action")
    prev = _array(tracked, "prev_action_chunk")
    weights = _array(tracked, "prefix_weights")
    delay = int(_array(tracked, "inference_delay"))
    _array(tracked, "prefix_attention_horizon")  # a clear message when the run lacks it
    known = prev_valid_of(tracked)  # entries of the previous chunk that are planned actions
    b = plots.check_index("batch_index", batch_index, action.shape[0])
    horizon = action.shape[1]
    index = np.arange(horizon)
    regions = plots.chunk_regions(delay, known, horizon, weights)
    executed = plots.tracked_executed_window(tracked, horizon)
    frames = []
    for a in dims:
        plots.check_index("action dim", a, action.shape[2])
        label = f"action dim {a}"
        chunks = [(plots.TARGET_LABEL, prev), ("RTC chunk (final action)", action)]
        if plain_action is not None:  # a recorded trace may hold no plain sample
            chunks.append((plots.PLAIN_LABEL, np.asarray(plain_action)))
        for name, chunk in chunks:
            rows = pd.DataFrame(
                {"layer": "line", "dim": label, "series": name, "i": index, "value": chunk[b, :, a].astype(float)}
            )
            rows["weight"] = weights.astype(float)
            # The previous chunk is zero padding from index H - s on: nothing to continue there.
            frames.append(rows[index < known] if name == plots.TARGET_LABEL else rows)
        frames.append(
            pd.DataFrame(_region_rows(regions, executed, "dim", label), columns=["layer", "dim", "region", "x0", "x1"])
        )
    frame = pd.concat(frames, ignore_index=True)
    lines = _horizon_lines(
        "pick_chunk",
        alt.Stroke(
            "series:N",
            title="chunk",
            legend=alt.Legend(labelLimit=300),
            # Drawn in this order, so the RTC chunk lies on top of the plain one.
            scale=alt.Scale(
                domain=[plots.PLAIN_LABEL, plots.TARGET_LABEL, "RTC chunk (final action)"],
                range=["#7f7f7f", "#d62728", "#1f77b4"],
            ),
        ),
        tooltip=[
            "series:N",
            alt.Tooltip("i:Q", title="i"),
            alt.Tooltip("value:Q", format=".4f"),
            alt.Tooltip("weight:Q", title="prefix weight", format=".3f"),
        ],
    )
    layered = alt.layer(*_region_layers(regions, executed, horizon), lines, data=frame).properties(
        width=2 * WIDTH, height=150
    )
    return layered.facet(row=alt.Row("dim:N", title=None), title="Action chunk over the horizon").resolve_scale(
        y="independent"
    )


# ---------------------------------------------------------------------------------------------
# Analysis pages


def methods_chart(
    chunks: Mapping[str, np.ndarray],
    prev_chunk: np.ndarray,
    batch_index: int,
    dims: Sequence[int],
    prev_valid: int,
    labels: Mapping[str, str] | None = None,
    inference_delay: int | None = None,
    prefix_weights: np.ndarray | None = None,
    colors: Mapping[str, str] | None = None,
    execute_horizon: int | None = None,
) -> alt.FacetChart:
    """Final chunk of every method over the horizon against the previous chunk (its first ``prev_valid``
    entries, the rest being zero padding), one panel per action dimension. With ``inference_delay`` the
    regions are shaded as in ``rtc.report.plots_analysis.plot_method_comparison`` and, with ``execute_horizon``,
    the executed window ``d <= i < s`` is a bar along the top. ``colors`` (method -> matplotlib colour) gives each
    method the colour it has in the figures; the previous chunk is red."""
    from matplotlib.colors import to_hex

    prev = np.asarray(prev_chunk)
    b = plots.check_index("batch_index", batch_index, prev.shape[0])
    horizon = prev.shape[1]
    labels = labels or {}
    regions, executed = [], None
    if inference_delay is not None:
        regions = plots.chunk_regions(inference_delay, prev_valid, horizon, prefix_weights)
        executed = None if execute_horizon is None else plots.executed_window(inference_delay, execute_horizon)
    color_scale = alt.Undefined
    if colors is not None:
        domain = ["previous chunk (target)", *(labels.get(m, m) for m in chunks)]
        palette = [to_hex("tab:red"), *(to_hex(colors.get(m, "k")) for m in chunks)]
        color_scale = alt.Scale(domain=domain, range=palette)
    rows = []
    for a in dims:
        rows += [
            {"layer": "line", "series": plots.TARGET_LABEL, "i": i, "dim": f"dim {a}", "value": float(prev[b, i, a])}
            for i in range(int(prev_valid))
        ]
        for method, chunk in chunks.items():
            values = np.asarray(chunk)[b, :, a]
            name = labels.get(method, method)
            rows += [
                {"layer": "line", "series": name, "i": i, "dim": f"dim {a}", "value": float(v)}
                for i, v in enumerate(values)
            ]
        rows += _region_rows(regions, executed, "dim", f"dim {a}")
    dashed = alt.condition(alt.datum.series == plots.TARGET_LABEL, alt.value([5, 3]), alt.value([1, 0]))
    lines = _horizon_lines(
        "pick_method",
        # below the panels: nine methods beside three facets would overflow the page's width
        alt.Stroke(
            "series:N", title="method", legend=alt.Legend(labelLimit=400, orient="bottom", columns=2), scale=color_scale
        ),
        tooltip=["series:N", "dim:N", "i:Q", alt.Tooltip("value:Q", format=".4f")],
        strokeDash=dashed,
    ).interactive()
    layers = (*_region_layers(regions, executed, horizon), lines) if regions or executed else (lines,)
    return (
        alt.layer(*layers, data=pd.DataFrame(rows))
        .properties(width=WIDTH, height=HEIGHT)
        .facet(facet=alt.Facet("dim:N", title=None), columns=3)
        .properties(title="Final chunks by method from the same noise (click the legend to isolate)")
    )


def schedule_weights_chart(table: Mapping[str, np.ndarray], current: str) -> alt.Chart:
    """Prefix weights of every schedule over the horizon; the current schedule is drawn thicker."""
    rows = [
        {"schedule": name, "i": i, "weight": float(w), "current": name == current}
        for name, weights in table.items()
        for i, w in enumerate(np.asarray(weights))
    ]
    return (
        alt.Chart(pd.DataFrame(rows), title="Prefix weights per schedule")
        .mark_line(point=True)
        .encode(
            x=alt.X("i:Q", title=INDEX_TITLE, axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("weight:Q", title="prefix weight W_i", scale=alt.Scale(domain=[0, 1.05])),
            color=alt.Color("schedule:N"),
            strokeWidth=alt.condition(alt.datum.current, alt.value(4), alt.value(1.5)),
            tooltip=["schedule:N", "i:Q", alt.Tooltip("weight:Q", format=".3f")],
        )
        .properties(width=2 * WIDTH, height=HEIGHT - 40, autosize=FIT_WIDTH)
        .interactive()
    )


def heatmap_chart(data: Mapping[str, np.ndarray], time: np.ndarray) -> alt.FacetChart:
    """One heatmap per key of ``[num_steps, H]`` arrays (rows: flow steps, columns: horizon index)."""
    time = np.asarray(time, float)
    rows = [
        {"quantity": key, "step": s, "t": float(time[s]), "i": i, "norm": float(v)}
        for key, values in data.items()
        for (s, i), v in np.ndenumerate(np.asarray(values))
    ]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_rect()
        .encode(
            x=alt.X("i:O", title="horizon index i"),
            y=alt.Y("step:O", title="flow step (t = 0 at the top)"),
            color=alt.Color("norm:Q", title="norm", scale=alt.Scale(scheme="magma")),
            tooltip=[
                "quantity:N",
                "step:Q",
                alt.Tooltip("t:Q", format=".3f"),
                "i:Q",
                alt.Tooltip("norm:Q", format=".3e"),
            ],
        )
        .properties(width=WIDTH - 40, height=HEIGHT)
        .facet(column=alt.Column("quantity:N", title=None))
        .resolve_scale(color="independent")
        .properties(title="Norm over action dims per flow step × horizon index")
    )


def seed_band_chart(series: Mapping[str, Mapping[str, np.ndarray]], horizon_index: int, dim: int) -> alt.VConcatChart:
    """Median line and inter-quartile band over seeds of x_t at one entry and of the error magnitude, per method."""
    from rtc.numerics.seeds import bands

    rows = []
    for method, values in series.items():
        for quantity in ("x_t", "error"):
            median, q25, q75 = bands(values[quantity])
            for t, m, lo, hi in zip(values["time"], median, q25, q75, strict=True):
                rows.append({"method": method, "quantity": quantity, "t": float(t), "median": m, "q25": lo, "q75": hi})
    frame = pd.DataFrame(rows)
    titles = {"x_t": f"x_t[h={horizon_index}, dim {dim}]", "error": "‖W · (target − x_1_pred)‖"}
    panels = []
    for quantity, title in titles.items():
        base = alt.Chart(frame[frame.quantity == quantity]).encode(
            x=alt.X("t:Q", title=plots.TIME_LABEL, scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("method:N"),
        )
        band = base.mark_area(opacity=0.25).encode(y=alt.Y("q25:Q", title=title), y2="q75:Q")
        line = base.mark_line(point=True).encode(
            y="median:Q",
            tooltip=["method:N", alt.Tooltip("t:Q", format=".3f"), alt.Tooltip("median:Q", format=".4f")],
        )
        panels.append((band + line).properties(width=2 * WIDTH, height=HEIGHT - 40))
    return alt.vconcat(*panels, title="Median (line) and inter-quartile range (band) over seeds")


def guidance_effect_chart(effects: Mapping[str, Any]) -> alt.LayerChart:
    """Histogram over seeds of the per-seed guidance effect (``seeds.guidance_effects(...)["effect"]``, a
    ``metrics.MedianEstimate``), with its median as a rule and the median's 95 % interval as a band."""
    estimate = effects["effect"]
    values = np.asarray(estimate.samples, float)
    finite = values[np.isfinite(values)]
    frame = pd.DataFrame({"guidance effect": finite})
    bars = (
        alt.Chart(frame)
        .mark_bar(opacity=0.8)
        .encode(
            x=alt.X(
                "guidance effect:Q", bin=alt.Bin(maxbins=30), title="guidance effect (1 − error RTC / error plain)"
            ),
            y=alt.Y("count():Q", title="seeds"),
            tooltip=[alt.Tooltip("count():Q", title="seeds")],
        )
    )
    median = pd.DataFrame({"median": [estimate.median] if estimate.median is not None else []})
    interval = pd.DataFrame(
        {"low": [estimate.low], "high": [estimate.high]} if estimate.low is not None else {"low": [], "high": []}
    )
    band = alt.Chart(interval).mark_rect(color="black", opacity=0.12).encode(x="low:Q", x2="high:Q")
    rule = alt.Chart(median).mark_rule(color="black", strokeDash=[4, 3]).encode(x="median:Q")
    excluded = f", {estimate.excluded} undefined" if estimate.excluded else ""
    title = f"Guidance effect per seed (n = {estimate.n} seeds{excluded}; dashed: median, band: its 95 % interval)"
    return (bars + band + rule).properties(width=2 * WIDTH, height=HEIGHT - 40, title=title)
