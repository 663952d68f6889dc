"""Every page of the app, declared once: navigation (streamlit_app.py), the pages, the bundle and report.html read it.

Each page names its figure and chart builders (``rtc.report.page_content``). No streamlit here:
``streamlit_app.py`` turns each :class:`PageSpec` into an ``st.Page``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

from rtc.report import page_content as content
from rtc.report.page_content import PageArgs


@dataclasses.dataclass(frozen=True, kw_only=True)
class PageSpec:
    """One page: its key (also its file ``pages/<key>.py``), how navigation shows it and what it needs."""

    key: str
    title: str
    icon: str
    section: str  # navigation group: "Inspection" or "Analysis"
    description: str  # the one line that says what the page shows and how to read it
    figures: Callable[[PageArgs], dict[str, Callable[[], Figure]]]  # figure makers by file-name stem
    charts: Callable[[PageArgs], dict[str, Any]]  # Altair charts by file-name stem
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


REGISTRY: tuple[PageSpec, ...] = (
    PageSpec(
        key="overview",
        figure_note="The same chunks with the prefix weights per horizon index in the bottom panel.",
        figures=content.overview_figures,
        charts=content.overview_charts,
        title="Overview",
        icon=":material/dashboard:",
        section="Inspection",
        description=(
            "The new chunk RTC samples (blue) against the previous chunk it continues (red) and a plain sample "
            "from the same noise (grey): purple marks the frozen actions (i < d), orange the rest of the guided "
            "prefix."
        ),
        needs_rtc=True,
    ),
    PageSpec(
        key="x_t",
        figure_note=(
            "RTC sample at the chosen horizon index h, one tab per action dimension: x_t, v_t and the correction "
            "side by side; the red dashed line is the previous chunk's value when h is guided."
        ),
        figures=content.x_t_figures,
        charts=content.x_t_charts,
        title="State x_t",
        icon=":material/timeline:",
        section="Inspection",
        description=(
            "How each action entry moves from noise (t = 0) to the final action (t = 1), one line per horizon "
            "index: guided indices should end on their dotted previous-chunk value; plain (dashed) is free."
        ),
        url_path="x_t",
        chunk_page=True,
    ),
    PageSpec(
        key="v_t",
        figure_note=(
            "The plain sample (no guidance) from the same noise at the chosen horizon index h, one tab per action"
            " dimension: compare its x_t and v_t with the RTC figure on the State x_t page."
        ),
        figures=content.v_t_figures,
        charts=content.v_t_charts,
        title="Velocity v_t",
        icon=":material/speed:",
        section="Inspection",
        description=(
            "The network's velocity at every step, before guidance is added: where RTC (solid) and plain (dashed)"
            " differ, guidance has already moved x_t to a different place."
        ),
        url_path="v_t",
        chunk_page=True,
    ),
    PageSpec(
        key="correction",
        figure_note=(
            "One action entry (batch element, horizon index h, one tab per action dimension) through every step: "
            "x_t, v_t, the prediction x_1_pred, the correction and the applied term."
        ),
        figures=content.correction_figures,
        charts=content.correction_charts,
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
    ),
    PageSpec(
        key="error",
        figure_note="Top: the norm over all horizon indices; bottom: one line per guided horizon index h.",
        figures=content.error_figures,
        charts=content.error_charts,
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
    ),
    PageSpec(
        key="compare",
        figures=content.compare_figures,
        charts=content.compare_charts,
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
    ),
    PageSpec(
        key="diagnostics",
        figures=content.diagnostics_figures,
        charts=content.diagnostics_charts,
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
    ),
    PageSpec(
        key="seeds",
        figures=content.seeds_figures,
        charts=content.seeds_charts,
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
    ),
    PageSpec(
        key="rollout",
        figures=content.rollout_figures,
        charts=content.no_charts,
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
    ),
    PageSpec(
        key="sweep",
        figures=content.sweep_figures,
        charts=content.no_charts,
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
    ),
)
SPECS: dict[str, PageSpec] = {spec.key: spec for spec in REGISTRY}
SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(spec.section for spec in REGISTRY))


def spec(key: str) -> PageSpec:
    """The page ``key`` (KeyError names the known pages)."""
    try:
        return SPECS[key]
    except KeyError:
        raise KeyError(f"unknown page {key!r}; pages: {', '.join(SPECS)}") from None
