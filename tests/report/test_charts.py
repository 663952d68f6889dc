"""Tests for rtc.report.charts: the Altair views carry exactly the tracked numbers and compile to valid Vega-Lite."""

from __future__ import annotations

import altair as alt
import jax
import numpy as np
import pytest
from flax import nnx

from rtc.numerics.model import FlowPolicy, ModelConfig
from rtc.report import charts, plots

BATCH, STEPS, DELAY, PREFIX = 2, 6, 2, 5


@pytest.fixture(scope="module")
def runs() -> tuple[dict, dict]:
    config = ModelConfig(channel_dim=16, channel_hidden_dim=32, token_hidden_dim=8, num_layers=1, action_chunk_size=8)
    policy = FlowPolicy(obs_dim=5, action_dim=6, config=config, rngs=nnx.Rngs(0))
    obs = jax.random.normal(jax.random.key(1), (BATCH, 5))
    prev = policy.action(jax.random.key(2), obs, STEPS)
    _, rtc = policy.realtime_action(jax.random.key(3), obs, STEPS, prev, DELAY, PREFIX, "linear", 5.0, True)
    _, plain = policy.action(jax.random.key(3), obs, STEPS, True)
    as_numpy = lambda tree: {k: np.asarray(v) for k, v in tree.items()}  # noqa: E731
    return as_numpy(rtc), as_numpy(plain)


def _values(chart: alt.TopLevelMixin) -> list[dict]:
    with alt.data_transformers.disable_max_rows():
        spec = chart.to_dict()  # validates against the Vega-Lite schema
    (values,) = spec["datasets"].values()
    return values


def test_steps_frame_holds_the_tracked_entries(runs):
    rtc, plain = runs
    frame = charts.steps_frame({"RTC": rtc["x_t"], "plain": plain["x_t"]}, rtc["time"], 1, [0, 4], final=None)
    assert len(frame) == 2 * STEPS * 8 * 2
    row = frame[(frame.series == "RTC") & (frame.step == 3) & (frame.h == 5) & (frame.dim == "action dim 4")]
    assert row["value"].item() == pytest.approx(float(rtc["x_t"][3, 1, 5, 4]))
    assert row["t"].item() == pytest.approx(float(rtc["time"][3]))


def test_final_action_ends_each_line_at_t_1(runs):
    rtc, _ = runs
    frame = charts.steps_frame({"RTC": rtc["x_t"]}, rtc["time"], 0, [2], final={"RTC": rtc["action"]})
    last = frame[frame.step == STEPS]
    assert (last["t"] == 1.0).all()
    np.testing.assert_allclose(last.sort_values("h")["value"], rtc["action"][0, :, 2], rtol=1e-6)


def test_x_t_chart_has_rtc_plain_and_targets_on_guided_indices_only(runs):
    rtc, plain = runs
    values = _values(charts.x_t_chart(rtc, plain, 0, [0, 1], horizon_index=2))
    targets = [v for v in values if v["layer"] == "target"]
    guided = set(np.flatnonzero(rtc["prefix_weights"] > 0).tolist())
    assert {v["h"] for v in targets} == guided
    for v in targets:
        assert v["target"] == pytest.approx(float(rtc["prev_action_chunk"][0, v["h"], int(v["dim"][-1])]))
    assert {v["series"] for v in values if v["layer"] == "line"} == {"RTC", "plain"}


def test_schedule_changes_the_charted_data(runs):
    rtc, plain = runs
    other = dict(rtc, x_t=rtc["x_t"] + 1.0)
    assert _values(charts.x_t_chart(rtc, plain, 0, [0], 0)) != _values(charts.x_t_chart(other, plain, 0, [0], 0))


@pytest.mark.parametrize("builder", ["v_t", "correction"])
def test_other_step_charts_validate(runs, builder):
    rtc, plain = runs
    if builder == "v_t":
        chart = charts.v_t_chart(rtc, plain, 1, [0, 1, 2, 3], 7)
        expected = {"RTC", "plain"}
    else:
        chart = charts.correction_chart(rtc, 1, [5], 0)
        expected = {"correction", "applied = weight × correction"}
    assert {v["series"] for v in _values(chart)} == expected


def test_error_chart_shows_total_and_guided_indices(runs):
    rtc, _ = runs
    values = _values(charts.error_chart(rtc, 1))
    totals = [v["error"] for v in values if v["series"] == "all indices"]
    np.testing.assert_allclose(totals, plots.error_magnitude(rtc, 1), rtol=1e-6)
    guided = np.flatnonzero(rtc["prefix_weights"] > 0)
    assert {v["h"] for v in values} == {-1, *guided.tolist()}


def test_guidance_weight_chart_matches_the_tracked_weight(runs):
    rtc, _ = runs
    values = _values(charts.guidance_weight_chart(rtc))
    np.testing.assert_allclose([v["guidance weight"] for v in values], rtc["guidance_weight"], rtol=1e-6)


def test_chunk_chart_marks_frozen_and_guided_regions(runs):
    rtc, plain = runs
    values = _values(charts.chunk_chart(rtc, plain["action"], 0, [3]))
    regions = {v["region"]: (v["x0"], v["x1"]) for v in values if v["layer"] == "region"}
    assert regions == {
        plots.FROZEN_LABEL: (-0.5, DELAY - 0.5),
        plots.GUIDED_LABEL: (DELAY - 0.5, PREFIX - 0.5),
        plots.PADDING_LABEL: (PREFIX - 0.5, 7.5),
    }
    (executed,) = [v for v in values if v["layer"] == "executed"]
    assert (executed["region"], executed["x0"], executed["x1"]) == (plots.EXECUTED_LABEL, DELAY - 0.5, 8 - PREFIX - 0.5)
    lines = [v for v in values if v["layer"] == "line" and v["series"] == plots.TARGET_LABEL]
    np.testing.assert_allclose([v["value"] for v in lines], rtc["prev_action_chunk"][0, :PREFIX, 3], rtol=1e-6)


