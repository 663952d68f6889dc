"""What every page shares: the selection made in the sidebar, the page frame, figures, charts and downloads."""

from __future__ import annotations

import dataclasses
import time
import traceback
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import streamlit as st

from pages import _data
from rtc.app import jobs
from rtc.app import state as app_state
from rtc.app.state import Limits, Target, View
from rtc.errors import RTCError
from rtc.experiments import pipeline
from rtc.io import traces
from rtc.io.checkpoints import RunInfo
from rtc.report import bundle, pages_registry, render

CONTEXT_KEY = "rtc_context"
CHUNK_KEY = "rtc_open_chunk"  # a rollout chunk shown instead of the sidebar's inspection (see open_chunk)
CHUNK_PAGES: tuple[str, ...] = tuple(s.key for s in pages_registry.REGISTRY if s.chunk_page)
JOBS_KEY = "rtc_jobs"  # {slot: rtc.app.jobs.Job} this session holds in the server's queue


@dataclasses.dataclass(frozen=True)
class Context:
    """The sidebar's selection, resolved to files, for the pages to draw."""

    target: Target
    view: View
    run: RunInfo
    checkpoint: Path
    level_path: Path | None
    level_note: str
    limits: Limits
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def settings(self) -> pipeline.RTCSettings:
        return self.view.rtc

    def meta(self, page: str) -> dict:
        """What a bundle's manifest says about this selection."""
        return {
            "title": f"RTC report — {self.target.run}, epoch {self.target.epoch}, {self.target.level}",
            "page": page,
            "run": self.target.run,
            "epoch": self.target.epoch,
            "level": self.target.level,
            "level_file": self.level_note,
            "checkpoint": self.checkpoint.relative_to(self.run.path).as_posix(),
            "view": {
                "batch_index": self.view.look.batch_index,
                "horizon_index": self.view.look.horizon_index,
                "action_dims": list(self.view.look.action_dim_indices),
            },
            "selection": app_state.describe(self.target, self.view),
            "link_query": "?" + urllib.parse.urlencode(app_state.to_query(self.target, self.view), safe="/,"),
        }


@dataclasses.dataclass(frozen=True)
class TraceContext:
    """The sidebar's selection when the source is a recorded trace (``rtc.io.traces``) instead of a run."""

    trace: traces.Trace
    trace_id: str | None  # the id under a trace root, None for an upload (no link can name it)
    name: str
    view: View
    limits: Limits
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def stem(self) -> str:
        raw = Path(self.name).stem
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)

    def describe(self) -> str:
        steps, batch, horizon, action_dim = self.trace.shape
        kind = "RTC call" if self.trace.is_rtc else "first chunk, no RTC"
        return (
            f"trace {self.name} · from {self.trace.source} · {kind} · {steps} flow steps, batch {batch}, "
            f"H = {horizon}, {action_dim} action dims"
        )

    def meta(self, page: str) -> dict:
        """What a bundle's manifest says about this selection."""
        meta = {
            "title": f"RTC report — trace {self.name}",
            "page": page,
            "trace": self.trace_id or f"upload: {self.name}",
            "trace_source": self.trace.source,
            "jacobian_free": self.trace.jacobian_free,
            "trace_meta": self.trace.meta,
            "view": {
                "batch_index": self.view.look.batch_index,
                "horizon_index": self.view.look.horizon_index,
                "action_dims": list(self.view.look.action_dim_indices),
            },
            "selection": self.describe(),
        }
        if self.trace_id is not None:
            query = app_state.trace_query(self.trace_id, self.view)
            meta["link_query"] = "?" + urllib.parse.urlencode(query, safe="/,")
        return meta


def set_context(context: Context | TraceContext | None) -> None:
    st.session_state[CONTEXT_KEY] = context


SCREEN_DPI = 110


def get_context() -> Context | TraceContext | None:
    return st.session_state.get(CONTEXT_KEY)


def user_error(err: Exception) -> None:
    """Show a failure the user caused (an ``RTCError`` or an unreadable file) as one clear line."""
    if isinstance(err, OSError):
        st.error(f"Cannot read {err.filename or 'a file'}: {err.strerror or err}. Check the file and its permissions.")
    else:
        st.error(str(err))


