"""The sidebar's setting widgets, drawn by iterating the settings table (``rtc.experiments.settings``).

Label, range, step, choices, captions and help of every widget come from the table's rows; the run sidebar
(``streamlit_app.py``) and the trace sidebar (``pages/_traces.py``) only say which rows and where. A widget's
session-state key is ``<prefix>_<View field>`` (``w_delay``; ``wt_dims`` for the trace sidebar).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import streamlit as st

from rtc.experiments import settings as table


def key(setting: table.Setting, prefix: str = "w") -> str:
    return f"{prefix}_{setting.field}"


def _to_widget(setting: table.Setting, value: Any) -> Any:
    return list(value) if setting.kind is tuple else value


def _from_widget(setting: table.Setting, value: Any) -> Any:
    if setting.kind is tuple:
        return tuple(value)
    return float(value) if setting.kind is float else value


def store(values: Any, settings: Iterable[table.Setting], prefix: str = "w") -> None:
    """Put the View fields of ``values`` (a View) into the widgets of ``settings`` (before they are drawn)."""
    for setting in settings:
        st.session_state[key(setting, prefix)] = _to_widget(setting, getattr(values, setting.field))


def read(settings: Iterable[table.Setting], prefix: str = "w") -> dict[str, Any]:
    """The widgets' values by View field."""
    return {s.field: _from_widget(s, st.session_state[key(s, prefix)]) for s in settings}


def _clamp(setting: table.Setting, bounds: table.Bounds, prefix: str, notices: list[str] | None) -> None:
    """Bring a stored value inside the widget's range (the policy may have changed), with a notice."""
    state, name = st.session_state, key(setting, prefix)
    if setting.widget not in ("number", "multiselect"):
        return
    low, high = setting.bounds(bounds, app=True)
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


def _draw_one(
    setting: table.Setting, container: Any, bounds: table.Bounds, name: str, format_dim: Callable[[int], str]
) -> None:
    help_text = setting.help_text(bounds, app=True)
    if setting.widget == "number":
        low, high = setting.bounds(bounds, app=True)
        container.number_input(setting.label, low, high, step=setting.step, key=name, help=help_text)
    elif setting.widget == "select":
        container.selectbox(setting.label, setting.options, key=name, help=help_text)
    elif setting.widget == "radio":
        container.radio(setting.label, setting.options, key=name, horizontal=True, help=help_text)
    elif setting.widget == "multiselect":
        low, high = setting.bounds(bounds, app=True)
        container.multiselect(
            setting.label, list(range(low, high + 1)), key=name, format_func=format_dim, help=help_text
        )
    else:
        raise ValueError(f"setting {setting.name} has no widget kind {setting.widget!r}")
    if setting.captions:
        container.caption(setting.captions[st.session_state[name]])


def draw(
    settings: Iterable[table.Setting],
    bounds: Callable[[], table.Bounds],
    prefix: str = "w",
    notices: list[str] | None = None,
    format_dim: Callable[[int], str] = lambda a: f"dim {a}",
) -> None:
    """Draw the widgets of ``settings`` in table order: number inputs two to a row, the others full width.
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
        _draw_one(setting, container, current, key(setting, prefix), format_dim)


def number(
    setting: table.Setting,
    container: Any,
    name: str,
    value: Any,
    bounds: table.Bounds = table.Bounds(),
    cap: Any = None,
) -> Any:
    """A number input for one row outside the sidebar (a page's own settings): label, range and help from the row;
    ``cap`` lowers the upper bound where a page keeps its work short."""
    low, high = setting.bounds(bounds, app=True)
    high = high if cap is None else min(high, cap)
    value = min(max(value, low), high)
    help_text = f"{setting.help} Accepted here: {low}..{high}."
    return container.number_input(setting.label, low, high, value=value, step=setting.step, key=name, help=help_text)
