"""What the report app shows, as plain data: run roots, level files, and the selection in the URL.

Streamlit-free, so it can be unit-tested. The app never takes a path from the URL: a link names a
run by its id (looked up among the runs found under the configured roots), an epoch and a level
key of that run, and every file it reads is checked to resolve inside a run root.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from rtc.errors import PathError, SelectionError
from rtc.experiments import protocol
from rtc.experiments.pipeline import RTCSettings
from rtc.io.checkpoints import RunInfo
from rtc.io.roots import RUNS_ROOTS_ENV, TRACES_ROOTS_ENV, resolve_within, run_roots
from rtc.numerics.sampler import SCHEDULES

_DEFAULT_DELAY, _DEFAULT_EXECUTE_HORIZON = protocol.default_timing(8)

DEFAULT_RUN = "runs/demo"
DEFAULT_LEVEL_KEY = "worlds_l_grasp_easy"

# Ranges the sidebar accepts (the sampler itself accepts more; these keep the app responsive).
MAX_FLOW_STEPS = 200
MAX_BATCH = 64
MAX_GUIDANCE_WEIGHT = 100.0
MAX_SEED = 2**31 - 1


# ---------------------------------------------------------------------------------------------
# The selection


@dataclasses.dataclass(frozen=True)
class Target:
    """Which policy and level: a run id, an epoch of it and a level key it has a policy for."""

    run: str
    epoch: int
    level: str


@dataclasses.dataclass(frozen=True)
class View:
    """RTC settings and what to look at."""

    schedule: str = RTCSettings.prefix_attention_schedule
    delay: int = _DEFAULT_DELAY  # default_view() fills in the policy's own default
    execute_horizon: int = _DEFAULT_EXECUTE_HORIZON
    flow_steps: int = RTCSettings.num_flow_steps
    max_guidance_weight: float = RTCSettings.max_guidance_weight
    seed: int = RTCSettings.seed
    batch_size: int = RTCSettings.batch_size
    batch_index: int = 0
    horizon_index: int = 0
    dims: tuple[int, ...] = (0, 1, 2)
    situation: str = RTCSettings.situation

    def settings(self) -> RTCSettings:
        return RTCSettings(
            num_flow_steps=self.flow_steps,
            inference_delay=self.delay,
            execute_horizon=self.execute_horizon,
            max_guidance_weight=self.max_guidance_weight,
            prefix_attention_schedule=self.schedule,
            seed=self.seed,
            batch_size=self.batch_size,
            situation=self.situation,
        )


# URL parameter names; short so links stay readable.
TARGET_PARAMS = {"run": "run", "epoch": "epoch", "level": "level"}
VIEW_PARAMS = {
    "schedule": "schedule",
    "delay": "d",
    "execute_horizon": "s",
    "flow_steps": "steps",
    "max_guidance_weight": "w",
    "seed": "seed",
    "batch_size": "batch",
    "situation": "situation",
    "batch_index": "b",
    "horizon_index": "h",
    "dims": "dims",
}


@dataclasses.dataclass(frozen=True)
class Limits:
    """Sizes of the loaded policy that bound the view."""

    chunk_size: int
    action_dim: int


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


def _in_range(value: float, low: float, high: float, name: str, what: str = "") -> float:
    if not low <= value <= high:
        raise SelectionError(f"{name}={value} is out of range; accepted: {low}..{high}{what}")
    return value


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


def _check_timing(view: View, limits: Limits) -> list[str]:
    try:
        return view.settings().validate(limits.chunk_size)
    except ValueError as err:
        raise SelectionError(str(err)) from None


def _check_dims(view: View, limits: Limits) -> None:
    if not view.dims:
        raise SelectionError(f"no action dimension chosen; pick at least one of 0..{limits.action_dim - 1}")
    for dim in view.dims:
        _in_range(dim, 0, limits.action_dim - 1, "action dimension", f" (the policy has {limits.action_dim})")


# Each check with the fields it resets when a link's value is refused, in dependency order.
_CHECKS: tuple[tuple[tuple[str, ...], Callable[[View, Limits], object]], ...] = (
    (("flow_steps",), lambda v, _: _in_range(v.flow_steps, 1, MAX_FLOW_STEPS, "flow steps")),
    (("batch_size",), lambda v, _: _in_range(v.batch_size, 1, MAX_BATCH, "batch size")),
    (
        ("max_guidance_weight",),
        lambda v, _: _in_range(v.max_guidance_weight, 0.0, MAX_GUIDANCE_WEIGHT, "maximum guidance weight"),
    ),
    (("seed",), lambda v, _: _in_range(v.seed, 0, MAX_SEED, "seed")),
    (
        ("batch_index",),
        lambda v, _: _in_range(v.batch_index, 0, v.batch_size - 1, "batch element", f" (batch size {v.batch_size})"),
    ),
    (
        ("horizon_index",),
        lambda v, lim: _in_range(
            v.horizon_index, 0, lim.chunk_size - 1, "horizon index", f" (chunk size {lim.chunk_size})"
        ),
    ),
    (("dims",), _check_dims),
    (("delay", "execute_horizon"), _check_timing),
)


def check_view(view: View, limits: Limits) -> list[str]:
    """Raise ``SelectionError`` for a value the app refuses (naming it and the accepted range); return warnings."""
    for _, check in _CHECKS[:-1]:
        check(view, limits)
    return _check_timing(view, limits)


def _parse_field(name: str, text: str) -> object:
    if name == "schedule":
        if text not in SCHEDULES:
            raise SelectionError(f"schedule={text!r} is not accepted; choose one of {', '.join(SCHEDULES)}")
        return text
    if name == "situation":
        if text not in protocol.SITUATIONS:
            raise SelectionError(f"situation={text!r} is not accepted; choose one of {', '.join(protocol.SITUATIONS)}")
        return text
    if name == "max_guidance_weight":
        try:
            return float(text)
        except ValueError:
            raise SelectionError(f"maximum guidance weight {text!r} is not a number") from None
    if name == "dims":
        parts = [p.strip() for p in text.split(",") if p.strip()]
        return tuple(dict.fromkeys(_int(p, "action dimension") for p in parts))
    return _int(text, name.replace("_", " "))


def default_view(limits: Limits) -> View:
    """The defaults: ``protocol.default_timing(H)`` (d=2, s=4 for H=8), 20 steps, exp, w_max=5, the
    same-observation situation, looking at the first three action dims."""
    delay, horizon = protocol.default_timing(limits.chunk_size)
    return View(delay=delay, execute_horizon=horizon, dims=tuple(range(min(3, limits.action_dim))))


# Named presets: a label, and the View fields it sets (the rest stays as chosen).
PRESETS: dict[str, dict[str, object]] = {
    "Default (paper range)": {},  # filled from default_view
    "Tracking-doc example (d=3, s=6, 20 steps, w_max=5)": {
        "delay": protocol.TRACKING_DOC_PRESET["inference_delay"],
        "execute_horizon": protocol.TRACKING_DOC_PRESET["execute_horizon"],
        "flow_steps": protocol.TRACKING_DOC_PRESET["num_flow_steps"],
        "max_guidance_weight": protocol.TRACKING_DOC_PRESET["max_guidance_weight"],
        "schedule": "exp",
    },
}


def preset_view(name: str, view: View, limits: Limits) -> View:
    """``view`` with preset ``name``'s settings (delay and horizon clamped to the chunk size)."""
    if name not in PRESETS:
        raise SelectionError(f"preset {name!r} is not one of {', '.join(PRESETS)}")
    default = default_view(limits)
    fields = PRESETS[name] or {
        f: getattr(default, f) for f in ("delay", "execute_horizon", "flow_steps", "max_guidance_weight", "schedule")
    }
    h = limits.chunk_size
    values = dict(fields)
    values["delay"] = min(int(values["delay"]), h)
    values["execute_horizon"] = min(max(int(values["execute_horizon"]), 1), h)
    return dataclasses.replace(view, **values)


