"""Rendering matplotlib figures to PNG, SVG and PDF bytes, here or in worker processes.

Only matplotlib is imported here, so render workers start fast and hold no JAX state.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_pdf import FigureCanvasPdf
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from rtc.errors import RTCError

FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
PNG_DPI = 120

# A figure, or a picklable function that builds one (so a worker can build it too).
FigureSource = Figure | Callable[[], Figure]


def render_figure(fig: Figure, formats: Sequence[str] = FORMATS, dpi: int = PNG_DPI) -> dict[str, bytes]:
    """``fig`` as bytes per format, drawing it once per format.

    The layout is solved once, then every format is printed by its backend directly (``savefig``
    would run an extra layout pass per format). SVG text stays text (editable, smaller); viewers
    draw it in their own sans-serif font.
    """
    unknown = [fmt for fmt in formats if fmt not in FORMATS]
    if unknown:
        raise RTCError(f"figure format {unknown[0]!r} is not supported; accepted: {', '.join(FORMATS)}")
    engine, figure_dpi = fig.get_layout_engine(), fig.dpi
    if engine is not None:
        engine.execute(fig)  # places the axes (no drawing)
    fig.set_layout_engine("none")  # positions are fixed now
    out: dict[str, bytes] = {}
    try:
        for fmt in formats:
            buffer = io.BytesIO()
            with matplotlib.rc_context({"svg.fonttype": "none"}):
                if fmt == "png":
                    fig.set_dpi(dpi)
                    FigureCanvasAgg(fig).print_png(buffer, metadata=_metadata(fmt))
                    fig.set_dpi(figure_dpi)
                elif fmt == "svg":
                    FigureCanvasSVG(fig).print_svg(buffer, metadata=_metadata(fmt))
                else:
                    FigureCanvasPdf(fig).print_pdf(buffer, metadata=_metadata(fmt))
            out[fmt] = buffer.getvalue()
        return out
    finally:
        fig.set_dpi(figure_dpi)
        fig.set_layout_engine(engine)
        FigureCanvasAgg(fig)


def build_and_render(source: FigureSource, formats: Sequence[str] = FORMATS, dpi: int = PNG_DPI) -> dict[str, bytes]:
    """``render_figure`` of ``source``, building it first when it is a function."""
    return render_figure(source if isinstance(source, Figure) else source(), formats, dpi)


def render_figures(
    figures: Mapping[str, FigureSource],
    formats: Sequence[str] = FORMATS,
    dpi: int = PNG_DPI,
    executor: Executor | None = None,
) -> Callable[[], dict[str, dict[str, bytes]]]:
    """Start rendering every figure; the returned function waits for and returns the bytes by name and format.

    Without ``executor`` the work happens when the function is called; with one (see ``render_pool``)
    it starts at once in the workers (sources travel pickled, so pass makers rather than figures).
    """
    if executor is None:
        return lambda: {name: build_and_render(source, formats, dpi) for name, source in figures.items()}
    futures = {name: executor.submit(build_and_render, source, formats, dpi) for name, source in figures.items()}
    return lambda: {name: future.result() for name, future in futures.items()}


def render_pool(workers: int | None = None) -> ProcessPoolExecutor:
    """Worker processes for ``render_figures``, all started now (spawned: they import matplotlib and rtc.plots).

    A spawned process re-imports the parent's ``__main__``; under Streamlit that is the app script, so
    it is hidden while the workers start (the pool never starts others: a dead worker breaks the pool).
    """
    workers = workers or min(4, os.cpu_count() or 1)
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    main = sys.modules.get("__main__")
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        for _ in range(workers):  # each submit to a busy pool starts one more worker
            pool.submit(int)
    finally:
        sys.modules["__main__"] = main
    return pool


def _metadata(fmt: str) -> dict[str, Any] | None:
    # No creation dates in SVG/PDF, so identical figures give identical bytes.
    if fmt == "svg":
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return None
