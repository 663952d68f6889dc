"""Closed-loop episodes in Kinetix following the paper's simulated protocol, batched and sharded.

Protocol (reference section 3, as in the paper's evaluation code): a first chunk is sampled plainly at
the reset observation and serves as the previous chunk of block 0. Block j starts at step ``j * s``:
a new chunk is sampled by the chosen method from the observation at the block start and the previous
chunk; the block executes ``prev[:d]`` (still running while the new chunk is computed) then
``new[d:s]``; the next previous chunk is ``new[s:]`` zero-padded to H, with prefix horizon ``p = H - s``.
Gaussian noise N(0, ``action_noise``) is added to every executed action before the environment step.
An episode ends at the first ``done`` (reward != 0, or the level's 256-step limit); its return sums the
rewards up to and including that step, and it is solved when the step's ``info["GoalR"]`` is true.

Implementation: one ``lax.scan`` over environment steps, where a ``lax.cond`` on ``t % s == 0`` (the same
for every episode) samples a new chunk. The method index, d, s, the guidance weight, the action noise,
the episode length, the level and the seeds are traced, so changing them never recompiles; BID's sample
count, the flow steps and the batch shapes are static. Episodes are a batch axis split over all local
JAX devices with ``jax.shard_map`` (on one CPU device it simply runs). The scan runs in segments of
``segment_steps`` so callers can show progress and cancel between segments.

Random numbers: episode e uses ``fold_in(key(seed), e)`` (independent of the episode count), split into
a sampling key and an environment key; block b's candidate noise is ``methods.candidate_noise(fold_in(
sampling_key, b), (1, H, A), N)`` (b = 0 is the first plain chunk, b = j + 1 is block j); step t's action
noise is ``normal(fold_in(env_key, t), (A,))``.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rtc.errors import IndexRangeError, RTCError, SettingsError
from rtc.experiments import protocol
from rtc.experiments.pipeline import Inspection, RTCSettings
from rtc.io import levels
from rtc.io.files import write_atomic
from rtc.numerics import methods, sampler
from rtc.numerics.model import FlowPolicy, velocity_fn

EPISODE_AXIS = "episodes"


class RolloutCancelled(RuntimeError):
    """Raised when a progress callback returns False."""


@dataclasses.dataclass(frozen=True)
class RolloutSettings:
    """What a closed-loop evaluation runs; defaults follow the paper (5 flow steps, noise 0.1, 256 steps)."""

    method: str = "rtc_exp"
    inference_delay: int = 2
    execute_horizon: int = 4
    num_episodes: int = 1
    episode_steps: int = 256
    num_flow_steps: int = 5
    max_guidance_weight: float = 5.0
    bid_samples: int = 4
    action_noise: float = 0.1
    seed: int = 0
    segment_steps: int = 32

    def validate(self, chunk_size: int) -> list[str]:
        """Raise ``SettingsError`` naming a refused value; return warnings (see ``protocol.validate_timing``)."""
        methods.method_index(self.method)
        checks = {
            "num_episodes": (self.num_episodes, 1, 65536),
            "episode_steps": (self.episode_steps, 1, 4096),
            "num_flow_steps": (self.num_flow_steps, 1, 1000),
            "bid_samples": (self.bid_samples, 1, 256),
            "segment_steps": (self.segment_steps, 1, 4096),
        }
        for name, (value, low, high) in checks.items():
            if not low <= value <= high:
                raise SettingsError(f"{name}={value} is out of range; accepted: {low}..{high}")
        if not (math.isfinite(self.max_guidance_weight) and self.max_guidance_weight >= 0):
            raise SettingsError(f"max_guidance_weight={self.max_guidance_weight} must be a finite number >= 0")
        if not (math.isfinite(self.action_noise) and self.action_noise >= 0):
            raise SettingsError(f"action_noise={self.action_noise} must be a finite number >= 0")
        if self.seed < 0:
            raise SettingsError(f"seed={self.seed} must be >= 0")
        warnings = protocol.validate_timing(self.inference_delay, self.execute_horizon, chunk_size)
        padded = chunk_size - self.execute_horizon
        if self.inference_delay > padded:
            warnings.append(
                f"closed loop: the previous chunk holds only H - s = {padded} planned actions, so the frozen "
                f"actions at indices {padded}..{self.inference_delay - 1} of every block after the first are its "
                "zero padding: zero actions are executed there (as in the paper's evaluation code)"
            )
        return warnings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Dynamic(NamedTuple):
    """Traced settings (replicated on every device)."""

    method: jax.Array
    inference_delay: jax.Array
    execute_horizon: jax.Array
    prefix_attention_horizon: jax.Array
    max_guidance_weight: jax.Array
    action_noise: jax.Array
    episode_steps: jax.Array


class _Carry(NamedTuple):
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


# ------------------------------------------------------------------------------------------------
# Random numbers (public so tests and inspections regenerate exactly what a rollout used)


def episode_keys(seed: int, count: int) -> tuple[jax.Array, jax.Array]:
    """``(sampling keys [count], environment keys [count])`` of episodes ``0..count-1``."""
    base = jax.random.key(seed)
    pairs = [jax.random.split(jax.random.fold_in(base, e)) for e in range(count)]
    return jnp.stack([p[0] for p in pairs]), jnp.stack([p[1] for p in pairs])


def _block_noise(sample_key: jax.Array, block: jax.Array | int, num_candidates: int, shape: tuple[int, int]):
    rng = jax.random.fold_in(sample_key, block)
    return methods.candidate_noise(rng, (1, *shape), num_candidates)[:, 0]  # [N, H, A]


def block_noise(seed: int, episode: int, block: int, num_candidates: int, horizon: int, action_dim: int) -> jax.Array:
    """Candidate noise ``[N, 1, H, A]`` of ``block`` (0 = first plain chunk, j + 1 = block j) of ``episode``."""
    sample_keys, _ = episode_keys(seed, episode + 1)
    return _block_noise(sample_keys[episode], block, num_candidates, (horizon, action_dim))[:, None]


def action_noise(seed: int, episode: int, step: int, action_dim: int, scale: float) -> jax.Array:
    """The environment's action noise ``[A]`` at ``step`` of ``episode``."""
    _, env_keys = episode_keys(seed, episode + 1)
    return scale * jax.random.normal(jax.random.fold_in(env_keys[episode], step), (action_dim,))


