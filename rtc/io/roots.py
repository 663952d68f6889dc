"""Where users' files come from, and the rule that confines every read to them: run roots, level folders,
stored sweeps and trace roots (each configurable by an environment variable), and the level file of a
checkpoint key.

A path taken from a link or a command is only read when it resolves (symbolic links followed) inside one of
the configured roots (``resolve_within``/``is_within``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from rtc.errors import PathError
from rtc.io.checkpoints import RunInfo, best_level_pair, discover_runs
from rtc.io.levels import PROJECT_ROOT

RUNS_ROOTS_ENV = "RTC_RUNS_ROOTS"
LEVEL_DIRS_ENV = "RTC_LEVEL_DIRS"
SWEEPS_ROOTS_ENV = "RTC_SWEEPS_ROOTS"
TRACES_ROOTS_ENV = "RTC_TRACES_ROOTS"


def _split_dirs(value: str | None) -> list[Path]:
    return [Path(part).expanduser() for part in (value or "").split(os.pathsep) if part.strip()]


def _unique_dirs(paths: Iterable[Path]) -> list[Path]:
    seen: dict[Path, None] = {}
    for path in paths:
        if path.is_dir():
            seen.setdefault(path.resolve(), None)
    return list(seen)


def run_roots(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """Resolved run roots: ``RTC_RUNS_ROOTS`` (os.pathsep-separated) or the project's ``runs/`` and ``./logs-bc``."""
    environ = os.environ if environ is None else environ
    configured = _split_dirs(environ.get(RUNS_ROOTS_ENV))
    if configured:
        return _unique_dirs(configured)
    cwd = Path.cwd() if cwd is None else cwd
    return _unique_dirs([PROJECT_ROOT / "runs", cwd / "logs-bc", PROJECT_ROOT / "logs-bc"])


