"""The analysis pages through AppTest on the demo run, with few flow steps and short rollouts."""

from __future__ import annotations

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from rtc.io import roots
from rtc.numerics import metrics
from rtc.numerics.methods import JACOBIAN_FREE_NOTE, METHODS
from tests.app.test_app import DEMO_RUN, FAST, _app

CHUNK_KEY, ROLLOUTS_KEY = "rtc_open_chunk", "rtc_rollouts"  # pages._frame.CHUNK_KEY, pages.rollout.RESULTS_KEY
SHORT_STEPS = 16  # one 32-step segment: rollout and sweep share the compiled segment length


@pytest.fixture(autouse=True)
def demo_roots(monkeypatch):
    assert DEMO_RUN.is_dir(), "the demo run is missing"
    monkeypatch.delenv(roots.RUNS_ROOTS_ENV, raising=False)
    monkeypatch.delenv(roots.LEVEL_DIRS_ENV, raising=False)


def _page(path: str, title: str, query: dict[str, str] | None = None) -> AppTest:
    at = _app({**FAST, **(query or {})})
    at.switch_page(path).run()
    _assert_clean(at, title)
    return at


def _assert_clean(at: AppTest, title: str) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert [t.value for t in at.main.title] == [title]
    assert len(at.main.get("download_button")) >= 2


def test_compare_page_scores_every_method_and_bid_of_one_is_naive():
    at = _page("pages/compare.py", "Compare methods", {"d": "2", "s": "4"})
    assert at.get("vega_lite_chart") and at.main.get("image")
    frame = at.main.dataframe[0].value
    # the demo run is not trained for training-time RTC, and no weak policy is chosen (bid_forward) by default
    assert frame["method"].tolist() == [m for m in METHODS if m not in ("training_time_rtc", "bid_forward")]
    assert any("Training-time RTC is not shown" in c.value for c in at.main.caption)
    # accuracy and cost side by side: distance to RTC (0 for RTC itself) and a measured wall time for every method
    rows = frame.set_index("method")
    assert rows.loc["rtc_exp", "distance to RTC (exp)"] == 0.0
    assert rows.loc["rtc_exp_jacobian_free", "distance to RTC (exp)"] > 1e-3
    assert (rows["wall time per chunk (ms)"] > 0).all()
    assert any("Jacobian-free" in c.value and "no VJP" in c.value for c in at.main.caption)
    at.number_input(key="compare_bid_samples").set_value(1).run()
    _assert_clean(at, "Compare methods")
    frame = at.main.dataframe[0].value
    numbers = frame.set_index("method").select_dtypes("number").drop(columns="wall time per chunk (ms)")
    assert numbers.loc["bid"].to_numpy() == pytest.approx(numbers.loc["naive"].to_numpy(), abs=1e-5)


def test_compare_page_marks_an_undefined_jump_with_its_reason():
    # protocol, d = 3, s = 6: the previous chunk holds H - s = 2 planned actions, so prev[d - 1] is zero padding
    at = _page("pages/compare.py", "Compare methods", {"d": "3", "s": "6", "situation": "protocol"})
    frame = at.main.dataframe[0].value
    assert set(frame["jump at d"]) == {"—"}
    assert any("undefined" in c.value and "zero padding" in c.value for c in at.main.caption)
    # the first block: the previous chunk is the whole first chunk, so the same jump is defined
    at = _page("pages/compare.py", "Compare methods", {"d": "3", "s": "6"})
    frame = at.main.dataframe[0].value
    assert (frame["jump at d"].astype(float) > 0).all()
    # the guidance effect against naive, with its interval and n (the default batch of 16)
    effect = frame.set_index("method")["guidance effect vs naive, median [95 % CI]"]
    assert effect["naive"].startswith("0.000") and "(n = 16)" in effect["rtc_exp"] and "[" in effect["rtc_exp"]


