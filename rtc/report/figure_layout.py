"""A fast layout engine for the report's figures: one grid of axes, margins sized from the texts.

Matplotlib's constrained layout measures every tick label by building the ticks, which costs as much
as drawing the figure again (about 0.25 s for a 3x3 grid on a 2-core machine). Most figures in
``rtc.report.plots`` and ``rtc.report.plots_analysis`` are single grids of axes with titles, axis labels, a suptitle
and legends right of the axes, so their margins follow from a few text sizes: the tick labels are
formatted (locator and formatter, no tick artists) and measured with the renderer's cached text metrics.

Any figure outside that shape (colorbars, insets, axes added outside the grid, nested or several grids,
twin axes, figure legends or texts, tick labels on the top or right) and any figure whose texts do not
fit its size is handed to matplotlib's constrained layout instead, so no text is ever overlapped or
clipped. Only public matplotlib API is used.
"""

from __future__ import annotations

import dataclasses

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cbook import is_math_text
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.gridspec import GridSpec
from matplotlib.layout_engine import ConstrainedLayoutEngine, LayoutEngine
from matplotlib.text import Text

__all__ = ["PAD_INCHES", "GridLayout", "unhandled_reason"]

PAD_INCHES = 0.06  # space kept around every text block and at the figure's edges
_POINTS = 72.0
_OFFSET_TEXT_PAD = 3.0  # points between an axis and its offset text (matplotlib's Axis.OFFSETTEXTPAD)


@dataclasses.dataclass
class _Extent:
    """Inches an axes needs beyond its own box on each side."""

    left: float = 0.0
    right: float = 0.0
    bottom: float = 0.0
    top: float = 0.0


def _text_size(renderer, text: str, prop: FontProperties) -> tuple[float, float]:
    """Width and height of ``text`` in inches."""
    if not text:
        return 0.0, 0.0
    width = height = 0.0
    for line in text.split("\n"):
        w, h, _ = renderer.get_text_width_height_descent(line, prop, ismath=is_math_text(line))
        width, height = max(width, w), height + h * 1.2
    return width / renderer.dpi, height / renderer.dpi


def _suptitle(fig: Figure) -> Text | None:
    """The figure's suptitle artist (``Figure.suptitle`` adds it to ``fig.texts``), if one is set."""
    wanted = fig.get_suptitle()
    found = [t for t in fig.texts if wanted and t.get_text() == wanted]
    return found[0] if found else None


def unhandled_reason(fig: Figure) -> str | None:
    """Why ``GridLayout`` leaves ``fig`` to constrained layout; ``None`` when it places the figure itself."""
    if fig.subfigs:
        return "subfigures"
    if fig.legends:
        return "a figure legend"
    suptitle = _suptitle(fig)
    if any(t is not suptitle for t in fig.texts) or fig.get_supxlabel() or fig.get_supylabel():
        return "figure texts other than the suptitle"
    axes = fig.get_axes()
    specs = [ax.get_subplotspec() for ax in axes]
    if any(spec is None for spec in specs):
        return "axes outside the grid (a colorbar or added axes)"
    if not axes:
        return None
    grids = {id(spec.get_gridspec()) for spec in specs}
    if len(grids) > 1 or not isinstance(specs[0].get_gridspec(), GridSpec):
        return "several or nested grids"
    if len({(spec.rowspan, spec.colspan) for spec in specs}) < len(specs):
        return "axes sharing a grid cell (twin axes)"
    for ax in axes:
        if ax.child_axes:
            return "inset axes"
        for axis, far in ((ax.xaxis, "labeltop"), (ax.yaxis, "labelright")):
            if axis.get_tick_params().get(far, False):
                return "tick labels on the top or right"
        if ax.xaxis.get_label_position() != "bottom" or ax.yaxis.get_label_position() != "left":
            return "an axis label on the top or right"
    return None


def _tick_labels(axis: Axis) -> tuple[list[str], str]:
    """The tick labels (major and minor) the axis will draw and its offset text, from its locators and
    formatters (no tick artists built)."""
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * abs(high - low)
    labels, offset = [], ""
    for locator, formatter in (
        (axis.get_major_locator(), axis.get_major_formatter()),
        (axis.get_minor_locator(), axis.get_minor_formatter()),
    ):
        locs = [loc for loc in locator() if low - slack <= loc <= high + slack]
        if locs:
            labels += [str(s) for s in formatter.format_ticks(np.asarray(locs))]
            offset = offset or str(formatter.get_offset())
    return labels, offset


