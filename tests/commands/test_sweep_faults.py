"""rtc-sweep under real faults: a Ray address nothing answers at, a killed and an interrupted process, the
manifest that guards a folder against mixing, and a quiet stderr (each item of issue 24 that needs a real component)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.commands.test_sweep_cli import run_cli
from tests.conftest import DEMO_RUN, PROJECT_ROOT

LEVEL = "worlds_l_grasp_easy"
GRID = ["--levels", LEVEL, "--methods", "naive", "rtc_exp", "--episodes", "8", "--episode-steps", "32"]
GRID += ["--delays", "1", "2", "--execute-horizons", "min", "--bid-samples", "4"]
C_LOG_LINE = re.compile(r"^[EWIF]\d{4} \d\d:\d\d:\d\d")  # absl/XLA C++ log lines, e.g. the AOT loader's


def _sweep(out: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the command line must quiet XLA itself
    command = [sys.executable, "-m", "rtc.commands.sweep", str(DEMO_RUN), "--out", str(out), *GRID, *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"rtc-sweep ended ({process.returncode}) before {path.name} was written")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path.name} was not written within {seconds} s")
        time.sleep(0.05)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the block ends: nothing listens there


class _SilentListener:
    """A local port that accepts connections and never answers (not a Ray cluster)."""

    def __enter__(self) -> int:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.server.settimeout(0.2)
        self.accepted: list[socket.socket] = []
        self.stop = False

        def accept() -> None:
            while not self.stop:
                try:
                    self.accepted.append(self.server.accept()[0])
                except OSError:
                    continue

        self.thread = threading.Thread(target=accept, daemon=True)
        self.thread.start()
        return self.server.getsockname()[1]

    def __exit__(self, *exc) -> None:
        self.stop = True
        self.thread.join(5)
        for conn in self.accepted:
            conn.close()
        self.server.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["closed port", "silent listener"])
def test_an_unreachable_ray_address_fails_within_the_timeout_and_writes_nothing(tmp_path, kind):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    with contextlib.ExitStack() as stack:
        port = _closed_port() if kind == "closed port" else stack.enter_context(_SilentListener())
        address = f"127.0.0.1:{port}"
        started = time.monotonic()
        process = _sweep(out, "--ray", address, "--ray-timeout", "4")
        try:
            stdout, stderr = process.communicate(timeout=90)  # the old code retried for many minutes
        finally:
            process.kill()
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 2 and stdout == ""
    assert len(lines) == 1 and lines[0].startswith("error: --ray " + address), stderr
    assert "ray status" in lines[0] and "--ray-timeout" in lines[0]
    assert time.monotonic() - started < 60
    assert not out.exists()


@pytest.mark.slow
def test_a_running_cluster_passes_the_reachability_check(ray_local):
    from rtc.experiments.sweep import ray_backend

    address = ray_local.get_runtime_context().gcs_address
    started = time.monotonic()
    ray_backend.check_reachable(address, timeout_s=30)  # Ray's own GCS client, in a child process
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_killed_and_interrupted_sweeps_keep_a_manifest_that_guards_the_folder(tmp_path):
    out = tmp_path / "sweep"
    # 1. killed (SIGKILL) as soon as the manifest exists: it was written before the first point, with what
    #    defines the points, and the invocation's history entry says it never ended
    process = _sweep(out)
    _wait_for(out / "manifest.json", process, 120)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["run"] == str(DEMO_RUN.resolve()) and manifest["epoch"] == 1
    assert manifest["defining"] == {
        "flow_steps": 5,
        "bid_samples": 4,
        "episodes": 8,
        "episode_steps": 32,
        "seed": 0,
        "action_noise": 0.1,
        "max_guidance_weight": 5.0,
    }
    assert [h["status"] for h in manifest["history"]] == ["running"] and len(manifest["history"][0]["points"]) == 4
    assert LEVEL in manifest["levels"] and manifest["levels"][LEVEL]["policy_fingerprint"]

    # 2. another epoch, or other defining settings, into that folder: refused before any work, naming the difference
    code, _, stderr = run_cli(DEMO_RUN, "--out", out, *GRID, "--epoch", "0")
    assert code == 2 and "holds a sweep of run" in stderr and "epoch 1, not" in stderr and "epoch 0" in stderr
    code, _, stderr = run_cli(DEMO_RUN, "--out", out, *GRID, "--episodes", "4", "--flow-steps", "3")
    assert code == 2 and "episodes 8 (asked: 4)" in stderr and "flow_steps 5 (asked: 3)" in stderr, stderr
    assert len(json.loads((out / "manifest.json").read_text())["history"]) == 1  # refused runs leave no entry

    # 3. interrupted (SIGINT, Ctrl-C) once a point is stored: exit 130, its entry says so, no finished episode lost
    process = _sweep(out)
    _wait_for(out / "results.parquet", process, 240)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted: finished points are kept in" in stderr
    assert not [line for line in stderr.splitlines() if C_LOG_LINE.match(line)], "XLA's C++ log lines reach stderr"
    history = json.loads((out / "manifest.json").read_text())["history"]
    assert [h["status"] for h in history] == ["running", "interrupted"] and history[1]["computed"] >= 1
    results = pd.read_parquet(out / "results.parquet")
    episodes = pd.read_parquet(out / "episodes.parquet")
    assert len(results) == history[1]["computed"] and len(episodes) == 8 * len(results)
    assert set(episodes.point_id) == set(results.point_id)

    # 4. a rerun completes the grid from there; the manifest is strict JSON throughout
    code, stdout, stderr = run_cli(DEMO_RUN, "--out", out, *GRID)
    assert code == 0 and f"points: {4 - len(results)} computed, {len(results)} reused" in stdout, stderr

    def refuse(name):
        raise ValueError(name)

    history = json.loads((out / "manifest.json").read_text(), parse_constant=refuse)["history"]
    assert [h["status"] for h in history] == ["running", "interrupted", "finished"]
    assert len(pd.read_parquet(out / "episodes.parquet")) == 4 * 8


@pytest.mark.slow
def test_rows_stored_without_a_manifest_guard_the_folder_too(tmp_path):
    """A folder written by a version that kept no manifest before the end (or whose manifest was removed): its rows
    say what made them, and another setting is refused."""
    out = tmp_path / "sweep"
    code, _, stderr = run_cli(DEMO_RUN, "--out", out, *GRID, "--delays", "1")
    assert code == 0, stderr
    (out / "manifest.json").unlink()
    code, _, stderr = run_cli(DEMO_RUN, "--out", out, *GRID, "--delays", "1", "--seed", "3")
    assert code == 2 and "seed 0 (asked: 3)" in stderr and "choose another --out folder" in stderr
