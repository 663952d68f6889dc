"""Numbers that summarise a sample against the previous chunk (pure numpy, per batch element).

One definition per metric, used by the overview, the command line's ``summary.json``, the method
comparison, the seed batches, the rollouts and the sweeps. A value that is undefined is NaN per batch
element and ``None`` once summarised (``null`` in JSON, "—" in the app), never a number measured
against the previous chunk's zero padding:

- ``prev_valid`` is how many leading entries of the previous chunk are real planned actions. In the
  paper's protocol the previous chunk of a later block is ``new[s:]`` zero-padded to ``H``, so
  ``prev_valid = H - s`` (the prefix attention horizon); entries from ``prev_valid`` on are padding. In the
  first block (the same-observation situation) the previous chunk is the plain first chunk, unshifted:
  ``prev_valid = H``.
- **Boundary jump** ``||new[d] - e||``, where ``e`` is the last action executed before the new chunk
  takes over: ``prev[d - 1]`` for ``d >= 1``; for ``d = 0`` the previous chunk's last executed action
  (which the previous chunk itself does not hold: pass it as ``last_executed``). Undefined where ``e``
  would be padding (``d - 1 >= prev_valid``), where ``d = 0`` and the last executed action is not known,
  and where no new action is executed (``d >= H``).
- **Frozen max deviation** ``max |new[i] - prev[i]|`` over the frozen actions that are real planned
  actions, ``i < min(d, prev_valid)``; undefined when there is none.
- **Guidance effect** per sample ``1 - e_rtc / e_plain`` with ``e`` the weighted prefix error of the RTC sample
  and of the plain sample from the same noise (undefined where ``e_plain = 0``: excluded and counted); summarised
  by ``median_interval`` (the median with its distribution-free 95 % interval and the count).
- **Guidance cost** per sample: the mean distance per action ``||rtc_i - plain_i||`` over ``i >= d`` (outside the
  frozen prefix) between the RTC sample and the plain sample from the same noise: how far guidance moved the chunk
  from what the policy samples unguided at that observation; summarised by ``median_interval`` too.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def weighted_prefix_error(chunk: np.ndarray, prev_chunk: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_h W_h * ||chunk_h - prev_h||`` per batch element ``[B]`` (BID's distance with exp weights)."""
    distance = np.linalg.norm(np.asarray(chunk) - np.asarray(prev_chunk), axis=-1)  # [B, H]
    return distance @ np.asarray(weights)


def boundary_jump_reason(
    inference_delay: int, prev_valid: int, chunk_size: int, has_last_executed: bool = False
) -> str | None:
    """Why the boundary jump is undefined for these settings, in one line; ``None`` when it is defined."""
    d, valid = int(inference_delay), int(prev_valid)
    if d >= chunk_size:
        return f"no new action is executed (d = {d} = H)"
    if d == 0 and not has_last_executed:
        return "with d = 0 the last executed action is not part of the previous chunk and was not given"
    if d >= 1 and d - 1 >= valid:
        return (
            f"the action before the switch, prev[d - 1] = prev[{d - 1}], is zero padding: the previous chunk "
            f"holds {valid} planned actions, fewer than d = {d}"
        )
    return None


def boundary_jump(
    chunk: np.ndarray,
    prev_chunk: np.ndarray,
    inference_delay: int,
    prev_valid: int,
    last_executed: np.ndarray | None = None,
) -> np.ndarray:
    """``||chunk[d] - e||`` per batch element ``[B]``, NaN where undefined (see the module docstring).

    ``chunk``, ``prev_chunk`` ``[B, H, A]``; ``last_executed`` ``[B, A]`` or ``[A]`` (used only for d = 0).
    """
    chunk = np.asarray(chunk)
    batch, horizon = chunk.shape[0], chunk.shape[-2]
    d = int(inference_delay)
    if boundary_jump_reason(d, prev_valid, horizon, last_executed is not None) is not None:
        return np.full(batch, np.nan)
    before = np.asarray(prev_chunk)[:, d - 1] if d >= 1 else np.broadcast_to(last_executed, chunk[:, 0].shape)
    return np.linalg.norm(chunk[:, d] - before, axis=-1)


def frozen_max_deviation(chunk: np.ndarray, prev_chunk: np.ndarray, inference_delay: int, prev_valid: int) -> float:
    """``max |chunk[i] - prev[i]|`` over ``i < min(d, prev_valid)`` and the batch; NaN when that is empty."""
    frozen = min(int(inference_delay), int(prev_valid))
    if frozen <= 0:
        return float("nan")
    return float(np.abs(np.asarray(chunk)[:, :frozen] - np.asarray(prev_chunk)[:, :frozen]).max())


