"""RTC trace files (format version 1): one ``.npz`` of tracked arrays that opens without pickle, from any framework.

A trace holds what one RTC call did at every denoising step, in **this project's convention**: flow time
``t = 0`` is noise and ``t = 1`` data; ``x_t`` is the state *before* step ``k`` (so ``x_t[0]`` is the
noise); ``v_t`` is the velocity *before* guidance; ``x_1_pred = x_t + (1 - t) v_t``; the guided step is
``x <- x + dt (v_t + guidance_weight * correction)``. Keys (``n`` steps, batch ``B``, chunk ``H``, ``A`` action dims):

- ``rtc/x_t``, ``rtc/v_t``, ``rtc/correction``, ``rtc/error``, ``rtc/x_1_pred`` ``[n, B, H, A]``;
  ``rtc/applied`` (``guidance_weight * correction``, derived when absent) ``[n, B, H, A]``
- ``rtc/time``, ``rtc/guidance_weight`` ``[n]``; ``rtc/prefix_weights`` ``[H]``
- ``rtc/action``, ``rtc/prev_action_chunk`` ``[B, H, A]`` (the previous chunk zero-padded to ``H``)
- ``rtc/inference_delay``, ``rtc/prefix_attention_horizon``, ``rtc/prev_valid`` (real planned actions in the
  previous chunk; the rest is padding, never measured against) 0-d integers; ``rtc/execute_horizon`` (optional
  0-d integer ``s``: the new chunk runs ``d <= i < s`` before the next takes over; absent where not known, e.g.
  LeRobot's); ``rtc/last_executed`` ``[B, A]`` (optional: the action executed just before the chunk takes over,
  for the boundary jump at ``d = 0``)
- ``plain/x_t``, ``plain/v_t``, ``plain/x_1_pred`` ``[n, B, H, A]``, ``plain/time`` ``[n]``, ``plain/action``
  ``[B, H, A]``: an unguided sample (optional; the only sample of a first chunk, which has no RTC)
- further numeric ``rtc/<key>``/``plain/<key>`` arrays (e.g. a rollout block's ``chunk_start``) are carried as is
- ``obs`` (optional, ``[B, ...]``), ``first_chunk`` (optional, ``[1 or B, H, A]``)
- ``meta``: a 0-d string of JSON: ``format`` (``"rtc-trace"``), ``version`` (1), ``source``, ``settings``,
  ``action_names`` (or null), ``jacobian_free`` and, for converted files, ``source_meta``.

``read_trace`` also opens LeRobot's debug-tracker layout (``from_lerobot``). Everything here is numpy only:
no torch, no lerobot, no jax, and nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from rtc.errors import TraceError
from rtc.io.files import write_atomic
from rtc.numerics import metrics

FORMAT = "rtc-trace"
VERSION = 1
MAX_TRACE_BYTES = 256 * 2**20  # the app's upload limit is lower (app_state.MAX_UPLOAD_BYTES)

STEP_KEYS = ("x_t", "v_t", "x_1_pred")  # [n, B, H, A] in every sample
RTC_STEP_KEYS = ("correction", "error", "applied")  # [n, B, H, A] in an RTC sample
PLAIN_REQUIRED = ("x_t", "v_t", "x_1_pred", "time", "action")
RTC_REQUIRED = (
    "x_t",
    "v_t",
    "correction",
    "error",
    "x_1_pred",
    "time",
    "guidance_weight",
    "prefix_weights",
    "action",
    "prev_action_chunk",
    "inference_delay",
    "prefix_attention_horizon",
)
RTC_OPTIONAL = ("applied", "prev_valid", "last_executed", "execute_horizon")
INT_KEYS = ("inference_delay", "prefix_attention_horizon", "prev_valid", "execute_horizon")
TOP_LEVEL = ("obs", "first_chunk", "meta")

TRACE_JACOBIAN_FREE_NOTE = (
    "Jacobian-free guidance: the recorded correction equals the weighted error exactly, so no Jacobian of the "
    "denoiser entered the guidance (LeRobot 0.6.1 computes the velocity before x_t requires grad). Each guided "
    "step then moves only the entries with a prefix weight > 0, straight towards the previous chunk, instead of "
    "the paper's vector-Jacobian product through the network, which also steers the rest of the chunk to fit "
    "them. What that costs can be measured on a policy this tool can run: the methods rtc_*_jacobian_free on "
    "Compare methods, Many seeds, rollouts and sweeps (docs/app.md, Analysis pages)."
)
FIRST_CHUNK_NOTE = (
    "This trace is a first chunk: there was no previous chunk, so RTC did not run and only the plain sample's "
    "x_t and v_t were recorded. The overview, correction and error pages need an RTC call."
)

# LeRobot's debug tracker, stacked one array per DebugStep field (see docs/traces.md).
LEROBOT_RTC_KEYS = ("x1_t", "correction", "err", "weights", "guidance_weight", "prev_chunk_left_over")
LEROBOT_SOURCE = "lerobot"
KINETIX_ACTION_NAMES = ("motor 0", "motor 1", "motor 2", "motor 3", "thruster 0", "thruster 1")


@dataclasses.dataclass(frozen=True)
class TraceSettings:
    """What is known of the settings a trace was recorded with (``None`` where the source did not say)."""

    num_flow_steps: int | None = None
    batch_size: int | None = None
    inference_delay: int | None = None
    execute_horizon: int | None = None
    prefix_attention_horizon: int | None = None
    prefix_attention_schedule: str | None = None
    max_guidance_weight: float | None = None
    seed: int | None = None
    situation: str | None = None

    @classmethod
    def from_meta(cls, settings: Mapping[str, Any]) -> TraceSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in settings.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Trace:
    """One recorded RTC call (``tracked``; empty for a first chunk) and/or a plain sample, with its ``meta``."""

    tracked: dict[str, np.ndarray]
    plain: dict[str, np.ndarray] | None
    meta: dict[str, Any]
    obs: np.ndarray | None = None
    first_chunk: np.ndarray | None = None
    warnings: tuple[str, ...] = ()

    @property
    def is_rtc(self) -> bool:
        return bool(self.tracked)

    @property
    def sample(self) -> dict[str, np.ndarray]:
        """The RTC sample, or the plain one of a first chunk."""
        return self.tracked if self.is_rtc else self.plain  # type: ignore[return-value]

    @property
    def source(self) -> str:
        return str(self.meta.get("source", "unknown"))

    @property
    def jacobian_free(self) -> bool:
        return bool(self.meta.get("jacobian_free", False))

    @property
    def settings(self) -> TraceSettings:
        return TraceSettings.from_meta(self.meta.get("settings") or {})

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(steps, batch, chunk size H, action dims A)``."""
        return tuple(int(n) for n in self.sample["x_t"].shape)  # type: ignore[return-value]

    @property
    def action_names(self) -> list[str] | None:
        names = self.meta.get("action_names")
        return list(names) if names else None

    @property
    def notes(self) -> tuple[str, ...]:
        """What a reader must know before reading the figures (Jacobian-free guidance, first chunk)."""
        return tuple(
            note
            for note, applies in ((TRACE_JACOBIAN_FREE_NOTE, self.jacobian_free), (FIRST_CHUNK_NOTE, not self.is_rtc))
            if applies
        )

    @property
    def situation_label(self) -> str:
        return f"A recorded trace from {self.source}" + (" (first chunk, no RTC)." if not self.is_rtc else ".")

    @property
    def summary(self) -> dict[str, float | None]:
        """``rtc.numerics.metrics.summarize`` of the RTC call (empty for a first chunk)."""
        if not self.is_rtc:
            return {}
        plain = self.plain["action"] if self.plain is not None else None
        return metrics.summarize(self.tracked, plain, self.tracked.get("last_executed"))

    def arrays(self) -> dict[str, np.ndarray]:
        """Everything as format-1 arrays for ``np.savez`` (see the module docstring)."""
        return trace_arrays(self.tracked, self.plain, self.meta, self.obs, self.first_chunk)


