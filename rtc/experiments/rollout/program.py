"""The jitted closed-loop episode program: one ``lax.scan`` over environment steps, sharded over devices.

A ``lax.cond`` on ``t % s == 0`` (the same for every episode) samples a new chunk. What the program is made of
is static (``Structure``: the network's graph, flow steps, BID's sample count, the device mesh; ``Segment``
adds the segment length and whether to record); everything a setting changes is traced (``Inputs``: the
weights, the weak policy's weights for BID's forward term (the policy's own where none is used), the level,
the method index, d, s, the guidance weight, BID's k, the action noise, the episode length and the keys), so
changing a setting never recompiles. Episodes are a batch axis split over all local JAX devices
with ``jax.shard_map`` (on one CPU device it simply runs).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from rtc.experiments import protocol
from rtc.experiments.rollout.keys import noise_of_block, noise_of_step
from rtc.experiments.settings import RolloutSettings
from rtc.io import levels
from rtc.numerics import methods, sampler
from rtc.numerics.model import velocity_fn

EPISODE_AXIS = "episodes"
_EPISODES = P(EPISODE_AXIS)


def make_mesh() -> Mesh:
    """All local devices on the episode axis."""
    return jax.make_mesh((len(jax.devices()),), (EPISODE_AXIS,))


@dataclasses.dataclass(frozen=True)
class Structure:
    """Static structure of the chunk sampling (hashable: each distinct value is one compiled program)."""

    graphdef: Any  # the policy's nnx.GraphDef
    num_flow_steps: int
    bid_samples: int
    mesh: Mesh


@dataclasses.dataclass(frozen=True)
class Segment:
    """Static structure of one segment of the scan: the sampling, the steps it runs, whether it records."""

    structure: Structure
    steps: int
    record: bool


class Dynamic(NamedTuple):
    """Traced settings (replicated on every device)."""

    method: jax.Array
    inference_delay: jax.Array
    execute_horizon: jax.Array
    prefix_attention_horizon: jax.Array
    max_guidance_weight: jax.Array
    action_noise: jax.Array
    episode_steps: jax.Array
    bid_k: jax.Array


class Inputs(NamedTuple):
    """Traced inputs that stay the same through a rollout: weights, level, settings, keys (``[E]``, sharded)."""

    state: Any  # the policy's nnx.State
    weak_state: Any  # BID's weak policy's nnx.State (same graph; the policy's own state when there is none)
    env_params: Any
    level_state: Any
    settings: Dynamic
    sample_keys: jax.Array
    env_keys: jax.Array


_INPUT_SPECS = Inputs(P(), P(), P(), P(), P(), _EPISODES, _EPISODES)


class Carry(NamedTuple):
    """Per-episode loop state (leading axis: episodes)."""

    env_state: Any
    obs: jax.Array
    alive: jax.Array
    exec_block: jax.Array  # [E, H, A] actions of the current block (prev[:d] then new[d:])
    prev_next: jax.Array  # [E, H, A] previous chunk for the next block
    last_action: jax.Array  # [E, A]
    total_return: jax.Array
    solved: jax.Array
    length: jax.Array
    jump_sum: jax.Array
    jump_count: jax.Array
    last_padding: jax.Array  # [E] whether last_action was the previous chunk's zero padding
    step_sum: jax.Array  # sums of ||a_t - a_(t-1)|| over steps that are not switches
    step_count: jax.Array


def dynamic(settings: RolloutSettings, chunk_size: int) -> Dynamic:
    """The traced part of ``settings``."""
    return Dynamic(
        method=jnp.asarray(methods.method_index(settings.method), jnp.int32),
        inference_delay=jnp.asarray(settings.inference_delay, jnp.int32),
        execute_horizon=jnp.asarray(settings.execute_horizon, jnp.int32),
        prefix_attention_horizon=jnp.asarray(
            protocol.prefix_attention_horizon(settings.execute_horizon, chunk_size), jnp.int32
        ),
        max_guidance_weight=jnp.asarray(settings.max_guidance_weight, jnp.float32),
        action_noise=jnp.asarray(settings.action_noise, jnp.float32),
        episode_steps=jnp.asarray(settings.episode_steps, jnp.int32),
        bid_k=jnp.asarray(settings.bid_k, jnp.int32),
    )


def _select(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per-episode ``where(mask, new, old)`` over pytrees with a leading episode axis."""

    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def _init_local(structure: Structure, inputs: Inputs) -> tuple[Carry, jax.Array]:
    graphdef, state = structure.graphdef, inputs.state
    model = nnx.merge(graphdef, state)
    horizon, action_dim = model.config.action_chunk_size, model.action_dim
    count = inputs.sample_keys.shape[0]
    env = levels.make_env()
    obs0, env_state0 = env.reset(jax.random.key(0), inputs.env_params, override_reset_state=inputs.level_state)
    obs = jnp.broadcast_to(obs0, (count, *obs0.shape))
    env_state = jax.tree.map(lambda x: jnp.broadcast_to(x, (count, *jnp.shape(x))), env_state0)
    noise = jax.vmap(lambda k: noise_of_block(k, 0, structure.bid_samples, (horizon, action_dim)))(inputs.sample_keys)
    first, _ = sampler.naive_sample(velocity_fn(graphdef, state, obs), noise[:, 0], structure.num_flow_steps)
    zeros = jnp.zeros(count)
    carry = Carry(
        env_state=env_state,
        obs=obs,
        alive=jnp.ones(count, bool),
        exec_block=jnp.zeros_like(first),
        prev_next=first,
        last_action=jnp.zeros((count, action_dim), first.dtype),
        total_return=zeros,
        solved=jnp.zeros(count, bool),
        length=jnp.zeros(count, jnp.int32),
        jump_sum=zeros,
        jump_count=jnp.zeros(count, jnp.int32),
        last_padding=jnp.zeros(count, bool),
        step_sum=zeros,
        step_count=jnp.zeros(count, jnp.int32),
    )
    # Level files leave some state leaves weak-typed; the environment step returns them strongly typed, so
    # strip weak types here or the second segment would see new input types and compile again.
    return jax.tree.map(lambda x: x.astype(x.dtype), carry), first


