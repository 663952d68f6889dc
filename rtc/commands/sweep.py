"""Command line: the paper's closed-loop sweep, stored point by point and resumable.

    rtc-sweep RUN --out DIR [--preset paper|quick] [--epoch E] [--levels KEY...] [--methods naive rtc_exp ...]
        [--delays D...] [--execute-horizons all|min|max|S...] [--episodes N] [--episode-steps T]
        [--flow-steps 5] [--bid-samples 16] [--bid-k 2] [--bid-weak-epoch E] [--training-time-run RUN]
        [--action-noise 0.1] [--seed 0] [--baseline naive] [--ray [ADDRESS]] [--ray-timeout 15]

Defaults are the paper's, declared once with ``SweepSettings`` (``rtc.experiments.settings``): every level the
checkpoint has a policy and a level file for, naive, RTC (exp), hard masking and BID (N = 16), d = 0..4, every s
with max(1, d) <= s <= H - d, 2048 episodes of 256 steps, 5 flow steps, action noise 0.1, maximum guidance
weight 5. Results go to ``DIR/results.parquet`` (one row per point), ``DIR/episodes.parquet`` (one row per
episode), ``DIR/comparisons.parquet`` (each method against ``--baseline``, paired) and ``DIR/manifest.json`` (see
``rtc.experiments.sweep.store``); a rerun computes only missing points.
``bid_forward`` (BID with its forward term) needs ``--bid-weak-epoch`` (an earlier epoch of the same run);
``training_time_rtc`` needs policies trained for it (``rtc.training.flow.TrainConfig.max_simulated_delay``):
``--training-time-run`` (default: the run's ``training_time/`` sub-run when it exists, else the run itself); the
other methods run on the run's own policies, as the paper compares them.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

# XLA's C++ log lines (e.g. the compiled-program loader's, on every program read from the compilation cache) would
# bury the progress bar. The level is read once, when jaxlib loads, so it is set before anything imports jax.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

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
RAY_TIMEOUT_S = 15.0  # rtc.experiments.sweep.ray_backend.DEFAULT_TIMEOUT_S (not imported here: it imports jax)
RAY_TIMEOUT_RANGE = (0.1, 3600.0)
DEFAULT_BASELINE = "naive"
# A run's training-time RTC twin, trained from the same demonstrations and seed, lives in this sub-folder
# (``<run>/training_time/<epoch>/policies/<level_key>``); training_time_rtc points use it when it exists.
TRAINING_TIME_SUBRUN = "training_time"


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
        "--bid-weak-epoch",
        type=int,
        default=None,
        metavar="E",
        help="epoch of the same run whose policy is BID's weak policy (method bid_forward; must precede --epoch)",
    )
    parser.add_argument(
        "--training-time-run",
        type=Path,
        default=None,
        metavar="RUN",
        help="run trained for training-time RTC whose policies the training_time_rtc points use (same epoch as "
        f"--epoch, or its latest with -1); default: RUN/{TRAINING_TIME_SUBRUN} when it exists, else the run itself",
    )
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
    parser.add_argument(
        "--ray-timeout",
        type=float,
        default=RAY_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the --ray cluster to answer before giving up (default {RAY_TIMEOUT_S:g} s; "
        f"accepted {RAY_TIMEOUT_RANGE[0]:g}..{RAY_TIMEOUT_RANGE[1]:g})",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="METHOD",
        help="the method every other is compared with, paired, in comparisons.parquet (default: naive when swept; "
        "given, it must be one of --methods)",
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
    if "bid_forward" in settings.methods and args.bid_weak_epoch is None:
        raise SettingsError("--methods bid_forward needs --bid-weak-epoch E (an earlier epoch of the same run)")
    if args.baseline is not None and args.baseline not in settings.methods:
        raise SettingsError(
            f"--baseline {args.baseline!r} is not accepted; choose one of the swept --methods "
            f"({', '.join(settings.methods)})"
        )
    low, high = RAY_TIMEOUT_RANGE
    if not low <= args.ray_timeout <= high:  # also refuses nan
        raise SettingsError(f"--ray-timeout {args.ray_timeout:g} is out of range; accepted: {low:g}..{high:g} seconds")
    from rtc.experiments.sweep import store as sweep_store

    sweep_store.check_writable(args.out)
    return settings


def baseline(args: argparse.Namespace) -> str:
    """The method comparisons are made against: ``--baseline``, else naive."""
    return args.baseline or DEFAULT_BASELINE


def run(args: argparse.Namespace) -> tuple[int, int]:
    """Plan (every check before any work), write the manifest, compute the missing points, write the comparisons
    and complete the manifest's history entry; ``(computed, reused)``."""
    settings = check_args(args)
    ray_address = False if args.ray is None else args.ray
    from rtc.experiments.sweep import ray_backend as sweep_ray

    already = False
    if ray_address is not False:
        already = sweep_ray.require_ray().is_initialized()
        sweep_ray.connect(ray_address or None, timeout_s=args.ray_timeout)  # bounded: nothing written yet
    try:
        return _run_connected(args, settings, ray_address)
    finally:
        if ray_address is not False and not already:  # leave a connection this process made before alone
            import ray

            if ray.is_initialized():
                ray.shutdown()