def test_diagnostics_page_draws_and_warns_when_guidance_is_off():
    at = _page("pages/diagnostics.py", "Guidance diagnostics", {"d": "2", "s": "4"})
    assert len(at.get("vega_lite_chart")) == 3 and len(at.main.get("image")) >= 4
    assert not [w for w in at.main.warning if "inert" in w.value]
    at = _page("pages/diagnostics.py", "Guidance diagnostics", {"w": "0"})
    assert any("guidance is inert: max guidance weight is 0" in w.value for w in at.main.warning)


def test_seeds_page_draws_bands():
    at = _page("pages/seeds.py", "Many seeds", {"dims": "0"})
    assert at.number_input(key="seeds_count").value == 16
    assert len(at.get("vega_lite_chart")) == 2 and len(at.main.get("image")) == 1  # bands, guidance effect
    table = at.main.dataframe[0].value
    assert "(n = 16)" in table.loc["guidance effect, median [95 % CI]", "value"]
    assert "guidance cost, median [95 % CI]" in table.index
    assert any("over 16 seeds" in h.value for h in at.main.subheader)
    assert not any("left the previous" in q for q in table.index)
    # the multimodal demo policy (32 seeds, to be clear at 4 flow steps): behaviours found among the plain seeds,
    # and the share that stays in the previous chunk's, with its interval and n
    at.number_input(key="seeds_count").set_value(32).run()
    _assert_clean(at, "Many seeds")
    table = at.main.dataframe[0].value
    assert int(table.loc["behaviours among the plain samples", "value"]) >= 2
    stay = table.loc["share of RTC samples in the previous chunk's behaviour [95 % Wilson]", "value"]
    assert "(n = 32)" in stay and not any("No behaviour share" in i.value for i in at.main.info)
    assert "rtc_jacobian_free" not in str(at.get("vega_lite_chart")[0].proto)
    at.number_input(key="seeds_count").set_value(4)
    at.checkbox(key="seeds_jacobian_free").check().run()
    _assert_clean(at, "Many seeds")
    assert "rtc_jacobian_free" in str(at.get("vega_lite_chart")[0].proto)  # the third method's bands
    # 4 seeds are too few to find behaviours: the page says so and gives no share
    assert any("No behaviour share" in i.value and "too few" in i.value for i in at.main.info)
    table = at.main.dataframe[0].value
    assert not any(q.startswith("share of") for q in table.index)


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_rollout_page_runs_on_its_button_and_keeps_the_result():
    at = _page("pages/rollout.py", "Closed-loop rollout", {"d": "2", "s": "4"})
    assert not at.main.get("image") and any("Press Run rollout" in i.value for i in at.main.info)
    assert at.number_input(key="rollout_episodes").value == 16  # enough for a solve rate with an interval
    at.number_input(key="rollout_steps").set_value(SHORT_STEPS)
    at.button(key="rollout_run").click().run()
    _assert_clean(at, "Closed-loop rollout")
    assert "Cancel" not in [b.label for b in at.main.button]  # the job ended: its Cancel button is gone
    table = at.main.dataframe[0].value
    assert list(table.columns[:2]) == ["return", "solved"] and len(table) == 16
    # n and the Wilson 95 % interval beside the solve rate (k of 16 solved; the interval's own test works it out
    # by hand, here 0 and 16 solved are: [0, 0.19] and [0.81, 1])
    solved = int(table["solved"].sum())
    low, high = metrics.wilson_interval(solved, 16)
    expected = f"solve rate {solved / 16:.2f} (n = 16 episodes, Wilson 95 % [{low:.2f}, {high:.2f}])"
    assert any(expected in c.value for c in at.main.caption), [c.value for c in at.main.caption]
    assert len(at.main.get("image")) >= 3  # trace, animation, chunk figure(s)
    at.number_input(key="rollout_chunk").set_value(1).run()  # a rerun shows the kept result
    _assert_clean(at, "Closed-loop rollout")
    assert at.main.dataframe[0].value.equals(table)
    # the Jacobian-free variant runs in the same program and says what it is
    at.selectbox(key="rollout_method").set_value("rtc_exp_jacobian_free")
    at.button(key="rollout_run").click().run()
    _assert_clean(at, "Closed-loop rollout")
    assert any(c.value == JACOBIAN_FREE_NOTE for c in at.main.caption)
    assert len(at.main.dataframe[0].value) == 16
    assert not at.button(key="rollout_open_chunk").disabled  # guided: its chunks open in the step pages


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_sweep_page_runs_one_point():
    from rtc.experiments.settings import SWEEP_PRESETS

    at = _page("pages/sweep.py", "Sweep")  # its defaults: tests/experiments/test_settings.py (library = CLI = page)
    assert any("96 points × 2048 episodes = 196608 episodes: up to about" in c.value for c in at.main.caption)
    at.button(key="sweep_preset_quick").click().run()  # the quick preset, then less of it
    quick = SWEEP_PRESETS["quick"].settings
    assert at.number_input(key="sweep_num_episodes").value == quick.template.num_episodes
    assert any("6 points × 64 episodes = 384 episodes: up to about" in c.value for c in at.main.caption)
    at.multiselect(key="sweep_methods").set_value(["naive", "rtc_exp"])
    at.multiselect(key="sweep_delays").set_value([1])
    at.selectbox(key="sweep_execute_horizon_rule").set_value("min")
    at.number_input(key="sweep_num_episodes").set_value(2)
    at.number_input(key="sweep_episode_steps").set_value(SHORT_STEPS)
    at.button(key="sweep_run").click().run()
    _assert_clean(at, "Sweep")
    comparisons, table, rows = (frame.value for frame in at.main.dataframe[:3])
    assert rows["method"].tolist() == ["naive", "rtc_exp"] and (rows["inference_delay"] == 1).all()
    assert ((rows["solve_rate_low"] <= rows["solve_rate"]) & (rows["solve_rate"] <= rows["solve_rate_high"])).all()
    assert table.columns.tolist() == ["level", "method", "episodes", "d=1"] and set(table["episodes"]) == {"2"}
    # RTC minus naive, paired by episode: the difference of the two rows' solve rates, with its interval
    assert comparisons[["method", "baseline", "delay", "episodes"]].values.tolist() == [["rtc_exp", "naive", 1, 2]]
    diff = rows.loc[1, "solve_rate"] - rows.loc[0, "solve_rate"]
    assert comparisons.loc[0, "solve_rate_diff"] == pytest.approx(diff)
    assert comparisons.loc[0, "diff_low"] <= comparisons.loc[0, "solve_rate_diff"] <= comparisons.loc[0, "diff_high"]
    assert any("paired by episode" in c.value for c in at.main.caption)
    assert at.main.get("image") and len(at.main.get("download_button")) == 3