def _segment_local(segment: Segment, inputs: Inputs, carry: Carry, t0: jax.Array) -> tuple[Carry, dict]:
    structure, dyn = segment.structure, inputs.settings
    graphdef, state, env_params = structure.graphdef, inputs.state, inputs.env_params
    env = levels.make_env()
    horizon, action_dim = carry.prev_next.shape[1:]
    d, s = dyn.inference_delay, dyn.execute_horizon
    guidance = sampler.GuidanceSettings(d, dyn.prefix_attention_horizon, jnp.int32(0), dyn.max_guidance_weight)
    step_env = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))

    def body(c: Carry, t):
        offset = t % s

        def start(c):
            block = t // s + 1
            noise = jax.vmap(lambda k: noise_of_block(k, block, structure.bid_samples, (horizon, action_dim)))(
                inputs.sample_keys
            )
            noise = jnp.swapaxes(noise, 0, 1)  # [N, E, H, A]
            new = methods.sample_method(
                graphdef,
                state,
                dyn.method,
                c.obs,
                noise,
                c.prev_next,
                guidance,
                structure.num_flow_steps,
                inputs.weak_state,
                dyn.bid_k,
            )
            executed = protocol.executed_actions(c.prev_next, new, d)
            return executed, protocol.next_prev_chunk(new, s), new, c.prev_next

        def keep(c):
            return c.exec_block, c.prev_next, jnp.zeros_like(c.prev_next), jnp.zeros_like(c.prev_next)

        exec_block, prev_next, new, used_prev = jax.lax.cond(offset == 0, start, keep, c)
        action = jax.lax.dynamic_index_in_dim(exec_block, offset, axis=1, keepdims=False)
        noise = jax.vmap(lambda k: noise_of_step(k, t, action_dim))(inputs.env_keys)
        applied = action + dyn.action_noise * noise
        obs, env_state, reward, done, info = step_env(jax.random.key(0), c.env_state, applied, env_params)
        live = c.alive & (t < dyn.episode_steps)
        # A frozen action is zero padding when its index lies past the previous chunk's real actions: all H
        # of the first (plain) chunk in block 0, H - s of ``new[s:]`` after that.
        valid = jnp.where(t < s, horizon, horizon - s)
        padding = (offset < d) & (offset >= valid)
        switch = (t >= jnp.maximum(d, 1)) & ((t - d) % s == 0) & live
        step = jnp.linalg.norm(action - c.last_action, axis=-1)
        jump_defined = switch & ~c.last_padding  # undefined where the action before the switch was padding
        smooth = (t >= 1) & live & ~switch
        reward = jnp.where(live, reward, 0.0)
        goal = live & info["GoalR"]
        new_carry = Carry(
            env_state=_select(live, env_state, c.env_state),
            obs=_select(live, obs, c.obs),
            alive=live & ~done,
            exec_block=exec_block,
            prev_next=prev_next,
            last_action=action,
            total_return=c.total_return + reward,
            solved=c.solved | goal,
            length=c.length + live,
            jump_sum=c.jump_sum + jnp.where(jump_defined, step, 0.0),
            jump_count=c.jump_count + jump_defined,
            last_padding=jnp.broadcast_to(padding, c.last_padding.shape),
            step_sum=c.step_sum + jnp.where(smooth, step, 0.0),
            step_count=c.step_count + smooth,
        )
        out = {
            "actions": action,
            "applied_actions": applied,
            "rewards": reward,
            "alive": live,
            "goal": goal,
            "jumps": jnp.where(jump_defined, step, jnp.nan),
        }
        if segment.record:
            out.update(obs=c.obs, chunks=new, prev_chunks=used_prev, states=new_carry.env_state)
        return new_carry, out

    carry, outs = jax.lax.scan(body, carry, t0 + jnp.arange(segment.steps))
    return carry, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), outs)


@functools.partial(jax.jit, static_argnames=("structure",))
def init(structure: Structure, inputs: Inputs) -> tuple[Carry, jax.Array]:
    """Reset every episode and sample its first (plain) chunk: ``(carry, first chunks [E, H, A])``."""
    sharded = jax.shard_map(
        functools.partial(_init_local, structure),
        mesh=structure.mesh,
        in_specs=(_INPUT_SPECS,),
        out_specs=_EPISODES,
        check_vma=False,
    )
    return sharded(inputs)


@functools.partial(jax.jit, static_argnames=("segment",))
def run_segment(segment: Segment, inputs: Inputs, carry: Carry, t0: jax.Array) -> tuple[Carry, dict]:
    """Steps ``t0 .. t0 + segment.steps - 1`` of every episode: ``(carry, per-step outputs [E, steps, ...])``."""
    sharded = jax.shard_map(
        functools.partial(_segment_local, segment),
        mesh=segment.structure.mesh,
        in_specs=(_INPUT_SPECS, _EPISODES, P()),
        out_specs=_EPISODES,
        check_vma=False,
    )
    return sharded(inputs, carry, t0)