# ---------------------------------------------------------------------------------------------
# Writing


def make_meta(source: str, settings: Mapping[str, Any], action_names: list[str] | None = None, **extra: Any) -> dict:
    """A format-1 ``meta`` dict (``jacobian_free`` is filled in from the data when the trace is built)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "source": source,
        "settings": dict(settings),
        "action_names": list(action_names) if action_names else None,
        **extra,
    }


def trace_arrays(
    tracked: Mapping[str, Any] | None,
    plain: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
    obs: np.ndarray | None = None,
    first_chunk: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Format-1 arrays (``rtc/<key>``, ``plain/<key>``, ``obs``, ``first_chunk``, ``meta``), checked and with
    ``rtc/applied``, ``rtc/prev_valid`` and ``meta.jacobian_free`` filled in."""
    trace = build_trace(tracked, plain, meta, obs, first_chunk)
    out = {f"rtc/{k}": np.asarray(v) for k, v in trace.tracked.items()}
    out.update({f"plain/{k}": np.asarray(v) for k, v in (trace.plain or {}).items()})
    if trace.obs is not None:
        out["obs"] = trace.obs
    if trace.first_chunk is not None:
        out["first_chunk"] = trace.first_chunk
    out["meta"] = np.array(json.dumps(trace.meta, default=_json_default))
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The ``.npz`` bytes of format-1 arrays (compressed)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def write_trace(path: str | os.PathLike[str], trace: Trace | Mapping[str, np.ndarray]) -> Path:
    """Write a trace (or its ``arrays()``) to ``path`` whole or not at all."""
    arrays = trace.arrays() if isinstance(trace, Trace) else trace
    return write_atomic(path, to_bytes(arrays))


