"""Rendering matplotlib figures to PNG, SVG and PDF bytes, here or in worker processes.

Only matplotlib is imported here, so render workers start fast and hold no JAX state; the SVG and PDF
backends (the PDF one brings fontTools) are imported on first use, so PNG-only callers never load them.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rtc.errors import RTCError

FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
PNG_DPI = 120
_PROJECT_DIR = str(Path(__file__).resolve().parents[2])  # so workers import this same ``rtc``

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
            with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "rtc"}):  # fixed SVG ids
                if fmt == "png":
                    fig.set_dpi(dpi)
                    FigureCanvasAgg(fig).print_png(buffer, metadata=_metadata(fmt))
                    fig.set_dpi(figure_dpi)
                elif fmt == "svg":
                    from matplotlib.backends.backend_svg import FigureCanvasSVG

                    FigureCanvasSVG(fig).print_svg(buffer, metadata=_metadata(fmt))
                else:
                    from matplotlib.backends.backend_pdf import FigureCanvasPdf

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

    def wait() -> dict[str, dict[str, bytes]]:
        if getattr(executor, "caller_renders", False):
            executor.run_queued_here()  # this thread takes its share of the jobs
        return {name: future.result() for name, future in futures.items()}

    return wait


class WorkerLost(RuntimeError):
    """A render worker died while it held a job (that job fails; the pool starts a fresh worker)."""


class RenderPool(Executor):
    """Render worker processes behind the ``Executor`` interface; a worker that dies is replaced.

    Each worker is ``python -m rtc.report.render_worker [module ...]`` (it imports the ``preload`` modules at
    once) started with ``subprocess`` and fed pickled jobs over
    its pipes, one job at a time, by a thread here. Not ``multiprocessing``: its spawn and forkserver
    start methods rebuild the parent's ``__main__`` in every worker (CPython 3.11
    ``multiprocessing.spawn.get_preparation_data`` records ``__main__.__file__`` and ``prepare`` runs it
    again with ``runpy.run_path`` as ``__mp_main__`` before any ``initializer``), which under Streamlit
    re-executes the app script; and ``ProcessPoolExecutor`` turns into ``BrokenProcessPool`` for good
    when one worker dies. Here a worker's main module is always ``rtc.report.render_worker``; if it dies, the
    job it held fails with ``WorkerLost`` and the next job gets a fresh worker. Workers exit when their
    stdin closes (``shutdown``, or this process ending), so none outlives its parent.
    """

    def __init__(
        self, workers: int, preload: Sequence[str] = ("rtc.report.render",), *, caller_renders: bool = False
    ) -> None:
        self._preload = tuple(preload)
        self.caller_renders = caller_renders
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._processes: list[subprocess.Popen | None] = [self._start() for _ in range(workers)]
        self._threads = [
            threading.Thread(target=self._serve, args=(slot,), name=f"render-worker-{slot}", daemon=True)
            for slot in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def pids(self) -> list[int]:
        """Process ids of the current workers (a replaced worker shows its successor's id)."""
        with self._lock:
            return [process.pid for process in self._processes if process is not None]

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a render pool after shutdown")
            future: Future = Future()
            self._jobs.put((future, fn, args, kwargs))
        return future

    def run_queued_here(self) -> None:
        """Run queued jobs in the calling thread until the queue is empty, so the caller works instead of waiting."""
        while True:
            try:
                item = self._jobs.get_nowait()
            except queue.Empty:
                return
            if item is None:  # shutting down: leave the marker for the worker threads
                self._jobs.put(None)
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args, **kwargs))
            except Exception as error:
                future.set_exception(error)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if cancel_futures:
            while True:
                try:
                    item = self._jobs.get_nowait()
                except queue.Empty:
                    break
                item[0].cancel()
        for _ in self._threads:
            self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [_PROJECT_DIR, os.environ.get("PYTHONPATH")])))
        return subprocess.Popen(
            [sys.executable, "-m", "rtc.report.render_worker", *self._preload],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )

    def _serve(self, slot: int) -> None:
        try:
            while (item := self._jobs.get()) is not None:
                future, fn, args, kwargs = item
                if not future.set_running_or_notify_cancel():
                    continue
                try:
                    job = pickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
                except Exception as error:
                    future.set_exception(error)
                    continue
                process = self._processes[slot]
                if process is None or process.poll() is not None:
                    process = self._replace(slot)
                try:
                    process.stdin.write(job)
                    process.stdin.flush()
                    ok, value = pickle.load(process.stdout)
                except (OSError, EOFError, pickle.UnpicklingError):
                    self._stop(process)
                    self._replace(slot)
                    lost = f"render worker {process.pid} died (exit code {process.returncode})"
                    future.set_exception(WorkerLost(lost))
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        finally:
            with self._lock:
                process, self._processes[slot] = self._processes[slot], None
            if process is not None:
                self._stop(process)

    def _replace(self, slot: int) -> subprocess.Popen:
        process = self._start()
        with self._lock:
            self._processes[slot] = process
        return process

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        """Close the worker's stdin (it exits) and reap it; kill it if it does not exit."""
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def render_pool(
    workers: int | None = None, preload: Sequence[str] = ("rtc.report.render",), *, caller_renders: bool = False
) -> RenderPool:
    """Worker processes for ``render_figures``, all started now (see ``RenderPool``); a context manager.

    Each worker imports the ``preload`` modules (``rtc.report.*``) as it starts, before its first job, so
    matplotlib is loaded while this process does other work. With ``caller_renders`` the thread waiting in
    ``render_figures`` renders queued figures too (a process with nothing else to do; one worker fewer to start).
    """
    return RenderPool(workers or min(4, os.cpu_count() or 1), preload, caller_renders=caller_renders)


def _metadata(fmt: str) -> dict[str, Any] | None:
    # No creation dates in SVG/PDF, so identical figures give identical bytes.
    if fmt == "svg":
        return {"Date": None}
    if fmt == "pdf":
        return {"CreationDate": None}
    return None