def parse_view(params: Mapping[str, str], limits: Limits) -> tuple[View, list[str]]:
    """Settings and what to look at from ``params``; a refused value falls back to its default, with a notice."""
    return _view_from_params(params, default_view(limits), limits, VIEW_PARAMS, _CHECKS)


def _view_from_params(
    params: Mapping[str, str],
    default: View,
    limits: Limits,
    names: Mapping[str, str],
    checks: Iterable[tuple[tuple[str, ...], Callable[[View, Limits], object]]],
) -> tuple[View, list[str]]:
    """``default`` with the fields named in ``params`` (``names``: field -> URL key), each refused value (unparsable,
    or failing one of ``checks``) reset to its default with a notice."""
    values: dict[str, object] = {}
    notices: list[str] = []
    for field, param in names.items():
        if param not in params:
            continue
        try:
            values[field] = _parse_field(field, params[param])
        except SelectionError as err:
            notices.append(f"{err}; using the default")
    view = dataclasses.replace(default, **values)
    for fields, check in checks:
        try:
            check(view, limits)
        except SelectionError as err:
            view = dataclasses.replace(view, **{f: getattr(default, f) for f in fields})
            notices.append(f"{err}; using the default")
    return view, notices


def schedule_note(view: View, limits: Limits) -> str | None:
    """Why the schedule has no effect, when the guided prefix ``H - s`` lies inside the frozen part ``d``."""
    prefix = limits.chunk_size - view.execute_horizon
    if prefix > view.delay:
        return None
    return (
        f"With s = {view.execute_horizon}, the guided prefix (H - s = {prefix}) lies inside the frozen part "
        f"(d = {view.delay}), so every schedule gives the same weights (1 on the first {prefix}). "
        f"Lower s to {limits.chunk_size - view.delay - 1} or less to see the schedule act."
    )


