"""One inspection: a policy, a level and RTC settings in; tracked RTC and plain samples out.

Shared by the command line, the app and the benchmarks, so all three show the same numbers.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rtc.experiments import protocol
from rtc.experiments import settings as settings_table
from rtc.io import levels, traces
from rtc.numerics import metrics
from rtc.numerics.model import FlowPolicy

_DEFAULTS = settings_table.inspection_defaults()


@dataclasses.dataclass(frozen=True)
class RTCSettings:
    """What the user chooses (defaults, ranges and help: ``rtc.experiments.settings.SETTINGS``).
    ``inference_delay``/``execute_horizon`` left at ``None`` take the default for the policy's chunk size
    (``protocol.default_timing``: d = 2, s = 4 for H = 8, inside the paper's range)."""

    num_flow_steps: int = _DEFAULTS["num_flow_steps"]
    inference_delay: int | None = _DEFAULTS["inference_delay"]
    execute_horizon: int | None = _DEFAULTS["execute_horizon"]
    max_guidance_weight: float = _DEFAULTS["max_guidance_weight"]
    prefix_attention_schedule: str = _DEFAULTS["prefix_attention_schedule"]
    seed: int = _DEFAULTS["seed"]
    batch_size: int = _DEFAULTS["batch_size"]
    situation: str = _DEFAULTS["situation"]

    def for_chunk_size(self, chunk_size: int) -> RTCSettings:
        """These settings with the settings left at ``None`` (delay, execute horizon) filled in for chunks of
        ``chunk_size``."""
        bounds = settings_table.Bounds(chunk_size=chunk_size)
        filled = {s.name: s.default_for(bounds) for s in settings_table.INSPECTION if getattr(self, s.name) is None}
        return dataclasses.replace(self, **filled)

    @classmethod
    def tracking_doc_preset(cls, **overrides: Any) -> RTCSettings:
        """The tracking documentation's example (d=3, s=6, 20 steps, w_max=5): outside the paper's range."""
        return cls(**{**protocol.TRACKING_DOC_PRESET, **overrides})

    def validate(self, chunk_size: int) -> list[str]:
        """Raise ``SettingsError`` naming a refused value and what is accepted (``Setting.check`` of each setting,
        in table order); return warnings."""
        if self.inference_delay is None or self.execute_horizon is None:
            return self.for_chunk_size(chunk_size).validate(chunk_size)
        bounds = settings_table.Bounds(chunk_size=chunk_size)
        settings_table.check_values(self.to_dict(), settings_table.INSPECTION, bounds)
        return settings_table.timing_warnings(self.inference_delay, self.execute_horizon, chunk_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Inspection:
    """Tracked arrays (numpy) of one RTC sample and of the plain sample from the same noise."""

    settings: RTCSettings
    tracked: dict[str, np.ndarray]
    plain: dict[str, np.ndarray]
    obs: np.ndarray
    first_chunk: np.ndarray
    warnings: tuple[str, ...]
    last_executed: np.ndarray | None = None  # [B, A]; None: the first chunk's (s - 1)-th action

    @property
    def last_executed_action(self) -> np.ndarray | None:
        """The action executed just before the new chunk starts ``[B, A]``: the first chunk's ``s - 1``-th in
        the open-loop situations, or the one given (a rollout block); ``None`` when nothing ran before."""
        if self.last_executed is not None:
            return None if self.last_executed.size == 0 else self.last_executed
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
        """Everything as RTC trace format 1 (``rtc.io.traces``): ``rtc/<key>`` (with ``prev_valid``, H - s here, and
        ``last_executed`` when known), ``plain/<key>``, ``obs``, ``first_chunk`` and the JSON ``meta`` (``meta``
        adds to it)."""
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
    from the same noise."""
    settings = settings.for_chunk_size(policy.action_chunk_size)
    warnings = settings.validate(policy.action_chunk_size)
    levels.check_obs_dim(level, policy.obs_dim)
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
    noise = policy.initial_noise(sample_rng, settings.batch_size)
    _, tracked = policy.realtime_action(
        None,
        situation.obs,
        settings.num_flow_steps,
        situation.prev_action_chunk,
        settings.inference_delay,
        protocol.prefix_attention_horizon(settings.execute_horizon, policy.action_chunk_size),
        settings.prefix_attention_schedule,
        settings.max_guidance_weight,
        return_tracking=True,
        noise=noise,
    )
    _, plain = policy.action(None, situation.obs, settings.num_flow_steps, return_tracking=True, noise=noise)
    return Inspection(
        settings=settings,
        tracked=jax.tree.map(np.asarray, tracked),
        plain=jax.tree.map(np.asarray, plain),
        obs=np.asarray(situation.obs),
        first_chunk=np.asarray(situation.first_chunk),
        warnings=tuple(warnings),
    )


def enable_compilation_cache(path: str | os.PathLike[str] | None = None) -> Path:
    """Keep compiled programs on disk (``RTC_JAX_CACHE`` or ``~/.cache/rtc-inspector/jax``) across processes."""
    folder = Path(path or os.environ.get("RTC_JAX_CACHE") or Path.home() / ".cache" / "rtc-inspector" / "jax")
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder
