"""The Streamlit app: selection parsing and run-root safety (pure), then every page through AppTest."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from rtc.app import state as app_state
from rtc.app.state import Limits, SelectionError, Target, View
from rtc.errors import PathError
from rtc.experiments.settings import LookSettings, RTCSettings
from rtc.io import export_cache, roots
from tests.conftest import DEMO_RUN
from tests.conftest import PROJECT_ROOT as PROJECT

VIEW = View()  # the defaults for the demo policy's H = 8 before a policy is loaded
APP = PROJECT / "streamlit_app.py"
PAGES = ["pages/overview.py", "pages/x_t.py", "pages/v_t.py", "pages/correction.py", "pages/error.py"]
TITLES = ["Overview", "State x_t", "Velocity v_t", "RTC correction", "Error over steps"]
LIMITS = Limits(chunk_size=8, action_dim=6)
FAST = {"steps": "4"}  # few flow steps keep the tests quick


# ---------------------------------------------------------------------------------------------
# rtc.app.state (no Streamlit)


def test_run_roots_from_the_environment(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    env = {roots.RUNS_ROOTS_ENV: os.pathsep.join([str(first), str(second), str(tmp_path / "missing")])}
    assert roots.run_roots(env) == [first.resolve(), second.resolve()]
    assert roots.run_roots({}, cwd=tmp_path) == [(PROJECT / "runs").resolve()]
    (tmp_path / "logs-bc").mkdir()
    assert roots.run_roots({}, cwd=tmp_path)[-1] == (tmp_path / "logs-bc").resolve()


def _fake_run(root: Path, name: str, epochs=(0, 2), keys=("worlds_l_grasp_easy",)) -> Path:
    for epoch in epochs:
        policies = root / name / str(epoch) / "policies"
        policies.mkdir(parents=True, exist_ok=True)
        for key in keys:
            (policies / f"{key}.pkl").write_bytes(b"not read here")
    return root / name


def test_runs_are_named_by_id_and_symlink_escapes_are_skipped(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    _fake_run(root, "inside")
    _fake_run(outside, "secret")
    (root / "link").symlink_to(outside / "secret")
    runs = roots.find_runs([root.resolve()])
    assert list(runs) == ["root/inside"]
    assert runs["root/inside"].latest_epoch == 2


def test_a_checkpoint_that_resolves_outside_the_roots_is_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    run_dir = _fake_run(root, "run", epochs=(0,))
    _fake_run(outside, "other", epochs=(0,), keys=("worlds_l_catapult",))
    target = outside / "other" / "0" / "policies" / "worlds_l_catapult.pkl"
    (run_dir / "0" / "policies" / "worlds_l_catapult.pkl").symlink_to(target)
    run = roots.find_runs([root])["root/run"]
    assert roots.checked_checkpoint(run, 0, "worlds_l_grasp_easy", [root]).name == "worlds_l_grasp_easy.pkl"
    with pytest.raises(PathError, match="points outside the configured run roots"):
        roots.checked_checkpoint(run, 0, "worlds_l_catapult", [root])


def test_level_keys_map_to_level_files(tmp_path):
    candidates = roots.level_files(roots.level_dirs({}))
    grasp = roots.find_level_file("worlds_l_grasp_easy", candidates)
    assert grasp == PROJECT / "worlds" / "l" / "grasp_easy.json"
    assert roots.find_level_file("worlds_l_catapult", candidates) == PROJECT / "worlds" / "l" / "catapult.json"
    assert roots.find_level_file("worlds_l_nowhere", candidates) is None
    # a configured folder comes first, so it can hold the paper's own version of a level
    other = tmp_path / "worlds" / "l" / "car_launch.json"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    extra = roots.level_files(roots.level_dirs({roots.LEVEL_DIRS_ENV: str(tmp_path / "worlds")}))
    assert roots.find_level_file("worlds_l_car_launch", extra) == other.resolve()


def test_a_link_with_unknown_run_epoch_or_level_falls_back_with_notices(tmp_path):
    runs = roots.find_runs([_fake_run(tmp_path, "r", keys=("worlds_l_a", "worlds_l_grasp_easy")).parent])
    target, notices = app_state.parse_target({"run": "r/../../etc", "epoch": "x", "level": "worlds_l_b"}, runs)
    assert target == Target(next(iter(runs)), 2, "worlds_l_grasp_easy")
    assert len(notices) == 3 and "is refused" in notices[0]
    assert "is not an integer" in notices[1] and "has no policy" in notices[2]
    exact, none = app_state.parse_target({"run": target.run, "epoch": "0", "level": "worlds_l_a"}, runs)
    assert exact == Target(target.run, 0, "worlds_l_a") and none == []


def test_view_round_trips_through_the_url():
    view = View(RTCSettings("linear", 2, 4, 7, 2.5, 11, 3), LookSettings(2, 5, (4, 1)))
    query = app_state.to_query(Target("runs/demo", 1, "worlds_l_grasp_easy"), view)
    parsed, notices = app_state.parse_view(query, LIMITS)
    assert (parsed, notices) == (view, [])


def test_refused_values_in_a_link_fall_back_one_by_one():
    query = {"schedule": "cubic", "d": "6", "s": "3", "steps": "abc", "w": "-1", "b": "16", "dims": "0,9", "h": "2"}
    view, notices = app_state.parse_view(query, LIMITS)
    default = app_state.default_view(LIMITS)
    assert view == default.replace(horizon_index=2)
    assert len(notices) == 6
    assert any("execute horizon s=3 is out of range" in n for n in notices)
    assert all(n.endswith("using the default") for n in notices)


def test_check_view_refuses_and_warns():
    assert app_state.check_view(app_state.default_view(LIMITS), LIMITS) == []  # the default is in the paper's range
    doc = app_state.preset_view("Tracking-doc example (d=3, s=6, 20 steps, w_max=5)", VIEW.replace(seed=4), LIMITS)
    rtc = doc.rtc
    assert (rtc.inference_delay, rtc.execute_horizon, rtc.num_flow_steps, rtc.max_guidance_weight, rtc.seed) == (
        3,
        6,
        20,
        5.0,
        4,
    )
    assert "get no guidance" in app_state.check_view(doc, LIMITS)[0]
    assert app_state.check_view(VIEW.replace(inference_delay=2, execute_horizon=4), LIMITS) == []
    with pytest.raises(SelectionError, match="execute horizon s=2 is out of range"):
        app_state.check_view(VIEW.replace(inference_delay=4, execute_horizon=2), LIMITS)
    with pytest.raises(SelectionError, match="batch element=3 is out of range"):
        app_state.check_view(VIEW.replace(batch_size=2, batch_index=3), LIMITS)
    with pytest.raises(SelectionError, match="no action dimension chosen"):
        app_state.check_view(VIEW.replace(action_dim_indices=()), LIMITS)


def test_schedule_note_explains_when_schedules_coincide():
    assert "every schedule gives the same weights" in app_state.schedule_note(
        VIEW.replace(inference_delay=3, execute_horizon=6), LIMITS
    )
    assert app_state.schedule_note(app_state.default_view(LIMITS), LIMITS) is None
    assert app_state.default_view(Limits(chunk_size=16, action_dim=2)).rtc.execute_horizon == 8


def test_file_stem_is_safe_and_telling():
    stem = app_state.file_stem(Target("runs/demo", 1, "worlds_l_grasp_easy"), VIEW.replace(max_guidance_weight=2.5))
    assert stem == "demo_e1_grasp_easy_exp_d2_s4_n20_w2p5_seed0_sameobs"
    protocol_view = VIEW.replace(max_guidance_weight=2.5, situation="protocol")
    assert app_state.file_stem(Target("runs/demo", 1, "worlds_l_grasp_easy"), protocol_view).endswith("seed0")


# ---------------------------------------------------------------------------------------------
# AppTest


@pytest.fixture
def demo_roots(monkeypatch):
    assert (DEMO_RUN / "1" / "policies").is_dir() or any(DEMO_RUN.glob("*/policies")), "the demo run is missing"
    monkeypatch.delenv(roots.RUNS_ROOTS_ENV, raising=False)
    monkeypatch.delenv(roots.LEVEL_DIRS_ENV, raising=False)


def _app(query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=600)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    return at.run()


def _assert_drawn(at: AppTest, title: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.main.title] == [title]
    assert at.get("vega_lite_chart"), f"{title}: no interactive chart"
    assert at.main.get("image"), f"{title}: no figure"
    assert len(at.main.get("download_button")) == 2


def _chart_data(at: AppTest):
    proto = at.get("vega_lite_chart")[0].proto
    return pa.ipc.open_stream(io.BytesIO(proto.datasets[0].data.data)).read_pandas()


def _visit_every_page(at: AppTest) -> None:
    _assert_drawn(at, TITLES[0])
    for path, title in zip(PAGES[1:], TITLES[1:], strict=True):
        at.switch_page(path).run()
        _assert_drawn(at, title)


def test_every_page_runs_on_the_demo_run(demo_roots):
    at = _app(FAST)
    assert at.sidebar.selectbox(key="w_run").value == "runs/demo"
    assert at.sidebar.selectbox(key="w_epoch").value == max(int(p.name) for p in DEMO_RUN.iterdir() if p.name.isdigit())
    _visit_every_page(at)


def test_every_run_of_the_script_checks_the_compiled_programs(demo_roots, monkeypatch):
    """The memory-mapping guard runs at every rerun, not once per process (setup_process is cached)."""
    calls = []
    monkeypatch.setattr(export_cache, "release_programs_when_crowded", lambda: calls.append(1))
    at = _app(FAST)
    at.run()
    assert len(calls) == 2


def test_every_page_runs_on_the_fixture_run(monkeypatch, fixture_run):
    monkeypatch.setenv(roots.RUNS_ROOTS_ENV, str(fixture_run))
    at = _app(FAST)
    assert at.sidebar.selectbox(key="w_run").value == "upstream_small_run"
    assert at.sidebar.selectbox(key="w_epoch").value == 3
    assert at.sidebar.selectbox(key="w_level").options == ["worlds_l_grasp_easy", "worlds_l_hard_lunar_lander"]
    _visit_every_page(at)


def test_landing_view_is_valid_and_the_preset_is_one_click_away(demo_roots):
    at = _app(FAST)
    assert at.sidebar.radio(key="w_situation").value == "same-observation"
    assert (
        at.sidebar.number_input(key="w_inference_delay").value,
        at.sidebar.number_input(key="w_execute_horizon").value,
    ) == (
        2,
        4,
    )
    assert not at.sidebar.warning and not at.sidebar.info  # no warning, no "schedules coincide" note
    labels = [m.label for m in at.main.get("metric")]
    assert labels[:2] == ["Guidance effect", "Guidance cost"]
    effect = at.main.get("metric")[0]
    assert 0 < float(effect.value) <= 1
    # the default batch gives the effect an interval: 16 samples, the median's 95 % interval beside it
    assert at.sidebar.number_input(key="w_batch_size").value == 16
    low, high = (float(x) for x in effect.proto.delta.split("[")[1].split("]")[0].split(","))
    assert low <= float(effect.value) <= high and "n = 16" in effect.proto.delta
    assert any("first block" in i.value and "unshifted" in i.value for i in at.main.info)
    # the figures draw batch element 0: the caption says where its effect stands against the batch's median
    placed = [c.value for c in at.main.caption if "The charts and figures draw one batch element" in c.value]
    assert len(placed) == 1 and "Sample 0 of 16: its guidance effect is " in placed[0], placed
    assert f"the batch's median is {float(effect.value):.3f} [{low:.3f}, {high:.3f}] (n = 16)" in placed[0]
    at.sidebar.number_input(key="w_batch_index").set_value(5).run()
    assert any("Sample 5 of 16" in c.value for c in at.main.caption)
    at.sidebar.button(key="w_preset_1").click().run()
    assert at.query_params["d"] == "3" and at.query_params["s"] == "6" and at.query_params["steps"] == "20"
    assert any("get no guidance" in w.value for w in at.sidebar.warning)
    # the first block's previous chunk is unshifted: prev[d - 1] is a planned action, the jump is defined
    jump = next(m for m in at.main.get("metric") if m.label == "Jump at d")
    assert jump.value != "—"
    at.sidebar.radio(key="w_situation").set_value("protocol").run()
    assert at.query_params["situation"] == "protocol"
    assert any("Second block" in i.value for i in at.main.info)
    jump = next(m for m in at.main.get("metric") if m.label == "Jump at d")
    assert jump.value == "—"  # a later block: prev[2] is zero padding (H - s = 2 planned actions)
    assert any("zero padding" in c.value for c in at.main.caption)
    at.sidebar.button(key="w_preset_0").click().run()
    assert at.query_params["d"] == "2" and at.query_params["s"] == "4"


def test_changing_the_schedule_changes_the_plotted_data(demo_roots):
    at = _app({**FAST, "d": "1", "s": "3"})  # guided prefix 1..4, where schedules differ
    at.switch_page("pages/x_t.py").run()
    before = _chart_data(at)
    at.sidebar.selectbox(key="w_prefix_attention_schedule").set_value("ones").run()
    _assert_drawn(at, "State x_t")
    after = _chart_data(at)
    assert at.query_params["schedule"] == "ones"
    rtc = lambda frame: frame[(frame.series == "RTC") & (frame.layer == "line")]["value"].to_numpy()  # noqa: E731
    assert rtc(before).shape == rtc(after).shape
    assert abs(rtc(before) - rtc(after)).max() > 1e-3


def test_a_deep_link_restores_its_selection(demo_roots):
    query = {
        "run": "runs/demo",
        "epoch": "0",
        "level": "worlds_l_hard_lunar_lander",
        "schedule": "linear",
        "d": "2",
        "s": "4",
        "steps": "4",
        "w": "2.5",
        "seed": "7",
        "batch": "2",
        "b": "1",
        "h": "3",
        "dims": "1,4",
    }
    at = _app(query)
    assert not at.warning, [w.value for w in at.warning]
    side = at.sidebar
    assert side.selectbox(key="w_epoch").value == 0
    assert side.selectbox(key="w_level").value == "worlds_l_hard_lunar_lander"
    assert side.selectbox(key="w_prefix_attention_schedule").value == "linear"
    values = {
        key: side.number_input(key=key).value
        for key in ("w_inference_delay", "w_execute_horizon", "w_seed", "w_batch_index")
    }
    assert values == {"w_inference_delay": 2, "w_execute_horizon": 4, "w_seed": 7, "w_batch_index": 1}
    assert side.number_input(key="w_max_guidance_weight").value == 2.5
    assert side.multiselect(key="w_action_dim_indices").value == [1, 4]
    assert {k: at.query_params[k] for k in query} == query
    _assert_drawn(at, "Overview")


def test_a_stale_link_falls_back_to_defaults_with_a_notice(demo_roots):
    at = _app({"run": "../../etc", "epoch": "99", "d": "abc", "dims": "0,17", "steps": "4"})
    notices = [w.value for w in at.main.warning]
    assert any("From the link: run '../../etc' is refused" in n for n in notices)
    assert any("action dimension=17 is out of range" in n for n in notices)
    assert at.sidebar.selectbox(key="w_run").value == "runs/demo"
    assert at.sidebar.number_input(key="w_inference_delay").value == 2  # the default for H = 8
    assert at.query_params["run"] == "runs/demo"
    assert not at.exception


def test_a_refused_setting_shows_an_error_not_a_traceback(demo_roots):
    at = _app(FAST)
    at.sidebar.number_input(key="w_inference_delay").set_value(5)
    at.sidebar.number_input(key="w_execute_horizon").set_value(3).run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert any("execute horizon s=3 is out of range; accepted: max(1, d)=5..8" in m for m in messages)
    assert not at.get("vega_lite_chart")


def test_a_level_without_a_level_file_is_explained(tmp_path, monkeypatch, fixture_run):
    policies = tmp_path / "runs" / "nowhere_run" / "0" / "policies"
    policies.mkdir(parents=True)
    shutil.copy(fixture_run / "0" / "policies" / "worlds_l_grasp_easy.pkl", policies / "worlds_l_nowhere.pkl")
    monkeypatch.setenv(roots.RUNS_ROOTS_ENV, str(tmp_path / "runs"))
    monkeypatch.delenv(roots.LEVEL_DIRS_ENV, raising=False)
    at = _app(FAST)
    assert at.sidebar.selectbox(key="w_level").value == "worlds_l_nowhere"
    assert not at.exception
    assert any("No level file for worlds_l_nowhere" in e.value for e in at.main.error)
    assert any(roots.LEVEL_DIRS_ENV in w.value for w in at.sidebar.warning)


def test_settings_changes_reuse_the_compiled_sampler(demo_roots):
    from rtc.experiments import protocol
    from rtc.io import export_cache
    from rtc.numerics import model

    at = _app({**FAST, "d": "1", "s": "3"})
    jitted = (model._realtime_jit, model._naive_jit, protocol._advance_jit, *export_cache.loaded_programs())
    compiled = [fn._cache_size() for fn in jitted]
    side = at.sidebar
    side.selectbox(key="w_prefix_attention_schedule").set_value("linear")
    side.number_input(key="w_inference_delay").set_value(2)
    side.number_input(key="w_execute_horizon").set_value(5)
    side.number_input(key="w_max_guidance_weight").set_value(2.0)
    side.number_input(key="w_seed").set_value(9).run()
    _assert_drawn(at, "Overview")
    assert at.query_params["seed"] == "9" and at.query_params["s"] == "5"
    assert [fn._cache_size() for fn in jitted] == compiled


def test_the_one_streamlit_internal_the_app_touches_still_exists():
    """``pages/_frame._through_entrypoint`` (the only place) sets ``PagesManager.uses_pages_directory`` so that a
    shared page link on a fresh server gets the sidebar. If a Streamlit upgrade renames or drops it, this fails
    here, naming the version, instead of the app silently losing its sidebar on deep links."""
    import inspect

    import streamlit
    from streamlit.runtime.pages_manager import PagesManager

    from pages import _frame

    assert isinstance(getattr(PagesManager, "uses_pages_directory", None), (bool, type(None))), (
        f"Streamlit {streamlit.__version__}: PagesManager.uses_pages_directory is gone; "
        "revisit pages/_frame._through_entrypoint"
    )
    users = [
        path.name
        for path in [*PROJECT.glob("pages/*.py"), *PROJECT.glob("rtc/*.py"), APP]
        if "uses_pages_directory" in path.read_text()
    ]
    assert users == ["_frame.py"]
    assert "uses_pages_directory" in inspect.getsource(_frame._through_entrypoint)


@pytest.mark.slow  # starts a render worker process
def test_a_pages_figure_is_drawn_by_a_render_worker_when_they_run(demo_roots, monkeypatch):
    """``_display.start_figure``: inline before the render workers start; then in a worker (same PNG) while the
    page builds its charts; a job the pool cannot do (a figure that does not pickle), or one still queued when the
    PNG is needed (every worker busy), is drawn here instead."""
    import functools
    import time

    from pages import _data, _display
    from rtc.experiments import pipeline
    from rtc.io import levels
    from rtc.io.checkpoints import load_policy, read_run
    from rtc.report import page_content, render

    policy = load_policy(read_run(DEMO_RUN).checkpoint(-1, "worlds_l_grasp_easy"))
    level = levels.open_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    result = pipeline.inspect(policy, level, RTCSettings(num_flow_steps=4, batch_size=2))
    (make,) = page_content.page_figure_makers("x_t", result, 0, 0, (0,)).values()
    inline = render.build_and_render(make, ("png",), _display.SCREEN_DPI)["png"]
    assert inline.startswith(b"\x89PNG")

    monkeypatch.setattr(_data, "running_render_pool", lambda: None)
    assert _display.start_figure(make)() == inline

    with render.render_pool(1, preload=("rtc.report.render", "rtc.report.plots")) as pool:
        submitted = []
        submit = pool.submit
        monkeypatch.setattr(pool, "submit", lambda *a, **k: submitted.append(submit(*a, **k)) or submitted[-1])
        monkeypatch.setattr(_data, "running_render_pool", lambda: pool)
        png = _display.start_figure(make)
        while not (submitted[-1].running() or submitted[-1].done()):  # the page builds its charts meanwhile
            time.sleep(0.01)
        assert png() == inline and not submitted[-1].cancelled()  # the worker drew it

        unpicklable = _display.start_figure(lambda: make())  # a lambda cannot travel to a worker: drawn here
        while not submitted[-1].done():
            time.sleep(0.01)
        assert submitted[-1].exception() is not None and unpicklable() == inline

        busy = submit(functools.partial(time.sleep, 3))  # the only worker is taken
        png = _display.start_figure(make)()
        assert png == inline and submitted[-1].cancelled()  # drawn here; the queued job withdrawn
        busy.result()