def unexpected(err: Exception) -> None:
    """Show an unexpected exception as a short error (the traceback goes to the server log only)."""
    traceback.print_exception(err)
    st.error(
        f"Something went wrong while drawing this page ({type(err).__name__}: {err}). "
        "Try other settings; if it persists, the server log has the details."
    )


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
    """``SUMMARY_METRICS[key]`` for each of ``keys``, side by side (an estimate with its interval and n)."""
    for slot, key in zip(st.columns(len(keys)), keys, strict=True):
        metric = SUMMARY_METRICS[key]
        beside = {}
        if f"{key}_n" in summary:
            beside = {"delta": interval_text(summary, key), "delta_color": "off", "delta_arrow": "off"}
        elif metric.beside is not None and metric.beside[1] in summary:
            label, other = metric.beside
            beside = {"delta": f"{label}: {number(summary[other])}", "delta_color": "off", "delta_arrow": "off"}
        slot.metric(metric.label, number(summary.get(key)), help=metric.help, **beside)


def cache_args(context: Context) -> tuple[str, float, str, pipeline.RTCSettings]:
    """The arguments that key ``_data.inspection`` (and the analysis caches built on it)."""
    return str(context.checkpoint), _data.mtime(context.checkpoint), str(context.level_path), context.settings


def run_button(label: str, key: str) -> bool:
    """A button that reports its press once, even across the rerun ``page`` may make first.

    The press is kept in session state by a callback (a plain button's value would be lost on that rerun).
    """
    flag = f"{key}_pressed"
    st.button(
        label,
        type="primary",
        icon=":material/play_arrow:",
        key=key,
        on_click=st.session_state.update,
        kwargs={flag: True},
    )
    return bool(st.session_state.pop(flag, False))


COMPILING_NOTE = "Compiling the rollout program (about 30 s the first time)…"


def job_key(slot: str, context: Context, settings: Any) -> tuple:
    """What identifies a heavy job: its kind, the checkpoint (and its modification time), the level, settings."""
    return (slot, str(context.checkpoint), _data.mtime(context.checkpoint), str(context.level_path), settings)


def run_job(
    context: Context,
    slot: str,
    settings: Any,
    button: str,
    work: Callable[[Any, Any, Any], Callable[[jobs.JobContext], Any]],
    label: str,
) -> Any:
    """A Run button for a heavy job on the context's policy and level (``work(policy, level, settings)``), then
    the job's status until it ends (``follow_job``); returns its result once. A changed setting cancels it."""
    key = job_key(slot, context, settings)
    if run_button(button, f"{slot}_run"):
        policy = _data.policy(str(context.checkpoint), _data.mtime(context.checkpoint))
        level = _data.level(str(context.level_path))
        submit_job(slot, key, work(policy, level, settings), label)
    return follow_job(slot, key, COMPILING_NOTE)


def submit_job(slot: str, key: Any, work: Callable[[jobs.JobContext], Any], label: str) -> jobs.Job:
    """Ask the server's queue for ``key`` (joining an identical queued, running or finished job); a job this
    session held in ``slot`` for another key is released (cancelled when nobody else wants it)."""
    held = st.session_state.setdefault(JOBS_KEY, {})
    previous = held.get(slot)
    if previous is not None and previous.key != key:
        previous.cancel()
    if previous is None or previous.key != key or previous.state in (jobs.FAILED, jobs.CANCELLED):
        held[slot] = _data.job_queue().submit(key, work, label)
    return held[slot]


