"""Many users at once: eight browser sessions against one served app, each with its own selection.

Every session must show what its selection shows when it is the only session on a server of its
own: the same caption and link, byte-identical figure PNGs and pixel-identical charts, with no
error and nothing of another session's selection (no cross-talk).

The reference ("alone") and the concurrent sessions ("together") use separate servers started
here, not the shared ``app_server``: the inspection cache (``st.cache_data``) would otherwise hand
the concurrent sessions the results the reference computed, so they would never sample at the
same time; and starting the shared server early would skew ``test_browser``'s cold-start timing.

The first test warms its server with one page load, then opens the eight links at once and has
every session change its schedule at once. The second opens the eight links as the very first
requests of a just-started server (a shared link reaching many people at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import time
import urllib.parse
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from rtc.app import state as app_state
from rtc.app.state import Target, View
from rtc.io.checkpoints import discover_runs
from rtc.numerics.sampler import SCHEDULES
from tests.e2e.conftest import PROJECT, serve_app
from tests.e2e.test_browser import DRAW_MS, DRAWN, FIRST_DRAW_MS, IMAGE_SOURCES, _choose, _new_page, _screenshot

pytestmark = pytest.mark.e2e

SESSIONS = 8
PAGE, TITLE = "x_t", "State x_t"
RUN, LEVEL, STEPS = "runs/demo", app_state.DEFAULT_LEVEL_KEY, 5  # one compiled shape: 5 flow steps, batch 1

# Settled: drawn as ``DRAWN`` says, or finished with the note shown when the sidebar never ran
# (then the check fails at once instead of waiting for charts that cannot come).
SETTLED = f"""(title) => {{
  if (({DRAWN})(title)) return true;
  const main = document.querySelector('[data-testid="stMain"]');
  return !document.querySelector('[data-testid="stStatusWidget"]') && !!main
    && main.innerText.includes('Choose a run in the sidebar');
}}"""
CAPTION = """() => {
  const caption = document.querySelector('[data-testid="stMain"] [data-testid="stCaptionContainer"]');
  return caption ? caption.innerText.trim() : null;
}"""
# Redrawn after a change: the caption names the new selection, every figure changed, all drawn.
REDRAWN = f"""(a) => ({CAPTION})() === a.caption
  && ({IMAGE_SOURCES})().every((src, i) => src !== a.before[i]) && ({DRAWN})(a.title)"""
ERRORS = '[data-testid="stMain"] [data-testid="stAlertContentError"], [data-testid="stException"]'


@dataclasses.dataclass(frozen=True)
class Selection:
    """One session's choice: the RTC settings and what to look at (run, level and flow steps are shared)."""

    schedule: str
    delay: int
    execute_horizon: int
    max_guidance_weight: float
    seed: int
    horizon_index: int = 0
    dims: tuple[int, ...] = (0, 1, 2)

    def view(self) -> View:
        return View().replace(
            prefix_attention_schedule=self.schedule,
            inference_delay=self.delay,
            execute_horizon=self.execute_horizon,
            num_flow_steps=STEPS,
            max_guidance_weight=self.max_guidance_weight,
            seed=self.seed,
            horizon_index=self.horizon_index,
            action_dim_indices=self.dims,
        )

    def query(self, epoch: int) -> dict[str, str]:
        """The link's query, as the app writes it back into the URL."""
        return app_state.to_query(Target(RUN, epoch, LEVEL), self.view())

    def url(self, base: str, epoch: int) -> str:
        return f"{base}/{PAGE}?" + urllib.parse.urlencode(self.query(epoch), safe="/,")

    def caption(self, epoch: int) -> str:
        return app_state.describe(Target(RUN, epoch, LEVEL), self.view())

    def changed(self) -> Selection:
        """The same selection with the next prefix schedule (what each session switches to in the sidebar)."""
        return dataclasses.replace(self, schedule=SCHEDULES[(SCHEDULES.index(self.schedule) + 1) % len(SCHEDULES)])


# Eight different selections; in each the guided prefix H - s (H = 8) is longer than the delay d,
# so the schedule acts and every selection (and its schedule-changed twin) draws different figures.
SELECTIONS = (
    Selection("exp", 1, 3, 5.0, 101),
    Selection("linear", 2, 4, 3.0, 102, horizon_index=1),
    Selection("ones", 0, 2, 5.0, 103, horizon_index=2, dims=(1,)),
    Selection("zeros", 3, 4, 8.0, 104),
    Selection("exp", 2, 5, 1.5, 105, horizon_index=3),
    Selection("linear", 1, 2, 10.0, 106, horizon_index=4, dims=(2, 3)),
    Selection("ones", 3, 3, 2.5, 107, horizon_index=5),
    Selection("zeros", 2, 3, 5.0, 108, horizon_index=6, dims=(0, 5)),
)
WARM_UP = Selection("exp", 3, 6, 5.0, 999)  # compiles the shared shape; not among the checked selections