def to_query(target: Target, view: View) -> dict[str, str]:
    """The URL query parameters of a selection (the inverse of ``parse_target`` + ``parse_view``)."""
    query = {"run": target.run, "epoch": str(target.epoch), "level": target.level}
    for field, param in VIEW_PARAMS.items():
        value = getattr(view, field)
        if field == "dims":
            query[param] = ",".join(str(d) for d in value)
        elif field == "max_guidance_weight":
            query[param] = f"{value:g}"
        else:
            query[param] = str(value)
    return query


def describe(target: Target, view: View) -> str:
    """A one-line description of a selection, for captions and manifests."""
    return (
        f"{target.run} · epoch {target.epoch} · {target.level} · {view.schedule} schedule, "
        f"d={view.delay}, s={view.execute_horizon}, {view.flow_steps} flow steps, w_max={view.max_guidance_weight:g}, "
        f"seed {view.seed}, batch {view.batch_size}, {view.situation} situation"
    )


def file_stem(target: Target, view: View) -> str:
    """A file-name-safe stem naming a selection: ``demo_e1_grasp_easy_exp_d3_s6_n20_w5_seed0``."""
    run = Path(target.run).name
    level = target.level.removeprefix("worlds_l_")
    weight = f"{view.max_guidance_weight:g}".replace(".", "p")
    raw = (
        f"{run}_e{target.epoch}_{level}_{view.schedule}_d{view.delay}_s{view.execute_horizon}"
        f"_n{view.flow_steps}_w{weight}_seed{view.seed}{'' if view.situation == 'protocol' else '_sameobs'}"
    )
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)


# ---------------------------------------------------------------------------------------------
# Recorded traces (rtc.io.traces): a second source beside runs

MAX_UPLOAD_BYTES = 64 * 2**20  # an uploaded trace (read in memory, never unpickled)
TRACE_PARAMS = {"batch_index": "b", "horizon_index": "h", "dims": "dims"}


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
    """Batch element, horizon index and action dims of a trace link; a refused value falls back, with a notice."""
    default = View(batch_size=batch_size, dims=tuple(range(min(3, limits.action_dim))))
    checks = [c for c in _CHECKS if c[0][0] in TRACE_PARAMS]
    return _view_from_params(params, default, limits, TRACE_PARAMS, checks)


def trace_query(trace_id: str | None, view: View) -> dict[str, str]:
    """The URL query of a trace selection (empty for an upload, which no link can name)."""
    if trace_id is None:
        return {}
    return {
        "trace": trace_id,
        "b": str(view.batch_index),
        "h": str(view.horizon_index),
        "dims": ",".join(str(d) for d in view.dims),
    }


def check_upload(name: str, size: int) -> None:
    """Refuse an upload that is too large or not an ``.npz`` (before it is read)."""
    if not name.lower().endswith(".npz"):
        raise SelectionError(f"upload {name!r} is refused: accepted is an .npz trace file")
    if size > MAX_UPLOAD_BYTES:
        raise SelectionError(
            f"upload {name!r} is {size / 2**20:.1f} MiB; accepted up to {MAX_UPLOAD_BYTES // 2**20} MiB "
            f"(put larger traces under {TRACES_ROOTS_ENV})"
        )
