"""The frame of every page: title and help from the page's declaration (``rtc.report.page_content``), the
selection's caption, the inspection (computed or a rollout chunk opened from the rollout page), the body, the
download buttons, and errors shown as one line, never a traceback."""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import streamlit as st

from pages import _data
from pages._display import show_page_content
from pages._downloads import downloads
from pages._selection import Context, TraceContext, get_context
from rtc.app import state as app_state
from rtc.errors import RTCError
from rtc.experiments import pipeline
from rtc.io import traces
from rtc.report import page_content

CHUNK_KEY = "rtc_open_chunk"  # a rollout chunk shown instead of the sidebar's inspection (see open_chunk)


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


def cache_args(context: Context) -> tuple[str, float, str, pipeline.RTCSettings]:
    """The arguments that key ``_data.inspection`` (and the analysis caches built on it)."""
    return str(context.checkpoint), _data.mtime(context.checkpoint), str(context.level_path), context.settings


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
    title, what = page_content.PAGES[page_key]
    st.title(title)
    st.markdown(what)
    context = get_context()
    if context is None:
        st.info("Choose a run or a trace in the sidebar to start.")
        return
    try:
        drawn = _trace(page_key, context) if isinstance(context, TraceContext) else _inspection(page_key, context)
        if drawn is None:
            return
        context, record = drawn
        slot = st.container()
        extras = body(context, record)
        with slot:
            downloads(page_key, context, record, extras)
    except (RTCError, OSError) as err:  # a file, setting or index the user chose: say which and what is accepted
        user_error(err)
    except Exception as err:
        unexpected(err)


def declared_page(page_key: str) -> None:
    """Draw a page that shows its declared charts and figures only (``rtc.report.page_content``): the whole of
    ``pages/x_t.py``, ``v_t.py``, ``correction.py`` and ``error.py``.

    Each keeps a file of its own because Streamlit's first run on a fresh server looks a deep link up by file name
    in ``pages/`` (see ``_through_entrypoint``): without one, the link's first visitor gets "Page not found"."""
    page(page_key, lambda context, record: show_page_content(page_key, context, record))


def _inspection(page_key: str, context: Context) -> tuple[Context, pipeline.Inspection] | None:
    """The sidebar's inspection (or the rollout chunk opened on a step-by-step page), None when refused."""
    st.caption(app_state.describe(context.target, context.view))
    if context.error:
        st.error(f"Refused setting: {context.error}. Change it in the sidebar to draw this page.")
        return None
    chunk = opened_chunk(context) if page_key in page_content.CHUNK_PAGES else None
    if chunk is None:
        return context, compute(context)
    _chunk_banner(chunk)
    # The chunk is a batch of one: draw its only element.
    return dataclasses.replace(context, view=context.view.replace(batch_index=0)), chunk["inspection"]


def _trace(page_key: str, context: TraceContext) -> tuple[TraceContext, traces.Trace] | None:
    """A recorded trace with its notices, or None (and why) when the page cannot be drawn on it."""
    trace = context.trace
    st.caption(context.describe())
    for note in trace.notes:
        st.warning(note, icon=":material/info:")
    if context.error:
        st.error(f"Refused: {context.error}. Change it in the sidebar to draw this page.")
        return None
    if page_key in page_content.POLICY_PAGES:
        st.info(
            f"This page needs a policy: it {page_content.POLICY_PAGES[page_key]}. A recorded trace holds one "
            "sampling call's arrays only; its Overview, State x_t, Velocity v_t, RTC correction and Error pages "
            "show it. Choose Runs as the source to use this page on a policy.",
            icon=":material/block:",
        )
        return None
    if page_key not in page_content.available_pages(trace):
        st.info(
            f"This page shows guidance, and this trace has none: {traces.FIRST_CHUNK_NOTE}",
            icon=":material/block:",
        )
        return None
    return context, trace
