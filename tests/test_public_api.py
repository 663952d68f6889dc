"""The top-level package is the documented public API: every name resolves, and importing it is cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import rtc


@pytest.mark.parametrize("name", rtc.__all__)
def test_every_public_name_resolves(name):
    assert getattr(rtc, name) is not None
    assert name in dir(rtc)


def test_public_names_are_the_objects_of_their_modules():
    from rtc import errors
    from rtc.experiments import pipeline
    from rtc.io import checkpoints
    from rtc.numerics import model

    assert rtc.FlowPolicy is model.FlowPolicy and rtc.load_policy is checkpoints.load_policy
    assert rtc.read_run is checkpoints.read_run and rtc.RTCError is errors.RTCError
    assert rtc.RTCSettings is pipeline.RTCSettings
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rtc.nope  # noqa: B018


@pytest.mark.slow  # starts a subprocess
def test_import_rtc_imports_neither_jax_nor_kinetix():
    code = (
        "import sys, rtc; print(sorted(m for m in ('jax', 'kinetix', 'matplotlib', 'streamlit') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_readme_library_example_runs_as_written(monkeypatch):
    """The README's "Library" example is public: run it exactly as printed, from the project folder."""

    from tests.conftest import PROJECT_ROOT as root

    readme = (root / "README.md").read_text()
    section = readme[readme.index("## Library") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    assert "realtime_action" in code and "return_tracking=True" in code
    monkeypatch.chdir(root)
    scope: dict = {}
    exec(compile(code, "README.md (Library)", "exec"), scope)
    tracked = scope["tracked"]
    steps, batch = 10, 1
    assert tracked["x_t"].shape[:2] == (steps, batch) and tracked["time"].shape == (steps,)
    assert scope["action"].shape == tracked["action"].shape == scope["prev"].shape
