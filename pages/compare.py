"""Compare methods: naive, RTC per schedule, hard masking and BID from the inspection's noise and observation."""

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from pages import _data, _ui
from rtc import analysis, pipeline
from rtc.methods import METHOD_LABELS

COLUMNS = {
    "label": "what it is",
    "weighted_prefix_error": "weighted prefix error",
    "boundary_jump": "jump at first executed action",
    "frozen_max_deviation": "max deviation on frozen actions",
    "distance_to_plain": "distance to plain",
}


def table(comparison: analysis.MethodComparison) -> pd.DataFrame:
    """One row per method with readable column names."""
    frame = pd.DataFrame(comparison.rows)
    frame.insert(1, "label", [METHOD_LABELS.get(m, m) for m in frame["method"]])
    return frame.rename(columns=COLUMNS)


def body(context: _ui.Context, result: pipeline.Inspection) -> Mapping[str, Any]:
    samples = st.number_input(
        "BID samples N",
        1,
        analysis.MAX_BID_SAMPLES,
        value=8,
        step=1,
        key="compare_bid_samples",
        help="Plain samples BID draws and ranks by distance to the previous chunk (backward coherence only: "
        "no forward contrast with a weaker policy, as in the paper's sweep); sample 0 is the shared noise, "
        "so N = 1 gives the naive chunk. A new N compiles once.",
    )
    with st.spinner("Sampling every method from the same noise…"):
        comparison = _data.comparison(*_ui.cache_args(context), int(samples))
    extras = {"compare": comparison}
    st.subheader("Scores", help="Averaged over the batch; lower is closer to the previous chunk.")
    st.caption(
        "Weighted prefix error: Σ_h W_h ‖chunk_h − previous_h‖ with exp weights (every method scored alike); "
        f"jump: ‖chunk[d] − previous[d−1]‖ at d = {comparison.inference_delay}; distance to plain: ‖chunk − naive‖."
    )
    st.dataframe(table(comparison), key="compare_table", hide_index=True)
    _ui.show_analysis("compare", context, result, extras)
    return extras


_ui.page("compare", body)