# ---------------------------------------------------------------------------------------------
# Reading


def load_npz(source: str | os.PathLike[str] | bytes | BinaryIO, name: str | None = None) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (``allow_pickle=False``), or a ``TraceError`` naming what is wrong with it."""
    if isinstance(source, (bytes, bytearray)):
        shown, size = name or "the uploaded file", len(source)
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        shown, size = name or str(source), Path(source).stat().st_size
    else:
        shown, size = name or "the file", None
    if size is not None and size > MAX_TRACE_BYTES:
        raise TraceError(f"{shown} is {size / 2**20:.0f} MiB; accepted up to {MAX_TRACE_BYTES // 2**20} MiB")
    head = _head(source)
    if head is not None and not head.startswith(_ZIP_MAGIC) and not head.startswith(_NPY_MAGIC):
        raise TraceError(
            f"{shown} is not an npz archive (it starts with {head[:8]!r}, not a zip archive's PK\\x03\\x04); "
            "accepted: an .npz written by np.savez"
        )
    try:
        loaded = np.load(source, allow_pickle=False)
    except ValueError as err:  # numpy's words for a pickle: "Cannot load file containing pickled data ..."
        raise TraceError(
            f"{shown} is not an .npz of arrays ({err}); a trace is read without pickle, so pickled data is refused"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise TraceError(f"{shown} cannot be read as an .npz ({err}); accepted: an .npz written by np.savez") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise TraceError(
            f"{shown} holds a single array, not an .npz of named arrays; accepted: np.savez(file, **arrays)"
        )
    arrays: dict[str, np.ndarray] = {}
    with loaded:
        for key in loaded.files:
            try:
                value = loaded[key]
            except ValueError:
                raise TraceError(
                    f"{shown}: array {key!r} holds Python objects (dtype object), which would need pickle to read; "
                    "a trace holds numeric arrays and one JSON string 'meta' only"
                ) from None
            except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
                raise TraceError(f"{shown}: array {key!r} is truncated or corrupt ({err})") from None
            arrays[key] = value
    return arrays


_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_PICKLE_MAGIC = b"\x80"


def _head(source: Any) -> bytes | None:
    """The first bytes of a path or seekable stream (position restored); None where it cannot be peeked. An
    empty file or a pickle (protocol 2+ starts with 0x80) gives None too: numpy's own messages say those."""
    try:
        if isinstance(source, (str, os.PathLike)):
            with open(source, "rb") as file:
                head = file.read(8)
        else:
            position = source.tell()
            head = source.read(8)
            source.seek(position)
    except (OSError, AttributeError, ValueError):
        return None
    if not head or head.startswith(_PICKLE_MAGIC):
        return None
    return head


