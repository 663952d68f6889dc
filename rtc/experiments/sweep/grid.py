"""A sweep over levels × methods × delays × execute horizons, stored point by point (``rtc.experiments.sweep.store``).

``plan`` turns a run, an epoch, level keys and ``sweep.SweepSettings`` into tasks (validating every point
before any work), ``run_grid`` computes the points the store does not hold yet, in this process
(``evaluate``: the episodes of a point batched with ``vmap`` and sharded over local devices by
``rtc.experiments.rollout``) or on Ray (``rtc.experiments.sweep.ray_backend``), and adds each finished point to the
store. Every point uses episode seeds ``fold_in(key(seed), e)``, so the same point gives the same numbers on every
backend.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rtc.errors import LevelError, RunError, SettingsError
from rtc.experiments import rollout, sweep
from rtc.experiments.sweep import store as sweep_store
from rtc.io import levels, roots
from rtc.io.checkpoints import RunInfo, load_policy
from rtc.numerics import methods
from rtc.numerics.model import FlowPolicy

# progress(episodes_done, episodes_total, note) -> False to cancel
GridProgress = Callable[[int, int, str], "bool | None"]


class SweepCancelled(RuntimeError):
    """Raised when a progress callback returns False; finished points are already in the store."""


@dataclasses.dataclass(frozen=True, eq=False)
class LevelEntry:
    """One level of the grid: its checkpoint and level file, loaded, with their identities."""

    key: str
    checkpoint: Path
    level_path: Path
    policy: FlowPolicy
    level: levels.Level
    fingerprint: str
    level_sha256: str
    weak_checkpoint: Path | None = None  # BID's weak policy (``--bid-weak-epoch``), for bid_forward
    weak_policy: FlowPolicy | None = None
    weak_fingerprint: str | None = None
    # training_time_rtc's own policy (``--training-time-run``: trained with simulated delays); None: ``policy``
    training_time_checkpoint: Path | None = None
    training_time_policy: FlowPolicy | None = None
    training_time_fingerprint: str | None = None

    def for_method(self, method: str) -> tuple[FlowPolicy, str, Path]:
        """The policy a method runs on, its fingerprint and checkpoint (training-time RTC may have its own)."""
        if method in methods.TRAINING_TIME_METHODS and self.training_time_policy is not None:
            assert self.training_time_fingerprint is not None and self.training_time_checkpoint is not None
            return self.training_time_policy, self.training_time_fingerprint, self.training_time_checkpoint
        return self.policy, self.fingerprint, self.checkpoint

    def describe(self) -> dict[str, str]:
        described = {
            "checkpoint": str(self.checkpoint),
            "level_file": str(self.level_path),
            "level_sha256": self.level_sha256,
            "policy_fingerprint": self.fingerprint,
        }
        if self.weak_checkpoint is not None:
            described.update(bid_weak_checkpoint=str(self.weak_checkpoint), bid_weak_fingerprint=self.weak_fingerprint)
        if self.training_time_checkpoint is not None:
            described.update(
                training_time_checkpoint=str(self.training_time_checkpoint),
                training_time_fingerprint=str(self.training_time_fingerprint),
            )
        return described


@dataclasses.dataclass(frozen=True)
class Task:
    """One point: a level key and the rollout settings, with the key that identifies its result."""

    level: str
    point: rollout.RolloutSettings
    key: tuple[tuple[str, Any], ...]

    @property
    def point_id(self) -> str:
        return sweep_store.point_id(dict(self.key))


def choose_levels(run: RunInfo, epoch: int, keys: Sequence[str] | None) -> tuple[dict[str, Path], list[str]]:
    """``({key: level file}, keys skipped for lack of a file)``: ``keys`` (each must have a policy and a level
    file) or, when None, every key of the epoch that has a level file."""
    available = run.levels(epoch)
    candidates = roots.level_candidates()
    if keys is None:
        found = {key: roots.find_level_file(key, candidates) for key in available}
        chosen = {key: path for key, path in found.items() if path is not None}
        if not chosen:
            raise LevelError(
                f"no level of run {run.name} epoch {epoch} ({', '.join(available)}) has a level file in "
                f"worlds/, {roots.LEVEL_DIRS_ENV} or kinetix's levels"
            )
        return chosen, [key for key, path in found.items() if path is None]
    chosen = {}
    for key in dict.fromkeys(keys):
        if key not in available:
            raise RunError(
                f"level {key!r} has no policy in run {run.name} epoch {epoch}; accepted: {', '.join(available)}"
            )
        path = roots.find_level_file(key, candidates)
        if path is None:
            raise LevelError(
                f"level {key!r} has no level file in worlds/, {roots.LEVEL_DIRS_ENV} or kinetix's levels; "
                f"add its folder to {roots.LEVEL_DIRS_ENV}"
            )
        chosen[key] = path
    return chosen, []


def load_entries(
    run: RunInfo,
    epoch: int,
    chosen: dict[str, Path],
    weak_epoch: int | None = None,
    training_time: tuple[RunInfo, int] | None = None,
) -> list[LevelEntry]:
    """Load every chosen level's policy and level (checking they fit each other); with ``weak_epoch``, also the
    weak policy of BID's forward term from that (earlier) epoch of the same run; with ``training_time`` (a run and
    its epoch), the policy training-time RTC runs on instead of the run's own."""
    entries = []
    if weak_epoch is not None:
        weak_epoch = run.resolve_epoch(weak_epoch)
        if weak_epoch >= epoch:
            raise SettingsError(
                f"--bid-weak-epoch {weak_epoch} is not accepted: the weak policy must come from an epoch before the "
                f"evaluated one ({epoch}); accepted: {', '.join(str(e) for e in sorted(run.epochs) if e < epoch)}"
            )
    for key, path in chosen.items():
        checkpoint = run.checkpoint(epoch, key)
        policy = load_policy(checkpoint)
        level = levels.load_level(path)
        levels.check_obs_dim(level, policy.obs_dim)
        fingerprint = sweep.policy_fingerprint(policy)
        weak = {}
        if weak_epoch is not None:
            weak_checkpoint = run.checkpoint(weak_epoch, key)
            weak_policy = load_policy(weak_checkpoint)
            weak = dict(
                weak_checkpoint=weak_checkpoint,
                weak_policy=weak_policy,
                weak_fingerprint=sweep.policy_fingerprint(weak_policy),
            )
        if training_time is not None:
            tt_run, tt_epoch = training_time
            if key not in tt_run.levels(tt_epoch):
                raise RunError(
                    f"level {key!r} has no policy in the training-time RTC run {tt_run.path} epoch {tt_epoch}; "
                    f"accepted: {', '.join(tt_run.levels(tt_epoch))}"
                )
            tt_checkpoint = tt_run.checkpoint(tt_epoch, key)
            tt_policy = load_policy(tt_checkpoint)
            weak.update(
                training_time_checkpoint=tt_checkpoint,
                training_time_policy=tt_policy,
                training_time_fingerprint=sweep.policy_fingerprint(tt_policy),
            )
        entries.append(
            LevelEntry(key, checkpoint, path, policy, level, fingerprint, sweep_store.file_sha256(path), **weak)
        )
    return entries


