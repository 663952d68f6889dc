"""Overview: the level, the previous chunk, the RTC chunk and the plain chunk, and a numeric summary."""

import streamlit as st

from pages import _data, _traces, _ui
from rtc.experiments import pipeline
from rtc.numerics import metrics


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def body(context: _ui.Context, result: pipeline.Inspection) -> None:
    if isinstance(context, _ui.TraceContext):  # a recorded trace: no policy, level or plain twin
        _traces.overview(context, result)
        return
    summary = result.summary
    settings = result.settings
    st.info(f"**{settings.situation}** — {result.situation_label}", icon=":material/info:")
    picture, numbers = st.columns([1, 3])
    picture_slot = picture.empty()  # filled last: the first render of a level takes a second or two
    with numbers:
        effect, first, second, third, fourth = st.columns(5)
        effect.metric(
            "Guidance effect",
            _number(summary["guidance_effect"]),
            help="1 − (weighted prefix error of RTC) / (weighted prefix error of plain sampling from the same "
            "noise), both averaged over the batch: 1 = RTC met the previous chunk on the guided prefix, "
            "0 = no better than plain sampling.",
        )
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
            _number(summary["boundary_jump_rtc"]),
            f"plain: {_number(summary['boundary_jump_plain'])}",
            delta_color="off",
            delta_arrow="off",
            help="‖chunk[d] − e‖, e the last action executed before the new chunk takes over (previous[d−1] "
            "for d ≥ 1, the previous chunk's last executed action for d = 0). Undefined where e would be "
            "the previous chunk's zero padding.",
        )
        reason = metrics.boundary_jump_reason(
            settings.inference_delay,
            context.limits.chunk_size - settings.execute_horizon,
            context.limits.chunk_size,
            has_last_executed=True,
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
    _ui.show_page_content(
        "overview",
        context,
        result,
    )
    picture_slot.image(_data.level_picture(str(context.level_path)), caption=context.level_note, width="stretch")


_ui.page("overview", body)