def follow_job(slot: str, key: Any, starting: str = "Starting…") -> Any:
    """Show this session's job in ``slot`` for ``key`` until it ends: its place in the queue while it waits,
    its progress while it runs, and a Cancel button. Returns its result once (``None`` when there is no such
    job or it was cancelled); a failure is raised here, in the page that asked."""
    held = st.session_state.setdefault(JOBS_KEY, {})
    job = held.get(slot)
    if job is None:
        return None
    if job.key != key:  # a setting changed: this session no longer wants the old job
        job.cancel()
        held.pop(slot, None)
        return None
    if not job.done:
        if st.button("Cancel", key=f"{slot}_cancel", icon=":material/cancel:"):
            job.cancel()
            held.pop(slot, None)
            st.info("Cancelled. Press the button again to restart.")
            return None
        status, bar = st.empty(), st.empty()
        while not job.wait(0.25):
            position = job.position
            if position is not None:
                counts = job.queue.counts()
                status.info(
                    f"Waiting for a free slot: number {position} in the queue ({counts['running']} of "
                    f"{counts['max_jobs']} jobs running on this server; RTC_MAX_JOBS sets the limit)."
                )
            else:
                status.empty()
                bar.progress(job.fraction, text=job.text or starting)
            time.sleep(0.05)
        status.empty()
        bar.empty()
    held.pop(slot, None)
    if job.state == jobs.FAILED:
        raise job.error
    if job.state == jobs.CANCELLED:
        st.info("Cancelled. Press the button again to restart.")
        return None
    return job.result


def compute(context: Context) -> pipeline.Inspection:
    """The cached inspection of ``context``, saying what happens when it is slow (first compile, level load)."""
    if context.level_path is None:
        raise app_state.SelectionError(context.level_note)
    settings = context.settings
    shape = (context.checkpoint.as_posix(), settings.num_flow_steps, settings.batch_size)
    args = cache_args(context)
    compiled = _data.compiled_shapes()
    if shape in compiled:
        with st.spinner("Sampling…"):
            return _data.inspection(*args)
    placeholder = st.empty()
    with placeholder.status(
        f"Compiling the sampler for {settings.num_flow_steps} flow steps, batch {settings.batch_size} "
        "(first time only; later changes of schedule, delay, horizon, weight or seed reuse it)…",
        expanded=True,
    ) as status:
        if _data.prepare_level(str(context.level_path)):
            status.write(f"Reading level {context.level_note} with the Kinetix simulator (in the background)…")
        status.write("Compiling the sampler…")
        _data.compiled_sampler(*args[:2], settings.num_flow_steps, settings.batch_size)
        status.write(f"Loading level {context.level_note}…")
        _data.wait_for_level(str(context.level_path), "obs")
        _data.level(str(context.level_path))
        status.write("Sampling the first chunk, executing it, then RTC and plain sampling with tracking…")
        result = _data.inspection(*args)
    compiled.add(shape)
    placeholder.empty()
    return result


def downloads(
    page: str, context: Context, result: pipeline.Inspection, extras: Mapping[str, Any] | None = None
) -> None:
    """Two lazy download buttons: this page's figures, and the whole report.

    ``extras`` holds an analysis page's results by page key (see ``bundle.page_figures``) and, under
    ``"animations"``, GIFs by name that go into both bundles.
    """
    animations = dict((extras or {}).get("animations") or {})
    data = bundle.extra_data(extras)
    if page in bundle.ANALYSIS_PAGES and bundle.ANALYSIS_PAGES[page] and (extras or {}).get(page) is None:
        extras = None  # nothing computed yet: the page's bundle holds the inspection only
    if isinstance(context, TraceContext):
        view, stem, level_path = context.view, f"trace_{context.stem}", None
    else:
        view, stem, level_path = context.view, app_state.file_stem(context.target, context.view), context.level_path
    look = (view.look.batch_index, view.look.horizon_index, view.look.action_dim_indices)

    def pictures() -> dict[str, bytes]:  # rendered on click only (the first render of a level is slow)
        if level_path is None:
            return {}
        return {f"level_{level_path.stem}": _data.level_picture_png(str(level_path))}

    def content(figures, charts, meta, sections) -> bundle.BundleContent:
        return bundle.BundleContent(figures, charts, meta, sections, pictures(), animations, data)

    def page_zip() -> bytes:
        if page in bundle.ANALYSIS_PAGES and bundle.ANALYSIS_PAGES[page] and extras is None:
            figures, charts = {}, {}
        else:
            figures = bundle.page_figure_makers(page, result, *look, extras)
            charts = bundle.page_charts(page, result, *look, extras)
        sections = {page: [*charts, *figures, *animations]}
        return _build_bundle(result, content(figures, charts, context.meta(page), sections))

    def report_zip() -> bytes:
        figures, charts, sections = bundle.report_content(result, *look, extras=extras)
        if animations:
            sections.setdefault(page, []).extend(animations)
        return _build_bundle(result, content(figures, charts, context.meta("report"), sections))

    buttons = (
        ("Download this page's figures (zip: PNG, SVG, PDF, data, report.html)", page_zip, "page", page, "download"),
        ("Download the whole report (all pages, zip)", report_zip, "report", "report", "folder_zip"),
    )
    for column, (label, make_zip, kind, name, icon) in zip(st.columns(2), buttons, strict=True):
        column.download_button(
            label,
            data=make_zip,
            file_name=f"rtc_{name}_{stem}.zip",
            mime="application/zip",
            on_click="ignore",
            key=f"download_{kind}_{page}",
            icon=f":material/{icon}:",
        )


