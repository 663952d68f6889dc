"""Writing files so that a reader never sees half of one (write beside it, then rename over it), with the
permissions the user's umask gives any new file; strict JSON (no NaN or Infinity); and the package versions every
written result records."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Packages whose versions shape the numbers and figures (recorded in manifests and sweep stores).
PACKAGES = (
    "rtc-inspector",
    "jax",
    "jaxlib",
    "flax",
    "kinetix-env",
    "numpy",
    "matplotlib",
    "altair",
    "pandas",
    "streamlit",
    "vl-convert-python",
)


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process's umask: from ``/proc/self/status`` where the kernel reports it (Linux 4.7+), else by setting it
    and setting it back under a lock (another thread creating a file in between would get the stricter 077)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` in one step: a failure midway leaves the old file (or none), never a partial one.

    The file gets the mode any new file gets under the user's umask (``0o666 & ~umask``): the temporary file
    ``mkstemp`` creates is private (0600), and renaming would keep that mode.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(handle, 0o666 & ~current_umask())
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN or infinite float (Python or numpy, at any depth of dicts, lists and tuples)
    replaced by None, numpy scalars and arrays as Python values: what strict JSON can hold."""
    if isinstance(value, Mapping):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars and arrays
        return finite_or_none(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(value: Any, indent: int | None = 2) -> str:
    """``value`` as strict JSON text (RFC 8259: no NaN, Infinity): undefined numbers are written as null."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False) + "\n"


def write_json(path: str | os.PathLike[str], value: Any) -> Path:
    """Write ``value`` as strict JSON (``strict_json``) with ``write_atomic``."""
    return write_atomic(path, strict_json(value))


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers and figures."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
