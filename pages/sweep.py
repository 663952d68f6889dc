"""Sweep: a metric against inference delay per method, from batched closed-loop rollouts."""

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from pages import _data, _ui
from rtc import pipeline, rollout, sweep
from rtc.methods import JACOBIAN_FREE_NOTE, METHOD_LABELS, METHODS

CACHE_KEY = "rtc_sweep_cache"  # rows per point, shared by every sweep of the session


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
    episodes = first.number_input("Episodes per point", 1, 64, value=4, key="sweep_episodes")
    steps = second.number_input("Episode steps", 1, 256, value=256, key="sweep_steps")
    metric = third.selectbox("Metric", list(sweep.METRICS), format_func=sweep.METRICS.get, key="sweep_metric")
    settings = sweep.SweepSettings(
        methods=tuple(chosen),
        delays=tuple(sorted(int(d) for d in delays)),
        template=rollout.RolloutSettings(
            num_episodes=int(episodes),
            episode_steps=int(steps),
            max_guidance_weight=view.max_guidance_weight,
            seed=view.seed,
        ),
    )
    return settings, metric


def body(context: _ui.Context, result: pipeline.Inspection) -> Mapping[str, Any] | None:
    settings, metric = _settings(context)
    st.caption(
        f"Execute horizon s = max(1, d); {settings.template.num_flow_steps} flow steps, w_max = "
        f"{settings.template.max_guidance_weight:g}, seed {settings.template.seed} (sidebar). "
        "Finished points are kept for the session."
    )
    if not settings.methods or not settings.delays:
        st.info("Choose at least one method and one delay.")
        return None
    cache = st.session_state.setdefault(CACHE_KEY, {})
    policy = _data.policy(str(context.checkpoint), _data.mtime(context.checkpoint))
    level = _data.level(str(context.level_path))
    rows_key = ("rtc_sweep_rows", str(context.checkpoint), str(context.level_path), settings)
    if _ui.run_button("Run sweep", "sweep_run"):
        bar = st.progress(0.0, text="Compiling the rollout program (about 30 s the first time)…")

        def report(progress: sweep.SweepProgress) -> None:
            bar.progress(min(progress.fraction, 1.0), text=f"point {progress.points_done + 1}/{progress.total_points}")

        st.session_state[rows_key] = sweep.sweep(policy, level, settings, report, cache)
        bar.empty()
    rows = st.session_state.get(rows_key)
    if rows is None:
        points = len(settings.methods) * len(settings.delays)
        st.info(f"Press Run sweep to evaluate {points} points × {settings.template.num_episodes} episodes.")
        return None
    extras = {"sweep": (rows, metric)}
    _ui.show_analysis("sweep", context, result, extras)
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


_ui.page("sweep", body)
