"""Tests for rtc.report.bundle: every file is in the manifest with a matching checksum, and each holds what it says."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import zipfile

import jax
import numpy as np
import pytest
from flax import nnx
from matplotlib.figure import Figure

from rtc.errors import RTCError
from rtc.experiments.pipeline import Inspection, RTCSettings
from rtc.numerics.model import FlowPolicy, ModelConfig
from rtc.report import bundle, page_content, render

STEPS = 5
SETTINGS = RTCSettings(num_flow_steps=STEPS, inference_delay=2, execute_horizon=5, prefix_attention_schedule="linear")
META = {"title": "RTC report — test", "run": "runs/test", "epoch": 3, "level": "worlds_l_grasp_easy", "page": "x_t"}
NOW = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
MAGIC = {"png": b"\x89PNG", "pdf": b"%PDF", "svg": b"<?xml"}


@pytest.fixture(scope="module")
def inspection() -> Inspection:
    config = ModelConfig(channel_dim=16, channel_hidden_dim=32, token_hidden_dim=8, num_layers=1, action_chunk_size=8)
    policy = FlowPolicy(obs_dim=5, action_dim=6, config=config, rngs=nnx.Rngs(0))
    obs = jax.random.normal(jax.random.key(1), (2, 5))
    prev = policy.action(jax.random.key(2), obs, STEPS)
    _, rtc = policy.realtime_action(jax.random.key(3), obs, STEPS, prev, 2, 3, "linear", 5.0, True)
    _, plain = policy.action(jax.random.key(3), obs, STEPS, True)
    as_numpy = lambda tree: {k: np.asarray(v) for k, v in tree.items()}  # noqa: E731
    return Inspection(SETTINGS, as_numpy(rtc), as_numpy(plain), np.asarray(obs), np.asarray(prev[:1]), ("a warning",))


@pytest.fixture(scope="module")
def page_zip(inspection: Inspection) -> zipfile.ZipFile:
    figures = page_content.page_figures("x_t", inspection, 1, 2, [0, 3])
    charts = page_content.page_charts("x_t", inspection, 1, 2, [0, 3])
    data = bundle.build_bundle(
        inspection, bundle.BundleContent(figures, charts, META, sections={"x_t": [*charts, *figures]}), now=NOW
    )
    return zipfile.ZipFile(io.BytesIO(data))


def test_every_file_is_in_the_manifest_with_its_checksum(page_zip):
    manifest = json.loads(page_zip.read("manifest.json"))
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert set(listed) == set(page_zip.namelist()) - {"manifest.json"}
    for path, entry in listed.items():
        data = page_zip.read(path)
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], path
        assert entry["bytes"] == len(data)
        assert entry["content"]


def test_manifest_describes_the_selection(page_zip, inspection):
    manifest = json.loads(page_zip.read("manifest.json"))
    assert manifest["format"] == bundle.BUNDLE_FORMAT
    assert manifest["created"] == "2026-01-02T03:04:05+00:00"
    assert (manifest["run"], manifest["epoch"], manifest["level"]) == ("runs/test", 3, "worlds_l_grasp_easy")
    assert manifest["settings"] == SETTINGS.to_dict()
    assert manifest["seed"] == SETTINGS.seed
    assert manifest["warnings"] == ["a warning"]
    assert manifest["summary"] == pytest.approx(inspection.summary)
    assert {"python", "jax", "numpy", "matplotlib", "altair"} <= set(manifest["packages"])


def test_every_figure_comes_in_every_format_with_a_telling_name(page_zip):
    names = page_zip.namelist()
    assert "figures/png/rtc_comparison_grid_b1_h2_a3.png" in names
    for fmt, magic in MAGIC.items():
        files = sorted(n for n in names if n.startswith(f"figures/{fmt}/"))
        assert files == [f"figures/{fmt}/rtc_comparison_grid_b1_h2_a{a}.{fmt}" for a in (0, 3)]
        assert all(page_zip.read(f).startswith(magic) for f in files)
    assert "charts/x_t_over_steps_b1.vl.json" in names


def test_tracked_arrays_round_trip(page_zip, inspection):
    with np.load(io.BytesIO(page_zip.read("data/tracked.npz"))) as npz:
        arrays = inspection.arrays()
        assert set(npz.files) == set(arrays)
        for key, value in arrays.items():
            np.testing.assert_array_equal(npz[key], value)


def test_chart_specs_hold_the_data(page_zip, inspection):
    spec = json.loads(page_zip.read("charts/x_t_over_steps_b1.vl.json"))
    (values,) = spec["datasets"].values()
    row = next(v for v in values if v.get("series") == "RTC" and v["step"] == 1 and v["h"] == 4)
    expected = inspection.tracked["x_t"][1, 1, 4, int(row["dim"][-1])]
    assert row["value"] == pytest.approx(float(expected))


def test_report_html_is_self_contained(page_zip):
    report = page_zip.read("report.html").decode()
    assert "<title>RTC report — test</title>" in report
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']https?:""", report), "no network resources"
    assert report.count('class="chart"') == 1
    assert report.count("data:image/png;base64,") == 2
    specs = re.search(r'<script type="application/json" id="chart-specs">(.*?)</script>', report, re.S).group(1)
    assert set(json.loads(specs)) == {"chart-0"}
    if bundle.vega_javascript() is not None:
        assert "vegaEmbed(" in report and "window.vegaEmbed" in report