def read_trace(source: str | os.PathLike[str] | bytes | BinaryIO, name: str | None = None) -> Trace:
    """A trace from a format-1 file or a LeRobot tracker file (detected by its keys)."""
    shown = name or (str(source) if isinstance(source, (str, os.PathLike)) else "the uploaded file")
    arrays = load_npz(source, shown)
    meta = _meta_of(arrays, shown)
    if meta.get("format") == FORMAT:
        return from_arrays(arrays, meta, shown)
    if meta.get("source") == LEROBOT_SOURCE or {"x_t", "v_t", "time"} <= set(arrays):
        return from_lerobot(arrays, meta, shown)
    raise TraceError(
        f"{shown} has neither layout: keys {sorted(arrays)[:12]}; accepted: an RTC trace (format {FORMAT!r} "
        "version 1: rtc/<key>, plain/<key>, meta) or LeRobot's stacked debug tracker (x_t, v_t, time, ...)"
    )


def _meta_of(arrays: Mapping[str, np.ndarray], shown: str) -> dict[str, Any]:
    if "meta" not in arrays:
        return {}
    raw = arrays["meta"]
    if raw.dtype.kind not in "US" or raw.ndim != 0:
        raise TraceError(f"{shown}: 'meta' must be a 0-d string of JSON, got dtype {raw.dtype} shape {raw.shape}")
    text = raw.item().decode() if raw.dtype.kind == "S" else str(raw.item())
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as err:
        raise TraceError(f"{shown}: 'meta' is not JSON ({err})") from None
    if not isinstance(meta, dict):
        raise TraceError(f"{shown}: 'meta' must be a JSON object, got {type(meta).__name__}")
    return meta


def from_arrays(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any], shown: str = "trace") -> Trace:
    """A trace from format-1 arrays (as ``load_npz`` returns them), checked."""
    version = meta.get("version")
    if version != VERSION:
        raise TraceError(
            f"{shown}: format {FORMAT!r} version {version!r} is not supported; accepted: version {VERSION}"
        )
    tracked = {k.removeprefix("rtc/"): v for k, v in arrays.items() if k.startswith("rtc/")}
    plain = {k.removeprefix("plain/"): v for k, v in arrays.items() if k.startswith("plain/")}
    unknown = sorted(k for k in arrays if not k.startswith(("rtc/", "plain/")) and k not in TOP_LEVEL)
    warnings = [f"{shown}: ignored keys outside format 1: {', '.join(unknown)}"] if unknown else []
    return build_trace(
        tracked, plain or None, meta, arrays.get("obs"), arrays.get("first_chunk"), shown=shown, warnings=warnings
    )


# ---------------------------------------------------------------------------------------------
# Checking


def _numeric(shown: str, key: str, value: Any, integer: bool = False) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind == "O":
        raise TraceError(f"{shown}: {key} holds Python objects (dtype object); accepted: numeric arrays")
    accepted = "iu" if integer else "fiu"
    if array.dtype.kind not in accepted:
        kind = "integer" if integer else "numeric"
        raise TraceError(f"{shown}: {key} has dtype {array.dtype}; accepted: a {kind} array")
    return array


def _check_finite(shown: str, key: str, array: np.ndarray) -> None:
    """Refuse a NaN or infinite entry in any array of a trace (every key: each one enters a figure or a metric,
    and a value computed from a non-finite one would be drawn or reported as if it were a number)."""
    if array.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise TraceError(
            f"{shown}: {key} holds {array[index]} at index {list(index)} ({int(bad.sum())} non-finite values in all); "
            "accepted: finite numbers only"
        )


def _shape_error(shown: str, key: str, array: np.ndarray, expected: str) -> TraceError:
    return TraceError(f"{shown}: {key} has shape {tuple(array.shape)}; expected {expected}")


