"""The chunking methods compared in the paper, sampled from identical starting noise.

``naive`` is plain sampling; ``rtc_<schedule>`` is RTC with that prefix schedule; ``hard_masking`` is RTC
with the ``zeros`` schedule; ``bid`` (bidirectional decoding, backward coherence only: the forward contrast
against a weaker policy is not implemented) draws N plain samples and keeps the one with the smallest weighted
distance ``sum_h W_h ||a_h - y_h||`` to the previous chunk, with ``W`` from the ``exp`` schedule. That is the
variant the paper's sweep uses. ``rtc_<schedule>_jacobian_free`` is RTC with the identity in place of the
denoiser's Jacobian (``correction = error``, no VJP: one network evaluation per step), as LeRobot 0.6.1
computes it.

Noise is one array ``[N, B, H, A]`` for every method: candidate 0 is the shared starting noise (what
``FlowPolicy.initial_noise(rng, B)`` draws), candidates 1.. are BID's extra samples and the other methods
ignore them. The method is an index that may be traced, so one compiled program serves every method.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rtc.errors import SettingsError
from rtc.numerics import metrics, sampler
from rtc.numerics.model import FlowPolicy, velocity_fn
from rtc.numerics.names import METHODS
from rtc.numerics.sampler import GuidanceSettings, get_prefix_weights, schedule_index

METHOD_LABELS: dict[str, str] = {
    "naive": "naive (plain sampling)",
    "rtc_exp": "RTC (exp schedule)",
    "rtc_linear": "RTC (linear schedule)",
    "rtc_ones": "RTC (ones schedule)",
    "hard_masking": "hard masking (zeros schedule)",
    "bid": "BID, backward only (best of N plain samples; no forward contrast with a weak policy)",
    "rtc_exp_jacobian_free": "RTC Jacobian-free (exp schedule)",
    "rtc_linear_jacobian_free": "RTC Jacobian-free (linear schedule)",
    "rtc_ones_jacobian_free": "RTC Jacobian-free (ones schedule)",
}
JACOBIAN_FREE_NOTE = (
    "RTC Jacobian-free: RTC with correction = weighted error (the identity in place of the network's "
    "Jacobian, no VJP), so the network runs once per step instead of forward + backward; LeRobot 0.6.1 does this."
)
# Kind of sampler per method: 0 plain, 1 guided (RTC), 2 BID, 3 guided without the Jacobian; and the prefix
# schedule each one uses.
_KIND: tuple[int, ...] = (0, 1, 1, 1, 1, 2, 3, 3, 3)
_SCHEDULE: tuple[str, ...] = ("exp", "exp", "linear", "ones", "zeros", "exp", "exp", "linear", "ones")
BID_SCHEDULE = "exp"
REFERENCE_METHOD = "rtc_exp"  # what the comparison table measures "distance to RTC" against


def method_index(method: str | int | jax.Array) -> int | jax.Array:
    """The index of ``method`` in ``METHODS``; ints are range-checked, traced arrays pass through."""
    if isinstance(method, str):
        if method not in METHODS:
            raise SettingsError(f"method={method!r} is not one of {', '.join(METHODS)}")
        return METHODS.index(method)
    if isinstance(method, (int, np.integer)) and not 0 <= method < len(METHODS):
        raise SettingsError(f"method index {method} is out of range 0..{len(METHODS) - 1} ({METHODS})")
    return method


def method_schedule(method: str) -> str:
    """The prefix schedule a method guides (RTC, hard masking) or ranks (BID) with."""
    return _SCHEDULE[method_index(method)]


def is_jacobian_free(method: str) -> bool:
    """Whether ``method`` guides with the weighted error itself (no vector-Jacobian product)."""
    return _KIND[method_index(method)] == 3


def candidate_noise(rng: jax.Array, shape: tuple[int, int, int], num_candidates: int = 1) -> jax.Array:
    """Noise ``[N, B, H, A]``: candidate 0 is ``normal(rng, shape)`` (plain sampling's noise), candidate k
    is ``normal(fold_in(rng, k), shape)``, so the shared noise never depends on N."""
    if num_candidates < 1:
        raise SettingsError(f"num_candidates={num_candidates} must be >= 1")
    draws = [jax.random.normal(rng, shape)]
    draws += [jax.random.normal(jax.random.fold_in(rng, k), shape) for k in range(1, num_candidates)]
    return jnp.stack(draws)


def bid_distances(candidates: jax.Array, prev_chunk: jax.Array, weights: jax.Array) -> jax.Array:
    """BID's backward loss ``sum_h W_h ||a_h - y_h||`` per candidate ``[N, B]`` (candidates ``[N, B, H, A]``)."""
    distance = jnp.linalg.norm(candidates - prev_chunk[None], axis=-1)  # [N, B, H]
    return jnp.sum(distance * weights, axis=-1)


def bid_select(
    graphdef: Any,
    state: Any,
    obs: jax.Array,
    noise: jax.Array,
    prev_chunk: jax.Array,
    settings: GuidanceSettings,
    num_steps: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draw one plain sample per candidate noise ``[N, B, H, A]`` and keep, per batch element, the one
    nearest to ``prev_chunk`` (exp weights from ``inference_delay`` to ``prefix_attention_horizon``).

    Returns ``(chunk [B, H, A], chosen index [B], distances [N, B])``; ties go to the lowest index, so
    with N = 1 the result is the plain sample from ``noise[0]``.
    """
    n, batch, horizon, action_dim = noise.shape
    tiled_obs = jnp.tile(obs, (n, 1))  # candidate-major, matching noise.reshape
    velocity = velocity_fn(graphdef, state, tiled_obs)
    flat, _ = sampler.naive_sample(velocity, noise.reshape(n * batch, horizon, action_dim), num_steps)
    candidates = flat.reshape(n, batch, horizon, action_dim)
    weights = get_prefix_weights(
        settings.inference_delay, settings.prefix_attention_horizon, horizon, BID_SCHEDULE
    ).astype(noise.dtype)
    distances = bid_distances(candidates, prev_chunk.astype(noise.dtype), weights)
    best = jnp.argmin(distances, axis=0)
    chunk = jnp.take_along_axis(candidates, best[None, :, None, None], axis=0)[0]
    return chunk, best, distances


def sample_method(
    graphdef: Any,
    state: Any,
    method: str | int | jax.Array,
    obs: jax.Array,
    noise: jax.Array,
    prev_chunk: jax.Array,
    settings: GuidanceSettings,
    num_steps: int,
) -> jax.Array:
    """One chunk ``[B, H, A]`` by ``method`` (name or index, possibly traced) from candidate noise ``[N, B, H, A]``.

    Pure and jittable (``graphdef`` and ``num_steps`` static). ``settings.schedule`` is replaced by the
    method's own schedule; plain sampling ignores ``prev_chunk`` and ``settings``.
    """
    index = jnp.asarray(method_index(method), jnp.int32)
    kind = jnp.asarray(_KIND, jnp.int32)[index]
    schedule = jnp.asarray([schedule_index(s) for s in _SCHEDULE], jnp.int32)[index]
    guided_settings = settings._replace(schedule=schedule)

    def plain(_):
        return sampler.naive_sample(velocity_fn(graphdef, state, obs), noise[0], num_steps)[0]

    def guided(_, jacobian_free=False):
        velocity = velocity_fn(graphdef, state, obs)
        return sampler.realtime_sample(
            velocity, noise[0], prev_chunk, guided_settings, num_steps, jacobian_free=jacobian_free
        )[0]

    def bid(_):
        return bid_select(graphdef, state, obs, noise, prev_chunk, settings, num_steps)[0]

    return jax.lax.switch(kind, (plain, guided, bid, functools.partial(guided, jacobian_free=True)), None)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps"))
def _sample_method_jit(graphdef, state, method, obs, noise, prev_chunk, settings, *, num_steps):
    return sample_method(graphdef, state, method, obs, noise, prev_chunk, settings, num_steps)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps"))
def _bid_jit(graphdef, state, obs, noise, prev_chunk, settings, *, num_steps):
    return bid_select(graphdef, state, obs, noise, prev_chunk, settings, num_steps)


def guidance_settings(
    method: str,
    inference_delay: int | jax.Array,
    prefix_attention_horizon: int | jax.Array,
    max_guidance_weight: float | jax.Array,
    chunk_size: int | None = None,
) -> GuidanceSettings:
    """Validated ``GuidanceSettings`` with ``method``'s schedule."""
    return GuidanceSettings.create(
        inference_delay, prefix_attention_horizon, method_schedule(method), max_guidance_weight, chunk_size
    )


@dataclasses.dataclass(frozen=True)
class MethodInputs:
    """What every method samples a chunk from: the observation ``[B, obs_dim]``, the previous chunk ``[B, H, A]``,
    the candidate noise ``[N, B, H, A]`` (N = BID's sample count), the guidance timing and weight, and the number
    of flow steps (BID ignores the weight)."""

    obs: jax.Array
    prev_chunk: jax.Array
    noise: jax.Array
    inference_delay: int | jax.Array
    prefix_attention_horizon: int | jax.Array
    max_guidance_weight: float | jax.Array
    num_steps: int


def compare_methods(
    policy: FlowPolicy, inputs: MethodInputs, methods: Sequence[str] = METHODS
) -> dict[str, np.ndarray]:
    """Final chunks ``[B, H, A]`` of every method on the same ``inputs``. One compiled program serves all methods."""
    run = _method_runner(policy, inputs)
    return {method: np.asarray(run(method)) for method in methods}


def _method_runner(policy: FlowPolicy, inputs: MethodInputs) -> Callable[[str], jax.Array]:
    """``run(method) -> chunk`` through the one jitted program every method shares."""
    graphdef, state = nnx.split(policy)
    settings = guidance_settings(
        "rtc_exp",
        inputs.inference_delay,
        inputs.prefix_attention_horizon,
        inputs.max_guidance_weight,
        policy.action_chunk_size,
    )

    def run(method: str) -> jax.Array:
        index = method_index(method)
        return _sample_method_jit(
            graphdef, state, index, inputs.obs, inputs.noise, inputs.prev_chunk, settings, num_steps=inputs.num_steps
        )

    return run


def time_methods(
    policy: FlowPolicy, inputs: MethodInputs, methods: Sequence[str] = METHODS, repeats: int = 5
) -> dict[str, float]:
    """Wall seconds per chunk of each method (median of ``repeats``), on the inputs of ``compare_methods``.

    Every method runs once to warm up (compiling the shared program if needed), then the methods are
    timed in turn, ``repeats`` rounds, so load on the machine hits all of them alike.
    """
    if repeats < 1:
        raise SettingsError(f"repeats={repeats} must be >= 1")
    run = _method_runner(policy, inputs)
    for method in methods:
        jax.block_until_ready(run(method))
    times: dict[str, list[float]] = {method: [] for method in methods}
    for _ in range(repeats):
        for method in methods:
            start = time.perf_counter()
            jax.block_until_ready(run(method))
            times[method].append(time.perf_counter() - start)
    return {method: float(np.median(values)) for method, values in times.items()}


def bid_details(policy: FlowPolicy, inputs: MethodInputs) -> dict[str, np.ndarray]:
    """BID's ``chunk``, chosen ``index [B]`` and ``distances [N, B]`` for inspection."""
    graphdef, state = nnx.split(policy)
    settings = guidance_settings(
        "bid", inputs.inference_delay, inputs.prefix_attention_horizon, 0.0, policy.action_chunk_size
    )
    chunk, index, distances = _bid_jit(
        graphdef, state, inputs.obs, inputs.noise, inputs.prev_chunk, settings, num_steps=inputs.num_steps
    )
    return {"chunk": np.asarray(chunk), "index": np.asarray(index), "distances": np.asarray(distances)}


def comparison_weights(inference_delay: int, prefix_attention_horizon: int, horizon: int) -> np.ndarray:
    """The weights every method is scored with: the ``exp`` schedule (BID's distance), ``[H]``."""
    return np.asarray(get_prefix_weights(inference_delay, prefix_attention_horizon, horizon, "exp"))


def comparison_table(
    chunks: Mapping[str, np.ndarray],
    prev_chunk: np.ndarray,
    inference_delay: int,
    prefix_attention_horizon: int,
    plain_method: str = "naive",
    last_executed: np.ndarray | None = None,
    reference_method: str = REFERENCE_METHOD,
    seconds_per_chunk: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """One row per method, averaged over the batch.

    ``weighted_prefix_error``: ``sum_h W_h ||chunk_h - prev_h||`` with exp weights for every method;
    ``boundary_jump``: ``metrics.boundary_jump`` (``||chunk[d] - e||`` with ``e`` the last action executed
    before the switch; NaN where undefined, e.g. where ``e`` would be the previous chunk's zero padding);
    ``frozen_max_deviation``: ``metrics.frozen_max_deviation`` over the real frozen actions (NaN if none);
    ``distance_to_plain`` / ``distance_to_rtc``: L2 distance of the whole chunk to ``chunks[plain_method]`` /
    ``chunks[reference_method]`` (RTC, exp schedule), NaN if absent; ``seconds_per_chunk``: the method's
    measured wall time (``time_methods``), NaN if not given.
    The previous chunk holds ``prefix_attention_horizon`` real planned actions (the protocol's ``H - s``);
    ``last_executed`` ``[B, A]`` is the action run just before the chunk starts (for the jump at d = 0).
    """
    prev = np.asarray(prev_chunk)
    horizon = prev.shape[-2]
    weights = comparison_weights(inference_delay, prefix_attention_horizon, horizon)
    timings = seconds_per_chunk or {}

    def distance_to(chunk: np.ndarray, other: np.ndarray | None) -> float:
        if other is None:
            return float("nan")
        return float(np.linalg.norm((chunk - np.asarray(other)).reshape(len(chunk), -1), axis=-1).mean())

    rows = []
    for method, chunk in chunks.items():
        chunk = np.asarray(chunk)
        d, valid = int(inference_delay), int(prefix_attention_horizon)
        jump = metrics.mean_defined(metrics.boundary_jump(chunk, prev, d, valid, last_executed))
        rows.append(
            {
                "method": method,
                "weighted_prefix_error": float(metrics.weighted_prefix_error(chunk, prev, weights).mean()),
                "boundary_jump": float("nan") if jump is None else jump,
                "frozen_max_deviation": metrics.frozen_max_deviation(chunk, prev, d, valid),
                "distance_to_plain": distance_to(chunk, chunks.get(plain_method)),
                "distance_to_rtc": distance_to(chunk, chunks.get(reference_method)),
                "seconds_per_chunk": float(timings.get(method, float("nan"))),
            }
        )
    return rows


def track_method(policy: FlowPolicy, method: str, inputs: MethodInputs) -> dict[str, np.ndarray]:
    """The denoising steps of one method's chunk, tracked as ``return_tracking=True`` does (numpy).

    RTC (with or without the Jacobian) and hard masking give the full RTC record (Jacobian-free: ``correction``
    equals ``error``); naive gives the plain record; BID gives the plain
    record of the chosen candidate per batch element, plus ``bid_index [B]`` and ``bid_distances [N, B]``.
    Every record also carries ``prev_action_chunk`` and ``inference_delay`` for the chunk views.
    """
    method_index(method)
    kind = _KIND[METHODS.index(method)]
    obs, noise, num_steps = inputs.obs, inputs.noise, inputs.num_steps
    if kind in (1, 3):
        _, tracked = policy.realtime_action(
            None,
            obs,
            num_steps,
            inputs.prev_chunk,
            inputs.inference_delay,
            inputs.prefix_attention_horizon,
            method_schedule(method),
            inputs.max_guidance_weight,
            return_tracking=True,
            noise=noise[0],
            jacobian_free=kind == 3,
        )
        return jax.tree.map(np.asarray, tracked)
    if kind == 0:
        _, tracked = policy.action(None, obs, num_steps, return_tracking=True, noise=noise[0])
        extra = {}
    else:
        details = bid_details(policy, inputs)
        chosen = jnp.take_along_axis(noise, jnp.asarray(details["index"])[None, :, None, None], axis=0)[0]
        _, tracked = policy.action(None, obs, num_steps, return_tracking=True, noise=chosen)
        extra = {"bid_index": details["index"], "bid_distances": details["distances"]}
    out = jax.tree.map(np.asarray, tracked)
    out.update(
        extra, prev_action_chunk=np.asarray(inputs.prev_chunk), inference_delay=np.asarray(inputs.inference_delay)
    )
    return out
