"""The app in a real browser: every page draws on the demo and fixture runs, a setting redraws, the bundle downloads.

Screenshots go to ``test-artifacts/screenshots/``, measured times to ``test-artifacts/timings.json``.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from pathlib import Path

import pytest

from rtc.report import bundle
from tests.e2e.conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "screenshots"
PAGES = {
    "": "Overview",
    "x_t": "State x_t",
    "v_t": "Velocity v_t",
    "correction": "RTC correction",
    "error": "Error over steps",
}
RUNS = {"demo": "runs/demo", "fixture": "upstream_small_run"}
FIRST_DRAW_MS = 300_000  # a fresh machine compiles the sampler and the simulator step first
DRAW_MS = 120_000

# True once the script has finished and every chart and figure of the main area is drawn.
DRAWN = """(title) => {
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main) return false;
  const h1 = main.querySelector('h1');
  if (!h1 || !h1.textContent.includes(title)) return false;
  if (main.querySelector('[data-testid="stException"], [data-testid="stAlertContentError"]')) return true;
  const charts = [...main.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const images = [...main.querySelectorAll('[data-testid="stImage"] img')];
  if (!charts.length || !images.length) return false;
  const drawn = (c) => [...c.querySelectorAll('canvas, svg.marks')].some((e) => e.getBoundingClientRect().width > 50);
  return charts.every(drawn) && images.every((i) => i.complete && i.naturalWidth > 0);
}"""
IMAGE_SOURCES = (
    """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stImage"] img')].map(i => i.src)"""
)


def _new_page(browser, **options):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True, **options)
    return context.new_page()


def _wait_drawn(page, title: str, timeout_ms: int = DRAW_MS) -> None:
    page.wait_for_function(DRAWN, arg=title, timeout=timeout_ms, polling=100)
    errors = page.locator('[data-testid="stMain"] [data-testid="stAlertContentError"], [data-testid="stException"]')
    assert errors.count() == 0, errors.all_inner_texts()


def _screenshot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"] *')]"
        ".map(e => e.getBoundingClientRect().bottom), 1000)"
    )
    page.set_viewport_size({"width": 1500, "height": min(int(height) + 40, 6000)})
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 1500, "height": 1000})


def test_cold_start_to_first_page_drawn(browser, app_server, timings):
    """From ``streamlit run`` to the overview drawn (Chromium is started before the server)."""
    page = _new_page(browser)
    page.goto(f"{app_server}/?steps=5")
    _wait_drawn(page, "Overview", FIRST_DRAW_MS)
    timings["cold_start_to_first_page_drawn_s"] = round(time.perf_counter() - timings["_server_started"], 2)
    # the landing view: the paper's first block, how much guidance did, no warning about the settings
    main = page.locator('[data-testid="stMain"]')
    assert main.get_by_text("Guidance effect").first.is_visible()
    assert main.get_by_text("first block", exact=False).first.is_visible()
    assert page.locator('[data-testid="stSidebar"] [data-testid="stAlertContentWarning"]').count() == 0
    # every metric's label and delta (an estimate's interval and n) is shown whole (none cut to an ellipsis)
    shown = '[data-testid="stMetricLabel"], [data-testid="stMetricDelta"]'
    labels = page.evaluate(
        f"() => [...document.querySelectorAll('{shown}')].map(e => [e.innerText,"
        " Math.max(0, ...[e, ...e.querySelectorAll('*')].map(n => n.scrollWidth - n.clientWidth))])"
    )
    assert len(labels) >= 10 and all(label for label, _ in labels), labels
    assert any("n = 16" in label for label, _ in labels), labels
    assert [label for label, overflow in labels if overflow > 0] == [], labels
    _screenshot(page, "cold_start_overview")
    page.context.close()


def test_a_lerobot_trace_opens_with_its_jacobian_free_notice(app_server, browser):
    """A trace recorded by LeRobot's own RTC code, linked by id under a trace root, on three inspection pages."""
    page = _new_page(browser)
    for path, title in (("", "Overview"), ("x_t", "State x_t"), ("correction", "RTC correction")):
        page.goto(f"{app_server}/{path}?trace=lerobot/lerobot_rtc_linear_d4_s10.npz&dims=0,1")
        _wait_drawn(page, title, FIRST_DRAW_MS)
        assert page.get_by_text("Jacobian-free guidance").first.is_visible()
        _screenshot(page, f"lerobot_trace_{path or 'overview'}")
    page.context.close()


