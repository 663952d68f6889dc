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

    def describe(self) -> dict[str, str]:
        return {
            "checkpoint": str(self.checkpoint),
            "level_file": str(self.level_path),
            "level_sha256": self.level_sha256,
            "policy_fingerprint": self.fingerprint,
        }


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


def load_entries(run: RunInfo, epoch: int, chosen: dict[str, Path]) -> list[LevelEntry]:
    """Load every chosen level's policy and level (checking they fit each other)."""
    entries = []
    for key, path in chosen.items():
        checkpoint = run.checkpoint(epoch, key)
        policy = load_policy(checkpoint)
        level = levels.load_level(path)
        levels.check_obs_dim(level, policy.obs_dim)
        fingerprint = sweep.policy_fingerprint(policy)
        entries.append(LevelEntry(key, checkpoint, path, policy, level, fingerprint, sweep_store.file_sha256(path)))
    return entries


def plan(entries: Sequence[LevelEntry], settings: sweep.SweepSettings) -> list[Task]:
    """Every point of the grid, validated (``SettingsError`` before any work)."""
    tasks = []
    for entry in entries:
        points = settings.points(entry.policy.action_chunk_size)
        for point in points:
            key = sweep_store.point_key(entry.fingerprint, entry.level_sha256, point)
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
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """One point's statistics (``sweep.point_row``), its episodes (``sweep.episode_records``) and the seconds it
    took."""
    started = time.perf_counter()
    result = rollout.run_rollout(policy, level, point, record=False, progress_callback=on_segment)
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
            stats, episodes, seconds = evaluate(entry.policy, entry.level, entry.key, task.point, on_segment)
        except rollout.RolloutCancelled:
            raise SweepCancelled(f"sweep cancelled at point {index + 1}/{len(tasks)}") from None
        store.add(row_for(task, entry, stats, "in-process", seconds), episodes)
        done += task.point.num_episodes
        if progress(done, total, note) is False and index + 1 < len(tasks):
            raise SweepCancelled(f"sweep cancelled after point {index + 1}/{len(tasks)}")
