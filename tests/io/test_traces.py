"""RTC trace files (format 1) and LeRobot's debug-tracker layout: conversion, checks, the command line, the app."""

from __future__ import annotations

import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from streamlit.testing.v1 import AppTest

from rtc.app import state as app_state
from rtc.commands import visualize as cli
from rtc.errors import RTCError, SelectionError, TraceError
from rtc.io import roots, traces
from rtc.numerics import sampler
from rtc.report import bundle, charts, page_content, plots
from tests.app.test_app import APP
from tests.conftest import DEMO_RUN, PROJECT_ROOT, shared_path

RTC_FIXTURE = "lerobot_rtc_linear_d4_s10"
FIRST_FIXTURE = "lerobot_first_chunk"


def _fixture(name: str) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    path = shared_path("fixtures", "lerobot", f"{name}.npz")
    with np.load(path, allow_pickle=False) as raw, np.load(path.with_suffix(".truth.npz"), allow_pickle=False) as truth:
        return path, dict(raw), dict(truth)


def _relations(sample: dict[str, np.ndarray]) -> float:
    """max |x_1_pred - (x_t + (1 - t) v_t)|: our denoiser relation."""
    t = sample["time"][:, None, None, None]
    return float(np.abs(sample["x_1_pred"] - (sample["x_t"] + (1 - t) * sample["v_t"])).max())


# ---------------------------------------------------------------------------------------------
# LeRobot's recorded traces (real LeRobot 0.6.1 sampling loop and tracker)


def test_lerobot_rtc_trace_converts_to_our_convention():
    path, raw, truth = _fixture(RTC_FIXTURE)
    meta = json.loads(str(raw["meta"]))
    real = meta["action_dim"]
    trace = traces.read_trace(path)
    rtc = trace.tracked
    assert trace.is_rtc and trace.plain is None and trace.source == "lerobot"
    assert trace.shape == (meta["num_steps"], 1, meta["chunk_size"], real)  # padded dims 6..31 dropped
    # x_t is the state before each step: the first is the recorded starting noise.
    np.testing.assert_allclose(rtc["x_t"][0], truth["noise"][..., :real], atol=1e-5)
    # ... and each later one is LeRobot's state after the step before.
    np.testing.assert_allclose(rtc["x_t"][1:], raw["x_t"][:-1, ..., :real], atol=1e-5)
    assert _relations(rtc) < 1e-5  # x1_t = x_before - time * v_unguided, recorded by LeRobot
    np.testing.assert_allclose(rtc["time"], 1 - raw["time"], atol=1e-7)
    assert rtc["time"][0] == 0.0  # t = 0 is noise
    np.testing.assert_array_equal(rtc["action"], raw["actions"][..., :real])
    np.testing.assert_array_equal(rtc["error"], raw["err"][..., :real])
    np.testing.assert_array_equal(rtc["correction"], raw["correction"][..., :real])
    # guided velocity = unguided + w * correction (our convention) is -1 x LeRobot's integrated velocity
    guided = rtc["v_t"] + rtc["guidance_weight"][:, None, None, None] * rtc["correction"]
    np.testing.assert_allclose(guided, -raw["v_t"][..., :real], atol=1e-6)


def test_lerobot_settings_match_our_sampler():
    """The weights and guidance weights LeRobot recorded are ours at t = 1 - time: same algorithm, same numbers."""
    path, raw, _ = _fixture(RTC_FIXTURE)
    meta = json.loads(str(raw["meta"]))
    trace = traces.read_trace(path)
    rtc = trace.tracked
    d, end = meta["inference_delay"], meta["execution_horizon"]
    assert (int(rtc["inference_delay"]), int(rtc["prefix_attention_horizon"])) == (d, end)
    expected = sampler.get_prefix_weights(d, end, meta["chunk_size"], meta["prefix_attention_schedule"])
    np.testing.assert_allclose(rtc["prefix_weights"], np.asarray(expected), atol=1e-6)
    ours = sampler.guidance_weight(jnp.asarray(rtc["time"]), np.float32(meta["max_guidance_weight"]))
    np.testing.assert_allclose(rtc["guidance_weight"], np.asarray(ours), rtol=1e-5)
    left = raw["prev_chunk_left_over"]
    assert int(rtc["prev_valid"]) == left.shape[1] == 30
    np.testing.assert_array_equal(rtc["prev_action_chunk"][:, : left.shape[1]], left)
    assert not rtc["prev_action_chunk"][:, left.shape[1] :].any()  # LeRobot's zero padding to H
    assert trace.settings.prefix_attention_schedule == "linear" and trace.settings.max_guidance_weight == 10.0