def _tick_font(axis: Axis, letter: str) -> FontProperties:
    return FontProperties(size=axis.get_tick_params().get("labelsize", mpl.rcParams[f"{letter}tick.labelsize"]))


def _axis_extent(axis: Axis, renderer, letter: str, side: str) -> float:
    """Inches an axis needs outside its axes (the y axis to the left, the x axis below): tick labels, then its label."""
    extent = 0.0
    if axis.get_tick_params().get(f"label{side}", True):
        prop = _tick_font(axis, letter)
        sizes = [_text_size(renderer, s, prop) for s in _tick_labels(axis)[0]]
        across = [width if letter == "y" else height for width, height in sizes]
        tick = mpl.rcParams[f"{letter}tick.major.size"] + mpl.rcParams[f"{letter}tick.major.pad"]
        extent = tick / _POINTS + max(across, default=0.0)
    if axis.label.get_visible():  # the y label is rotated: its height runs across too
        label_height = _text_size(renderer, axis.label.get_text(), axis.label.get_fontproperties())[1]
        if label_height:
            extent += label_height + mpl.rcParams["axes.labelpad"] / _POINTS
    return extent


def _titles(ax: Axes) -> list[Text]:
    """The axes' non-empty titles (left, center, right)."""
    wanted = {ax.get_title(loc) for loc in ("left", "center", "right")} - {""}
    return [c for c in ax.get_children() if isinstance(c, Text) and c.get_visible() and c.get_text() in wanted]


def _other_texts(ax: Axes, titles: list[Text]) -> list[Text]:
    """The axes' other visible, non-empty texts and annotations."""
    return [
        c
        for c in ax.get_children()
        if isinstance(c, Text) and c.get_visible() and c.get_text() and all(c is not t for t in titles)
    ]


def _offset_height(ax: Axes, renderer) -> float:
    """Inches the y axis's offset text (e.g. ``1e-5``, drawn above the axes at its left) takes, with its pad."""
    if not ax.yaxis.get_tick_params().get("labelleft", True):
        return 0.0
    offset = _tick_labels(ax.yaxis)[1]
    return _text_size(renderer, offset, _tick_font(ax.yaxis, "y"))[1] + _OFFSET_TEXT_PAD / _POINTS if offset else 0.0


def _axes_extent(ax: Axes, renderer) -> _Extent:
    extent = _Extent(
        left=_axis_extent(ax.yaxis, renderer, "y", "left"), bottom=_axis_extent(ax.xaxis, renderer, "x", "bottom")
    )
    titles = _titles(ax)
    extent.top = _offset_height(ax, renderer)
    if titles:  # titles sit above the offset text (see _lift_titles)
        heights = [_text_size(renderer, t.get_text(), t.get_fontproperties())[1] for t in titles]
        extent.top += max(heights) + mpl.rcParams["axes.titlepad"] / _POINTS
    box = ax.get_window_extent(renderer)
    dpi = renderer.dpi
    for text in _other_texts(ax, titles):
        bounds = text.get_window_extent(renderer)
        extent.top = max(extent.top, (bounds.y1 - box.y1) / dpi)
        extent.right = max(extent.right, (bounds.x1 - box.x1) / dpi)
        extent.left = max(extent.left, (box.x0 - bounds.x0) / dpi)
        extent.bottom = max(extent.bottom, (box.y0 - bounds.y0) / dpi)
    legend = ax.get_legend()
    if legend is not None and legend.get_visible():
        bounds = legend.get_window_extent(renderer)
        extent.right = max(extent.right, (bounds.x1 - box.x1) / dpi)
    return extent


def _fit_width(text: Text, available: float, renderer) -> None:
    """Shrink ``text``'s font until it fits ``available`` inches (a safety net: figures write short titles)."""
    width = _text_size(renderer, text.get_text(), text.get_fontproperties())[0]
    if width > available > 0:
        text.set_fontsize(max(text.get_fontproperties().get_size_in_points() * available / width * 0.98, 6.0))


