"""The settings' declarations are the one source of every setting: each consumer (the app's View, URL, widgets, the
command lines, validation, descriptions and file names) covers every declared field with the field's values, so a
field a consumer misses fails here; the library's, the command line's and the app's sweep defaults are one."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtc.app import state as app_state
from rtc.app.state import LOOK, VIEW, Limits, SelectionError, Target, View
from rtc.commands import sweep as sweep_cli
from rtc.commands import visualize as cli
from rtc.errors import SettingsError
from rtc.experiments import settings as declared
from rtc.experiments.fields import SPEC, Bounds, Setting, settings_of
from rtc.experiments.rollout import RolloutSettings
from rtc.experiments.settings import LookSettings, RTCSettings, SweepSettings
from tests.app.test_app import _app, demo_roots  # noqa: F401 (the fixture)

CLASSES = (RTCSettings, LookSettings, RolloutSettings, SweepSettings)
EVERY = tuple(s for cls in CLASSES for s in settings_of(cls))
SWEEP_FLAGS = tuple(s for cls in (SweepSettings, RolloutSettings) for s in settings_of(cls) if s.sweep_flag)

LIMITS = Limits(chunk_size=8, action_dim=6)
TARGET = Target("runs/demo", 1, "worlds_l_grasp_easy")


def _base() -> View:
    """The default view with a batch of 4, so every setting has another accepted value."""
    return app_state.default_view(LIMITS).replace(batch_size=4)


def _other_valid(setting: Setting, view: View, limits: Limits = LIMITS):
    """A value of ``setting`` other than the view's that the app accepts."""
    current = view.value(setting)
    if setting.options:
        return next(o for o in setting.options if o != current)
    low, high = setting.bounds(limits.bounds(view), app=True)
    if setting.kind is tuple:
        return (high, low)
    if setting.kind is float:
        return 2.5 if current != 2.5 else 1.5
    return next(v for v in (low, high, low + 1) if v != current)


def _outside(setting: Setting, bounds: Bounds, app: bool = False):
    """A value ``setting`` refuses: past its upper bound, or below its lower one when it has none (or not known)."""
    if setting.options:
        bad = "no-such-choice"
        return (bad,) if setting.kind is tuple else bad
    low, high = setting.bounds(bounds, app)
    value = (high + 1) if high is not None else (low - 1)
    return (value,) if setting.kind is tuple else setting.kind(value)


def test_every_field_is_declared_once_with_a_spec():
    for cls in CLASSES:
        undeclared = [f.name for f in dataclasses.fields(cls) if SPEC not in f.metadata]
        assert undeclared == (["template"] if cls is SweepSettings else []), cls.__name__
    for attr, group in (("url", VIEW), ("flag", VIEW), ("sweep_flag", SWEEP_FLAGS)):
        values = [getattr(s, attr) for s in group if getattr(s, attr)]
        assert len(values) == len(set(values)), attr
    assert len({s.name for s in VIEW}) == len(VIEW)  # a view's settings are named apart (View.replace)
    for setting in EVERY:
        assert setting.label and setting.help.endswith("."), setting.name
        assert setting.url is None or setting.widget, setting.name
        assert setting.kind in (int, float, str, tuple) and setting.item in (int, float, str)
        assert not setting.options or setting.item is str, setting.name
        assert setting.item is not str or setting.options or setting.name == "levels", setting.name
        assert setting.default is not None or setting.policy_default is not None, setting.name
    # shared settings are one declaration: the inspection's and the rollout's delay, flow steps, ... are the same Spec
    rtc, rollout_ = {s.name: s for s in settings_of(RTCSettings)}, {s.name: s for s in settings_of(RolloutSettings)}
    for name in set(rtc) & set(rollout_):
        assert rtc[name].spec is rollout_[name].spec, name
    assert set(declared.SECTIONS.values()) == {("RTC settings", RTCSettings), ("What to look at", LookSettings)}


def test_the_view_composes_the_settings():
    assert [f.name for f in dataclasses.fields(View)] == ["rtc", "look"]
    assert settings_of(RTCSettings) + settings_of(LookSettings) == VIEW
    default = app_state.default_view(LIMITS)
    bounds = Bounds(LIMITS.chunk_size, LIMITS.action_dim)
    assert isinstance(default.rtc, RTCSettings) and isinstance(default.look, LookSettings)
    for setting in VIEW:
        assert default.value(setting) == setting.default_for(bounds), setting.name
    # values computed from the policy: d and s from default_timing, the dims clipped to the action dim
    assert RTCSettings().inference_delay is None and RTCSettings().execute_horizon is None
    filled = RTCSettings().for_chunk_size(16)
    assert (filled.inference_delay, filled.execute_horizon) == declared.default_timing(16)
    assert app_state.default_view(Limits(8, 2)).look.action_dim_indices == (0, 1)


