"""Kinetix levels and the "L" symbolic continuous environment of the paper (kinetix-env 3.0.2).

Level files are loaded by absolute path (kinetix resolves relative paths against its own package,
not the working directory). ``Level`` bundles the loaded state with its parameters; ``reset`` gives
its first observation; ``render_level`` draws it (``rtc.io.roots.level_candidates`` lists the files offered).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rtc.errors import LevelError
from rtc.io.files import write_atomic

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_WORLDS = PROJECT_ROOT / "worlds"
DEFAULT_LEVEL = "worlds/l/grasp_easy.json"
OBS_DIM = 679
ACTION_DIM = 6
RENDER_SIZE = 512  # the paper renders at 512x512
# What kinetix gives for the project's own levels (reset observation, picture), committed so that a fresh
# machine shows them without importing kinetix; keyed like the cache, written by ``python -m rtc.io.levels
# --prepare``; tests/test_levels.py recomputes them and fails on a stale file.
PREPARED = PROJECT_WORLDS / "prepared"
PROJECT_LEVEL_FOLDERS = (PROJECT_WORLDS / "l", PROJECT_WORLDS / "designed")

# The paper's levels that kinetix-env also ships (the other four exist only in the paper's set).
PAPER_LEVELS_IN_KINETIX = (
    "car_launch",
    "chain_lander",
    "grasp_easy",
    "h17_unicycle",
    "hard_lunar_lander",
    "mjc_half_cheetah",
    "mjc_swimmer",
    "mjc_walker",
)
# Of those, two are other levels in kinetix-env 3.0.2 than in the paper's set (different bodies and roles):
# reset observations differ from the paper stack's in this many of the 679 entries. ``worlds/l`` holds the
# paper's files for these two (MIT, see worlds/NOTICE), so every project level resets as in the paper.
KINETIX_DIFFERS_FROM_PAPER: dict[str, int] = {"car_launch": 23, "chain_lander": 6}
# The levels ``worlds/l`` copies from kinetix-env (``export_worlds``); the others are the paper's files.
KINETIX_COPIES = tuple(name for name in PAPER_LEVELS_IN_KINETIX if name not in KINETIX_DIFFERS_FROM_PAPER)


def paper_level_note(key: str, path: Path | None = None) -> str | None:
    """A one-line warning when ``key``'s level file is kinetix-env's version of a level the paper defines
    differently (``path``: the file used; ``None`` or a file from another folder, e.g. ``worlds/l`` or the
    paper's own set, gets none)."""
    name = key.removeprefix("worlds_l_")
    if name not in KINETIX_DIFFERS_FROM_PAPER or path is None:
        return None
    if path.resolve().parent != kinetix_levels_folder().resolve():
        return None
    return (
        f"{name}.json here is kinetix-env's version, a different level from the paper's "
        f"({KINETIX_DIFFERS_FROM_PAPER[name]} of 679 reset observation entries differ): for a policy trained "
        f"on the paper's levels, add the paper's level folder to RTC_LEVEL_DIRS"
    )


def static_env_params_l():
    """Size "L": 12 polygons, 4 circles, 6 joints, 2 thrusters, 4 motor and 2 thruster bindings."""
    from kinetix.environment.env_state import StaticEnvParams

    return StaticEnvParams(
        num_polygons=12,
        num_circles=4,
        num_joints=6,
        num_thrusters=2,
        num_motor_bindings=4,
        num_thruster_bindings=2,
        frame_skip=2,
    )


class Level:
    """A Kinetix level file and, read on first use, its initial state and parameters.

    ``load_level`` reads the file at once (validating it); ``open_level`` defers that while the level's
    reset observation is on disk (``reset_observation``), so inspections that need only that observation
    never import kinetix.
    """

    def __init__(self, path: Path, state: Any = None, static_params: Any = None, env_params: Any = None):
        self.path = Path(path)
        self._parts = None if state is None else (state, static_params, env_params)

    def _read(self) -> tuple[Any, Any, Any]:
        if self._parts is None:
            self._parts = _read_level(self.path)
        return self._parts

    @property
    def loaded(self) -> bool:
        """Whether the level file has been read (kinetix imported)."""
        return self._parts is not None

    @property
    def state(self) -> Any:
        return self._read()[0]

    @property
    def static_params(self) -> Any:
        return self._read()[1]

    @property
    def env_params(self) -> Any:
        return self._read()[2]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def key(self) -> str:
        from rtc.io.checkpoints import level_key

        return level_key(self.path)

    def __repr__(self) -> str:
        return f"Level({str(self.path)!r})"


def _comparable(static_params: Any) -> Any:
    # Loading forces screen size and downscale; they only affect rendering.
    return static_params.replace(screen_dim=(500, 500), downscale=4)


def checked_level_path(path: str | Path) -> Path:
    """``path`` made absolute, or a ``LevelError`` if it is not an existing ``.json`` file."""
    path = Path(path).expanduser().absolute()
    if path.suffix != ".json":
        raise LevelError(f"level {path} is not a .json file; accepted: a Kinetix level JSON")
    if not path.is_file():
        raise LevelError(f"level file {path} does not exist; accepted: a Kinetix level JSON file")
    return path


def load_level(path: str | Path) -> Level:
    """Load a Kinetix level JSON (any folder) as an "L"-size level, or raise ``LevelError`` saying why."""
    path = checked_level_path(path)
    return Level(path, *_read_level(path))


def open_level(path: str | Path) -> Level:
    """Like ``load_level``, but the file is read only when needed: while its reset observation is on disk (in
    the cache or committed under ``worlds/prepared``; the file's content validated when that was stored),
    nothing is read until a state is asked for."""
    path = checked_level_path(path)
    if _has_stored(path, *_OBS):
        return Level(path)
    return load_level(path)


def _read_level(path: Path) -> tuple[Any, Any, Any]:
    from kinetix.util.saving import load_from_json_file

    try:
        json.loads(path.read_text())
        state, static_params, env_params = load_from_json_file(str(path))
    except Exception as err:  # kinetix raises KeyError/TypeError/... for malformed files
        raise LevelError(f"level {path} is not a valid Kinetix level ({type(err).__name__}: {err})") from None
    expected = static_env_params_l()
    if _comparable(static_params) != _comparable(expected):
        raise LevelError(
            f"level {path.name} has static parameters {static_params}, but policies here use size 'L' "
            f"({expected}); its observation would not have {OBS_DIM} floats"
        )
    return state, expected, env_params


@functools.cache
def make_env(auto_reset: bool = False):
    """The paper's environment: size "L", continuous actions, flat symbolic observations."""
    from kinetix.environment import make_kinetix_env
    from kinetix.environment.env_state import EnvParams
    from kinetix.environment.spaces import ActionType, ObservationType

    return make_kinetix_env(
        ActionType.CONTINUOUS,
        ObservationType.SYMBOLIC_FLAT,
        None,
        EnvParams(),
        static_env_params_l(),
        auto_reset=auto_reset,
    )


def reset(level: Level, rng: jax.Array | None = None) -> tuple[jax.Array, Any]:
    """Reset the environment to ``level``; returns ``(obs [679], env_state)``."""
    rng = jax.random.key(0) if rng is None else rng
    return make_env().reset(rng, level.env_params, override_reset_state=level.state)


# The arrays kept per level file: (kind, file-name suffix).
_OBS = ("reset_obs", "")
_PICTURE = ("level_picture", f"-{RENDER_SIZE}px")


def _level_entry(path: Path, kind: str, extra: str = "") -> str:
    """``<kind>/<sha256 of the file>-<kinetix-env and jax versions><extra>``: what a stored array is keyed by."""
    from rtc.io import export_cache

    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:32]
    versions = f"kinetix-env{export_cache.package_version('kinetix-env')}-jax{export_cache.package_version('jax')}"
    return f"{kind}/{digest}-{versions}{extra}"