def test_lerobot_guidance_is_detected_as_jacobian_free():
    path, raw, _ = _fixture(RTC_FIXTURE)
    trace = traces.read_trace(path)
    assert trace.jacobian_free and traces.TRACE_JACOBIAN_FREE_NOTE in trace.notes
    assert np.abs(trace.tracked["error"]).max() > 0.01  # decidable: the error is not zero
    # A correction that went through a Jacobian (here 0.5 I) is not Jacobian-free.
    changed = dict(raw, correction=0.5 * raw["correction"])
    assert not traces.from_lerobot(changed, json.loads(str(raw["meta"]))).jacobian_free
    # A zero error decides nothing.
    zero = {k: np.zeros_like(trace.tracked["error"]) for k in ("correction", "error")}
    assert not traces.correction_equals_error(zero)


def test_lerobot_first_chunk_opens_as_a_plain_only_trace():
    path, raw, truth = _fixture(FIRST_FIXTURE)
    trace = traces.read_trace(path)
    assert not trace.is_rtc and trace.tracked == {} and not trace.jacobian_free
    assert traces.FIRST_CHUNK_NOTE in trace.notes and trace.summary == {}
    plain = trace.plain
    real = json.loads(str(raw["meta"]))["action_dim"]
    np.testing.assert_allclose(plain["x_t"][0], truth["noise"][..., :real], atol=1e-5)
    np.testing.assert_allclose(plain["v_t"], -raw["v_t"][..., :real], atol=1e-7)  # unguided: only the sign flips
    np.testing.assert_allclose(plain["action"], raw["actions"][..., :real])
    assert page_content.available_pages(trace) == ("x_t", "v_t")
    with pytest.raises(RTCError, match="needs an RTC call"):
        page_content.page_figure_makers("correction", trace, 0, 0, [0])


def test_format_round_trip_keeps_every_array_and_the_meta(tmp_path):
    path, _, _ = _fixture(RTC_FIXTURE)
    trace = traces.read_trace(path)
    written = traces.write_trace(tmp_path / "trace.npz", trace)
    with np.load(written, allow_pickle=False) as raw:  # plain numpy, no pickle
        keys = set(raw.files)
        meta = json.loads(str(raw["meta"]))
    assert {f"rtc/{k}" for k in traces.RTC_REQUIRED} | {"rtc/prev_valid", "rtc/applied", "meta"} <= keys
    assert (meta["format"], meta["version"], meta["source"], meta["jacobian_free"]) == ("rtc-trace", 1, "lerobot", True)
    assert meta["source_meta"]["lerobot_version"] == "0.6.1"
    again = traces.read_trace(written)
    assert again.meta == json.loads(json.dumps(trace.meta))
    assert again.tracked.keys() == trace.tracked.keys()
    for key, value in trace.tracked.items():
        np.testing.assert_array_equal(again.tracked[key], value, err_msg=key)
        assert again.tracked[key].dtype == value.dtype
    assert again.summary == trace.summary


# ---------------------------------------------------------------------------------------------
# Hypothesis: LeRobot's loop in numpy, on random shapes


def _lerobot_weights(d: int, end: int, horizon: int, schedule: str) -> np.ndarray:
    return np.asarray(sampler.get_prefix_weights(d, end, horizon, schedule), dtype=np.float64)


