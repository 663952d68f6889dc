"""Overview: the level, the previous chunk, the RTC chunk and the plain chunk, and a numeric summary."""

import streamlit as st

from pages import _data, _display, _frame, _selection, _traces
from rtc.experiments import pipeline
from rtc.numerics import metrics
from rtc.report import page_content


def body(context: _selection.Context, result: pipeline.Inspection) -> None:
    if isinstance(context, _selection.TraceContext):  # a recorded trace: no policy, level or plain twin
        _traces.overview(context, result)
        return
    summary = result.summary
    settings = result.settings
    st.info(f"**{settings.situation}** — {result.situation_label}", icon=":material/info:")
    picture, numbers = st.columns([1, 3])
    picture_slot = picture.empty()  # filled last: the first render of a level takes a second or two
    with numbers:
        shown = ("guidance_effect", "guidance_cost", "weighted_prefix_error_rtc", "mean_abs_correction")
        _display.summary_metrics((*shown, "boundary_jump_rtc"), summary)
        reason = metrics.boundary_jump_reason(
            settings.inference_delay,
            metrics.prev_valid_of(result.tracked),
            context.limits.chunk_size,
            has_last_executed=result.last_executed_action is not None,
        )
        if reason:
            st.caption(f"Jump at d: — because {reason}.")
        st.markdown(
            f"The policy sampled a new chunk of {context.limits.chunk_size} actions while the first "
            f"**d = {settings.inference_delay}** still run from the previous chunk; it executes up to "
            f"**s = {settings.execute_horizon}**, so the guided prefix ends at H − s = "
            f"{context.limits.chunk_size - settings.execute_horizon}. "
            f"Schedule **{settings.prefix_attention_schedule}**, "
            f"{settings.num_flow_steps} flow steps, w_max = {settings.max_guidance_weight:g}."
        )
        for warning in result.warnings:
            st.warning(warning)
    _display.show_page_content(
        "overview",
        context,
        result,
        figure_note=f"{page_content.spec('overview').figure_note} {_drawn_sample(context, result)}",
    )
    picture_slot.image(_data.level_picture(str(context.level_path)), caption=context.level_note, width="stretch")


def _drawn_sample(context: _selection.Context, result: pipeline.Inspection) -> str:
    """Whether the batch element the figures draw is a typical one: its guidance effect against the batch's."""
    effect = metrics.batch_guidance_effect(result.tracked, result.plain["action"])
    placed = metrics.place_in_batch(effect, context.view.look.batch_index, "guidance effect")
    return f"The charts and figures draw one batch element. {placed} Batch element (sidebar) picks another."


_frame.page("overview", body)
