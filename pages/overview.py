"""Overview: the level, the previous chunk, the RTC chunk and the plain chunk, and a numeric summary."""

import streamlit as st

from pages import _data, _ui
from rtc import pipeline


def body(context: _ui.Context, result: pipeline.Inspection) -> None:
    summary = result.summary
    picture, numbers = st.columns([1, 3])
    picture_slot = picture.empty()  # filled last: the first render of a level takes a second or two
    with numbers:
        first, second, third, fourth = st.columns(4)
        first.metric(
            "Weighted prefix error, RTC",
            f"{summary['weighted_prefix_error_rtc']:.3f}",
            f"plain: {summary['weighted_prefix_error_plain']:.3f}",
            delta_color="off",
            delta_arrow="off",
            help="Σ_h w_h ‖chunk_h − previous_h‖ over the prefix (lower = closer to the previous chunk).",
        )
        second.metric(
            "Final-action difference",
            f"{summary['final_action_difference']:.3f}",
            help="‖RTC chunk − plain chunk‖ over the whole chunk: how much guidance changed the result.",
        )
        third.metric(
            "Mean |correction|",
            f"{summary['mean_abs_correction']:.3f}",
            f"applied: {summary['mean_abs_applied']:.3f}",
            delta_color="off",
            delta_arrow="off",
            help="Mean size of the guidance correction over steps, indices and dims (applied = × guidance weight).",
        )
        fourth.metric(
            "Jump at d",
            f"{summary['boundary_jump_rtc']:.3f}",
            f"plain: {summary['boundary_jump_plain']:.3f}",
            delta_color="off",
            delta_arrow="off",
            help="‖chunk[d] − previous[d−1]‖: the step between the last frozen action and the first new one.",
        )
        settings = context.settings
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
    _ui.show_page_content(
        "overview",
        context,
        result,
        figure_note="The same chunks with the prefix weights per horizon index in the bottom panel.",
    )
    picture_slot.image(_data.level_picture(str(context.level_path)), caption=context.level_note, width="stretch")


_ui.page("overview", body)