def _lerobot_record(
    rng: np.random.Generator,
    n: int,
    batch: int,
    horizon: int,
    real: int,
    pad: int,
    left: int,
    delay: int,
    end: int,
    slope: float,
    jacobian_free: bool,
    w_max: float = 5.0,
):
    """LeRobot's Euler loop with RTC and its tracker, for a linear denoiser ``x1(x) = slope * x + m``.

    LeRobot's time runs 1 -> 0; ``v = (x - x1(x)) / time``; ``correction = err`` (Jacobian-free, as 0.6.1) or the
    true vector-Jacobian product ``slope * err``; ``v_guided = v - w * correction``; ``x <- x - v_guided / n``.
    """
    width = real + pad
    noise = rng.standard_normal((batch, horizon, width)).astype(np.float32)
    target = rng.standard_normal((1, horizon, width))
    prev_left = rng.standard_normal((batch, left, real)).astype(np.float32)
    prev = np.zeros((batch, horizon, width))
    prev[:, :left, :real] = prev_left
    weights = _lerobot_weights(delay, end, horizon, "linear")[None, :, None]
    x = noise.astype(np.float64)
    steps = {k: [] for k in ("x_t", "v_t", "x1_t", "correction", "err", "guidance_weight", "time")}
    for k in range(n):
        time = 1.0 - k / n
        x1 = slope * x + target
        v = (x - x1) / time
        err = (prev - x1) * weights
        correction = err if jacobian_free else slope * err
        tau = 1.0 - time
        weight = min(w_max if tau == 0 else (1 - tau) / tau * (tau**2 + (1 - tau) ** 2) / (1 - tau) ** 2, w_max)
        guided = v - weight * correction
        x = x - guided / n
        for key, value in zip(steps, (x, guided, x1, correction, err, weight, time), strict=True):
            steps[key].append(value)
    raw = {k: np.asarray(v, dtype=np.float32) for k, v in steps.items()}
    raw.update(
        weights=np.broadcast_to(weights[None], (n, 1, horizon, 1)).astype(np.float32),
        inference_delay=np.full(n, delay, np.int32),
        execution_horizon=np.full(n, end, np.int32),
        prev_chunk_left_over=prev_left,
        actions=x.astype(np.float32),
    )
    return raw, noise, target, {"action_dim": real, "max_guidance_weight": w_max, "prefix_attention_schedule": "linear"}


PER_STEP = (
    "x_t",
    "v_t",
    "x1_t",
    "correction",
    "err",
    "guidance_weight",
    "time",
    "weights",
    "inference_delay",
    "execution_horizon",
)


@st.composite
def lerobot_cases(draw):
    horizon = draw(st.integers(2, 12))
    left = draw(st.integers(1, horizon))
    end = draw(st.integers(1, left))
    return dict(
        n=draw(st.integers(1, 6)),
        batch=draw(st.integers(1, 3)),
        horizon=horizon,
        real=draw(st.integers(1, 5)),
        pad=draw(st.integers(0, 4)),
        left=left,
        delay=draw(st.integers(0, end)),
        end=end,
        slope=draw(st.sampled_from([0.3, 0.5, -0.4])),
        jacobian_free=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
        shuffle=draw(st.booleans()),
    )


@settings(max_examples=60, deadline=None)
@given(lerobot_cases())
def test_lerobot_conversion_on_random_shapes(case):
    case = dict(case)
    seed, shuffle = case.pop("seed"), case.pop("shuffle")
    rng = np.random.default_rng(seed)
    raw, noise, target, meta = _lerobot_record(rng, **case)
    n, real = case["n"], case["real"]
    if shuffle:  # a tracker may hand the steps back in another order: they are ordered by time
        order = rng.permutation(n)
        raw = {k: (v[order] if k in PER_STEP else v) for k, v in raw.items()}
    trace = traces.read_trace(traces.to_bytes({**raw, "meta": np.array(json.dumps(meta))}))
    rtc = trace.tracked
    assert trace.shape == (n, case["batch"], case["horizon"], real)
    np.testing.assert_allclose(rtc["x_t"][0], noise[..., :real], atol=1e-5)
    assert _relations(rtc) < 1e-5 * (1 + np.abs(rtc["x_1_pred"]).max())
    # v_t is the unguided velocity of our convention: d x / d t with t = 1 - time.
    t = rtc["time"][:, None, None, None].astype(np.float64)
    x1 = case["slope"] * rtc["x_t"] + target[..., :real]
    expected_v = (x1 - rtc["x_t"]) / (1 - t)
    np.testing.assert_allclose(rtc["v_t"], expected_v, rtol=1e-4, atol=1e-4 * (1 + np.abs(expected_v).max()))
    assert int(rtc["prev_valid"]) == case["left"]
    assert not rtc["prev_action_chunk"][:, case["left"] :].any()
    decidable = np.abs(rtc["error"]).max() > 1e-6
    assert trace.jacobian_free == (case["jacobian_free"] and decidable)
    assert trace.warnings == ()
    assert set(trace.summary) >= {"weighted_prefix_error_rtc", "boundary_jump_rtc", "frozen_max_deviation_rtc"}


