"""What each app page draws: one figure builder and one chart builder per page, named in ``rtc.report.pages_registry``.

A builder takes a :class:`PageArgs` (the record and the selection) and returns figures or charts by file-name
stem. Figure builders return makers (``name -> () -> Figure``) so the app draws only the open tab's figure;
``rtc.report.bundle.page_figures``/``page_charts`` are the public entry points. Nothing here imports streamlit.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import altair as alt
from matplotlib.figure import Figure

from rtc.errors import RTCError
from rtc.experiments import sweep
from rtc.numerics import diagnostics, seeds
from rtc.numerics.methods import METHOD_LABELS
from rtc.report import charts, plots, plots_sweep
from rtc.report import plots_analysis as analysis_plots

Makers = dict[str, Callable[[], Figure]]
Charts = dict[str, alt.TopLevelMixin]


@dataclasses.dataclass(frozen=True)
class PageArgs:
    """The selection a page is drawn for: ``record`` is an ``rtc.experiments.pipeline.Inspection`` or an
    ``rtc.io.traces.Trace``."""

    page: str
    record: Any
    b: int
    h: int
    dims: tuple[int, ...]
    extras: Mapping[str, Any] | None = None

    @property
    def rtc(self) -> dict | None:
        return self.record.tracked

    @property
    def plain(self) -> dict | None:
        return self.record.plain

    def extra(self) -> Any:
        """This analysis page's results (``extras[page]``), or why they are missing."""
        if self.extras is None or self.extras.get(self.page) is None:
            raise RTCError(f"page {self.page!r} needs its results (extras[{self.page!r}]); run it first")
        return self.extras[self.page]


def _same(fig: Figure) -> Figure:
    return fig


def _built(figures: Mapping[str, Figure]) -> Makers:
    """Makers of figures already drawn (picklable, so they can travel to a render worker)."""
    return {name: functools.partial(_same, fig) for name, fig in figures.items()}


# ---------------------------------------------------------------------------------------------
# Inspection pages


def overview_figures(a: PageArgs) -> Makers:
    plain_action = None if a.plain is None else a.plain["action"]
    return {
        f"rtc_chunk_overview_b{a.b}": functools.partial(
            plots.plot_chunk_overview, a.rtc, a.b, list(a.dims), plain_action
        )
    }


def overview_charts(a: PageArgs) -> Charts:
    return {
        f"chunk_b{a.b}": charts.chunk_chart(a.rtc, None if a.plain is None else a.plain["action"], a.b, list(a.dims))
    }


def _grid(a: PageArgs) -> Makers:
    """One comparison grid per action dim, so the app draws only the open tab's.

    x_t: the RTC sample (a first chunk's plain one); v_t: the plain sample (a trace's RTC one if it has none).
    """
    rtc, plain = a.rtc, a.plain
    kind, tracked = ("rtc", rtc) if (a.page == "x_t" and rtc) or plain is None else ("plain", plain)
    return {
        f"{kind}_comparison_grid_b{a.b}_h{a.h}_a{d}": functools.partial(
            plots.plot_comparison_grid, tracked, a.b, [d], a.h
        )
        for d in a.dims
    }


x_t_figures = v_t_figures = _grid


def x_t_charts(a: PageArgs) -> Charts:
    return {f"x_t_over_steps_b{a.b}": charts.x_t_chart(a.rtc or None, a.plain, a.b, list(a.dims), a.h)}


def v_t_charts(a: PageArgs) -> Charts:
    return {f"v_t_over_steps_b{a.b}": charts.v_t_chart(a.rtc or None, a.plain, a.b, list(a.dims), a.h)}


def correction_figures(a: PageArgs) -> Makers:
    return {
        f"rtc_flow_steps_b{a.b}_h{a.h}_a{d}": functools.partial(plots.plot_flow_matching_steps, a.rtc, a.b, d, a.h)
        for d in a.dims
    }


def correction_charts(a: PageArgs) -> Charts:
    return {
        f"correction_over_steps_b{a.b}": charts.correction_chart(a.rtc, a.b, list(a.dims), a.h),
        "guidance_weight": charts.guidance_weight_chart(a.rtc),
    }


def error_figures(a: PageArgs) -> Makers:
    return {f"rtc_error_b{a.b}": functools.partial(plots.plot_error_over_steps, a.rtc, a.b)}


def error_charts(a: PageArgs) -> Charts:
    return {f"error_over_steps_b{a.b}": charts.error_chart(a.rtc, a.b)}


