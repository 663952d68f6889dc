"""One inspection: a policy, a level and RTC settings in; tracked RTC and plain samples out.

Shared by the command line, the app and the benchmarks, so all three show the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rtc.experiments import protocol
from rtc.experiments.settings import RTCSettings
from rtc.io import export_cache, levels, traces
from rtc.numerics import metrics
from rtc.numerics.model import FlowPolicy
from rtc.numerics.sampler import schedule_index


@dataclasses.dataclass(frozen=True)
class Inspection:
    """Tracked arrays (numpy) of one RTC sample and of the plain sample from the same noise."""

    settings: RTCSettings
    tracked: dict[str, np.ndarray]
    plain: dict[str, np.ndarray]
    obs: np.ndarray
    first_chunk: np.ndarray
    warnings: tuple[str, ...]
    last_executed: np.ndarray | None = None  # [B, A]; None: from the situation (see last_executed_action)

    @property
    def last_executed_action(self) -> np.ndarray | None:
        """The action executed just before the new chunk starts ``[B, A]``: the first chunk's ``s - 1``-th in
        the protocol situation, or the one given (a rollout block); ``None`` when nothing ran before (the
        same-observation situation, the paper's first block)."""
        if self.last_executed is not None:
            return None if self.last_executed.size == 0 else self.last_executed
        if self.settings.situation == "same-observation":
            return None
        last = self.first_chunk[:, self.settings.execute_horizon - 1]
        return np.broadcast_to(last, (self.obs.shape[0], last.shape[-1]))

    @property
    def summary(self) -> dict[str, float | None]:
        return metrics.summarize(self.tracked, self.plain["action"], self.last_executed_action)

    @property
    def notes(self) -> tuple[str, ...]:
        """What a reader must know before reading the figures (a recorded trace may have some; a sample has none)."""
        return ()

    @property
    def situation_label(self) -> str:
        """One sentence saying what situation the sampler was in."""
        return protocol.SITUATIONS[self.settings.situation]

    def arrays(self, **meta: Any) -> dict[str, np.ndarray]:
        """Everything as RTC trace format 1 (``rtc.io.traces``): ``rtc/<key>`` (with ``prev_valid``: H in the
        same-observation situation, H - s in the protocol's; ``execute_horizon``; ``last_executed`` when known),
        ``plain/<key>``, ``obs``, ``first_chunk`` and the JSON ``meta`` (``meta`` adds to it)."""
        tracked = {**self.tracked, "prev_valid": np.asarray(metrics.prev_valid_of(self.tracked), np.int32)}
        if self.last_executed_action is not None:
            tracked["last_executed"] = np.ascontiguousarray(self.last_executed_action)
        action_dim = int(self.tracked["action"].shape[-1])
        settings = {
            **self.settings.to_dict(),
            "prefix_attention_horizon": int(np.asarray(self.tracked["prefix_attention_horizon"])),
        }
        names = traces.KINETIX_ACTION_NAMES if action_dim == len(traces.KINETIX_ACTION_NAMES) else None
        info = traces.make_meta("rtc-inspector", settings, names, situation=self.situation_label, **meta)
        info["warnings"] = list(self.warnings)
        return traces.trace_arrays(tracked, self.plain, info, self.obs, self.first_chunk)


def inspect(policy: FlowPolicy, level: levels.Level, settings: RTCSettings) -> Inspection:
    """Build the chosen situation (``protocol.SITUATIONS``), then run RTC and plain sampling with tracking on,
    from the same noise.

    With the compilation cache on (``enable_compilation_cache``) the sampling runs as programs kept on disk
    (``rtc.io.export_cache``), so a later process does not trace it: the same-observation situation is one
    program (no kinetix import), the protocol's sampling after the executed actions another.
    """
    settings = settings.for_chunk_size(policy.action_chunk_size)
    warnings = settings.validate(policy.action_chunk_size)
    levels.check_obs_dim(level, policy.obs_dim)
    if export_cache.cache_folder() is not None and settings.situation == "same-observation":
        arrays = _same_observation_from_disk(policy, levels.reset_observation(level), settings)
    else:
        first_rng, sample_rng = jax.random.split(jax.random.key(settings.seed))
        situation = protocol.make_situation(
            settings.situation,
            policy,
            level,
            settings.num_flow_steps,
            settings.execute_horizon,
            first_rng,
            settings.batch_size,
        )
        arrays = _sample_situation(policy, situation, sample_rng, settings)
    arrays = jax.tree.map(np.asarray, arrays)
    horizon = policy.action_chunk_size
    arrays["tracked"] |= {
        "prev_valid": np.asarray(protocol.situation_prev_valid(settings.situation, settings.execute_horizon, horizon)),
        "execute_horizon": np.asarray(settings.execute_horizon),
    }
    return Inspection(settings=settings, warnings=tuple(warnings), **arrays)


def warm_up(policy: FlowPolicy, settings: RTCSettings) -> None:
    """Compile what ``inspect`` runs for these settings (flow steps, batch size, situation), without a level: the
    same programs run once on a zero observation, so the app can compile while the level is still being read (in
    the background). ``inspect`` then finds them compiled; numbers come only from ``inspect``. (The protocol's
    environment step is not compiled here: it needs the level.)"""
    settings = settings.for_chunk_size(policy.action_chunk_size)
    settings.validate(policy.action_chunk_size)
    zeros = jnp.zeros((policy.obs_dim,), jnp.float32)
    if export_cache.cache_folder() is not None and settings.situation == "same-observation":
        arrays = _same_observation_from_disk(policy, zeros, settings)
    else:
        first_rng, sample_rng = jax.random.split(jax.random.key(settings.seed))
        sizes = (settings.num_flow_steps, settings.execute_horizon, first_rng, settings.batch_size)
        arrays = _sample_situation(policy, protocol.situation_at_reset(policy, zeros, *sizes), sample_rng, settings)
    jax.block_until_ready(arrays)


def _sizes(settings: RTCSettings) -> dict[str, int]:
    return {"num_steps": settings.num_flow_steps, "batch_size": settings.batch_size}


def _same_observation_from_disk(policy: FlowPolicy, reset_obs: jax.Array, settings: RTCSettings) -> dict[str, Any]:
    """The whole same-observation inspection as one program kept on disk."""
    seed_key = jax.random.key_data(jax.random.key(settings.seed))
    inputs = [reset_obs, seed_key, settings.execute_horizon, *_guidance(settings, policy.action_chunk_size)]
    return _from_disk(_same_observation_program, policy, inputs, _sizes(settings))


def _sample_situation(
    policy: FlowPolicy, situation: protocol.Situation, sample_rng: jax.Array, settings: RTCSettings
) -> dict[str, Any]:
    """Both samples in ``situation`` (through a program kept on disk when the compilation cache is on)."""
    guidance = _guidance(settings, policy.action_chunk_size)
    if export_cache.cache_folder() is not None:
        inputs = [situation.obs, situation.prev_action_chunk, jax.random.key_data(sample_rng), *guidance]
        arrays = _from_disk(_sample_program, policy, inputs, _sizes(settings))
    else:
        arrays = _sample(policy, situation.obs, situation.prev_action_chunk, sample_rng, *guidance, **_sizes(settings))
    return arrays | {"obs": situation.obs, "first_chunk": situation.first_chunk}


def _guidance(settings: RTCSettings, chunk_size: int) -> tuple[int, int, int, float]:
    """``(d, p, schedule, w_max)`` of the RTC call: the prefix attention horizon is the protocol's ``H - s``."""
    horizon = protocol.prefix_attention_horizon(settings.execute_horizon, chunk_size)
    schedule = schedule_index(settings.prefix_attention_schedule)
    return settings.inference_delay, horizon, schedule, settings.max_guidance_weight


def _sample(
    policy: FlowPolicy,
    obs: jax.Array,
    prev_action_chunk: jax.Array,
    sample_rng: jax.Array,
    inference_delay: int | jax.Array,
    prefix_attention_horizon: int | jax.Array,
    schedule: int | jax.Array,
    max_guidance_weight: float | jax.Array,
    *,
    num_steps: int,
    batch_size: int,
) -> dict[str, Any]:
    """The RTC and plain samples with tracking, from the same noise drawn with ``sample_rng``."""
    noise = policy.initial_noise(sample_rng, batch_size)
    _, tracked = policy.realtime_action(
        None,
        obs,
        num_steps,
        prev_action_chunk,
        inference_delay,
        prefix_attention_horizon,
        schedule,
        max_guidance_weight,
        return_tracking=True,
        noise=noise,
    )
    _, plain = policy.action(None, obs, num_steps, return_tracking=True, noise=noise)
    return {"tracked": tracked, "plain": plain}


def _sample_program(
    model: FlowPolicy, obs: jax.Array, prev: jax.Array, key_data: jax.Array, *guidance: jax.Array, **sizes: int
) -> dict[str, Any]:
    """``_sample`` with the key given as its data (programs kept on disk take arrays only)."""
    return _sample(model, obs, prev, jax.random.wrap_key_data(key_data), *guidance, **sizes)


def _same_observation_program(
    model: FlowPolicy, reset_obs: jax.Array, key_data: jax.Array, execute_horizon: jax.Array, *guidance, **sizes: int
) -> dict[str, Any]:
    """The whole same-observation inspection from the seed's key data: situation, then both samples."""
    first_rng, sample_rng = jax.random.split(jax.random.wrap_key_data(key_data))
    situation = protocol.situation_at_reset(
        model, reset_obs, sizes["num_steps"], execute_horizon, first_rng, sizes["batch_size"]
    )
    arrays = _sample(model, situation.obs, situation.prev_action_chunk, sample_rng, *guidance, **sizes)
    return arrays | {"obs": situation.obs, "first_chunk": situation.first_chunk}


def _from_disk(program: Callable[..., Any], policy: FlowPolicy, inputs: list, sizes: dict[str, int]) -> Any:
    """``program(policy, *inputs, **sizes)`` through a program kept on disk (``export_cache.call_flat``).

    ``inputs`` (the seed's key data, the RTC settings, ...) are arguments of the program, so new values reuse it;
    ``sizes`` and the model's sizes shape it. Its key holds the source of every module whose code it runs.
    """
    graphdef, state = nnx.split(policy)
    leaves, treedef = jax.tree.flatten(state)
    dtypes = {"f": jnp.float32, "i": jnp.int32, "u": jnp.uint32, "b": jnp.bool_}
    arrays = [jnp.asarray(value, dtypes[np.asarray(value).dtype.kind]) for value in inputs]

    @functools.wraps(program)
    def flat_program(*flat: jax.Array) -> Any:
        model = nnx.merge(graphdef, jax.tree.unflatten(treedef, flat[: len(leaves)]))
        return program(model, *flat[len(leaves) :], **sizes)

    sources = [sys.modules[name] for name in (__name__, protocol.__name__, *_SAMPLING_MODULES)]
    statics = [sorted(sizes.items()), policy.config, policy.obs_dim, policy.action_dim]
    return export_cache.call_flat(flat_program, [*leaves, *arrays], sources=sources, packages=["flax"], statics=statics)


# The modules whose code the sampling programs run (their source keys the programs kept on disk).
_SAMPLING_MODULES = ("rtc.numerics.model", "rtc.numerics.sampler")


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> Path:
    """Keep compiled programs on disk across processes, in ``<root>/<processor>`` (returned): ``root`` is ``path``,
    ``RTC_JAX_CACHE`` or ``~/.cache/rtc-inspector/jax``; ``processor`` is ``export_cache.host_tag()``, so machines
    with different CPUs that share the root never load each other's programs."""
    root = Path(path or os.environ.get("RTC_JAX_CACHE") or Path.home() / ".cache" / "rtc-inspector" / "jax")
    folder = root / export_cache.host_tag()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    export_cache.make_jax_cache_writes_atomic()  # a killed or concurrent process must never leave half an entry
    return folder
