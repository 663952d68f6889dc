"""App figures for ``benchmarks/run.py`` (run in a fresh process; prints its rows as JSON on the last line).

- warm latency: a settings change to every figure of the x_t page built, server side (AppTest rerun),
  on a full-size model (random weights, saved in the project's format in a temporary run root);
- cold start: ``streamlit run`` in a fresh process until headless Chromium shows the first chart, against the
  import yardstick (``python -c "import jax, jax.numpy as jnp, flax.nnx, matplotlib.figure"``) timed in the same
  run, before each start (issue 23: at most 3 times the yardstick);
- bundle: building the whole-report zip;
- memory: peak resident memory after 100 distinct selections against after the first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def row(name: str, value: float, unit: str, target: str = "", ok: bool | None = None) -> dict:
    return {"section": "app", "name": name, "value": value, "unit": unit, "target": target, "ok": ok}


def make_full_size_run(root: Path) -> None:
    """A run with a full-size (paper config) policy for grasp_easy, random weights, project format."""
    from flax import nnx

    from rtc.io.checkpoints import save_policy
    from rtc.numerics.model import FlowPolicy, ModelConfig

    policy = FlowPolicy(679, 6, ModelConfig(), rngs=nnx.Rngs(0))
    save_policy(policy, root / "full_size" / "0" / "policies" / "worlds_l_grasp_easy", level="worlds/l/grasp_easy.json")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def warm_latency_and_memory(root: Path, selections: int) -> list[dict]:
    from streamlit.testing.v1 import AppTest

    os.environ["RTC_RUNS_ROOTS"] = str(root)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=900)
    at.query_params.update({"run": "full_size", "steps": "20"})
    at.run()
    at.switch_page("pages/x_t.py").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    after_first = peak_rss_mb()

    changes = [
        ("w_prefix_attention_schedule", "selectbox", ["linear", "ones", "zeros", "exp"]),
        ("w_max_guidance_weight", "number_input", [2.0, 3.5, 7.0, 5.0]),
        ("w_seed", "number_input", [1, 2, 3, 4]),
        ("w_inference_delay", "number_input", [2, 1, 2, 3]),
    ]
    times = []
    for key, kind, values in changes:
        for value in values:
            widget = getattr(at.sidebar, kind)(key=key)
            start = time.perf_counter()
            widget.set_value(value).run()
            times.append(time.perf_counter() - start)
            assert not at.exception and not at.error, (at.exception, at.error)
    warm = statistics.median(times)
    rows = [
        row("settings change -> x_t page built (server, full-size, median)", warm, "s", "<= 0.35", warm <= 0.35),
        row("settings change -> x_t page built (server, full-size, max)", max(times), "s"),
    ]

    for seed in range(100, 100 + selections):
        at.sidebar.number_input(key="w_seed").set_value(seed).run()
    after_many = peak_rss_mb()
    ratio = after_many / after_first
    rows += [
        row("peak RSS after the first selection", after_first, "MB"),
        row(f"peak RSS after {selections} more selections", after_many, "MB"),
        row("peak RSS ratio (many / first)", ratio, "x", "<= 1.5", ratio <= 1.5),
    ]
    return rows


def bundle_time() -> list[dict]:
    """The whole-report zip for the demo run, as the app's download button builds it (render workers warm)."""
    from rtc.experiments import pipeline
    from rtc.io import levels
    from rtc.io.checkpoints import load_policy, read_run
    from rtc.report import bundle, page_content, render

    policy = load_policy(read_run(ROOT / "runs" / "demo").checkpoint(-1, "worlds_l_grasp_easy"))
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    result = pipeline.inspect(policy, level, pipeline.RTCSettings())

    def build(executor=None) -> bytes:
        figures, charts, sections = page_content.report_content(result, 0, 0, (0, 1, 2))
        return bundle.build_bundle(
            result, bundle.BundleContent(figures, charts, {"run": "demo"}, sections), executor=executor
        )

    with render.render_pool() as pool:
        start = time.perf_counter()
        build(pool)
        first = time.perf_counter() - start  # includes starting the workers
        times: dict[str, list[float]] = {"pool": [], "inline": []}
        for _ in range(3):  # interleaved, so both see the same machine load
            for mode, executor in (("pool", pool), ("inline", None)):
                start = time.perf_counter()
                data = build(executor)
                times[mode].append(time.perf_counter() - start)
    seconds = statistics.median(times["pool"])
    return [
        row("whole-report bundle build, app (render workers, median of 3)", seconds, "s", "<= 3", seconds <= 3),
        row("whole-report bundle build, first (starting the workers)", first, "s"),
        row("whole-report bundle build, inline (no workers, median of 3)", statistics.median(times["inline"]), "s"),
        row("whole-report bundle size", len(data) / 2**20, "MB"),
    ]


YARDSTICK = [sys.executable, "-c", "import jax, jax.numpy as jnp, flax.nnx, matplotlib.figure"]


def yardstick() -> float:
    start = time.perf_counter()
    subprocess.run(YARDSTICK, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cold_start(cache: Path, label: str) -> list[dict]:
    """Fresh ``streamlit run`` process until Chromium shows the overview's first chart, on the demo run."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {**os.environ, "RTC_RUNS_ROOTS": str(ROOT / "runs"), "RTC_JAX_CACHE": str(cache)}
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
    ]
    start = time.perf_counter()
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not _healthy(f"http://127.0.0.1:{port}/_stcore/health"):
            if time.perf_counter() - start > 120:
                raise TimeoutError("server did not become healthy")
            time.sleep(0.1)
        healthy = time.perf_counter() - start
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.wait_for_selector("[data-testid='stImage'] img, .vega-embed canvas, .vega-embed svg", timeout=180_000)
            drawn = time.perf_counter() - start
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return [
        row(f"cold start ({label}): process -> /_stcore/health", healthy, "s"),
        row(f"cold start ({label}): process -> first page drawn (Chromium)", drawn, "s"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="rtc_app_bench_"))
    try:
        rows = []
        if shutil.which("chromium") or Path(CHROMIUM).exists():
            for label in ("empty compile cache", "compile cache filled by the previous start"):
                seconds = yardstick()  # just before, so both see the same machine load
                rows.append(row(f"yardstick before the cold start ({label})", seconds, "s"))
                rows += cold_start(root / "jax_cache", label)
                ratio = rows[-1]["value"] / seconds
                rows.append(row(f"cold start ({label}) / yardstick", ratio, "x", "<= 3", ratio <= 3))
        make_full_size_run(root)
        rows += bundle_time()
        rows += warm_latency_and_memory(root, selections=20 if args.quick else 100)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
