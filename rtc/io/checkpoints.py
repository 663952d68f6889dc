"""Finding and loading checkpoints: the paper's pickles and the project's own orbax format.

Both formats share one layout: ``<run>/<epoch>/policies/<level_key>{.pkl,/}`` where ``<epoch>``
is an integer folder and ``<level_key>`` is the level path with ``/`` as ``_`` and no ``.json``
(``worlds/l/grasp_easy.json`` -> ``worlds_l_grasp_easy``).

- Paper format: ``<level_key>.pkl``, a pickle of flax 0.10's ``nnx.state(policy).to_pure_dict()``.
  Loaded with an unpickler that only allows the array-reconstruction globals; no config is saved,
  so it is inferred from the weight shapes.
- Project format: a folder ``<level_key>/`` with ``metadata.json`` (config, dims, level, training
  settings) and ``params/`` (an orbax-checkpoint of the same pure dict).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import io
import json
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rtc.errors import CheckpointError, RTCError, RunError
from rtc.io.files import write_atomic
from rtc.numerics.model import FlowPolicy, ModelConfig

PICKLE_SUFFIX = ".pkl"
METADATA_FILE = "metadata.json"
PARAMS_DIR = "params"
FORMAT_NAME = "rtc-flow-policy"
FORMAT_VERSION = 1
MAX_SIZE = 1 << 16  # largest size accepted in metadata.json (a width, a layer count, an observation size)

# (module, name) pairs a paper checkpoint may reference; numpy 2 renamed numpy.core to numpy._core.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("jax._src.array", "_reconstruct_array"): ("jax._src.array", "_reconstruct_array"),
}


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """A training run: its folder and, per epoch, the checkpoint path of each level key."""

    path: Path
    epochs: dict[int, dict[str, Path]]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def latest_epoch(self) -> int:
        return max(self.epochs)

    def levels(self, epoch: int | None = None) -> list[str]:
        """Level keys with a policy at ``epoch`` (latest when None or -1)."""
        return sorted(self.epochs[self.resolve_epoch(epoch)])

    def resolve_epoch(self, epoch: int | None) -> int:
        """``None`` or ``-1`` means the latest epoch; any other value must exist."""
        if epoch is None or epoch == -1:
            return self.latest_epoch
        if epoch not in self.epochs:
            raise RunError(
                f"epoch {epoch} is not in run {self.path}; available: {sorted(self.epochs)} (or -1 for the latest)"
            )
        return epoch

    def checkpoint(self, epoch: int | None, level_key: str) -> Path:
        """Path of the policy for ``level_key`` at ``epoch``; raises naming the available levels."""
        epoch = self.resolve_epoch(epoch)
        policies = self.epochs[epoch]
        if level_key not in policies:
            raise CheckpointError(
                f"run {self.name} has no policy for level {level_key!r} at epoch {epoch}; "
                f"available: {', '.join(sorted(policies))}"
            )
        return policies[level_key]


# ---------------------------------------------------------------------------------------------
# Level keys


def level_key(level_path: str | Path) -> str:
    """The checkpoint key of a level path: ``.../worlds/l/catapult.json`` -> ``worlds_l_catapult``.

    Absolute paths are cut at their last ``worlds`` folder, as the paper's runs key levels by the
    path relative to the repository root. A path with no ``worlds`` folder keeps its last 3 parts.
    """
    parts = Path(level_path).with_suffix("").parts
    if "worlds" in parts:
        start = len(parts) - 1 - parts[::-1].index("worlds")
        parts = parts[start:]
    else:
        parts = parts[-3:]
    return "_".join(p for p in parts if p not in ("/", ""))


def names_level(key: str, level_path: str | Path) -> bool:
    """Whether checkpoint key ``key`` names level file ``level_path`` by name: the key is the file's stem or ends
    in ``_<stem>`` (``worlds_l_catapult`` names ``.../catapult.json`` wherever it lies)."""
    stem = Path(level_path).stem
    return key == stem or key.endswith("_" + stem)


def best_level_pair(pairs: Iterable[tuple[str, Path]]) -> tuple[str, Path] | None:
    """The one rule pairing checkpoint keys with level files, from candidate ``(key, level file)`` pairs: a pair
    whose key is the file's ``level_key`` first, else the pair that ``names_level`` with the longest file stem;
    None when nothing matches or different keys or stems tie."""
    pairs = [(key, Path(path)) for key, path in pairs]
    for key, path in pairs:
        if level_key(path) == key:
            return key, path
    named = [(key, path) for key, path in pairs if names_level(key, path)]
    if not named:
        return None
    longest = max(len(path.stem) for _, path in named)
    best = {(key, path.stem): (key, path) for key, path in named if len(path.stem) == longest}
    return next(iter(best.values())) if len(best) == 1 else None


def match_level_key(level_path: str | Path, available: list[str]) -> str:
    """The key of ``level_path`` among ``available`` (``best_level_pair``), or a ``CheckpointError`` saying why."""
    found = best_level_pair((key, Path(level_path)) for key in available)
    if found is not None:
        return found[0]
    reason = "several match" if any(names_level(k, level_path) for k in available) else "none matches"
    raise CheckpointError(
        f"no policy for level {str(level_path)!r} (key {level_key(level_path)!r}, {reason}); "
        f"available: {', '.join(sorted(available))}"
    )


# ---------------------------------------------------------------------------------------------
# Discovery


def _checkpoint_key(path: Path) -> str | None:
    if path.is_file() and path.suffix == PICKLE_SUFFIX:
        return path.stem
    if path.is_dir() and (path / METADATA_FILE).is_file():
        return path.name
    return None


def read_run(path: str | Path) -> RunInfo | None:
    """The run at ``path`` if it has at least one ``<epoch>/policies/<key>`` checkpoint, else None."""
    path = Path(path)
    epochs: dict[int, dict[str, Path]] = {}
    if not path.is_dir():
        return None
    for child in path.iterdir():
        policies = child / "policies"
        if not (child.name.isdigit() and policies.is_dir()):
            continue
        found = {key: p for p in policies.iterdir() if (key := _checkpoint_key(p)) is not None}
        if found:
            epochs[int(child.name)] = found
    return RunInfo(path, dict(sorted(epochs.items()))) if epochs else None


def open_run(path: str | Path) -> RunInfo:
    """The run at ``path``, or a ``RunError`` saying whether it is missing, has no epoch folders or is empty."""
    path = Path(path)
    run = read_run(path)
    if run is not None:
        return run
    layout = "<run>/<epoch>/policies/<level_key>.pkl (paper) or <run>/<epoch>/policies/<level_key>/metadata.json"
    if not path.exists():
        raise RunError(f"run folder {path} does not exist; expected a folder laid out as {layout}")
    if not path.is_dir():
        raise RunError(f"{path} is a file, not a run folder; expected a folder laid out as {layout}")
    epochs = sorted(child.name for child in path.iterdir() if child.is_dir() and child.name.isdigit())
    if not epochs:
        found = sorted(child.name for child in path.iterdir())[:8]
        raise RunError(
            f"run {path} has no epoch folders (integer-named, e.g. {path}/0); found: {', '.join(found) or 'nothing'}"
        )
    raise RunError(f"run {path} is empty: its epoch folders ({', '.join(epochs)}) hold no checkpoints ({layout})")


def discover_runs(root: str | Path, max_depth: int = 3) -> list[RunInfo]:
    """Runs at or below ``root`` (up to ``max_depth`` folders down), sorted by path; a run's non-epoch sub-folders
    are searched too (a world's training-time RTC twin lives in ``<run>/training_time``)."""
    root = Path(root)
    runs: list[RunInfo] = []

    def visit(folder: Path, depth: int) -> None:
        run = read_run(folder)
        if run is not None:
            runs.append(run)
        if depth >= max_depth:
            return
        for child in sorted(folder.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and not (run is not None and child.name.isdigit()):
                visit(child, depth + 1)

    if root.is_dir():
        visit(root, 0)
    return sorted(runs, key=lambda r: str(r.path))


# ---------------------------------------------------------------------------------------------
# Pure dicts <-> models


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise CheckpointError(
                f"refusing to load: the pickle references {module}.{name}, which is not an array; "
                "a paper checkpoint only references numpy/jax array reconstruction "
                f"({', '.join(sorted(f'{m}.{n}' for m, n in _ALLOWED_GLOBALS))}). Nothing was executed."
            )
        return super().find_class(*allowed)


def read_paper_pickle(path: str | Path) -> dict[str, Any]:
    """Read a paper checkpoint's pure dict without ever running code other than array reconstruction."""
    path = Path(path)
    try:
        data = _ArraysOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except CheckpointError as err:
        raise CheckpointError(f"{path}: {err}") from None
    except Exception as err:  # corrupt or truncated files
        raise CheckpointError(f"{path}: not a readable checkpoint pickle ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a dict of parameters, found {type(data).__name__}")
    return data


def clean_pure_dict(tree: Any) -> Any:
    """Drop ``None`` leaves (flax 0.10's disabled LayerNorm params), turn digit keys into ints (flax's
    ``nnx.restore_int_paths``, as orbax gives ``mlp_stack`` keys back as strings) and leaves into arrays."""

    def without_none(node: Any) -> Any:
        if isinstance(node, dict):
            return {key: without_none(value) for key, value in node.items() if value is not None}
        return jnp.asarray(node)

    return nnx.restore_int_paths(without_none(tree))


def _shape(tree: dict, *keys: Any) -> tuple[int, ...]:
    node: Any = tree
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise CheckpointError(f"missing parameter {'.'.join(map(str, keys))}")
        node = node[key]
    return tuple(np.shape(node))


def infer_dims(params: dict) -> tuple[ModelConfig, int, int]:
    """``(config, obs_dim, action_dim)`` recovered from the weight shapes of a pure dict."""
    in_features, channel_dim = _shape(params, "in_proj", "kernel")
    _, action_dim = _shape(params, "out_proj", "kernel")
    blocks = params.get("mlp_stack", {})
    if not isinstance(blocks, dict) or not blocks:
        raise CheckpointError("missing parameter mlp_stack (no mixer blocks)")
    chunk_size, token_hidden = _shape(params, "mlp_stack", 0, "token_mix_in", "kernel")
    _, channel_hidden = _shape(params, "mlp_stack", 0, "channel_mix_in", "kernel")
    config = ModelConfig(
        channel_dim=channel_dim,
        channel_hidden_dim=channel_hidden,
        token_hidden_dim=token_hidden,
        num_layers=len(blocks),
        action_chunk_size=chunk_size,
    )
    return config, in_features - action_dim, action_dim


def abstract_policy(config: ModelConfig, obs_dim: int, action_dim: int) -> FlowPolicy:
    """A policy of the given sizes with shape-only parameters (nothing allocated)."""
    return nnx.eval_shape(lambda: FlowPolicy(obs_dim, action_dim, config, rngs=nnx.Rngs(0)))


def policy_from_pure_dict(
    params: dict, source: str = "checkpoint", *, abstract: FlowPolicy | None = None
) -> FlowPolicy:
    """Build a ``FlowPolicy`` from a pure dict, checking every name and shape against the architecture.

    ``abstract`` (from ``abstract_policy``) is reused when its sizes are the ones the weights imply, which saves
    tracing the constructor a second time.
    """
    params = clean_pure_dict(params)
    try:
        config, obs_dim, action_dim = infer_dims(params)
    except CheckpointError as err:
        raise CheckpointError(f"{source}: {err}") from None
    sizes = (config, obs_dim, action_dim)
    if abstract is not None and (abstract.config, abstract.obs_dim, abstract.action_dim) == sizes:
        model = abstract
    else:
        model = abstract_policy(config, obs_dim, action_dim)
    graphdef, state = nnx.split(model)
    expected = dict(jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(state)))
    found = dict(jax.tree_util.tree_leaves_with_path(params))
    fmt = jax.tree_util.keystr
    missing = sorted(fmt(k) for k in expected.keys() - found.keys())
    extra = sorted(fmt(k) for k in found.keys() - expected.keys())
    if missing or extra:
        raise CheckpointError(
            f"{source}: parameter names do not match FlowPolicy (missing {missing}, unexpected {extra})"
        )
    for key, leaf in expected.items():
        if tuple(leaf.shape) != tuple(found[key].shape):
            raise CheckpointError(
                f"{source}: parameter {fmt(key)} has shape {found[key].shape}, expected {leaf.shape} "
                f"for config {config} with obs_dim={obs_dim}, action_dim={action_dim}"
            )
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


# ---------------------------------------------------------------------------------------------
# Project format (orbax + JSON)


TRAINING_TIME_KEY = "training_time_rtc"  # training metadata: {"max_delay": D, ...} when trained with simulated delays


def save_policy(
    policy: FlowPolicy, path: str | Path, *, level: str | None = None, training: dict | None = None
) -> Path:
    """Save ``policy`` as a project checkpoint folder (``metadata.json`` + orbax ``params/``).

    A policy trained for training-time RTC (``policy.max_simulated_delay``) gets ``training["training_time_rtc"]
    ["max_delay"]`` (merged into what ``training`` gives there, e.g. ``rtc.training.flow.simulated_delay_metadata``),
    which ``load_policy`` reads back."""
    import orbax.checkpoint as ocp

    training = dict(training or {})
    if policy.max_simulated_delay is not None:
        given = dict(training.get(TRAINING_TIME_KEY) or {})
        if given.get("max_delay", policy.max_simulated_delay) != policy.max_simulated_delay:
            raise CheckpointError(
                f"training[{TRAINING_TIME_KEY!r}]['max_delay']={given['max_delay']} contradicts the policy's "
                f"max_simulated_delay={policy.max_simulated_delay}"
            )
        training[TRAINING_TIME_KEY] = {**given, "max_delay": policy.max_simulated_delay}
    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    pure = nnx.to_pure_dict(nnx.state(policy))
    pure = jax.tree_util.tree_map(np.asarray, _stringify_keys(pure))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path / PARAMS_DIR, pure, force=True)
        checkpointer.wait_until_finished()
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": policy.config.to_dict(),
        "obs_dim": policy.obs_dim,
        "action_dim": policy.action_dim,
        "level": level,
        "training": training,
        "saved_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    (path / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    return path


