"""A sweep's results on disk: ``results.parquet`` (one row per point), ``episodes.parquet`` (one row per episode),
``comparisons.parquet`` (each method against a baseline, per point) and ``manifest.json``.

A point is one (level, method, delay, execute horizon) evaluated with given settings. Its id hashes
everything that determines its numbers (``KEY_FIELDS``: the policy's weights, the level file's bytes,
the method, d, s, flow steps, BID samples, episodes, episode steps, seed, action noise and maximum
guidance weight), so a rerun, or a run with a larger grid, computes only the points whose id is not
stored yet. After every finished point both stores are rewritten whole (``rtc.io.files.write_atomic``),
episodes first: an interruption loses at most the points in flight, never a finished point's episodes, and
never leaves a half-written file; a point counts as stored only when both files hold it, so the two stay in step.

One folder holds one sweep: one run and epoch, and one value of each setting that gives a point its meaning
besides its coordinates (``DEFINING_FIELDS``: flow steps, BID samples, episodes, episode steps, seed, action
noise, maximum guidance weight; and per level the policy and level file). ``manifest.json`` records them before
the first point is computed; ``check_folder`` refuses a folder whose manifest or stored rows say otherwise, naming
the difference. Levels, methods, delays and execute horizons may grow from one invocation to the next. The
manifest's ``history`` has one entry per invocation, written when it starts (``status: running``) and updated
when it ends (``finished``, ``interrupted`` or ``failed``); a killed invocation keeps ``running``.

Columns of ``results.parquet`` (``COLUMNS``): the point (``level, method, delay, execute_horizon``),
its statistics as ``rtc.experiments.sweep.point_row`` defines them, named and ordered as in the sweep CSV
(``sweep.STAT_COLUMNS``: ``solve_rate`` with ``solve_rate_low/high`` (Wilson 95 %), ``mean_return``,
``mean_boundary_jump`` and ``mean_step_size`` each with ``_low/_high`` (95 %), ``mean_length``, ``episodes,
solved, truncated, switches``), the settings (``flow_steps, bid_samples,
episode_steps, seed, action_noise, max_guidance_weight``), its identity (``policy_fingerprint,
level_sha256, level_file, point_id``) and how it was computed (``backend, seconds``).

Columns of ``episodes.parquet`` (``EPISODE_STORE_COLUMNS``): ``sweep.EPISODE_COLUMNS`` (``level, method, delay,
execute_horizon, episode, seed, solved, return, length, truncated, mean_jump, switches``) and ``point_id``.

Columns of ``comparisons.parquet`` (``COMPARISON_COLUMNS``, ``comparison_table``): per point (``level, delay,
execute_horizon``) and method other than the baseline: ``method, baseline, episodes`` (pairs), ``solve_rate_diff``
(method minus baseline) with ``diff_low, diff_high`` (Newcombe's paired 95 % interval, method 10), ``p_value``
(exact McNemar), ``p_holm`` (Holm over the table) and the discordant pairs ``method_only, baseline_only``
(``rtc.numerics.stats``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rtc.errors import RTCError
from rtc.experiments import rollout, sweep
from rtc.io import files
from rtc.io.files import write_atomic, write_json
from rtc.numerics import stats

RESULTS_FILE = "results.parquet"
EPISODES_FILE = "episodes.parquet"
COMPARISONS_FILE = "comparisons.parquet"
MANIFEST_FILE = "manifest.json"
DEFAULT_BASELINE = "naive"
# Settings that give every point of a folder its meaning besides its coordinates: one value per folder.
DEFINING_FIELDS: tuple[str, ...] = (
    "flow_steps",
    "bid_samples",
    "episodes",
    "episode_steps",
    "seed",
    "action_noise",
    "max_guidance_weight",
)
EPISODE_STORE_COLUMNS: tuple[str, ...] = (*sweep.EPISODE_COLUMNS, "point_id")
COMPARISON_COLUMNS: tuple[str, ...] = (
    "level",
    "delay",
    "execute_horizon",
    "method",
    "baseline",
    "episodes",
    "solve_rate_diff",
    "diff_low",
    "diff_high",
    "p_value",
    "p_holm",
    "method_only",
    "baseline_only",
)
COORDINATES: tuple[str, ...] = ("policy_fingerprint", "level_sha256", "method", "delay", "execute_horizon")
KEY_FIELDS: tuple[str, ...] = (*COORDINATES, *DEFINING_FIELDS)
# Keyed only where set (BID with the forward term), so every other point keeps the id it had before they existed.
FORWARD_KEY_FIELDS: tuple[str, ...] = ("bid_k", "bid_weak_fingerprint")
COLUMNS: tuple[str, ...] = (
    "level",
    "method",
    "delay",
    "execute_horizon",
    *sweep.STAT_COLUMNS,
    "flow_steps",
    "bid_samples",
    "episode_steps",
    "seed",
    "action_noise",
    "max_guidance_weight",
    "policy_fingerprint",
    "level_sha256",
    "level_file",
    "point_id",
    "backend",
    "seconds",
    *FORWARD_KEY_FIELDS,  # empty except for bid_forward; absent from files written before they existed
)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def point_key(
    policy_fingerprint: str,
    level_sha256: str,
    point: rollout.RolloutSettings,
    weak_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Everything that determines a point's numbers (``KEY_FIELDS``; for ``bid_forward`` also ``bid_k`` and the weak
    policy's fingerprint)."""
    forward = point.method == "bid_forward"
    return {
        "policy_fingerprint": policy_fingerprint,
        "level_sha256": level_sha256,
        "method": point.method,
        "delay": int(point.inference_delay),
        "execute_horizon": int(point.execute_horizon),
        "flow_steps": int(point.num_flow_steps),
        "bid_samples": int(point.bid_samples),
        "episodes": int(point.num_episodes),
        "episode_steps": int(point.episode_steps),
        "seed": int(point.seed),
        "action_noise": float(point.action_noise),
        "max_guidance_weight": float(point.max_guidance_weight),
        "bid_k": int(point.bid_k) if forward else None,
        "bid_weak_fingerprint": weak_fingerprint if forward else None,
    }


