"""Every figure of rtc.report.plots and rtc.report.plots_analysis, drawn from the demo run: no two texts overlap
and none leaves the canvas.

The texts are the ones the renderer actually draws (titles, axis and tick labels, offset texts, legend
entries, colorbar labels, annotations), recorded at ``draw_text`` and measured with ``get_window_extent``.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

from rtc.experiments import pipeline, rollout, sweep
from rtc.io import levels
from rtc.io.checkpoints import load_policy, read_run
from rtc.numerics import diagnostics, methods, seeds
from rtc.numerics.sampler import GuidanceSettings
from rtc.report import plots
from rtc.report import plots_analysis as pa
from rtc.report.figure_layout import GridLayout, unhandled_reason
from tests.conftest import DEMO_RUN, PROJECT_ROOT

LEVEL = "grasp_easy"
STEPS = 6
# One valid point of the paper's range (every region present) and the tracking document's example (d = 3,
# s = 6 with H = 8: index 2 is frozen on the previous chunk's zero padding).
TIMINGS = {"valid": (2, 5), "doc_example": (3, 6)}
TOLERANCE_PX = 0.5


@functools.cache
def demo_policy():
    return load_policy(read_run(DEMO_RUN).checkpoint(-1, f"worlds_l_{LEVEL}"))


@functools.cache
def demo_level():
    return levels.load_level(PROJECT_ROOT / "worlds" / "l" / f"{LEVEL}.json")


@functools.cache
def demo_inspection(d: int, s: int) -> pipeline.Inspection:
    settings = pipeline.RTCSettings(num_flow_steps=STEPS, inference_delay=d, execute_horizon=s, batch_size=2)
    return pipeline.inspect(demo_policy(), demo_level(), settings)


def demo_rollout(ins: pipeline.Inspection, episode_steps: int = 48) -> SimpleNamespace:
    """A one-episode rollout's arrays as ``rollout.Rollout`` holds them (a real closed loop compiles for
    minutes on this machine), from the demo chunks: block j executes the previous chunk's actions s..s+d-1,
    then the new chunk's d..s-1; the jump is ``||a_t - a_(t-1)||`` at every switch ``t = j s + d``."""
    settings = rollout.RolloutSettings(inference_delay=2, execute_horizon=4, episode_steps=episode_steps)
    d, s = settings.inference_delay, settings.execute_horizon
    chunks = np.concatenate([ins.tracked["action"], ins.plain["action"]])  # real chunks of the demo policy
    chunk = [chunks[j % len(chunks)] for j in range(episode_steps // s + 1)]
    blocks = [chunk[0][:s]] + [np.concatenate([chunk[j - 1][s : s + d], chunk[j][d:s]]) for j in range(1, len(chunk))]
    actions = np.concatenate(blocks)[:episode_steps]
    steps = np.linalg.norm(np.diff(actions, axis=0), axis=-1)
    switches = np.arange(d, episode_steps, s)
    jumps = np.full(episode_steps, np.nan)
    jumps[switches] = steps[switches - 1]
    return SimpleNamespace(
        settings=settings,
        actions=actions[None],
        jumps=jumps[None],
        lengths=np.array([episode_steps - 5]),
        chunk_starts=np.arange(0, episode_steps, s),
        returns=np.array([0.75]),
        solved=np.array([False]),
    )


def _figures(timing: str) -> dict[str, Callable[[], Figure]]:
    """Every plot_* function with the demo run's data, by qualified function name."""
    ins = demo_inspection(*TIMINGS[timing])
    rtc, plain, settings = ins.tracked, ins.plain, ins.settings
    d, p = int(rtc["inference_delay"]), int(rtc["prefix_attention_horizon"])
    horizon = rtc["action"].shape[1]

    def method_comparison() -> Figure:
        noise = methods.candidate_noise(jax.random.key(5), rtc["action"].shape, 3)
        inputs = methods.MethodInputs(ins.obs, rtc["prev_action_chunk"], noise, d, p, 5.0, STEPS)
        chunks = methods.compare_methods(demo_policy(), inputs, methods=methods.applicable_methods(demo_policy()))
        return pa.plot_method_comparison(
            chunks,
            rtc["prev_action_chunk"],
            d,
            methods.comparison_weights(d, p, horizon),
            0,
            None,
            prev_valid=int(rtc["prev_valid"]),
            execute_horizon=int(rtc["execute_horizon"]),
        )

    def seed_bands() -> Figure:
        guidance = GuidanceSettings.create(d, p, "exp", 5.0, chunk_size=horizon)
        result = seeds.seed_batch(demo_policy(), ins.obs[0], rtc["prev_action_chunk"][0], guidance, range(5), STEPS)
        return pa.plot_seed_bands(seeds.band_series(result, 1, 2), 1, 2)

    def sweep_figure() -> Figure:
        rows = [
            {
                "level": LEVEL,
                "method": method,
                "inference_delay": delay,
                "execute_horizon": sweep.execute_horizon_for(delay, horizon),
                "solve_rate": rate,
                "mean_return": rate - 0.4,
                "mean_boundary_jump": 0.3 + 0.1 * delay,
                "mean_length": 200.0,
                "episodes": 64,
            }
            for method, rates in (("naive", (0.9, 0.7, 0.4, 0.2)), ("rtc_exp", (0.9, 0.85, 0.8, 0.7)))
            for delay, rate in enumerate(rates)
        ]
        return pa.plot_sweep(rows, "mean_boundary_jump")

    curves = diagnostics.guidance_curves(settings.num_flow_steps, settings.max_guidance_weight)
    figures = {
        "plot_flow_matching_steps": lambda: plots.plot_flow_matching_steps(rtc, 1, 2, d),
        "plot_error_over_steps": lambda: plots.plot_error_over_steps(rtc, 0),
        "plot_comparison_grid": lambda: plots.plot_comparison_grid(rtc, 0, None, 1),
        "plot_chunk_overview": lambda: plots.plot_chunk_overview(rtc, 0, None, plain["action"]),
        "plot_method_comparison": method_comparison,
        "plot_schedule_weights": lambda: pa.plot_schedule_weights(
            diagnostics.schedule_weights_table(d, p, horizon), d, p, settings.prefix_attention_schedule
        ),
        "plot_guidance_weight": lambda: pa.plot_guidance_weight(curves, settings.max_guidance_weight),
        "plot_correction_vs_applied": lambda: pa.plot_correction_vs_applied(
            diagnostics.correction_vs_applied(rtc, 0, 1, 2), "batch 0, h=1, dim 2"
        ),
        "plot_heatmaps": lambda: pa.plot_heatmaps(diagnostics.heatmap_data(rtc, 0), rtc["time"]),
        "plot_seed_bands": seed_bands,
        "plot_rollout_trace": lambda: pa.plot_rollout_trace(demo_rollout(ins), 0),
        "plot_sweep": sweep_figure,
    }
    return {f"{(plots if hasattr(plots, name) else pa).__name__}.{name}": build for name, build in figures.items()}


FIGURE_FUNCTIONS = sorted(
    f"{module.__name__}.{name}"
    for module in (plots, pa)
    for name, value in vars(module).items()
    if name.startswith("plot_") and inspect.isfunction(value) and value.__module__ == module.__name__
)


COVERED = (
    "rtc.report.plots.plot_flow_matching_steps",
    "rtc.report.plots.plot_error_over_steps",
    "rtc.report.plots.plot_comparison_grid",
    "rtc.report.plots.plot_chunk_overview",
    "rtc.report.plots_analysis.plot_method_comparison",
    "rtc.report.plots_analysis.plot_schedule_weights",
    "rtc.report.plots_analysis.plot_guidance_weight",
    "rtc.report.plots_analysis.plot_correction_vs_applied",
    "rtc.report.plots_analysis.plot_heatmaps",
    "rtc.report.plots_analysis.plot_seed_bands",
    "rtc.report.plots_analysis.plot_rollout_trace",
    "rtc.report.plots_analysis.plot_sweep",
)
TIMING_FREE = {f"rtc.report.plots_analysis.plot_{name}" for name in ("seed_bands", "rollout_trace", "sweep")}


def test_every_figure_function_is_covered():
    """A new plot_* function fails here until it is added to COVERED (and to _figures)."""
    assert set(COVERED) == set(FIGURE_FUNCTIONS)


def drawn_text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """``(text, window box)`` of every text the renderer draws for ``fig``, in pixels."""
    canvas = FigureCanvasAgg(fig)
    renderer = canvas.get_renderer()
    drawn = {}
    draw_text = renderer.draw_text

    def record(gc, x, y, s, prop, angle, ismath=False, mtext=None):
        if mtext is not None:
            drawn[id(mtext)] = mtext
        return draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)

    renderer.draw_text = record
    try:
        fig.draw(renderer)
    finally:
        del renderer.draw_text
    return [(text.get_text(), text.get_window_extent(renderer)) for text in drawn.values()]


def overlaps(a: Bbox, b: Bbox) -> bool:
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width > TOLERANCE_PX and height > TOLERANCE_PX


def assert_texts_fit(fig: Figure) -> None:
    boxes = drawn_text_boxes(fig)
    assert len(boxes) > 5, "too few texts drawn to be a real figure"
    width, height = fig.canvas.get_width_height()
    outside = [
        (text, box.bounds)
        for text, box in boxes
        if box.x0 < -TOLERANCE_PX
        or box.y0 < -TOLERANCE_PX
        or box.x1 > width + TOLERANCE_PX
        or box.y1 > height + TOLERANCE_PX
    ]
    assert not outside, f"texts leave the {width}x{height} canvas: {outside}"
    clashes = [(t1, t2) for (t1, b1), (t2, b2) in itertools.combinations(boxes, 2) if overlaps(b1, b2)]
    assert not clashes, f"overlapping texts: {clashes}"


@pytest.mark.parametrize("timing", list(TIMINGS))
@pytest.mark.parametrize("name", COVERED)
def test_texts_neither_overlap_nor_leave_the_canvas(name: str, timing: str):
    if timing != "valid" and name in TIMING_FREE:
        pytest.skip("independent of the inspection's timing")
    assert_texts_fit(_figures(timing)[name]())


def test_colorbar_figures_go_to_constrained_layout():
    ins = demo_inspection(*TIMINGS["valid"])
    fig = pa.plot_heatmaps(diagnostics.heatmap_data(ins.tracked, 0), ins.tracked["time"])
    assert isinstance(fig.get_layout_engine(), GridLayout)
    assert unhandled_reason(fig) == "axes outside the grid (a colorbar or added axes)"
    grid = plots.plot_comparison_grid(ins.tracked)
    assert unhandled_reason(grid) is None


@pytest.mark.parametrize(("scale", "shift"), [(1e-5, 0.0), (1e7, 0.0), (1e-3, 1000.0)])
def test_titles_clear_the_offset_text_of_tiny_or_huge_values(scale: float, shift: float):
    """Values like 1e-5, 1e7 or 1000.001 get a y offset text ("1e−5", "+1e3") above the axes; titles clear it."""
    rtc = demo_inspection(*TIMINGS["valid"]).tracked
    changed = ("x_t", "v_t", "x_1_pred", "action", "prev_action_chunk")
    scaled = {key: np.asarray(value) * scale + shift if key in changed else value for key, value in rtc.items()}
    fig = plots.plot_flow_matching_steps(scaled, 0, 0, 0)
    assert_texts_fit(fig)
    assert any(ax.yaxis.get_offset_text().get_text() for ax in fig.axes)  # drawn by now
    assert_texts_fit(plots.plot_comparison_grid(scaled, 0, None, 0))
    assert_texts_fit(plots.plot_chunk_overview(scaled, 0, None, None))
