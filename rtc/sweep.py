"""The paper's figure in small: solve rate, return and boundary jump against inference delay, per method.

Each point is one batched, device-sharded closed-loop evaluation (``rtc.rollout``) of ``num_episodes``
episodes; every point uses the same episode seeds, so methods are compared on the same random draws.
Because the method, delay and execute horizon are traced, all points share one compiled program.
Results are cached in a mapping the caller owns (e.g. the app's session state), keyed by the policy's
weights, the level and the point's settings, and export as CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from rtc import levels, methods, rollout
from rtc.errors import SettingsError
from rtc.model import FlowPolicy

DEFAULT_METHODS: tuple[str, ...] = ("naive", "rtc_exp", "hard_masking", "bid")
EXECUTE_HORIZON_RULES: tuple[str, ...] = ("min", "max")
METRICS: dict[str, str] = {
    "solve_rate": "solve rate",
    "mean_return": "mean return",
    "mean_boundary_jump": "mean jump ‖a_t − a_(t−1)‖ at switches",
}
CSV_COLUMNS: tuple[str, ...] = (
    "level",
    "method",
    "inference_delay",
    "execute_horizon",
    "solve_rate",
    "mean_return",
    "mean_boundary_jump",
    "mean_length",
    "episodes",
)
_INT_COLUMNS = ("inference_delay", "execute_horizon", "episodes")
_FLOAT_COLUMNS = ("solve_rate", "mean_return", "mean_boundary_jump", "mean_length")


def execute_horizon_for(inference_delay: int, chunk_size: int, rule: str | int = "min") -> int:
    """The execute horizon s of a sweep point. ``min``: ``max(1, d)`` (the most reactive choice, the
    default); ``max``: ``H - d`` (largest s the paper sweeps, at least ``max(1, d)``); an int: that s,
    which must satisfy ``max(1, d) <= s <= H``."""
    low = max(1, inference_delay)
    if rule == "min":
        return low
    if rule == "max":
        return max(low, chunk_size - inference_delay)
    if isinstance(rule, (int, np.integer)) and not isinstance(rule, bool):
        if not low <= rule <= chunk_size:
            raise SettingsError(
                f"execute horizon {rule} is out of range for d={inference_delay}; accepted {low}..{chunk_size}"
            )
        return int(rule)
    raise SettingsError(f"execute_horizon_rule={rule!r} is not accepted; use 'min', 'max' or an integer")


PAPER_POINT = rollout.RolloutSettings(num_episodes=16)  # immutable, so safe as a default


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """Which points to evaluate; each is ``template`` with its method, delay and execute horizon replaced.

    The defaults follow the paper (5 flow steps, action noise 0.1) with 16 episodes per point.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    delays: tuple[int, ...] = (0, 1, 2, 3, 4)
    execute_horizon_rule: str | int = "min"
    template: rollout.RolloutSettings = PAPER_POINT

    def points(self, chunk_size: int) -> list[rollout.RolloutSettings]:
        """Rollout settings of every (method, delay) point, validated."""
        if not self.methods or not self.delays:
            raise SettingsError("a sweep needs at least one method and one delay")
        out = []
        for method in self.methods:
            methods.method_index(method)
            for delay in self.delays:
                point = dataclasses.replace(
                    self.template,
                    method=method,
                    inference_delay=int(delay),
                    execute_horizon=execute_horizon_for(int(delay), chunk_size, self.execute_horizon_rule),
                )
                point.validate(chunk_size)
                out.append(point)
        return out


@dataclasses.dataclass(frozen=True)
class SweepProgress:
    """Points finished, and steps of the point under way."""

    points_done: int
    total_points: int
    steps_done: int
    steps_per_point: int
    row: dict[str, Any] | None = None

    @property
    def fraction(self) -> float:
        total = self.total_points * self.steps_per_point
        return (self.points_done * self.steps_per_point + self.steps_done) / total if total else 1.0


