"""Sweep: solve rate, return and boundary jump against inference delay per method, with 95 % intervals,
from batched closed-loop rollouts run through the server's job queue, and stored sweeps (rtc-sweep)."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from pages import _data, _display, _frame, _jobs, _selection, _widgets
from rtc.app import jobs
from rtc.errors import RTCError
from rtc.experiments import pipeline, rollout, sweep
from rtc.experiments.fields import Bounds, settings_of
from rtc.experiments.settings import SWEEP_PRESETS, RolloutSettings, SweepSettings
from rtc.experiments.sweep import store as sweep_store
from rtc.io import roots
from rtc.numerics import methods
from rtc.numerics.methods import JACOBIAN_FREE_NOTE, METHOD_LABELS, WEAK_POLICY_METHODS
from rtc.report import plots_sweep

PREFIX = "sweep"  # widget keys: sweep_methods, sweep_num_episodes, ...
# The page's settings: every one rtc-sweep has a flag for (the same declarations and defaults), but the levels (the
# page sweeps the sidebar's level).
GRID = tuple(s for s in settings_of(SweepSettings) if s.sweep_flag and s.name != "levels")
POINT = tuple(s for s in settings_of(RolloutSettings) if s.sweep_flag)


def _store(settings: SweepSettings) -> None:
    """Put ``settings`` into the page's widgets (a preset button's callback; the paper's on a first visit)."""
    _widgets.store(settings.__dict__, GRID, PREFIX)
    _widgets.store(settings.template.__dict__, POINT, PREFIX)


def _settings(context: _selection.Context) -> tuple[sweep.SweepSettings, str, Path | None]:
    """The grid's and the points' settings, the metric to plot and, when a chosen method needs one, BID's weak
    policy (an earlier checkpoint of the run, or None)."""
    if _widgets.key(GRID[0], PREFIX) not in st.session_state:
        _store(SweepSettings())
    columns = st.columns(len(SWEEP_PRESETS))
    for column, (name, preset) in zip(columns, SWEEP_PRESETS.items(), strict=True):
        column.button(
            f"Preset: {preset.label}",
            key=f"sweep_preset_{name}",
            on_click=_store,
            args=(preset.settings,),
            width="stretch",
            help=preset.help,
        )
    bounds = Bounds(context.limits.chunk_size, context.limits.action_dim)
    _widgets.draw(GRID + POINT, lambda: bounds, PREFIX, format_item=lambda v: METHOD_LABELS.get(v, str(v)))
    st.caption(JACOBIAN_FREE_NOTE)
    metric = st.selectbox("Metric", list(sweep.METRICS), format_func=sweep.METRICS.get, key="sweep_metric")
    template = RolloutSettings(**_widgets.read(POINT, PREFIX))
    grid = _widgets.read(GRID, PREFIX)
    grid["delays"] = tuple(sorted(grid["delays"]))
    weak = None
    if any(method in WEAK_POLICY_METHODS for method in grid["methods"]):
        weak = _widgets.weak_epoch(context, st, PREFIX)
    return SweepSettings(**grid, template=template), metric, weak


def _refused(context: _selection.Context, settings: sweep.SweepSettings, weak_policy) -> str | None:
    """Why the policy cannot run one of the chosen methods (``methods.check_method`` at the largest delay), or None."""
    policy = _data.policy(str(context.checkpoint), _data.mtime(context.checkpoint))
    template, delay = settings.template, max(settings.delays)
    try:
        for method in settings.methods:
            methods.check_method(
                method, policy, context.policy_name, delay, weak_policy, template.bid_k, template.bid_samples
            )
    except RTCError as err:
        return str(err)
    return None


def _work(policy, level, settings: sweep.SweepSettings, weak_policy=None):
    """The sweep as a job: its rows and paired comparisons (``_comparisons``), or ``None`` when cancelled (finished
    points stay in the shared cache)."""

    def work(job: jobs.JobContext):
        def report(progress: sweep.SweepProgress) -> bool:
            text = f"point {min(progress.points_done + 1, progress.total_points)}/{progress.total_points}"
            return job.report(progress.fraction, text)

        episodes: list[dict] = []
        try:
            rows = sweep.sweep(policy, level, settings, report, _data.sweep_points(), weak_policy, episodes)
        except rollout.RolloutCancelled:
            return None
        return rows, _comparisons(episodes, settings)

    return work


