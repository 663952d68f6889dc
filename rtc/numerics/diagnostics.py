"""Guidance diagnostics: prefix weights of every schedule, the guidance weight over flow time, heatmap
data over step x horizon index, and warnings for settings that make guidance do nothing.

Time convention: flow time t = 0 is noise, t = 1 is data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax.numpy as jnp
import numpy as np

from rtc.errors import IndexRangeError, RTCError, SettingsError
from rtc.numerics.sampler import SCHEDULES, flow_times, get_prefix_weights, guidance_weight, unclipped_guidance_weight


def schedule_weights_table(inference_delay: int, prefix_attention_horizon: int, horizon: int) -> dict[str, np.ndarray]:
    """Prefix weights ``[H]`` of every schedule (``exp``, ``linear``, ``ones``, ``zeros``) for the same d and p."""
    return {
        schedule: np.asarray(get_prefix_weights(inference_delay, prefix_attention_horizon, horizon, schedule))
        for schedule in SCHEDULES
    }


def guidance_curves(num_steps: int, max_guidance_weight: float, dense_points: int = 200) -> dict[str, np.ndarray]:
    """The guidance weight at the sampler's step times and on a dense grid of flow time.

    ``time``, ``clipped``, ``unclipped`` ``[num_steps]`` (what the sampler uses, and ``c * inv_r2`` before
    the clip at ``max_guidance_weight``); ``dense_time``, ``dense_clipped``, ``dense_unclipped`` on
    ``t in [0, 1)``. The unclipped value is the true one: it grows without bound towards t = 1 and is
    ``inf`` at t = 0, where ``c = (1 - t) / t`` diverges (the sampler's clip gives ``max_guidance_weight``
    there, so the clipped weight is finite everywhere).
    """
    if num_steps < 1:
        raise SettingsError(f"num_steps={num_steps} must be >= 1")
    w_max = jnp.float32(max_guidance_weight)
    time = flow_times(num_steps)
    dense = jnp.linspace(0.0, 1.0, dense_points + 1, dtype=jnp.float32)[:-1]
    return {
        "time": np.asarray(time),
        "clipped": np.asarray(guidance_weight(time, w_max)),
        "unclipped": _true_unclipped(time, w_max),
        "dense_time": np.asarray(dense),
        "dense_clipped": np.asarray(guidance_weight(dense, w_max)),
        "dense_unclipped": _true_unclipped(dense, w_max),
    }


def _true_unclipped(time: jnp.ndarray, w_max: jnp.ndarray) -> np.ndarray:
    """``c * inv_r2`` with ``inf`` at t = 0 (the sampler substitutes ``w_max`` for ``c(0)`` before clipping)."""
    return np.where(np.asarray(time) == 0, np.inf, np.asarray(unclipped_guidance_weight(time, w_max)))


def guidance_is_inert(
    inference_delay: int, prefix_attention_horizon: int, schedule: str, max_guidance_weight: float
) -> bool:
    """Whether RTC's applied term is exactly zero at every step, so the sample equals the plain one.

    That happens when ``max_guidance_weight == 0`` (every guidance weight is 0) or when every prefix
    weight is 0: ``p == 0`` for any schedule, and for ``zeros`` also ``min(d, p) == 0`` (it weights only
    ``i < min(d, p)``). ``exp`` and ``linear`` are positive on every ``i < p``.
    """
    if max_guidance_weight == 0 or prefix_attention_horizon <= 0:
        return True
    return schedule == "zeros" and min(inference_delay, prefix_attention_horizon) <= 0


def inert_guidance_warnings(
    inference_delay: int,
    prefix_attention_horizon: int,
    schedule: str,
    max_guidance_weight: float,
    horizon: int,
) -> list[str]:
    """Plain-language warnings when settings make guidance inert (whole or in part); empty when it acts.

    Whole: see ``guidance_is_inert``. In part: frozen actions at ``p <= i < d`` get weight 0 (they are
    executed from the previous chunk anyway, but the new chunk is not pulled towards them).
    """
    d, p = int(inference_delay), int(prefix_attention_horizon)
    if schedule not in SCHEDULES:
        raise SettingsError(f"schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
    warnings = []
    if max_guidance_weight == 0:
        warnings.append("guidance is inert: max guidance weight is 0, so every guidance weight is 0 (RTC = plain)")
    if p <= 0:
        warnings.append(
            "guidance is inert: prefix attention horizon p = 0 gives every index weight 0 (RTC = plain); "
            "with the paper's p = H - s this means execute horizon s = H"
        )
    elif schedule == "zeros" and d <= 0:
        warnings.append(
            "guidance is inert: the zeros schedule (hard masking) weights only i < min(d, p), and the "
            "inference delay d = 0 leaves nothing frozen (RTC = plain)"
        )
    if 0 < p < d:
        warnings.append(
            f"guidance is partly inert: prefix horizon p = {p} < delay d = {d}, so the frozen actions at "
            f"indices {p}..{d - 1} get weight 0 (in closed loop they execute the previous chunk's zero padding)"
        )
    if d > horizon or p > horizon:
        warnings.append(f"d = {d} or p = {p} exceeds the chunk size H = {horizon}; the sampler refuses it")
    return warnings


def heatmap_data(tracked: Mapping[str, Any], batch_idx: int = 0) -> dict[str, np.ndarray]:
    """Norms over action dims, per flow step and horizon index ``[num_steps, H]``, of one batch element:
    ``error`` (weighted), ``correction`` (raw VJP) and ``applied`` (guidance weight x correction)."""
    out = {}
    for key in ("error", "correction", "applied"):
        if key not in tracked:
            raise RTCError(f"heatmap_data needs tracked[{key!r}] (an RTC run with return_tracking=True)")
        values = np.asarray(tracked[key])
        if not 0 <= batch_idx < values.shape[1]:
            raise IndexRangeError(f"batch_idx={batch_idx} is out of range; accepted 0..{values.shape[1] - 1}")
        out[key] = np.linalg.norm(values[:, batch_idx], axis=-1)
    return out


def correction_vs_applied(
    tracked: Mapping[str, Any], batch_idx: int = 0, horizon_idx: int = 0, action_dim_idx: int = 0
) -> dict[str, np.ndarray]:
    """The raw correction, the guidance weight and the applied term (weight x correction) of one entry per step."""
    for key in ("correction", "applied", "guidance_weight", "time"):
        if key not in tracked:
            raise RTCError(f"correction_vs_applied needs tracked[{key!r}] (an RTC run with return_tracking=True)")
    b, h, a = batch_idx, horizon_idx, action_dim_idx
    return {
        "time": np.asarray(tracked["time"]),
        "correction": np.asarray(tracked["correction"])[:, b, h, a],
        "guidance_weight": np.asarray(tracked["guidance_weight"]),
        "applied": np.asarray(tracked["applied"])[:, b, h, a],
    }