@pytest.mark.slow  # runs a closed loop (BID with its forward term): over 20 s
def test_sweep_page_runs_bid_forward_against_a_chosen_weak_policy(monkeypatch):
    """bid_forward needs a weak policy: the page offers the run's earlier epochs, refuses before Run without one
    (one line naming what is needed), and runs the point against the chosen epoch."""
    from tests.conftest import shared_path

    monkeypatch.setenv(roots.RUNS_ROOTS_ENV, str(shared_path("fixtures", "upstream_small_run")))
    at = _page("pages/sweep.py", "Sweep", {"d": "2", "s": "4"})
    assert at.sidebar.selectbox(key="w_run").value == "upstream_small_run"
    assert "sweep_bid_weak_epoch" not in [box.key for box in at.main.selectbox]  # asked only for bid_forward
    at.multiselect(key="sweep_methods").set_value(["bid_forward"])
    at.multiselect(key="sweep_delays").set_value([1])
    at.selectbox(key="sweep_execute_horizon_rule").set_value("min")
    at.number_input(key="sweep_num_episodes").set_value(2)
    at.number_input(key="sweep_episode_steps").set_value(SHORT_STEPS)
    at.number_input(key="sweep_bid_samples").set_value(4).run()
    weak = at.selectbox(key="sweep_bid_weak_epoch")
    assert weak.options == ["none (backward only)", "epoch 0"] and weak.value is None
    assert [e.value for e in at.main.error] == [
        "Refused: method bid_forward needs a weak policy (an earlier checkpoint of the same run: --bid-weak-epoch); "
        "none was given for upstream_small_run epoch 3 worlds_l_grasp_easy. Choose other methods, or a weak policy "
        "for bid_forward."
    ]
    assert not [b for b in at.main.button if b.key == "sweep_run"]  # nothing to run until a weak policy is chosen
    weak.set_value(0).run()
    assert not at.main.error
    at.button(key="sweep_run").click().run()
    _assert_clean(at, "Sweep")
    rows = at.main.dataframe[1].value
    assert len(rows) == 1 and rows.loc[0, "method"] == "bid_forward" and rows.loc[0, "episodes"] == 2