def point_id(key: Mapping[str, Any]) -> str:
    """A short stable hash of a point key."""
    fields = {name: key[name] for name in KEY_FIELDS}
    fields.update({name: key[name] for name in FORWARD_KEY_FIELDS if key.get(name) is not None})
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def store_row(
    stats: Mapping[str, Any], key: Mapping[str, Any], level_file: str, backend: str, seconds: float
) -> dict[str, Any]:
    """A ``results.parquet`` row from ``sweep.point_row`` statistics and the point's key."""
    row = {**key, "level": stats["level"], "level_file": level_file, "point_id": point_id(key)}
    row.update({name: stats[name] for name in sweep.STAT_COLUMNS if name != "episodes"})
    row.update(backend=backend, seconds=float(seconds))
    return {name: row[name] for name in COLUMNS}


class ResultsStore:
    """The rows of ``folder/results.parquet`` and the episodes of ``folder/episodes.parquet`` by point id; ``add``
    rewrites both atomically (episodes first). Only points present in both files are loaded (``dropped``: the
    points one file held without the other, e.g. after a kill between the two writes; they are computed again)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / RESULTS_FILE
        self.episodes_path = self.folder / EPISODES_FILE
        self.rows: dict[str, dict[str, Any]] = {}
        self.episodes: dict[str, Any] = {}  # point id -> DataFrame of its episodes
        rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for row in read_results(self.path).to_dict("records"):
                rows[str(row["point_id"])] = row
        episodes: dict[str, Any] = {}
        if self.episodes_path.exists():
            frame = read_episodes(self.episodes_path)
            episodes = {str(k): g.reset_index(drop=True) for k, g in frame.groupby("point_id", sort=False)}
        both = rows.keys() & episodes.keys()
        self.dropped = len(rows.keys() | episodes.keys()) - len(both)
        self.rows = {k: v for k, v in rows.items() if k in both}
        self.episodes = {k: v for k, v in episodes.items() if k in both}

    def __contains__(self, identifier: str) -> bool:
        return identifier in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Mapping[str, Any], episodes: Mapping[str, Any]) -> None:
        """Store one finished point: its row and its episodes (``sweep.episode_records``)."""
        import pandas as pd

        identifier = str(row["point_id"])
        frame = pd.DataFrame({name: episodes[name] for name in sweep.EPISODE_COLUMNS})
        if len(frame) != int(row["episodes"]):
            raise ValueError(f"point {identifier}: {len(frame)} episode rows for {row['episodes']} episodes")
        frame["point_id"] = identifier
        self.episodes[identifier] = frame
        self.rows[identifier] = dict(row)
        self.write()

    def frame(self):
        import pandas as pd

        return pd.DataFrame(list(self.rows.values()), columns=list(COLUMNS))

    def episode_frame(self):
        import pandas as pd

        if not self.episodes:
            return pd.DataFrame({name: pd.Series(dtype=_EPISODE_DTYPES[name]) for name in EPISODE_STORE_COLUMNS})
        return pd.concat(list(self.episodes.values()), ignore_index=True)[list(EPISODE_STORE_COLUMNS)]

    def write(self) -> None:
        buffer = io.BytesIO()
        self.episode_frame().to_parquet(buffer, index=False)
        write_atomic(self.episodes_path, buffer.getvalue())
        buffer = io.BytesIO()
        self.frame().to_parquet(buffer, index=False)
        write_atomic(self.path, buffer.getvalue())

    def write_comparisons(self, baseline: str = DEFAULT_BASELINE):
        """Write ``comparisons.parquet`` from the stored episodes (``comparison_table``); returns the table."""
        table = comparison_table(self.episode_frame(), baseline)
        buffer = io.BytesIO()
        table.to_parquet(buffer, index=False)
        write_atomic(self.folder / COMPARISONS_FILE, buffer.getvalue())
        return table


_EPISODE_DTYPES = {
    "level": object,
    "method": object,
    "delay": "int64",
    "execute_horizon": "int64",
    "episode": "int64",
    "seed": "int64",
    "solved": bool,
    "return": float,
    "length": "int64",
    "truncated": bool,
    "mean_jump": float,
    "switches": "int64",
    "point_id": object,
}


# Columns added after stores were first written: an older store reads with them undefined (NaN).
_ADDED_COLUMNS = ("truncated", *FORWARD_KEY_FIELDS)


def _read_parquet(path: Path, columns: Sequence[str], what: str):
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged or foreign file
        raise RTCError(f"{path} is not a readable {what} file ({type(err).__name__}: {err})") from None
    for name in _ADDED_COLUMNS:
        if name in columns and name not in frame.columns:
            frame[name] = float("nan")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise RTCError(f"{path} lacks the columns {', '.join(missing)}; it was not written by this rtc-sweep")
    return frame[list(columns)]


def read_results(path: str | Path):
    """``results.parquet`` as a DataFrame with ``COLUMNS``, or an ``RTCError`` saying what is wrong."""
    return _read_parquet(Path(path), COLUMNS, "results")


def read_episodes(path: str | Path):
    """``episodes.parquet`` as a DataFrame with ``EPISODE_STORE_COLUMNS``, or an ``RTCError``."""
    return _read_parquet(Path(path), EPISODE_STORE_COLUMNS, "episodes")


def read_comparisons(path: str | Path):
    """``comparisons.parquet`` as a DataFrame with ``COMPARISON_COLUMNS``, or an ``RTCError``."""
    return _read_parquet(Path(path), COMPARISON_COLUMNS, "comparisons")


def comparison_table(episodes, baseline: str = DEFAULT_BASELINE):
    """``COMPARISON_COLUMNS`` for every point (level, delay, execute horizon) and every method other than
    ``baseline`` that the point has both of: episodes paired by their index (the same seeds), the difference of
    solve rates with Newcombe's paired 95 % interval, the exact McNemar p-value, and Holm's adjustment over every
    row of the table (``rtc.numerics.stats``). Truncated episodes count as unsolved (their ``solved`` is false)."""
    import pandas as pd

    records = []
    for (level, delay, horizon), group in episodes.groupby(["level", "delay", "execute_horizon"], sort=True):
        if group.duplicated(["method", "episode"]).any():
            raise RTCError(
                f"the episodes hold two points for one method at {level} d={delay} s={horizon}; a sweep folder holds "
                "one point per (level, method, delay, execute horizon)"
            )
        base = group[group["method"] == baseline].set_index("episode")["solved"]
        if base.empty:
            continue
        for method in sorted(set(group["method"]) - {baseline}):
            other = group[group["method"] == method].set_index("episode")["solved"]
            paired = pd.concat([other.rename("method"), base.rename("baseline")], axis=1, join="inner")
            n11, n10, n01, n00 = stats.paired_table(paired["method"].to_numpy(), paired["baseline"].to_numpy())
            diff, low, high = stats.paired_difference_interval(n11, n10, n01, n00)
            records.append(
                {
                    "level": level,
                    "delay": int(delay),
                    "execute_horizon": int(horizon),
                    "method": method,
                    "baseline": baseline,
                    "episodes": len(paired),
                    "solve_rate_diff": diff,
                    "diff_low": low,
                    "diff_high": high,
                    "p_value": stats.mcnemar_exact(n10, n01),
                    "method_only": n10,
                    "baseline_only": n01,
                }
            )
    table = pd.DataFrame.from_records(records, columns=[c for c in COMPARISON_COLUMNS if c != "p_holm"])
    table["p_holm"] = stats.holm(table["p_value"].to_numpy(float)) if len(table) else pd.Series(dtype=float)
    for name in ("delay", "execute_horizon", "episodes", "method_only", "baseline_only"):
        table[name] = table[name].astype("int64")
    return table[list(COMPARISON_COLUMNS)]


def package_versions() -> dict[str, str]:
    found = files.package_versions()
    try:
        import importlib.metadata

        found["ray"] = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        found["ray"] = "not installed"
    return found


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    path = Path(folder) / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise RTCError(f"{path} is not a readable manifest ({err})") from None


def defining_settings(settings: sweep.SweepSettings) -> dict[str, Any]:
    """The values of ``DEFINING_FIELDS`` of a sweep's settings."""
    template = settings.template
    return {
        "flow_steps": int(template.num_flow_steps),
        "bid_samples": int(template.bid_samples),
        "episodes": int(template.num_episodes),
        "episode_steps": int(template.episode_steps),
        "seed": int(template.seed),
        "action_noise": float(template.action_noise),
        "max_guidance_weight": float(template.max_guidance_weight),
    }


