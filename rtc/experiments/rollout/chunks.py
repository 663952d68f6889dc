"""Looking inside one block of a recorded rollout: re-run its sampling with tracking, as an ``Inspection``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rtc.errors import IndexRangeError, RTCError
from rtc.experiments import protocol
from rtc.experiments.pipeline import Inspection, RTCSettings
from rtc.experiments.rollout.keys import block_noise
from rtc.experiments.rollout.results import Rollout
from rtc.numerics import methods
from rtc.numerics.model import FlowPolicy


def chunk_inspection(
    policy: FlowPolicy, rollout: Rollout, episode: int, chunk_index: int, weak_policy: FlowPolicy | None = None
) -> dict[str, np.ndarray]:
    """Re-run block ``chunk_index`` of ``episode`` with tracking (same observation, previous chunk, noise; for
    ``bid_forward`` the rollout's ``weak_policy``).

    The result is a tracked dict as ``return_tracking=True`` gives (batch of 1), for the step-by-step pages;
    its ``action`` reproduces ``rollout.chunks[episode, chunk_index]`` up to float rounding.
    """
    if not rollout.recorded:
        raise RTCError("this rollout kept no chunks; run it with record=True")
    settings = rollout.settings
    if not 0 <= episode < settings.num_episodes:
        raise IndexRangeError(f"episode={episode} is out of range; accepted 0..{settings.num_episodes - 1}")
    if not 0 <= chunk_index < len(rollout.chunk_starts):
        raise IndexRangeError(f"chunk_index={chunk_index} is out of range; accepted 0..{len(rollout.chunk_starts) - 1}")
    start, length = int(rollout.chunk_starts[chunk_index]), int(rollout.lengths[episode])
    if start >= length:
        last = (length - 1) // settings.execute_horizon
        raise IndexRangeError(
            f"chunk {chunk_index} starts at step {start}, after episode {episode} ended ({length} steps); "
            f"accepted 0..{last}"
        )
    horizon = policy.action_chunk_size
    noise = block_noise(settings.seed, episode, chunk_index + 1, settings.bid_samples, horizon, policy.action_dim)
    inputs = methods.MethodInputs(
        obs=jnp.asarray(rollout.chunk_obs[episode, chunk_index])[None],
        prev_chunk=jnp.asarray(rollout.prev_chunks[episode, chunk_index])[None],
        noise=noise,
        inference_delay=settings.inference_delay,
        prefix_attention_horizon=protocol.prefix_attention_horizon(settings.execute_horizon, horizon),
        max_guidance_weight=settings.max_guidance_weight,
        num_steps=settings.num_flow_steps,
        weak_policy=weak_policy,
        bid_k=settings.bid_k,
    )
    tracked = methods.track_method(policy, settings.method, inputs)
    tracked["chunk_start"] = np.asarray(rollout.chunk_starts[chunk_index])
    return tracked


def chunk_as_inspection(
    policy: FlowPolicy,
    rollout: Rollout,
    episode: int,
    chunk_index: int,
    tracked: dict[str, np.ndarray] | None = None,
) -> Inspection:
    """Block ``chunk_index`` of ``episode`` as a ``pipeline.Inspection`` (batch of 1) for the step-by-step pages.

    ``tracked`` is ``chunk_inspection``'s record (computed when not given); the plain twin is plain sampling
    from the same noise and observation. Only guided methods (RTC, hard masking) have the full record.
    """
    if tracked is None:
        tracked = chunk_inspection(policy, rollout, episode, chunk_index)
    settings = rollout.settings
    if "error" not in tracked:
        why = methods.NO_CORRECTION_NOTE if settings.method in methods.TRAINING_TIME_METHODS else "no guidance"
        raise RTCError(
            f"method {settings.method!r} samples without guidance ({why}); only guided chunks can be inspected"
        )
    horizon = policy.action_chunk_size
    noise = block_noise(settings.seed, episode, chunk_index + 1, settings.bid_samples, horizon, policy.action_dim)
    obs = jnp.asarray(rollout.chunk_obs[episode, chunk_index])[None]
    _, plain = policy.action(None, obs, settings.num_flow_steps, return_tracking=True, noise=noise[0])
    inspection_settings = RTCSettings(
        num_flow_steps=settings.num_flow_steps,
        inference_delay=settings.inference_delay,
        execute_horizon=settings.execute_horizon,
        max_guidance_weight=settings.max_guidance_weight,
        prefix_attention_schedule=methods.method_schedule(settings.method),
        seed=settings.seed,
        batch_size=1,
        situation="protocol",
    )
    start = int(rollout.chunk_starts[chunk_index])
    # the action executed just before this block starts (none before the first block)
    last = rollout.actions[episode, start - 1][None] if start >= 1 else np.zeros((0, policy.action_dim))
    tracked = dict(tracked)
    # block 0's previous chunk is the whole plain first chunk; later ones hold H - s planned actions
    tracked["prev_valid"] = np.asarray(horizon if chunk_index == 0 else horizon - settings.execute_horizon)
    tracked["execute_horizon"] = np.asarray(settings.execute_horizon)
    return Inspection(
        settings=inspection_settings,
        tracked=tracked,
        plain=jax.tree.map(np.asarray, plain),
        obs=np.asarray(obs),
        first_chunk=np.asarray(rollout.prev_chunks[episode, chunk_index])[None],
        warnings=(),
        last_executed=last,
    )
