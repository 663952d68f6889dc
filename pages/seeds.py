"""Many seeds: one batched RTC and naive call over many noise seeds, summarised as median and IQR bands."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from pages import _data, _display, _frame, _selection
from rtc.experiments import analysis, pipeline
from rtc.numerics import seeds
from rtc.numerics.methods import JACOBIAN_FREE_NOTE


def _mean_interval(values: np.ndarray) -> str:
    """Mean and normal 95 % interval over the seeds where the value is defined; "—" where none is."""
    finite = np.asarray(values, float)[np.isfinite(values)]
    if not finite.size:
        return "— (undefined: the action before the switch is not a planned action of the previous chunk)"
    half = 1.96 * finite.std(ddof=1) / np.sqrt(finite.size) if finite.size > 1 else float("nan")
    return f"{finite.mean():.3f} [{finite.mean() - half:.3f}, {finite.mean() + half:.3f}] (n = {finite.size})"


LABELS = {"plain": "plain sampling", "rtc": "RTC", seeds.JACOBIAN_FREE: "RTC Jacobian-free"}


def _effect_table(effects: Mapping[str, Any], membership: Mapping[str, Any]) -> pd.DataFrame:
    names = effects.get("names", ("plain", "rtc"))
    rows = []
    for key in names[1:]:
        suffix = "" if key == "rtc" else f"_{key}"
        label = "" if key == "rtc" else f", {LABELS[key]}"
        rows.append(
            {"quantity": f"guidance effect{label}, median [95 % CI]", "value": effects[f"effect{suffix}"].text()}
        )
        rows.append({"quantity": f"guidance cost{label}, median [95 % CI]", "value": effects[f"cost{suffix}"].text()})
    if membership["reason"] is None:
        rows.append({"quantity": "behaviours among the plain samples", "value": str(membership["behaviours"])})
        rows += [
            {
                "quantity": f"share of {LABELS[key]} samples in the previous chunk's behaviour [95 % Wilson]",
                "value": f"{membership[f'stay_{key}']:.2f} [{membership[f'stay_{key}_low']:.2f}, "
                f"{membership[f'stay_{key}_high']:.2f}] (n = {membership[f'stay_{key}_n']})",
            }
            for key in names
        ]
    rows += [
        {
            "quantity": f"boundary jump, {LABELS[key]}, mean [95 % CI]",
            "value": _mean_interval(effects[f"jump_{key}"]),
        }
        for key in names
    ]
    return pd.DataFrame(rows).set_index("quantity")


def body(context: _selection.Context, result: pipeline.Inspection) -> Mapping[str, Any]:
    view = context.view
    what = f"Seeds {view.rtc.seed}.. sampled in one batched call (each new count compiles once). "
    what += f"Accepted: 1..{analysis.MAX_SEEDS}."
    count = st.number_input("Number of seeds", 1, analysis.MAX_SEEDS, 16, key="seeds_count", help=what)
    jacobian_free = st.checkbox(
        "Add RTC Jacobian-free", value=False, key="seeds_jacobian_free", help=JACOBIAN_FREE_NOTE
    )
    st.caption(
        f"Seeds {view.rtc.seed}..{view.rtc.seed + int(count) - 1} on batch element {view.look.batch_index}'s "
        f"observation and previous chunk; x_t at horizon index h = {view.look.horizon_index}, "
        "one chart per chosen dimension."
    )
    with st.spinner(f"Sampling {int(count)} seeds…"):
        runs = _data.seed_runs(*_frame.cache_args(context), int(count), view.look.batch_index, jacobian_free)
    extras = {"seeds": runs}
    effects = seeds.guidance_effects(runs)
    membership = _data.seed_behaviours(*_frame.cache_args(context), int(count), view.look.batch_index, jacobian_free)
    st.subheader(f"How much guidance did, over {effects['seeds']} seeds")
    if membership["reason"] is not None:
        st.info(f"No behaviour share: {membership['reason']}.", icon=":material/info:")
    st.dataframe(_effect_table(effects, membership), key="seeds_effects")
    st.caption(
        "Guidance effect = 1 − Σ_h W_h‖RTC_h − prev_h‖ / Σ_h W_h‖plain_h − prev_h‖ per seed (same noise), "
        "summarised as the median with its distribution-free 95 % interval (order statistics) and n; guidance cost "
        "= mean ‖RTC_i − plain_i‖ over i ≥ d per seed, summarised alike. Behaviours: k-means clusters of the plain "
        "samples on the indices where the previous chunk holds planned actions, their number chosen by the gap "
        "statistic; each sample belongs to the behaviour whose centre is nearest, and the share counts the samples "
        "in the previous chunk's behaviour (Wilson 95 % interval). With one behaviour there is no share."
    )
    _display.show_page_content("seeds", context, result, extras)
    return extras


_frame.page("seeds", body)
