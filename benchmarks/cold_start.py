"""Cold start of the app on a fresh machine, against the import yardstick, measured interleaved in one run.

    python benchmarks/cold_start.py [--repeats 3] [--before /path/to/an/older/checkout] [--query "?steps=5"]

Each start is a fresh ``streamlit run streamlit_app.py --server.headless true`` with every cache empty: a new
temporary HOME and XDG_CACHE_HOME, ``RTC_JAX_CACHE`` (JAX's compilation cache, and next to it the exported
programs of ``rtc.io.export_cache``, the reset observations and the level pictures of ``rtc.io.levels``) and
``MPLCONFIGDIR`` (matplotlib's font cache) in fresh folders. Debian's Chromium (started before the server, as the
e2e tests do) opens the default view of the demo run and the times from starting the server process are taken:

- sidebar: the sidebar's title drawn;
- progress: a progress message (spinner, st.status or progress bar) visible;
- settings: the sidebar's RTC settings drawn;
- drawn: the overview finished and every chart and image of it drawn (``tests/e2e/test_browser.DRAWN``).

Then a second visit (a new browser tab on the same server) until drawn, and a restart: a new server with the
caches the first one left (``restart_*``). The yardstick is a fresh
``python -c "import jax, jax.numpy as jnp, flax.nnx, matplotlib.figure"``; each round runs yardstick, this
checkout and (with ``--before``) the older one, alternating the order, so all see the same machine load.
Prints a table and the rows as JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, _free_port, _healthy  # noqa: E402  (same browser set-up)
from tests.e2e.test_browser import DRAWN  # noqa: E402  (what "the page is drawn" means)

YARDSTICK = [sys.executable, "-c", "import jax, jax.numpy as jnp, flax.nnx, matplotlib.figure"]
TIMEOUT_S = 300
# What is visible now: the sidebar's title, a progress message anywhere, the sidebar's RTC settings.
PROBE = """() => {
  const side = document.querySelector('[data-testid="stSidebar"]');
  const title = !!side && [...side.querySelectorAll('h1')].some((h) => h.textContent.includes('RTC inspector'));
  const busy = '[data-testid="stSpinner"], [data-testid="stExpanderIconSpinner"], [data-testid="stProgress"]';
  const progress = [...document.querySelectorAll(busy)].some((e) => e.getBoundingClientRect().height > 0);
  const settings = !!side && [...side.querySelectorAll('label')].some((l) => l.textContent.includes('Seed'));
  return {sidebar: title, progress: progress, settings: settings};
}"""
EVENTS = ("healthy", "sidebar", "progress", "settings", "drawn", "second_visit")
REPORTED = (*EVENTS, "restart_sidebar", "restart_settings", "restart_drawn")


def yardstick() -> float:
    start = time.perf_counter()
    subprocess.run(YARDSTICK, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def fresh_env(app: Path, scratch: Path, restart: bool = False) -> dict[str, str]:
    """The environment of a fresh machine: every cache folder new and empty (``restart``: as a start left them)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RTC_", "JAX_", "XLA_"))}
    for name in ("home", "cache", "mpl"):
        (scratch / name).mkdir(parents=True, exist_ok=restart)
    env.update(
        HOME=str(scratch / "home"),
        XDG_CACHE_HOME=str(scratch / "cache"),
        MPLCONFIGDIR=str(scratch / "mpl"),
        RTC_JAX_CACHE=str(scratch / "cache" / "rtc-inspector" / "jax"),
        RTC_RUNS_ROOTS=str(app / "runs"),
        PYTHONPATH=str(app),
    )
    return env


def cold_start(browser, app: Path, query: str, scratch: Path | None = None) -> dict[str, float]:
    """Seconds from starting ``streamlit run`` in ``app`` to each of ``EVENTS``: with empty caches, or with those
    a previous start left in ``scratch`` (a restart)."""
    restart = scratch is not None
    scratch = scratch or Path(tempfile.mkdtemp(prefix="rtc_cold_"))
    port = _free_port()
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.port", str(port)]
    command += ["--server.address", "127.0.0.1", "--server.headless", "true"]
    base = f"http://127.0.0.1:{port}"
    times: dict[str, float] = {}
    log = (scratch / "server.log").open("w")
    start = time.perf_counter()
    env = fresh_env(app, scratch, restart)
    server = subprocess.Popen(command, cwd=app, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        while not _healthy(f"{base}/_stcore/health"):
            if server.poll() is not None or time.perf_counter() - start > TIMEOUT_S:
                raise RuntimeError(f"the server did not start; see {scratch / 'server.log'}")
            time.sleep(0.05)
        times["healthy"] = time.perf_counter() - start
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        page = context.new_page()
        page.goto(f"{base}/{query}", wait_until="commit")
        while "drawn" not in times:
            now = time.perf_counter() - start
            if now > TIMEOUT_S:
                raise RuntimeError(f"the overview was not drawn within {TIMEOUT_S} s; see {scratch / 'server.log'}")
            seen = page.evaluate(PROBE)
            for name, visible in seen.items():
                if visible and name not in times:
                    times[name] = now
            if page.evaluate(DRAWN, "Overview"):
                times["drawn"] = time.perf_counter() - start
            else:
                time.sleep(0.05)
        second = context.new_page()
        begin = time.perf_counter()
        second.goto(f"{base}/{query}", wait_until="commit")
        second.wait_for_function(DRAWN, arg="Overview", timeout=TIMEOUT_S * 1000, polling=50)
        times["second_visit"] = time.perf_counter() - begin
        context.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    text = (scratch / "server.log").read_text(errors="replace")
    if "Traceback" in text:
        raise RuntimeError(f"the server logged an exception:\n{text[text.index('Traceback') :][:3000]}")
    if restart:
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        times["_scratch"] = scratch  # type: ignore[assignment]  # kept for the restart
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before", type=Path, help="an older checkout to measure in the same run")
    parser.add_argument("--query", default="", help='the link opened, e.g. "?steps=5" (default: the default view)')
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    apps = {"this checkout": ROOT}
    if args.before:
        apps["before"] = args.before.resolve()
    samples: dict[str, list[dict[str, float]]] = {label: [] for label in apps}
    sticks: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for round_ in range(args.repeats):
            order = list(apps.items())
            if round_ % 2:
                order.reverse()
            sticks.append(yardstick())
            for label, app in order:
                cold = cold_start(browser, app, args.query)
                again = cold_start(browser, app, args.query, cold.pop("_scratch"))
                samples[label].append({**cold, **{f"restart_{k}": v for k, v in again.items()}})
                measured = ", ".join(f"{k} {v:.1f} s" for k, v in samples[label][-1].items())
                print(f"round {round_ + 1} {label}: {measured}", flush=True)
        browser.close()
    stick = statistics.median(sticks)
    rows = [{"name": "yardstick (import jax, flax.nnx, matplotlib.figure)", "median_s": stick, "ratio": 1.0}]
    for label, runs in samples.items():
        for event in REPORTED:
            values = [r[event] for r in runs if event in r]
            if values:
                median = statistics.median(values)
                rows.append({"name": f"{label}: {event}", "median_s": median, "ratio": median / stick, "all_s": values})
    print(f"yardstick runs: {', '.join(f'{s:.2f}' for s in sticks)} s")
    print(f"{'':45s} {'median':>8s} {'ratio':>7s}")
    for r in rows:
        print(f"{r['name']:45s} {r['median_s']:7.2f}s {r['ratio']:7.2f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