def _check_sample(
    shown: str, prefix: str, sample: Mapping[str, Any], rtc: bool, warnings: list[str]
) -> dict[str, np.ndarray]:
    """The checked arrays of one sample (``rtc/`` or ``plain/``); unknown keys are dropped with a warning."""
    required = RTC_REQUIRED if rtc else PLAIN_REQUIRED
    missing = [k for k in required if k not in sample]
    if missing:
        raise TraceError(
            f"{shown}: {prefix}/{missing[0]} is missing"
            + (f" (and {', '.join(missing[1:])})" if missing[1:] else "")
            + f"; accepted: {', '.join(f'{prefix}/{k}' for k in required)}"
        )
    out: dict[str, np.ndarray] = {}
    x_t = _numeric(shown, f"{prefix}/x_t", sample["x_t"])
    if x_t.ndim != 4 or min(x_t.shape) < 1:
        raise _shape_error(shown, f"{prefix}/x_t", x_t, "[steps, batch, H, A] with every size >= 1")
    n, batch, horizon, action_dim = x_t.shape
    for key in STEP_KEYS + (RTC_STEP_KEYS if rtc else ()):
        if key not in sample:
            continue
        value = _numeric(shown, f"{prefix}/{key}", sample[key])
        if value.shape != x_t.shape:
            raise _shape_error(shown, f"{prefix}/{key}", value, f"{tuple(x_t.shape)} like {prefix}/x_t")
        out[key] = value
    expected = {"time": (n,), "action": (batch, horizon, action_dim)}
    if rtc:
        expected.update(
            guidance_weight=(n,),
            prefix_weights=(horizon,),
            prev_action_chunk=(batch, horizon, action_dim),
            last_executed=(batch, action_dim),
        )
    for key, shape in expected.items():
        if key not in sample:
            continue
        value = _numeric(shown, f"{prefix}/{key}", sample[key])
        if value.shape != shape:
            raise _shape_error(shown, f"{prefix}/{key}", value, str(shape))
        out[key] = value
    if rtc:
        for key in INT_KEYS:
            if key not in sample:
                continue
            value = _numeric(shown, f"{prefix}/{key}", sample[key], integer=True)
            if value.shape != () or not 0 <= int(value) <= horizon:
                raise TraceError(
                    f"{shown}: {prefix}/{key} is {value.tolist()}; accepted: one integer in 0..{horizon} (H)"
                )
            out[key] = np.asarray(int(value), dtype=np.int32)
        out.setdefault("prev_valid", out["prefix_attention_horizon"])
        if "applied" not in out:
            out["applied"] = (out["guidance_weight"][:, None, None, None] * out["correction"]).astype(x_t.dtype)
    for key in sorted(set(sample) - set(required) - (set(RTC_OPTIONAL) if rtc else set())):
        out[key] = _numeric(shown, f"{prefix}/{key}", sample[key])  # an extension (e.g. chunk_start): carried as is
    return out


def correction_equals_error(tracked: Mapping[str, Any]) -> bool:
    """Whether the recorded correction equals the weighted error (no Jacobian entered the guidance).

    Only decidable where the error is non-zero somewhere (a zero error gives a zero correction either way).
    """
    if not tracked or "correction" not in tracked:
        return False
    correction, error = np.asarray(tracked["correction"]), np.asarray(tracked["error"])
    scale = float(np.abs(error).max(initial=0.0))
    if scale == 0.0:
        return False
    return bool(np.allclose(correction, error, rtol=1e-6, atol=1e-7 * scale))


def build_trace(
    tracked: Mapping[str, Any] | None,
    plain: Mapping[str, Any] | None,
    meta: Mapping[str, Any],
    obs: Any = None,
    first_chunk: Any = None,
    *,
    shown: str = "trace",
    warnings: list[str] | tuple[str, ...] = (),
) -> Trace:
    """Check every array of a trace (dtypes, shapes, consistency) and return it with derived fields filled in."""
    warnings = list(warnings)
    rtc = _check_sample(shown, "rtc", tracked, True, warnings) if tracked else {}
    plain_checked = _check_sample(shown, "plain", plain, False, warnings) if plain else None
    if not rtc and plain_checked is None:
        raise TraceError(f"{shown} holds no sample; accepted: rtc/<key> (an RTC call) and/or plain/<key>")
    main = rtc or plain_checked
    _, batch, horizon, action_dim = main["x_t"].shape
    if rtc and plain_checked is not None and plain_checked["action"].shape != rtc["action"].shape:
        raise TraceError(
            f"{shown}: plain/action has shape {plain_checked['action'].shape} but rtc/action "
            f"{rtc['action'].shape}; the two samples must have the same batch, H and A"
        )
    obs_array = None if obs is None else _numeric(shown, "obs", obs)
    if obs_array is not None and (obs_array.ndim < 1 or obs_array.shape[0] not in (1, batch)):
        raise _shape_error(shown, "obs", obs_array, f"[batch={batch}, ...]")
    first = None if first_chunk is None else _numeric(shown, "first_chunk", first_chunk)
    if first is not None and (
        first.ndim != 3 or first.shape[0] not in (1, batch) or first.shape[1:] != (horizon, action_dim)
    ):
        raise _shape_error(shown, "first_chunk", first, f"[1 or {batch}, {horizon}, {action_dim}]")
    for prefix, sample in (("rtc", rtc), ("plain", plain_checked or {})):
        for key, value in sample.items():
            _check_finite(shown, f"{prefix}/{key}", value)
    for key, value in (("obs", obs_array), ("first_chunk", first)):
        if value is not None:
            _check_finite(shown, key, value)
    names = meta.get("action_names")
    if names is not None and (not isinstance(names, list) or len(names) != action_dim):
        raise TraceError(f"{shown}: meta.action_names must list {action_dim} names (one per action dim), got {names!r}")
    full_meta = {
        "format": FORMAT,
        "version": VERSION,
        **{k: v for k, v in meta.items() if k not in ("format", "version")},
        "jacobian_free": correction_equals_error(rtc),
    }
    full_meta.setdefault("source", "unknown")
    full_meta.setdefault("settings", {})
    full_meta.setdefault("action_names", None)
    return Trace(rtc, plain_checked, full_meta, obs_array, first, tuple(warnings))