def _stored_files(path: Path, kind: str, extra: str = "") -> tuple[Path | None, Path]:
    """Where one array of the level file ``path`` is kept (the file hashed once): ``<cache>/<entry>.npy`` next to
    the compilation cache (None without a configured cache) and ``worlds/prepared/<entry>.npz``, the committed
    copy (compressed) for the project's own levels."""
    from rtc.io import export_cache

    entry = _level_entry(path, kind, extra)
    folder = export_cache.cache_folder()
    return (None if folder is None else folder / f"{entry}.npy"), PREPARED / f"{entry}.npz"


def _level_cache_file(path: Path, kind: str, extra: str = "") -> Path | None:
    return _stored_files(path, kind, extra)[0]


def _prepared_file(path: Path, kind: str, extra: str = "") -> Path:
    return _stored_files(path, kind, extra)[1]


def _has_stored(path: Path, kind: str, extra: str = "") -> bool:
    """Whether the array is on disk, in the cache or committed."""
    cached, prepared = _stored_files(path, kind, extra)
    return (cached is not None and cached.is_file()) or prepared.is_file()


def _load_cached(path: Path | None) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return archive["array"]
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, KeyError):
        return None  # unreadable: the caller computes it again


def _load_stored(path: Path, kind: str, extra: str = "") -> np.ndarray | None:
    """A stored array of the level file ``path``: the cache's, else the committed one, else None."""
    cached, prepared = _stored_files(path, kind, extra)
    stored = _load_cached(cached)
    return stored if stored is not None else _load_cached(prepared)


def _store_cached(path: Path | None, array: np.ndarray) -> None:
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        write_atomic(path, buffer.getvalue())