def _stored_figures(frame: pd.DataFrame, comparisons: pd.DataFrame | None = None) -> None:
    """The paper's summary, each method minus the baseline (paired), per-level panels of every metric (in tabs)
    and the per-level table."""
    _display.figure(plots_sweep.plot_sweep_summary(frame))
    if comparisons is not None and not comparisons.empty:
        _display.figure(plots_sweep.plot_sweep_differences(comparisons))
    elif comparisons is None:
        st.caption("No comparisons.parquet here (an older rtc-sweep wrote this sweep): rerun it for paired results.")
    tabs = st.tabs([sweep.METRICS[m] for m in sweep.METRICS])
    for tab, name in zip(tabs, sweep.METRICS, strict=True):
        with tab:
            _display.figure(plots_sweep.plot_sweep_levels(frame, name))
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
    comparisons = plots_sweep.stored_comparisons(folder)
    st.caption(
        f"{len(frame)} points, {frame['level'].nunique()} levels, methods {', '.join(sorted(set(frame['method'])))}; "
        f"run {manifest.get('run', '?')} epoch {manifest.get('epoch', '?')}. " + _truncated_note(frame)
    )
    _stored_figures(frame, comparisons)
    st.download_button(
        "Download this sweep (zip: results, episodes, comparisons, manifest, figures)",
        lambda: plots_sweep.bundle_bytes(folder),
        file_name=f"rtc_sweep_{folder.name}.zip",
        mime="application/zip",
        on_click="ignore",
        key="sweep_stored_zip",
        icon=":material/download:",
    )


def body(context: _selection.Context, result: pipeline.Inspection) -> Mapping[str, Any] | None:
    settings, metric, weak = _settings(context)
    template = settings.template
    st.caption(
        f"Defaults and presets are rtc-sweep's (the paper's grid); w_max = {template.max_guidance_weight:g}. "
        "Finished points are shared by every session of this server."
    )
    extras = None
    if not settings.methods or not settings.delays:
        st.info("Choose at least one method and one delay.")
    else:
        extras = _run_section(context, result, settings, metric, weak)
    _stored()
    return extras


def _run_section(
    context: _selection.Context,
    result: pipeline.Inspection,
    settings: sweep.SweepSettings,
    metric: str,
    weak: Path | None = None,
) -> Mapping[str, Any] | None:
    points = settings.points(context.limits.chunk_size)
    seconds = sweep.expected_seconds(points)
    episodes = sum(p.num_episodes for p in points)
    st.caption(
        f"{len(points)} points × {settings.template.num_episodes} episodes = {episodes} episodes: up to about "
        f"{_duration(seconds)} on a free core (less when episodes end early), plus about 30 s of compiling the "
        "first time.",
        help=sweep.EXPECTED_SECONDS_HELP,
    )
    weak_policy = None if weak is None else _data.policy(str(weak), _data.mtime(weak))
    refused = _refused(context, settings, weak_policy)
    if refused:
        st.error(f"Refused: {refused}. Choose other methods, or a weak policy for bid_forward.")
        return None
    rows_key = _jobs.job_key("rtc_sweep_rows", context, (settings, str(weak)))
    label = f"sweep {len(points)} points"
    finished = _jobs.run_job_with_weak_policy(context, "sweep", settings, weak, weak_policy, "Run sweep", _work, label)
    if finished is not None:
        st.session_state[rows_key] = finished
    found = st.session_state.get(rows_key)
    if found is None:
        st.info(f"Press Run sweep to evaluate {len(points)} points × {settings.template.num_episodes} episodes.")
        return None
    rows, comparisons = found
    extras = {"sweep": (rows, metric, comparisons)}
    _display.show_page_content("sweep", context, result, extras)
    if comparisons is None:
        st.caption(f"Paired differences need the baseline ({sweep_store.DEFAULT_BASELINE}) and another method.")
    else:
        st.caption(
            f"Each method minus {sweep_store.DEFAULT_BASELINE}, paired by episode (the same seeds): Newcombe's "
            "95 % interval, exact McNemar p-value, Holm-adjusted over the table."
        )
        st.dataframe(comparisons, key="sweep_comparisons", hide_index=True)
    st.caption(_truncated_note(pd.DataFrame(rows)))
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


def _comparisons(episodes: list[dict], settings: sweep.SweepSettings) -> pd.DataFrame | None:
    """Every method against the baseline (naive), paired by episode (``store.comparison_table``, as rtc-sweep's
    comparisons.parquet); None when the baseline or any other method is missing."""
    methods = set(settings.methods)
    if sweep_store.DEFAULT_BASELINE not in methods or len(methods) < 2:
        return None
    frame = pd.concat([pd.DataFrame(records) for records in episodes], ignore_index=True)
    return sweep_store.comparison_table(frame, sweep_store.DEFAULT_BASELINE)


def _truncated_note(rows: pd.DataFrame) -> str:
    """How many episodes reached the step limit unsolved (counted as unsolved in every solve rate)."""
    if "truncated" not in rows or rows["truncated"].isna().any():
        return "Truncated episodes were not recorded by the rtc-sweep that wrote this sweep."
    truncated = int(rows["truncated"].sum())
    episodes = int(rows["episodes"].sum())
    return f"{truncated} of {episodes} episodes reached the step limit unsolved (truncated; counted as unsolved)."


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_frame.page("sweep", body)
