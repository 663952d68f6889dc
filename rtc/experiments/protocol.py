"""The paper's chunked-execution protocol: how previous chunks are formed and actions executed.

Per chunk, with inference delay ``d`` and execute horizon ``s`` (``d <= s <= H``): the new chunk is
sampled from the observation at the chunk start; the executed actions are ``prev[:d]`` then
``new[d:s]``; the next call's previous chunk is ``new[s:]`` padded with zeros to ``H``, and its
prefix attention horizon is ``H - s``. The first chunk comes from plain sampling at the reset observation,
and the first block runs the method at that same observation with the first chunk as the previous chunk,
unshifted (all ``H`` actions planned; index i of both chunks is the same time step).

The open-loop inspections look at one RTC call in one of the ``SITUATIONS``: what the sampler is given
(an observation and a previous chunk) without running a whole episode.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from rtc.experiments.settings import (  # noqa: F401 (declared with the settings; re-exported here)
    DEFAULT_SITUATION,
    SITUATIONS,
    TRACKING_DOC_PRESET,
    check_situation,
    default_timing,
    validate_timing,
)
from rtc.io import export_cache, levels
from rtc.numerics.model import FlowPolicy


def prefix_attention_horizon(execute_horizon: int, chunk_size: int) -> int:
    """The paper's choice ``p = H - s``: guide the part of the previous chunk that is still unexecuted."""
    return chunk_size - execute_horizon


def situation_prev_valid(name: str, execute_horizon: int, chunk_size: int) -> int:
    """Planned actions in the previous chunk of situation ``name``: all ``H`` in the same-observation situation
    (the first chunk, unshifted), ``H - s`` in the protocol's (the rest is zero padding)."""
    return int(chunk_size) if check_situation(name) == "same-observation" else int(chunk_size) - int(execute_horizon)


def next_prev_chunk(chunk: jax.Array, execute_horizon: int | jax.Array) -> jax.Array:
    """``chunk[..., s:, :]`` shifted to the front and zero-padded to the chunk length."""
    horizon = chunk.shape[-2]
    index = jnp.arange(horizon) + execute_horizon
    shifted = jnp.take(chunk, jnp.clip(index, 0, horizon - 1), axis=-2)
    return jnp.where((index < horizon)[:, None], shifted, 0.0)


def executed_actions(prev_chunk: jax.Array, new_chunk: jax.Array, inference_delay: int | jax.Array) -> jax.Array:
    """The whole chunk as the robot runs it: ``prev[:d]`` then ``new[d:]`` (execution stops at ``s``)."""
    frozen = (jnp.arange(new_chunk.shape[-2]) < inference_delay)[:, None]
    return jnp.where(frozen, prev_chunk, new_chunk)


def _advance(env_state: Any, actions: jax.Array, num_actions: jax.Array, env_params: Any) -> tuple[jax.Array, Any]:
    env = levels.make_env()

    def body(i, carry):
        _, state = carry
        obs, state, *_ = env.step_env(jax.random.key(0), state, actions[i], env_params)
        return obs, state

    obs = env.get_obs(env_state)
    return jax.lax.fori_loop(0, num_actions, body, (obs, env_state))


_advance_jit = jax.jit(_advance)


def advance(level: levels.Level, env_state: Any, actions: jax.Array, num_actions: int) -> tuple[jax.Array, Any]:
    """Execute ``actions[:num_actions]`` from ``env_state``; returns ``(obs, env_state)``.

    Compiled once per process, and traced once per machine: the traced program is kept on disk
    beside the compilation cache (see ``rtc.io.export_cache``).
    """
    levels.make_env()  # build the environment outside jit (jax2d needs concrete shapes)
    args = (env_state, jnp.asarray(actions), jnp.asarray(num_actions, jnp.int32), level.env_params)
    flat, treedef = jax.tree.flatten(args)
    flat = [jnp.asarray(leaf) for leaf in flat]  # the parameters hold Python floats too
    state_def = jax.tree.structure(env_state)

    def advance_flat(*leaves: jax.Array) -> list[jax.Array]:
        obs, state = _advance(*jax.tree.unflatten(treedef, leaves))
        return [obs, *jax.tree.leaves(state)]

    if export_cache.cache_folder() is None:
        return _advance_jit(*args)
    obs, *state_leaves = export_cache.call_flat(
        advance_flat, flat, sources=[_advance, levels.make_env, levels.static_env_params_l], packages=["kinetix-env"]
    )
    return obs, jax.tree.unflatten(state_def, state_leaves)


