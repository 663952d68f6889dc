"""Closed-loop episodes in Kinetix following the paper's simulated protocol, batched and sharded.

Protocol (reference section 3, as in the paper's evaluation code): a first chunk is sampled plainly at
the reset observation and serves as the previous chunk of block 0. Block j starts at step ``j * s``:
a new chunk is sampled by the chosen method from the observation at the block start and the previous
chunk; the block executes ``prev[:d]`` (still running while the new chunk is computed) then
``new[d:s]``; the next previous chunk is ``new[s:]`` zero-padded to H, with prefix horizon ``p = H - s``.
Gaussian noise N(0, ``action_noise``) is added to every executed action before the environment step.
An episode ends at the first ``done`` (reward != 0, or the level's 256-step limit); its return sums the
rewards up to and including that step, and it is solved when the step's ``info["GoalR"]`` is true.

This module holds the settings and the runner, and is where callers import from. The rest lives by role:

- ``rollout_keys``: the random numbers (episode keys, block and action noise)
- ``rollout_program``: the jitted, sharded episode program (static structure, traced settings)
- ``rollout_results``: the ``Rollout`` record and its assembly from segments
- ``rollout_chunks``: re-running one block with tracking for the step-by-step pages

Animations of episodes are figures: ``rtc.report.animation``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from rtc.experiments.rollout import program
from rtc.experiments.rollout.chunks import chunk_as_inspection, chunk_inspection
from rtc.experiments.rollout.keys import action_noise, block_noise, episode_keys
from rtc.experiments.rollout.results import Rollout, assemble
from rtc.experiments.settings import RolloutSettings
from rtc.io import export_cache, levels
from rtc.numerics import methods
from rtc.numerics.model import FlowPolicy

__all__ = [
    "Progress",
    "Rollout",
    "RolloutCancelled",
    "RolloutSettings",
    "action_noise",
    "block_noise",
    "chunk_as_inspection",
    "chunk_inspection",
    "episode_keys",
    "iterate_rollout",
    "padded_episode_count",
    "run_rollout",
]


class RolloutCancelled(RuntimeError):
    """Raised when a progress callback returns False."""


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far a rollout is; the last item of ``iterate_rollout`` carries the result."""

    steps_done: int
    total_steps: int
    result: Rollout | None = None

    @property
    def fraction(self) -> float:
        return self.steps_done / self.total_steps if self.total_steps else 1.0


def padded_episode_count(count: int, devices: int) -> int:
    """Episodes actually simulated: a multiple of the device count with a power-of-two share per device,
    so a handful of batch shapes (hence compilations) cover every episode count."""
    per_device = -(-count // devices)
    return devices * (1 << (per_device - 1).bit_length())


def iterate_rollout(
    policy: FlowPolicy,
    level: levels.Level,
    settings: RolloutSettings,
    record: bool = True,
    weak_policy: FlowPolicy | None = None,
    policy_name: str = "the policy",
) -> Iterator[Progress]:
    """Run the episodes segment by segment, yielding ``Progress`` after each; the last one holds the result.

    Stop iterating to cancel. ``record`` keeps per-block observations, chunks and environment states
    (about 3 MB per 256-step episode); sweeps leave it off. Once every episode has ended the loop stops;
    the remaining steps are filled as after an episode's end (zero actions, rewards and records, ``alive``
    false, jumps NaN, states frozen at the last one). ``weak_policy`` (an earlier checkpoint of the same run) serves
    BID's forward term (``bid_forward``); a method the policy cannot run is refused naming ``policy_name``
    (``methods.check_method``).
    """
    settings.validate(policy.action_chunk_size)
    methods.check_method(
        settings.method,
        policy,
        policy_name,
        settings.inference_delay,
        weak_policy,
        settings.bid_k,
        settings.bid_samples,
    )
    levels.check_obs_dim(level, policy.obs_dim)
    levels.make_env()  # build (and cache) the environment outside tracing: its constructor needs concrete values
    export_cache.release_programs_when_crowded()  # each closed-loop program holds ~3,500 memory mappings
    mesh = program.make_mesh()
    padded = padded_episode_count(settings.num_episodes, mesh.devices.size)
    sharding = NamedSharding(mesh, PartitionSpec(program.EPISODE_AXIS))
    sample_keys, env_keys = (jax.device_put(k, sharding) for k in episode_keys(settings.seed, padded))
    graphdef, state = nnx.split(policy)
    structure = program.Structure(graphdef, settings.num_flow_steps, settings.bid_samples, mesh)
    segment = program.Segment(structure, settings.segment_steps, record)
    dyn = program.dynamic(settings, policy.action_chunk_size)
    weak_state = state if weak_policy is None else nnx.split(weak_policy)[1]
    inputs = program.Inputs(state, weak_state, level.env_params, level.state, dyn, sample_keys, env_keys)
    carry, first = program.init(structure, inputs)
    total = settings.episode_steps
    pieces: list[dict[str, np.ndarray]] = []
    for t0 in range(0, total, settings.segment_steps):
        carry, outs = program.run_segment(segment, inputs, carry, jnp.asarray(t0, jnp.int32))
        pieces.append(jax.device_get(outs))
        done = min(t0 + settings.segment_steps, total)
        if done < total and not np.asarray(carry.alive)[: settings.num_episodes].any():
            break
        if done < total:
            yield Progress(done, total)
    yield Progress(total, total, assemble(settings, level, carry, first, pieces, record))


def run_rollout(
    policy: FlowPolicy,
    level: levels.Level,
    settings: RolloutSettings,
    record: bool = True,
    progress_callback: Callable[[Progress], bool | None] | None = None,
    weak_policy: FlowPolicy | None = None,
    policy_name: str = "the policy",
) -> Rollout:
    """Run the episodes; ``progress_callback(progress)`` is called after each segment, and returning
    ``False`` cancels (raises ``RolloutCancelled``). ``weak_policy``, ``policy_name``: as ``iterate_rollout``."""
    for progress in iterate_rollout(policy, level, settings, record, weak_policy, policy_name):
        if progress.result is not None:
            if progress_callback is not None:
                progress_callback(progress)
            return progress.result
        if progress_callback is not None and progress_callback(progress) is False:
            raise RolloutCancelled(f"rollout cancelled after {progress.steps_done}/{progress.total_steps} steps")
    raise AssertionError("iterate_rollout ended without a result")  # pragma: no cover