def read_metadata(path: str | Path) -> dict:
    """The ``metadata.json`` of a project checkpoint folder, validated."""
    path = Path(path)
    try:
        metadata = json.loads((path / METADATA_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable {METADATA_FILE} ({err})") from None
    if not isinstance(metadata, dict):
        raise CheckpointError(f"{path}: {METADATA_FILE} must hold a JSON object, found {type(metadata).__name__}")
    if metadata.get("format") != FORMAT_NAME or metadata.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: {METADATA_FILE} is not format {FORMAT_NAME!r} version {FORMAT_VERSION} "
            f"(found {metadata.get('format')!r} version {metadata.get('version')!r})"
        )
    _check_sizes(path, metadata)
    return metadata


def _check_sizes(path: Path, metadata: dict) -> None:
    """Refuse metadata whose sizes are not what ``save_policy`` writes, before any array is allocated."""
    fields = [f.name for f in dataclasses.fields(ModelConfig)]
    config = metadata.get("config")
    if not isinstance(config, dict) or sorted(config) != sorted(fields):
        found = sorted(config) if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(f"{path}: {METADATA_FILE} 'config' must have exactly the keys {fields}; found {found}")
    sizes = {**{f"config.{k}": v for k, v in config.items()}, **{k: metadata.get(k) for k in ("obs_dim", "action_dim")}}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
            raise CheckpointError(
                f"{path}: {METADATA_FILE} {name}={value!r} is not accepted; use an integer 1..{MAX_SIZE}"
            )
    try:
        ModelConfig(**config)
    except RTCError as err:
        raise CheckpointError(f"{path}: {METADATA_FILE} {err}") from None


def simulated_delay_of(path: str | Path, metadata: dict) -> int | None:
    """The largest simulated delay a project checkpoint was trained with (training-time RTC), or None."""
    training = metadata.get("training")
    record = training.get(TRAINING_TIME_KEY) if isinstance(training, dict) else None
    if record is None:
        return None
    delay = record.get("max_delay") if isinstance(record, dict) else None
    chunk = metadata["config"]["action_chunk_size"]
    if isinstance(delay, bool) or not isinstance(delay, int) or not 1 <= delay < chunk:
        raise CheckpointError(
            f"{path}: {METADATA_FILE} training.{TRAINING_TIME_KEY}.max_delay={delay!r} is not accepted; "
            f"use an integer 1..{chunk - 1}"
        )
    return delay


def _load_project_policy(path: Path) -> FlowPolicy:
    metadata = read_metadata(path)
    simulated_delay = simulated_delay_of(path, metadata)
    config = ModelConfig(**metadata["config"])
    model = abstract_policy(config, metadata["obs_dim"], metadata["action_dim"])
    cached = _params_cache_file(path)
    params = _read_cached_params(cached) if cached is not None else None
    if params is None:
        params = _restore_params(path, model)
        if cached is not None:
            _write_cached_params(cached, params)
    policy = policy_from_pure_dict(params, source=str(path), abstract=model)
    policy.max_simulated_delay = simulated_delay
    return policy


def _restore_params(path: Path, model: FlowPolicy) -> dict:
    """The pure dict in ``<path>/params`` read by orbax, for the shapes of ``model``."""
    import orbax.checkpoint as ocp

    target = _stringify_keys(nnx.to_pure_dict(nnx.state(model)))
    target = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), target)
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            return checkpointer.restore(path.absolute() / PARAMS_DIR, target)
        except Exception as err:  # orbax raises many kinds for bad folders
            raise CheckpointError(f"{path}: cannot restore {PARAMS_DIR}/ ({type(err).__name__}: {err})") from None


