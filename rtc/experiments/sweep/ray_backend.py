"""Sweep points as Ray tasks (optional extra: ``pip install -e ".[ray]"``).

Each point is one task (its episodes batched in the worker exactly as in-process, so the numbers are
the same). A level's policy weights and level file go into Ray's object store once (``ray.put``) and are
passed to tasks by reference inside a list, so a worker fetches and builds them only the first time it
needs them and keeps them (and the compiled rollout program) for later tasks. Results stream into the
store as tasks finish (``ray.wait``); the progress callback counts finished episodes across the cluster.
With no address a local Ray instance is started; with an address (or ``RAY_ADDRESS``) the driver joins
that cluster, whose nodes must have this package installed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from rtc.errors import RTCError
from rtc.experiments.sweep import grid as sweep_grid
from rtc.experiments.sweep import store as sweep_store
from rtc.io import levels
from rtc.numerics import methods

_WORKER_CACHE: dict[str, Any] = {}  # per worker process: built policies and loaded levels by identity


def require_ray():
    """The ``ray`` module, or an ``RTCError`` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RTCError('--ray needs Ray, an optional extra: pip install -e ".[ray]"') from None
    return ray


def policy_payload(entry: sweep_grid.LevelEntry) -> dict[str, Any]:
    """The policy's weights as a pure dict of numpy arrays (rebuilt with ``checkpoints.policy_from_pure_dict``), its
    training-time RTC delay, and the weak policy's weights where BID's forward term has one."""

    def params(policy):
        return jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(policy)))

    payload = {"params": params(entry.policy), "max_simulated_delay": entry.policy.max_simulated_delay}
    if entry.weak_policy is not None:
        payload["weak_params"] = params(entry.weak_policy)
    if entry.training_time_policy is not None:
        payload["training_time_params"] = params(entry.training_time_policy)
        payload["training_time_delay"] = entry.training_time_policy.max_simulated_delay
    return payload


def level_payload(entry: sweep_grid.LevelEntry) -> dict[str, Any]:
    """The level file's name and bytes (the worker loads it as the driver did)."""
    return {"name": entry.level_path.name, "data": entry.level_path.read_bytes()}


def _cached(identity: str, ref_box: list, build):
    if identity not in _WORKER_CACHE:
        ray = require_ray()
        _WORKER_CACHE[identity] = build(ray.get(ref_box[0]))
    return _WORKER_CACHE[identity]


def _build_policy(payload: dict[str, Any]):
    from rtc.io.checkpoints import policy_from_pure_dict

    policy = policy_from_pure_dict(payload["params"], source="ray payload")
    policy.max_simulated_delay = payload.get("max_simulated_delay")
    weak = payload.get("weak_params")
    weak_policy = None if weak is None else policy_from_pure_dict(weak, source="ray payload (weak policy)")
    trained = payload.get("training_time_params")
    training_time = None
    if trained is not None:
        training_time = policy_from_pure_dict(trained, source="ray payload (training-time RTC policy)")
        training_time.max_simulated_delay = payload.get("training_time_delay")
    return policy, weak_policy, training_time


def _build_level(payload: dict[str, Any]) -> levels.Level:
    folder = Path(tempfile.mkdtemp(prefix="rtc_sweep_level_"))
    path = folder / payload["name"]
    path.write_bytes(payload["data"])
    return levels.load_level(path)


def evaluate_remote(
    task: sweep_grid.Task, policy_box: list, level_box: list
) -> tuple[dict[str, Any], dict[str, Any], float]:
    """Body of a Ray task: one point's statistics, episodes and seconds (policy and level fetched once per
    worker)."""
    if "setup" not in _WORKER_CACHE:
        from rtc.experiments import pipeline

        pipeline.enable_compilation_cache()
        _WORKER_CACHE["setup"] = True
    key = dict(task.key)
    trained = task.point.method in methods.TRAINING_TIME_METHODS
    # keyed by the weights the task runs on (the worker's cache outlives one sweep)
    identity = f"policies:{key['policy_fingerprint']}:{key.get('bid_weak_fingerprint')}:{trained}"
    policy, weak_policy, training_time = _cached(identity, policy_box, _build_policy)
    if trained and training_time is not None:
        policy = training_time
    level = _cached("level:" + key["level_sha256"], level_box, _build_level)
    return sweep_grid.evaluate(policy, level, task.level, task.point, weak_policy=weak_policy)


