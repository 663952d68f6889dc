"""Start ``streamlit run streamlit_app.py`` on a free local port for the browser tests, and Chromium for them."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FIXTURE_RUN, LEROBOT_TRACES
from tests.conftest import PROJECT_ROOT as PROJECT

ARTIFACTS = PROJECT / "test-artifacts"
CHROMIUM = os.environ.get("RTC_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HEALTH_TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200 and response.read().strip() == b"ok"
    except OSError:
        return False


@pytest.fixture(scope="session")
def timings() -> Iterator[dict[str, float]]:
    """Measured times, written to ``test-artifacts/timings.json`` at the end of the session."""
    measured: dict[str, float] = {}
    yield measured
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "timings.json").write_text(json.dumps(measured, indent=2) + "\n")


@contextlib.contextmanager
def serve_app(name: str) -> Iterator[str]:
    """A fresh ``streamlit run streamlit_app.py`` on a free port, logging to ``test-artifacts/streamlit-<name>.log``.

    Run roots are the demo runs and the paper-format fixture run; trace roots the project's ``traces/`` and
    the LeRobot recordings (``tests.conftest.LEROBOT_TRACES``). Yields the base URL once
    ``/_stcore/health`` answers; afterwards the log must hold no traceback.
    """
    port = _free_port()
    env = dict(
        os.environ,
        RTC_RUNS_ROOTS=os.pathsep.join([str(PROJECT / "runs"), str(FIXTURE_RUN.resolve())]),
        RTC_TRACES_ROOTS=os.pathsep.join([str(PROJECT / "traces"), str(LEROBOT_TRACES.resolve())]),
    )
    ARTIFACTS.mkdir(exist_ok=True)
    log_path = ARTIFACTS / f"streamlit-{name}.log"
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + HEALTH_TIMEOUT_S
            while not _healthy(f"{base}/_stcore/health"):
                if server.poll() is not None:
                    pytest.fail(f"streamlit exited with {server.returncode}; see {log_path}")
                if time.monotonic() > deadline:
                    pytest.fail(f"streamlit did not answer /_stcore/health within {HEALTH_TIMEOUT_S} s")
                time.sleep(0.25)
            yield base
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text, (
        f"the server logged an exception (see {log_path}):\n{text[text.index('Traceback') :][:3000]}"
    )


@pytest.fixture(scope="session")
def app_server(timings: dict[str, float]) -> Iterator[str]:
    """The app's base URL (see ``serve_app``), shared by the browser tests."""
    started = time.perf_counter()
    with serve_app("e2e") as base:
        timings["server_healthy_s"] = round(time.perf_counter() - started, 2)
        timings["_server_started"] = started
        yield base
        timings.pop("_server_started", None)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (Playwright's own browser download is not used)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