@dataclasses.dataclass(frozen=True)
class Shown:
    """What a session's page shows for its selection."""

    caption: str | None
    query: dict[str, str]
    figures: tuple[str, ...]  # sha256 of each figure's PNG bytes, in page order
    charts: tuple[str, ...]  # sha256 of each chart's decoded screenshot pixels, in page order


def _demo_epoch() -> int:
    """The demo run's latest epoch (the links name it, so the caption is known exactly)."""
    runs = {run.path.resolve(): run for run in discover_runs(PROJECT / "runs")}
    return runs[(PROJECT / RUN).resolve()].latest_epoch


def _settle(page, label: str, timeout_ms: int) -> list[str]:
    """Wait until the page is drawn; return what is wrong with it (nothing when it is clean)."""
    try:
        page.wait_for_function(SETTLED, arg=TITLE, timeout=timeout_ms, polling=100)
    except Exception as err:
        main = page.locator('[data-testid="stMain"]').inner_text(timeout=5_000)[:1500]
        return [f"{label}: not drawn within {timeout_ms / 1000:.0f} s ({type(err).__name__}); it shows:\n{main}"]
    return _problems(page, label)


def _problems(page, label: str) -> list[str]:
    """An error or exception shown, a missing sidebar, or a chart or figure not drawn."""
    errors = page.locator(ERRORS).all_inner_texts()
    if errors:
        return [f"{label}: shows an error: {errors}"]
    if not page.locator('[data-testid="stSidebar"]').get_by_text("RTC settings").is_visible():
        main = page.locator('[data-testid="stMain"]').inner_text()[:600]
        return [f"{label}: no sidebar (the app's entrypoint did not run); the page shows:\n{main}"]
    if not page.evaluate(DRAWN, TITLE):
        return [f"{label}: not every chart and figure is drawn"]
    return []


def _settle_all(pages: list, label: str, timeout_ms: int) -> None:
    """Wait for every page; on any problem, screenshot every page and fail listing each session's problem."""
    problems = [p for i, page in enumerate(pages) for p in _settle(page, f"{label} {i}", timeout_ms)]
    if problems:
        for i, page in enumerate(pages):
            _screenshot(page, f"concurrent_failed_{label.replace(' ', '_')}_{i}")
        pytest.fail(f"{len(problems)} of {len(pages)} sessions went wrong:\n" + "\n".join(problems))


def _pixels_sha(png: bytes) -> str:
    """sha256 of decoded RGBA pixels (with the size), so PNG encoder settings cannot matter."""
    image = Image.open(io.BytesIO(png)).convert("RGBA")
    return hashlib.sha256(repr(image.size).encode() + np.asarray(image).tobytes()).hexdigest()


def _shown(page) -> Shown:
    """Caption, link, figure bytes and chart pixels of a drawn page."""
    figures = []
    for src in page.evaluate(IMAGE_SOURCES):
        response = page.context.request.get(src)
        assert response.ok, f"{src}: HTTP {response.status}"
        figures.append(hashlib.sha256(response.body()).hexdigest())
    charts = page.locator('[data-testid="stMain"] [data-testid="stVegaLiteChart"]')
    chart_shas = tuple(_pixels_sha(charts.nth(i).screenshot(animations="disabled")) for i in range(charts.count()))
    query = {key: values[-1] for key, values in urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query).items()}
    return Shown(page.evaluate(CAPTION), query, tuple(figures), chart_shas)


def _check(label: str, shown: Shown, selection: Selection, alone: Shown, epoch: int) -> None:
    """``shown`` names ``selection`` (caption and link) and equals what it showed alone."""
    assert shown.caption == selection.caption(epoch), f"{label}: caption {shown.caption!r} is not its selection's"
    assert shown.query == selection.query(epoch), f"{label}: link {shown.query} is not its selection's"
    assert shown.figures == alone.figures, f"{label}: figure PNGs differ from the same selection alone"
    assert shown.charts == alone.charts, f"{label}: chart pixels differ from the same selection alone"


@pytest.fixture(scope="module")
def epoch() -> int:
    return _demo_epoch()


