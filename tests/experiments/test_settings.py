"""The settings table is the one declaration of every setting: each consumer (the app's View, URL, widgets, the
command lines, validation, descriptions and file names) covers every row with the row's values, so a row a consumer
misses fails here."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtc.app import state as app_state
from rtc.app.state import Limits, SelectionError, Target, View
from rtc.commands import flags
from rtc.commands import sweep as sweep_cli
from rtc.commands import visualize as cli
from rtc.errors import SettingsError
from rtc.experiments import settings as table
from rtc.experiments.pipeline import RTCSettings
from rtc.experiments.rollout import RolloutSettings
from tests.app.test_app import _app, demo_roots  # noqa: F401 (the fixture)

LIMITS = Limits(chunk_size=8, action_dim=6)
TARGET = Target("runs/demo", 1, "worlds_l_grasp_easy")


def _base() -> View:
    """The default view with a batch of 4, so every row has another accepted value."""
    return dataclasses.replace(app_state.default_view(LIMITS), batch_size=4)


def _other_valid(setting: table.Setting, view: View, limits: Limits = LIMITS):
    """A value of ``setting`` other than the view's that the app accepts."""
    current = getattr(view, setting.field)
    if setting.options:
        return next(o for o in setting.options if o != current)
    low, high = setting.bounds(limits.bounds(view), app=True)
    if setting.kind is tuple:
        return (high, low)
    if setting.kind is float:
        return 2.5 if current != 2.5 else 1.5
    return next(v for v in (low, high, low + 1) if v != current)


def _outside(setting: table.Setting, bounds: table.Bounds, app: bool = False):
    """A value ``setting`` refuses: past its upper bound, or below its lower one when it has none."""
    if setting.options:
        return "no-such-choice"
    low, high = setting.bounds(bounds, app)
    value = (high + 1) if high is not None else (low - 1)
    return (value,) if setting.kind is tuple else setting.kind(value)


def test_rows_are_consistent():
    names = [s.name for s in table.SETTINGS]
    assert len(names) == len(set(names))
    for attr in ("field", "url", "flag", "sweep_flag"):
        values = [getattr(s, attr) for s in table.SETTINGS if getattr(s, attr)]
        assert len(values) == len(set(values)), attr
    for setting in table.SETTINGS:
        assert setting.label and setting.help.endswith(".")
        assert setting.field is None or (setting.url and setting.widget), setting.name
        assert setting.kind in (int, float, str, tuple)
        assert bool(setting.options) == (setting.kind is str), setting.name
    assert {s.section for s in table.VIEW} == set(table.SECTIONS)


def test_the_view_is_the_table():
    assert [f.name for f in dataclasses.fields(View)] == [s.field for s in table.VIEW]
    default = app_state.default_view(LIMITS)
    bounds = table.Bounds(LIMITS.chunk_size, LIMITS.action_dim)
    for setting in table.VIEW:
        assert getattr(default, setting.field) == setting.default_for(bounds), setting.name
    # its RTCSettings: every inspection row, by library name
    assert default.settings() == RTCSettings(**{s.name: getattr(default, s.field) for s in table.INSPECTION})


def test_library_settings_take_their_defaults_from_the_table():
    fields = {f.name: f.default for f in dataclasses.fields(RTCSettings)}
    assert set(fields) == {s.name for s in table.INSPECTION}
    for setting in table.INSPECTION:
        expected = None if isinstance(setting.default, table.Derived) else setting.default
        assert fields[setting.name] == expected, setting.name
    filled = RTCSettings().for_chunk_size(16)
    assert (filled.inference_delay, filled.execute_horizon) == table.default_timing(16)


def test_rollout_settings_take_their_defaults_from_the_table():
    fields = {f.name: f.default for f in dataclasses.fields(RolloutSettings)}
    assert fields == {s.name: s.rollout_default for s in table.ROLLOUT}


