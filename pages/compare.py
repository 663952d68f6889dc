"""Compare methods: naive, RTC per schedule (with and without the Jacobian), hard masking and BID from the
inspection's noise and observation."""

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st

from pages import _data, _display, _frame, _selection, _widgets
from rtc.experiments import analysis, pipeline
from rtc.numerics.methods import JACOBIAN_FREE_NOTE, METHOD_LABELS, NO_CORRECTION_NOTE

COLUMNS = {
    "label": "what it is",
    "guidance_effect": "guidance effect vs naive, median [95 % CI]",
    "guidance_cost": "guidance cost vs naive, median [95 % CI]",
    "weighted_prefix_error": "weighted prefix error",
    "boundary_jump": "jump at d",
    "frozen_max_deviation": "max deviation on frozen actions",
    "distance_to_plain": "distance to plain",
    "distance_to_rtc": "distance to RTC (exp)",
    "ms_per_chunk": "wall time per chunk (ms)",
}
UNDEFINED = "—"
BID_HELP = (
    "Plain samples BID draws and ranks by distance to the previous chunk (bid: backward coherence only, as in the "
    "paper's sweep; bid_forward: plus the forward contrast with a weak policy, below); sample 0 is the shared "
    "noise, so N = 1 gives the naive chunk. A new N compiles once."
)


def _estimate(row: Mapping[str, Any], key: str) -> str:
    """``median [low, high] (n = N)`` of a ``metrics.MedianEstimate.fields`` entry of a row; "—" where undefined."""
    if row.get(key) is None:
        return f"{UNDEFINED} (n = {row.get(f'{key}_n', 0)})"
    interval = "" if row[f"{key}_low"] is None else f" [{row[f'{key}_low']:.3f}, {row[f'{key}_high']:.3f}]"
    return f"{row[key]:.3f}{interval} (n = {row[f'{key}_n']})"


ESTIMATES = ("guidance_effect", "guidance_cost")


def table(comparison: analysis.MethodComparison) -> pd.DataFrame:
    """One row per method with readable column names; the jump is "—" where it is undefined; the guidance effect
    and cost as median [95 % interval] (n)."""
    rows = [
        {
            "method": row["method"],
            **{key: _estimate(row, key) for key in ESTIMATES if key in row},
            **{k: v for k, v in row.items() if not k.startswith(ESTIMATES)},
        }
        for row in comparison.rows
    ]
    frame = pd.DataFrame(rows)
    frame.insert(1, "label", [METHOD_LABELS.get(m, m) for m in frame["method"]])
    frame["ms_per_chunk"] = frame.pop("seconds_per_chunk") * 1e3
    if comparison.jump_reason is not None:
        frame["boundary_jump"] = UNDEFINED
    return frame.rename(columns=COLUMNS)


def body(context: _selection.Context, result: pipeline.Inspection) -> Mapping[str, Any]:
    samples = st.number_input("BID samples N", 1, analysis.MAX_BID_SAMPLES, 8, key="compare_bid_samples", help=BID_HELP)
    weak, bid_k = _widgets.bid_forward(context, st, "compare", int(samples))
    weak_args = (str(weak), _data.mtime(weak)) if weak is not None else ("", 0.0)
    with st.spinner("Sampling every method from the same noise…"):
        comparison = _data.comparison(*_frame.cache_args(context), int(samples), *weak_args, bid_k)
    extras = {"compare": comparison}
    st.subheader("Scores", help="Averaged over the batch; lower is closer to the previous chunk.")
    d = comparison.inference_delay
    st.caption(
        "Guidance effect: per sample 1 − (weighted prefix error) / (naive's, same noise), median over the batch "
        "with its distribution-free 95 % interval and n; guidance cost: per sample mean ‖chunk_i − naive_i‖ over "
        "i ≥ d, summarised alike. "
        "Weighted prefix error: Σ_h W_h ‖chunk_h − previous_h‖ with exp weights (every method scored alike); "
        f"jump at d = {d}: ‖chunk[d] − e‖, e the last action executed before the switch; distances: ‖chunk − naive‖ "
        "and ‖chunk − RTC (exp)‖ over the whole chunk; wall time: median of 5 timed runs per method in this "
        "computation (same batch, after warm-up, methods in turn), BID's growing with N."
    )
    if comparison.jump_reason is not None:
        st.caption(f"Jump at d = {d}: {UNDEFINED} (undefined: {comparison.jump_reason}).")
    st.caption(JACOBIAN_FREE_NOTE)
    if "training_time_rtc" in comparison.chunks:
        st.caption(f"Training-time RTC: {NO_CORRECTION_NOTE}.")
    else:
        trained = _data.policy(str(context.checkpoint), _data.mtime(context.checkpoint)).max_simulated_delay
        why = (
            "this policy was trained without simulated delays (rtc.training.flow.TrainConfig.max_simulated_delay)"
            if trained is None
            else f"this policy was trained with simulated delays up to {trained}, below d = {d}"
        )
        st.caption(f"Training-time RTC is not shown: {why}.")
    if weak is None:
        st.caption("BID with the forward term (bid_forward) is not shown: choose a weak policy epoch above.")
    st.dataframe(table(comparison), key="compare_table", hide_index=True)
    _display.show_page_content("compare", context, result, extras)
    return extras


_frame.page("compare", body)
