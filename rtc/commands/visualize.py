"""Command line: plot what RTC did at every denoising step for one run, checkpoint and level.

    python examples/visualize_flow_matching.py <run_path> [--level-path worlds/l/grasp_easy.json]
        [--config.step -1] [--config.num-flow-steps 20] [--config.inference-delay D]
        [--config.execute-horizon S] [--config.max-guidance-weight 5.0]
        [--config.prefix-attention-schedule exp|linear|ones|zeros] [--config.action-dim-indices 0 1 2]
        [--config.batch-size 16] [--situation same-observation|protocol] [--preset tracking-doc]
        [--output-dir rtc_plots] [--seed 0]
    python examples/visualize_flow_matching.py --trace FILE [--output-dir rtc_plots] [--config.action-dim-indices 0 1 2]

With ``--trace`` it opens a recorded trace instead of running a policy: an RTC trace (format 1, see
``rtc.io.traces``, e.g. a ``rtc_tracked.npz`` written here) or a LeRobot debug-tracker file.

D and S default to the policy's ``protocol.default_timing(H)`` (d=2, s=4 for H=8).

Also installed as ``rtc-visualize``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm

from rtc.commands import flags
from rtc.errors import IndexRangeError, RTCError
from rtc.experiments.fields import settings_of
from rtc.experiments.settings import INSPECTION_PRESETS, LookSettings, RTCSettings
from rtc.io.files import write_atomic, write_json

# Named presets of --preset (explicit --config flags override them): ``settings.INSPECTION_PRESETS``.
PRESETS = INSPECTION_PRESETS
SETTINGS = settings_of(RTCSettings) + settings_of(LookSettings)  # those with a Spec.flag become flags


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="visualize_flow_matching.py",
        description="Run RTC with tracking on a checkpoint and a Kinetix level, and save every plot and array.",
    )
    parser.add_argument(
        "run_path",
        type=Path,
        nargs="?",
        default=None,
        help="training run folder (<run>/<epoch>/policies/<level_key>); not needed with --trace",
    )
    parser.add_argument(
        "--trace",
        type=Path,
        default=None,
        help="open a recorded trace instead of running a policy: an RTC trace (.npz, format 1) or a LeRobot "
        "debug-tracker file; writes the figures, rtc_tracked.npz (format 1) and summary.json",
    )
    parser.add_argument("--level-path", default="worlds/l/grasp_easy.json", help="Kinetix level JSON")
    parser.add_argument("--config.step", dest="step", type=int, default=-1, help="epoch; -1 = latest")
    parser.add_argument(
        "--preset",
        choices=tuple(PRESETS),
        default=None,
        help=" ".join(f"{name}: {preset.help}" for name, preset in PRESETS.items())
        + " Explicit --config flags override it.",
    )
    # a flag whose value a preset changes defaults to None, so that the preset applies where the flag is left out
    declared = RTCSettings()
    changed = {k for p in PRESETS.values() for k, v in p.values().items() if v != getattr(declared, k)}
    flags.add_setting_flags(parser, SETTINGS, unset=changed)
    parser.add_argument("--output-dir", type=Path, default=Path("rtc_plots"))
    parser.add_argument(
        "--legacy-threefry",
        action="store_true",
        help="draw noise as jax 0.4 did (jax_threefry_partitionable=False), to reproduce the paper's samples",
    )
    return parser


def settings_from_args(args: argparse.Namespace, chunk_size: int):
    """The ``RTCSettings`` of an invocation: the declared defaults for the policy's chunk size, then the preset,
    then the flags given."""
    preset = PRESETS[args.preset].values() if args.preset else {}
    given = {s.name: getattr(args, s.name) for s in settings_of(RTCSettings) if getattr(args, s.name) is not None}
    return RTCSettings(**{**preset, **given}).for_chunk_size(chunk_size)


def run(args: argparse.Namespace) -> dict:
    """Do the work of one invocation; returns a summary (raises ``RTCError`` on bad input)."""
    import jax

    if args.legacy_threefry:
        jax.config.update("jax_threefry_partitionable", False)
    from rtc.experiments import pipeline
    from rtc.io import levels, traces
    from rtc.io.checkpoints import load_policy, match_level_key, open_run
    from rtc.report import plots, render

    pipeline.enable_compilation_cache()
    started = time.perf_counter()
    # Workers start now and import matplotlib while this process loads and samples; at the end they build and
    # draw the figures from the sampled arrays.
    with (
        render.render_pool(_render_workers(), preload=("rtc.report.plots",), caller_renders=True) as pool,
        tqdm(total=4, desc="visualize", unit="phase", file=sys.stderr, leave=False) as bar,
    ):
        bar.set_postfix_str("loading checkpoint")
        run_info = open_run(args.run_path)
        epoch = run_info.resolve_epoch(args.step)
        level_path = levels.checked_level_path(levels.resolve_level_path(args.level_path))
        key = match_level_key(level_path, run_info.levels(epoch))
        policy = load_policy(run_info.checkpoint(epoch, key))
        bar.update()

        bar.set_postfix_str("resetting level")
        level = levels.open_level(level_path)  # read only if needed (see levels.reset_observation)
        settings = settings_from_args(args, policy.action_chunk_size)
        level_note = levels.paper_level_note(key, level_path)
        for warning in [*settings.validate(policy.action_chunk_size), *([level_note] if level_note else [])]:
            tqdm.write(f"warning: {warning}", file=sys.stderr)
        for index in args.action_dim_indices:
            if not 0 <= index < policy.action_dim:
                raise IndexRangeError(
                    f"--config.action-dim-indices {index} is out of range; accepted 0..{policy.action_dim - 1}"
                )
        bar.update()

        bar.set_postfix_str("sampling (compiles on first use)")
        result = pipeline.inspect(policy, level, settings)
        bar.update()

        bar.set_postfix_str("saving plots")
        out = args.output_dir
        # Both sets in one round, so the render workers never wait for the second one.
        dims = args.action_dim_indices
        rtc_figures = plots.tracking_figure_makers(result.tracked, 0, dims, plain_action=result.plain["action"])
        figures = {f"rtc_{name}": make for name, make in rtc_figures.items()}
        figures |= {f"plain_{name}": make for name, make in plots.tracking_figure_makers(result.plain, 0, dims).items()}
        paths = plots.write_pngs(figures, out, executor=pool)
        arrays = result.arrays(run=str(run_info.path), epoch=epoch, level_key=key)
        write_atomic(out / "rtc_tracked.npz", traces.to_bytes(arrays))
        summary = {
            "run": str(run_info.path),
            "epoch": epoch,
            "level": str(level_path),
            "level_key": key,
            "settings": settings.to_dict(),
            "situation": {"name": settings.situation, "description": result.situation_label},
            "legacy_threefry": bool(args.legacy_threefry),
            "warnings": list(result.warnings) + ([level_note] if level_note else []),
            "metrics": result.summary,
            "files": [Path(p).name for p in paths] + ["rtc_tracked.npz", "summary.json"],
            "seconds": round(time.perf_counter() - started, 2),
        }
        write_json(out / "summary.json", summary)
        bar.update()
    return summary


def _render_workers() -> int:
    """Render workers besides this process, which renders too once it has sampled: one per further core (1..3)."""
    return max(1, min(3, (os.cpu_count() or 2) - 1))


def run_trace(args: argparse.Namespace) -> dict:
    """Open a recorded trace (``--trace``): its figures, ``rtc_tracked.npz`` in format 1 and ``summary.json``."""
    from rtc.io import traces
    from rtc.report import plots

    started = time.perf_counter()
    trace = traces.read_trace(args.trace)  # before any progress output: a refused file gives one line
    _, _, _, action_dim = trace.shape
    for index in args.action_dim_indices:
        if not 0 <= index < action_dim:
            raise IndexRangeError(
                f"--config.action-dim-indices {index} is out of range; accepted 0..{action_dim - 1} "
                f"(the trace has {action_dim} action dims)"
            )
    for note in trace.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in trace.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    out = args.output_dir
    figures = trace_figures(trace, args.action_dim_indices)
    with tqdm(total=1, desc="saving plots", unit="set", file=sys.stderr, leave=False) as bar:
        paths = plots.write_pngs(figures, out)
        write_atomic(out / "rtc_tracked.npz", traces.to_bytes(trace.arrays()))
        bar.update()
    summary = {
        "trace": {
            "path": str(args.trace),
            "source": trace.source,
            "format": traces.FORMAT,
            "version": traces.VERSION,
            "kind": "rtc" if trace.is_rtc else "first chunk (plain only)",
            "jacobian_free": trace.jacobian_free,
            "shape": dict(zip(("steps", "batch", "chunk_size", "action_dim"), trace.shape, strict=True)),
            "action_names": trace.action_names,
        },
        "settings": trace.settings.to_dict(),
        "notes": list(trace.notes),
        "warnings": list(trace.warnings),
        "metrics": trace.summary,
        "files": [Path(p).name for p in paths] + ["rtc_tracked.npz", "summary.json"],
        "seconds": round(time.perf_counter() - started, 2),
    }
    write_json(out / "summary.json", summary)
    return summary


def trace_figures(trace, dims: list[int]) -> dict:
    """The figures of a trace by file stem: ``rtc_…`` for its RTC call, ``plain_…`` for its plain sample."""
    from rtc.report import plots

    figures = {}
    if trace.is_rtc:
        plain_action = trace.plain["action"] if trace.plain is not None else None
        rtc = plots.tracking_figures(trace.tracked, 0, dims, plain_action=plain_action)
        figures |= {f"rtc_{name}": fig for name, fig in rtc.items()}
    if trace.plain is not None:
        figures |= {f"plain_{name}": fig for name, fig in plots.tracking_figures(trace.plain, 0, dims).items()}
    return figures


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.trace is not None:
            summary = run_trace(args)
        elif args.run_path is None:
            raise RTCError("give a training run folder (run_path) or a recorded trace (--trace FILE)")
        else:
            summary = run(args)
    except RTCError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. an output folder that cannot be written
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    print(f"Saved {len(summary['files'])} files to {args.output_dir}/ in {summary['seconds']} s")
    for name, value in summary["metrics"].items():
        shown = "undefined" if value is None else str(value) if isinstance(value, int) else f"{value:.4f}"
        print(f"  {name:32s} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
