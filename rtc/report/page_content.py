"""Every app page, declared once beside the code that builds what it draws: title, icon, help, figures, charts and
the data files its bundle carries.

Each page is a :class:`PageSpec` right after its builders; ``REGISTRY`` lists them in navigation order. The app's
navigation (``streamlit_app.py``), the pages (``pages/``) and the bundles read this table: ``page_figures``,
``page_charts``, ``report_content`` and ``extra_data`` are the entry points, and ``rtc.report.bundle`` only packs
what they return. A builder takes a :class:`PageArgs` (the record and the selection) and returns figures or charts
by file-name stem; figure builders return makers (``name -> () -> Figure``) so the app draws only the open tab's
figure. A page that shows only its declared charts and figures (x_t, v_t, correction, error) has a one-call file
in ``pages/`` (``_frame.declared_page``). Nothing here imports streamlit.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import altair as alt
from matplotlib.figure import Figure

from rtc.errors import RTCError
from rtc.experiments import sweep
from rtc.io import traces
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


def no_charts(a: PageArgs) -> Charts:
    """A page with figures only."""
    return {}


@dataclasses.dataclass(frozen=True, kw_only=True)
class PageSpec:
    """One page: its key, how navigation shows it, what it draws and what its bundle carries."""

    key: str
    title: str
    icon: str
    section: str  # navigation group: "Inspection" or "Analysis"
    description: str  # the one line that says what the page shows and how to read it
    figures: Callable[[PageArgs], Makers]  # figure makers by file-name stem
    charts: Callable[[PageArgs], Charts] = no_charts  # Altair charts by file-name stem
    data: Callable[[Any], dict[str, bytes]] | None = None  # data files of its results (``extras[key]``) by name
    figure_note: str = ""  # the caption above the page's matplotlib figure
    url_path: str = ""  # "" for the default page (the app's root URL)
    needs_rtc: bool = False  # inspection page that shows guidance, so needs an RTC call
    chunk_page: bool = False  # can show a rollout chunk opened from the Closed-loop rollout page
    needs_extras: bool = False  # analysis page that needs data beyond the inspection (``extras[key]``)
    needs_policy: str = ""  # why the page cannot work on a recorded trace ("" when it can)

    @property
    def file(self) -> str:
        return f"pages/{self.key}.py"

    @property
    def default(self) -> bool:
        return self.url_path == ""


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


OVERVIEW = PageSpec(
    key="overview",
    figure_note="The same chunks with the prefix weights per horizon index in the bottom panel.",
    figures=overview_figures,
    charts=overview_charts,
    title="Overview",
    icon=":material/dashboard:",
    section="Inspection",
    description=(
        "The new chunk RTC samples (blue) against the previous chunk it continues (red) and a plain sample "
        "from the same noise (grey): purple marks the frozen actions (i < d), orange the rest of the guided "
        "prefix."
    ),
    needs_rtc=True,
)


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


X_T = PageSpec(
    key="x_t",
    figure_note=(
        "RTC sample at the chosen horizon index h, one tab per action dimension: x_t, v_t and the correction "
        "side by side; the red dashed line is the previous chunk's value when h is guided."
    ),
    figures=x_t_figures,
    charts=x_t_charts,
    title="State x_t",
    icon=":material/timeline:",
    section="Inspection",
    description=(
        "How each action entry moves from noise (t = 0) to the final action (t = 1), one line per horizon "
        "index: guided indices should end on their dotted previous-chunk value; plain (dashed) is free."
    ),
    url_path="x_t",
    chunk_page=True,
)


V_T = PageSpec(
    key="v_t",
    figure_note=(
        "The plain sample (no guidance) from the same noise at the chosen horizon index h, one tab per action"
        " dimension: compare its x_t and v_t with the RTC figure on the State x_t page."
    ),
    figures=v_t_figures,
    charts=v_t_charts,
    title="Velocity v_t",
    icon=":material/speed:",
    section="Inspection",
    description=(
        "The network's velocity at every step, before guidance is added: where RTC (solid) and plain (dashed)"
        " differ, guidance has already moved x_t to a different place."
    ),
    url_path="v_t",
    chunk_page=True,
)


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


CORRECTION = PageSpec(
    key="correction",
    figure_note=(
        "One action entry (batch element, horizon index h, one tab per action dimension) through every step: "
        "x_t, v_t, the prediction x_1_pred, the correction and the applied term."
    ),
    figures=correction_figures,
    charts=correction_charts,
    title="RTC correction",
    icon=":material/tune:",
    section="Inspection",
    description=(
        "The guidance term at every step: the correction (VJP of the weighted error, solid) and what is "
        "actually added to v_t after the guidance weight (dashed); it reaches unguided indices too, through "
        "the network's Jacobian."
    ),
    url_path="correction",
    needs_rtc=True,
    chunk_page=True,
)


def error_figures(a: PageArgs) -> Makers:
    return {f"rtc_error_b{a.b}": functools.partial(plots.plot_error_over_steps, a.rtc, a.b)}


def error_charts(a: PageArgs) -> Charts:
    return {f"error_over_steps_b{a.b}": charts.error_chart(a.rtc, a.b)}


ERROR = PageSpec(
    key="error",
    figure_note="Top: the norm over all horizon indices; bottom: one line per guided horizon index h.",
    figures=error_figures,
    charts=error_charts,
    title="Error over steps",
    icon=":material/trending_down:",
    section="Inspection",
    description=(
        "How far the denoiser's prediction x_1_pred is from the previous chunk on the guided indices, "
        "weighted by the prefix weights (log scale): guidance pulls it down; where it stays high, the new "
        "chunk does not continue the previous one."
    ),
    url_path="error",
    needs_rtc=True,
    chunk_page=True,
)


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


COMPARE = PageSpec(
    key="compare",
    figures=compare_figures,
    charts=compare_charts,
    title="Compare methods",
    icon=":material/compare:",
    section="Analysis",
    description=(
        "Final chunks of naive sampling, RTC per schedule (with the network's Jacobian and Jacobian-free), "
        "hard masking and BID (backward coherence only: best of N plain samples), all from the inspection's "
        "noise and observation, against the previous chunk (red dashed); the table scores each against the "
        "previous chunk with the exp prefix weights, next to its distance to RTC and its wall time per chunk."
    ),
    url_path="compare",
    needs_extras=True,
    needs_policy="samples every method (naive, RTC per schedule, hard masking, BID) from the same observation",
)


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


DIAGNOSTICS = PageSpec(
    key="diagnostics",
    figures=diagnostics_figures,
    charts=diagnostics_charts,
    title="Guidance diagnostics",
    icon=":material/troubleshoot:",
    section="Analysis",
    description=(
        "Why guidance does what it does: the prefix weights of every schedule for this d and p = H − s, the "
        "guidance weight over flow time (clipped and not), the raw correction next to the applied term, and "
        "where over step × horizon the error and correction live."
    ),
    url_path="diagnostics",
    needs_policy=(
        "recomputes every schedule's prefix weights and the guidance-weight curve for the sampler's settings"
    ),
)


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


SEEDS = PageSpec(
    key="seeds",
    figures=seeds_figures,
    charts=seeds_charts,
    title="Many seeds",
    icon=":material/stacked_line_chart:",
    section="Analysis",
    description=(
        "The same situation sampled from many noise seeds in one batched call: median (line) and "
        "inter-quartile range (band) of x_t at the chosen entry and of the weighted error, RTC against naive."
    ),
    url_path="seeds",
    needs_extras=True,
    needs_policy="samples the same situation from many noise seeds",
)


def rollout_figures(a: PageArgs) -> Makers:
    return _built({"rollout_trace_episode0": analysis_plots.plot_rollout_trace(a.extra(), 0, list(a.dims))})


ROLLOUT = PageSpec(
    key="rollout",
    figures=rollout_figures,
    title="Closed-loop rollout",
    icon=":material/smart_toy:",
    section="Analysis",
    description=(
        "Whole episodes in Kinetix with the chosen method: new chunks every s steps, the first d actions kept"
        " from the previous chunk. Press Run (it waits for a free slot of the server's job queue); changing "
        "any setting while it runs cancels it."
    ),
    url_path="rollout",
    needs_extras=True,
    needs_policy="runs whole episodes in the Kinetix simulator",
)


def _sweep_result(result: Any) -> tuple[Any, str, Any]:
    """``(rows, metric, comparisons)`` of the sweep page's results: ``(rows, metric)`` or ``(rows, metric,
    comparisons)``, ``comparisons`` a ``store.comparison_table`` (None or empty: no paired comparison)."""
    rows, metric, *rest = result
    return rows, metric, (rest[0] if rest else None)


def sweep_figures(a: PageArgs) -> Makers:
    rows, metric, comparisons = _sweep_result(a.extra())
    order = [metric, *(m for m in sweep.METRICS if m != metric)]  # the chosen metric first, then the others
    figures = {f"sweep_{m}": plots_sweep.plot_sweep_levels(rows, m) for m in order}
    if comparisons is not None and not comparisons.empty:
        figures["sweep_differences"] = plots_sweep.plot_sweep_differences(comparisons)
    return _built(figures)


def sweep_data(result: Any) -> dict[str, bytes]:
    """The sweep's rows as ``sweep.csv``, and its paired comparisons as ``comparisons.csv`` when it has some."""
    rows, _, comparisons = _sweep_result(result)
    out = {"sweep.csv": sweep.to_csv(rows).encode()}
    if comparisons is not None and not comparisons.empty:
        out["comparisons.csv"] = comparisons.to_csv(index=False, float_format="%.17g").encode()
    return out


