"""A sweep's results on disk: ``results.parquet`` (one row per point) and ``manifest.json``.

A point is one (level, method, delay, execute horizon) evaluated with given settings. Its id hashes
everything that determines its numbers (``KEY_FIELDS``: the policy's weights, the level file's bytes,
the method, d, s, flow steps, BID samples, episodes, episode steps, seed, action noise and maximum
guidance weight), so a rerun, or a run with a larger grid, computes only the points whose id is not
stored yet. The store is rewritten whole after every finished point (``rtc.io.files.write_atomic``): an
interruption loses at most the points in flight and never leaves a half-written file.

Columns of ``results.parquet`` (``COLUMNS``): the point (``level, method, delay, execute_horizon``),
its statistics as ``rtc.experiments.sweep.point_row`` defines them, named and ordered as in the sweep CSV
(``sweep.STAT_COLUMNS``: ``solve_rate`` with ``solve_rate_low/high`` (Wilson 95 %), ``mean_return``,
``mean_boundary_jump`` and ``mean_step_size`` each with ``_low/_high`` (95 %), ``mean_length``, ``episodes,
solved, switches``), the settings (``flow_steps, bid_samples,
episode_steps, seed, action_noise, max_guidance_weight``), its identity (``policy_fingerprint,
level_sha256, level_file, point_id``) and how it was computed (``backend, seconds``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rtc.errors import RTCError
from rtc.experiments import rollout, sweep
from rtc.io import files
from rtc.io.files import write_atomic

RESULTS_FILE = "results.parquet"
MANIFEST_FILE = "manifest.json"
KEY_FIELDS: tuple[str, ...] = (
    "policy_fingerprint",
    "level_sha256",
    "method",
    "delay",
    "execute_horizon",
    "flow_steps",
    "bid_samples",
    "episodes",
    "episode_steps",
    "seed",
    "action_noise",
    "max_guidance_weight",
)
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
)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def point_key(policy_fingerprint: str, level_sha256: str, point: rollout.RolloutSettings) -> dict[str, Any]:
    """Everything that determines a point's numbers (``KEY_FIELDS``)."""
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
    }


def point_id(key: Mapping[str, Any]) -> str:
    """A short stable hash of a point key."""
    text = json.dumps({name: key[name] for name in KEY_FIELDS}, sort_keys=True)
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
    """The rows of ``folder/results.parquet`` by point id; ``add`` rewrites the file atomically."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / RESULTS_FILE
        self.rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for row in read_results(self.path).to_dict("records"):
                self.rows[str(row["point_id"])] = row

    def __contains__(self, identifier: str) -> bool:
        return identifier in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows[str(row["point_id"])] = dict(row)
        self.write()

    def frame(self):
        import pandas as pd

        return pd.DataFrame(list(self.rows.values()), columns=list(COLUMNS))

    def write(self) -> None:
        buffer = io.BytesIO()
        self.frame().to_parquet(buffer, index=False)
        write_atomic(self.path, buffer.getvalue())


def read_results(path: str | Path):
    """``results.parquet`` as a DataFrame with ``COLUMNS``, or an ``RTCError`` saying what is wrong."""
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as err:  # pyarrow raises several types for a damaged or foreign file
        raise RTCError(f"{path} is not a readable results file ({type(err).__name__}: {err})") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise RTCError(f"{path} lacks the columns {', '.join(missing)}; it was not written by rtc-sweep")
    return frame[list(COLUMNS)]


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


def check_same_run(folder: str | Path, run: str, epoch: int) -> None:
    """Refuse to add points of another run or epoch to an existing sweep folder."""
    manifest = read_manifest(folder)
    if manifest is None:
        return
    if (manifest.get("run"), manifest.get("epoch")) != (run, epoch):
        raise RTCError(
            f"{folder} holds a sweep of run {manifest.get('run')} epoch {manifest.get('epoch')}, not {run} epoch "
            f"{epoch}; choose another --out folder"
        )


@dataclasses.dataclass(frozen=True)
class Invocation:
    """One run of a sweep over a store, as the manifest's history records it."""

    backend: str
    computed: int
    reused: int
    points: tuple[str, ...]  # the ids of the points it asked for


def write_manifest(
    folder: str | Path,
    run: str,
    epoch: int,
    levels: Mapping[str, Mapping[str, str]],
    settings: sweep.SweepSettings,
    invocation: Invocation,
) -> dict[str, Any]:
    """Write ``manifest.json``: run, epoch, levels (file, sha256, policy fingerprint), the sweep's settings,
    how seeds are used, package versions, and a history entry per invocation."""
    previous = read_manifest(folder) or {}
    template = settings.template
    entry = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "backend": invocation.backend,
        "points": sorted(invocation.points),
        "computed": invocation.computed,
        "reused": invocation.reused,
    }
    manifest = {
        "format": "rtc-sweep/1",
        "run": run,
        "epoch": epoch,
        "levels": {**previous.get("levels", {}), **{k: dict(v) for k, v in levels.items()}},
        "settings": {
            "methods": list(settings.methods),
            "delays": [int(d) for d in settings.delays],
            "execute_horizons": settings.execute_horizon_rule
            if isinstance(settings.execute_horizon_rule, str)
            else list(np.atleast_1d(settings.execute_horizon_rule).tolist()),
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
        "columns": list(COLUMNS),
        "history": [*previous.get("history", []), entry],
    }
    write_atomic(Path(folder) / MANIFEST_FILE, json.dumps(manifest, indent=2) + "\n")
    return manifest
