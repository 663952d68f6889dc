"""Every failure a user can cause is an ``RTCError`` that names the value and what is accepted.

Also: the command line exits with code 2 and one line, the app shows an error and stays usable,
paths stay inside the configured roots, and a failure midway leaves no half-written file.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from rtc.commands import visualize as cli
from rtc.errors import (
    CheckpointError,
    IndexRangeError,
    LevelError,
    PathError,
    RTCError,
    RunError,
    SettingsError,
)
from rtc.experiments.pipeline import RTCSettings
from rtc.io import files, levels, roots
from rtc.io.checkpoints import load_policy, open_run, read_run, save_policy
from rtc.report import plots
from tests.app.test_app import _app as app_with_query
from tests.app.test_app import _assert_drawn
from tests.conftest import DEMO_RUN, random_policy, shared_path

PICKLE = "0/policies/worlds_l_grasp_easy.pkl"
FIXTURE_PICKLE = ("fixtures", "upstream_small_run", "0", "policies", "worlds_l_grasp_easy.pkl")


def _run_with(tmp_path: Path, name: str, content: bytes | None) -> Path:
    """A run folder ``tmp_path/name`` with epoch 0 holding ``worlds_l_grasp_easy.pkl`` (or nothing)."""
    policies = tmp_path / name / "0" / "policies"
    policies.mkdir(parents=True)
    if content is not None:
        (policies / "worlds_l_grasp_easy.pkl").write_bytes(content)
    return tmp_path / name


def _project_checkpoint(tmp_path: Path) -> Path:
    return save_policy(random_policy(), tmp_path / "run" / "0" / "policies" / "worlds_l_grasp_easy")


def _edit_metadata(path: Path, **changes) -> Path:
    metadata = json.loads((path / "metadata.json").read_text())
    for key, value in changes.items():
        node, *rest = key.split(".")
        if rest:
            metadata[node][rest[0]] = value
        else:
            metadata[key] = value
    (path / "metadata.json").write_text(json.dumps(metadata))
    return path


def _corrupt_orbax(path: Path) -> Path:
    for file in (path / "params").rglob("*"):
        if file.is_file() and file.stat().st_size > 0 and file.name != "_CHECKPOINT_METADATA":
            file.write_bytes(file.read_bytes()[: file.stat().st_size // 3])
    return path


# Each case: what to do, the error class, and text the message must hold (the value and what is accepted).
CASES: dict[str, tuple[Callable[[Path], object], type[RTCError], str]] = {
    "missing run": (lambda tmp: open_run(tmp / "nope"), RunError, r"run folder .*nope does not exist; expected"),
    "run is a file": (lambda tmp: open_run(Path(__file__)), RunError, r"is a file, not a run folder"),
    "no epoch folders": (
        lambda tmp: (tmp / "notes.txt").write_text("x") and open_run(tmp),
        RunError,
        r"has no epoch folders .*found: notes\.txt",
    ),
    "empty run": (lambda tmp: open_run(_run_with(tmp, "r", None)), RunError, r"is empty: its epoch folders \(0\)"),
    "epoch out of range": (
        lambda tmp: read_run(DEMO_RUN).resolve_epoch(7),
        RunError,
        r"epoch 7 is not in run .*available: \[0, 1\]",
    ),
    "no policy for the level": (
        lambda tmp: read_run(DEMO_RUN).checkpoint(-1, "worlds_l_catapult"),
        CheckpointError,
        r"no policy for level 'worlds_l_catapult' at epoch 1; available: worlds_l_grasp_easy",
    ),
    "truncated pickle": (
        lambda tmp: load_policy(_run_with(tmp, "r", shared_path(*FIXTURE_PICKLE).read_bytes()[:5000]) / PICKLE),
        CheckpointError,
        r"not a readable checkpoint pickle",
    ),
    "corrupt orbax checkpoint": (
        lambda tmp: load_policy(_corrupt_orbax(_project_checkpoint(tmp))),
        CheckpointError,
        r"cannot restore params/",
    ),
    "orbax metadata with unknown config keys": (
        lambda tmp: load_policy(_edit_metadata(_project_checkpoint(tmp), **{"config.evil": 1})),
        CheckpointError,
        r"'config' must have exactly the keys",
    ),
    "orbax metadata with an absurd size": (
        lambda tmp: load_policy(_edit_metadata(_project_checkpoint(tmp), obs_dim=10**9)),
        CheckpointError,
        r"obs_dim=1000000000 is not accepted; use an integer 1\.\.65536",
    ),
    "orbax metadata of another format": (
        lambda tmp: load_policy(_edit_metadata(_project_checkpoint(tmp), version=99)),
        CheckpointError,
        r"is not format 'rtc-flow-policy' version 1 \(found 'rtc-flow-policy' version 99\)",
    ),
    "weights that fit no architecture": (
        lambda tmp: load_policy(
            _run_with(tmp, "r", pickle.dumps({"in_proj": {"kernel": np.zeros((3, 2))}}))
            / "0/policies/worlds_l_grasp_easy.pkl"
        ),
        CheckpointError,
        r"missing parameter out_proj\.kernel",
    ),
    "observation size mismatch": (
        lambda tmp: levels.check_obs_dim(levels.load_level(shared_path("worlds", "l", "grasp_easy.json")), 100),
        LevelError,
        r"expects observations of 100 floats.*gives 679",
    ),
    "invalid level JSON": (
        lambda tmp: (tmp / "bad.json").write_text("{oops") and levels.load_level(tmp / "bad.json"),
        LevelError,
        r"bad\.json is not a valid Kinetix level",
    ),
    "delay > execute horizon": (
        lambda tmp: RTCSettings(inference_delay=5, execute_horizon=4).validate(8),
        SettingsError,
        r"execute horizon s=4 is out of range; accepted",
    ),
    "execute horizon > chunk size": (
        lambda tmp: RTCSettings(execute_horizon=9).validate(8),
        SettingsError,
        r"execute horizon s=9 is out of range; accepted: max\(1, d\)=2\.\.8",
    ),
    "no flow steps": (
        lambda tmp: RTCSettings(num_flow_steps=0).validate(8),
        SettingsError,
        r"num_flow_steps=0 is out of range; accepted: 1\.\.1000",
    ),
    "absurdly many flow steps": (
        lambda tmp: RTCSettings(num_flow_steps=10**6).validate(8),
        SettingsError,
        r"num_flow_steps=1000000 is out of range; accepted: 1\.\.1000",
    ),
    "negative guidance weight": (
        lambda tmp: RTCSettings(max_guidance_weight=-1.0).validate(8),
        SettingsError,
        r"max_guidance_weight=-1\.0 is not accepted; use a finite value >= 0",
    ),
    "index out of range": (
        lambda tmp: plots.error_magnitude({"error": np.zeros((2, 3, 8, 6))}, batch_idx=3),
        IndexRangeError,
        r"batch_idx=3 is out of range; accepted 0\.\.2",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_errors_are_typed_and_say_what_is_accepted(tmp_path, case):
    action, kind, message = CASES[case]
    with pytest.raises(kind, match=message) as caught:
        action(tmp_path)
    assert isinstance(caught.value, RTCError)
    assert "\n" not in str(caught.value)


def test_an_index_error_is_still_an_index_error():
    with pytest.raises(IndexError):
        plots.error_magnitude({"error": np.zeros((2, 1, 8, 6))}, batch_idx=-1)


# ---------------------------------------------------------------------------------------------
# Safe loading


class _Evaluates:
    def __reduce__(self):
        return (eval, ("__import__('os').system('touch /tmp/rtc_pwned')",))


def test_a_pickle_calling_eval_is_refused_and_nothing_runs(tmp_path):
    marker = Path("/tmp/rtc_pwned")
    marker.unlink(missing_ok=True)
    path = _run_with(tmp_path, "r", pickle.dumps({"in_proj": _Evaluates()})) / PICKLE
    with pytest.raises(CheckpointError, match=r"references builtins\.eval.*Nothing was executed"):
        load_policy(path)
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------
# The command line: exit code 2 and one line


def _error_line(text: str) -> str:
    """The one error line a terminal shows (progress bars redraw with carriage returns; warnings may precede it)."""
    lines = [line.rsplit("\r", 1)[-1].strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), lines
    (error,) = [line for line in lines if line.startswith("error: ")]
    return error


@pytest.mark.parametrize(
    ("run", "extra", "message"),
    [
        ("missing", [], "run folder"),
        ("empty", [], "is empty"),
        ("corrupt", [], "not a readable checkpoint pickle"),
        ("demo", ["--config.num-flow-steps", "0"], "num_flow_steps=0 is out of range"),
        ("demo", ["--config.max-guidance-weight", "-2"], "max_guidance_weight=-2.0 is not accepted"),
        ("demo", ["--level-path", "nowhere/level.json"], "does not exist"),
    ],
)
def test_the_command_line_exits_2_with_one_line(tmp_path, capsys, run, extra, message):
    runs = {
        "missing": tmp_path / "missing",
        "empty": _run_with(tmp_path, "empty", None),
        "corrupt": _run_with(tmp_path, "corrupt", b"\x80\x04garbage"),
        "demo": DEMO_RUN,
    }
    assert cli.main([str(runs[run]), "--output-dir", str(tmp_path / "out"), *extra]) == 2
    captured = capsys.readouterr()
    assert message in _error_line(captured.err)
    assert "Traceback" not in captured.err + captured.out


def test_a_failure_while_saving_leaves_no_half_written_file(tmp_path, capsys, monkeypatch):
    real_fsync, calls = os.fsync, []

    def disk_full_on_the_third_file(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(files.os, "fsync", disk_full_on_the_third_file)
    out = tmp_path / "out"
    assert cli.main([str(DEMO_RUN), "--output-dir", str(out), "--config.num-flow-steps", "4"]) == 2
    assert "No space left on device" in _error_line(capsys.readouterr().err)
    written = sorted(out.iterdir())
    assert 2 <= len(written) < 10 and all(p.suffix == ".png" for p in written)  # no .part leftovers, no summary
    for path in written:  # every file that is there is complete
        with Image.open(path) as image:
            image.load()


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = files.write_atomic(tmp_path / "a.txt", "old")
    monkeypatch.setattr(files.os, "replace", lambda *_: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError):
        files.write_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


# ---------------------------------------------------------------------------------------------
# Confinement


def test_paths_are_resolved_inside_the_roots(tmp_path):
    root = tmp_path / "runs"
    (root / "demo").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "escape").symlink_to(tmp_path / "secret")
    assert roots.resolve_within("runs/demo", [root]) == (root / "demo").resolve()
    assert roots.resolve_within("runs/./demo", [root]) == (root / "demo").resolve()
    for text, message in [
        ("runs/../secret", "is refused"),
        ("../../etc/passwd", "is refused"),
        (str(tmp_path / "secret"), "is refused"),
        ("/etc/passwd", "is refused"),
        ("runs/escape", "resolves outside the configured roots"),
        ("secret", "resolves outside the configured roots"),
    ]:
        with pytest.raises(PathError, match=message):
            roots.resolve_within(text, [root], "run")


def test_level_files_linking_out_of_their_folder_are_not_offered(tmp_path):
    folder, outside = tmp_path / "worlds", tmp_path / "outside"
    folder.mkdir()
    outside.mkdir()
    shutil.copy(shared_path("worlds", "l", "grasp_easy.json"), folder / "grasp_easy.json")
    (outside / "secret.json").write_text("{}")
    (folder / "secret.json").symlink_to(outside / "secret.json")
    assert [p.name for p in roots.level_files([folder])] == ["grasp_easy.json"]


# ---------------------------------------------------------------------------------------------
# The app: an error, not a traceback, and it stays usable


def _app(monkeypatch, run_dirs: list[Path], query: dict[str, str]) -> AppTest:
    """``tests.test_app._app`` with the run roots set to ``run_dirs`` (and no extra level folders)."""
    monkeypatch.setenv(roots.RUNS_ROOTS_ENV, os.pathsep.join(str(r) for r in run_dirs))
    monkeypatch.delenv(roots.LEVEL_DIRS_ENV, raising=False)
    return app_with_query(query)


def test_the_app_shows_a_corrupt_checkpoint_as_an_error_and_stays_usable(tmp_path, monkeypatch):
    _run_with(tmp_path / "runs", "broken", b"\x80\x04garbage")
    shutil.copytree(DEMO_RUN, tmp_path / "runs" / "demo")
    at = _app(monkeypatch, [tmp_path / "runs"], {"run": "runs/broken", "steps": "4"})
    assert not at.exception
    assert any("not a readable checkpoint pickle" in e.value for e in at.error)
    at.sidebar.selectbox(key="w_run").set_value("runs/demo").run()  # pick another run: the page draws
    _assert_drawn(at, "Overview")


@pytest.mark.parametrize("link", ["../../etc", "/etc", "runs/../../outside"])
def test_a_link_with_a_path_outside_the_roots_is_refused_with_a_notice(monkeypatch, link):
    at = _app(monkeypatch, [DEMO_RUN.parent], {"run": link, "steps": "4"})
    assert not at.exception
    assert any("refused" in w.value or "resolves outside" in w.value for w in at.main.warning)
    assert at.sidebar.selectbox(key="w_run").value == "runs/demo"


# ---------------------------------------------------------------------------------------------
# Many users: caches are bounded, so memory stays flat


# one per process
SINGLETONS = {
    "setup_process",
    "compiled_shapes",
    "render_pool",
    "_started_render_pool",
    "job_queue",
    "sweep_points",
    "_prepared_levels",
}


def test_every_app_cache_is_bounded():
    from streamlit.runtime.caching.cache_utils import CachedFunc

    from pages import _data

    cached = {name: f for name, f in vars(_data).items() if isinstance(f, CachedFunc)}
    assert set(cached) > SINGLETONS
    for name, func in cached.items():
        if name not in SINGLETONS:
            assert func._info.max_entries or func._info.ttl, f"pages/_data.{name} has an unbounded cache"


@pytest.mark.slow  # over 20 s of the fast set's time (pytest --durations)
def test_memory_stays_flat_over_many_selections(monkeypatch):
    import resource

    at = _app(monkeypatch, [DEMO_RUN.parent], {"steps": "4"})
    _assert_drawn(at, "Overview")
    first = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for seed in range(1, 41):
        at.sidebar.number_input(key="w_seed").set_value(seed).run()
    assert not at.exception and not at.error
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss <= 1.5 * first