SWEEP = PageSpec(
    key="sweep",
    figures=sweep_figures,
    title="Sweep",
    icon=":material/insights:",
    section="Analysis",
    description=(
        "The paper's figure in small: solve rate, return or boundary jump against inference delay d, one line"
        " and 95 % band per method, every point on the same episode seeds. Press Run: the sweep waits for a "
        "free slot of the server's job queue; changing a setting cancels. Stored rtc-sweep results open "
        "below."
    ),
    url_path="sweep",
    needs_extras=True,
    needs_policy="runs episodes for every method and delay",
    data=sweep_data,
)


# ---------------------------------------------------------------------------------------------
# The table, and what is derived from it

REGISTRY: tuple[PageSpec, ...] = (OVERVIEW, X_T, V_T, CORRECTION, ERROR, COMPARE, DIAGNOSTICS, SEEDS, ROLLOUT, SWEEP)
SPECS: dict[str, PageSpec] = {spec.key: spec for spec in REGISTRY}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(spec.section for spec in REGISTRY))
# Title and what it shows, by page (report.html's headings).
PAGES: dict[str, tuple[str, str]] = {s.key: (s.title, s.description) for s in REGISTRY}
INSPECTION_PAGES: tuple[str, ...] = tuple(s.key for s in REGISTRY if s.section == "Inspection")
# Analysis pages and whether they need data beyond the inspection (passed as ``extras[page]``).
ANALYSIS_PAGES: dict[str, bool] = {s.key: s.needs_extras for s in REGISTRY if s.section == "Analysis"}
# Inspection pages that show guidance, so need an RTC call (a first-chunk trace has none).
RTC_PAGES: tuple[str, ...] = tuple(s.key for s in REGISTRY if s.needs_rtc)
# Pages that can show a rollout chunk instead of the sidebar's inspection.
CHUNK_PAGES: tuple[str, ...] = tuple(s.key for s in REGISTRY if s.chunk_page)
# Why a page cannot work on a recorded trace.
POLICY_PAGES: dict[str, str] = {s.key: s.needs_policy for s in REGISTRY if s.needs_policy}


