"""Cached loading for the app: checkpoints, levels, pictures and inspections (Streamlit caches around rtc/).

Loading a checkpoint or a level happens once per process (``st.cache_resource``); results are
cached per selection (``st.cache_data`` with ``max_entries``). Only the number of flow steps and
the batch size are compiled in; schedule, delay, horizon, guidance weight and seed are traced.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from rtc.app import jobs
from rtc.errors import RTCError
from rtc.experiments import analysis, pipeline
from rtc.io import export_cache, level_prep, levels, roots, traces
from rtc.io.checkpoints import RunInfo, load_policy
from rtc.numerics import seeds
from rtc.numerics.model import FlowPolicy
from rtc.report import render


@st.cache_resource(show_spinner=False)
def setup_process() -> Path:
    """Once per server process: the on-disk JAX compilation cache."""
    return pipeline.enable_compilation_cache()


def release_crowded_programs() -> None:
    """At every run of the script (not cached): drop the compiled programs when they crowd the process's memory
    mappings (``export_cache.release_programs_when_crowded``: a server that has compiled a few dozen programs
    would otherwise fail at random)."""
    export_cache.release_programs_when_crowded()


@st.cache_data(ttl=30, show_spinner=False)
def runs_under(dirs: tuple[str, ...]) -> dict[str, RunInfo]:
    """Runs under the roots by id (rescanned at most every 30 s, so new epochs appear)."""
    return roots.find_runs([Path(r) for r in dirs])


@st.cache_data(ttl=300, show_spinner=False)
def level_candidates(folders: tuple[str, ...]) -> list[Path]:
    """Level files offered: the configured folders, then kinetix's own levels (cached per process)."""
    return roots.level_candidates([Path(f) for f in folders])


@st.cache_resource(show_spinner=False, max_entries=8)
def policy(path: str, mtime: float) -> FlowPolicy:
    """A checkpoint as a ready policy (``mtime`` invalidates a rewritten checkpoint)."""
    return load_policy(path)


@st.cache_resource(show_spinner=False, max_entries=16)
def level(path: str) -> levels.Level:
    """A Kinetix level, opened once (read only when needed: see ``levels.open_level``)."""
    return levels.open_level(path)


@st.cache_resource(show_spinner=False, max_entries=32)
def compiled_sampler(checkpoint: str, checkpoint_mtime: float, num_flow_steps: int, batch_size: int) -> bool:
    """The programs an inspection of this shape runs, compiled once per process (``pipeline.warm_up``; sessions
    asking at the same time wait for the one compile)."""
    chosen = pipeline.RTCSettings(num_flow_steps=num_flow_steps, batch_size=batch_size)
    pipeline.warm_up(policy(checkpoint, checkpoint_mtime), chosen)
    return True


def prepare_level(path: str) -> bool:
    """Ask the background preparer (``rtc.io.level_prep``) to store the level's reset observation and
    picture on disk unless they are there; False when nothing is coming (stored already, or no preparer)."""
    done = _prepared_levels()
    if path in done:
        return False
    try:
        if levels.is_prepared(path):
            done.add(path)
            return False
    except (RTCError, OSError):
        return False  # unreadable: the page reads it itself and says why
    return level_prep.preparer().request(path)


@st.cache_resource(show_spinner=False)
def _prepared_levels() -> set[str]:
    """Level files whose observation and picture this process has seen on disk (checked once, not every rerun)."""
    return set()


def wait_for_level(path: str, stage: str) -> None:
    """Wait until the preparer stored ``stage`` ("obs" or "picture") of the level, if it was asked to;
    when it failed, the caller does the work itself (and shows the error)."""
    if prepare_level(path):
        level_prep.preparer().wait(path, stage)


@st.cache_data(show_spinner=False, max_entries=16)
def level_picture(path: str) -> np.ndarray:
    """The level's initial state as an image (kept on disk: see ``levels.level_picture``)."""
    wait_for_level(path, "picture")
    return levels.level_picture(level(path))


@st.cache_data(show_spinner=False, max_entries=16)
def level_picture_png(path: str) -> bytes:
    """The level picture as PNG bytes (for bundles)."""
    buffer = io.BytesIO()
    Image.fromarray(level_picture(path)).save(buffer, format="PNG")
    return buffer.getvalue()


@st.cache_resource(show_spinner=False)
def render_pool() -> render.RenderPool:
    """Worker processes that build and render figures in parallel: a bundle's, and a page's while its charts are
    built (started after the first page is drawn, so that page need not wait for them)."""
    pool = render.render_pool(preload=("rtc.report.render", "rtc.report.plots"))  # what pages' figure makers use
    _started_render_pool()["pool"] = pool
    return pool