def _build_bundle(result: bundle.Record, content: bundle.BundleContent) -> bytes:
    """``bundle.build_bundle`` with the figures rendered in the process's render workers (inline if one died).

    The pool replaces a dead worker itself, so it stays in use for the next download.
    """
    try:
        return bundle.build_bundle(result, content, executor=_data.render_pool())
    except render.WorkerLost:
        return bundle.build_bundle(result, content)


def figure(fig) -> None:
    """A matplotlib figure from ``rtc.report.plots``, rendered once as PNG (``st.pyplot`` would draw it twice at
    200 dpi)."""
    st.image(render.render_figure(fig, ("png",), dpi=SCREEN_DPI)["png"])


def chart(chart_obj, key: str) -> None:
    """An Altair chart (hover, zoom, legend toggles)."""
    st.altair_chart(chart_obj, key=key)


ENTRY_KEY = "rtc_through_entrypoint"  # set by streamlit_app.py on every run, popped by ``page``
REROUTED_KEY = "rtc_rerouted"


def mark_entrypoint_run() -> None:
    """Called by ``streamlit_app.py`` before it runs the page: this run went through the entrypoint."""
    st.session_state[ENTRY_KEY] = True


def _through_entrypoint() -> None:
    """Rerun through ``streamlit_app.py`` when Streamlit ran a page file alone.

    A fresh server whose first requests are page URLs (a shared link) runs those files directly, as
    in Streamlit's older ``pages/`` mode, until some run has called ``st.navigation``; the sidebar
    would then be missing. Each run checks its own mark (the server-wide mode flag may already have
    been switched off by another session's first run), switches that mode off and reruns.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if st.session_state.pop(ENTRY_KEY, False):
        st.session_state.pop(REROUTED_KEY, None)
        return
    if st.session_state.get(REROUTED_KEY):  # rerouted once already: do not loop
        return
    st.session_state[REROUTED_KEY] = True
    PagesManager.uses_pages_directory = False
    st.rerun()


def open_chunk(context: Context, inspection: pipeline.Inspection, description: str) -> None:
    """Show ``inspection`` (a rollout chunk) on the x_t, v_t, correction and error pages until the sidebar changes."""
    st.session_state[CHUNK_KEY] = {
        "inspection": inspection,
        "description": description,
        "selection": (context.target, context.view),
    }


def close_chunk() -> None:
    st.session_state.pop(CHUNK_KEY, None)


def opened_chunk(context: Context) -> dict[str, Any] | None:
    """The rollout chunk opened for the step-by-step pages, dropped once the sidebar's selection changed."""
    entry = st.session_state.get(CHUNK_KEY)
    if entry is not None and entry["selection"] != (context.target, context.view):
        close_chunk()
        return None
    return entry


def _chunk_banner(entry: Mapping[str, Any]) -> None:
    st.info(f"Showing {entry['description']}, not the sidebar's inspection.", icon=":material/movie:")
    st.button(
        "Back to the sidebar's inspection",
        key="close_chunk",
        icon=":material/undo:",
        on_click=close_chunk,
    )


