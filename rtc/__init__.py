"""RTC inspector: look inside real-time chunking of flow-matching policies, step by denoising step.

The package is laid out by role; each subpackage's docstring says what it holds and what it may import
(enforced by ``tests/test_architecture.py``):

- ``rtc.numerics``: sampling with RTC guidance, the flow policy, methods, metrics, seeds, diagnostics
- ``rtc.io``: checkpoints, levels (and their prepared reset observations), trace files, configured roots,
  compiled-program cache, atomic writes
- ``rtc.experiments``: settings, the paper's protocol, one inspection, analyses, rollouts, sweeps
- ``rtc.training``: the training loop and the committed runs made with it
- ``rtc.report``: figures, charts, layout, rendering, the page table, bundles
- ``rtc.app``: the app's Streamlit-free state (selection, URL, presets) and its job queue
- ``rtc.commands``: ``rtc-visualize`` and ``rtc-sweep``

The names below are the library's public API (see the README, "Library"), imported lazily so ``import rtc``
stays cheap (no jax, no kinetix): ``from rtc import FlowPolicy, load_policy, read_run, RTCError``, and the
public submodules ``from rtc import levels, metrics, methods, plots, traces``. Deeper module paths are internal
and may move between versions.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it (a module itself when the name is a submodule)
_EXPORTS: dict[str, str] = {
    # model and sampling
    "FlowPolicy": "rtc.numerics.model",
    "ModelConfig": "rtc.numerics.model",
    "SCHEDULES": "rtc.numerics.sampler",
    "get_prefix_weights": "rtc.numerics.sampler",
    "guidance_weight": "rtc.numerics.sampler",
    # files: checkpoints and levels
    "load_policy": "rtc.io.checkpoints",
    "read_run": "rtc.io.checkpoints",
    "open_run": "rtc.io.checkpoints",
    "level_key": "rtc.io.checkpoints",
    "load_level": "rtc.io.levels",
    "open_level": "rtc.io.levels",
    # inspections, situations and metrics
    "RTCSettings": "rtc.experiments.settings",
    "Inspection": "rtc.experiments.pipeline",
    "inspect": "rtc.experiments.pipeline",
    "SITUATIONS": "rtc.experiments.protocol",
    "default_timing": "rtc.experiments.protocol",
    # recorded traces (format 1, LeRobot's debug tracker)
    "Trace": "rtc.io.traces",
    "read_trace": "rtc.io.traces",
    "write_trace": "rtc.io.traces",
    "from_lerobot": "rtc.io.traces",
    # closed loop
    "RolloutSettings": "rtc.experiments.settings",
    "run_rollout": "rtc.experiments.rollout",
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
# public submodules: ``from rtc import levels`` (the deep paths behind them are not promised)
_SUBMODULES: dict[str, str] = {
    "levels": "rtc.io.levels",
    "metrics": "rtc.numerics.metrics",
    "plots": "rtc.report.plots",
    "methods": "rtc.numerics.methods",
    "traces": "rtc.io.traces",
}

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(_SUBMODULES[name])
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'rtc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
