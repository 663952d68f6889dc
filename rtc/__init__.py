"""RTC inspector: look inside real-time chunking of flow-matching policies, step by denoising step.

The names below are the library's public API (see the README, "Library"). They are imported lazily, so
``import rtc`` stays cheap (no jax, no kinetix) and internal modules can move without breaking users:
``from rtc import FlowPolicy, load_policy, read_run, RTCError``. The older documented paths
(``from rtc.checkpoints import load_policy, read_run``, ``from rtc import levels``) keep working.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it (a module itself when the name is a submodule)
_EXPORTS: dict[str, str] = {
    # model and sampling
    "FlowPolicy": "rtc.model",
    "ModelConfig": "rtc.model",
    "SCHEDULES": "rtc.sampler",
    "get_prefix_weights": "rtc.sampler",
    "guidance_weight": "rtc.sampler",
    # files: checkpoints and levels
    "load_policy": "rtc.checkpoints",
    "read_run": "rtc.checkpoints",
    "open_run": "rtc.checkpoints",
    "level_key": "rtc.checkpoints",
    "load_level": "rtc.levels",
    "open_level": "rtc.levels",
    # inspections, situations and metrics
    "RTCSettings": "rtc.pipeline",
    "Inspection": "rtc.pipeline",
    "inspect": "rtc.pipeline",
    "SITUATIONS": "rtc.protocol",
    "default_timing": "rtc.protocol",
    # recorded traces (format 1, LeRobot's debug tracker)
    "Trace": "rtc.traces",
    "read_trace": "rtc.traces",
    "write_trace": "rtc.traces",
    "from_lerobot": "rtc.traces",
    # closed loop
    "RolloutSettings": "rtc.rollout",
    "run_rollout": "rtc.rollout",
    # errors
    "RTCError": "rtc.errors",
    "SettingsError": "rtc.errors",
    "IndexRangeError": "rtc.errors",
    "CheckpointError": "rtc.errors",
    "RunError": "rtc.errors",
    "LevelError": "rtc.errors",
    "PathError": "rtc.errors",
    "SelectionError": "rtc.errors",
    "TraceError": "rtc.errors",
}
_SUBMODULES = ("levels", "metrics", "plots", "methods", "traces")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"rtc.{name}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'rtc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