def _stored_identity(folder: Path) -> tuple[dict[str, Any], dict[str, dict[str, str]]] | None:
    """What the stored rows say (defining settings and each level's identity) where a folder holds results or
    episodes but no manifest (a sweep killed before this version wrote one); None when it holds neither."""
    rows = []
    if (folder / RESULTS_FILE).exists():
        frame = read_results(folder / RESULTS_FILE)
        rows = frame.to_dict("records")
    if not rows:
        return None
    defining: dict[str, Any] = {}
    for name in DEFINING_FIELDS:
        values = sorted({row[name] for row in rows})
        defining[name] = values[0] if len(values) == 1 else values
    levels: dict[str, dict[str, str]] = {}
    for row in rows:
        identity = levels.setdefault(row["level"], {})
        if row["method"] != "training_time_rtc":  # that one runs on the run's training-time twin
            identity.setdefault("policy_fingerprint", row["policy_fingerprint"])
        identity["level_sha256"] = row["level_sha256"]
    return defining, levels


def check_folder(
    folder: str | Path, run: str, epoch: int, settings: sweep.SweepSettings, levels: Mapping[str, Mapping[str, str]]
) -> None:
    """Refuse (``RTCError`` naming every difference) a folder whose manifest, or stored rows, were made with another
    run, epoch, defining setting (``DEFINING_FIELDS``), policy or level file than asked for now."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    wanted = defining_settings(settings)
    differences = []
    if manifest is not None:
        if (manifest.get("run"), manifest.get("epoch")) != (run, epoch):
            raise RTCError(
                f"{folder} holds a sweep of run {manifest.get('run')} epoch {manifest.get('epoch')}, not {run} epoch "
                f"{epoch}; choose another --out folder"
            )
        stored = manifest.get("defining")
        stored_levels = manifest.get("levels", {})
        if stored is None:  # a manifest of an older version: its settings hold the same names
            stored = {k: v for k, v in _old_defining(manifest.get("settings", {})).items()}
    else:
        found = _stored_identity(folder)
        if found is None:
            return
        stored, stored_levels = found
    for name in DEFINING_FIELDS:
        if name in stored and stored[name] != wanted[name]:
            differences.append(f"{name} {stored[name]} (asked: {wanted[name]})")
    for key, identity in levels.items():
        for field in ("policy_fingerprint", "level_sha256"):
            old = stored_levels.get(key, {}).get(field)
            if old is not None and old != identity[field]:
                what = "policy weights" if field == "policy_fingerprint" else "level file"
                differences.append(f"level {key}'s {what} ({field} {old}, asked: {identity[field]})")
    if differences:
        raise RTCError(
            f"{folder} holds results made with other settings: {'; '.join(differences)}; choose another --out "
            "folder or the same settings"
        )


def _old_defining(settings: Mapping[str, Any]) -> dict[str, Any]:
    names = {
        "flow_steps": "num_flow_steps",
        "bid_samples": "bid_samples",
        "episodes": "num_episodes",
        "episode_steps": "episode_steps",
        "seed": "seed",
        "action_noise": "action_noise",
        "max_guidance_weight": "max_guidance_weight",
    }
    return {ours: settings[theirs] for ours, theirs in names.items() if theirs in settings}


def check_writable(folder: str | Path) -> None:
    """Refuse (``RTCError``) an output folder that cannot be created or written, before any work and without
    leaving anything behind: write and remove a probe in the folder, or in its nearest existing parent."""
    import tempfile

    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise RTCError(f"--out {folder} is a file; accepted: a folder (created when missing)")
    probe_in = folder
    while not probe_in.exists():
        probe_in = probe_in.parent
    if not probe_in.is_dir():
        raise RTCError(f"--out {folder} cannot be created: {probe_in} is a file; accepted: a folder you can write")
    try:
        if probe_in == folder:
            handle, name = tempfile.mkstemp(prefix=".rtc-sweep-probe.", dir=folder)
            os.close(handle)
            os.unlink(name)
        else:
            os.rmdir(tempfile.mkdtemp(prefix=".rtc-sweep-probe.", dir=probe_in))
    except OSError as err:
        reason = err.strerror or str(err)
        raise RTCError(
            f"--out {folder} cannot be {'written' if probe_in == folder else 'created'} ({reason} in {probe_in}); "
            "accepted: a folder you can write"
        ) from None


@dataclasses.dataclass(frozen=True)
class Invocation:
    """One run of a sweep over a store, as the manifest's history records it."""

    backend: str
    points: tuple[str, ...]  # the ids of the points it asked for
    started: str = dataclasses.field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    ident: str = dataclasses.field(default_factory=lambda: f"{os.getpid()}-{time.time_ns()}")