def frozen_reason(inference_delay: int, prev_valid: int) -> str | None:
    """Why the frozen max deviation is undefined, in one line; ``None`` when it is defined."""
    if int(inference_delay) == 0:
        return "d = 0: no action is frozen"
    if int(prev_valid) == 0:
        return "the previous chunk holds no planned action"
    return None


def mean_defined(values: np.ndarray) -> float | None:
    """Mean over the finite entries; ``None`` when there is none (undefined, never 0)."""
    values = np.asarray(values, dtype=float).ravel()
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


def as_json_number(value: float | None) -> float | None:
    """``None`` for NaN/None, else the float (so JSON gets ``null`` for undefined values)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def prev_valid_of(tracked: Mapping[str, Any]) -> int:
    """Real planned actions in a record's previous chunk: ``prev_valid`` if recorded, else its prefix horizon."""
    if "prev_valid" in tracked:
        return int(np.asarray(tracked["prev_valid"]))
    return int(np.asarray(tracked["prefix_attention_horizon"]))


def summarize(
    tracked: Mapping[str, Any],
    plain_action: np.ndarray | None = None,
    last_executed: np.ndarray | None = None,
) -> dict[str, float | int | None]:
    """Averages over the batch of an RTC run: weighted prefix error (RTC and, if given, plain), boundary
    jump (``None`` where undefined), final-action difference to the plain sample, mean |correction| and
    mean |applied term|; with the plain sample also the guidance effect and the guidance cost, each as
    ``MedianEstimate.fields`` (median, ``_low``, ``_high``, ``_n``, ``_excluded``). ``last_executed`` ``[B, A]``
    is the action executed just before the chunk starts (needed for the jump at d = 0)."""
    action = np.asarray(tracked["action"])
    prev = np.asarray(tracked["prev_action_chunk"])
    weights = np.asarray(tracked["prefix_weights"])
    delay = int(np.asarray(tracked["inference_delay"]))
    valid = prev_valid_of(tracked)
    result = {
        "weighted_prefix_error_rtc": float(weighted_prefix_error(action, prev, weights).mean()),
        "boundary_jump_rtc": mean_defined(boundary_jump(action, prev, delay, valid, last_executed)),
        "frozen_max_deviation_rtc": as_json_number(frozen_max_deviation(action, prev, delay, valid)),
        "mean_abs_correction": float(np.abs(np.asarray(tracked["correction"])).mean()),
        "mean_abs_applied": float(np.abs(np.asarray(tracked["applied"])).mean()),
    }
    if plain_action is not None:
        plain = np.asarray(plain_action)
        result["weighted_prefix_error_plain"] = float(weighted_prefix_error(plain, prev, weights).mean())
        result["boundary_jump_plain"] = mean_defined(boundary_jump(plain, prev, delay, valid, last_executed))
        result["frozen_max_deviation_plain"] = as_json_number(frozen_max_deviation(plain, prev, delay, valid))
        result["final_action_difference"] = float(
            np.linalg.norm((action - plain).reshape(len(action), -1), axis=-1).mean()
        )
        result |= batch_guidance_effect(tracked, plain).fields("guidance_effect")
        result |= guidance_cost(action, plain, delay).fields("guidance_cost")
    return result


@dataclasses.dataclass(frozen=True, eq=False)
class MedianEstimate:
    """A per-sample quantity summarised: ``samples`` (NaN where undefined), the median over the defined ones with
    its distribution-free interval ``[low, high]`` (``median_interval``), ``n`` defined samples and ``excluded``
    undefined ones. ``None`` where undefined: no defined sample, or too few for the interval (n < 6 at 95 %)."""

    samples: np.ndarray
    median: float | None
    low: float | None
    high: float | None
    n: int
    excluded: int

    def fields(self, name: str) -> dict[str, float | int | None]:
        """``{name, name_low, name_high, name_n, name_excluded}`` as ``summary.json`` and the pages carry them."""
        return {
            name: self.median,
            f"{name}_low": self.low,
            f"{name}_high": self.high,
            f"{name}_n": self.n,
            f"{name}_excluded": self.excluded,
        }

    def text(self, digits: int = 3) -> str:
        """``0.812 [0.75, 0.9] (n = 16)``; "—" parts where undefined."""
        if self.median is None:
            return f"— (n = {self.n})"
        interval = "" if self.low is None else f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return f"{self.median:.{digits}f}{interval} (n = {self.n})"