DEFAULT_TIMEOUT_S = 15.0  # how long joining a cluster may take before the sweep gives up (--ray-timeout)


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a cluster address (``host:port`` or ``ray://host:port``); None for ``auto`` or a form
    without a port."""
    text = address.strip().removeprefix("ray://").rstrip("/")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


_GCS_PROBE = """
import sys
import ray._raylet

client = ray._raylet.GcsClient(address=sys.argv[1])
client.internal_kv_keys(b"", None, timeout=5)
print("gcs ok")
"""


def check_reachable(address: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Refuse (``RTCError``, one line) a cluster address where no Ray cluster answers within ``timeout_s`` seconds,
    before Ray's own client, which retries for many minutes: first a TCP connection to its host and port, then
    (for a GCS address, not ``ray://``) Ray's GCS client asking the cluster for a key, in a child process that is
    killed when the time is up (so no retrying client and none of its log lines stay behind)."""
    import socket
    import subprocess
    import sys
    import time

    target = _host_port(address)
    if target is None:
        return
    deadline = time.monotonic() + timeout_s
    check = (
        "check that the cluster is running (ray status on its head node), that this is its head node's address and "
        "GCS port (host:6379 by default, ray://host:10001 for Ray Client) and that no firewall blocks it; "
        "--ray-timeout sets how long to wait"
    )
    try:
        with socket.create_connection(target, timeout=timeout_s):
            pass
    except OSError as err:
        reason = "no answer" if isinstance(err, TimeoutError) else (err.strerror or type(err).__name__)
        raise RTCError(
            f"--ray {address}: no Ray cluster reachable there within {timeout_s:g} s ({reason}); {check}"
        ) from None
    if address.strip().startswith("ray://"):
        return
    host, port = target
    remaining = max(1.0, deadline - time.monotonic())
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _GCS_PROBE, f"{host}:{port}"], capture_output=True, text=True, timeout=remaining
        )
    except subprocess.TimeoutExpired:
        raise RTCError(
            f"--ray {address}: something listens there but no Ray cluster answered within {timeout_s:g} s; {check}"
        ) from None
    if "gcs ok" not in probe.stdout:
        lines = [line for line in probe.stderr.splitlines() if line.strip()]
        reason = lines[-1][-160:] if lines else f"exit code {probe.returncode}"
        raise RTCError(f"--ray {address}: not a Ray cluster's GCS ({reason}); {check}")


def connect(address: str | None, num_cpus: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``), else start a local instance with ``num_cpus`` CPUs (all by
    default). Does nothing when this process is already connected. An address that does not answer within
    ``timeout_s`` seconds is refused (``check_reachable``); Ray's own wait for its control service is bounded by
    the same time (``RAY_gcs_server_port_wait_time_s``)."""
    ray = require_ray()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_reachable(address, timeout_s)
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(max(1, round(timeout_s))))
    # Workers import this package: on a cluster from each node's install, on a local instance from this checkout.
    quiet = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    if address:
        ray.init(address=address, runtime_env={"env_vars": quiet}, log_to_driver=False)
    else:
        path = os.pathsep.join(p for p in (str(levels.PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        runtime_env = {"env_vars": {**quiet, "PYTHONPATH": path}}
        ray.init(num_cpus=num_cpus, include_dashboard=False, runtime_env=runtime_env, log_to_driver=False)


def run_ray(
    entries: Sequence[sweep_grid.LevelEntry],
    tasks: Sequence[sweep_grid.Task],
    store: sweep_store.ResultsStore,
    progress: sweep_grid.GridProgress,
    address: str | None = None,
    num_cpus: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> None:
    """Run ``tasks`` as Ray tasks (one CPU each), adding each finished point to ``store``."""
    ray = require_ray()
    connect(address, num_cpus, timeout_s)
    remote = ray.remote(num_cpus=1, max_retries=2)(evaluate_remote)
    by_key = {entry.key: entry for entry in entries}
    needed = {task.level for task in tasks}
    policies = {key: ray.put(policy_payload(by_key[key])) for key in needed}
    level_files = {key: ray.put(level_payload(by_key[key])) for key in needed}
    pending = {remote.remote(t, [policies[t.level]], [level_files[t.level]]): t for t in tasks}
    total, done = sum(t.point.num_episodes for t in tasks), 0
    progress(0, total, f"{len(tasks)} points submitted to Ray")
    try:
        while pending:
            finished, _ = ray.wait(list(pending), num_returns=1)
            for ref in finished:
                task = pending.pop(ref)
                try:
                    stats, episodes, seconds = ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # a user error inside a task stays one clear line
                    if isinstance(err.cause, RTCError):
                        raise err.cause from None
                    raise
                store.add(sweep_grid.row_for(task, by_key[task.level], stats, "ray", seconds), episodes)
                done += task.point.num_episodes
                note = f"{task.level} {task.point.method} d={task.point.inference_delay} s={task.point.execute_horizon}"
                if progress(done, total, note) is False and pending:
                    raise sweep_grid.SweepCancelled(f"sweep cancelled with {len(pending)} points in flight")
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
