"""Many seeds: one batched RTC and naive call over many noise seeds, summarised as median and IQR bands."""

from collections.abc import Mapping
from typing import Any

import streamlit as st

from pages import _data, _ui
from rtc import analysis, pipeline


def body(context: _ui.Context, result: pipeline.Inspection) -> Mapping[str, Any]:
    view = context.view
    count = st.number_input(
        "Number of seeds",
        1,
        analysis.MAX_SEEDS,
        value=16,
        step=1,
        key="seeds_count",
        help=f"Seeds {view.seed}.. sampled in one batched call (each new count compiles once). "
        f"Accepted: 1..{analysis.MAX_SEEDS}.",
    )
    st.caption(
        f"Seeds {view.seed}..{view.seed + int(count) - 1} on batch element {view.batch_index}'s observation "
        f"and previous chunk; x_t at horizon index h = {view.horizon_index}, one chart per chosen dimension."
    )
    with st.spinner(f"Sampling {int(count)} seeds…"):
        runs = _data.seed_runs(*_ui.cache_args(context), int(count), view.batch_index)
    extras = {"seeds": runs}
    _ui.show_analysis("seeds", context, result, extras)
    return extras


_ui.page("seeds", body)
