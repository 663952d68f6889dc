"""Closed-loop rollout: whole episodes with one method, its action trace, outcome, animation and chunks."""

import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from pages import _data, _display, _frame, _jobs, _selection, _widgets
from rtc.app import jobs
from rtc.errors import RTCError
from rtc.experiments import pipeline, rollout
from rtc.experiments.fields import Bounds, by_name
from rtc.numerics import methods, metrics
from rtc.numerics.methods import JACOBIAN_FREE_NOTE, METHOD_LABELS, METHODS, NO_CORRECTION_NOTE, is_jacobian_free
from rtc.report import animation, page_content, plots

RESULTS_KEY = "rtc_rollouts"  # {(checkpoint, level, settings): (Rollout, seconds)}
GIFS_KEY = "rtc_rollout_gifs"
KEEP = 4
# Episodes a run of this page plays by default, and at most: the batch of one closed-loop program. One episode
# gives a solve rate of 0 or 1 with a Wilson 95 % interval of [0, 0.79] or [0.21, 1], no number to report; 16 cost
# about as much once compiled (the episodes run side by side) and narrow it to at most 0.44 wide.
PAGE_EPISODES = 16


def _settings(context: _selection.Context) -> tuple[rollout.RolloutSettings, Any]:
    view, h_max = context.view, context.limits.chunk_size
    first, second, third = st.columns(3)
    method = first.selectbox(
        "Method", METHODS, index=1, format_func=METHOD_LABELS.get, key="rollout_method", help=JACOBIAN_FREE_NOTE
    )
    rows, bounds, default = by_name(rollout.RolloutSettings), Bounds(chunk_size=h_max), rollout.RolloutSettings()
    delay = _widgets.number(rows["inference_delay"], second, "rollout_d", view.rtc.inference_delay, bounds)
    horizon = _widgets.number(rows["execute_horizon"], third, "rollout_s", view.rtc.execute_horizon, bounds)
    if is_jacobian_free(method):
        st.caption(JACOBIAN_FREE_NOTE)
    episodes = _widgets.number(rows["num_episodes"], first, "rollout_episodes", PAGE_EPISODES, cap=PAGE_EPISODES)
    steps = _widgets.number(rows["episode_steps"], second, "rollout_steps", default.episode_steps, cap=256)
    weak, bid_k, samples = None, default.bid_k, default.bid_samples
    if method in ("bid", "bid_forward"):
        samples = _widgets.number(rows["bid_samples"], third, "rollout_bid_samples", samples, cap=64)
    if method == "bid_forward":
        weak, bid_k = _widgets.bid_forward(context, st, "rollout", int(samples))
    if method == "training_time_rtc":
        st.caption(f"Training-time RTC: {NO_CORRECTION_NOTE}.")
    settings = rollout.RolloutSettings(
        method=method,
        inference_delay=int(delay),
        execute_horizon=int(horizon),
        num_episodes=int(episodes),
        episode_steps=int(steps),
        max_guidance_weight=view.rtc.max_guidance_weight,
        seed=view.rtc.seed,
        bid_samples=int(samples),
        bid_k=int(bid_k),
    )
    return settings, weak


def _weak_policy(weak):
    return None if weak is None else _data.policy(str(weak), _data.mtime(weak))


def _work(policy, level, settings: rollout.RolloutSettings, weak_policy=None):
    """The rollout as a job for the server's queue: ``(Rollout, seconds)``, or ``None`` when cancelled."""

    def work(job: jobs.JobContext) -> tuple[rollout.Rollout, float] | None:
        started, result = time.perf_counter(), None
        for progress in rollout.iterate_rollout(policy, level, settings, weak_policy=weak_policy):
            if not job.report(progress.fraction, f"{progress.steps_done}/{progress.total_steps} steps"):
                return None
            result = progress.result
        assert result is not None
        return result, time.perf_counter() - started

    return work


def _episode_table(result: rollout.Rollout) -> pd.DataFrame:
    counts, steps = result.jump_counts, result.step_counts
    jumps = np.where(counts > 0, result.jump_sums / np.maximum(counts, 1), np.nan)  # NaN: no defined jump
    step = np.where(steps > 0, result.step_sums / np.maximum(steps, 1), np.nan)
    return pd.DataFrame(
        {
            "return": result.returns,
            "solved": result.solved.astype(bool),
            "length": result.lengths,
            "mean boundary jump": jumps,
            "mean step size (no switch)": step,
            "jump / step": jumps / step,
        }
    ).rename_axis("episode")


def solve_rate(solved: np.ndarray) -> str:
    """The solve rate with its sample size and Wilson 95 % interval (``rtc.numerics.metrics.wilson_interval``)."""
    n, successes = len(solved), int(np.sum(solved))
    low, high = metrics.wilson_interval(successes, n)
    episodes = "episode" if n == 1 else "episodes"
    return f"solve rate {successes / n:.2f} (n = {n} {episodes}, Wilson 95 % [{low:.2f}, {high:.2f}])"


def _fmt(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:.3f}"


def _gif(key: tuple, result: rollout.Rollout, episode: int) -> bytes:
    gifs = st.session_state.setdefault(GIFS_KEY, {})
    if (key, episode) not in gifs:
        with st.spinner("Rendering the animation…"):
            gifs[(key, episode)] = animation.gif_bytes(animation.episode_frames(result, episode, every=4, size=192))
    return gifs[(key, episode)]