def spec(page: str) -> PageSpec:
    """The page ``page`` (an ``RTCError`` names the known pages)."""
    if page not in SPECS:
        raise RTCError(f"unknown page {page!r}; pages: {', '.join(SPECS)}")
    return SPECS[page]


def waiting(page: str, extras: Mapping[str, Any] | None) -> bool:
    """Whether ``page`` needs results (``extras[page]``) that are not there yet."""
    return spec(page).needs_extras and (extras or {}).get(page) is None


# ---------------------------------------------------------------------------------------------
# Entry points: what a page draws, for the app, the bundle and the command line


def _args(
    page: str,
    record: Any,
    batch_index: int,
    horizon_index: int,
    dims: Sequence[int],
    extras: Mapping[str, Any] | None = None,
) -> PageArgs:
    """What a page is drawn for (``look`` below): the record, the batch element, the horizon index, the action
    dimensions and the analysis results by page key."""
    if spec(page).needs_rtc and not record.tracked:
        raise RTCError(f"the {spec(page).title} page needs an RTC call; {traces.FIRST_CHUNK_NOTE}")
    return PageArgs(page, record, int(batch_index), int(horizon_index), tuple(int(a) for a in dims), extras)


def page_figures(page: str, record: Any, *look: Any) -> dict[str, Figure]:
    """The matplotlib figures of ``page`` by file-name stem (``rtc_…``/``plain_…`` say which sample).

    ``record`` is an ``rtc.experiments.pipeline.Inspection`` or an ``rtc.io.traces.Trace``; ``look`` is
    ``batch_index, horizon_index, dims[, extras]``. Analysis pages other than ``diagnostics`` need their results in
    ``extras[page]``: a ``rtc.experiments.analysis.MethodComparison`` (compare), a ``seeds.seed_batch`` result
    (seeds), a ``rtc.experiments.rollout.Rollout`` (rollout, episode 0 drawn) or ``(rows, metric)`` (sweep).
    """
    return {name: make() for name, make in page_figure_makers(page, record, *look).items()}


