"""What the report app shows, as plain data: run roots, level files, and the selection in the URL.

Streamlit-free, so it can be unit-tested. The app never takes a path from the URL: a link names a
run by its id (looked up among the runs found under the configured roots), an epoch and a level
key of that run, and every file it reads is checked to resolve inside a run root. The view is an ``RTCSettings``
and a ``LookSettings`` (``rtc.experiments.settings``); their URL keys, ranges, defaults, descriptions and file-name
parts are declared with their fields: this module only iterates them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from rtc.errors import PathError, SelectionError, SettingsError
from rtc.experiments.fields import Bounds, Setting, settings_of
from rtc.experiments.settings import INSPECTION_PRESETS, LookSettings, RTCSettings, timing_warnings
from rtc.io.checkpoints import RunInfo
from rtc.io.roots import RUNS_ROOTS_ENV, TRACES_ROOTS_ENV, resolve_within, run_roots

DEFAULT_RUN = "runs/demo"
DEFAULT_LEVEL_KEY = "worlds_l_grasp_easy"


# ---------------------------------------------------------------------------------------------
# The selection


@dataclasses.dataclass(frozen=True)
class Target:
    """Which policy and level: a run id, an epoch of it and a level key it has a policy for."""

    run: str
    epoch: int
    level: str


# What a view holds before a policy is loaded (the demo policy's H = 8); ``default_view`` fills in the policy's.
_REFERENCE = Bounds(chunk_size=8)
INSPECTION: tuple[Setting, ...] = settings_of(RTCSettings)
LOOK: tuple[Setting, ...] = settings_of(LookSettings)
VIEW: tuple[Setting, ...] = INSPECTION + LOOK  # every setting of a view, in the sidebar's order


_REFERENCE_RTC = RTCSettings().for_chunk_size(_REFERENCE.chunk_size)
_LOOK = LookSettings()


@dataclasses.dataclass(frozen=True)
class View:
    """RTC settings (what is run) and what to look at: the sidebar's selection."""

    rtc: RTCSettings = _REFERENCE_RTC
    look: LookSettings = _LOOK

    def value(self, setting: Setting) -> object:
        """The value of one of ``VIEW``."""
        return getattr(self.look if setting.owner is LookSettings else self.rtc, setting.name)

    def values(self) -> dict[str, object]:
        """Every value by name (the two classes' names differ)."""
        return {s.name: self.value(s) for s in VIEW}

    def replace(self, **values: object) -> View:
        """This view with the values given by name (of either class)."""
        look = {k: v for k, v in values.items() if k in _LOOK_NAMES}
        rtc = {k: v for k, v in values.items() if k not in _LOOK_NAMES}
        return View(dataclasses.replace(self.rtc, **rtc), dataclasses.replace(self.look, **look))


_LOOK_NAMES = frozenset(s.name for s in LOOK)


def view_of(values: Mapping[str, object]) -> View:
    """A view from every value of ``VIEW`` by name."""
    rtc = RTCSettings(**{s.name: values[s.name] for s in INSPECTION})
    return View(rtc, LookSettings(**{s.name: values[s.name] for s in LOOK}))