def running_render_pool() -> render.RenderPool | None:
    """The render workers if ``render_pool`` has started them in this process, else None (never starts them)."""
    return _started_render_pool().get("pool")


@st.cache_resource(show_spinner=False)
def _started_render_pool() -> dict[str, render.RenderPool]:
    """Where ``render_pool`` leaves its pool, so that asking whether it runs does not start it."""
    return {}


@st.cache_resource(show_spinner=False)
def compiled_shapes() -> set[tuple]:
    """Sampler shapes compiled in this process (to say when a first compile is coming)."""
    return set()


@st.cache_resource(show_spinner=False)
def job_queue() -> jobs.JobQueue:
    """The server's one queue of heavy jobs (rollouts, sweeps): at most ``RTC_MAX_JOBS`` run at once."""
    return jobs.JobQueue(keep_finished=8)


@st.cache_resource(show_spinner=False)
def sweep_points() -> jobs.BoundedCache:
    """Finished sweep points of every session by point key: each point's row (about 2 kB) and its episode records
    (about 0.1 kB per episode), the 2048 most recent points (4096 entries)."""
    return jobs.BoundedCache(4096)


def mtime(path: Path) -> float:
    return path.stat().st_mtime if path.exists() else 0.0


@st.cache_data(show_spinner=False, max_entries=64)
def inspection(
    checkpoint: str, checkpoint_mtime: float, level_path: str, settings: pipeline.RTCSettings
) -> pipeline.Inspection:
    """One tracked RTC sample and its plain twin for a selection (settings hashed by their fields)."""
    return pipeline.inspect(policy(checkpoint, checkpoint_mtime), level(level_path), settings)


@st.cache_data(show_spinner=False, max_entries=32)
def comparison(
    checkpoint: str,
    checkpoint_mtime: float,
    level_path: str,
    settings: pipeline.RTCSettings,
    bid_samples: int,
    weak_checkpoint: str = "",
    weak_mtime: float = 0.0,
    bid_k: int = 2,
) -> analysis.MethodComparison:
    """Every method the policy can run on the inspection's noise and observation (BID with ``bid_samples``
    candidates; with ``weak_checkpoint``, BID's forward term against it with ``bid_k``)."""
    result = inspection(checkpoint, checkpoint_mtime, level_path, settings)
    weak = policy(weak_checkpoint, weak_mtime) if weak_checkpoint else None
    return analysis.compare_inspection(
        policy(checkpoint, checkpoint_mtime), result, bid_samples, weak_policy=weak, bid_k=bid_k
    )


@st.cache_data(show_spinner=False, max_entries=16)
def seed_runs(
    checkpoint: str,
    checkpoint_mtime: float,
    level_path: str,
    settings: pipeline.RTCSettings,
    count: int,
    batch_index: int,
    jacobian_free: bool = False,
) -> dict[str, dict[str, np.ndarray]]:
    """RTC and naive tracked runs (and Jacobian-free RTC if asked) for ``count`` seeds on the inspection's situation."""
    result = inspection(checkpoint, checkpoint_mtime, level_path, settings)
    policy_ = policy(checkpoint, checkpoint_mtime)
    return analysis.seeds_for_inspection(policy_, result, count, batch_index, jacobian_free)


@st.cache_data(show_spinner=False, max_entries=16)
def seed_behaviours(
    checkpoint: str,
    checkpoint_mtime: float,
    level_path: str,
    settings: pipeline.RTCSettings,
    count: int,
    batch_index: int,
    jacobian_free: bool = False,
) -> dict:
    """``seeds.behaviour_membership`` of ``seed_runs`` (clustering the plain samples once per selection)."""
    runs = seed_runs(checkpoint, checkpoint_mtime, level_path, settings, count, batch_index, jacobian_free)
    return seeds.behaviour_membership(runs)


@st.cache_data(ttl=30, show_spinner=False)
def traces_under(dirs: tuple[str, ...]) -> dict[str, Path]:
    """Trace files under the roots by id (rescanned at most every 30 s, so new files appear)."""
    return roots.find_traces([Path(r) for r in dirs])


@st.cache_data(show_spinner=False, max_entries=16)
def trace(path: str, mtime: float) -> traces.Trace:
    """A trace file under a root, read and converted once (``mtime`` invalidates a rewritten file)."""
    return traces.read_trace(path, name=Path(path).name)


@st.cache_data(show_spinner=False, max_entries=4)
def uploaded_trace(data: bytes, name: str) -> traces.Trace:
    """An uploaded trace (bytes, read without pickle)."""
    return traces.read_trace(data, name=name)
