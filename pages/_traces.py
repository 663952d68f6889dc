"""The "Traces" source of the sidebar: recorded trace files under ``RTC_TRACES_ROOTS`` or an upload, and the
overview of a trace. Kept apart from the run sidebar in ``streamlit_app.py``; ``choose_source`` picks between them.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import _data, _display, _selection, _widgets
from rtc.app import state as app_state
from rtc.app.state import Limits, View
from rtc.experiments.fields import Bounds
from rtc.experiments.settings import SECTIONS, LookSettings
from rtc.io import roots, traces
from rtc.numerics import metrics

SOURCES = ("Runs", "Traces")
SOURCE_KEY = "w_source"
TRACE_KEY = "w_trace"
UPLOAD_KEY = "w_trace_upload"
WIDGET_PREFIX = "wt"  # the trace view's widgets' session-state keys (apart from the run sidebar's): wt_batch_index, ...


def choose_source() -> str:
    """Runs (policies sampled here) or Traces (recorded files); a link with ``trace=`` opens on Traces."""
    state = st.session_state
    if SOURCE_KEY not in state:
        state[SOURCE_KEY] = "Traces" if "trace" in _selection.query() else "Runs"
    return st.radio(
        "Source",
        SOURCES,
        key=SOURCE_KEY,
        horizontal=True,
        help="Runs: sample a checkpoint here. Traces: open recorded RTC traces (format 1, or LeRobot's debug "
        f"tracker) from {roots.TRACES_ROOTS_ENV} or an upload.",
    )


def _pick_trace(notices: list[str]) -> tuple[traces.Trace, str | None, str] | None:
    """The trace to show: an upload if one is given, else a file under the trace roots (from the link first)."""
    state = st.session_state
    upload = st.file_uploader(
        "Upload a trace (.npz)",
        type=["npz"],
        key=UPLOAD_KEY,
        help=f"Read without pickle, up to {app_state.MAX_UPLOAD_BYTES // 2**20} MiB. An upload is not in the link; "
        f"put files under {roots.TRACES_ROOTS_ENV} to share them.",
    )
    if upload is not None:
        app_state.check_upload(upload.name, upload.size)
        with st.spinner(f"Reading {upload.name}…"):
            return _data.uploaded_trace(upload.getvalue(), upload.name), None, upload.name
    dirs = roots.trace_roots()
    found = _data.traces_under(tuple(str(r) for r in dirs))
    if not found:
        st.info(_selection.nothing_found("trace files (*.npz)", dirs, roots.TRACES_ROOTS_ENV, "them, or upload one."))
        return None
    if TRACE_KEY not in state:
        trace_id, link_notices = app_state.parse_trace_id(_selection.query(), found, dirs)
        notices += link_notices
        state[TRACE_KEY] = trace_id
    if state[TRACE_KEY] not in found:
        notices.append(f"trace {state[TRACE_KEY]} is gone; showing another")
        state[TRACE_KEY] = next(iter(found))
    trace_id = st.selectbox("Trace", list(found), key=TRACE_KEY, help="Trace files found under the trace roots.")
    path = Path(found[trace_id])
    with st.spinner(f"Reading {trace_id}…"):
        return _data.trace(str(path), _data.mtime(path)), trace_id, trace_id


def _select_view(trace: traces.Trace, limits: Limits, notices: list[str]) -> View:
    """What to look at in the trace (``LookSettings``; from the link on the first run)."""
    state = st.session_state
    batch = trace.shape[1]
    if _widgets.key(app_state.LOOK[0], WIDGET_PREFIX) not in state:
        view, link_notices = app_state.parse_trace_view(_selection.query(), limits, batch)
        notices += link_notices
        _widgets.store(view.values(), app_state.LOOK, WIDGET_PREFIX)
    names = trace.action_names
    st.subheader(SECTIONS["look"][0])
    _widgets.draw(
        app_state.LOOK,
        lambda: Bounds(limits.chunk_size, limits.action_dim, batch_size=batch),
        WIDGET_PREFIX,
        format_item=lambda a: f"dim {a}" + (f" ({names[a]})" if names else ""),
    )
    return app_state.trace_view(LookSettings(**_widgets.read(app_state.LOOK, WIDGET_PREFIX)), batch)


def sidebar() -> _selection.TraceContext | None:
    """The trace source's selectors; returns the selection (or None when there is nothing to show)."""
    st.session_state["rtc_picture_slot"] = None  # no level picture for a trace
    notices: list[str] = []
    picked = _pick_trace(notices)
    if picked is None:
        return None
    trace, trace_id, name = picked
    _, _, horizon, action_dim = trace.shape
    limits = Limits(horizon, action_dim)
    view = _select_view(trace, limits, notices)
    for notice in notices:
        st.warning(f"From the link: {notice}", icon=":material/link_off:")
    for warning in trace.warnings:
        st.warning(warning)
    error = None
    if not view.look.action_dim_indices:
        error = f"no action dimension chosen; pick at least one of 0..{action_dim - 1}"
    st.query_params.from_dict(app_state.trace_query(trace_id, view))
    return _selection.TraceContext(trace, trace_id, name, view, limits, trace.warnings, error)


def overview(context: _selection.TraceContext, trace: traces.Trace) -> None:
    """The overview page of a trace: what was recorded, the metrics that need no policy, the chunk figure."""
    summary, settings = trace.summary, trace.settings
    _display.summary_metrics(
        ("weighted_prefix_error_rtc", "boundary_jump_rtc", "frozen_max_deviation_rtc", "mean_abs_correction"), summary
    )
    tracked = trace.tracked
    valid = int(tracked["prev_valid"])
    reason = metrics.boundary_jump_reason(
        int(tracked["inference_delay"]), valid, context.limits.chunk_size, "last_executed" in tracked
    )
    if reason:
        st.caption(f"Jump at d: — because {reason}.")
    described = [
        f"Recorded by **{trace.source}**: a chunk of {context.limits.chunk_size} actions sampled in "
        f"{trace.shape[0]} flow steps while the first **d = {int(tracked['inference_delay'])}** ran from the "
        f"previous chunk, which held {valid} planned actions (the rest is padding, never measured against); "
        f"guided prefix up to index {int(tracked['prefix_attention_horizon'])}"
    ]
    if settings.prefix_attention_schedule:
        described.append(f", schedule **{settings.prefix_attention_schedule}**")
    if settings.max_guidance_weight is not None:
        described.append(f", w_max = {settings.max_guidance_weight:g}")
    described.append(".")
    if trace.plain is None:
        described.append(" No plain sample was recorded, so nothing is compared with unguided sampling.")
    st.markdown("".join(described))
    _display.show_page_content(
        "overview",
        context,
        trace,
        figure_note="The chunk with the prefix weights per horizon index in the bottom panel.",
    )