@dataclasses.dataclass(frozen=True)
class Situation:
    """What the sampler is given for one open-loop RTC call, and how it came about."""

    obs: jax.Array  # [B, obs_dim], the observation the new chunk is sampled at
    prev_action_chunk: jax.Array  # [B, H, A]: the first chunk (same-observation) or its [s:] zero-padded (protocol)
    first_chunk: jax.Array  # [1, H, A], the plain sample at the reset observation
    reset_obs: jax.Array  # [obs_dim]
    env_state: Any  # the environment state the new chunk starts from (None when nothing was executed)
    name: str = "protocol"


def make_situation(
    name: str,
    policy: FlowPolicy,
    level: levels.Level,
    num_steps: int,
    execute_horizon: int,
    rng: jax.Array,
    batch_size: int = 1,
) -> Situation:
    """The situation called ``name`` (one of ``SITUATIONS``): reset ``level`` and sample the first chunk plainly at
    the reset observation (from ``rng``).

    ``same-observation`` (the paper's first block): nothing is executed (no environment step runs); the new chunk
    is sampled at the reset observation with the first chunk, unshifted, as the previous chunk (``prev_valid = H``).
    ``protocol`` (a later block): execute the first ``s`` actions; the new chunk is sampled at the observation
    after them, with the first chunk's ``new[s:]``, zero-padded, as the previous chunk (``prev_valid = H - s``).
    Every batch element shares the observation and previous chunk, so a batch shows how the sampler's output varies
    with its noise alone.
    """
    execute = check_situation(name) == "protocol"
    levels.check_obs_dim(level, policy.obs_dim)
    if not execute:  # from disk when stored: no environment, no kinetix import
        return situation_at_reset(policy, levels.reset_observation(level), num_steps, execute_horizon, rng, batch_size)
    reset_obs, env_state = levels.reset(level)
    first_chunk = policy.action(rng, reset_obs[None], num_steps)
    obs, env_state = advance(level, env_state, first_chunk[0], execute_horizon)
    return _after_first_chunk(obs, first_chunk, reset_obs, env_state, execute_horizon, batch_size, name)


def situation_at_reset(
    policy: FlowPolicy,
    reset_obs: jax.Array,
    num_steps: int,
    execute_horizon: int | jax.Array,
    rng: jax.Array,
    batch_size: int = 1,
) -> Situation:
    """The same-observation situation from the level's reset observation ``[obs_dim]``: a pure function of
    arrays (safe under ``jax.jit``; ``execute_horizon`` may be traced)."""
    first_chunk = policy.action(rng, reset_obs[None], num_steps)
    return _after_first_chunk(reset_obs, first_chunk, reset_obs, None, execute_horizon, batch_size, "same-observation")


def _after_first_chunk(
    obs: jax.Array,
    first_chunk: jax.Array,
    reset_obs: jax.Array,
    env_state: Any,
    execute_horizon: int | jax.Array,
    batch_size: int,
    name: str,
) -> Situation:
    """The situation once the first chunk is known: as every batch element's previous chunk the first chunk itself
    (same-observation) or its ``new[s:]``, zero-padded (protocol), and ``obs`` as every element's observation."""
    prev = first_chunk if name == "same-observation" else next_prev_chunk(first_chunk, execute_horizon)
    return Situation(
        obs=jnp.broadcast_to(obs, (batch_size, obs.shape[-1])),
        prev_action_chunk=jnp.broadcast_to(prev, (batch_size, *prev.shape[1:])),
        first_chunk=first_chunk,
        reset_obs=reset_obs,
        env_state=env_state,
        name=name,
    )