def start_manifest(
    folder: str | Path,
    run: str,
    epoch: int,
    levels: Mapping[str, Mapping[str, str]],
    settings: sweep.SweepSettings,
    invocation: Invocation,
    baseline: str = DEFAULT_BASELINE,
) -> dict[str, Any]:
    """Write ``manifest.json`` before the first point: run, epoch, the defining settings, levels (file, sha256,
    policy fingerprint), this invocation's settings, how seeds are used, package versions, the files, and a
    history entry for this invocation with ``status: running`` (``finish_manifest`` completes it)."""
    previous = read_manifest(folder) or {}
    template = settings.template
    entry = {
        "id": invocation.ident,
        "started": invocation.started,
        "status": "running",
        "backend": invocation.backend,
        "points": sorted(invocation.points),
    }
    manifest = {
        "format": "rtc-sweep/2",
        "run": run,
        "epoch": epoch,
        "defining": defining_settings(settings),
        "levels": {**previous.get("levels", {}), **{k: dict(v) for k, v in levels.items()}},
        "settings": {
            "methods": list(settings.methods),
            "delays": [int(d) for d in settings.delays],
            "execute_horizons": settings.execute_horizon_rule
            if isinstance(settings.execute_horizon_rule, str)
            else list(np.atleast_1d(settings.execute_horizon_rule).tolist()),
            "baseline": baseline,
            **{
                k: v
                for k, v in dataclasses.asdict(template).items()
                if k not in ("method", "inference_delay", "execute_horizon", "segment_steps")
            },
        },
        "seeds": {
            "seed": template.seed,
            "rule": "episode e of every point uses jax.random.fold_in(jax.random.key(seed), e), split into a "
            "sampling key and an environment key (rtc.experiments.rollout.episode_keys); every point uses the "
            "same episodes",
        },
        "packages": package_versions(),
        "results": RESULTS_FILE,
        "episodes": EPISODES_FILE,
        "comparisons": COMPARISONS_FILE,
        "columns": list(COLUMNS),
        "episode_columns": list(EPISODE_STORE_COLUMNS),
        "comparison_columns": list(COMPARISON_COLUMNS),
        "history": [*previous.get("history", []), entry],
    }
    write_json(Path(folder) / MANIFEST_FILE, manifest)
    return manifest


def finish_manifest(
    folder: str | Path, invocation: Invocation, status: str, computed: int, reused: int, note: str = ""
) -> dict[str, Any]:
    """Complete this invocation's history entry: ``status`` (finished, interrupted, failed), points computed and
    reused, when it ended, and a note (the error of a failed one)."""
    manifest = read_manifest(folder) or {}
    for entry in manifest.get("history", []):
        if entry.get("id") == invocation.ident:
            entry.update(status=status, computed=computed, reused=reused)
            entry["ended"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            if note:
                entry["note"] = note
    write_json(Path(folder) / MANIFEST_FILE, manifest)
    return manifest