def reset_observation(level: Level) -> jax.Array:
    """The observation after resetting to ``level`` (``[679]``), read from disk when it was stored before."""
    stored = _load_stored(level.path, *_OBS)
    if stored is not None and stored.shape == (OBS_DIM,):
        return jnp.asarray(stored)
    obs, _ = reset(level)
    _store_cached(_level_cache_file(level.path, *_OBS), obs)
    return obs


def check_obs_dim(level: Level, obs_dim: int) -> None:
    """Refuse a policy whose observation size differs from what the level produces."""
    if obs_dim != OBS_DIM:
        raise LevelError(
            f"the policy expects observations of {obs_dim} floats, but level {level.name} (size 'L', "
            f"symbolic flat) gives {OBS_DIM}; pick a checkpoint trained on size-'L' levels"
        )


@functools.cache
def _pixel_renderer():
    from kinetix.environment.env_state import EnvParams
    from kinetix.render.renderer_pixels import make_render_pixels

    static = static_env_params_l().replace(screen_dim=(RENDER_SIZE, RENDER_SIZE), downscale=1)
    # Compiled without LLVM's optimisations: a picture is drawn once per level, so compiling fast matters more
    # than running fast (same pixels on the levels tried; about 20 % less CPU to the first picture).
    quick = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
    return jax.jit(make_render_pixels(EnvParams(), static), compiler_options=quick)


def render_state(env_state: Any) -> np.ndarray:
    """An ``[H, W, 3]`` uint8 picture of an environment state, upright (y axis pointing up)."""
    pixels = np.asarray(_pixel_renderer()(env_state))
    return np.ascontiguousarray(np.clip(pixels, 0, 255).astype(np.uint8).transpose(1, 0, 2)[::-1])


def render_level(level: Level) -> np.ndarray:
    """The level's initial state as an ``[H, W, 3]`` uint8 image."""
    return render_state(level.state)


def level_picture(level: Level) -> np.ndarray:
    """``render_level``, read from disk when it was stored before (next to the reset observation, same key)."""
    stored = _load_stored(level.path, *_PICTURE)
    if stored is not None and stored.dtype == np.uint8 and stored.shape == (RENDER_SIZE, RENDER_SIZE, 3):
        return stored
    picture = render_level(level)
    _store_cached(_level_cache_file(level.path, *_PICTURE), picture)
    return picture


def is_prepared(path: str | Path) -> bool:
    """Whether the level file's reset observation and picture are on disk, in the cache or committed under
    ``worlds/prepared`` (so showing it needs no kinetix)."""
    path = checked_level_path(path)
    return _has_stored(path, *_OBS) and _has_stored(path, *_PICTURE)


def kinetix_levels_folder() -> Path:
    """Where kinetix-env installs its own "L" levels (found without importing kinetix)."""
    spec = importlib.util.find_spec("kinetix")
    if spec is None or spec.origin is None:
        raise LevelError("kinetix-env is not installed; install the project's dependencies")
    return Path(spec.origin).parent / "levels" / "l"


def resolve_level_path(level: str | Path) -> Path:
    """A user's level argument as an absolute path: as given if it exists, else under the project root."""
    path = Path(level).expanduser()
    if path.is_absolute() or path.exists():
        return path.absolute()
    return PROJECT_ROOT / path


def export_worlds(destination: Path = PROJECT_WORLDS / "l", names: tuple[str, ...] = KINETIX_COPIES) -> list[Path]:
    """Copy the paper's levels that kinetix-env ships as the paper has them into ``destination`` (how ``worlds/l``
    got them; the other six there are the paper's own files)."""
    destination.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        target = destination / f"{name}.json"
        shutil.copyfile(kinetix_levels_folder() / f"{name}.json", target)
        written.append(target)
    return written


def project_level_files() -> list[Path]:
    """The levels the project ships: the paper's 12 (``worlds/l``) and the worlds designed here
    (``worlds/designed``, e.g. the mode-switch world)."""
    return [path for folder in PROJECT_LEVEL_FOLDERS for path in sorted(folder.glob("*.json"))]


def prepare_worlds() -> list[Path]:
    """Write ``worlds/prepared``: each project level's reset observation and picture as kinetix gives them
    (replacing what was there, so no stale file stays)."""
    shutil.rmtree(PREPARED, ignore_errors=True)
    written = []
    for path in project_level_files():
        level = load_level(path)
        obs, _ = reset(level)
        for (kind, extra), array in ((_OBS, np.asarray(obs)), (_PICTURE, render_level(level))):
            buffer = io.BytesIO()
            np.savez_compressed(buffer, array=array)
            written.append(write_atomic(_prepared_file(path, kind, extra), buffer.getvalue()))
    return written


if __name__ == "__main__":
    import sys

    made = prepare_worlds() if "--prepare" in sys.argv[1:] else export_worlds()
    for written_path in made:
        print(written_path.relative_to(PROJECT_ROOT))