# URL parameter names of the target (the view's are declared with its settings: ``Spec.url``), short for readable links.
TARGET_PARAMS = {"run": "run", "epoch": "epoch", "level": "level"}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Sizes of the loaded policy that bound the view."""

    chunk_size: int
    action_dim: int

    def bounds(self, view: View) -> Bounds:
        """What the view's ranges depend on: these sizes, and the view's batch size and delay."""
        return Bounds(self.chunk_size, self.action_dim, view.rtc.batch_size, view.rtc.inference_delay)


def default_target(runs: Mapping[str, RunInfo], has_level_file: Callable[[str], bool] | None = None) -> Target:
    """The demo run if present (else the first), its latest epoch, and its first level with a level file."""
    if not runs:
        raise SelectionError(f"no training runs found; set {RUNS_ROOTS_ENV} to folders that hold runs")
    run_id = DEFAULT_RUN if DEFAULT_RUN in runs else next(iter(runs))
    run = runs[run_id]
    epoch = run.latest_epoch
    keys = run.levels(epoch)
    usable = [k for k in keys if has_level_file is None or has_level_file(k)] or keys
    level = DEFAULT_LEVEL_KEY if DEFAULT_LEVEL_KEY in usable else usable[0]
    return Target(run_id, epoch, level)


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SelectionError(f"{name}={text!r} is not an integer") from None


def parse_target(
    params: Mapping[str, str], runs: Mapping[str, RunInfo], has_level_file: Callable[[str], bool] | None = None
) -> tuple[Target, list[str]]:
    """The run, epoch and level named in ``params``; anything unknown falls back to a default, with a notice."""
    default = default_target(runs, has_level_file)
    notices: list[str] = []
    run_id = params.get("run", default.run)
    if run_id not in runs:
        notices.append(f"{_unknown_run(run_id, runs)}; showing {default.run}")
        run_id = default.run
    run = runs[run_id]
    epoch = run.latest_epoch
    if "epoch" in params:
        try:
            asked = _int(params["epoch"], "epoch")
            if asked not in run.epochs:
                raise SelectionError(f"epoch {asked} is not in run {run_id} (available: {sorted(run.epochs)})")
            epoch = asked
        except SelectionError as err:
            notices.append(f"{err}; showing the latest epoch {epoch}")
    keys = run.levels(epoch)
    usable = [k for k in keys if has_level_file is None or has_level_file(k)] or keys
    fallback = DEFAULT_LEVEL_KEY if DEFAULT_LEVEL_KEY in usable else usable[0]
    level = params.get("level", fallback)
    if level not in keys:
        notices.append(f"level {level!r} has no policy in run {run_id} at epoch {epoch}; showing {fallback}")
        level = fallback
    return Target(run_id, epoch, level), notices


def _unknown_run(run_id: str, runs: Mapping[str, RunInfo]) -> str:
    """Why a link's run is not shown: a path outside the roots is refused, anything else is not found."""
    roots = run_roots()
    try:
        resolve_within(run_id, roots, "run")
    except PathError as err:
        return str(err)
    return f"run {run_id!r} was not found under the run roots"


def _check(setting: Setting, view: View, limits: Limits) -> None:
    """The setting's check (its declaration's) with the app's limits, as a ``SelectionError``."""
    try:
        setting.check(view.value(setting), limits.bounds(view), app=True)
    except SettingsError as err:
        raise SelectionError(str(err)) from None


def check_view(view: View, limits: Limits) -> list[str]:
    """Raise ``SelectionError`` for a value the app refuses (naming it and the accepted range); return warnings."""
    for setting in VIEW:
        _check(setting, view, limits)
    return timing_warnings(view.rtc.inference_delay, view.rtc.execute_horizon, limits.chunk_size)


def default_view(limits: Limits) -> View:
    """The declared defaults for this policy: ``protocol.default_timing(H)`` (d=2, s=4 for H=8), 20 steps, exp,
    w_max=5, the same-observation situation, looking at the first three action dims."""
    bounds = Bounds(limits.chunk_size, limits.action_dim)
    return view_of({s.name: s.default_for(bounds) for s in VIEW})


# Named presets: ``rtc.experiments.settings.INSPECTION_PRESETS`` by label (a preset sets the RTC settings of
# ``Preset.sets``; the rest stays as chosen).
PRESETS = {preset.label: preset for preset in INSPECTION_PRESETS.values()}


def preset_view(name: str, view: View, limits: Limits) -> View:
    """``view`` with preset ``name``'s settings (by label; delay and horizon filled in for the policy and clamped to
    the chunk size)."""
    if name not in PRESETS:
        raise SelectionError(f"preset {name!r} is not one of {', '.join(PRESETS)}")
    h = limits.chunk_size
    values = PRESETS[name].values()
    filled = RTCSettings(**values).for_chunk_size(h)
    values = {k: getattr(filled, k) for k in values}
    values["inference_delay"] = min(int(values["inference_delay"]), h)
    values["execute_horizon"] = min(max(int(values["execute_horizon"]), 1), h)
    return view.replace(**values)


def parse_view(params: Mapping[str, str], limits: Limits) -> tuple[View, list[str]]:
    """Settings and what to look at from ``params``; a refused value falls back to its default, with a notice."""
    return _view_from_params(params, default_view(limits), limits, VIEW)


def _view_from_params(
    params: Mapping[str, str], default: View, limits: Limits, settings: Iterable[Setting]
) -> tuple[View, list[str]]:
    """``default`` with the ``settings`` whose URL key is in ``params``; each refused value (unparsable, or failing
    its check) is reset to its default, with the fields its range depends on, and a notice."""
    settings = tuple(settings)
    values: dict[str, object] = {}
    notices: list[str] = []
    for setting in settings:
        if setting.url not in params:
            continue
        try:
            values[setting.name] = setting.parse(params[setting.url], called=setting.url)
        except SettingsError as err:
            notices.append(f"{err}; using the default")
    view = default.replace(**values)
    for setting in settings:
        try:
            _check(setting, view, limits)
        except SelectionError as err:
            names = (setting.name, *setting.resets_with)
            view = view.replace(**{n: default.values()[n] for n in names})
            notices.append(f"{err}; using the default")
    return view, notices


