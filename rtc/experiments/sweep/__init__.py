"""The paper's figure in small: solve rate, return and boundary jump against inference delay, per method.

Each point is one batched, device-sharded closed-loop evaluation (``rtc.experiments.rollout``) of ``num_episodes``
episodes; every point uses the same episode seeds, so methods are compared on the same random draws.
Because the method, delay and execute horizon are traced, all points share one compiled program.
Results are cached in a mapping the caller owns (e.g. the app's session state), keyed by the policy's
weights, the level and the point's settings, and export as CSV. ``rtc.experiments.sweep.store`` keeps them on disk.

Statistics (one definition each, used by every table and figure):

- **solve rate** ``solved / episodes`` with the Wilson score 95 % interval (``wilson_interval``);
- **mean return** over episodes with the Student-t 95 % interval of the mean (``mean_interval``);
- **mean boundary jump** ``||new[d] - e||`` (``rtc.numerics.metrics``), pooled over every switch of every episode
  (``sum of jumps / number of switches``) with a 95 % interval that treats episodes as independent clusters
  of switches (delta method for a ratio of means, Student-t with episodes - 1 degrees of freedom,
  ``ratio_interval``). Undefined (NaN) for a point whose protocol makes ``e`` the previous chunk's zero
  padding, ``d - 1 >= H - s`` (``jump_defined``; the rollout already leaves those switches out, and the
  first block's switch, where the plain first chunk is complete, is not reported alone), and where no
  episode reached a switch.
- **truncated** episodes: those that reached the step limit unsolved (``rollout.Rollout.truncated``); they count
  as unsolved in the solve rate, and their number is reported beside it.
- **mean step size** ``||a_t - a_(t-1)||`` away from switches (the baseline a jump is compared with), pooled
  over steps with the same cluster interval.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import math
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

import jax
import numpy as np
from flax import nnx

from rtc.errors import SettingsError
from rtc.experiments import rollout
from rtc.experiments.fields import Bounds, settings_of
from rtc.experiments.settings import (  # noqa: F401 (declared with the settings; re-exported here)
    EXECUTE_HORIZON_RULES,
    SweepSettings,
    execute_horizon_for,
    execute_horizons_for,
)
from rtc.io import levels
from rtc.numerics import metrics
from rtc.numerics.methods import WEAK_POLICY_METHODS
from rtc.numerics.model import FlowPolicy

DEFAULT_METHODS: tuple[str, ...] = SweepSettings().methods
METRICS: dict[str, str] = {
    "solve_rate": "solve rate",
    "mean_return": "mean return",
    "mean_boundary_jump": "mean jump ‖a_t − a_(t−1)‖ at switches",
}
CONFIDENCE = 0.95
POINT_COLUMNS: tuple[str, ...] = ("level", "method", "inference_delay", "execute_horizon")
# A point's statistics (``point_row``), in the order of the CSV; the parquet store keeps the same names.
STAT_COLUMNS: tuple[str, ...] = (
    "solve_rate",
    "solve_rate_low",
    "solve_rate_high",
    "mean_return",
    "mean_return_low",
    "mean_return_high",
    "mean_boundary_jump",
    "mean_boundary_jump_low",
    "mean_boundary_jump_high",
    "mean_step_size",
    "mean_step_size_low",
    "mean_step_size_high",
    "mean_length",
    "episodes",
    "solved",
    "truncated",
    "switches",
)
CSV_COLUMNS: tuple[str, ...] = (*POINT_COLUMNS, *STAT_COLUMNS)
_INT_COLUMNS = ("inference_delay", "execute_horizon", "episodes", "solved", "truncated", "switches")
_FLOAT_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in _INT_COLUMNS and c not in ("level", "method"))


# ------------------------------------------------------------------------------------------------
# Statistics


def _z() -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + CONFIDENCE / 2))


def _t(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + CONFIDENCE / 2, dof))


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """Wilson score 95 % interval of ``successes / trials`` (NaN, NaN for no trials): ``metrics.wilson_interval``."""
    low, high = metrics.wilson_interval(successes, trials, _z())
    return float(low), float(high)


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean with its Student-t 95 % interval (NaN bounds for fewer than 2 values)."""
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(values.mean())
    if values.size < 2:
        return mean, float("nan"), float("nan")
    half = _t(values.size - 1) * float(values.std(ddof=1)) / math.sqrt(values.size)
    return mean, mean - half, mean + half