@pytest.mark.parametrize("setting", settings_of(RolloutSettings), ids=lambda s: s.name)
def test_every_rollout_setting_is_validated_by_rollout_settings(setting):
    bad = _outside(setting, Bounds(chunk_size=8, delay=RolloutSettings().inference_delay))
    with pytest.raises(SettingsError, match=setting.message_name) as caught:
        dataclasses.replace(RolloutSettings(), **{setting.name: bad}).validate(8)
    assert "accepted" in str(caught.value) or "choose one of" in str(caught.value)


@pytest.mark.parametrize("setting", [s for s in settings_of(SweepSettings) if s.name != "levels"], ids=lambda s: s.name)
def test_every_sweep_setting_is_validated_by_sweep_settings(setting):
    bad = _outside(setting, Bounds())
    with pytest.raises(SettingsError, match=setting.message_name) as caught:
        dataclasses.replace(SweepSettings(), **{setting.name: bad}).validate()
    assert "accepted" in str(caught.value) or "choose one of" in str(caught.value)


def test_every_view_setting_is_in_the_url_and_read_back():
    default = _base()
    query = app_state.to_query(TARGET, default)
    assert set(query) == set(app_state.TARGET_PARAMS) | {s.url for s in VIEW}
    for setting in VIEW:
        changed = default.replace(**{setting.name: _other_valid(setting, default)})
        assert app_state.to_query(TARGET, changed)[setting.url] == setting.format(changed.value(setting))
        assert app_state.parse_view(app_state.to_query(TARGET, changed), LIMITS) == (changed, []), setting.name
    look = app_state.trace_query("t.npz", default)
    assert set(look) == {"trace"} | {s.url for s in LOOK}


def test_every_view_setting_is_validated_with_a_message_naming_the_value():
    default = _base()
    for setting in VIEW:
        bad = _outside(setting, LIMITS.bounds(default), app=True)
        with pytest.raises(SelectionError, match=f"{setting.message_name}") as caught:
            app_state.check_view(default.replace(**{setting.name: bad}), LIMITS)
        text = str(caught.value)
        assert str(bad[0] if isinstance(bad, tuple) else bad).strip("'") in text and "accepted" in text
        # a link with that value falls back to the default, with a notice
        view, notices = app_state.parse_view({"batch": "4", setting.url: setting.format(bad)}, LIMITS)
        assert len(notices) == 1 and notices[0].endswith("using the default"), setting.name
        assert view.value(setting) == app_state.default_view(LIMITS).value(setting)


@pytest.mark.parametrize("setting", settings_of(RTCSettings), ids=lambda s: s.name)
def test_every_inspection_setting_is_validated_by_rtc_settings(setting):
    settings_ = RTCSettings().for_chunk_size(8)
    bad = _outside(setting, Bounds(chunk_size=8, delay=settings_.inference_delay))
    with pytest.raises(SettingsError, match=setting.message_name) as caught:
        dataclasses.replace(settings_, **{setting.name: bad}).validate(8)
    assert "accepted" in str(caught.value) or "choose one of" in str(caught.value)


@pytest.mark.parametrize("setting", settings_of(LookSettings), ids=lambda s: s.name)
def test_every_look_setting_is_validated_by_look_settings(setting):
    bad = _outside(setting, Bounds(8, 6, 4))
    with pytest.raises(SettingsError, match=setting.message_name):
        dataclasses.replace(LookSettings(), **{setting.name: bad}).validate(8, 6, 4)
    LookSettings().validate(8, 6, 4)


def test_describe_and_file_stem_cover_their_settings():
    default = _base()
    described = [s for s in VIEW if s.describe]
    stemmed = [s for s in VIEW if s.stem]
    assert described and stemmed
    for setting in VIEW:
        changed = default.replace(**{setting.name: _other_valid(setting, default)})
        assert (app_state.describe(TARGET, changed) != app_state.describe(TARGET, default)) == (setting in described)
        assert (app_state.file_stem(TARGET, changed) != app_state.file_stem(TARGET, default)) == (setting in stemmed)
    assert app_state.describe(TARGET, default) == (
        "runs/demo · epoch 1 · worlds_l_grasp_easy · exp schedule, d=2, s=4, 20 flow steps, w_max=5, seed 0, "
        "batch 4, same-observation situation"
    )


def _actions(parser) -> dict[str, object]:
    return {option: action for action in parser._actions for option in action.option_strings}


