"""How a page shows things: its figures (PNG at screen resolution), its interactive charts, the summary numbers,
and the page's declared charts and figures (``rtc.report.page_content``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from pages import _data
from pages._selection import Context, TraceContext
from rtc.experiments import pipeline
from rtc.report import page_content, render

SCREEN_DPI = 110


def figure(fig) -> None:
    """A matplotlib figure from ``rtc.report.plots``, rendered once as PNG (``st.pyplot`` would draw it twice at
    200 dpi)."""
    st.image(render.render_figure(fig, ("png",), dpi=SCREEN_DPI)["png"])


def start_figure(make: Callable[[], Any]) -> Callable[[], bytes]:
    """Start building and rendering the figure ``make`` returns; the returned function gives its PNG.

    With the server's render workers up (``_data.running_render_pool``, started after the first page) the figure is
    drawn in one of them while this thread builds the page's charts on the other core. A job no worker has taken by
    the time the PNG is needed (all busy with a bundle) is drawn here instead, and so is one the pool could not do (a
    lost worker, a figure that does not pickle): a figure that fails to build fails here, with its own error."""

    def here() -> bytes:
        return render.build_and_render(make, ("png",), SCREEN_DPI)["png"]

    pool = _data.running_render_pool()
    if pool is None:
        return here
    future = pool.submit(render.build_and_render, make, ("png",), SCREEN_DPI)

    def png() -> bytes:
        if future.cancel():  # still queued: no worker was free
            return here()
        try:
            return future.result()["png"]
        except Exception:  # drawn here instead: the figure's own error, if any, is raised by this
            return here()

    return png


def chart(chart_obj, key: str) -> None:
    """An Altair chart (hover, zoom, legend toggles)."""
    st.altair_chart(chart_obj, key=key)


@dataclasses.dataclass(frozen=True)
class SummaryMetric:
    """One number of an RTC call's summary (``rtc.numerics.metrics.summarize``) as the overview shows it, for an
    inspection and a recorded trace alike; ``beside`` is another summary key shown under it when present."""

    label: str
    key: str
    help: str
    beside: tuple[str, str] | None = None  # (label, summary key)


SUMMARY_METRICS: dict[str, SummaryMetric] = {
    m.key: m
    for m in (
        SummaryMetric(
            "Guidance effect",
            "guidance_effect",
            "Per sample 1 − (weighted prefix error of RTC) / (weighted prefix error of plain sampling from the same "
            "noise); shown: the median over the batch with its distribution-free 95 % interval (order statistics) "
            "and n (samples whose plain error is 0 are undefined and left out). 1 = RTC met the previous chunk on "
            "the guided prefix, 0 = no better than plain sampling.",
        ),
        SummaryMetric(
            "Guidance cost",
            "guidance_cost",
            "What guidance cost: per sample the mean distance per action ‖RTC_i − plain_i‖ over i ≥ d (outside the "
            "frozen prefix) to the plain sample from the same noise at this observation; shown: the median over the "
            "batch with its 95 % interval and n. A high effect bought with a large w_max shows here.",
        ),
        SummaryMetric(
            "Prefix error",
            "weighted_prefix_error_rtc",
            "Weighted prefix error of the RTC chunk: Σ_h w_h ‖chunk_h − previous_h‖ over the prefix (lower = closer "
            "to the previous chunk).",
            ("plain", "weighted_prefix_error_plain"),
        ),
        SummaryMetric(
            "RTC vs plain",
            "final_action_difference",
            "Final-action difference ‖RTC chunk − plain chunk‖ over the whole chunk: how much guidance changed the "
            "result.",
        ),
        SummaryMetric(
            "Mean |correction|",
            "mean_abs_correction",
            "Mean size of the guidance correction over steps, indices and dims (applied = × guidance weight).",
            ("applied", "mean_abs_applied"),
        ),
        SummaryMetric(
            "Jump at d",
            "boundary_jump_rtc",
            "‖chunk[d] − e‖, e the last action executed before the new chunk takes over (previous[d−1] for d ≥ 1, "
            "the previous chunk's last executed action for d = 0). Undefined (—) where e would be the previous "
            "chunk's zero padding, or for d = 0 when the last executed action is not known.",
            ("plain", "boundary_jump_plain"),
        ),
        SummaryMetric(
            "Max deviation on frozen actions",
            "frozen_max_deviation_rtc",
            "max |chunk[i] − previous[i]| over the frozen actions i < d that are real planned actions.",
            ("plain", "frozen_max_deviation_plain"),
        ),
    )
}


def number(value: float | None) -> str:
    """A summary number as shown: three decimals, "—" where undefined."""
    return "—" if value is None else f"{value:.3f}"


def interval_text(summary: Mapping[str, Any], key: str) -> str:
    """``95 % [low, high], n = N`` of an estimate in a summary (``metrics.MedianEstimate.fields``)."""
    n = summary[f"{key}_n"]
    if summary.get(f"{key}_low") is None:
        return f"n = {n}: too few for a 95 % interval"
    return f"95 % [{summary[f'{key}_low']:.3f}, {summary[f'{key}_high']:.3f}], n = {n}"


def summary_metrics(keys: Sequence[str], summary: Mapping[str, Any]) -> None:
    """``SUMMARY_METRICS[key]`` for each of ``keys``: the estimates (each with its interval and n) side by side, then
    the other numbers in a row of their own (five in one row cut the intervals, n and labels off below 1920 px)."""
    estimates = [key for key in keys if f"{key}_n" in summary]
    for row in (estimates, [key for key in keys if key not in estimates]):
        if row:
            _metric_row(row, summary)


def _metric_row(keys: Sequence[str], summary: Mapping[str, Any]) -> None:
    for slot, key in zip(st.columns(len(keys)), keys, strict=True):
        metric = SUMMARY_METRICS[key]
        beside = {}
        if f"{key}_n" in summary:
            beside = {"delta": interval_text(summary, key), "delta_color": "off", "delta_arrow": "off"}
        elif metric.beside is not None and metric.beside[1] in summary:
            label, other = metric.beside
            beside = {"delta": f"{label}: {number(summary[other])}", "delta_color": "off", "delta_arrow": "off"}
        slot.metric(metric.label, number(summary.get(key)), help=metric.help, **beside)


def show_page_content(
    page_key: str,
    context: Context | TraceContext,
    result: pipeline.Inspection,
    extras: Mapping[str, Any] | None = None,
    *,
    figure_note: str | None = None,
) -> None:
    """The page's interactive charts, then its matplotlib figures, as declared in ``rtc.report.page_content``.

    ``extras`` holds an analysis page's results (see ``page_content.page_figures``). An inspection page's figures
    (one per action dimension) go in tabs; an analysis page's follow one another. ``figure_note`` (default: the
    page's ``figure_note``) is the caption above the figures.
    """
    spec = page_content.spec(page_key)
    if figure_note is None:
        figure_note = spec.figure_note
    view = context.view
    look = (view.look.batch_index, view.look.horizon_index, view.look.action_dim_indices)
    charts = st.container()  # filled once the figures are started (they are drawn meanwhile, see start_figure)
    makers = page_content.page_figure_makers(page_key, result, *look, extras)
    slots: list[tuple[Any, Callable[[], bytes]]] = []
    if makers:
        st.subheader(
            "Figure" if len(makers) == 1 else "Figures",
            help="The matplotlib figures from rtc.report, as in the page's bundle (and the command line).",
        )
        if figure_note:
            st.caption(figure_note)
        if len(makers) == 1 or spec.section != "Inspection":
            slots = [(st.empty(), start_figure(make)) for make in makers.values()]
        else:
            # Only the open tab's figure is built and drawn (switching tabs reruns): several cost no more than one.
            tabs = st.tabs(
                [f"action dim {a}" for a in view.look.action_dim_indices],
                key=f"figure_tabs_{page_key}",
                on_change="rerun",
            )
            slots = [
                (tab, start_figure(make))
                for tab, make in zip(tabs, makers.values(), strict=True)
                if tab.open is not False
            ]
    with charts:
        for name, chart_obj in page_content.page_charts(page_key, result, *look, extras).items():
            chart(chart_obj, key=f"chart_{page_key}_{name}")
    for slot, png in slots:
        with slot:
            st.image(png())