@pytest.mark.parametrize("setting", table.ROLLOUT, ids=lambda s: s.name)
def test_every_rollout_row_is_validated_by_rollout_settings(setting):
    bad = _outside(setting, table.Bounds(chunk_size=8, delay=RolloutSettings().inference_delay))
    with pytest.raises(SettingsError, match=setting.message_name) as caught:
        dataclasses.replace(RolloutSettings(), **{setting.name: bad}).validate(8)
    assert "accepted" in str(caught.value) or "choose one of" in str(caught.value)


def test_every_view_row_is_in_the_url_and_read_back():
    default = _base()
    query = app_state.to_query(TARGET, default)
    assert set(query) == set(app_state.TARGET_PARAMS) | {s.url for s in table.VIEW}
    for setting in table.VIEW:
        changed = dataclasses.replace(default, **{setting.field: _other_valid(setting, default)})
        assert app_state.to_query(TARGET, changed)[setting.url] == setting.format(getattr(changed, setting.field))
        assert app_state.parse_view(app_state.to_query(TARGET, changed), LIMITS) == (changed, []), setting.name
    look = app_state.trace_query("t.npz", default)
    assert set(look) == {"trace"} | {s.url for s in table.LOOK}


def test_every_view_row_is_validated_with_a_message_naming_the_value():
    default = _base()
    for setting in table.VIEW:
        bad = _outside(setting, LIMITS.bounds(default), app=True)
        with pytest.raises(SelectionError, match=f"{setting.message_name}") as caught:
            app_state.check_view(dataclasses.replace(default, **{setting.field: bad}), LIMITS)
        text = str(caught.value)
        assert str(bad[0] if isinstance(bad, tuple) else bad).strip("'") in text and "accepted" in text
        # a link with that value falls back to the default, with a notice
        view, notices = app_state.parse_view({"batch": "4", setting.url: setting.format(bad)}, LIMITS)
        assert len(notices) == 1 and notices[0].endswith("using the default"), setting.name
        assert getattr(view, setting.field) == getattr(app_state.default_view(LIMITS), setting.field)


@pytest.mark.parametrize("setting", table.INSPECTION, ids=lambda s: s.name)
def test_every_inspection_row_is_validated_by_rtc_settings(setting):
    settings_ = RTCSettings().for_chunk_size(8)
    bad = _outside(setting, table.Bounds(chunk_size=8, delay=settings_.inference_delay))
    with pytest.raises(SettingsError, match=setting.message_name) as caught:
        dataclasses.replace(settings_, **{setting.name: bad}).validate(8)
    assert "accepted" in str(caught.value) or "choose one of" in str(caught.value)


def test_describe_and_file_stem_cover_their_rows():
    default = _base()
    described = [s for s in table.VIEW if s.describe]
    stemmed = [s for s in table.VIEW if s.stem]
    assert described and stemmed
    for setting in table.VIEW:
        changed = dataclasses.replace(default, **{setting.field: _other_valid(setting, default)})
        assert (app_state.describe(TARGET, changed) != app_state.describe(TARGET, default)) == (setting in described)
        assert (app_state.file_stem(TARGET, changed) != app_state.file_stem(TARGET, default)) == (setting in stemmed)
    assert app_state.describe(TARGET, default) == (
        "runs/demo · epoch 1 · worlds_l_grasp_easy · exp schedule, d=2, s=4, 20 flow steps, w_max=5, seed 0, "
        "batch 4, same-observation situation"
    )


def _actions(parser) -> dict[str, object]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_rtc_visualize_has_a_flag_per_row_with_the_rows_values():
    actions = _actions(cli.build_parser())
    rows = [s for s in table.SETTINGS if s.flag]
    assert {s.name for s in table.INSPECTION} <= {s.name for s in rows}
    for setting in rows:
        action = actions[setting.flag]
        assert action.dest == setting.name
        assert tuple(action.choices or ()) == setting.options
        assert setting.help in action.help
        if setting.options or setting.kind is tuple:
            continue
        assert action.type is setting.kind
        assert setting.range_text() in action.help
    args = cli.build_parser().parse_args(["run"])
    settings_ = cli.settings_from_args(args, 8)
    for setting in table.INSPECTION:  # a flag left out gives the table's default for the policy
        assert getattr(settings_, setting.name) == setting.default_for(table.Bounds(chunk_size=8)), setting.name