def level_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Folders searched for level files: those in ``RTC_LEVEL_DIRS`` first (so a configured folder, e.g. the
    paper's own level set, takes precedence), then the project's ``worlds/``."""
    environ = os.environ if environ is None else environ
    return _unique_dirs([*_split_dirs(environ.get(LEVEL_DIRS_ENV)), PROJECT_ROOT / "worlds"])


def is_within(path: Path, root: Path) -> bool:
    """Whether ``path`` resolves (symlinks followed) inside ``root``."""
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def resolve_within(text: str, roots: Iterable[Path], what: str = "path") -> Path:
    """``text`` (relative to a root's parent, as run ids are) resolved inside one of ``roots``, else ``PathError``.

    ``..`` segments, absolute paths and symbolic links that lead outside every root are refused.
    """
    roots = list(roots)
    shown = ", ".join(str(r) for r in roots) or "none configured"
    candidate = Path(text)
    if candidate.is_absolute() or ".." in candidate.parts:
        raise PathError(
            f"{what} {text!r} is refused: only paths inside the configured roots ({shown}) are read, "
            "given relative to a root's folder without '..'"
        )
    for root in roots:
        path = root.parent / candidate
        if is_within(path, root):
            return path.resolve()
    raise PathError(f"{what} {text!r} resolves outside the configured roots ({shown}); it is not read")


def _contained(path: Path, roots: Iterable[Path]) -> bool:
    return any(is_within(path, root) for root in roots)


def find_runs(roots: list[Path]) -> dict[str, RunInfo]:
    """Runs under ``roots`` by id (the run folder relative to its root's parent), skipping symlink escapes."""
    runs: dict[str, RunInfo] = {}
    for root in roots:
        for run in discover_runs(root):
            if not is_within(run.path, root):
                continue
            run_id = run.path.resolve().relative_to(root.parent).as_posix()
            if run_id in runs:
                run_id = str(run.path.resolve())
            runs[run_id] = run
    return runs


def sweeps_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """Extra folders searched for stored sweeps (``RTC_SWEEPS_ROOTS``, os.pathsep-separated)."""
    environ = os.environ if environ is None else environ
    return _unique_dirs(_split_dirs(environ.get(SWEEPS_ROOTS_ENV)))


def find_sweeps(runs: Mapping[str, RunInfo], roots: list[Path], max_depth: int = 3) -> dict[str, Path]:
    """Stored sweeps (folders with ``results.parquet`` and ``manifest.json``) by id: those in a ``sweeps/``
    folder inside a run (``<run id>/sweeps/<name>``) and those under ``roots`` (``<root name>/<path>``).
    Folders or files that resolve outside their run or root are skipped."""
    found: dict[str, Path] = {}

    def is_sweep(folder: Path, root: Path) -> bool:
        files = [folder / "results.parquet", folder / "manifest.json"]
        return all(f.is_file() and is_within(f, root) for f in files)

    for run_id, run in runs.items():
        folder = run.path / "sweeps"
        if folder.is_dir() and is_within(folder, run.path):
            for candidate in sorted(p for p in folder.iterdir() if p.is_dir()):
                if is_sweep(candidate, run.path):
                    found[f"{run_id}/sweeps/{candidate.name}"] = candidate.resolve()
    for root in roots:
        candidates = [root, *(p for p in sorted(root.rglob("*")) if p.is_dir())]
        for candidate in candidates:
            depth = len(candidate.relative_to(root).parts)
            if depth <= max_depth and is_sweep(candidate, root):
                found[Path(root.name, candidate.relative_to(root)).as_posix()] = candidate.resolve()
    return found


def checked_checkpoint(run: RunInfo, epoch: int, key: str, roots: list[Path]) -> Path:
    """The checkpoint path of ``key`` at ``epoch``, refusing any file that resolves outside the run roots."""
    path = run.checkpoint(epoch, key)
    files = [path, *path.rglob("*")] if path.is_dir() else [path]
    outside = [f for f in files if not _contained(f, roots)]
    if outside:
        raise PathError(
            f"checkpoint {path.name} of run {run.name} points outside the configured run roots "
            f"({outside[0]} resolves to {outside[0].resolve()}); set {RUNS_ROOTS_ENV} to include it"
        )
    return path


def level_files(folders: list[Path]) -> list[Path]:
    """Every ``*.json`` level file in ``folders``, in folder order (symbolic links out of a folder are skipped)."""
    return [path for folder in folders for path in sorted(folder.rglob("*.json")) if is_within(path, folder)]


def level_candidates(folders: Iterable[Path] | None = None) -> list[Path]:
    """Level files searched for a checkpoint's key: ``folders`` (default ``level_dirs()``: ``RTC_LEVEL_DIRS``, then
    the project's ``worlds/``), then kinetix's own levels."""
    from rtc.io import levels

    paths = level_files(list(level_dirs() if folders is None else folders))
    kinetix = levels.kinetix_levels_folder()
    return paths + (sorted(kinetix.glob("*.json")) if kinetix.is_dir() else [])


def find_level_file(key: str, candidates: Iterable[Path]) -> Path | None:
    """The level file for checkpoint key ``key`` among ``candidates`` (``checkpoints.best_level_pair``)."""
    found = best_level_pair((key, path) for path in candidates)
    return None if found is None else found[1]


def trace_roots(environ: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """Resolved trace roots: ``RTC_TRACES_ROOTS`` (os.pathsep-separated), else the project's and the working
    folder's ``traces/``."""
    environ = os.environ if environ is None else environ
    configured = _split_dirs(environ.get(TRACES_ROOTS_ENV))
    if configured:
        return _unique_dirs(configured)
    cwd = Path.cwd() if cwd is None else cwd
    return _unique_dirs([PROJECT_ROOT / "traces", cwd / "traces"])


def find_traces(roots: list[Path]) -> dict[str, Path]:
    """``*.npz`` files under ``roots`` by id (the path relative to its root's parent), skipping symlink escapes."""
    found: dict[str, Path] = {}
    for root in roots:
        for path in sorted(root.rglob("*.npz")):
            if path.is_file() and is_within(path, root):
                found.setdefault(path.resolve().relative_to(root.parent).as_posix(), path.resolve())
    return found