def test_report_bundle_covers_every_page(inspection):
    figures, charts, sections = page_content.report_content(inspection, 0, 0, [1])
    assert list(sections) == list(page_content.INSPECTION_PAGES)
    assert set(figures) == {
        "rtc_chunk_overview_b0",
        "rtc_comparison_grid_b0_h0_a1",
        "plain_comparison_grid_b0_h0_a1",
        "rtc_flow_steps_b0_h0_a1",
        "rtc_error_b0",
    }
    assert all(isinstance(make(), Figure) for make in figures.values())
    assert {name for names in sections.values() for name in names} == set(figures) | set(charts)


def test_rendering_keeps_the_figure_usable(inspection):
    fig = page_content.page_figures("error", inspection, 0, 0, [0])["rtc_error_b0"]
    engine = fig.get_layout_engine()
    rendered = render.render_figure(fig, ("svg", "pdf"))
    assert set(rendered) == {"svg", "pdf"}
    assert b"CreationDate" not in rendered["pdf"]
    assert fig.get_layout_engine() is engine  # restored after rendering


def test_unknown_page_is_refused(inspection):
    with pytest.raises(ValueError, match="unknown page 'nope'"):
        page_content.page_figures("nope", inspection, 0, 0, [0])
    with pytest.raises(ValueError, match="unknown page 'nope'"):
        page_content.page_charts("nope", inspection, 0, 0, [0])


def test_pictures_are_stored_and_shown(inspection):
    png = render.render_figure(page_content.page_figures("error", inspection, 0, 0, [0])["rtc_error_b0"], ("png",))[
        "png"
    ]
    data = bundle.build_bundle(inspection, bundle.BundleContent(meta=META, pictures={"level_grasp_easy": png}), now=NOW)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.read("images/level_grasp_easy.png") == png
        assert 'class="picture" alt="level_grasp_easy"' in archive.read("report.html").decode()


def test_sweep_bundle_holds_every_metric_figure_and_the_csv(inspection):
    from rtc.experiments import sweep

    rows = [
        {
            "level": "l",
            "method": method,
            "inference_delay": d,
            "execute_horizon": max(1, d),
            "solve_rate": 0.5,
            "solve_rate_low": sweep.wilson_interval(1, 2)[0],
            "solve_rate_high": sweep.wilson_interval(1, 2)[1],
            "mean_return": 0.25 * d,
            "mean_return_low": 0.25 * d - 0.1,
            "mean_return_high": 0.25 * d + 0.1,
            "mean_boundary_jump": 0.1,
            "mean_boundary_jump_low": 0.05,
            "mean_boundary_jump_high": 0.15,
            "mean_step_size": 0.05,
            "mean_step_size_low": 0.04,
            "mean_step_size_high": 0.06,
            "mean_length": 100.0,
            "episodes": 2,
            "solved": 1,
            "truncated": 0,
            "switches": 20,
        }
        for method in ("naive", "rtc_exp")
        for d in (0, 1)
    ]
    extras = {"sweep": (rows, "mean_return")}
    figures = page_content.page_figures("sweep", inspection, 0, 0, [0], extras)
    assert list(figures) == ["sweep_mean_return", "sweep_solve_rate", "sweep_mean_boundary_jump"]
    data = page_content.extra_data(extras)
    assert page_content.extra_data({"sweep": None}) == {} and page_content.extra_data(None) == {}
    archive = bundle.build_bundle(
        inspection, bundle.BundleContent(figures, meta=META, data=data), formats=("png",), now=NOW
    )
    archive = zipfile.ZipFile(io.BytesIO(archive))
    listed = {e["path"]: e for e in json.loads(archive.read("manifest.json"))["files"]}
    for path in ("data/sweep.csv", *(f"figures/png/sweep_{m}.png" for m in sweep.METRICS)):
        assert path in listed, path
        assert hashlib.sha256(archive.read(path)).hexdigest() == listed[path]["sha256"]
    assert archive.read("data/sweep.csv").decode() == sweep.to_csv(rows)
    assert "data/comparisons.csv" not in listed  # no comparison given

    # with the paired comparisons (rtc_exp against naive, the same two episodes): a figure and comparisons.csv
    import pandas as pd

    from rtc.experiments.sweep import store

    episodes = pd.DataFrame(
        [
            {
                "level": "worlds_l_grasp_easy",
                "method": m,
                "delay": d,
                "execute_horizon": max(1, d),
                "episode": e,
                "solved": m == "rtc_exp" and e == 0,
            }
            for m in ("naive", "rtc_exp")
            for d in (0, 1)
            for e in (0, 1)
        ]
    )
    comparisons = store.comparison_table(episodes, "naive")
    paired = {"sweep": (rows, "mean_return", comparisons)}
    figures = page_content.page_figures("sweep", inspection, 0, 0, [0], paired)
    assert list(figures)[-1] == "sweep_differences" and len(figures) == 4
    data = page_content.extra_data(paired)
    assert set(data) == {"sweep.csv", "comparisons.csv"}
    shown = pd.read_csv(io.BytesIO(data["comparisons.csv"]))
    assert shown["solve_rate_diff"].tolist() == [0.5, 0.5] and shown["method"].tolist() == ["rtc_exp", "rtc_exp"]


def test_a_figure_failing_midway_fails_the_whole_bundle(inspection):
    def broken() -> Figure:
        raise RTCError("figure 2 of 2 failed")

    good = page_content.page_figure_makers("error", inspection, 0, 0, [0])
    with pytest.raises(RTCError, match="figure 2 of 2 failed"):  # nothing is returned: no partial zip exists
        bundle.build_bundle(inspection, bundle.BundleContent({**good, "broken": broken}, meta=META), now=NOW)
