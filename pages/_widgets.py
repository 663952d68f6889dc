"""Setting widgets, drawn by iterating the settings' declarations (``rtc.experiments.settings``).

Label, range, step, choices, captions and help of every widget come from the fields' ``Spec``; the run sidebar
(``streamlit_app.py``), the trace sidebar (``pages/_traces.py``) and the Sweep page only say which settings and
where. A widget's session-state key is ``<prefix>_<field name>`` (``w_inference_delay``; ``wt_action_dim_indices``
for the trace sidebar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import streamlit as st

from rtc.experiments.fields import Bounds, Setting, by_name
from rtc.experiments.settings import RolloutSettings


def key(setting: Setting, prefix: str = "w") -> str:
    return f"{prefix}_{setting.name}"


def _to_widget(setting: Setting, value: Any) -> Any:
    return list(value) if setting.kind is tuple and not isinstance(value, str) else value


def _from_widget(setting: Setting, value: Any) -> Any:
    if setting.kind is tuple and not isinstance(value, str):
        return tuple(value)
    return float(value) if setting.kind is float else value


def store(values: Mapping[str, Any], settings: Iterable[Setting], prefix: str = "w") -> None:
    """Put ``values`` (by field name) into the widgets of ``settings`` (before they are drawn)."""
    for setting in settings:
        st.session_state[key(setting, prefix)] = _to_widget(setting, values[setting.name])


def read(settings: Iterable[Setting], prefix: str = "w") -> dict[str, Any]:
    """The widgets' values by field name."""
    return {s.name: _from_widget(s, st.session_state[key(s, prefix)]) for s in settings}


def _clamp(setting: Setting, bounds: Bounds, prefix: str, notices: list[str] | None) -> None:
    """Bring a stored value inside the widget's range (the policy may have changed), with a notice."""
    state, name = st.session_state, key(setting, prefix)
    if setting.widget not in ("number", "multiselect") or setting.options:
        return
    low, high = setting.bounds(bounds, app=True)
    high = float("inf") if high is None else high
    value = state[name]
    if setting.kind is tuple:
        kept = [v for v in value if low <= v <= high]
        clamped = kept if kept or not value else list(setting.default_for(bounds))
    else:
        clamped = min(max(value, low), high)
    if clamped != value:
        if notices is not None:
            notices.append(
                f"{setting.message_name} {value} -> {clamped} (accepted: {setting.range_text(bounds, True)})"
            )
        state[name] = clamped


def _draw_one(setting: Setting, container: Any, bounds: Bounds, name: str, format_item: Callable[[Any], str]) -> None:
    help_text = setting.help_text(bounds, app=True)
    choices = setting.options or setting.words
    if setting.widget == "number":
        low, high = setting.bounds(bounds, app=True)
        container.number_input(setting.label, low, high, step=setting.step, key=name, help=help_text)
    elif setting.widget == "select":
        container.selectbox(setting.label, choices, key=name, help=help_text, format_func=_caption_of(setting))
    elif setting.widget == "radio":
        container.radio(setting.label, choices, key=name, horizontal=True, help=help_text)
    elif setting.widget == "multiselect":
        low, high = setting.bounds(bounds, app=True)
        items = list(choices) or list(range(low, high + 1))
        container.multiselect(setting.label, items, key=name, format_func=format_item, help=help_text)
    else:
        raise ValueError(f"setting {setting.name} has no widget kind {setting.widget!r}")
    if setting.captions and setting.widget == "radio":
        container.caption(setting.captions[st.session_state[name]])


def _caption_of(setting: Setting) -> Callable[[Any], str]:
    """A select's option as shown: its caption where the declaration gives one (``all: every s with ...``)."""
    captions = setting.captions or {}
    return lambda option: captions.get(option, str(option))


def draw(
    settings: Iterable[Setting],
    bounds: Callable[[], Bounds],
    prefix: str = "w",
    notices: list[str] | None = None,
    format_item: Callable[[Any], str] = lambda a: f"dim {a}",
) -> None:
    """Draw the widgets of ``settings`` in order: number inputs two to a row, the others full width.
    ``bounds()`` is asked before each widget, so a range can follow a widget drawn above it (the batch element
    follows the batch size)."""
    columns, column = None, 0
    for setting in settings:
        current = bounds()
        _clamp(setting, current, prefix, notices)
        if setting.widget == "number":
            if columns is None:
                columns, column = st.columns(2), 0
            container, column = columns[column % 2], column + 1
        else:
            columns, container = None, st
        _draw_one(setting, container, current, key(setting, prefix), format_item)


def number(
    setting: Setting,
    container: Any,
    name: str,
    value: Any,
    bounds: Bounds = Bounds(),
    cap: Any = None,
) -> Any:
    """A number input for one setting outside the sidebar (a page's own): label, range and help declared;
    ``cap`` lowers the upper bound where a page keeps its work short."""
    low, high = setting.bounds(bounds, app=True)
    high = high if cap is None else min(high, cap)
    value = min(max(value, low), high)
    help_text = f"{setting.help} Accepted here: {low}..{high}."
    return container.number_input(setting.label, low, high, value=value, step=setting.step, key=name, help=help_text)


def bid_forward(context: Any, container: Any, prefix: str, samples: int) -> tuple[Path | None, int]:
    """BID's forward term: the weak policy's epoch (``weak_epoch``) and k (``bid_k`` row, at most ``samples``).
    Returns ``(weak checkpoint, k)``."""
    left, right = container.columns(2)
    weak = weak_epoch(context, left, prefix)
    k = number(by_name(RolloutSettings)["bid_k"], right, f"{prefix}_bid_k", min(2, samples), cap=samples)
    return weak, int(k)


def weak_epoch(context: Any, container: Any, prefix: str) -> Path | None:
    """The weak policy of BID's forward term: an earlier checkpoint of the selected run and level ("none" leaves
    BID backward-only), as its checkpoint path, or None."""
    run, level, epoch = context.run, context.target.level, context.run.resolve_epoch(context.target.epoch)
    earlier = [e for e in sorted(run.epochs) if e < epoch and level in run.epochs[e]]
    weak = container.selectbox(
        "BID weak policy (epoch)",
        [None, *earlier],
        index=0,
        format_func=lambda e: "none (backward only)" if e is None else f"epoch {e}",
        key=f"{prefix}_bid_weak_epoch",
        help="An earlier checkpoint of this run whose samples BID's forward term steers away from "
        "(method bid_forward); the policy's k samples nearest the previous chunk are the positive set, the weak "
        "policy's k nearest the negative set. " + ("" if earlier else "This run has no earlier epoch for this level."),
    )
    return None if weak is None else run.checkpoint(weak, level)