def _chunk(context: _selection.Context, result: rollout.Rollout, episode: int, weak_policy=None) -> None:
    st.subheader("One chunk's denoising steps")
    s, length = result.settings.execute_horizon, int(result.lengths[episode])
    last = (length - 1) // s
    index = st.number_input(
        "Chunk index",
        0,
        last,
        value=0,
        key="rollout_chunk",
        help=f"Block k starts at step k·s = k·{s}; accepted 0..{last} for this episode.",
    )
    st.caption(
        f"Chunk {int(index)} of episode {episode} (starts at step {int(index) * s}), re-sampled with tracking "
        "from its recorded observation, previous chunk and noise. The button below opens it in the x_t, v_t, "
        "correction and error pages (instead of the sidebar's inspection)."
    )
    policy = _data.policy(str(context.checkpoint), _data.mtime(context.checkpoint))
    tracked = rollout.chunk_inspection(policy, result, episode, int(index), weak_policy)
    settings = result.settings
    description = (
        f"rollout chunk {int(index)} of episode {episode} ({METHOD_LABELS.get(settings.method, settings.method)}, "
        f"d = {settings.inference_delay}, s = {s})"
    )
    st.button(  # pressed is kept by a callback (a plain button's value is lost on the rerun ``_frame.page`` may make)
        "Open this chunk in the x_t / v_t / correction / error pages",
        key="rollout_open_chunk",
        icon=":material/open_in_new:",
        disabled="error" not in tracked,
        help="Guided methods only (RTC with or without the Jacobian, hard masking): the pages need the guidance "
        "record.",
        on_click=st.session_state.update,
        kwargs={"rollout_open_chunk_pressed": True},
    )
    if st.session_state.pop("rollout_open_chunk_pressed", False):
        _frame.open_chunk(
            context, rollout.chunk_as_inspection(policy, result, episode, int(index), tracked), description
        )
    opened = _frame.opened_chunk(context)
    if opened is not None:
        st.success(f"The x_t, v_t, correction and error pages show {opened['description']}.")
    view = context.view
    _display.figure(plots.plot_comparison_grid(tracked, 0, list(view.look.action_dim_indices), view.look.horizon_index))
    if "error" in tracked:
        _display.figure(plots.plot_error_over_steps(tracked, 0))
    elif settings.method in methods.TRAINING_TIME_METHODS:
        st.info(f"{NO_CORRECTION_NOTE[0].upper()}{NO_CORRECTION_NOTE[1:]}: no error or correction to show.")
    else:
        st.info("This method samples without guidance, so there is no error or correction to show.")


def body(context: _selection.Context, result: pipeline.Inspection) -> Mapping[str, Any] | None:
    settings, weak = _settings(context)
    for warning in settings.validate(context.limits.chunk_size):
        st.warning(warning)
    weak_policy = _weak_policy(weak)
    try:
        policy = _data.policy(str(context.checkpoint), _data.mtime(context.checkpoint))
        methods.check_method(
            settings.method,
            policy,
            context.policy_name,
            settings.inference_delay,
            weak_policy,
            settings.bid_k,
            settings.bid_samples,
        )
    except RTCError as err:
        st.error(str(err))
        return None
    key = (str(context.checkpoint), str(context.level_path), settings, str(weak))
    results = st.session_state.setdefault(RESULTS_KEY, {})
    st.caption(
        f"{settings.num_flow_steps} flow steps, w_max = {settings.max_guidance_weight:g} and seed {settings.seed} "
        f"(from the sidebar), action noise {settings.action_noise:g}."
    )
    label = f"rollout {settings.method}"
    finished = _jobs.run_job_with_weak_policy(
        context, "rollout", settings, weak, weak_policy, "Run rollout", _work, label
    )
    if finished is not None:
        results[key] = finished
        while len(results) > KEEP:
            results.pop(next(iter(results)))
    if key not in results:
        st.info("Press Run rollout to simulate these settings (the first run compiles, about 30 s).")
        return None
    done, seconds = results[key]
    summary = done.summary()
    st.caption(
        f"Ran in {seconds:.1f} s: {solve_rate(done.solved)}, mean return {summary['mean_return']:.2f}, "
        f"mean boundary jump {_fmt(summary['mean_boundary_jump'])} against a mean step of "
        f"{_fmt(summary['mean_step_size'])} away from switches (ratio {_fmt(summary['jump_to_step_ratio'])})."
        + (
            " The jump is undefined (—) where the action before a switch was the previous chunk's zero padding "
            "(d − 1 ≥ H − s)."
            if not np.isfinite(summary["mean_boundary_jump"])
            else ""
        )
    )
    st.dataframe(_episode_table(done), key="rollout_table")
    episode = 0
    if settings.num_episodes > 1:
        episode = int(st.number_input("Episode", 0, settings.num_episodes - 1, value=0, key="rollout_episode"))
    trace, picture = st.columns([3, 1])
    with trace:
        _display.figure(
            page_content.page_figures(
                "rollout", result, 0, 0, context.view.look.action_dim_indices, {"rollout": done}
            ).popitem()[1]
        )
    gif = _gif(key, done, episode)
    picture.image(gif, caption=f"episode {episode} (every 4th step)", width="stretch")
    _chunk(context, done, episode, weak_policy)
    return {"rollout": done, "animations": {f"rollout_episode{episode}": gif}}


_frame.page("rollout", body)