def _fit_centred_title(ax: Axes, fig_width: float, renderer) -> None:
    """Shrink the axes' centred title so it stays on the canvas: it is centred over the axes, which a legend
    beside them (or a narrow panel) can leave far from the figure's middle."""
    centre = (ax.get_position().x0 + ax.get_position().width / 2) * fig_width
    available = 2 * (min(centre, fig_width - centre) - PAD_INCHES)
    for title in _titles(ax):
        if title.get_text() == ax.get_title("center"):
            _fit_width(title, available, renderer)


def _lift_titles(ax: Axes, renderer) -> None:
    """Move the titles above the y axis's offset text, where there is one (their y is in axes fractions)."""
    lift = _offset_height(ax, renderer)
    if lift:
        axes_height = ax.get_position().height * ax.get_figure(root=True).get_size_inches()[1]
        for title in _titles(ax):
            title.set_y(1.0 + lift / max(axes_height, 1e-6))


class GridLayout(LayoutEngine):
    """Places a figure's single grid of subplots so every text fits, without building tick artists.

    Figures it does not fully handle (see ``unhandled_reason``), or whose texts leave no room for the
    axes, are laid out by matplotlib's constrained layout instead.
    """

    _adjust_compatible = True
    _colorbar_gridspec = False  # colorbars take room by position, the way constrained layout places them

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._fallback = ConstrainedLayoutEngine()

    def execute(self, fig: Figure) -> None:
        # Tick locators choose their ticks from the axes' size, so measure again once the axes are placed.
        if unhandled_reason(fig) is None and all(self._place(fig) for _ in range(2)):
            return
        self._fallback.execute(fig)

    def _place(self, fig: Figure) -> bool:
        """Set the subplot parameters so every text fits; ``False`` (nothing changed) when they cannot."""
        axes = fig.get_axes()
        if not axes:
            return True
        grid = axes[0].get_subplotspec().get_gridspec()
        nrows, ncols = grid.get_geometry()
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)  # e.g. unpickled
        renderer = canvas.get_renderer()
        width, height = fig.get_size_inches()
        left, right = np.zeros(ncols), np.zeros(ncols)
        bottom, top = np.zeros(nrows), np.zeros(nrows)
        for ax in axes:
            spec = ax.get_subplotspec()
            extent = _axes_extent(ax, renderer)
            left[spec.colspan.start] = max(left[spec.colspan.start], extent.left)
            right[spec.colspan.stop - 1] = max(right[spec.colspan.stop - 1], extent.right)
            top[spec.rowspan.start] = max(top[spec.rowspan.start], extent.top)
            bottom[spec.rowspan.stop - 1] = max(bottom[spec.rowspan.stop - 1], extent.bottom)
        suptitle = _suptitle(fig)
        if suptitle is not None:
            _fit_width(suptitle, width - 2 * PAD_INCHES, renderer)
        suptitle_h = _text_size(renderer, suptitle.get_text(), suptitle.get_fontproperties())[1] if suptitle else 0.0
        pad = PAD_INCHES
        margin_l, margin_r = left[0] + pad, right[-1] + pad
        margin_b, margin_t = bottom[-1] + pad, top[0] + pad + (suptitle_h + pad if suptitle else 0.0)
        gap_w = max((right[:-1] + left[1:]).max(initial=0.0) + 2 * pad, pad)
        gap_h = max((bottom[:-1] + top[1:]).max(initial=0.0) + 2 * pad, pad)
        axes_w = (width - margin_l - margin_r - gap_w * (ncols - 1)) / ncols
        axes_h = (height - margin_b - margin_t - gap_h * (nrows - 1)) / nrows
        if axes_w <= 0.1 or axes_h <= 0.1:  # the texts do not fit
            return False
        if suptitle is not None:
            suptitle.set_y(1.0 - pad / height)
            suptitle.set_va("top")
        fig.subplots_adjust(
            left=margin_l / width,
            right=1.0 - margin_r / width,
            bottom=margin_b / height,
            top=1.0 - margin_t / height,
            wspace=gap_w / axes_w,
            hspace=gap_h / axes_h,
        )
        for ax in axes:
            _fit_centred_title(ax, width, renderer)
            _lift_titles(ax, renderer)
        return True