def policy_fingerprint(policy: FlowPolicy) -> str:
    """A short hash of the policy's weights and sizes (cache key)."""
    digest = hashlib.sha1(repr(policy.config).encode())
    for leaf in jax.tree.leaves(nnx.state(policy)):
        array = np.asarray(leaf)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _cache_key(fingerprint: str, level: levels.Level, point: rollout.RolloutSettings) -> tuple:
    return (fingerprint, str(level.path), tuple(sorted(point.to_dict().items())))


def sweep(
    policy: FlowPolicy,
    level: levels.Level,
    settings: SweepSettings = SweepSettings(),
    progress_callback: Callable[[SweepProgress], bool | None] | None = None,
    cache: MutableMapping[tuple, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every (method, delay) point; rows as in ``CSV_COLUMNS``, in method-then-delay order.

    ``progress_callback`` is called after every rollout segment and every point; returning ``False``
    cancels (``rollout.RolloutCancelled``), keeping finished points in ``cache``.
    """
    points = settings.points(policy.action_chunk_size)
    fingerprint = policy_fingerprint(policy) if cache is not None else ""
    rows = []
    for index, point in enumerate(points):
        key = _cache_key(fingerprint, level, point)
        row = cache.get(key) if cache is not None else None
        if row is None:
            result = None
            for progress in rollout.iterate_rollout(policy, level, point, record=False):
                result = progress.result
                if result is None and progress_callback is not None:
                    update = SweepProgress(index, len(points), progress.steps_done, point.episode_steps)
                    if progress_callback(update) is False:
                        raise rollout.RolloutCancelled(f"sweep cancelled at point {index + 1}/{len(points)}")
            assert result is not None
            row = _row(level, point, result)
            if cache is not None:
                cache[key] = row
        rows.append(dict(row))
        if progress_callback is not None:
            update = SweepProgress(index + 1, len(points), 0, point.episode_steps, row=dict(row))
            if progress_callback(update) is False and index + 1 < len(points):
                raise rollout.RolloutCancelled(f"sweep cancelled after point {index + 1}/{len(points)}")
    return rows


def _row(level: levels.Level, point: rollout.RolloutSettings, result: rollout.Rollout) -> dict[str, Any]:
    summary = result.summary()
    return {
        "level": level.key,
        "method": point.method,
        "inference_delay": point.inference_delay,
        "execute_horizon": point.execute_horizon,
        "solve_rate": summary["solve_rate"],
        "mean_return": summary["mean_return"],
        "mean_boundary_jump": summary["mean_boundary_jump"],
        "mean_length": summary["mean_length"],
        "episodes": summary["episodes"],
    }


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV text with the columns of ``CSV_COLUMNS`` (floats with full precision)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: repr(float(row[k])) if k in _FLOAT_COLUMNS else row[k] for k in CSV_COLUMNS})
    return buffer.getvalue()


def from_csv(text: str) -> list[dict[str, Any]]:
    """Rows read back from ``to_csv`` text, with numbers as int and float."""
    rows = []
    for raw in csv.DictReader(io.StringIO(text)):
        row: dict[str, Any] = dict(raw)
        row.update({k: int(row[k]) for k in _INT_COLUMNS})
        row.update({k: float(row[k]) for k in _FLOAT_COLUMNS})
        rows.append(row)
    return rows


def metric_by_method(rows: Sequence[dict[str, Any]], metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{method: (delays, values)}`` sorted by delay, for plotting ``metric`` against delay."""
    if metric not in METRICS:
        raise SettingsError(f"metric={metric!r} is not one of {', '.join(METRICS)}")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        chosen = sorted((r for r in rows if r["method"] == method), key=lambda r: r["inference_delay"])
        out[method] = (
            np.array([r["inference_delay"] for r in chosen]),
            np.array([r[metric] for r in chosen], dtype=float),
        )
    return out