def page(page_key: str, body: Callable[[Context, pipeline.Inspection], Mapping[str, Any] | None]) -> None:
    """Draw one page: title, one line on how to read it, then ``body`` (errors shown, never a traceback).

    ``body`` may return its results by page key (see ``downloads``); the download buttons, drawn above
    the body, then bundle them.
    """
    _through_entrypoint()
    title, what = bundle.PAGES[page_key]
    st.title(title)
    st.markdown(what)
    context = get_context()
    if context is None:
        st.info("Choose a run or a trace in the sidebar to start.")
        return
    if isinstance(context, TraceContext):
        _trace_page(page_key, body, context)
        return
    st.caption(app_state.describe(context.target, context.view))
    if context.error:
        st.error(f"Refused setting: {context.error}. Change it in the sidebar to draw this page.")
        return
    chunk = opened_chunk(context) if page_key in CHUNK_PAGES else None
    try:
        if chunk is None:
            result = compute(context)
        else:
            _chunk_banner(chunk)
            result = chunk["inspection"]
            # The chunk is a batch of one: draw its only element.
            context = dataclasses.replace(context, view=context.view.replace(batch_index=0))
        slot = st.container()
        extras = body(context, result)
        with slot:
            downloads(page_key, context, result, extras)
    except (RTCError, OSError) as err:  # a file, setting or index the user chose: say which and what is accepted
        user_error(err)
    except Exception as err:
        unexpected(err)


# Why an analysis page cannot work on a recorded trace.
POLICY_PAGES: dict[str, str] = {s.key: s.needs_policy for s in pages_registry.REGISTRY if s.needs_policy}


def _trace_page(page_key: str, body: Callable[[Any, Any], Mapping[str, Any] | None], context: TraceContext) -> None:
    """A page drawn on a recorded trace: its notices, then the page (or why the page cannot be drawn)."""
    trace = context.trace
    st.caption(context.describe())
    for note in trace.notes:
        st.warning(note, icon=":material/info:")
    if context.error:
        st.error(f"Refused: {context.error}. Change it in the sidebar to draw this page.")
        return
    if page_key in POLICY_PAGES:
        st.info(
            f"This page needs a policy: it {POLICY_PAGES[page_key]}. A recorded trace holds one sampling call's "
            "arrays only; its Overview, State x_t, Velocity v_t, RTC correction and Error pages show it. "
            "Choose Runs as the source to use this page on a policy.",
            icon=":material/block:",
        )
        return
    if page_key not in bundle.available_pages(trace):
        st.info(
            f"This page shows guidance, and this trace has none: {traces.FIRST_CHUNK_NOTE}",
            icon=":material/block:",
        )
        return
    try:
        slot = st.container()
        extras = body(context, trace)
        with slot:
            downloads(page_key, context, trace, extras)
    except (RTCError, OSError) as err:
        user_error(err)
    except Exception as err:
        unexpected(err)


def show_page_content(
    page_key: str,
    context: Context | TraceContext,
    result: pipeline.Inspection,
    extras: Mapping[str, Any] | None = None,
    *,
    figure_note: str | None = None,
) -> None:
    """The page's interactive charts, then its matplotlib figures, from the page table (``rtc.report.bundle``).

    ``extras`` holds an analysis page's results (see ``bundle.page_figures``). An inspection page's figures (one
    per action dimension) go in tabs; an analysis page's follow one another. ``figure_note`` (default: the
    page's, from ``rtc.report.pages_registry``) is the caption above the figures.
    """
    spec = pages_registry.SPECS[page_key]
    if figure_note is None:
        figure_note = spec.figure_note
    view = context.view
    look = (view.look.batch_index, view.look.horizon_index, view.look.action_dim_indices)
    for name, chart_obj in bundle.page_charts(page_key, result, *look, extras).items():
        chart(chart_obj, key=f"chart_{page_key}_{name}")
    makers = bundle.page_figure_makers(page_key, result, *look, extras)
    if not makers:
        return
    st.subheader(
        "Figure" if len(makers) == 1 else "Figures",
        help="The matplotlib figures from rtc.report, as in the page's bundle (and the command line).",
    )
    if figure_note:
        st.caption(figure_note)
    if len(makers) == 1 or spec.section != "Inspection":
        for make in makers.values():
            figure(make())
        return
    # Only the open tab's figure is built and drawn (switching tabs reruns): several cost no more than one.
    tabs = st.tabs(
        [f"action dim {a}" for a in view.look.action_dim_indices], key=f"figure_tabs_{page_key}", on_change="rerun"
    )
    for tab, make in zip(tabs, makers.values(), strict=True):
        if tab.open is not False:
            with tab:
                figure(make())