def page_figure_makers(page: str, record: Any, *look: Any) -> Makers:
    """Like ``page_figures`` but each figure is built only when its function is called (for tabs)."""
    return spec(page).figures(_args(page, record, *look))


def page_charts(page: str, record: Any, *look: Any) -> Charts:
    """The Altair charts of ``page`` by file-name stem (``look`` as for ``page_figures``)."""
    return spec(page).charts(_args(page, record, *look))


def available_pages(record: Any) -> tuple[str, ...]:
    """The inspection pages that can be drawn for ``record`` (a first-chunk trace: x_t and v_t only)."""
    return INSPECTION_PAGES if record.tracked else tuple(p for p in INSPECTION_PAGES if p not in RTC_PAGES)


def extra_data(extras: Mapping[str, Any] | None) -> dict[str, bytes]:
    """The data files of the analysis results in ``extras`` by name under ``data/`` (the sweep as ``sweep.csv``):
    each page's ``data`` applied to its results."""
    out: dict[str, bytes] = {}
    for page in REGISTRY:
        if page.data is not None and (extras or {}).get(page.key) is not None:
            out.update(page.data(extras[page.key]))
    return out


def report_content(
    record: Any,
    batch_index: int,
    horizon_index: int,
    dims: Sequence[int],
    pages: Sequence[str] | None = None,
    extras: Mapping[str, Any] | None = None,
) -> tuple[Makers, Charts, dict[str, list[str]]]:
    """Figure makers (see ``page_figure_makers``) and charts of several pages, and which names belong to which page.

    Default pages: the inspection pages, then the analysis pages whose key is in ``extras``.
    """
    if pages is None:
        pages = [*available_pages(record), *(p for p in ANALYSIS_PAGES if extras and p in extras)]
    figures: Makers = {}
    chart_specs: Charts = {}
    sections: dict[str, list[str]] = {}
    for page in pages:
        look = (batch_index, horizon_index, dims, extras)
        page_figs, page_chs = page_figure_makers(page, record, *look), page_charts(page, record, *look)
        figures.update(page_figs)
        chart_specs.update(page_chs)
        sections[page] = [*page_chs, *page_figs]
    return figures, chart_specs, sections
