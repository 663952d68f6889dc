"""Pure numerics of flow sampling: Euler integration, RTC guidance, prefix weights, tracking.

Everything here is a pure function of arrays, safe under ``jax.jit``. Settings that users change
often (delay, prefix horizon, schedule, guidance weight) are arrays, so changing them never
recompiles; only the number of flow steps and the array shapes are static.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rtc.errors import SettingsError
from rtc.numerics.names import SCHEDULES

VelocityFn = Callable[[jax.Array, "jax.Array | TokenTimes"], jax.Array]
Tracked = dict[str, jax.Array]


def schedule_index(schedule: str | int | jax.Array) -> int | jax.Array:
    """Map a schedule name to its index in ``SCHEDULES``; indices and arrays pass through."""
    if isinstance(schedule, str):
        if schedule not in SCHEDULES:
            raise SettingsError(f"prefix_attention_schedule={schedule!r} is not one of {', '.join(SCHEDULES)}")
        return SCHEDULES.index(schedule)
    if isinstance(schedule, (int, np.integer)) and not 0 <= schedule < len(SCHEDULES):
        raise SettingsError(f"schedule index {schedule} is out of range 0..{len(SCHEDULES) - 1} ({SCHEDULES})")
    return schedule


def get_prefix_weights(
    start: int | jax.Array, end: int | jax.Array, total: int, schedule: str | int | jax.Array
) -> jax.Array:
    """Per-index guidance weights ``[total]``: 1 on the frozen part ``i < start``, decaying to 0 at ``end``.

    ``schedule`` is ``exp``, ``linear``, ``ones`` or ``zeros`` (or its index, possibly traced).
    ``start`` is clamped to ``end`` and every index ``>= end`` gets weight 0.
    """
    index = jnp.arange(total)
    start = jnp.minimum(start, end)
    linear = jnp.clip((start - 1 - index) / (end - start + 1) + 1, 0.0, 1.0)
    candidates = jnp.stack(
        [
            linear * jnp.expm1(linear) / (math.e - 1),
            linear,
            jnp.ones(total, dtype=linear.dtype),
            (index < start).astype(linear.dtype),
        ]
    )
    weights = candidates[schedule_index(schedule)]
    return jnp.where(index >= end, 0.0, weights)


def unclipped_guidance_weight(t: jax.Array, max_guidance_weight: jax.Array) -> jax.Array:
    """``c * inv_r2`` before clipping, with ``c = (1 - t) / t`` and ``c(0) = max_guidance_weight``."""
    inv_r2 = (t**2 + (1 - t) ** 2) / (1 - t) ** 2
    c = jnp.nan_to_num((1 - t) / t, posinf=max_guidance_weight)
    return c * inv_r2


def guidance_weight(t: jax.Array, max_guidance_weight: jax.Array) -> jax.Array:
    """The RTC guidance weight at flow time ``t``, clipped at ``max_guidance_weight``."""
    return jnp.minimum(unclipped_guidance_weight(t, max_guidance_weight), max_guidance_weight)


def flow_times(num_steps: int) -> jax.Array:
    """Times at the start of each Euler step, accumulated as the sampler does (0, dt, 2 dt, ...)."""
    dt = 1.0 / num_steps
    return jax.lax.scan(lambda t, _: (t + dt, t), jnp.zeros((), jnp.float32), length=num_steps)[1]


class GuidanceSettings(NamedTuple):
    """RTC settings as arrays (a pytree), so that new values reuse the compiled sampler."""

    inference_delay: jax.Array
    prefix_attention_horizon: jax.Array
    schedule: jax.Array
    max_guidance_weight: jax.Array

    @classmethod
    def create(
        cls,
        inference_delay: int | jax.Array,
        prefix_attention_horizon: int | jax.Array,
        prefix_attention_schedule: str | int | jax.Array,
        max_guidance_weight: float | jax.Array,
        chunk_size: int | None = None,
    ) -> GuidanceSettings:
        """Validate concrete values (naming the bad one) and convert everything to arrays."""
        checks = {"inference_delay": inference_delay, "prefix_attention_horizon": prefix_attention_horizon}
        for name, value in checks.items():
            if isinstance(value, (int, np.integer)):
                upper = chunk_size if chunk_size is not None else value
                if not 0 <= value <= upper:
                    bound = f"0..{chunk_size} (the chunk size)" if chunk_size is not None else ">= 0"
                    raise SettingsError(f"{name}={value} is out of range; accepted: {bound}")
        if isinstance(max_guidance_weight, (int, float)) and not (
            math.isfinite(max_guidance_weight) and max_guidance_weight >= 0
        ):
            raise SettingsError(f"max_guidance_weight={max_guidance_weight} must be a finite number >= 0")
        return cls(
            jnp.asarray(inference_delay, jnp.int32),
            jnp.asarray(prefix_attention_horizon, jnp.int32),
            jnp.asarray(schedule_index(prefix_attention_schedule), jnp.int32),
            jnp.asarray(max_guidance_weight, jnp.float32),
        )


def naive_sample(
    velocity: VelocityFn, noise: jax.Array, num_steps: int, *, track: bool = False
) -> tuple[jax.Array, Tracked | None]:
    """Plain Euler sampling from ``noise`` at t=0 to t=1 in ``num_steps`` steps.

    Tracked: ``x_t, v_t, x_1_pred`` ``[n, B, H, A]``, ``time`` ``[n]``, ``action`` ``[B, H, A]``.
    """
    dt = 1.0 / num_steps

    def step(carry, _):
        x, t = carry
        v = velocity(x, t)
        record = {"x_t": x, "v_t": v, "x_1_pred": x + (1 - t) * v, "time": t} if track else None
        return (x + dt * v, t + dt), record

    (action, _), tracked = jax.lax.scan(step, (noise, jnp.zeros((), noise.dtype)), length=num_steps)
    if track:
        tracked["action"] = action
    return action, tracked


class TokenTimes(NamedTuple):
    """Flow times per action token, given as ``values [B, K]`` (K distinct times per example) and each token's
    ``index [B, H]`` into them: the time embedding and the adaLN modulations are computed once per value and
    gathered per token. Training-time RTC has K = 2 (the step's time, and 1 on the frozen prefix), so its cost
    per step stays that of one time per example; a ``[B, H]`` time array is the case K = H."""

    values: jax.Array
    index: jax.Array


def prefix_mask(inference_delay: int | jax.Array, horizon: int) -> jax.Array:
    """``[H]`` true at the frozen prefix ``i < d``."""
    return jnp.arange(horizon) < inference_delay


def training_time_sample(
    velocity: VelocityFn,
    noise: jax.Array,
    prev_action_chunk: jax.Array,
    inference_delay: int | jax.Array,
    num_steps: int,
    *,
    track: bool = False,
) -> tuple[jax.Array, Tracked | None]:
    """Training-time RTC (Black et al. 2025, arXiv 2512.05964): Euler sampling with the frozen prefix given clean.

    Every step sets the first ``d`` actions of the state to ``prev_action_chunk`` and evaluates the network with
    flow time 1 on them and the step's time ``t`` elsewhere (``velocity`` receives ``TokenTimes``); nothing is
    guided and no backward pass is taken. The returned chunk holds ``prev_action_chunk[:, :d]`` exactly (the
    frozen actions are executed from the previous chunk anyway; the public Kinetix code leaves them one Euler step
    off it) and the sampled actions from ``d`` on. A policy must have been trained with simulated delays
    (``rtc.training.flow``) for this to mean anything. With ``d = 0`` it is plain sampling evaluated with a
    per-token time.

    Tracked: ``x_t`` (the state the network sees, prefix replaced), ``v_t``, ``x_1_pred`` (``x + (1 - t) v`` per
    token, so the prefix's prediction is the prefix itself) ``[n, B, H, A]``, ``time`` ``[n]`` (the step's time
    outside the prefix), ``action``, ``prefix_mask [H]``, ``prev_action_chunk``, ``inference_delay``. No
    ``correction``, ``error`` or guidance weight: training-time RTC guides nothing.
    """
    dt = 1.0 / num_steps
    batch, horizon = noise.shape[:2]
    frozen = prefix_mask(inference_delay, horizon)
    target = prev_action_chunk.astype(noise.dtype)

    def clamp(x):
        return jnp.where(frozen[None, :, None], target, x)

    index = jnp.broadcast_to(frozen.astype(jnp.int32), (batch, horizon))  # 0: the step's time, 1: time 1

    def step(carry, _):
        x, t = carry
        x = clamp(x)
        values = jnp.broadcast_to(jnp.stack([t, jnp.ones((), noise.dtype)]), (batch, 2))
        v = velocity(x, TokenTimes(values, index))
        record = None
        if track:
            token_time = jnp.where(frozen, jnp.ones((), noise.dtype), t)  # [H]
            record = {"x_t": x, "v_t": v, "x_1_pred": x + (1 - token_time)[None, :, None] * v, "time": t}
        return (x + dt * v, t + dt), record

    (action, _), tracked = jax.lax.scan(step, (noise, jnp.zeros((), noise.dtype)), length=num_steps)
    action = clamp(action)
    if track:
        tracked.update(
            action=action,
            prefix_mask=frozen,
            prev_action_chunk=target,
            inference_delay=jnp.asarray(inference_delay, jnp.int32),
        )
    return action, tracked


def realtime_sample(
    velocity: VelocityFn,
    noise: jax.Array,
    prev_action_chunk: jax.Array,
    settings: GuidanceSettings,
    num_steps: int,
    *,
    track: bool = False,
    jacobian_free: bool = False,
) -> tuple[jax.Array, Tracked | None]:
    """RTC: Euler sampling guided towards ``prev_action_chunk`` on the prefix (pseudo-inverse guidance).

    Each step takes the vector-Jacobian product of the denoiser ``x + (1 - t) v(x, t)`` with the
    weighted error, so the correction flows through the network's Jacobian. Because batch elements
    are independent, one batched VJP equals the per-element VJPs.

    ``jacobian_free`` (static) replaces the denoiser's Jacobian by the identity: ``correction = error``,
    no VJP, one network evaluation per step (what LeRobot 0.6.1 computes, since its velocity is taken
    before ``x_t`` requires grad). Everything else, including the tracked record, is unchanged. With the
    default ``False`` the traced program is exactly plain RTC's.

    Tracked, beyond ``naive_sample``: ``correction`` and ``error`` (weighted) ``[n, B, H, A]``,
    ``applied`` (guidance weight times correction), ``guidance_weight`` ``[n]``,
    ``prefix_weights`` ``[H]``, ``prev_action_chunk``, ``inference_delay``, ``prefix_attention_horizon``.
    """
    dt = 1.0 / num_steps
    horizon = noise.shape[1]
    weights = get_prefix_weights(
        settings.inference_delay, settings.prefix_attention_horizon, horizon, settings.schedule
    ).astype(noise.dtype)
    target = prev_action_chunk.astype(noise.dtype)

    def step(carry, _):
        x, t = carry

        def denoise(x_t):
            v_t = velocity(x_t, t)
            return x_t + (1 - t) * v_t, v_t

        if jacobian_free:
            x_1_pred, v = denoise(x)
            error = (target - x_1_pred) * weights[:, None]
            correction = error
        else:
            x_1_pred, vjp_fn, v = jax.vjp(denoise, x, has_aux=True)
            error = (target - x_1_pred) * weights[:, None]
            (correction,) = vjp_fn(error)
        weight = guidance_weight(t, settings.max_guidance_weight)
        applied = weight * correction
        record = None
        if track:
            record = {
                "x_t": x,
                "v_t": v,
                "correction": correction,
                "error": error,
                "x_1_pred": x_1_pred,
                "time": t,
                "guidance_weight": weight,
                "applied": applied,
            }
        return (x + dt * (v + applied), t + dt), record

    (action, _), tracked = jax.lax.scan(step, (noise, jnp.zeros((), noise.dtype)), length=num_steps)
    if track:
        tracked.update(
            action=action,
            prefix_weights=weights,
            prev_action_chunk=target,
            inference_delay=settings.inference_delay,
            prefix_attention_horizon=settings.prefix_attention_horizon,
        )
    return action, tracked
