"""A fast layout engine for the report's figures: one grid of axes, margins sized from the texts.

Matplotlib's constrained layout measures every tick label by building the ticks, which costs as much
as drawing the figure again (about 0.25 s for a 3x3 grid on a 2-core machine). The figures in
``rtc.plots`` are single grids of axes with titles, axis labels, a suptitle and legends right of the
axes, so their margins follow from a few text sizes: the tick labels are formatted (locator and
formatter, no tick artists) and measured with the renderer's cached text metrics.
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
from matplotlib.layout_engine import LayoutEngine

PAD_INCHES = 0.06  # space kept around every text block and at the figure's edges
_POINTS = 72.0


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


def _tick_labels(axis: Axis) -> list[str]:
    """The major tick labels the axis will draw, from its locator and formatter (no tick artists built)."""
    low, high = sorted(axis.get_view_interval())
    slack = 1e-9 * abs(high - low)
    locs = [loc for loc in axis.get_major_locator()() if low - slack <= loc <= high + slack]
    return [str(s) for s in axis.get_major_formatter().format_ticks(np.asarray(locs))] if locs else []


def _label_size(axis: Axis, renderer) -> tuple[float, float]:
    if not axis.label.get_visible():
        return 0.0, 0.0
    return _text_size(renderer, axis.label.get_text(), axis.label.get_fontproperties())


def _axis_extent(axis: Axis, renderer, letter: str, side: str) -> float:
    """Inches an axis needs outside its axes (the y axis to the left, the x axis below): tick labels, then its label."""
    extent = 0.0
    if axis.get_tick_params().get(f"label{side}", True):
        prop = FontProperties(size=mpl.rcParams[f"{letter}tick.labelsize"])
        sizes = [_text_size(renderer, s, prop) for s in _tick_labels(axis)]
        across = [width if letter == "y" else height for width, height in sizes]
        tick = mpl.rcParams[f"{letter}tick.major.size"] + mpl.rcParams[f"{letter}tick.major.pad"]
        extent = tick / _POINTS + max(across, default=0.0)
    _, label_height = _label_size(axis, renderer)  # the y label is rotated: its height runs across too
    if label_height:
        extent += label_height + mpl.rcParams["axes.labelpad"] / _POINTS
    return extent


def _axes_extent(ax: Axes, renderer) -> _Extent:
    extent = _Extent(
        left=_axis_extent(ax.yaxis, renderer, "y", "left"), bottom=_axis_extent(ax.xaxis, renderer, "x", "bottom")
    )
    titles = [t for t in (ax.title, ax._left_title, ax._right_title) if t.get_text() and t.get_visible()]
    if titles:
        extent.top = max(_text_size(renderer, t.get_text(), t.get_fontproperties())[1] for t in titles)
        extent.top += mpl.rcParams["axes.titlepad"] / _POINTS
    legend = ax.get_legend()
    if legend is not None and legend.get_visible():
        box = legend.get_window_extent(renderer)
        outside = box.x1 - ax.get_window_extent(renderer).x1
        extent.right = max(outside / renderer.dpi, 0.0)
    return extent


class GridLayout(LayoutEngine):
    """Places a figure's single grid of subplots so every text fits, without building tick artists."""

    _adjust_compatible = True
    _colorbar_gridspec = True

    def execute(self, fig: Figure) -> None:
        # Tick locators choose their ticks from the axes' size, so measure again once the axes are placed.
        for _ in range(2):
            self._place(fig)

    def _place(self, fig: Figure) -> None:
        axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
        if not axes:
            return
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
        suptitle = fig._suptitle.get_text() if fig._suptitle is not None else ""
        suptitle_h = _text_size(renderer, suptitle, fig._suptitle.get_fontproperties())[1] if suptitle else 0.0
        pad = PAD_INCHES
        margin_l, margin_r = left[0] + pad, right[-1] + pad
        margin_b, margin_t = bottom[-1] + pad, top[0] + pad + (suptitle_h + pad if suptitle else 0.0)
        gap_w = max((right[:-1] + left[1:]).max(initial=0.0) + 2 * pad, pad)
        gap_h = max((bottom[:-1] + top[1:]).max(initial=0.0) + 2 * pad, pad)
        axes_w = (width - margin_l - margin_r - gap_w * (ncols - 1)) / ncols
        axes_h = (height - margin_b - margin_t - gap_h * (nrows - 1)) / nrows
        if axes_w <= 0.1 or axes_h <= 0.1:  # the texts do not fit: leave matplotlib's defaults
            return
        if suptitle:
            fig._suptitle.set_y(1.0 - pad / height)
            fig._suptitle.set_va("top")
        fig.subplots_adjust(
            left=margin_l / width,
            right=1.0 - margin_r / width,
            bottom=margin_b / height,
            top=1.0 - margin_t / height,
            wspace=gap_w / axes_w,
            hspace=gap_h / axes_h,
        )
