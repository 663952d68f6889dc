"""Heavy work of a page (a rollout, a sweep) as a job in the server's queue (``rtc.app.jobs``): its Run button,
its place in the queue, its progress and a Cancel button while it runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import streamlit as st

from pages import _data
from pages._selection import Context
from rtc.app import jobs

JOBS_KEY = "rtc_jobs"  # {slot: rtc.app.jobs.Job} this session holds in the server's queue


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


def run_job_with_weak_policy(
    context: Context,
    slot: str,
    settings: Any,
    weak: Any,
    weak_policy: Any,
    button: str,
    work: Callable[..., Callable[[jobs.JobContext], Any]],
    label: str,
) -> Any:
    """``run_job`` for work that may use BID's weak policy (``weak``, its checkpoint, or None): the job's key holds
    the settings and that checkpoint; the job is ``work(policy, level, settings, weak_policy)``."""
    return run_job(
        context,
        slot,
        (settings, str(weak)),
        button,
        lambda policy, level, chosen: work(policy, level, chosen[0], weak_policy),
        label,
    )


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
    its progress while it runs, and a Cancel button that goes when it ends. Returns its result once (``None``
    when there is no such job or it was cancelled); a failure is raised here, in the page that asked."""
    held = st.session_state.setdefault(JOBS_KEY, {})
    job = held.get(slot)
    if job is None:
        return None
    if job.key != key:  # a setting changed: this session no longer wants the old job
        job.cancel()
        held.pop(slot, None)
        return None
    if not job.done:
        cancel = st.empty()  # the button goes when the job ends
        if cancel.button("Cancel", key=f"{slot}_cancel", icon=":material/cancel:"):
            cancel.empty()
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
        for placeholder in (cancel, status, bar):
            placeholder.empty()
    held.pop(slot, None)
    if job.state == jobs.FAILED:
        raise job.error
    if job.state == jobs.CANCELLED:
        st.info("Cancelled. Press the button again to restart.")
        return None
    return job.result