def ratio_interval(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float, float]:
    """``(sum(sums) / sum(counts), low, high)``: a pooled mean over clusters (episodes with ``counts[i]``
    observations summing to ``sums[i]``) with the delta-method 95 % interval over clusters that have any
    observation; NaN where there is none, NaN bounds with fewer than 2 such clusters."""
    sums, counts = np.asarray(sums, dtype=float), np.asarray(counts, dtype=float)
    used = counts > 0
    sums, counts = sums[used], counts[used]
    if counts.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = float(sums.sum() / counts.sum())
    n = counts.size
    if n < 2:
        return ratio, float("nan"), float("nan")
    residual = sums - ratio * counts
    variance = n / (n - 1) * float((residual**2).sum()) / float(counts.sum()) ** 2
    half = _t(n - 1) * math.sqrt(variance)
    return ratio, ratio - half, ratio + half


def jump_defined(inference_delay: int, execute_horizon: int, chunk_size: int) -> bool:
    """Whether the boundary jump is defined in closed loop: the action before the switch is a real planned
    action (``rtc.numerics.metrics.boundary_jump_reason`` with ``prev_valid = H - s``; at d = 0 the last executed
    action is known)."""
    reason = metrics.boundary_jump_reason(inference_delay, chunk_size - execute_horizon, chunk_size, True)
    return reason is None


def check_grid(settings: SweepSettings, chunk_size: int) -> list[str]:
    """Check the delays and integer execute horizons against the policy's chunk size H with their declared ranges
    (``SweepSettings``' specs: d in 0..H - 1, s in 1..H; one range each, in one message naming the command line's
    flag), and return a note for each integer s left out at some delays because ``s < max(1, d)``."""
    rows = {row.name: row for row in settings_of(SweepSettings)}
    bounds = Bounds(chunk_size=chunk_size)
    for name in ("delays", "execute_horizon_rule"):
        rows[name].check(getattr(settings, name), bounds, called=rows[name].sweep_flag or name)
    rule = settings.execute_horizon_rule
    if isinstance(rule, str):
        return []
    notes = []
    for horizon in dict.fromkeys(int(s) for s in np.atleast_1d(rule)):
        skipped = [int(d) for d in settings.delays if horizon < max(1, int(d))]
        if skipped:
            notes.append(
                f"s={horizon} is left out at d={', '.join(map(str, skipped))}: the protocol needs max(1, d) <= s"
            )
    return notes


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


# Environment steps per CPU-second in-process, per method (benchmarks/run.py --only sweep, 2-core development
# machine, demo policy, 64 episodes per point, 5 flow steps, d = s = 2, BID with 16 samples). Only for the
# expected time shown before a sweep runs (as if one core were busy); methods not measured count as RTC.
EXPECTED_SECONDS_HELP = (
    "Estimated from stored rates, measured once by `benchmarks/run.py --only sweep` on the 2-core development "
    "machine with the demo policy (environment steps per CPU-second: naive 255, RTC 226, hard masking 253, "
    "BID N = 16 83), every episode counted at its full length. The quick preset took 4 min 3 s end to end there."
)
STEPS_PER_SECOND: dict[str, float] = {"naive": 255.0, "rtc_exp": 226.0, "hard_masking": 253.0, "bid": 83.0}


def expected_seconds(points: Sequence[rollout.RolloutSettings]) -> float:
    """Rough wall time of ``points`` in one process, compiling excluded (``STEPS_PER_SECOND``; every episode
    counted at full length, so an upper estimate when episodes end early)."""
    total = 0.0
    for point in points:
        rate = STEPS_PER_SECOND.get(point.method, STEPS_PER_SECOND["rtc_exp"])
        total += point.num_episodes * point.episode_steps / rate
    return total


