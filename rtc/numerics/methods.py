"""The chunking methods compared in the paper and their successors, sampled from identical starting noise.

``naive`` is plain sampling; ``rtc_<schedule>`` is RTC with that prefix schedule; ``hard_masking`` is RTC
with the ``zeros`` schedule; ``bid`` (bidirectional decoding, backward coherence only) draws N plain samples and
keeps the one with the smallest weighted distance ``sum_h W_h ||a_h - y_h||`` to the previous chunk, with ``W``
from the ``exp`` schedule. That is the variant the paper's sweep uses. ``bid_forward`` adds BID's forward contrast
against a weaker policy (``bid_forward_scores`` defines it exactly). ``rtc_<schedule>_jacobian_free`` is RTC
with the identity in place of the denoiser's Jacobian (``correction = error``, no VJP: one network evaluation per
step), as LeRobot 0.6.1 computes it. ``training_time_rtc`` (Black et al. 2025, arXiv 2512.05964) feeds the frozen
prefix clean at flow time 1 to a policy trained with simulated delays and guides nothing
(``sampler.training_time_sample``); it refuses a policy not trained for it (``check_method``).

Noise is one array ``[N, B, H, A]`` for every method: candidate 0 is the shared starting noise (what
``FlowPolicy.initial_noise(rng, B)`` draws), candidates 1.. are BID's extra samples and the other methods
ignore them; BID's weak policy samples from the same N noises. The method is an index that may be traced, so
one compiled program serves every method.
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

from rtc.errors import RTCError, SettingsError
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
    "bid": "BID, backward only (best of N plain samples)",
    "bid_forward": "BID, backward + forward (weak policy)",
    "rtc_exp_jacobian_free": "RTC Jacobian-free (exp schedule)",
    "rtc_linear_jacobian_free": "RTC Jacobian-free (linear schedule)",
    "rtc_ones_jacobian_free": "RTC Jacobian-free (ones schedule)",
    "training_time_rtc": "training-time RTC (no guidance)",
}
JACOBIAN_FREE_NOTE = (
    "RTC Jacobian-free: RTC with correction = weighted error (the identity in place of the network's "
    "Jacobian, no VJP), so the network runs once per step instead of forward + backward; LeRobot 0.6.1 does this."
)
NO_CORRECTION_NOTE = (
    "no correction (training-time RTC guides nothing: the frozen prefix is fed clean at flow time 1 to a policy "
    "trained for it)"
)
# Kind of sampler per method: 0 plain, 1 guided (RTC), 2 BID (backward only), 3 guided without the Jacobian,
# 4 training-time RTC, 5 BID with the forward term; and the prefix schedule each one uses (training-time RTC:
# none; "exp" only names the weights it is scored with).
_KIND: tuple[int, ...] = (0, 1, 1, 1, 1, 2, 3, 3, 3, 4, 5)
_SCHEDULE: tuple[str, ...] = ("exp", "exp", "linear", "ones", "zeros", "exp", "exp", "linear", "ones", "exp", "exp")
TRAINING_TIME_METHODS: tuple[str, ...] = ("training_time_rtc",)  # need a policy trained with simulated delays
WEAK_POLICY_METHODS: tuple[str, ...] = ("bid_forward",)  # need a weak policy (an earlier checkpoint)
DEFAULT_BID_K = 2
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


def has_correction(method: str) -> bool:
    """Whether ``method`` computes a guidance correction (RTC and hard masking, with or without the Jacobian)."""
    return _KIND[method_index(method)] in (1, 3)


def check_method(
    method: str,
    policy: FlowPolicy,
    policy_name: str = "the policy",
    inference_delay: int | None = None,
    weak_policy: FlowPolicy | None = None,
    bid_k: int | None = None,
    bid_samples: int | None = None,
) -> str:
    """``method`` if ``policy`` can run it, else one ``RTCError`` line naming the policy and what is needed.

    ``training_time_rtc`` needs a policy trained with simulated delays (``policy.max_simulated_delay``, read from
    its checkpoint's training metadata) up to at least ``inference_delay``; ``bid_forward`` needs a weak policy of
    the same sizes and ``1 <= bid_k <= bid_samples``.
    """
    method_index(method)
    if method in TRAINING_TIME_METHODS:
        trained = policy.max_simulated_delay
        if trained is None:
            raise RTCError(
                f"method {method} needs a policy trained with simulated delays (training-time RTC: "
                f"rtc.training.flow.TrainConfig(max_simulated_delay=D)); {policy_name} was trained without them"
            )
        if inference_delay is not None and inference_delay > trained:
            raise SettingsError(
                f"method {method} at inference delay d={inference_delay}: {policy_name} was trained with simulated "
                f"delays up to {trained}; accepted: d = 0..{trained}"
            )
    if method in WEAK_POLICY_METHODS:
        if weak_policy is None:
            raise SettingsError(
                f"method {method} needs a weak policy (an earlier checkpoint of the same run: --bid-weak-epoch); "
                f"none was given for {policy_name}"
            )
        if (weak_policy.config, weak_policy.obs_dim, weak_policy.action_dim) != (
            policy.config,
            policy.obs_dim,
            policy.action_dim,
        ):
            raise SettingsError(
                f"method {method}: the weak policy's sizes ({weak_policy.config}, obs {weak_policy.obs_dim}, action "
                f"{weak_policy.action_dim}) differ from {policy_name}'s; use an earlier checkpoint of the same run"
            )
        if bid_k is not None and bid_samples is not None and not 1 <= bid_k <= bid_samples:
            raise SettingsError(f"bid_k={bid_k} is out of range; accepted: 1..{bid_samples} (the BID sample count N)")
    return method


def applicable_methods(
    policy: FlowPolicy, weak_policy: FlowPolicy | None = None, inference_delay: int | None = None
) -> tuple[str, ...]:
    """The methods ``policy`` can run: every method, less training-time RTC for a policy not trained for it (or
    trained for delays below ``inference_delay``) and less BID's forward term without a weak policy."""
    skip = set()
    trained = policy.max_simulated_delay
    if trained is None or (inference_delay is not None and inference_delay > trained):
        skip.update(TRAINING_TIME_METHODS)
    if weak_policy is None:
        skip.update(WEAK_POLICY_METHODS)
    return tuple(m for m in METHODS if m not in skip)


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


def _ranks(losses: jax.Array) -> jax.Array:
    """Rank ``[N, B]`` of each candidate's loss among the N (0 = smallest; ties by lower index)."""
    order = jnp.argsort(losses, axis=0, stable=True)
    return jnp.argsort(order, axis=0, stable=True)


def bid_forward_scores(
    candidates: jax.Array, weak_samples: jax.Array, prev_chunk: jax.Array, weights: jax.Array, k: int | jax.Array
) -> tuple[jax.Array, jax.Array]:
    """BID's score with the forward contrast, per candidate ``[N, B]``: ``(score, forward term)``.

    Definition (Liu et al. 2024, "Bidirectional Decoding", as the RTC paper's Kinetix code computes it with
    ``bid_k``). For one batch element: ``a_1..a_N`` are the strong policy's candidates, ``w_1..w_N`` the weak
    policy's samples from the same N noises, ``y`` the previous chunk and ``B(x) = sum_h W_h ||x_h - y_h||`` the
    backward loss (exp weights ``W``; ``bid_distances``). The positive set ``A+`` is the ``k`` candidates with the
    smallest backward loss, the negative set ``A-`` the ``k`` weak samples with the smallest backward loss (ties by
    lower index; ``A+`` may contain the candidate itself, at distance 0). With ``D(x, z) = sum_h ||x_h - z_h||``
    (unweighted, over the whole chunk) the forward term is
    ``F(a) = sum_{p in A+} D(a, p) - sum_{m in A-} D(a, m)``: near the strong policy's likely samples and far from
    the weak policy's. The score is ``B(a) + F(a) / N``; ``bid_select`` keeps the candidate with the smallest.
    ``k`` may be traced; ``1 <= k <= N``.
    """
    n = candidates.shape[0]
    prev = prev_chunk.astype(candidates.dtype)
    backward = bid_distances(candidates, prev, weights)  # [N, B]
    weak_backward = bid_distances(weak_samples, prev, weights)
    positive = (_ranks(backward) < k).astype(candidates.dtype)  # [N, B]
    negative = (_ranks(weak_backward) < k).astype(candidates.dtype)

    def chunk_distance(a: jax.Array, z: jax.Array) -> jax.Array:  # [N, B, H, A] x [M, B, H, A] -> [N, M, B]
        return jnp.sum(jnp.linalg.norm(a[:, None] - z[None], axis=-1), axis=-1)

    forward = jnp.einsum("nmb,mb->nb", chunk_distance(candidates, candidates), positive) - jnp.einsum(
        "nmb,mb->nb", chunk_distance(candidates, weak_samples), negative
    )
    return backward + forward / n, forward


def _plain_candidates(graphdef: Any, state: Any, obs: jax.Array, noise: jax.Array, num_steps: int) -> jax.Array:
    """One plain sample per candidate noise: ``[N, B, H, A]``."""
    n, batch, horizon, action_dim = noise.shape
    tiled_obs = jnp.tile(obs, (n, 1))  # candidate-major, matching noise.reshape
    velocity = velocity_fn(graphdef, state, tiled_obs)
    flat, _ = sampler.naive_sample(velocity, noise.reshape(n * batch, horizon, action_dim), num_steps)
    return flat.reshape(n, batch, horizon, action_dim)


def bid_select(
    graphdef: Any,
    state: Any,
    obs: jax.Array,
    noise: jax.Array,
    prev_chunk: jax.Array,
    settings: GuidanceSettings,
    num_steps: int,
    weak_state: Any = None,
    bid_k: int | jax.Array | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Draw one plain sample per candidate noise ``[N, B, H, A]`` and keep, per batch element, the one
    nearest to ``prev_chunk`` (exp weights from ``inference_delay`` to ``prefix_attention_horizon``); with
    ``weak_state`` (the weak policy's weights, same graph) and ``bid_k``, the one with the smallest score of
    ``bid_forward_scores`` instead.

    Returns ``(chunk [B, H, A], chosen index [B], scores [N, B])``; ties go to the lowest index, so
    with N = 1 the result is the plain sample from ``noise[0]``.
    """
    horizon = noise.shape[2]
    candidates = _plain_candidates(graphdef, state, obs, noise, num_steps)
    weights = get_prefix_weights(
        settings.inference_delay, settings.prefix_attention_horizon, horizon, BID_SCHEDULE
    ).astype(noise.dtype)
    if weak_state is None:
        scores = bid_distances(candidates, prev_chunk.astype(noise.dtype), weights)
    else:
        weak = _plain_candidates(graphdef, weak_state, obs, noise, num_steps)
        k = DEFAULT_BID_K if bid_k is None else bid_k
        scores, _ = bid_forward_scores(candidates, weak, prev_chunk, weights, k)
    best = jnp.argmin(scores, axis=0)
    chunk = jnp.take_along_axis(candidates, best[None, :, None, None], axis=0)[0]
    return chunk, best, scores


def sample_method(
    graphdef: Any,
    state: Any,
    method: str | int | jax.Array,
    obs: jax.Array,
    noise: jax.Array,
    prev_chunk: jax.Array,
    settings: GuidanceSettings,
    num_steps: int,
    weak_state: Any = None,
    bid_k: int | jax.Array | None = None,
) -> jax.Array:
    """One chunk ``[B, H, A]`` by ``method`` (name or index, possibly traced) from candidate noise ``[N, B, H, A]``.

    Pure and jittable (``graphdef`` and ``num_steps`` static). ``settings.schedule`` is replaced by the
    method's own schedule; plain sampling ignores ``prev_chunk`` and ``settings``. ``weak_state`` (the weak
    policy's weights; default: ``state``, which makes the forward term vanish) and ``bid_k`` serve BID's forward
    term only. Whether ``policy`` may run the method is ``check_method``'s to say, before tracing.
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

    def training_time(_):
        velocity = velocity_fn(graphdef, state, obs)
        return sampler.training_time_sample(velocity, noise[0], prev_chunk, settings.inference_delay, num_steps)[0]

    def bid_forward(_):
        weak = state if weak_state is None else weak_state
        k = jnp.asarray(DEFAULT_BID_K if bid_k is None else bid_k, jnp.int32)
        return bid_select(graphdef, state, obs, noise, prev_chunk, settings, num_steps, weak, k)[0]

    branches = (plain, guided, bid, functools.partial(guided, jacobian_free=True), training_time, bid_forward)
    return jax.lax.switch(kind, branches, None)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps"))
def _sample_method_jit(graphdef, state, method, obs, noise, prev_chunk, settings, weak_state, bid_k, *, num_steps):
    return sample_method(graphdef, state, method, obs, noise, prev_chunk, settings, num_steps, weak_state, bid_k)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps"))
def _bid_jit(graphdef, state, obs, noise, prev_chunk, settings, weak_state, bid_k, *, num_steps):
    return bid_select(graphdef, state, obs, noise, prev_chunk, settings, num_steps, weak_state, bid_k)


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
    of flow steps (BID ignores the weight); for BID's forward term, the weak policy and ``bid_k``."""

    obs: jax.Array
    prev_chunk: jax.Array
    noise: jax.Array
    inference_delay: int | jax.Array
    prefix_attention_horizon: int | jax.Array
    max_guidance_weight: float | jax.Array
    num_steps: int
    weak_policy: FlowPolicy | None = None
    bid_k: int = DEFAULT_BID_K

    def weak_state(self) -> Any:
        return None if self.weak_policy is None else nnx.split(self.weak_policy)[1]


def compare_methods(
    policy: FlowPolicy, inputs: MethodInputs, methods: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Final chunks ``[B, H, A]`` of every method (default: ``applicable_methods``) on the same ``inputs``. One
    compiled program serves all methods; a method the policy cannot run is refused (``check_method``)."""
    run = _method_runner(policy, inputs)
    chosen = _default_methods(policy, inputs) if methods is None else methods
    return {method: np.asarray(run(method)) for method in chosen}


def _default_methods(policy: FlowPolicy, inputs: MethodInputs) -> tuple[str, ...]:
    delay = inputs.inference_delay if isinstance(inputs.inference_delay, (int, np.integer)) else None
    return applicable_methods(policy, inputs.weak_policy, delay)


def _check_inputs(policy: FlowPolicy, method: str, inputs: MethodInputs) -> None:
    delay = inputs.inference_delay if isinstance(inputs.inference_delay, (int, np.integer)) else None
    check_method(method, policy, "the policy", delay, inputs.weak_policy, inputs.bid_k, inputs.noise.shape[0])


def _method_runner(policy: FlowPolicy, inputs: MethodInputs) -> Callable[[str], jax.Array]:
    """``run(method) -> chunk`` through the one jitted program every method shares."""
    graphdef, state = nnx.split(policy)
    weak_state = inputs.weak_state()
    settings = guidance_settings(
        "rtc_exp",
        inputs.inference_delay,
        inputs.prefix_attention_horizon,
        inputs.max_guidance_weight,
        policy.action_chunk_size,
    )

    def run(method: str) -> jax.Array:
        index = method_index(method)
        _check_inputs(policy, method, inputs)
        return _sample_method_jit(
            graphdef,
            state,
            index,
            inputs.obs,
            inputs.noise,
            inputs.prev_chunk,
            settings,
            state if weak_state is None else weak_state,
            jnp.asarray(inputs.bid_k, jnp.int32),
            num_steps=inputs.num_steps,
        )

    return run


def time_methods(
    policy: FlowPolicy, inputs: MethodInputs, methods: Sequence[str] | None = None, repeats: int = 5
) -> dict[str, float]:
    """Wall seconds per chunk of each method (median of ``repeats``), on the inputs of ``compare_methods``.

    Every method runs once to warm up (compiling the shared program if needed), then the methods are
    timed in turn, ``repeats`` rounds, so load on the machine hits all of them alike.
    """
    if repeats < 1:
        raise SettingsError(f"repeats={repeats} must be >= 1")
    methods = _default_methods(policy, inputs) if methods is None else methods
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


def bid_details(policy: FlowPolicy, inputs: MethodInputs, forward: bool = False) -> dict[str, np.ndarray]:
    """BID's ``chunk``, chosen ``index [B]`` and ``distances [N, B]`` (the scores it ranks by: with ``forward``,
    ``bid_forward_scores`` against ``inputs.weak_policy``) for inspection."""
    graphdef, state = nnx.split(policy)
    settings = guidance_settings(
        "bid", inputs.inference_delay, inputs.prefix_attention_horizon, 0.0, policy.action_chunk_size
    )
    weak_state = inputs.weak_state() if forward else None
    if forward and weak_state is None:
        check_method("bid_forward", policy)
    chunk, index, distances = _bid_jit(
        graphdef,
        state,
        inputs.obs,
        inputs.noise,
        inputs.prev_chunk,
        settings,
        weak_state,
        jnp.asarray(inputs.bid_k, jnp.int32) if forward else None,
        num_steps=inputs.num_steps,
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
    prev_valid: int | None = None,
) -> list[dict[str, Any]]:
    """One row per method, averaged over the batch.

    ``weighted_prefix_error``: ``sum_h W_h ||chunk_h - prev_h||`` with exp weights for every method;
    ``boundary_jump``: ``metrics.boundary_jump`` (``||chunk[d] - e||`` with ``e`` the last action executed
    before the switch; NaN where undefined, e.g. where ``e`` would be the previous chunk's zero padding);
    ``frozen_max_deviation``: ``metrics.frozen_max_deviation`` over the real frozen actions (NaN if none);
    ``distance_to_plain`` / ``distance_to_rtc``: L2 distance of the whole chunk to ``chunks[plain_method]`` /
    ``chunks[reference_method]`` (RTC, exp schedule), NaN if absent; ``seconds_per_chunk``: the method's
    measured wall time (``time_methods``), NaN if not given; ``guidance_effect`` (with ``_low``, ``_high``, ``_n``,
    ``_excluded``): ``metrics.guidance_effect`` of the method's prefix errors against ``chunks[plain_method]``'s
    from the same noise; ``guidance_cost`` (same fields): ``metrics.guidance_cost`` against it (both absent
    without the plain method).
    The previous chunk holds ``prev_valid`` real planned actions (``H`` in the paper's first block; default the
    protocol's ``H - s`` = ``prefix_attention_horizon``); ``last_executed`` ``[B, A]`` is the action run just
    before the chunk starts (for the jump at d = 0).
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
        d = int(inference_delay)
        valid = int(prefix_attention_horizon if prev_valid is None else prev_valid)
        jump = metrics.mean_defined(metrics.boundary_jump(chunk, prev, d, valid, last_executed))
        scores = {}
        if plain_method in chunks:
            plain = np.asarray(chunks[plain_method])
            errors = (metrics.weighted_prefix_error(c, prev, weights) for c in (chunk, plain))
            scores = metrics.guidance_effect(*errors).fields("guidance_effect")
            scores |= metrics.guidance_cost(chunk, plain, d).fields("guidance_cost")
        rows.append(
            {
                "method": method,
                "weighted_prefix_error": float(metrics.weighted_prefix_error(chunk, prev, weights).mean()),
                "boundary_jump": float("nan") if jump is None else jump,
                "frozen_max_deviation": metrics.frozen_max_deviation(chunk, prev, d, valid),
                "distance_to_plain": distance_to(chunk, chunks.get(plain_method)),
                "distance_to_rtc": distance_to(chunk, chunks.get(reference_method)),
                "seconds_per_chunk": float(timings.get(method, float("nan"))),
                **scores,
            }
        )
    return rows


def track_method(policy: FlowPolicy, method: str, inputs: MethodInputs) -> dict[str, np.ndarray]:
    """The denoising steps of one method's chunk, tracked as ``return_tracking=True`` does (numpy).

    RTC (with or without the Jacobian) and hard masking give the full RTC record (Jacobian-free: ``correction``
    equals ``error``); naive gives the plain record; BID (either variant) gives the plain
    record of the chosen candidate per batch element, plus ``bid_index [B]`` and ``bid_distances [N, B]`` (the
    scores it ranked by); training-time RTC gives ``sampler.training_time_sample``'s record (``x_t, v_t,
    x_1_pred``, no correction). Every record also carries ``prev_action_chunk`` and ``inference_delay`` for the
    chunk views.
    """
    method_index(method)
    _check_inputs(policy, method, inputs)
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
    if kind == 4:
        _, tracked = policy.training_time_action(
            None, obs, num_steps, inputs.prev_chunk, inputs.inference_delay, return_tracking=True, noise=noise[0]
        )
        return jax.tree.map(np.asarray, tracked)
    if kind == 0:
        _, tracked = policy.action(None, obs, num_steps, return_tracking=True, noise=noise[0])
        extra = {}
    else:
        details = bid_details(policy, inputs, forward=kind == 5)
        chosen = jnp.take_along_axis(noise, jnp.asarray(details["index"])[None, :, None, None], axis=0)[0]
        _, tracked = policy.action(None, obs, num_steps, return_tracking=True, noise=chosen)
        extra = {"bid_index": details["index"], "bid_distances": details["distances"]}
    out = jax.tree.map(np.asarray, tracked)
    out.update(
        extra, prev_action_chunk=np.asarray(inputs.prev_chunk), inference_delay=np.asarray(inputs.inference_delay)
    )
    return out