def test_stored_sweeps_open_with_figures_table_and_download(monkeypatch, tmp_path):
    from rtc.experiments import sweep
    from rtc.experiments.sweep import store as sweep_store

    folder = tmp_path / "paper" / "grid1"
    store = sweep_store.ResultsStore(folder)
    for level, base in (("worlds_l_a", 30), ("worlds_l_b", 10)):
        for method in ("naive", "bid"):
            for d in range(3):
                solved, episodes = base - 4 * d, 64
                low, high = sweep.wilson_interval(solved, episodes)
                stats = {"level": level, "solve_rate": solved / episodes, "solve_rate_low": low}
                stats |= {"solve_rate_high": high, "solved": solved, "switches": 100, "mean_length": 200.0}
                stats |= {"truncated": 2}
                stats |= {"mean_return": 0.1, "mean_return_low": 0.0, "mean_return_high": 0.2}
                stats |= {"mean_boundary_jump": 0.3, "mean_boundary_jump_low": 0.2, "mean_boundary_jump_high": 0.4}
                stats |= {"mean_step_size": 0.1, "mean_step_size_low": 0.05, "mean_step_size_high": 0.15}
                point = sweep.rollout.RolloutSettings(
                    method=method, inference_delay=d, execute_horizon=max(1, d), num_episodes=episodes
                )
                key = sweep_store.point_key("f" * 16, level, point)
                outcomes = np.arange(episodes) < solved
                records = {
                    "level": [level] * episodes,
                    "method": [method] * episodes,
                    "delay": [d] * episodes,
                    "execute_horizon": [max(1, d)] * episodes,
                    "episode": np.arange(episodes),
                    "seed": [0] * episodes,
                    "solved": outcomes,
                    "return": outcomes * 1.0,
                    "length": [200] * episodes,
                    "truncated": np.arange(episodes) >= episodes - 2,
                    "mean_jump": [0.3] * episodes,
                    "switches": [2] * episodes,
                }
                store.add(sweep_store.store_row(stats, key, f"{level}.json", "in-process", 1.0), records)
    store.write_comparisons("naive")
    (folder / "manifest.json").write_text('{"run": "runs/demo", "epoch": 1}')
    monkeypatch.setenv("RTC_SWEEPS_ROOTS", str(tmp_path / "paper"))
    at = _page("pages/sweep.py", "Sweep")
    at.selectbox(key="sweep_stored").set_value("paper/grid1").run()
    _assert_clean(at, "Sweep")
    assert any("12 points, 2 levels, methods bid, naive" in c.value for c in at.main.caption)
    assert any("24 of 768 episodes reached the step limit unsolved" in c.value for c in at.main.caption)
    assert len(at.main.get("image")) >= 5  # summary, differences against naive, one per-level figure per metric
    table = at.main.dataframe[-1].value
    assert table.columns.tolist() == ["level", "method", "episodes", "d=0", "d=1", "d=2"] and len(table) == 4
    assert any(b.proto.label.startswith("Download this sweep") for b in at.main.get("download_button"))