def policy_fingerprint(policy: FlowPolicy) -> str:
    """A short hash of the policy's weights and sizes (cache key)."""
    digest = hashlib.sha1(repr(policy.config).encode())
    for leaf in jax.tree.leaves(nnx.state(policy)):
        array = np.asarray(leaf)
        digest.update(str(array.shape).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _cache_key(fingerprint: str, level: levels.Level, point: rollout.RolloutSettings, weak: str = "") -> tuple:
    """A finished point's key: the policy (and, for a method that uses one, the weak policy), level and settings."""
    used = weak if point.method in WEAK_POLICY_METHODS else ""
    return (fingerprint, used, str(level.path), tuple(sorted(point.to_dict().items())))


def sweep(
    policy: FlowPolicy,
    level: levels.Level,
    settings: SweepSettings = SweepSettings(),
    progress_callback: Callable[[SweepProgress], bool | None] | None = None,
    cache: MutableMapping[tuple, Any] | None = None,
    weak_policy: FlowPolicy | None = None,
    episodes: list[dict[str, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every point; rows as in ``CSV_COLUMNS``, in method, delay, execute horizon order.

    ``progress_callback`` is called after every rollout segment and every point; returning ``False``
    cancels (``rollout.RolloutCancelled``), keeping finished points in ``cache`` (their rows, and their episodes
    under the row's key plus ``"episodes"``). ``weak_policy`` is BID's weak policy for ``bid_forward`` points (an
    earlier checkpoint of the same run; ``rollout.iterate_rollout``). ``episodes``, when a list, receives every
    point's ``episode_records`` in row order (the input of ``store.comparison_table``: methods paired by episode).
    """
    points = settings.points(policy.action_chunk_size)
    fingerprint = policy_fingerprint(policy) if cache is not None else ""
    weak = policy_fingerprint(weak_policy) if cache is not None and weak_policy is not None else ""
    rows = []
    for index, point in enumerate(points):
        key = _cache_key(fingerprint, level, point, weak)
        row = cache.get(key) if cache is not None else None
        records = cache.get((*key, "episodes")) if cache is not None and row is not None else None
        if row is None or (episodes is not None and records is None):
            result = None
            for progress in rollout.iterate_rollout(policy, level, point, record=False, weak_policy=weak_policy):
                result = progress.result
                if result is None and progress_callback is not None:
                    update = SweepProgress(index, len(points), progress.steps_done, point.episode_steps)
                    if progress_callback(update) is False:
                        raise rollout.RolloutCancelled(f"sweep cancelled at point {index + 1}/{len(points)}")
            assert result is not None
            row = point_row(level.key, point, result, policy.action_chunk_size)
            records = episode_records(level.key, point, result, policy.action_chunk_size)
            if cache is not None:
                cache[key] = row
                cache[(*key, "episodes")] = records
        rows.append(dict(row))
        if episodes is not None:
            episodes.append(dict(records))
        if progress_callback is not None:
            update = SweepProgress(index + 1, len(points), 0, point.episode_steps, row=dict(row))
            if progress_callback(update) is False and index + 1 < len(points):
                raise rollout.RolloutCancelled(f"sweep cancelled after point {index + 1}/{len(points)}")
    return rows


def point_row(
    level_key: str, point: rollout.RolloutSettings, result: rollout.Rollout, chunk_size: int
) -> dict[str, Any]:
    """One sweep point's row (``CSV_COLUMNS``) with the statistics of the module docstring."""
    episodes = len(result.returns)
    solved = int(np.asarray(result.solved).sum())
    low, high = wilson_interval(solved, episodes)
    ret, ret_low, ret_high = mean_interval(result.returns)
    counts = np.asarray(result.jump_counts)
    if jump_defined(point.inference_delay, point.execute_horizon, chunk_size):
        jump, jump_low, jump_high = ratio_interval(result.jump_sums, counts)
        jump_low = max(0.0, jump_low) if math.isfinite(jump_low) else jump_low  # a norm is never negative
    else:
        jump = jump_low = jump_high = float("nan")
    step, step_low, step_high = ratio_interval(result.step_sums, result.step_counts)
    step_low = max(0.0, step_low) if math.isfinite(step_low) else step_low
    return {
        "level": level_key,
        "method": point.method,
        "inference_delay": point.inference_delay,
        "execute_horizon": point.execute_horizon,
        "solve_rate": solved / episodes,
        "solve_rate_low": low,
        "solve_rate_high": high,
        "mean_return": ret,
        "mean_return_low": ret_low,
        "mean_return_high": ret_high,
        "mean_boundary_jump": jump,
        "mean_boundary_jump_low": jump_low,
        "mean_boundary_jump_high": jump_high,
        "mean_step_size": step,
        "mean_step_size_low": step_low,
        "mean_step_size_high": step_high,
        "mean_length": float(np.asarray(result.lengths).mean()),
        "episodes": episodes,
        "solved": solved,
        "truncated": int(result.truncated.sum()),
        "switches": int(counts.sum()),
    }


# Per-episode outcomes of a point (``episode_records``), in the order of ``episodes.parquet``.
EPISODE_COLUMNS: tuple[str, ...] = (
    "level",
    "method",
    "delay",
    "execute_horizon",
    "episode",
    "seed",
    "solved",
    "return",
    "length",
    "truncated",
    "mean_jump",
    "switches",
)


def episode_records(
    level_key: str, point: rollout.RolloutSettings, result: rollout.Rollout, chunk_size: int
) -> dict[str, np.ndarray]:
    """Every episode of a point as columns (``EPISODE_COLUMNS``): ``episode`` e ran with keys
    ``fold_in(key(seed), e)``, so episode e of every method at a point shares its random numbers; ``mean_jump`` is
    the episode's mean boundary jump over its ``switches`` (NaN where it has none or the jump is undefined at this
    point, ``jump_defined``). ``point_row``'s numbers follow from these: the solve rate is the mean of ``solved``,
    the pooled jump ``sum(mean_jump * switches) / sum(switches)``."""
    count = len(result.returns)
    counts = np.asarray(result.jump_counts, np.int64)
    if not jump_defined(point.inference_delay, point.execute_horizon, chunk_size):
        counts = np.zeros_like(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_jump = np.where(counts > 0, np.asarray(result.jump_sums, float) / np.maximum(counts, 1), np.nan)
    return {
        "level": np.full(count, level_key, dtype=object),
        "method": np.full(count, point.method, dtype=object),
        "delay": np.full(count, point.inference_delay, np.int64),
        "execute_horizon": np.full(count, point.execute_horizon, np.int64),
        "episode": np.arange(count, dtype=np.int64),
        "seed": np.full(count, point.seed, np.int64),
        "solved": np.asarray(result.solved, bool),
        "return": np.asarray(result.returns, float),
        "length": np.asarray(result.lengths, np.int64),
        "truncated": np.asarray(result.truncated, bool),
        "mean_jump": mean_jump,
        "switches": counts,
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


def metric_by_method(
    rows: Sequence[dict[str, Any]], metric: str, column: str | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{method: (delays, values)}`` sorted by delay, for plotting ``metric`` against delay (``column``:
    another column of the same rows, e.g. ``f"{metric}_low"``)."""
    if metric not in METRICS:
        raise SettingsError(f"metric={metric!r} is not one of {', '.join(METRICS)}")
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for method in dict.fromkeys(row["method"] for row in rows):
        chosen = sorted((r for r in rows if r["method"] == method), key=lambda r: r["inference_delay"])
        out[method] = (
            np.array([r["inference_delay"] for r in chosen]),
            np.array([r[column or metric] for r in chosen], dtype=float),
        )
    return out