def test_a_tracker_that_mixed_two_chunks_is_refused_or_flagged():
    rng = np.random.default_rng(0)
    case = dict(n=4, batch=1, horizon=6, real=2, pad=1, left=4, delay=1, end=3, slope=0.5, jacobian_free=True)
    first, _, _, meta = _lerobot_record(rng, **case)
    second, _, _, _ = _lerobot_record(rng, **case)
    duplicated = {k: (np.concatenate([v, v[:1]]) if k in PER_STEP else v) for k, v in first.items()}
    with pytest.raises(TraceError, match="share a flow time.*reset_tracker"):
        traces.from_lerobot(duplicated, meta)
    mixed = {k: (np.concatenate([v[:2], second[k][2:]]) if k in PER_STEP else v) for k, v in first.items()}
    warnings = traces.from_lerobot(mixed, meta).warnings
    assert any("different chunks" in w for w in warnings)


# ---------------------------------------------------------------------------------------------
# Refusals: one clear line and exit code 2 on the command line


class _Boom:
    """Unpickling this would run a command that creates a file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = traces.read_trace(_fixture(RTC_FIXTURE)[0]).arrays()
    files = {}

    def save(name: str, arrays: dict, message: str) -> None:
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        files[name] = (path, message)

    save("object_array", {**good, "rtc/x_t": np.array([{"a": 1}], dtype=object)}, "holds Python objects")
    save(
        "object_in_lerobot", {"x_t": np.array([None], dtype=object), "v_t": np.zeros(1), "time": np.ones(1)}, "objects"
    )
    save("wrong_layout", {"weights": np.zeros(3), "something": np.ones(2)}, "has neither layout")
    save("wrong_shape", {**good, "rtc/v_t": good["rtc/v_t"][:, :, :3]}, "rtc/v_t has shape")
    save("bad_delay", {**good, "rtc/inference_delay": np.asarray(99)}, "rtc/inference_delay is 99")
    save("no_sample", {"meta": good["meta"]}, "holds no sample")
    newer = json.loads(str(good["meta"])) | {"version": 2}
    save("version_2", {**good, "meta": np.array(json.dumps(newer))}, "version 2 is not supported")
    marker = tmp_path / "pwned"
    pickled = tmp_path / "pickled.npz"
    pickled.write_bytes(pickle.dumps({"rtc/x_t": _Boom(marker)}))
    files["pickle"] = (pickled, "pickled data is refused")
    text = tmp_path / "text.npz"
    text.write_text("x_t, v_t\n0.1, 0.2\n")  # a plain-text file named .npz
    files["plain_text"] = (text, "is not an npz archive")
    # non-finite values are refused with the key and the first bad index (every key: each feeds a figure or metric)
    action = good["rtc/action"].copy()
    action[0, 1, 2] = np.inf
    save("inf_action", {**good, "rtc/action": action}, "rtc/action holds inf at index [0, 1, 2]")
    x_t = good["rtc/x_t"].copy()
    x_t[1, 0, 3, 0] = np.nan
    save("nan_x_t", {**good, "rtc/x_t": x_t}, "rtc/x_t holds nan at index [1, 0, 3, 0]")
    save("nan_time", {**good, "rtc/time": np.full_like(good["rtc/time"], np.nan)}, "rtc/time holds nan at index [0]")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((tmp_path / "wrong_shape.npz").read_bytes()[:500])
    files["truncated"] = (truncated, "cannot be read as an .npz")
    return files


def test_bad_trace_files_get_one_error_line_and_exit_code_2(tmp_path, capsys):
    for name, (path, message) in _bad_files(tmp_path).items():
        code = cli.main(["--trace", str(path), "--output-dir", str(tmp_path / "out" / name)])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2, name
        assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], (name, err)
        assert "Traceback" not in err[0]
        assert not (tmp_path / "out" / name / "summary.json").exists()
    assert not (tmp_path / "pwned").exists()  # the pickle was never executed


def test_no_run_and_no_trace_is_an_error(capsys):
    assert cli.main([]) == 2
    assert capsys.readouterr().err.startswith("error: give a training run folder")


# ---------------------------------------------------------------------------------------------
# The command line on traces, and the round trip through it


def test_cli_opens_the_lerobot_trace(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["--trace", str(_fixture(RTC_FIXTURE)[0]), "--output-dir", str(out)]) == 0, capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trace"]["source"] == "lerobot" and summary["trace"]["jacobian_free"] is True
    assert summary["trace"]["shape"] == {"steps": 10, "batch": 1, "chunk_size": 50, "action_dim": 6}
    assert summary["metrics"]["boundary_jump_rtc"] > 0  # d = 4 <= 30 planned actions: defined
    assert summary["metrics"]["frozen_max_deviation_rtc"] < 0.1
    for name in summary["files"]:
        assert (out / name).is_file(), name
    assert "rtc_chunk_overview_b0.png" in summary["files"] and "rtc_error_b0.png" in summary["files"]
    assert "Jacobian-free" in capsys.readouterr().err
    again = traces.read_trace(out / "rtc_tracked.npz")
    assert again.jacobian_free and again.source == "lerobot"


def test_cli_opens_a_first_chunk_with_plain_figures_only(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["--trace", str(_fixture(FIRST_FIXTURE)[0]), "--output-dir", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trace"]["jacobian_free"] is False and summary["metrics"] == {}
    assert all(not n.startswith("rtc_") or n == "rtc_tracked.npz" for n in summary["files"])
    assert "plain_comparison_grid_b0_h0.png" in summary["files"]


def _line_data(figures: dict[str, Figure]) -> dict[str, list[np.ndarray]]:
    """Every plotted line of every figure, by figure name and axes label."""
    return {
        f"{name}/{ax.get_label()}/{i}": np.asarray(line.get_xydata())
        for name, fig in figures.items()
        for ax in fig.axes
        for i, line in enumerate(ax.get_lines())
    }


@pytest.fixture(scope="module")
def demo_trace(tmp_path_factory) -> Path:
    """``rtc_tracked.npz`` written by the command line on the demo run (format 1)."""
    out = tmp_path_factory.mktemp("demo") / "cli"
    argv = [str(DEMO_RUN), "--output-dir", str(out), "--config.num-flow-steps", "5", "--config.batch-size", "2"]
    assert cli.main(argv) == 0
    return out


def test_round_trip_cli_trace_gives_identical_figure_data(demo_trace, tmp_path):
    written = demo_trace / "rtc_tracked.npz"
    first = json.loads((demo_trace / "summary.json").read_text())
    with np.load(written, allow_pickle=False) as raw:
        meta = json.loads(str(raw["meta"]))
        original = {k: raw[k] for k in raw.files}
    assert (meta["format"], meta["version"], meta["source"]) == ("rtc-trace", 1, "rtc-inspector")
    assert meta["jacobian_free"] is False and meta["action_names"][4] == "thruster 0"
    # the same-observation situation is the paper's first block: the whole first chunk is the previous chunk
    assert int(original["rtc/prev_valid"]) == 8 and int(original["rtc/execute_horizon"]) == 4
    out = tmp_path / "again"
    assert cli.main(["--trace", str(written), "--output-dir", str(out)]) == 0
    second = json.loads((out / "summary.json").read_text())
    assert second["metrics"] == first["metrics"]  # boundary jump, guidance effect, ... identical
    assert second["files"] == first["files"]
    trace = traces.read_trace(out / "rtc_tracked.npz")
    rtc = {k.removeprefix("rtc/"): v for k, v in original.items() if k.startswith("rtc/")}
    plain = {k.removeprefix("plain/"): v for k, v in original.items() if k.startswith("plain/")}
    before = plots.tracking_figures(rtc, 1, [0, 4], 2, plain_action=plain["action"])
    after = plots.tracking_figures(trace.tracked, 1, [0, 4], 2, plain_action=trace.plain["action"])
    lines_before, lines_after = _line_data(before), _line_data(after)
    assert lines_before.keys() == lines_after.keys() and len(lines_before) > 20
    assert int(trace.tracked["execute_horizon"]) == 4  # carried through the round trip
    for key, data in lines_before.items():
        np.testing.assert_array_equal(lines_after[key], data, err_msg=key)
    chart = charts.x_t_chart(rtc, plain, 1, [0, 4], 2).to_dict()
    assert charts.x_t_chart(trace.tracked, trace.plain, 1, [0, 4], 2).to_dict() == chart


def test_bundle_of_a_trace_holds_format_1_data_and_the_notice():
    trace = traces.read_trace(_fixture(RTC_FIXTURE)[0])
    figures, chart_specs, sections = page_content.report_content(trace, 0, 4, [0, 1])
    assert list(sections) == list(page_content.INSPECTION_PAGES)
    data = bundle.build_bundle(
        trace, bundle.BundleContent(figures, chart_specs, {"title": "trace"}, sections), formats=("png",)
    )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        again = traces.read_trace(archive.read("data/tracked.npz"))
        report = archive.read("report.html").decode()
    assert manifest["notes"] == [traces.TRACE_JACOBIAN_FREE_NOTE] and "Jacobian-free guidance" in report
    assert manifest["summary"]["boundary_jump_rtc"] == pytest.approx(trace.summary["boundary_jump_rtc"])
    for key, value in trace.tracked.items():
        np.testing.assert_array_equal(again.tracked[key], value)


# ---------------------------------------------------------------------------------------------
# The app: a Traces source beside runs


def test_trace_roots_and_links_are_confined(tmp_path, monkeypatch):
    root, outside = tmp_path / "traces", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    shutil.copy(_fixture(RTC_FIXTURE)[0], root / "a.npz")
    shutil.copy(_fixture(RTC_FIXTURE)[0], outside / "secret.npz")
    (root / "link.npz").symlink_to(outside / "secret.npz")
    dirs = roots.trace_roots({roots.TRACES_ROOTS_ENV: str(root)})
    found = roots.find_traces(dirs)
    assert list(found) == ["traces/a.npz"]
    assert app_state.parse_trace_id({"trace": "traces/a.npz"}, found, dirs) == ("traces/a.npz", [])
    for asked in ("../outside/secret.npz", "/etc/passwd", "traces/link.npz"):
        chosen, notices = app_state.parse_trace_id({"trace": asked}, found, dirs)
        assert chosen == "traces/a.npz" and len(notices) == 1, asked
    assert "refused" in app_state.parse_trace_id({"trace": "../x.npz"}, found, dirs)[1][0]
    with pytest.raises(SelectionError, match="accepted up to 64 MiB"):
        app_state.check_upload("big.npz", app_state.MAX_UPLOAD_BYTES + 1)
    with pytest.raises(SelectionError, match="accepted is an .npz"):
        app_state.check_upload("trace.pkl", 10)


@pytest.fixture
def trace_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "traces"
    root.mkdir()
    for name in (RTC_FIXTURE, FIRST_FIXTURE):
        shutil.copy(_fixture(name)[0], root / f"{name}.npz")
    monkeypatch.setenv(roots.TRACES_ROOTS_ENV, str(root))
    return root


def _trace_app(query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300)
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def test_app_opens_a_lerobot_trace_from_a_link(trace_root):
    at = _trace_app({"trace": f"traces/{RTC_FIXTURE}.npz", "h": "5", "dims": "0,3"})
    assert not at.exception, [e.value for e in at.exception]
    assert at.sidebar.radio(key="w_source").value == "Traces"
    assert at.sidebar.selectbox(key="w_trace").value == f"traces/{RTC_FIXTURE}.npz"
    assert at.sidebar.multiselect(key="wt_action_dim_indices").value == [0, 3]
    assert at.query_params["trace"] == f"traces/{RTC_FIXTURE}.npz" and at.query_params["h"] == "5"
    trace = traces.read_trace(trace_root / f"{RTC_FIXTURE}.npz")
    pages = ["pages/overview.py", "pages/x_t.py", "pages/v_t.py", "pages/correction.py", "pages/error.py"]
    for page in pages:
        if page != pages[0]:
            at.switch_page(page).run()
        assert not at.exception and not at.error, (page, [e.value for e in at.error])
        assert any("Jacobian-free guidance" in w.value for w in at.main.warning), page
        assert at.get("vega_lite_chart") and at.main.get("image"), page
        assert len(at.main.get("download_button")) == 2, page
    at.switch_page("pages/x_t.py").run()
    proto = at.get("vega_lite_chart")[0].proto
    shown = pa.ipc.open_stream(io.BytesIO(proto.datasets[0].data.data)).read_pandas()
    rtc = shown[(shown.series == "RTC") & (shown.layer == "line") & (shown.h == 5) & (shown.dim == "action dim 3")]
    expected = np.append(trace.tracked["x_t"][:, 0, 5, 3], trace.tracked["action"][0, 5, 3])
    np.testing.assert_allclose(rtc["value"].to_numpy(), expected, rtol=1e-6)
    for page in ("pages/compare.py", "pages/seeds.py", "pages/diagnostics.py"):
        at.switch_page(page).run()
        assert not at.exception and not at.error, page
        assert any("needs a policy" in i.value for i in at.main.info), page


def test_app_opens_a_first_chunk_trace_with_x_t_and_v_t_only(trace_root):
    at = _trace_app({"trace": f"traces/{FIRST_FIXTURE}.npz"})
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("needs an RTC call" in i.value or "has none" in i.value for i in at.main.info)
    assert not at.get("vega_lite_chart")
    for page in ("pages/x_t.py", "pages/v_t.py"):
        at.switch_page(page).run()
        assert not at.exception and not at.error, page
        assert at.get("vega_lite_chart") and at.main.get("image"), page
    at.switch_page("pages/error.py").run()
    assert not at.get("vega_lite_chart") and any("first chunk" in i.value for i in at.main.info)


def test_app_refuses_a_link_outside_the_trace_roots(trace_root):
    at = _trace_app({"trace": "../../etc/passwd"})
    assert not at.exception
    assert any("is refused" in w.value for w in at.sidebar.warning)
    assert at.sidebar.selectbox(key="w_trace").value == f"traces/{FIRST_FIXTURE}.npz"  # the first, sorted


def test_the_documented_snippet_writes_the_lerobot_layout(tmp_path):
    """The saving function of docs/traces.md, run on DebugStep-like objects holding the fixture's steps, gives the
    same trace."""
    from types import SimpleNamespace

    text = (PROJECT_ROOT / "docs" / "traces.md").read_text()
    start = text.index("```python\nimport json\n\nimport numpy as np\n\nFIELDS")
    code = text[start + len("```python\n") : text.index("```", start + 10)]
    namespace: dict = {}
    exec(compile(code, "docs/traces.md", "exec"), namespace)  # the project's own documentation
    path, raw, _ = _fixture(RTC_FIXTURE)
    meta = json.loads(str(raw["meta"]))
    fields = ("x_t", "v_t", "x1_t", "correction", "err", "weights", "guidance_weight", "time")
    steps = [
        SimpleNamespace(
            **{f: raw[f][k] for f in fields},
            inference_delay=int(raw["inference_delay"][k]),
            execution_horizon=int(raw["execution_horizon"][k]),
            metadata={},
        )
        for k in range(len(raw["time"]))
    ]
    resets = []
    processor = SimpleNamespace(get_all_debug_steps=lambda: steps, reset_tracker=lambda: resets.append(1))
    policy = SimpleNamespace(rtc_processor=processor)
    out = tmp_path / "saved.npz"
    namespace["save_lerobot_trace"](policy, out, raw["actions"], raw["prev_chunk_left_over"], meta)
    assert resets == [1]
    saved, direct = traces.read_trace(out), traces.read_trace(path)
    assert saved.jacobian_free and saved.meta["settings"] == direct.meta["settings"]
    for key, value in direct.tracked.items():
        np.testing.assert_array_equal(saved.tracked[key], value, err_msg=key)


def test_app_opens_the_committed_demo_trace_by_default(monkeypatch):
    """``traces/demo_grasp_easy.npz`` (written by the command line on runs/demo) is offered under the default roots."""
    monkeypatch.delenv(roots.TRACES_ROOTS_ENV, raising=False)
    at = _trace_app({"trace": "traces/demo_grasp_easy.npz"})
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.sidebar.selectbox(key="w_trace").value == "traces/demo_grasp_easy.npz"
    assert not any("Jacobian-free" in w.value for w in at.main.warning)  # a real VJP: not marked
    metrics = {m.label: m.value for m in at.main.metric}
    trace = traces.read_trace(PROJECT_ROOT / "traces" / "demo_grasp_easy.npz")
    assert metrics["Prefix error"] == f"{trace.summary['weighted_prefix_error_rtc']:.3f}"
    at.switch_page("pages/v_t.py").run()
    proto = at.get("vega_lite_chart")[0].proto
    shown = pa.ipc.open_stream(io.BytesIO(proto.datasets[0].data.data)).read_pandas()
    assert set(shown.series) == {"RTC", "plain"}  # both samples of the trace


def test_inspection_arrays_keep_extensions_and_an_unknown_last_action(demo_trace):
    """A rollout block's inspection: extra keys (chunk_start) kept, no last executed action before the first block."""
    from rtc.experiments import pipeline

    trace = traces.read_trace(demo_trace / "rtc_tracked.npz")
    settings = pipeline.RTCSettings(
        **{k: v for k, v in trace.meta["settings"].items() if k != "prefix_attention_horizon"}
    )
    tracked = {k: v for k, v in trace.tracked.items() if k not in ("prev_valid", "last_executed")}
    inspection = pipeline.Inspection(
        settings,
        {**tracked, "chunk_start": np.asarray(15), "prev_valid": np.asarray(8)},
        trace.plain,
        trace.obs,
        trace.first_chunk,
        (),
        last_executed=np.zeros((0, 6), np.float32),
    )
    again = traces.read_trace(traces.to_bytes(inspection.arrays()))
    assert int(again.tracked["chunk_start"]) == 15 and int(again.tracked["prev_valid"]) == 8
    assert "last_executed" not in again.tracked and again.warnings == ()
    assert again.summary == inspection.summary