# A project checkpoint's weights are also kept as a plain ``.npz`` next to the compilation cache, keyed by the
# sha256 of every file of the checkpoint folder and the orbax version, so a later process reads them with numpy
# alone and never imports orbax (about half a second). ``/`` joins the keys of the pure dict.
_PARAMS_CACHE_VERSION = 1


def _params_cache_file(path: Path) -> Path | None:
    from rtc.io import export_cache

    folder = export_cache.cache_folder()
    if folder is None:
        return None
    digest = hashlib.sha256(f"params-cache-{_PARAMS_CACHE_VERSION}".encode())
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        data = file.read_bytes()
        digest.update(f"\n{file.relative_to(path).as_posix()} {len(data)}\n".encode())
        digest.update(data)
    version = export_cache.package_version("orbax-checkpoint")
    return folder / "params" / f"{digest.hexdigest()[:32]}-orbax{version}.npz"


def _read_cached_params(file: Path) -> dict | None:
    """The pure dict kept in ``file``, or None when it is missing or unreadable (then orbax reads the folder)."""
    if not file.is_file():
        return None
    try:
        with np.load(file, allow_pickle=False) as stored:
            flat = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    tree: dict = {}
    for name, value in flat.items():
        *parents, leaf = name.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _write_cached_params(file: Path, params: dict) -> None:
    flat = {
        "/".join(str(getattr(key, "key", key)) for key in keys): np.asarray(leaf)
        for keys, leaf in jax.tree_util.tree_leaves_with_path(params)
    }
    buffer = io.BytesIO()
    np.savez(buffer, **flat)
    write_atomic(file, buffer.getvalue())


def _stringify_keys(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {str(k): _stringify_keys(v) for k, v in tree.items()}
    return tree


# ---------------------------------------------------------------------------------------------
# Loading either kind


def load_policy(path: str | Path) -> FlowPolicy:
    """Load one checkpoint (a paper ``.pkl`` or a project folder) as a ready ``FlowPolicy``."""
    path = Path(path)
    if path.is_file() and path.suffix == PICKLE_SUFFIX:
        return policy_from_pure_dict(read_paper_pickle(path), source=str(path))
    if path.is_dir() and (path / METADATA_FILE).is_file():
        return _load_project_policy(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    raise CheckpointError(
        f"{path} is not a checkpoint: expected a paper '<level_key>.pkl' file or a project folder with {METADATA_FILE}"
    )