@pytest.mark.parametrize("run", list(RUNS))
def test_every_page_draws(app_server, browser, run):
    page = _new_page(browser)
    for path, title in PAGES.items():
        page.goto(f"{app_server}/{path}?run={RUNS[run]}&steps=5&dims=0,1,2")
        _wait_drawn(page, title, FIRST_DRAW_MS)
        assert page.locator('[data-testid="stSidebar"]').get_by_text("RTC settings").is_visible()
        _screenshot(page, f"{run}_{path or 'overview'}")
    page.context.close()


def _choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the sidebar selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').filter(has_text=label)
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):
        box.locator('[role="combobox"], input').first.click()
        try:
            choice.wait_for(timeout=5_000)
            break
        except Exception:  # the sidebar was redrawn under the click; try again
            continue
    choice.click()


def test_changing_a_setting_redraws_every_figure(app_server, browser, timings):
    page = _new_page(browser)
    # Compiled already (same flow steps and batch); the new schedule's sample is not cached yet.
    page.goto(f"{app_server}/x_t?run=runs/demo&steps=5&d=1&s=3&seed=11")
    _wait_drawn(page, "State x_t", FIRST_DRAW_MS)
    before = page.evaluate(IMAGE_SOURCES)
    _choose(page, "Prefix schedule", "zeros")
    started = time.perf_counter()
    page.wait_for_function(
        f"(before) => ({IMAGE_SOURCES})().every((src, i) => src !== before[i])", arg=before, timeout=DRAW_MS
    )
    _wait_drawn(page, "State x_t")
    timings["warm_settings_change_to_x_t_page_redrawn_browser_s"] = round(time.perf_counter() - started, 2)
    assert "schedule=zeros" in page.url
    _screenshot(page, "x_t_after_schedule_zeros")
    page.context.close()


def test_the_report_bundle_downloads_and_opens_offline(app_server, browser, tmp_path):
    page = _new_page(browser)
    page.goto(f"{app_server}/error?run=runs/demo&steps=5&dims=0,2")
    _wait_drawn(page, "Error over steps", FIRST_DRAW_MS)
    with page.expect_download(timeout=DRAW_MS) as download_info:
        page.get_by_role("button", name="Download the whole report").click()
    download = download_info.value
    assert download.suggested_filename.startswith("rtc_report_demo_e")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    page.context.close()

    with zipfile.ZipFile(target) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["run"] == "runs/demo" and manifest["settings"]["num_flow_steps"] == 5
        for entry in manifest["files"]:
            assert hashlib.sha256(archive.read(entry["path"])).hexdigest() == entry["sha256"]
        names = set(archive.namelist())
        for fmt in ("png", "svg", "pdf"):
            assert f"figures/{fmt}/rtc_flow_steps_b0_h0_a2.{fmt}" in names
        assert {"data/tracked.npz", "report.html", "manifest.json", "images/level_grasp_easy.png"} <= names
        archive.extractall(tmp_path / "bundle")
    _report_opens_offline(browser, tmp_path / "bundle" / "report.html")


def _report_opens_offline(browser, report: Path) -> None:
    page = _new_page(browser, offline=True)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.goto(report.as_uri())
    expected = page.locator(".chart").count()
    assert expected >= 5
    if bundle.vega_javascript() is None:  # without vl-convert-python the report is static, and says so
        assert "interactive charts need vl-convert-python" in page.content()
        page.context.close()
        return
    page.wait_for_function(
        "(n) => [...document.querySelectorAll('.chart')].filter(c => c.querySelector('canvas, svg')).length === n",
        arg=expected,
        timeout=60_000,
    )
    assert not failed, failed
    assert page.locator("img").count() >= 5
    _screenshot_report(page)
    page.context.close()


def _screenshot_report(page) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "report_html.png"), full_page=True)


def test_bundle_bytes_are_what_the_manifest_says(app_server, browser):
    """The page bundle (one page) from the overview page."""
    page = _new_page(browser)
    page.goto(f"{app_server}/?run=upstream_small_run&steps=5")
    _wait_drawn(page, "Overview", FIRST_DRAW_MS)
    with page.expect_download(timeout=DRAW_MS) as download_info:
        page.get_by_role("button", name="Download this page's figures").click()
    data = Path(download_info.value.path()).read_bytes()
    page.context.close()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["page"] == "overview" and manifest["run"] == "upstream_small_run"
        assert "figures/pdf/rtc_chunk_overview_b0.pdf" in archive.namelist()