def place_in_batch(estimate: MedianEstimate, index: int, what: str, digits: int = 3) -> str:
    """Where sample ``index`` stands in the batch ``estimate`` summarises, as one sentence: its value, its rank
    among the defined samples and the batch's median with its interval. A figure drawn for one sample says by
    this whether that sample is typical (the median is what the summary reports)."""
    values = np.asarray(estimate.samples, float)
    defined = values[np.isfinite(values)]
    value = float(values[index])
    median = "undefined" if estimate.median is None else estimate.text(digits)
    head = f"Sample {index} of {values.size}: its {what}"
    if not np.isfinite(value):
        return f"{head} is undefined; the batch's median is {median}."
    below, above = int(np.sum(defined < value)), int(np.sum(defined > value))
    if below == 0 and above == 0:
        where = f"the only defined one of {values.size}"
    elif below == 0:
        where = f"the lowest of {defined.size}"
    elif above == 0:
        where = f"the highest of {defined.size}"
    else:
        where = f"{below} of the other {defined.size - 1} are lower"
    return f"{head} is {value:.{digits}f} ({where}); the batch's median is {median}."


def median_ranks(count: int, confidence: float = 0.95) -> tuple[int, int] | None:
    """0-based ranks ``(j, count - 1 - j)`` of the order statistics that bound the median with at least
    ``confidence``: the largest ``j`` with ``P(Binomial(count, 1/2) <= j) <= (1 - confidence) / 2``, so that
    ``P(x_(j) <= median <= x_(count-1-j)) = 1 - 2 P(Binomial <= j) >= confidence`` for any continuous
    distribution. ``None`` when even ``[min, max]`` covers less (``count < 6`` at 95 %)."""
    tail = (1.0 - confidence) / 2.0
    total, cdf, rank = 2.0**count, 0.0, None
    for j in range((count + 1) // 2):
        cdf += math.comb(count, j) / total
        if cdf > tail:
            break
        rank = j
    return None if rank is None else (rank, count - 1 - rank)


def median_interval(samples: np.ndarray, confidence: float = 0.95) -> MedianEstimate:
    """The median of the finite entries of ``samples`` with its order-statistic interval (``median_ranks``);
    non-finite entries are undefined samples: excluded and counted."""
    values = np.asarray(samples, dtype=float).ravel()
    finite = np.sort(values[np.isfinite(values)])
    count = int(finite.size)
    median = float(np.median(finite)) if count else None
    ranks = median_ranks(count, confidence) if count else None
    low, high = (None, None) if ranks is None else (float(finite[ranks[0]]), float(finite[ranks[1]]))
    return MedianEstimate(values, median, low, high, count, int(values.size - count))


def guidance_effect(error_rtc: np.ndarray, error_plain: np.ndarray) -> MedianEstimate:
    """How much guidance did, the one estimator every page and ``summary.json`` use: per sample
    ``1 - e_rtc / e_plain`` (``e`` the weighted prefix error of the RTC sample and of the plain sample from the
    same noise; undefined where ``e_plain = 0``), summarised by ``median_interval``.

    1 means RTC met the previous chunk exactly on the guided prefix, 0 that it did no better than plain sampling
    from the same noise, negative that it did worse."""
    rtc, plain = np.atleast_1d(np.asarray(error_rtc, float)), np.atleast_1d(np.asarray(error_plain, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        effect = np.where((plain > 0) & np.isfinite(plain), 1.0 - rtc / plain, np.nan)
    return median_interval(effect)


def batch_guidance_effect(tracked: Mapping[str, Any], plain_action: np.ndarray) -> MedianEstimate:
    """``guidance_effect`` of an RTC call's batch (its tracked arrays) against the plain samples from the same noise."""
    prev, weights = np.asarray(tracked["prev_action_chunk"]), np.asarray(tracked["prefix_weights"])
    return guidance_effect(
        weighted_prefix_error(np.asarray(tracked["action"]), prev, weights),
        weighted_prefix_error(np.asarray(plain_action), prev, weights),
    )


def guidance_cost(chunk_rtc: np.ndarray, chunk_plain: np.ndarray, inference_delay: int) -> MedianEstimate:
    """What guidance cost: per sample the mean distance per action ``||rtc_i - plain_i||`` over ``i >= d`` (outside
    the frozen prefix) to the plain sample from the same noise at that observation, summarised by
    ``median_interval``. Undefined for every sample when ``d >= H``."""
    rtc, plain = np.asarray(chunk_rtc, float), np.asarray(chunk_plain, float)
    d = int(inference_delay)
    if d >= rtc.shape[-2]:
        return median_interval(np.full(rtc.shape[0], np.nan))
    return median_interval(np.linalg.norm(rtc[:, d:] - plain[:, d:], axis=-1).mean(axis=-1))


def wilson_interval(successes: int | np.ndarray, trials: int | np.ndarray, z: float = 1.959964) -> tuple:
    """Wilson score interval ``(low, high)`` for a proportion (95 % by default); NaN where ``trials`` is 0."""
    k, n = np.asarray(successes, float), np.asarray(trials, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        denominator = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denominator
        half = z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denominator
        low, high = np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)
    low, high = np.where(n > 0, low, np.nan), np.where(n > 0, high, np.nan)
    if low.ndim == 0:
        return float(low), float(high)
    return low, high
