"""RTC inspector: look inside real-time chunking of flow-matching policies, step by denoising step.

The package is laid out by role; each subpackage's docstring says what it holds and what it may import
(enforced by ``tests/test_architecture.py``):

- ``rtc.numerics``: sampling with RTC guidance, the flow policy, methods, metrics, seeds, diagnostics, training
- ``rtc.io``: checkpoints, levels, trace files, configured roots, compiled-program cache, atomic writes
- ``rtc.experiments``: the paper's protocol, one inspection, analyses, closed-loop rollouts, sweeps, the demo run
- ``rtc.report``: figures, charts, layout, rendering, the page table, bundles
- ``rtc.app``: the app's Streamlit-free state (selection, URL, presets) and its job queue
- ``rtc.commands``: ``rtc-visualize`` and ``rtc-sweep``

The names below are the library's public API (see the README, "Library"). They are imported lazily, so
``import rtc`` stays cheap (no jax, no kinetix) and internal modules can move without breaking users:
``from rtc import FlowPolicy, load_policy, read_run, RTCError``. The older flat module paths
(``rtc.checkpoints``, ``rtc.levels``, ``rtc.plots``, ``python -m rtc.levels``, ...) keep working: each is the
same module object as its new home (``_MOVED``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
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
    "RTCSettings": "rtc.experiments.pipeline",
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
    "RolloutSettings": "rtc.experiments.rollout",
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
_SUBMODULES = ("levels", "metrics", "plots", "methods", "traces")

__all__ = sorted([*_EXPORTS, *_SUBMODULES])


# Where each module of the former flat layout lives now (``rtc.<old>`` -> ``rtc.<new>``).
_MOVED: dict[str, str] = {
    "sampler": "numerics.sampler",
    "model": "numerics.model",
    "metrics": "numerics.metrics",
    "methods": "numerics.methods",
    "seeds": "numerics.seeds",
    "diagnostics": "numerics.diagnostics",
    "training": "numerics.training",
    "files": "io.files",
    "checkpoints": "io.checkpoints",
    "levels": "io.levels",
    "traces": "io.traces",
    "export_cache": "io.export_cache",
    "protocol": "experiments.protocol",
    "pipeline": "experiments.pipeline",
    "analysis": "experiments.analysis",
    "rollout": "experiments.rollout",
    "sweep": "experiments.sweep",
    "sweep_grid": "experiments.sweep_grid",
    "sweep_store": "experiments.sweep_store",
    "sweep_ray": "experiments.sweep_ray",
    "demo": "experiments.demo",
    "plots": "report.plots",
    "plots_analysis": "report.plots_analysis",
    "plots_sweep": "report.plots_sweep",
    "charts": "report.charts",
    "figure_layout": "report.figure_layout",
    "render": "report.render",
    "render_worker": "report.render_worker",
    "bundle": "report.bundle",
    "page_content": "report.page_content",
    "pages_registry": "report.pages_registry",
    "app_state": "app.state",
    "jobs": "app.jobs",
    "cli": "commands.visualize",
    "sweep_cli": "commands.sweep",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``rtc.<old>`` to the module at its new path (the same object, so monkeypatching either name
    patches both); ``python -m rtc.<old>`` runs the new module's code."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, old = fullname.partition(".")
        if prefix != "rtc" or old not in _MOVED:
            return None
        new = importlib.util.find_spec(f"rtc.{_MOVED[old]}")
        spec = importlib.util.spec_from_loader(fullname, self, origin=new.origin)
        spec.has_location = True  # so ``python -m rtc.<old>`` sets ``__file__`` to the new module's file
        return spec

    def create_module(self, spec):
        return importlib.import_module(f"rtc.{_MOVED[spec.name.partition('.')[2]]}")

    def exec_module(self, module):
        pass  # already executed under its new name

    def get_code(self, fullname):  # for runpy (``python -m rtc.<old>``)
        new = importlib.util.find_spec(f"rtc.{_MOVED[fullname.partition('.')[2]]}")
        return new.loader.get_code(new.name)


if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES or name in _MOVED:
        return importlib.import_module(f"rtc.{_MOVED.get(name, name)}")
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'rtc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