@pytest.mark.slow  # starts a subprocess
def test_traces_module_is_numpy_only():
    import subprocess
    import sys

    heavy = "('jax', 'torch', 'lerobot', 'matplotlib')"
    code = f"import sys, rtc.io.traces; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_lerobot_trace_gets_no_guessed_executed_window():
    """LeRobot's "execution horizon" is the prefix horizon; how many actions ran is not recorded, so no window."""
    from rtc.report import plots

    trace = traces.read_trace(shared_path("fixtures", "lerobot", f"{RTC_FIXTURE}.npz"))
    tracked = trace.tracked
    horizon = np.asarray(tracked["action"]).shape[1]
    assert int(tracked["prefix_attention_horizon"]) != int(tracked["prev_valid"])
    assert plots.tracked_executed_window(tracked, horizon) is None
    # our own protocol records: s = H - prev_valid
    ours = {**tracked, "prefix_attention_horizon": tracked["prev_valid"]}
    window = plots.tracked_executed_window(ours, horizon)
    assert (window.start, window.stop) == (int(tracked["inference_delay"]), horizon - int(tracked["prev_valid"]))
    # a record that states its execute horizon (an inspection, a rollout block; the first block has prev_valid = H)
    first_block = {**tracked, "prev_valid": np.asarray(horizon), "execute_horizon": np.asarray(5)}
    window = plots.tracked_executed_window(first_block, horizon)
    assert (window.start, window.stop) == (int(tracked["inference_delay"]), 5)
