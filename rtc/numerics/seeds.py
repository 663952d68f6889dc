"""Many seeds in one batched call: RTC and plain sampling on one observation and previous chunk, with
the noise of seed k drawn as ``FlowPolicy.initial_noise(jax.random.key(k), 1)``, and percentile bands.

Tracked arrays keep the sampler's layout ``[num_steps, seeds, H, A]`` (the batch axis is the seed);
``per_seed`` moves the seed axis first for ``bands``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rtc.errors import SettingsError
from rtc.numerics import behaviours, metrics
from rtc.numerics.model import FlowPolicy
from rtc.numerics.sampler import GuidanceSettings

JACOBIAN_FREE = "rtc_jacobian_free"  # key of the Jacobian-free RTC runs in a ``seed_batch`` result


def seed_noise(seeds: Sequence[int], horizon: int, action_dim: int) -> jax.Array:
    """Noise ``[S, H, A]``: row k is ``jax.random.normal(jax.random.key(seeds[k]), (1, H, A))[0]``."""
    keys = jnp.stack([jax.random.key(int(s)) for s in seeds])
    return jax.vmap(lambda key: jax.random.normal(key, (1, horizon, action_dim))[0])(keys)


def seed_batch(
    policy: FlowPolicy,
    obs: jax.Array,
    prev_chunk: jax.Array,
    settings: GuidanceSettings,
    seeds: Sequence[int],
    num_steps: int,
    jacobian_free: bool = False,
    prev_valid: int | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Tracked RTC and plain runs for every seed, each method in one batched call.

    ``obs`` is ``[obs_dim]`` or ``[1, obs_dim]``; ``prev_chunk`` ``[H, A]`` or ``[1, H, A]``; both are
    shared by every seed. Returns ``{"rtc": tracked, "naive": tracked}`` (numpy, batch axis = seed), plus
    ``"rtc_jacobian_free"`` (RTC with ``correction = error``, same settings and noise) when ``jacobian_free``.
    ``prev_valid`` (the previous chunk's planned actions: ``H`` in the first block, ``H - s`` later; default: the
    prefix horizon) is recorded in the RTC runs for the metrics (``metrics.prev_valid_of``).
    """
    if len(seeds) == 0:
        raise SettingsError("seeds is empty; give at least one seed")
    obs = jnp.asarray(obs).reshape(-1)
    prev = jnp.asarray(prev_chunk).reshape(policy.action_chunk_size, policy.action_dim)
    count = len(seeds)
    noise = seed_noise(seeds, policy.action_chunk_size, policy.action_dim)
    batch_obs = jnp.broadcast_to(obs, (count, obs.shape[0]))
    batch_prev = jnp.broadcast_to(prev, (count, *prev.shape))
    _, rtc = policy.realtime_action(
        None, batch_obs, num_steps, batch_prev, *settings, return_tracking=True, noise=noise
    )
    _, naive = policy.action(None, batch_obs, num_steps, return_tracking=True, noise=noise)
    out = {"rtc": jax.tree.map(np.asarray, rtc), "naive": jax.tree.map(np.asarray, naive)}
    if jacobian_free:
        _, free = policy.realtime_action(
            None, batch_obs, num_steps, batch_prev, *settings, return_tracking=True, noise=noise, jacobian_free=True
        )
        out[JACOBIAN_FREE] = jax.tree.map(np.asarray, free)
    if prev_valid is not None:
        for name in (n for n in out if n != "naive"):
            out[name]["prev_valid"] = np.asarray(int(prev_valid), np.int32)
    return out