# ------------------------------------------------------------------------------------------------
# The jitted per-device programs


def _select(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per-episode ``where(mask, new, old)`` over pytrees with a leading episode axis."""

    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def _init_local(graphdef, state, env_params, level_state, sample_keys, *, num_steps, bid_samples):
    model = nnx.merge(graphdef, state)
    horizon, action_dim = model.config.action_chunk_size, model.action_dim
    count = sample_keys.shape[0]
    obs0, env_state0 = levels.make_env().reset(jax.random.key(0), env_params, override_reset_state=level_state)
    obs = jnp.broadcast_to(obs0, (count, *obs0.shape))
    env_state = jax.tree.map(lambda x: jnp.broadcast_to(x, (count, *jnp.shape(x))), env_state0)
    noise = jax.vmap(lambda k: _block_noise(k, 0, bid_samples, (horizon, action_dim)))(sample_keys)
    first, _ = sampler.naive_sample(velocity_fn(graphdef, state, obs), noise[:, 0], num_steps)
    zeros = jnp.zeros(count)
    carry = _Carry(
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


def _segment_local(
    graphdef, state, env_params, dyn, carry, sample_keys, env_keys, t0, *, num_steps, bid_samples, length, record
):
    env = levels.make_env()
    horizon, action_dim = carry.prev_next.shape[1:]
    d, s = dyn.inference_delay, dyn.execute_horizon
    settings = sampler.GuidanceSettings(d, dyn.prefix_attention_horizon, jnp.int32(0), dyn.max_guidance_weight)
    step_env = jax.vmap(env.step_env, in_axes=(None, 0, 0, None))

    def body(c: _Carry, t):
        offset = t % s

        def start(c):
            noise = jax.vmap(lambda k: _block_noise(k, t // s + 1, bid_samples, (horizon, action_dim)))(sample_keys)
            noise = jnp.swapaxes(noise, 0, 1)  # [N, E, H, A]
            new = methods.sample_method(graphdef, state, dyn.method, c.obs, noise, c.prev_next, settings, num_steps)
            executed = protocol.executed_actions(c.prev_next, new, d)
            return executed, protocol.next_prev_chunk(new, s), new, c.prev_next

        def keep(c):
            return c.exec_block, c.prev_next, jnp.zeros_like(c.prev_next), jnp.zeros_like(c.prev_next)

        exec_block, prev_next, new, used_prev = jax.lax.cond(offset == 0, start, keep, c)
        action = jax.lax.dynamic_index_in_dim(exec_block, offset, axis=1, keepdims=False)
        noise = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, t), (action_dim,)))(env_keys)
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
        new_carry = _Carry(
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
        if record:
            out.update(obs=c.obs, chunks=new, prev_chunks=used_prev, states=new_carry.env_state)
        return new_carry, out

    carry, outs = jax.lax.scan(body, carry, t0 + jnp.arange(length))
    return carry, jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), outs)


def _mesh() -> Mesh:
    return jax.make_mesh((len(jax.devices()),), (EPISODE_AXIS,))


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "bid_samples", "mesh"))
def _init(graphdef, state, env_params, level_state, sample_keys, *, num_steps, bid_samples, mesh):
    local = functools.partial(_init_local, graphdef, num_steps=num_steps, bid_samples=bid_samples)
    sharded = jax.shard_map(
        local, mesh=mesh, in_specs=(P(), P(), P(), P(EPISODE_AXIS)), out_specs=P(EPISODE_AXIS), check_vma=False
    )
    return sharded(state, env_params, level_state, sample_keys)


@functools.partial(jax.jit, static_argnames=("graphdef", "num_steps", "bid_samples", "length", "record", "mesh"))
def _segment(
    graphdef, state, env_params, dyn, carry, sample_keys, env_keys, t0, *, num_steps, bid_samples, length, record, mesh
):
    local = functools.partial(
        _segment_local, graphdef, num_steps=num_steps, bid_samples=bid_samples, length=length, record=record
    )
    episodes = P(EPISODE_AXIS)
    sharded = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(P(), P(), P(), episodes, episodes, episodes, P()),
        out_specs=episodes,
        check_vma=False,
    )
    return sharded(state, env_params, dyn, carry, sample_keys, env_keys, t0)


# ------------------------------------------------------------------------------------------------
# Results


@dataclasses.dataclass(frozen=True, eq=False)
class Rollout:
    """Numpy results of ``num_episodes`` episodes (leading axis: episode; T = ``episode_steps``).

    Always: ``actions [E, T, A]`` (the policy's executed actions, before action noise),
    ``applied_actions`` (with noise, what the environment got), ``rewards [E, T]`` (0 after the end),
    ``alive [E, T]`` (step inside the episode), ``jumps [E, T]`` (``||a_t - a_{t-1}||`` at each step where
    the executed actions switch to a new chunk, ``t = j s + d >= 1``; NaN elsewhere), ``returns``,
    ``solved``, ``lengths`` ``[E]``, ``first_chunk [E, H, A]`` and ``chunk_starts [K]`` (``0, s, 2s, ...``).
    With ``record``: ``chunk_obs [E, K, obs]``, ``prev_chunks``, ``chunks`` ``[E, K, H, A]`` (the inputs and
    output of every block's sampling) and ``states`` (environment state after each step, ``[E, T, ...]``).
    """

    settings: RolloutSettings
    level: levels.Level
    actions: np.ndarray
    applied_actions: np.ndarray
    rewards: np.ndarray
    alive: np.ndarray
    jumps: np.ndarray
    returns: np.ndarray
    solved: np.ndarray
    lengths: np.ndarray
    jump_sums: np.ndarray
    jump_counts: np.ndarray
    step_sums: np.ndarray  # [E] sums of ||a_t - a_(t-1)|| over steps t >= 1 that are not switches
    step_counts: np.ndarray
    first_chunk: np.ndarray
    chunk_starts: np.ndarray
    chunk_obs: np.ndarray | None = None
    prev_chunks: np.ndarray | None = None
    chunks: np.ndarray | None = None
    states: Any = None

    @property
    def recorded(self) -> bool:
        return self.chunks is not None

    def summary(self) -> dict[str, float]:
        """Solve rate, mean return, mean boundary jump (over every switch of every episode where it is defined;
        NaN if none is), mean step size away from switches (the baseline for "smooth"), their ratio, mean length.
        """
        count, steps = int(self.jump_counts.sum()), int(self.step_counts.sum())
        jump = float(self.jump_sums.sum() / count) if count else float("nan")
        step = float(self.step_sums.sum() / steps) if steps else float("nan")
        return {
            "solve_rate": float(self.solved.mean()),
            "mean_return": float(self.returns.mean()),
            "mean_boundary_jump": jump,
            "mean_step_size": step,
            "jump_to_step_ratio": jump / step if count and steps and step > 0 else float("nan"),
            "mean_length": float(self.lengths.mean()),
            "episodes": len(self.returns),
        }

    def episode_state(self, episode: int, step: int) -> Any:
        """Environment state after ``step`` steps (0 = reset) of ``episode`` (needs ``record``)."""
        if self.states is None:
            raise RTCError("this rollout kept no states; run it with record=True")
        if step == 0:
            return levels.reset(self.level)[1]
        return jax.tree.map(lambda x: x[episode, step - 1], self.states)


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far a rollout is; the last item of ``iterate_rollout`` carries the result."""

    steps_done: int
    total_steps: int
    result: Rollout | None = None

    @property
    def fraction(self) -> float:
        return self.steps_done / self.total_steps if self.total_steps else 1.0


def _dynamic(settings: RolloutSettings, chunk_size: int) -> _Dynamic:
    return _Dynamic(
        method=jnp.asarray(methods.method_index(settings.method), jnp.int32),
        inference_delay=jnp.asarray(settings.inference_delay, jnp.int32),
        execute_horizon=jnp.asarray(settings.execute_horizon, jnp.int32),
        prefix_attention_horizon=jnp.asarray(
            protocol.prefix_attention_horizon(settings.execute_horizon, chunk_size), jnp.int32
        ),
        max_guidance_weight=jnp.asarray(settings.max_guidance_weight, jnp.float32),
        action_noise=jnp.asarray(settings.action_noise, jnp.float32),
        episode_steps=jnp.asarray(settings.episode_steps, jnp.int32),
    )


def padded_episode_count(count: int, devices: int) -> int:
    """Episodes actually simulated: a multiple of the device count with a power-of-two share per device,
    so a handful of batch shapes (hence compilations) cover every episode count."""
    per_device = -(-count // devices)
    return devices * (1 << (per_device - 1).bit_length())


def iterate_rollout(
    policy: FlowPolicy, level: levels.Level, settings: RolloutSettings, record: bool = True
) -> Iterator[Progress]:
    """Run the episodes segment by segment, yielding ``Progress`` after each; the last one holds the result.

    Stop iterating to cancel. ``record`` keeps per-block observations, chunks and environment states
    (about 3 MB per 256-step episode); sweeps leave it off. Once every episode has ended the loop stops;
    the remaining steps are filled as after an episode's end (zero actions, rewards and records, ``alive``
    false, jumps NaN, states frozen at the last one).
    """
    settings.validate(policy.action_chunk_size)
    levels.check_obs_dim(level, policy.obs_dim)
    levels.make_env()  # build (and cache) the environment outside tracing: its constructor needs concrete values
    mesh = _mesh()
    padded = padded_episode_count(settings.num_episodes, mesh.devices.size)
    sharding = NamedSharding(mesh, P(EPISODE_AXIS))
    sample_keys, env_keys = (jax.device_put(k, sharding) for k in episode_keys(settings.seed, padded))
    graphdef, state = nnx.split(policy)
    statics = {"num_steps": settings.num_flow_steps, "bid_samples": settings.bid_samples, "mesh": mesh}
    carry, first = _init(graphdef, state, level.env_params, level.state, sample_keys, **statics)
    dyn = _dynamic(settings, policy.action_chunk_size)
    total = settings.episode_steps
    pieces: list[dict[str, np.ndarray]] = []
    for t0 in range(0, total, settings.segment_steps):
        carry, outs = _segment(
            graphdef,
            state,
            level.env_params,
            dyn,
            carry,
            sample_keys,
            env_keys,
            jnp.asarray(t0, jnp.int32),
            length=settings.segment_steps,
            record=record,
            **statics,
        )
        pieces.append(jax.device_get(outs))
        done = min(t0 + settings.segment_steps, total)
        if done < total and not np.asarray(carry.alive)[: settings.num_episodes].any():
            break
        if done < total:
            yield Progress(done, total)
    yield Progress(total, total, _assemble(settings, level, carry, first, pieces, record))


_FILL = {"alive": False, "goal": False, "jumps": np.nan}


def _pad_steps(key: str, value: np.ndarray, total: int) -> np.ndarray:
    """Extend the step axis (1) to ``total`` with what steps after an episode's end hold."""
    missing = total - value.shape[1]
    if missing <= 0:
        return value[:, :total]
    widths = [(0, 0), (0, missing)] + [(0, 0)] * (value.ndim - 2)
    if key == "states":
        return np.pad(value, widths, mode="edge")
    return np.pad(value, widths, constant_values=_FILL.get(key, 0))


def _assemble(settings, level, carry, first, pieces, record) -> Rollout:
    count, total = settings.num_episodes, settings.episode_steps
    joined = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1)[:count], *pieces)
    joined = {key: jax.tree.map(lambda x, key=key: _pad_steps(key, x, total), value) for key, value in joined.items()}
    carry = jax.device_get(carry)
    starts = np.arange(0, total, settings.execute_horizon)
    extra: dict[str, Any] = {}
    if record:
        extra = {
            "chunk_obs": joined["obs"][:, starts],
            "prev_chunks": joined["prev_chunks"][:, starts],
            "chunks": joined["chunks"][:, starts],
            "states": joined["states"],
        }
    return Rollout(
        settings=settings,
        level=level,
        actions=joined["actions"],
        applied_actions=joined["applied_actions"],
        rewards=joined["rewards"],
        alive=joined["alive"],
        jumps=joined["jumps"],
        returns=np.asarray(carry.total_return)[:count],
        solved=np.asarray(carry.solved)[:count],
        lengths=np.asarray(carry.length)[:count],
        jump_sums=np.asarray(carry.jump_sum)[:count],
        jump_counts=np.asarray(carry.jump_count)[:count],
        step_sums=np.asarray(carry.step_sum)[:count],
        step_counts=np.asarray(carry.step_count)[:count],
        first_chunk=np.asarray(first)[:count],
        chunk_starts=starts,
        **extra,
    )


def run_rollout(
    policy: FlowPolicy,
    level: levels.Level,
    settings: RolloutSettings,
    record: bool = True,
    progress_callback: Callable[[Progress], bool | None] | None = None,
) -> Rollout:
    """Run the episodes; ``progress_callback(progress)`` is called after each segment, and returning
    ``False`` cancels (raises ``RolloutCancelled``)."""
    for progress in iterate_rollout(policy, level, settings, record):
        if progress.result is not None:
            if progress_callback is not None:
                progress_callback(progress)
            return progress.result
        if progress_callback is not None and progress_callback(progress) is False:
            raise RolloutCancelled(f"rollout cancelled after {progress.steps_done}/{progress.total_steps} steps")
    raise AssertionError("iterate_rollout ended without a result")  # pragma: no cover


# ------------------------------------------------------------------------------------------------
# Looking inside one chunk, and pictures


def chunk_inspection(policy: FlowPolicy, rollout: Rollout, episode: int, chunk_index: int) -> dict[str, np.ndarray]:
    """Re-run block ``chunk_index`` of ``episode`` with tracking (same observation, previous chunk, noise).

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
    tracked = methods.track_method(
        policy,
        settings.method,
        jnp.asarray(rollout.chunk_obs[episode, chunk_index])[None],
        jnp.asarray(rollout.prev_chunks[episode, chunk_index])[None],
        noise,
        settings.inference_delay,
        protocol.prefix_attention_horizon(settings.execute_horizon, horizon),
        settings.max_guidance_weight,
        settings.num_flow_steps,
    )
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
        raise RTCError(f"method {settings.method!r} samples without guidance; only guided chunks can be inspected")
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
    return Inspection(
        settings=inspection_settings,
        tracked=tracked,
        plain=jax.tree.map(np.asarray, plain),
        obs=np.asarray(obs),
        first_chunk=np.asarray(rollout.prev_chunks[episode, chunk_index])[None],
        warnings=(),
        last_executed=last,
    )


def episode_frames(rollout: Rollout, episode: int = 0, every: int = 2, size: int = 192) -> list[np.ndarray]:
    """Rendered frames ``[size, size, 3]`` uint8 of ``episode``: the reset state, then every ``every``-th
    step up to the episode's end (always including the last state)."""
    from PIL import Image

    length = int(rollout.lengths[episode])
    steps = list(range(0, length + 1, max(1, every)))
    if steps[-1] != length:
        steps.append(length)
    frames = []
    for step in steps:
        picture = levels.render_state(rollout.episode_state(episode, step))
        frames.append(np.asarray(Image.fromarray(picture).resize((size, size), Image.Resampling.BILINEAR)))
    return frames


def gif_bytes(frames: list[np.ndarray], fps: float = 15.0) -> bytes:
    """The frames as a looping GIF."""
    from PIL import Image

    if not frames:
        raise RTCError("no frames to animate")
    images = [Image.fromarray(np.asarray(frame)) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return buffer.getvalue()


def save_animation(frames: list[np.ndarray], path: str | Path, fps: float = 15.0) -> Path:
    """Write the frames as a GIF at ``path`` (suffix ``.gif``); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise RTCError(f"save_animation writes GIF files; {path.name} does not end in .gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, gif_bytes(frames, fps))
    return path