def _run_connected(args: argparse.Namespace, settings: SweepSettings, ray_address: str | bool) -> tuple[int, int]:
    from rtc.experiments import pipeline, sweep
    from rtc.experiments.sweep import grid as sweep_grid
    from rtc.experiments.sweep import run as sweep_run
    from rtc.experiments.sweep import store as sweep_store
    from rtc.io.checkpoints import open_run

    run_info = open_run(args.run_path)
    epoch = run_info.resolve_epoch(args.epoch)
    run_path = str(run_info.path.resolve())
    chosen, skipped = sweep_grid.choose_levels(run_info, epoch, list(settings.levels) or None)
    for key in skipped:
        tqdm.write(f"note: level {key} has no level file (worlds/, RTC_LEVEL_DIRS, kinetix); skipped", file=sys.stderr)
    weak_epoch = args.bid_weak_epoch if "bid_forward" in settings.methods else None
    training_time = None
    if "training_time_rtc" in settings.methods:
        tt_path = args.training_time_run
        if tt_path is None and (run_info.path / TRAINING_TIME_SUBRUN).is_dir():
            tt_path = run_info.path / TRAINING_TIME_SUBRUN
        if tt_path is not None:
            tt_run = open_run(tt_path)
            training_time = (tt_run, tt_run.resolve_epoch(epoch if args.epoch != -1 else -1))
    entries = sweep_grid.load_entries(run_info, epoch, chosen, weak_epoch, training_time)
    notes: dict[str, None] = {}
    for chunk_size in sorted({e.policy.action_chunk_size for e in entries}):
        notes |= dict.fromkeys(sweep.check_grid(settings, chunk_size))
    tasks = sweep_grid.plan(entries, settings)
    levels = {e.key: e.describe() for e in entries}
    sweep_store.check_folder(args.out, run_path, epoch, settings, levels)
    for note in notes:
        tqdm.write(f"note: {note}", file=sys.stderr)
    chunk_sizes = {e.key: e.policy.action_chunk_size for e in entries}
    warnings = {w: None for t in tasks for w in t.point.validate(chunk_sizes[t.level])}
    for warning in warnings:
        tqdm.write(f"warning: {warning}", file=sys.stderr)
    base = baseline(args)
    if base not in settings.methods:
        tqdm.write(f"note: the baseline {base} is not swept, so comparisons.parquet stays empty", file=sys.stderr)
    store = sweep_store.ResultsStore(args.out)
    if store.dropped:
        tqdm.write(
            f"note: {store.dropped} stored points lacked their episodes or their row (an older or killed sweep); "
            "they are computed again",
            file=sys.stderr,
        )
    pipeline.enable_compilation_cache()
    backend = "in-process" if ray_address is False else f"ray {ray_address or 'local'}"
    invocation = sweep_store.Invocation(backend, tuple(dict.fromkeys(t.point_id for t in tasks)))
    sweep_store.start_manifest(args.out, run_path, epoch, levels, settings, invocation, base)
    missing = len({t.point_id for t in tasks if t.point_id not in store})
    computed, reused = 0, len(invocation.points) - missing
    status, note = "failed", ""
    with tqdm(total=0, desc="rtc-sweep", unit="episode", file=sys.stderr, dynamic_ncols=True) as bar:

        def progress(done: int, total: int, text: str) -> None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(text[-60:], refresh=False)
            bar.refresh()

        before = len(store)
        try:
            computed, reused = sweep_run.run_grid(
                entries, tasks, store, progress, ray_address, ray_timeout_s=args.ray_timeout
            )
            status = "finished"
        except KeyboardInterrupt:
            status, computed = "interrupted", len(store) - before
            raise
        except BaseException as err:
            computed, note = len(store) - before, f"{type(err).__name__}: {err}"
            raise
        finally:
            if not store.path.exists():
                store.write()
            store.write_comparisons(base)
            sweep_store.finish_manifest(args.out, invocation, status, computed, reused, note)
    return computed, reused


def main(argv: list[str] | None = None) -> int:
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
        results = args.out / "results.parquet"
        if results.exists():
            print(
                f"interrupted: finished points are kept in {results} and {args.out / 'episodes.parquet'}",
                file=sys.stderr,
            )
        else:
            print("interrupted before anything was stored", file=sys.stderr)
        return 130
    print(f"points: {computed} computed, {reused} reused")
    print(f"results: {args.out / 'results.parquet'}")
    print(f"episodes: {args.out / 'episodes.parquet'}; comparisons: {args.out / 'comparisons.parquet'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