def test_rtc_sweep_has_a_flag_per_sweep_row_checked_by_the_row():
    parser = sweep_cli.build_parser()
    actions = _actions(parser)
    for setting in (s for s in table.SETTINGS if s.sweep_flag):
        action = actions[setting.sweep_flag]
        default = setting.sweep_default if setting.sweep_default is not None else setting.rollout_default
        assert action.default == default and action.type is setting.kind and setting.help in action.help
        args = parser.parse_args(["run", "--out", "x", setting.sweep_flag, str(_outside(setting, table.Bounds()))])
        with pytest.raises(SettingsError, match=f"{setting.sweep_flag} .* is out of range; accepted"):
            flags.check_flags(args, table.SETTINGS)


def test_every_widget_is_drawn_from_its_row(demo_roots):  # noqa: F811 (the fixture)
    at = _app({"steps": "4"})
    assert not at.exception
    h, a = 8, 6  # the demo policy
    by_kind = {"number": at.sidebar.number_input, "select": at.sidebar.selectbox, "radio": at.sidebar.radio}
    for setting in table.VIEW:
        key = f"w_{setting.field}"
        if setting.widget == "multiselect":
            widget = at.sidebar.multiselect(key=key)
            assert widget.options == [f"dim {i}" for i in range(a)]
        else:
            widget = by_kind[setting.widget](key=key)
        assert widget.label == setting.label
        assert setting.help in widget.help
        if setting.widget == "number":
            bounds = table.Bounds(h, a, batch_size=at.sidebar.number_input(key="w_batch_size").value)
            assert (widget.min, widget.max) == setting.bounds(bounds, app=True), setting.name
        elif setting.options:
            assert tuple(widget.options) == setting.options


# ---------------------------------------------------------------------------------------------
# Properties


@st.composite
def views(draw):
    """A view the app accepts for a random policy size, drawn row by row from the table's ranges."""
    limits = Limits(draw(st.integers(2, 16)), draw(st.integers(1, 8)))
    values: dict[str, object] = {}
    for setting in table.VIEW:
        bounds = table.Bounds(limits.chunk_size, limits.action_dim, values.get("batch_size"), values.get("delay"))
        if setting.options:
            values[setting.field] = draw(st.sampled_from(setting.options))
            continue
        low, high = setting.bounds(bounds, app=True)
        if setting.kind is tuple:
            values[setting.field] = tuple(draw(st.lists(st.integers(low, high), min_size=1, unique=True)))
        elif setting.kind is float:
            values[setting.field] = draw(st.floats(low, high, allow_nan=False))
        else:
            values[setting.field] = draw(st.integers(low, high))
    return View(**values), limits


@given(views())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_to_query_then_parse_view_gives_the_same_view(case):
    view, limits = case
    app_state.check_view(view, limits)  # the strategy draws accepted views only
    assert app_state.parse_view(app_state.to_query(TARGET, view), limits) == (view, [])
    trace_view = View(batch_size=view.batch_size, **{s.field: getattr(view, s.field) for s in table.LOOK})
    parsed, notices = app_state.parse_trace_view(app_state.trace_query("t", view), limits, view.batch_size)
    assert (parsed, notices) == (trace_view, [])


@given(st.dictionaries(st.sampled_from([s.url for s in table.VIEW]), st.text(max_size=12)))
@settings(max_examples=200, deadline=None)
def test_any_link_gives_an_accepted_view_with_one_notice_per_refused_value(query):
    view, notices = app_state.parse_view(query, LIMITS)
    app_state.check_view(view, LIMITS)
    assert len(notices) <= len(query)
    assert all(n.endswith("; using the default") and "\n" not in n for n in notices)
    for setting in table.VIEW:
        value = getattr(view, setting.field)
        assert value == value and (not isinstance(value, float) or math.isfinite(value))
