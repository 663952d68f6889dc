"""Traced programs kept on disk (``jax.export``), so a new process skips tracing them.

JAX's persistent compilation cache saves compiling, but a new process still traces the Python
function to find the cache key; for the Kinetix physics step that tracing takes about 3 s. Here the
traced program is serialised once per function, argument shapes and package versions, next to the
compilation cache, and later processes call the deserialised program directly.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import importlib.metadata
import inspect
import os
import platform
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

from rtc.io.files import write_atomic

_FLAGS = ("jax_enable_x64", "jax_threefry_partitionable", "jax_default_prng_impl")
_loaded: dict[Path, Callable[..., Any]] = {}


def package_version(package: str) -> str:
    """The installed version of ``package`` ("none" if absent), read from its metadata (no import)."""
    return _version(package)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def host_tag(cpuinfo: str | None = None) -> str:
    """A short name for this machine's processor: its architecture and a digest of its model and instruction-set
    flags (``/proc/cpuinfo``'s first ``model name`` and ``flags``; ``cpuinfo`` overrides the file).

    Compiled programs are kept per tag (``rtc.experiments.pipeline.enable_compilation_cache``): JAX's cache key
    does not hold the CPU, and XLA only logs a mismatch when it loads a program compiled for other instructions,
    which may then die of SIGILL, so a cache folder shared between machines (a home directory on a cluster) must
    not hand one machine another's programs."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        name, _, value = line.partition(":")
        fields.setdefault(name.strip(), " ".join(sorted(value.split())) if name.strip() == "flags" else value.strip())
    described = "\n".join([fields.get("model name", ""), fields.get("flags", ""), platform.processor()])
    return f"{platform.machine() or 'cpu'}-{hashlib.sha256(described.encode()).hexdigest()[:12]}"


def loaded_programs() -> list[Callable[..., Any]]:
    """The jitted programs this process has loaded or exported (to count their compilations)."""
    return list(_loaded.values())


def cache_folder() -> Path | None:
    """The compilation cache folder when one is configured (see
    ``rtc.experiments.pipeline.enable_compilation_cache``)."""
    folder = jax.config.jax_compilation_cache_dir
    return Path(folder) if folder else None


def program_key(
    fn: Callable,
    flat_args: Sequence[Any],
    sources: Sequence[Callable | types.ModuleType],
    packages: Sequence[str],
    statics: Sequence[Any] = (),
) -> str:
    """A digest of everything the traced program depends on: code (functions, or whole modules), argument shapes,
    the values ``fn`` closes over (``statics``, by ``repr``), versions, flags, backend."""
    codes = tuple(s if isinstance(s, types.ModuleType) else inspect.unwrap(s).__code__ for s in sources)
    parts = [
        _code_and_versions(f"{fn.__module__}.{fn.__qualname__}", codes, tuple(packages)),
        *(f"{a.shape}{a.dtype}" for a in flat_args),
        *(f"static {value!r}" for value in statics),
        *(f"{flag}={jax.config.values.get(flag)}" for flag in _FLAGS),
        jax.default_backend(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


@functools.cache
def _code_and_versions(
    name: str, codes: tuple[types.CodeType | types.ModuleType, ...], packages: tuple[str, ...]
) -> str:
    """The parts of a key fixed for the life of a process (read once: sources and versions cost milliseconds)."""
    return "\n".join(
        [
            name,
            *(inspect.getsource(code) for code in codes),
            *(f"{p}={_version(p)}" for p in ("jax", "jaxlib", *packages)),
        ]
    )


def call_flat(
    fn: Callable[..., list[jax.Array]],
    flat_args: Sequence[jax.Array],
    *,
    sources: Sequence[Callable | types.ModuleType] = (),
    packages: Sequence[str] = (),
    statics: Sequence[Any] = (),
) -> Any:
    """``fn(*flat_args)`` (arrays in, a list or another pytree of arrays out) through a traced program kept on disk.

    Without a configured cache folder this is a plain ``jax.jit(fn)`` call (traced anew for every new
    ``fn``: callers keep their own ``jax.jit`` for that case). ``sources`` are the
    functions (or whole modules) whose code ``fn`` runs (their source goes into the key), ``packages`` the
    distributions it depends on (their versions too), ``statics`` the values ``fn`` closes over that shape the
    program (their ``repr`` too).
    """
    folder = cache_folder()
    if folder is None:
        return jax.jit(fn)(*flat_args)
    key = program_key(fn, flat_args, [fn, *sources], packages, statics)
    path = folder / "exported" / f"{fn.__name__}-{key}.jaxexport"
    program = _loaded.get(path)
    if program is None:
        exported = None
        if path.is_file():
            try:
                exported = jax.export.deserialize(bytearray(path.read_bytes()))
            except Exception:  # a damaged or foreign file: export again
                exported = None
        if exported is None:
            exported = jax.export.export(jax.jit(fn))(*flat_args)
            write_atomic(path, bytes(exported.serialize()))
        program = _loaded[path] = jax.jit(exported.call)
    return program(*flat_args)


def memory_mappings() -> tuple[int, int] | None:
    """``(mappings, limit)``: the memory mappings this process holds and the most the kernel grants one process
    (``vm.max_map_count``); None where ``/proc`` does not say (not Linux)."""
    try:
        with open("/proc/self/maps", "rb") as maps:
            count = sum(1 for _ in maps)
        limit = int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return None
    return count, limit


def release_programs_when_crowded(fraction: float = 0.5, limit: int | None = None) -> bool:
    """Drop every compiled program this process holds (jax's caches and the programs loaded here) once its memory
    mappings pass ``fraction`` of the kernel's limit (``limit`` overrides ``vm.max_map_count``); True if it did.

    Each XLA executable on the CPU holds its own mappings (a few for a small program, about 3,500 for a closed-loop
    rollout of a Kinetix level), jax keeps every program it compiled for the life of the process, and Linux refuses
    new mappings past ``vm.max_map_count`` (65,530 by default). A long-lived process (the app's server, a sweep, the
    test suite) that compiles a few dozen programs then fails wherever it next allocates: a ``MemoryError``, a
    segfault inside XLA's compiler, a hang (all three seen in the test suite). Dropped programs are compiled again
    when next used (from the persistent cache where one is configured). Called between a server's reruns, between
    sweep points and between test modules: never while this process runs a program it would need again at once.
    """
    mappings = memory_mappings()
    if mappings is None:
        return False
    count, kernel_limit = mappings
    if count <= fraction * (limit or kernel_limit):
        return False
    _loaded.clear()
    jax.clear_caches()
    gc.collect()
    return True


def make_jax_cache_writes_atomic() -> None:
    """Write jax's persistent compilation cache entries atomically (a temporary file, then a rename).

    jax 0.9 writes an entry in place (``LRUCache.put``: ``cache_path.write_bytes(val)``), so a process killed
    mid-write (a sweep stopped with SIGKILL) leaves a truncated executable, and a process reading an entry another
    one is still writing sees half of it; deserialising either crashes the reader with a segfault. This touches a
    jax internal, here only; ``tests/io/test_export_cache.py`` fails loudly when jax changes it. Entries are
    written this way only while eviction is off (jax's default; with eviction on jax's own locked path is kept).
    """
    from jax._src import lru_cache

    cache_class = lru_cache.LRUCache
    if getattr(cache_class.put, "rtc_atomic", False):
        return
    in_place = cache_class.put

    def put(self, key: str, val: bytes) -> None:
        if self.eviction_enabled:
            return in_place(self, key, val)
        if not key:
            raise ValueError("key cannot be empty")
        target = os.path.join(str(self.path), f"{key}{lru_cache._CACHE_SUFFIX}")
        if os.path.exists(target):
            return None
        partial = os.path.join(str(self.path), f".{key}.{os.getpid()}.partial")
        with open(partial, "wb") as handle:
            handle.write(val)
        os.replace(partial, target)
        return None

    put.rtc_atomic = True
    cache_class.put = put