def schedule_note(view: View, limits: Limits) -> str | None:
    """Why the schedule has no effect, when the guided prefix ``H - s`` lies inside the frozen part ``d``."""
    delay, horizon = view.rtc.inference_delay, view.rtc.execute_horizon
    prefix = limits.chunk_size - horizon
    if prefix > delay:
        return None
    return (
        f"With s = {horizon}, the guided prefix (H - s = {prefix}) lies inside the frozen part "
        f"(d = {delay}), so every schedule gives the same weights (1 on the first {prefix}). "
        f"Lower s to {limits.chunk_size - delay - 1} or less to see the schedule act."
    )


def to_query(target: Target, view: View) -> dict[str, str]:
    """The URL query parameters of a selection (the inverse of ``parse_target`` + ``parse_view``)."""
    query = {"run": target.run, "epoch": str(target.epoch), "level": target.level}
    return query | {s.url: s.format(view.value(s)) for s in VIEW}


def describe(target: Target, view: View) -> str:
    """A one-line description of a selection, for captions and manifests."""
    settings = ", ".join(s.describe.format(view.value(s)) for s in VIEW if s.describe)
    return f"{target.run} · epoch {target.epoch} · {target.level} · {settings}"


def file_stem(target: Target, view: View) -> str:
    """A file-name-safe stem naming a selection: ``demo_e1_grasp_easy_exp_d3_s6_n20_w5_seed0``."""
    parts = [Path(target.run).name, f"e{target.epoch}", target.level.removeprefix("worlds_l_")]
    parts += [s.stem(view.value(s)) for s in VIEW if s.stem]
    raw = "_".join(part for part in parts if part)
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)


# ---------------------------------------------------------------------------------------------
# Recorded traces (rtc.io.traces): a second source beside runs

MAX_UPLOAD_BYTES = 64 * 2**20  # an uploaded trace (read in memory, never unpickled)


def parse_trace_id(params: Mapping[str, str], traces: Mapping[str, Path], roots: list[Path]) -> tuple[str, list[str]]:
    """The trace named by a link's ``trace`` parameter (else the first), with a notice when it is refused or missing."""
    if not traces:
        raise SelectionError(f"no trace files (*.npz) under {', '.join(map(str, roots)) or 'no configured root'}")
    first = next(iter(traces))
    asked = params.get("trace")
    if asked is None or asked in traces:
        return asked or first, []
    try:
        resolve_within(asked, roots, "trace")
    except PathError as err:
        return first, [f"{err}; showing {first}"]
    return first, [f"trace {asked!r} was not found under the trace roots; showing {first}"]


def parse_trace_view(params: Mapping[str, str], limits: Limits, batch_size: int) -> tuple[View, list[str]]:
    """What to look at in a trace (``LookSettings``: batch element, horizon index, action dims) from a link; a
    refused value falls back, with a notice."""
    bounds = Bounds(limits.chunk_size, limits.action_dim)
    default = trace_view(LookSettings(**{s.name: s.default_for(bounds) for s in LOOK}), batch_size)
    return _view_from_params(params, default, limits, LOOK)


def trace_view(look: LookSettings, batch_size: int) -> View:
    """The view of a recorded trace: what to look at, and its batch size (its other RTC settings are not used)."""
    return View(dataclasses.replace(View().rtc, batch_size=batch_size), look)


def trace_query(trace_id: str | None, view: View) -> dict[str, str]:
    """The URL query of a trace selection (empty for an upload, which no link can name)."""
    if trace_id is None:
        return {}
    return {"trace": trace_id} | {s.url: s.format(view.value(s)) for s in LOOK}


def check_upload(name: str, size: int) -> None:
    """Refuse an upload that is too large or not an ``.npz`` (before it is read)."""
    if not name.lower().endswith(".npz"):
        raise SelectionError(f"upload {name!r} is refused: accepted is an .npz trace file")
    if size > MAX_UPLOAD_BYTES:
        raise SelectionError(
            f"upload {name!r} is {size / 2**20:.1f} MiB; accepted up to {MAX_UPLOAD_BYTES // 2**20} MiB "
            f"(put larger traces under {TRACES_ROOTS_ENV})"
        )