def weighted_error_norms(tracked: dict[str, Any], prev_chunk: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``|| W * (prev - x_1_pred) ||`` over horizon and action dims, ``[num_steps, batch]``.

    For an RTC run it equals the norm of the tracked ``error``; for a plain run it is the error that
    RTC would have corrected, so both can be drawn on one axis.
    """
    x_1_pred = np.asarray(tracked["x_1_pred"])
    prev = np.broadcast_to(np.asarray(prev_chunk), x_1_pred.shape[1:])
    error = (prev[None] - x_1_pred) * np.asarray(weights)[:, None]
    return np.linalg.norm(error.reshape(*error.shape[:2], -1), axis=-1)


def per_seed(values: np.ndarray) -> np.ndarray:
    """Swap a tracked ``[num_steps, seeds, ...]`` array to ``[seeds, num_steps, ...]``."""
    return np.swapaxes(np.asarray(values), 0, 1)


def bands(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median, 25th and 75th percentile over the seed axis (axis 0) of ``[seeds, steps, ...]``."""
    values = np.asarray(values)
    median, q25, q75 = np.percentile(values, [50, 25, 75], axis=0)
    return median, q25, q75


def band_series(
    result: dict[str, dict[str, np.ndarray]], horizon_idx: int = 0, action_dim_idx: int = 0
) -> dict[str, dict[str, np.ndarray]]:
    """Per method (``rtc``, ``naive``, optionally ``rtc_jacobian_free``): ``x_t`` of one entry ``[seeds, steps]``
    and the weighted error magnitude ``[seeds, steps]`` (RTC's prefix weights for both), plus ``time`` ``[steps]``."""
    rtc = result["rtc"]
    prev, weights = rtc["prev_action_chunk"][0], rtc["prefix_weights"]
    out = {}
    for name, tracked in result.items():
        out[name] = {
            "time": np.asarray(tracked["time"]),
            "x_t": per_seed(tracked["x_t"][:, :, horizon_idx, action_dim_idx]),
            "error": per_seed(weighted_error_norms(tracked, prev, weights)),
        }
    return out


def guidance_effects(result: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """How much guidance did over the seeds, what it cost, and the boundary jumps.

    ``effect``: ``metrics.guidance_effect`` of the seeds' final chunks (RTC against plain from the same noise, on
    RTC's prefix weights; ``effect.samples [S]`` per seed); ``cost``: ``metrics.guidance_cost`` (distance to the
    plain chunk outside the frozen prefix); ``jump_plain`` / ``jump_rtc`` ``[S]``: the boundary jump per seed (NaN
    where undefined; the last action executed before the chunk is not part of a seed batch, so d = 0 is undefined);
    ``seeds``: the sample size; ``names``: the runs summarised. With Jacobian-free runs in ``result`` the same keys
    exist for ``rtc_jacobian_free``, plus ``effect_rtc_jacobian_free`` and ``cost_rtc_jacobian_free``.
    """
    rtc, naive = result["rtc"], result["naive"]
    prev, weights = np.asarray(rtc["prev_action_chunk"]), np.asarray(rtc["prefix_weights"])
    delay, valid = int(np.asarray(rtc["inference_delay"])), metrics.prev_valid_of(rtc)
    error_plain = metrics.weighted_prefix_error(naive["action"], prev, weights)
    runs = {"plain": naive, "rtc": rtc}
    if JACOBIAN_FREE in result:
        runs[JACOBIAN_FREE] = result[JACOBIAN_FREE]
    out: dict[str, Any] = {"seeds": len(error_plain), "names": tuple(runs)}
    for name, tracked in runs.items():
        out[f"jump_{name}"] = metrics.boundary_jump(tracked["action"], prev, delay, valid)
        if name == "plain":
            continue
        suffix = "" if name == "rtc" else f"_{name}"
        error = metrics.weighted_prefix_error(tracked["action"], prev, weights)
        out[f"effect{suffix}"] = metrics.guidance_effect(error, error_plain)
        out[f"cost{suffix}"] = metrics.guidance_cost(tracked["action"], naive["action"], delay)
    return out


def behaviour_membership(result: dict[str, dict[str, np.ndarray]]) -> dict[str, Any]:
    """Behaviours among the plain seeds and the share of each run's seeds in the previous chunk's behaviour
    (``rtc.numerics.behaviours.stay_shares``; runs named ``plain``, ``rtc`` and, when present,
    ``rtc_jacobian_free``). No share where the policy shows one behaviour."""
    rtc, naive = result["rtc"], result["naive"]
    runs = {"plain": naive["action"], "rtc": rtc["action"]}
    if JACOBIAN_FREE in result:
        runs[JACOBIAN_FREE] = result[JACOBIAN_FREE]["action"]
    prev = np.asarray(rtc["prev_action_chunk"])[0]
    return behaviours.stay_shares(naive["action"], prev, metrics.prev_valid_of(rtc), runs)
