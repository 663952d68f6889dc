"""Command line: the paper's closed-loop sweep, stored point by point and resumable.

    rtc-sweep RUN --out DIR [--preset paper|quick] [--epoch E] [--levels KEY...] [--methods naive rtc_exp ...]
        [--delays D...] [--execute-horizons all|min|max|S...] [--episodes N] [--episode-steps T]
        [--flow-steps 5] [--bid-samples 16] [--action-noise 0.1] [--seed 0] [--ray [ADDRESS]]

Defaults are the paper's, declared once with ``SweepSettings`` (``rtc.experiments.settings``): every level the
checkpoint has a policy and a level file for, naive, RTC (exp), hard masking and BID (N = 16), d = 0..4, every s
with max(1, d) <= s <= H - d, 2048 episodes of 256 steps, 5 flow steps, action noise 0.1, maximum guidance
weight 5. Results go to ``DIR/results.parquet`` (one row
per point, see ``rtc.experiments.sweep.store``) and ``DIR/manifest.json``; a rerun computes only missing points.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

from rtc.commands import flags
from rtc.errors import RTCError, SettingsError
from rtc.experiments.fields import settings_of
from rtc.experiments.settings import SWEEP_PRESETS, RolloutSettings, SweepSettings

# Every flag of a sweep's settings: SweepSettings' fields (--methods, --delays, --execute-horizons, --levels) and its
# template's (--episodes, --episode-steps, --flow-steps, --bid-samples, --action-noise, --seed).
SWEEP_FLAGS = settings_of(SweepSettings)
POINT_FLAGS = settings_of(RolloutSettings)
PRESETS = SWEEP_PRESETS


def build_parser() -> argparse.ArgumentParser:
    parser = flags.Parser(
        prog="rtc-sweep",
        description="Evaluate methods × delays × execute horizons in closed loop on a run's levels; results are "
        "stored point by point in DIR/results.parquet and a rerun computes only missing points. Defaults are the "
        "paper's (--preset paper).",
    )
    parser.add_argument("run_path", type=Path, help="training run folder (<run>/<epoch>/policies/<level_key>)")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.parquet and manifest.json")
    parser.add_argument("--epoch", type=int, default=-1, help="checkpoint epoch; -1 = latest")
    parser.add_argument(
        "--preset",
        default=None,
        metavar="|".join(PRESETS),
        help=" ".join(f"{name}: {preset.help}" for name, preset in PRESETS.items()) + " Explicit flags override it.",
    )
    default = SweepSettings()
    flags.add_setting_flags(parser, SWEEP_FLAGS, kind="sweep_flag", shown=default.__dict__)
    flags.add_setting_flags(parser, POINT_FLAGS, kind="sweep_flag", shown=default.template.__dict__)
    parser.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run points as Ray tasks: alone, a local Ray instance (or RAY_ADDRESS); with ADDRESS, join that cluster",
    )
    return parser


def sweep_settings(args: argparse.Namespace) -> SweepSettings:
    """The invocation's settings: the preset's (the paper's without one), then the flags given, each checked
    (``SettingsError`` naming the flag and what is accepted)."""
    if args.preset is not None and args.preset not in PRESETS:
        raise SettingsError(f"--preset {args.preset!r} is not accepted; choose one of {', '.join(PRESETS)}")
    chosen = PRESETS[args.preset].settings if args.preset else SweepSettings()
    point = flags.given_values(args, POINT_FLAGS)
    grid = flags.given_values(args, SWEEP_FLAGS)
    settings = dataclasses.replace(chosen, template=dataclasses.replace(chosen.template, **point), **grid)
    settings.validate()
    return settings


def check_args(args: argparse.Namespace) -> SweepSettings:
    """Every value that can be checked without loading anything (``SettingsError`` naming it); the settings."""
    settings = sweep_settings(args)
    if args.out.exists() and not args.out.is_dir():
        raise RTCError(f"--out {args.out} is a file; accepted: a folder (created when missing)")
    return settings


def run(args: argparse.Namespace) -> tuple[int, int]:
    """Plan (every check before any work), compute the missing points, write the manifest; ``(computed, reused)``."""
    settings = check_args(args)
    ray_address = False if args.ray is None else args.ray
    from rtc.experiments import pipeline
    from rtc.experiments.sweep import grid as sweep_grid
    from rtc.experiments.sweep import ray_backend as sweep_ray
    from rtc.experiments.sweep import run as sweep_run
    from rtc.experiments.sweep import store as sweep_store

    if ray_address is not False:
        sweep_ray.require_ray()
    from rtc.io.checkpoints import open_run

    run_info = open_run(args.run_path)
    epoch = run_info.resolve_epoch(args.epoch)
    run_path = str(run_info.path.resolve())
    sweep_store.check_same_run(args.out, run_path, epoch)
    chosen, skipped = sweep_grid.choose_levels(run_info, epoch, list(settings.levels) or None)
    for key in skipped:
        tqdm.write(f"note: level {key} has no level file (worlds/, RTC_LEVEL_DIRS, kinetix); skipped", file=sys.stderr)
    entries = sweep_grid.load_entries(run_info, epoch, chosen)
    tasks = sweep_grid.plan(entries, settings)
    chunk_sizes = {e.key: e.policy.action_chunk_size for e in entries}
    warnings = {w: None for t in tasks for w in t.point.validate(chunk_sizes[t.level])}
    for warning in warnings:
        tqdm.write(f"warning: {warning}", file=sys.stderr)
    store = sweep_store.ResultsStore(args.out)
    pipeline.enable_compilation_cache()
    backend = "in-process" if ray_address is False else f"ray {ray_address or 'local'}"
    with tqdm(total=0, desc="rtc-sweep", unit="episode", file=sys.stderr, dynamic_ncols=True) as bar:

        def progress(done: int, total: int, note: str) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(note[-60:], refresh=False)
            bar.refresh()

        already = ray_address is not False and sweep_ray.require_ray().is_initialized()
        try:
            computed, reused = sweep_run.run_grid(entries, tasks, store, progress, ray_address)
        finally:
            if ray_address is not False and not already:  # leave a connection this process made before alone
                import ray

                if ray.is_initialized():
                    ray.shutdown()
    invocation = sweep_store.Invocation(backend, computed, reused, tuple(t.point_id for t in tasks))
    levels = {e.key: e.describe() for e in entries}
    sweep_store.write_manifest(args.out, run_path, epoch, levels, settings, invocation)
    if not store.path.exists():
        store.write()
    return computed, reused


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # XLA's C++ log lines would bury the progress bar
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a refused flag (one line already printed)
        return int(done.code or 0)
    try:
        computed, reused = run(args)
    except RTCError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.strerror or err}: {err.filename or ''}".rstrip(": "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"interrupted: finished points are kept in {args.out / 'results.parquet'}", file=sys.stderr)
        return 130
    print(f"points: {computed} computed, {reused} reused")
    print(f"results: {args.out / 'results.parquet'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