def _x_t_chart_values(at: AppTest) -> bytes:
    """The x_t chart's spec and data as sent to the browser."""
    proto = at.get("vega_lite_chart")[0].proto
    datasets = b"".join(d.SerializeToString() for d in proto.datasets)
    return proto.spec.encode() + datasets + proto.data.SerializeToString()


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_a_rollout_chunk_opens_in_the_step_pages_until_closed():
    at = _page("pages/rollout.py", "Closed-loop rollout", {"d": "2", "s": "4"})
    at.number_input(key="rollout_steps").set_value(SHORT_STEPS)
    at.button(key="rollout_run").click().run()
    at.number_input(key="rollout_chunk").set_value(1).run()
    at.button(key="rollout_open_chunk").click().run()
    _assert_clean(at, "Closed-loop rollout")
    assert any("rollout chunk 1 of episode 0" in s.value for s in at.main.success)
    opened = at.session_state[CHUNK_KEY]
    (done, _), *_ = at.session_state[ROLLOUTS_KEY].values()
    inspection = opened["inspection"]
    np.testing.assert_allclose(inspection.tracked["action"][0], done.chunks[0, 1], atol=1e-4)
    assert inspection.plain["action"].shape == inspection.tracked["action"].shape

    at.switch_page("pages/x_t.py").run()
    _assert_clean(at, "State x_t")
    banners = [i.value for i in at.main.info if "Showing rollout chunk 1 of episode 0" in i.value]
    assert banners
    chunk_values = _x_t_chart_values(at)
    assert chunk_values

    at.button(key="close_chunk").click().run()
    _assert_clean(at, "State x_t")
    assert not [i.value for i in at.main.info if "Showing rollout chunk" in i.value]
    assert CHUNK_KEY not in at.session_state
    assert _x_t_chart_values(at) != chunk_values  # the sidebar's inspection again


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("pages/compare.py", "Compare methods"),
        ("pages/diagnostics.py", "Guidance diagnostics"),
        ("pages/seeds.py", "Many seeds"),
        pytest.param("pages/rollout.py", "Closed-loop rollout", marks=pytest.mark.slow),  # a closed loop: 20 s
    ],
)
def test_analysis_pages_run_on_the_paper_format_fixture_run(monkeypatch, path, title):
    from tests.conftest import shared_path

    monkeypatch.setenv(roots.RUNS_ROOTS_ENV, str(shared_path("fixtures", "upstream_small_run")))
    at = _page(path, title, {"d": "2", "s": "4"})
    assert at.sidebar.selectbox(key="w_run").value == "upstream_small_run"
    if path.endswith("rollout.py"):
        at.number_input(key="rollout_steps").set_value(SHORT_STEPS)
        at.button(key="rollout_run").click().run()
        _assert_clean(at, title)
        assert len(at.main.dataframe[0].value) == 16  # the page's default episodes
    assert at.main.get("image")


@pytest.mark.slow  # runs a closed-loop rollout or steps Kinetix: over 10 s of the fast set's time (--durations)
def test_a_rollout_failing_midway_shows_an_error_and_keeps_nothing(monkeypatch):
    from rtc.errors import RTCError
    from rtc.experiments import rollout

    real = rollout.iterate_rollout

    def fails_after_the_first_segment(*args, **kwargs):
        progress = real(*args, **kwargs)
        yield next(progress)
        raise RTCError("simulated failure midway through the rollout (step 32 of 64)")

    at = _page("pages/rollout.py", "Closed-loop rollout", {"d": "2", "s": "4"})
    at.number_input(key="rollout_steps").set_value(2 * SHORT_STEPS)
    monkeypatch.setattr(rollout, "iterate_rollout", fails_after_the_first_segment)
    at.button(key="rollout_run").click().run()
    assert not at.exception
    assert [e.value for e in at.main.error] == ["simulated failure midway through the rollout (step 32 of 64)"]
    assert not at.session_state[ROLLOUTS_KEY] and not at.main.get("image")  # no partial result kept or drawn
    monkeypatch.setattr(rollout, "iterate_rollout", real)
    at.button(key="rollout_run").click().run()  # the page stays usable: the next run succeeds
    _assert_clean(at, "Closed-loop rollout")
    assert len(at.session_state[ROLLOUTS_KEY]) == 1
