"""Writing files so that a reader never sees half of one (write beside it, then rename over it), and the
package versions every written result records."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import tempfile
from pathlib import Path

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


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` in one step: a failure midway leaves the old file (or none), never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers and figures."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions
