"""Guidance diagnostics: schedules' prefix weights, the guidance weight over flow time, correction vs applied."""

from collections.abc import Mapping
from typing import Any

import streamlit as st

from pages import _display, _frame, _selection
from rtc.experiments import pipeline
from rtc.numerics import diagnostics


def body(context: _selection.Context, result: pipeline.Inspection) -> Mapping[str, Any]:
    tracked, settings = result.tracked, result.settings
    d, p = int(tracked["inference_delay"]), int(tracked["prefix_attention_horizon"])
    inert = diagnostics.inert_guidance_warnings(
        d, p, settings.prefix_attention_schedule, settings.max_guidance_weight, context.limits.chunk_size
    )
    for message in inert:
        st.warning(message, icon=":material/block:")
    st.caption(
        f"d = {d}, p = H − s = {p}, schedule {settings.prefix_attention_schedule}, "
        f"w_max = {settings.max_guidance_weight:g}; correction vs applied at batch element "
        f"{context.view.look.batch_index}, horizon index {context.view.look.horizon_index}, "
        "per chosen action dimension."
    )
    extras = {"diagnostics": True}
    _display.show_page_content("diagnostics", context, result, extras)
    return extras


_frame.page("diagnostics", body)