def plan(entries: Sequence[LevelEntry], settings: sweep.SweepSettings) -> list[Task]:
    """Every point of the grid, validated (``SettingsError`` before any work)."""
    tasks = []
    for entry in entries:
        points = settings.points(entry.policy.action_chunk_size)
        for point in points:
            policy, fingerprint, checkpoint = entry.for_method(point.method)
            methods.check_method(
                point.method,
                policy,
                str(checkpoint),
                point.inference_delay,
                entry.weak_policy,
                point.bid_k,
                point.bid_samples,
            )
            key = sweep_store.point_key(fingerprint, entry.level_sha256, point, entry.weak_fingerprint)
            tasks.append(Task(entry.key, point, tuple(key.items())))
    if not tasks:
        raise SettingsError("the grid is empty: no execute horizon satisfies max(1, d) <= s <= H for these delays")
    return tasks


def evaluate(
    policy: FlowPolicy,
    level: levels.Level,
    level_key: str,
    point: rollout.RolloutSettings,
    on_segment: Callable[[rollout.Progress], bool | None] | None = None,
    weak_policy: FlowPolicy | None = None,
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """One point's statistics (``sweep.point_row``), its episodes (``sweep.episode_records``) and the seconds it
    took; ``weak_policy`` serves BID's forward term."""
    started = time.perf_counter()
    result = rollout.run_rollout(
        policy, level, point, record=False, progress_callback=on_segment, weak_policy=weak_policy
    )
    chunk = policy.action_chunk_size
    stats = sweep.point_row(level_key, point, result, chunk)
    return stats, sweep.episode_records(level_key, point, result, chunk), time.perf_counter() - started


def row_for(task: Task, entry: LevelEntry, stats: dict[str, Any], backend: str, seconds: float) -> dict[str, Any]:
    return sweep_store.store_row(stats, dict(task.key), str(entry.level_path), backend, seconds)


def run_in_process(
    entries: Sequence[LevelEntry], tasks: Sequence[Task], store: sweep_store.ResultsStore, progress: GridProgress
) -> None:
    by_key = {entry.key: entry for entry in entries}
    total = sum(t.point.num_episodes for t in tasks)
    done = 0
    for index, task in enumerate(tasks):
        entry = by_key[task.level]
        note = f"point {index + 1}/{len(tasks)}: {task.level} {task.point.method} d={task.point.inference_delay} s="
        note += str(task.point.execute_horizon)

        def on_segment(p: rollout.Progress, note=note, done=done) -> bool | None:
            return progress(done, total, f"{note} step {p.steps_done}/{p.total_steps}")

        try:
            policy = entry.for_method(task.point.method)[0]
            stats, episodes, seconds = evaluate(
                policy, entry.level, entry.key, task.point, on_segment, entry.weak_policy
            )
        except rollout.RolloutCancelled:
            raise SweepCancelled(f"sweep cancelled at point {index + 1}/{len(tasks)}") from None
        store.add(row_for(task, entry, stats, "in-process", seconds), episodes)
        done += task.point.num_episodes
        if progress(done, total, note) is False and index + 1 < len(tasks):
            raise SweepCancelled(f"sweep cancelled after point {index + 1}/{len(tasks)}")