# ---------------------------------------------------------------------------------------------
# LeRobot's debug tracker


def _per_step(shown: str, arrays: Mapping[str, np.ndarray], key: str, n: int, integer: bool = False) -> np.ndarray:
    """A per-step scalar (``[n]``, or one value) as ``[n]``."""
    value = _numeric(shown, key, arrays[key], integer=integer)
    if value.size == 1:
        return np.full(n, value.reshape(()), dtype=value.dtype)
    if value.size != n:
        raise _shape_error(shown, key, value, f"[{n}] (one value per step) like time")
    return value.reshape(n)


def _constant(shown: str, key: str, values: np.ndarray) -> int:
    if np.unique(values).size != 1:
        raise TraceError(f"{shown}: {key} changes between steps ({np.unique(values).tolist()}); one RTC call has one")
    return int(values[0])


def from_lerobot(
    arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None, shown: str = "trace"
) -> Trace:
    """Convert LeRobot's stacked debug-tracker layout (``get_all_debug_steps()``) to a format-1 trace.

    LeRobot's convention: time 1 = noise, 0 = data; ``x_t`` recorded *after* the Euler step
    ``x <- x + dt v`` (``dt < 0``); ``v_t`` the *guided* velocity ``v - w * correction``;
    ``x1_t = x_before - time * v``. Converted: ``t = 1 - time``; ``x_t = x_after + (time_k - time_{k+1}) v_guided``
    (``+ v_guided / n`` for the uniform schedule, ``time_n = 0``); ``v_t = -(v_guided + w * correction)``;
    ``x_1_pred = x1_t``; ``error = err``; ``correction`` unchanged; ``prefix_weights`` from ``weights``;
    ``prev_action_chunk`` = ``prev_chunk_left_over`` zero-padded to ``H`` (``prev_valid`` = its length).
    Only the first ``meta.action_dim`` dimensions are kept (pi0 pads actions to 32). Steps are ordered by
    decreasing LeRobot time; two steps at one time (a tracker that mixes chunks) are refused.
    """
    meta = dict(meta or {})
    missing = [k for k in ("x_t", "v_t", "time") if k not in arrays]
    if missing:
        raise TraceError(f"{shown}: LeRobot layout needs {', '.join(missing)}; found {sorted(arrays)[:12]}")
    present = [k for k in LEROBOT_RTC_KEYS if k in arrays]
    rtc = bool(present)
    if rtc and len(present) != len(LEROBOT_RTC_KEYS):
        absent = [k for k in LEROBOT_RTC_KEYS if k not in arrays]
        raise TraceError(
            f"{shown}: LeRobot RTC step is missing {', '.join(absent)}; an RTC step records all of "
            f"{', '.join(LEROBOT_RTC_KEYS)}"
        )
    x_after = _numeric(shown, "x_t", arrays["x_t"])
    if x_after.ndim == 3:  # LeRobot squeezes a batch of one ([n, H, A] steps)
        x_after = x_after[:, None]
    if x_after.ndim != 4 or min(x_after.shape) < 1:
        raise _shape_error(shown, "x_t", x_after, "[steps, batch, H, action dims] (stacked DebugStep.x_t)")
    n, batch, horizon, padded = x_after.shape
    v_rec = _numeric(shown, "v_t", arrays["v_t"])
    if v_rec.size == x_after.size:
        v_rec = v_rec.reshape(x_after.shape)
    if v_rec.shape != x_after.shape:
        raise _shape_error(shown, "v_t", v_rec, f"{tuple(x_after.shape)} like x_t")
    time = _per_step(shown, arrays, "time", n).astype(np.float64)
    order = np.argsort(-time, kind="stable")
    if np.unique(time).size != n:
        raise TraceError(
            f"{shown}: two steps share a flow time ({np.sort(time)[::-1].tolist()}): the tracker is keyed by time, "
            "so this mixes chunks; copy the steps to numpy after every chunk (or call reset_tracker())"
        )
    if time.min() <= 0 or time.max() > 1 + 1e-6:
        raise TraceError(f"{shown}: time runs over {time.min():g}..{time.max():g}; LeRobot's time lies in (0, 1]")
    prev_left = _numeric(shown, "prev_chunk_left_over", arrays["prev_chunk_left_over"]) if rtc else None
    if prev_left is not None and prev_left.ndim == 2:  # LeRobot accepts [T_prev, A] for a batch of one
        prev_left = prev_left[None]
    real = meta.get("action_dim")
    if real is None:
        real = prev_left.shape[-1] if prev_left is not None and prev_left.ndim == 3 else padded
    if isinstance(real, (int, np.integer)) and not isinstance(real, bool):
        real = int(real)
    if not isinstance(real, int) or not 1 <= real <= padded:
        raise TraceError(f"{shown}: meta.action_dim={real!r}; accepted: an integer in 1..{padded} (x_t's last size)")
    dtype = np.promote_types(x_after.dtype, np.float32)

    full_shape = x_after.shape

    def steps(key: str) -> np.ndarray:
        value = _numeric(shown, key, arrays[key])
        if value.size == int(np.prod(full_shape)) and value.ndim == len(full_shape) - 1:
            value = value.reshape(full_shape)  # a squeezed batch of one
        if value.shape != full_shape:
            raise _shape_error(shown, key, value, f"{tuple(full_shape)} like x_t")
        return value[order][..., :real].astype(np.float64)

    x_after, v_guided, time = x_after[order][..., :real].astype(np.float64), v_rec[order][..., :real], time[order]
    v_guided = v_guided.astype(np.float64)
    step = time - np.append(time[1:], 0.0)  # -dt of each Euler step (1/n for LeRobot's uniform schedule)
    x_t = x_after + step[:, None, None, None] * v_guided
    t = 1.0 - time
    if "actions" in arrays:
        actions = _numeric(shown, "actions", arrays["actions"])
        if actions.ndim == 2 and batch == 1:
            actions = actions[None]
        if actions.shape != (batch, horizon, padded):
            raise _shape_error(shown, "actions", actions, f"{(batch, horizon, padded)} like one step of x_t")
        action = actions[..., :real].astype(np.float64)
    else:
        action = x_after[-1]
    warnings = _trajectory_warnings(shown, x_t, x_after, action)
    settings: dict[str, Any] = {
        "num_flow_steps": n,
        "batch_size": batch,
        "prefix_attention_schedule": meta.get("prefix_attention_schedule"),
        "max_guidance_weight": meta.get("max_guidance_weight"),
    }
    source_meta = {k: v for k, v in meta.items() if k not in ("format", "version")}
    names = meta.get("action_names")
    names = list(names)[:real] if isinstance(names, list) and len(names) >= real else None

    def cast(value: np.ndarray) -> np.ndarray:
        return np.asarray(value, dtype=dtype)

    if not rtc:
        v_t = -v_guided  # no guidance: the recorded velocity is the network's
        plain = {
            "x_t": cast(x_t),
            "v_t": cast(v_t),
            "x_1_pred": cast(x_t + (1.0 - t)[:, None, None, None] * v_t),
            "time": cast(t),
            "action": cast(action),
        }
        meta_out = make_meta(LEROBOT_SOURCE, settings, names, source_meta=source_meta, first_chunk=True)
        return build_trace(None, plain, meta_out, shown=shown, warnings=warnings)

    correction, error, x1 = steps("correction"), steps("err"), steps("x1_t")
    weight = _per_step(shown, arrays, "guidance_weight", n)[order].astype(np.float64)
    v_t = -(v_guided + weight[:, None, None, None] * correction)
    prefix = _prefix_weights(shown, _numeric(shown, "weights", arrays["weights"]), n, horizon)
    delay = (
        _constant(shown, "inference_delay", _per_step(shown, arrays, "inference_delay", n, True))
        if ("inference_delay" in arrays)
        else meta.get("inference_delay")
    )
    end = (
        _constant(shown, "execution_horizon", _per_step(shown, arrays, "execution_horizon", n, True))
        if ("execution_horizon" in arrays)
        else meta.get("execution_horizon")
    )
    if delay is None or end is None:
        raise TraceError(f"{shown}: inference_delay and execution_horizon are needed (as arrays or in meta)")
    if prev_left.ndim != 3 or prev_left.shape[0] not in (1, batch) or prev_left.shape[1] > horizon:
        raise _shape_error(
            shown, "prev_chunk_left_over", prev_left, f"[1 or {batch}, at most H={horizon}, action dims]"
        )
    valid = prev_left.shape[1]
    prev = np.zeros((batch, horizon, real))
    dims = min(real, prev_left.shape[2])
    prev[:, :valid, :dims] = prev_left[..., :dims]  # LeRobot pads with zeros to H (and to the action dims)
    residual = np.abs(x1 - (x_t + (1.0 - t)[:, None, None, None] * v_t)).max()
    scale = 1.0 + np.abs(x1).max()
    if residual > 1e-4 * scale:
        warnings.append(
            f"{shown}: the recorded x1_t differs from x_t + (1 - t) v_t by up to {residual:.3g}; the steps do not "
            "follow LeRobot's relations (another version, or a tracker that mixes chunks)"
        )
    tracked = {
        "x_t": cast(x_t),
        "v_t": cast(v_t),
        "correction": cast(correction),
        "error": cast(error),
        "x_1_pred": cast(x1),
        "time": cast(t),
        "guidance_weight": cast(weight),
        "applied": cast(weight[:, None, None, None] * correction),
        "prefix_weights": cast(prefix),
        "action": cast(action),
        "prev_action_chunk": cast(prev),
        "inference_delay": np.asarray(delay, np.int32),
        "prefix_attention_horizon": np.asarray(min(end, horizon), np.int32),
        "prev_valid": np.asarray(valid, np.int32),
    }
    settings.update(
        inference_delay=int(delay), prefix_attention_horizon=int(min(end, horizon)), execution_horizon=int(end)
    )
    meta_out = make_meta(LEROBOT_SOURCE, settings, names, source_meta=source_meta)
    return build_trace(tracked, None, meta_out, shown=shown, warnings=warnings)