def test_rtc_visualize_has_a_flag_per_declared_flag_with_its_values():
    actions = _actions(cli.build_parser())
    declared_flags = [s for s in VIEW if s.flag]
    assert {s.name for s in settings_of(RTCSettings)} <= {s.name for s in declared_flags}
    for setting in declared_flags:
        action = actions[setting.flag]
        assert action.dest == setting.name
        assert tuple(action.choices or ()) == (() if setting.kind is tuple else setting.options)
        assert setting.help in action.help
        if setting.options or setting.kind is tuple:
            continue
        assert action.type is setting.kind
        assert setting.range_text() in action.help
    args = cli.build_parser().parse_args(["run"])
    settings_ = cli.settings_from_args(args, 8)
    for setting in settings_of(RTCSettings):  # a flag left out gives the declared default for the policy
        assert getattr(settings_, setting.name) == setting.default_for(Bounds(chunk_size=8)), setting.name
    assert args.action_dim_indices == list(LookSettings().action_dim_indices)


def test_rtc_sweep_has_a_flag_per_declared_sweep_flag_checked_by_its_declaration(tmp_path):
    parser = sweep_cli.build_parser()
    actions = _actions(parser)
    assert {s.sweep_flag for s in SWEEP_FLAGS} >= {"--methods", "--delays", "--episodes", "--action-noise"}
    for setting in SWEEP_FLAGS:
        action = actions[setting.sweep_flag]
        assert action.default is None and setting.help in action.help  # None: a preset or the declaration fills in
        assert action.type is (
            str if setting.kind is tuple and (setting.words or setting.item is str) else setting.item
        )
        if setting.name == "levels":  # any key; the run says which it has
            continue
        bad = _outside(setting, Bounds())
        argv = ["run", "--out", str(tmp_path), setting.sweep_flag, *map(str, bad if setting.kind is tuple else [bad])]
        with pytest.raises(SettingsError, match=f"{setting.sweep_flag} .* accepted|choose one of") as caught:
            sweep_cli.sweep_settings(parser.parse_args(argv))
        assert setting.sweep_flag in str(caught.value)


def _page_sweep_settings(at) -> SweepSettings:
    """The settings the Sweep page's widgets hold (every rtc-sweep flag but --levels), as the page builds them."""
    kinds = {"multiselect": at.multiselect, "select": at.selectbox, "number": at.number_input}
    values: dict[type, dict] = {SweepSettings: {}, RolloutSettings: {}}
    for setting in SWEEP_FLAGS:
        if setting.name == "levels":
            continue
        widget = kinds[setting.widget](key=f"sweep_{setting.name}")
        assert widget.label == setting.label and setting.help in widget.help, setting.name
        value = widget.value
        values[setting.owner][setting.name] = tuple(value) if setting.widget == "multiselect" else value
    return SweepSettings(**values[SweepSettings], template=RolloutSettings(**values[RolloutSettings]))


def test_library_command_line_and_page_share_the_sweep_defaults(demo_roots):  # noqa: F811 (the fixture)
    parser = sweep_cli.build_parser()
    from_flags = sweep_cli.sweep_settings(parser.parse_args(["run", "--out", "x"]))
    at = _app({"steps": "4"})
    at.switch_page("pages/sweep.py").run()
    assert not at.exception and [t.value for t in at.main.title] == ["Sweep"]
    assert from_flags == SweepSettings() == _page_sweep_settings(at) == declared.SWEEP_PRESETS["paper"].settings
    # the paper's protocol, as the paper states it
    paper = SweepSettings()
    assert paper.methods == ("naive", "rtc_exp", "hard_masking", "bid") and paper.delays == (0, 1, 2, 3, 4)
    assert paper.execute_horizon_rule == "all" and paper.levels == ()
    template = paper.template
    assert (template.num_episodes, template.bid_samples, template.action_noise) == (2048, 16, 0.1)
    assert (template.num_flow_steps, template.episode_steps, template.max_guidance_weight) == (5, 256, 5.0)
    # each default is shown in its flag's help
    actions = _actions(parser)
    for setting in SWEEP_FLAGS:
        value = getattr(paper if setting.owner is SweepSettings else template, setting.name)
        if value != ():
            assert f"Default: {setting.format(value).replace(',', ' ')}." in actions[setting.sweep_flag].help


def test_sweep_presets_resolve_and_flags_override_them():
    parser = sweep_cli.build_parser()
    quick = declared.SWEEP_PRESETS["quick"].settings
    assert sweep_cli.sweep_settings(parser.parse_args(["run", "--out", "x", "--preset", "quick"])) == quick
    assert quick.levels == ("worlds_l_grasp_easy",) and quick.methods == ("naive", "rtc_exp")
    assert (quick.delays, quick.execute_horizon_rule, quick.template.num_episodes) == ((0, 2, 4), "min", 64)
    assert len(quick.points(8)) == 6
    argv = ["run", "--out", "x", "--preset", "quick", "--episodes", "8", "--action-noise", "0", "--delays", "1"]
    chosen = sweep_cli.sweep_settings(parser.parse_args(argv))
    assert chosen == dataclasses.replace(
        quick, delays=(1,), template=dataclasses.replace(quick.template, num_episodes=8, action_noise=0.0)
    )
    assert "min" in declared.SWEEP_PRESETS["quick"].help  # the measured time is in its help
    for name, preset in declared.SWEEP_PRESETS.items():
        preset.settings.validate()
        assert name in actions_help(parser) and preset.help in actions_help(parser)
    with pytest.raises(SettingsError, match="--preset 'slow' is not accepted; choose one of paper, quick"):
        sweep_cli.sweep_settings(parser.parse_args(["run", "--out", "x", "--preset", "slow"]))


