"""Draw the README's tour pictures (docs/img/*.png) with the project's own figure builders: the inspection pages on
the demo run, and the mode-switch world's stored sweep (``runs/mode_switch/sweeps/paper_seed0``) as the Sweep page
draws it.

    python scripts/docs_images.py

The same figures the app's pages and the command line draw (``rtc.report.page_content``), for the demo run's latest
checkpoint on grasp_easy in the default view, rendered at a low resolution so the files stay small.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rtc import levels, load_policy, read_run  # noqa: E402
from rtc.experiments import pipeline  # noqa: E402
from rtc.experiments.sweep import store as sweep_store  # noqa: E402
from rtc.io.files import write_atomic  # noqa: E402
from rtc.report import page_content, plots_sweep, render  # noqa: E402

OUT = ROOT / "docs" / "img"
MODE_SWITCH_SWEEP = ROOT / "runs" / "mode_switch" / "sweeps" / "paper_seed0"
DPI = 60
PICTURES = {  # file stem: (page, horizon index, action dims)
    "overview": ("overview", 0, (0, 1)),
    "x_t": ("x_t", 1, (0,)),
    "error": ("error", 0, (0,)),
}


def main() -> None:
    policy = load_policy(read_run(ROOT / "runs" / "demo").checkpoint(-1, "worlds_l_grasp_easy"))
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    inspection = pipeline.inspect(policy, level, pipeline.RTCSettings())
    OUT.mkdir(parents=True, exist_ok=True)
    for stem, (page, h, dims) in PICTURES.items():
        (figure,) = page_content.page_figures(page, inspection, 0, h, dims).values()
        png = render.render_figure(figure, ("png",), dpi=DPI)["png"]
        write_atomic(OUT / f"{stem}.png", png)
        print(f"{OUT / f'{stem}.png'}: {len(png) // 1024} KiB")
    results = sweep_store.read_results(MODE_SWITCH_SWEEP / "results.parquet")
    comparisons = sweep_store.read_comparisons(MODE_SWITCH_SWEEP / "comparisons.parquet")
    for stem, figure in (
        ("mode_switch_sweep", plots_sweep.plot_sweep_summary(results)),
        ("mode_switch_differences", plots_sweep.plot_sweep_differences(comparisons)),
    ):
        png = render.render_figure(figure, ("png",), dpi=DPI)["png"]
        write_atomic(OUT / f"{stem}.png", png)
        print(f"{OUT / f'{stem}.png'}: {len(png) // 1024} KiB")


if __name__ == "__main__":
    main()