# ---------------------------------------------------------------------------------------------
# Analysis pages


def _comparison_valid(comparison: Any) -> int:
    """Planned actions in the comparison's previous chunk (H in the first block, the prefix horizon later)."""
    return comparison.prefix_attention_horizon if comparison.prev_valid is None else comparison.prev_valid


def compare_figures(a: PageArgs) -> Makers:
    comparison = a.extra()
    figure = analysis_plots.plot_method_comparison(
        comparison.chunks,
        comparison.prev_chunk,
        comparison.inference_delay,
        comparison.weights,
        a.b,
        list(a.dims),
        prev_valid=_comparison_valid(comparison),
        execute_horizon=comparison.execute_horizon,
    )
    return _built({f"methods_b{a.b}": figure})


def compare_charts(a: PageArgs) -> Charts:
    comparison = a.extra()
    colors = {method: analysis_plots.method_color(method) for method in comparison.chunks}
    chart = charts.methods_chart(
        comparison.chunks,
        comparison.prev_chunk,
        a.b,
        list(a.dims),
        _comparison_valid(comparison),
        METHOD_LABELS,
        inference_delay=comparison.inference_delay,
        prefix_weights=comparison.weights,
        colors=colors,
        execute_horizon=comparison.execute_horizon,
    )
    return {f"methods_b{a.b}": chart}


def _delay_and_horizon(rtc: dict) -> tuple[int, int]:
    return int(rtc["inference_delay"]), int(rtc["prefix_attention_horizon"])


def diagnostics_figures(a: PageArgs) -> Makers:
    rtc, b, h = a.rtc, a.b, a.h
    d, p = _delay_and_horizon(rtc)
    settings = a.record.settings
    table = diagnostics.schedule_weights_table(d, p, rtc["action"].shape[1])
    curves = diagnostics.guidance_curves(settings.num_flow_steps, settings.max_guidance_weight)
    out = {
        "schedule_weights": analysis_plots.plot_schedule_weights(table, d, p, settings.prefix_attention_schedule),
        "guidance_weight": analysis_plots.plot_guidance_weight(curves, settings.max_guidance_weight),
    }
    for dim in a.dims:
        series = diagnostics.correction_vs_applied(rtc, b, h, dim)
        label = f"batch {b}, h={h}, dim {dim}"
        out[f"correction_vs_applied_b{b}_h{h}_a{dim}"] = analysis_plots.plot_correction_vs_applied(series, label)
    out[f"heatmaps_b{b}"] = analysis_plots.plot_heatmaps(diagnostics.heatmap_data(rtc, b), rtc["time"])
    return _built(out)


def diagnostics_charts(a: PageArgs) -> Charts:
    rtc = a.rtc
    d, p = _delay_and_horizon(rtc)
    table = diagnostics.schedule_weights_table(d, p, rtc["action"].shape[1])
    return {
        "schedule_weights": charts.schedule_weights_chart(table, a.record.settings.prefix_attention_schedule),
        "guidance_weight": charts.guidance_weight_chart(rtc),
        f"heatmaps_b{a.b}": charts.heatmap_chart(diagnostics.heatmap_data(rtc, a.b), rtc["time"]),
    }


def seeds_figures(a: PageArgs) -> Makers:
    result = a.extra()
    return _built(
        {
            f"seed_bands_h{a.h}_a{d}": analysis_plots.plot_seed_bands(seeds.band_series(result, a.h, d), a.h, d)
            for d in a.dims
        }
    )


def seeds_charts(a: PageArgs) -> Charts:
    result = a.extra()
    out = {f"seed_bands_h{a.h}_a{d}": charts.seed_band_chart(seeds.band_series(result, a.h, d), a.h, d) for d in a.dims}
    out["guidance_effect"] = charts.guidance_effect_chart(seeds.guidance_effects(result))
    return out


def rollout_figures(a: PageArgs) -> Makers:
    return _built({"rollout_trace_episode0": analysis_plots.plot_rollout_trace(a.extra(), 0, list(a.dims))})


def sweep_figures(a: PageArgs) -> Makers:
    rows, metric = a.extra()
    order = [metric, *(m for m in sweep.METRICS if m != metric)]  # the chosen metric first, then the others
    return _built({f"sweep_{m}": plots_sweep.plot_sweep_levels(rows, m) for m in order})


def no_charts(a: PageArgs) -> Charts:
    """Rollout and sweep: figures only."""
    return {}