def actions_help(parser) -> str:
    return _actions(parser)["--preset"].help


def test_inspection_presets_resolve_in_the_app_and_the_command_line():
    assert set(cli.build_parser().parse_args(["run"]).__dict__) >= {"preset"}
    for name, preset in declared.INSPECTION_PRESETS.items():
        from_cli = cli.settings_from_args(cli.build_parser().parse_args(["run", "--preset", name, "--seed", "3"]), 8)
        in_app = app_state.preset_view(preset.label, app_state.default_view(LIMITS).replace(seed=3), LIMITS)
        assert in_app.rtc == from_cli, name
        filled = preset.settings.for_chunk_size(8)
        assert all(getattr(from_cli, k) == getattr(filled, k) for k in preset.sets) and from_cli.seed == 3
    doc = RTCSettings.tracking_doc_preset()
    assert (doc.inference_delay, doc.execute_horizon, doc.num_flow_steps, doc.max_guidance_weight) == (3, 6, 20, 5.0)
    assert declared.TRACKING_DOC_PRESET == {
        "inference_delay": 3,
        "execute_horizon": 6,
        "num_flow_steps": 20,
        "max_guidance_weight": 5.0,
    }


def test_every_widget_is_drawn_from_its_declaration(demo_roots):  # noqa: F811 (the fixture)
    at = _app({"steps": "4"})
    assert not at.exception
    h, a = 8, 6  # the demo policy
    by_kind = {"number": at.sidebar.number_input, "select": at.sidebar.selectbox, "radio": at.sidebar.radio}
    for setting in VIEW:
        key = f"w_{setting.name}"
        if setting.widget == "multiselect":
            widget = at.sidebar.multiselect(key=key)
            assert widget.options == [f"dim {i}" for i in range(a)]
        else:
            widget = by_kind[setting.widget](key=key)
        assert widget.label == setting.label
        assert setting.help in widget.help
        if setting.widget == "number":
            bounds = Bounds(h, a, batch_size=at.sidebar.number_input(key="w_batch_size").value)
            assert (widget.min, widget.max) == setting.bounds(bounds, app=True), setting.name
        elif setting.options:
            assert tuple(widget.options) == setting.options


# ---------------------------------------------------------------------------------------------
# Properties


@st.composite
def views(draw):
    """A view the app accepts for a random policy size, drawn setting by setting from the declared ranges."""
    limits = Limits(draw(st.integers(2, 16)), draw(st.integers(1, 8)))
    values: dict[str, object] = {}
    for setting in VIEW:
        bounds = Bounds(limits.chunk_size, limits.action_dim, values.get("batch_size"), values.get("inference_delay"))
        if setting.options:
            values[setting.name] = draw(st.sampled_from(setting.options))
            continue
        low, high = setting.bounds(bounds, app=True)
        if setting.kind is tuple:
            values[setting.name] = tuple(draw(st.lists(st.integers(low, high), min_size=1, unique=True)))
        elif setting.kind is float:
            values[setting.name] = draw(st.floats(low, high, allow_nan=False))
        else:
            values[setting.name] = draw(st.integers(low, high))
    return app_state.view_of(values), limits


@given(views())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_to_query_then_parse_view_gives_the_same_view(case):
    view, limits = case
    app_state.check_view(view, limits)  # the strategy draws accepted views only
    assert app_state.parse_view(app_state.to_query(TARGET, view), limits) == (view, [])
    trace_view = app_state.trace_view(view.look, view.rtc.batch_size)
    parsed, notices = app_state.parse_trace_view(app_state.trace_query("t", view), limits, view.rtc.batch_size)
    assert (parsed, notices) == (trace_view, [])


@given(st.dictionaries(st.sampled_from([s.url for s in VIEW]), st.text(max_size=12)))
@settings(max_examples=200, deadline=None)
def test_any_link_gives_an_accepted_view_with_one_notice_per_refused_value(query):
    view, notices = app_state.parse_view(query, LIMITS)
    app_state.check_view(view, LIMITS)
    assert len(notices) <= len(query)
    assert all(n.endswith("; using the default") and "\n" not in n for n in notices)
    for setting in VIEW:
        value = view.value(setting)
        assert value == value and (not isinstance(value, float) or math.isfinite(value))