def _prefix_weights(shown: str, weights: np.ndarray, n: int, horizon: int) -> np.ndarray:
    """LeRobot's ``weights`` (``[n, 1, H, 1]`` stacked, or any shape holding ``H`` per step) as ``[H]``."""
    if weights.size == horizon:
        return weights.reshape(horizon).astype(np.float64)
    if weights.size != n * horizon:
        raise _shape_error(shown, "weights", weights, f"[{n}, 1, {horizon}, 1] (the prefix weights of every step)")
    per_step = weights.reshape(n, horizon).astype(np.float64)
    if not np.allclose(per_step, per_step[0]):
        raise TraceError(f"{shown}: weights change between steps; one RTC call has one set of prefix weights")
    return per_step[0]


def _trajectory_warnings(shown: str, x_t: np.ndarray, x_after: np.ndarray, action: np.ndarray) -> list[str]:
    """Whether the recorded steps form one Euler trajectory (a tracker overwritten by another chunk does not)."""
    warnings = []
    scale = 1.0 + np.abs(x_after).max()
    if len(x_t) > 1:
        gap = np.abs(x_t[1:] - x_after[:-1]).max()
        if gap > 1e-4 * scale:
            warnings.append(
                f"{shown}: step k's state does not continue step k-1's (up to {gap:.3g} apart): the steps may come "
                "from different chunks (the tracker is keyed by flow time); copy them after every chunk"
            )
    gap = np.abs(action - x_after[-1]).max()
    if gap > 1e-4 * scale:
        warnings.append(f"{shown}: actions differ from the last recorded x_t by up to {gap:.3g}")
    return warnings
