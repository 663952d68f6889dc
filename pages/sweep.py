"""Sweep: solve rate, return and boundary jump against inference delay per method, with 95 % intervals,
from batched closed-loop rollouts run through the server's job queue, and stored sweeps (rtc-sweep)."""

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from pages import _data, _ui, _widgets
from rtc.app import jobs
from rtc.experiments import pipeline, rollout, sweep
from rtc.experiments import settings as table
from rtc.experiments.sweep import store as sweep_store
from rtc.io import roots
from rtc.numerics.methods import JACOBIAN_FREE_NOTE, METHOD_LABELS, METHODS
from rtc.report import plots_sweep

RULES = {"all": "all: every s with max(1, d) ≤ s ≤ H − d (the paper's)", "min": "min: s = max(1, d)"}


def _settings(context: _ui.Context) -> tuple[sweep.SweepSettings, str]:
    view = context.view
    left, right = st.columns(2)
    chosen = left.multiselect(
        "Methods",
        METHODS,
        default=list(sweep.DEFAULT_METHODS),
        format_func=METHOD_LABELS.get,
        key="sweep_methods",
        help=JACOBIAN_FREE_NOTE,
    )
    delays = right.multiselect("Inference delays d", list(range(5)), default=list(range(5)), key="sweep_delays")
    first, second, third = st.columns(3)
    rule = first.selectbox("Execute horizons s", list(RULES), format_func=RULES.get, key="sweep_rule")
    rows = table.BY_NAME
    episodes = _widgets.number(rows["num_episodes"], second, "sweep_episodes", 64, cap=1024)
    steps = _widgets.number(rows["episode_steps"], third, "sweep_steps", 256, cap=256)
    fourth, fifth = st.columns(2)
    bid = _widgets.number(rows["bid_samples"], fourth, "sweep_bid", rows["bid_samples"].sweep_default, cap=64)
    metric = fifth.selectbox("Metric", list(sweep.METRICS), format_func=sweep.METRICS.get, key="sweep_metric")
    settings = sweep.SweepSettings(
        methods=tuple(chosen),
        delays=tuple(sorted(int(d) for d in delays)),
        execute_horizon_rule=rule,
        template=rollout.RolloutSettings(
            num_episodes=int(episodes),
            episode_steps=int(steps),
            bid_samples=int(bid),
            max_guidance_weight=view.max_guidance_weight,
            seed=view.seed,
        ),
    )
    return settings, metric


def _work(policy, level, settings: sweep.SweepSettings):
    """The sweep as a job: rows, or ``None`` when cancelled (finished points stay in the shared cache)."""

    def work(job: jobs.JobContext):
        def report(progress: sweep.SweepProgress) -> bool:
            text = f"point {min(progress.points_done + 1, progress.total_points)}/{progress.total_points}"
            return job.report(progress.fraction, text)

        try:
            return sweep.sweep(policy, level, settings, report, _data.sweep_points())
        except rollout.RolloutCancelled:
            return None

    return work


def _stored_figures(frame: pd.DataFrame) -> None:
    """The paper's summary, per-level panels of every metric (in tabs) and the per-level table."""
    _ui.figure(plots_sweep.plot_sweep_summary(frame))
    tabs = st.tabs([sweep.METRICS[m] for m in sweep.METRICS])
    for tab, name in zip(tabs, sweep.METRICS, strict=True):
        with tab:
            _ui.figure(plots_sweep.plot_sweep_levels(frame, name))
    st.dataframe(plots_sweep.level_table(frame), key="sweep_stored_table", hide_index=True)


def _stored() -> None:
    st.subheader("Stored sweeps", help="Folders written by rtc-sweep: <run>/sweeps/<name>, or under RTC_SWEEPS_ROOTS.")
    runs = _data.runs_under(tuple(str(r) for r in roots.run_roots()))
    found = roots.find_sweeps(runs, roots.sweeps_roots())
    if not found:
        st.caption(
            "No stored sweep found: write one with `rtc-sweep RUN --out RUN/sweeps/NAME` or set "
            f"{roots.SWEEPS_ROOTS_ENV} to folders that hold rtc-sweep outputs."
        )
        return
    name = st.selectbox("Open a stored sweep", ["(none)", *found], key="sweep_stored")
    if name == "(none)":
        return
    folder = found[name]
    frame = sweep_store.read_results(folder / sweep_store.RESULTS_FILE)
    manifest = sweep_store.read_manifest(folder) or {}
    st.caption(
        f"{len(frame)} points, {frame['level'].nunique()} levels, methods {', '.join(sorted(set(frame['method'])))}; "
        f"run {manifest.get('run', '?')} epoch {manifest.get('epoch', '?')}."
    )
    _stored_figures(frame)
    st.download_button(
        "Download this sweep (zip: results, manifest, figures)",
        lambda: plots_sweep.bundle_bytes(folder),
        file_name=f"rtc_sweep_{folder.name}.zip",
        mime="application/zip",
        on_click="ignore",
        key="sweep_stored_zip",
        icon=":material/download:",
    )


def body(context: _ui.Context, result: pipeline.Inspection) -> Mapping[str, Any] | None:
    settings, metric = _settings(context)
    template = settings.template
    st.caption(
        f"{template.num_flow_steps} flow steps, w_max = {template.max_guidance_weight:g}, seed {template.seed} "
        "(sidebar), action noise 0.1. Finished points are shared by every session of this server."
    )
    extras = None
    if not settings.methods or not settings.delays:
        st.info("Choose at least one method and one delay.")
    else:
        extras = _run_section(context, result, settings, metric)
    _stored()
    return extras


def _run_section(
    context: _ui.Context, result: pipeline.Inspection, settings: sweep.SweepSettings, metric: str
) -> Mapping[str, Any] | None:
    points = settings.points(context.limits.chunk_size)
    seconds = sweep.expected_seconds(points)
    episodes = sum(p.num_episodes for p in points)
    st.caption(
        f"{len(points)} points × {settings.template.num_episodes} episodes = {episodes} episodes: up to about "
        f"{_duration(seconds)} on a free core (less when episodes end early), plus about 30 s of compiling the "
        "first time."
    )
    rows_key = _ui.job_key("rtc_sweep_rows", context, settings)
    finished = _ui.run_job(context, "sweep", settings, "Run sweep", _work, f"sweep {len(points)} points")
    if finished is not None:
        st.session_state[rows_key] = finished
    rows = st.session_state.get(rows_key)
    if rows is None:
        st.info(f"Press Run sweep to evaluate {len(points)} points × {settings.template.num_episodes} episodes.")
        return None
    extras = {"sweep": (rows, metric)}
    _ui.show_page_content("sweep", context, result, extras)
    st.dataframe(plots_sweep.level_table(rows), key="sweep_level_table", hide_index=True)
    st.dataframe(pd.DataFrame(rows), key="sweep_table", hide_index=True)
    st.download_button(
        "Download the sweep (CSV)",
        sweep.to_csv(rows),
        file_name=f"rtc_sweep_{context.target.level}.csv",
        mime="text/csv",
        on_click="ignore",
        key="sweep_csv",
        icon=":material/download:",
    )
    return extras


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_ui.page("sweep", body)