def test_chunk_chart_shades_frozen_padding(runs):
    """With d = 3 > H - s = 2 the frozen index 2 lies on the previous chunk's zero padding."""
    rtc, plain = runs
    doc_example = dict(rtc, inference_delay=np.asarray(3), prefix_attention_horizon=np.asarray(2))
    values = _values(charts.chunk_chart(doc_example, plain["action"], 0, [0]))
    regions = {v["region"]: (v["x0"], v["x1"]) for v in values if v["layer"] == "region"}
    assert regions[plots.FROZEN_LABEL] == (-0.5, 1.5)
    assert regions[plots.FROZEN_PADDING_LABEL] == (1.5, 2.5)
    assert regions[plots.PADDING_LABEL] == (1.5, 7.5)
    targets = [v["i"] for v in values if v["layer"] == "line" and v["series"] == plots.TARGET_LABEL]
    assert targets == [0, 1]


def test_methods_chart_shades_like_the_figure(runs):
    rtc, plain = runs
    chunks = {"naive": plain["action"], "rtc_exp": rtc["action"]}
    values = _values(
        charts.methods_chart(
            chunks,
            rtc["prev_action_chunk"],
            1,
            [0, 2],
            PREFIX,
            inference_delay=DELAY,
            prefix_weights=rtc["prefix_weights"],
            execute_horizon=8 - PREFIX,
        )
    )
    for dim in ("dim 0", "dim 2"):
        regions = {v["region"]: (v["x0"], v["x1"]) for v in values if v["layer"] == "region" and v["dim"] == dim}
        assert regions[plots.PADDING_LABEL] == (PREFIX - 0.5, 7.5)
        (executed,) = [v for v in values if v["layer"] == "executed" and v["dim"] == dim]
        assert (executed["x0"], executed["x1"]) == (DELAY - 0.5, 8 - PREFIX - 0.5)
    prev = [v for v in values if v.get("series") == plots.TARGET_LABEL and v["dim"] == "dim 2"]
    np.testing.assert_allclose([v["value"] for v in prev], rtc["prev_action_chunk"][1, :PREFIX, 2], rtol=1e-6)
    naive = [v["value"] for v in values if v.get("series") == "naive" and v["dim"] == "dim 0"]
    np.testing.assert_allclose(naive, plain["action"][1, :, 0], rtol=1e-6)


def test_bad_indices_are_refused_with_the_range(runs):
    rtc, plain = runs
    with pytest.raises(IndexError, match="batch_index=5 is out of range; accepted 0..1"):
        charts.x_t_chart(rtc, plain, 5, [0], 0)
    with pytest.raises(IndexError, match="action dim=6"):
        charts.chunk_chart(rtc, plain["action"], 0, [6])
    with pytest.raises(ValueError, match="prefix_weights"):
        charts.error_chart(plain, 0)


def test_charts_compile_with_vega(runs):
    vl_convert = pytest.importorskip("vl_convert")
    rtc, plain = runs
    for chart in (
        charts.x_t_chart(rtc, plain, 0, [0, 1, 2], 0),
        charts.chunk_chart(rtc, plain["action"], 1, [0, 5]),
        charts.error_chart(rtc, 0),
        charts.methods_chart({"rtc_exp": rtc["action"]}, rtc["prev_action_chunk"], 0, [1], PREFIX, None, DELAY),
    ):
        with alt.data_transformers.disable_max_rows():
            svg = vl_convert.vegalite_to_svg(chart.to_dict())
        assert (svg.startswith("<svg") and "flow time" in svg) or "horizon index" in svg


def test_methods_chart_gives_each_method_its_figure_colour():
    from matplotlib.colors import to_hex

    from rtc.numerics import methods
    from rtc.report import plots_analysis

    rng = np.random.default_rng(0)
    prev = rng.normal(size=(2, 8, 6))
    chunks = {m: rng.normal(size=(2, 8, 6)) for m in methods.METHODS}
    colors = {m: plots_analysis.method_color(m) for m in chunks}
    chart = charts.methods_chart(chunks, prev, 1, [0, 3], 4, methods.METHOD_LABELS, colors=colors)
    values = _values(chart)
    label = methods.METHOD_LABELS["rtc_exp_jacobian_free"]
    drawn = sorted((v for v in values if v["series"] == label and v["dim"] == "dim 3"), key=lambda v: v["i"])
    np.testing.assert_allclose([v["value"] for v in drawn], chunks["rtc_exp_jacobian_free"][1, :, 3])
    assert len([v for v in values if v["series"] == "previous chunk (target)"]) == 2 * 4  # planned actions only
    spec = chart.to_dict()["spec"]
    layers = spec.get("layer", [spec])
    (scale,) = [layer["encoding"]["stroke"]["scale"] for layer in layers if "stroke" in layer.get("encoding", {})]
    mapping = dict(zip(scale["domain"], scale["range"], strict=True))
    assert mapping[label] == to_hex("tab:orange") == to_hex(plots_analysis.method_color("rtc_exp_jacobian_free"))
    assert mapping["previous chunk (target)"] == to_hex("tab:red")
    assert len(set(mapping.values())) == len(mapping)
