"""Many seeds: one batched RTC and naive call over many noise seeds, summarised as median and IQR bands."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from pages import _data, _ui
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


def _median_iqr(values: np.ndarray) -> str:
    finite = np.asarray(values, float)[np.isfinite(values)]
    q25, median, q75 = np.percentile(finite, [25, 50, 75]) if finite.size else (np.nan,) * 3
    return f"{median:.3f} [{q25:.3f}, {q75:.3f}]"


def _effect_table(effects: Mapping[str, Any]) -> pd.DataFrame:
    names = effects.get("names", ("plain", "rtc"))
    rows = [{"quantity": "guidance effect, median [IQR]", "value": _median_iqr(effects["effect"])}]
    if f"effect_{seeds.JACOBIAN_FREE}" in effects:
        rows.append(
            {
                "quantity": "guidance effect, RTC Jacobian-free, median [IQR]",
                "value": _median_iqr(effects[f"effect_{seeds.JACOBIAN_FREE}"]),
            }
        )
    rows += [
        *(
            {
                "quantity": f"share of seeds where {LABELS[key]} left the previous chunk's behaviour [95 % Wilson]",
                "value": f"{effects[f'left_{key}']:.2f} [{effects[f'left_{key}_low']:.2f}, "
                f"{effects[f'left_{key}_high']:.2f}]",
            }
            for key in names
        ),
        {"quantity": "threshold on the prefix distance", "value": f"{effects['threshold']:.3f}"},
        *(
            {
                "quantity": f"boundary jump, {LABELS[key]}, mean [95 % CI]",
                "value": _mean_interval(effects[f"jump_{key}"]),
            }
            for key in names
        ),
    ]
    return pd.DataFrame(rows).set_index("quantity")


def body(context: _ui.Context, result: pipeline.Inspection) -> Mapping[str, Any]:
    view = context.view
    count = st.number_input(
        "Number of seeds",
        1,
        analysis.MAX_SEEDS,
        value=16,
        step=1,
        key="seeds_count",
        help=f"Seeds {view.rtc.seed}.. sampled in one batched call (each new count compiles once). "
        f"Accepted: 1..{analysis.MAX_SEEDS}.",
    )
    jacobian_free = st.checkbox(
        "Add RTC Jacobian-free", value=False, key="seeds_jacobian_free", help=JACOBIAN_FREE_NOTE
    )
    st.caption(
        f"Seeds {view.rtc.seed}..{view.rtc.seed + int(count) - 1} on batch element {view.look.batch_index}'s "
        f"observation and previous chunk; x_t at horizon index h = {view.look.horizon_index}, "
        "one chart per chosen dimension."
    )
    with st.spinner(f"Sampling {int(count)} seeds…"):
        runs = _data.seed_runs(*_ui.cache_args(context), int(count), view.look.batch_index, jacobian_free)
    extras = {"seeds": runs}
    effects = seeds.guidance_effects(runs)
    st.subheader(f"How much guidance did, over {effects['seeds']} seeds")
    st.dataframe(_effect_table(effects), key="seeds_effects")
    st.caption(
        "Guidance effect = 1 − Σ_h W_h‖RTC_h − prev_h‖ / Σ_h W_h‖plain_h − prev_h‖ per seed (same noise). "
        "A sample left the previous chunk's behaviour when its mean distance per guided action, "
        "Σ_h W_h‖a_h − prev_h‖ / Σ_h W_h, exceeds half the median of that distance between two plain samples: "
        "it is then nearer to a typical other draw of the policy than to the previous chunk."
    )
    _ui.show_page_content("seeds", context, result, extras)
    return extras


_ui.page("seeds", body)