@pytest.fixture(scope="module")
def alone(browser, epoch: int) -> dict[Selection, Shown]:
    """What every selection (and its schedule-changed twin) shows with one session at a time on its own server."""
    wanted = [*SELECTIONS, *(s.changed() for s in SELECTIONS)]
    shown: dict[Selection, Shown] = {}
    with serve_app("alone") as base, _sessions(browser, [WARM_UP.url(base, epoch)]) as (page,):
        _settle_all([page], "warm-up", FIRST_DRAW_MS)
        for k, selection in enumerate(wanted):  # each goto is a new page load, so a new Streamlit session
            page.goto(selection.url(base, epoch))
            _settle_all([page], f"alone {k}", DRAW_MS)
            shown[selection] = _shown(page)
            assert shown[selection].caption == selection.caption(epoch)
            assert shown[selection].query == selection.query(epoch)
            assert len(shown[selection].figures) == 1 and len(shown[selection].charts) == 1
    # Distinct figures and charts, so a session showing another's selection cannot pass unnoticed.
    assert len({s.figures for s in shown.values()}) == len(wanted)
    assert len({s.charts for s in shown.values()}) == len(wanted)
    return shown


@contextlib.contextmanager
def _sessions(browser, urls: list[str]) -> Iterator[list]:
    """One browser context (so one Streamlit session) per URL, all navigating at once; closed on exit."""
    pages = [_new_page(browser) for _ in urls]
    try:
        for page, url in zip(pages, urls, strict=True):
            page.goto(url, wait_until="commit")  # returns on the response; the app loads in all pages at once
        yield pages
    finally:
        for page in pages:
            page.context.close()


def _check_together(
    pages: list, alone: dict[Selection, Shown], epoch: int, timings: dict[str, float], started: float
) -> None:
    """The concurrent sessions of the first test: drawn, equal to alone, then all changed and equal again."""
    _settle_all(pages, "session", DRAW_MS)
    timings["concurrent_8_sessions_drawn_s"] = round(time.perf_counter() - started, 2)
    for i, (page, selection) in enumerate(zip(pages, SELECTIONS, strict=True)):
        _check(f"session {i} ({selection})", _shown(page), selection, alone[selection], epoch)

    # Every session switches its schedule; the reruns overlap (each starts as soon as its option is picked).
    befores = [page.evaluate(IMAGE_SOURCES) for page in pages]
    started = time.perf_counter()
    for page, selection in zip(pages, SELECTIONS, strict=True):
        _choose(page, "Prefix schedule", selection.changed().schedule)
    for i, (page, selection, before) in enumerate(zip(pages, SELECTIONS, befores, strict=True)):
        arg = {"caption": selection.changed().caption(epoch), "before": before, "title": TITLE}
        try:
            page.wait_for_function(REDRAWN, arg=arg, timeout=DRAW_MS, polling=100)
        except Exception as err:
            main = page.locator('[data-testid="stMain"]').inner_text()[:1500]
            raise AssertionError(f"session {i}: not redrawn after the schedule change ({err}):\n{main}") from None
        assert not (problems := _problems(page, f"session {i} after the change")), problems
    timings["concurrent_8_sessions_setting_changed_redrawn_s"] = round(time.perf_counter() - started, 2)
    for i, (page, selection) in enumerate(zip(pages, SELECTIONS, strict=True)):
        changed = selection.changed()
        _check(f"session {i} after the change ({changed})", _shown(page), changed, alone[changed], epoch)

    for i, page in enumerate(pages):
        _screenshot(page, f"concurrent_{i}")


def test_eight_sessions_at_once_each_get_what_they_get_alone(
    browser, alone: dict[Selection, Shown], epoch: int, timings: dict[str, float]
) -> None:
    """Eight sessions with different selections load at once, then all change a setting at once."""
    assert len(set(SELECTIONS)) == SESSIONS >= 8
    with serve_app("together") as base:
        with _sessions(browser, [WARM_UP.url(base, epoch)]) as warm:  # the first compile, before the crowd
            _settle_all(warm, "warm-up", FIRST_DRAW_MS)

        started = time.perf_counter()
        with _sessions(browser, [s.url(base, epoch) for s in SELECTIONS]) as pages:
            _check_together(pages, alone, epoch, timings, started)


def test_eight_sessions_arriving_at_a_fresh_server_each_get_what_they_get_alone(
    browser, alone: dict[Selection, Shown], epoch: int, timings: dict[str, float]
) -> None:
    """Eight shared links opened at once as the very first requests of a just-started server."""
    with serve_app("cold") as base:
        started = time.perf_counter()
        with _sessions(browser, [s.url(base, epoch) for s in SELECTIONS]) as pages:
            _settle_all(pages, "cold session", FIRST_DRAW_MS)
            timings["cold_server_8_sessions_drawn_s"] = round(time.perf_counter() - started, 2)
            for i, (page, selection) in enumerate(zip(pages, SELECTIONS, strict=True)):
                _check(f"cold session {i} ({selection})", _shown(page), selection, alone[selection], epoch)
            for i, page in enumerate(pages):
                _screenshot(page, f"concurrent_cold_{i}")
