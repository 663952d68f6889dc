"""The reference material is found the way the README says: ``RTC_SHARED``, else ``../shared`` beside the project.

One place decides it (``tests.conftest``); no other test or benchmark spells the path. A copy of the project in a
folder with no ``../shared`` runs a few tests that read the material, once with ``RTC_SHARED`` pointing at it
(they pass) and once without (they fail, naming the missing path and ``RTC_SHARED``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, SHARED, SHARED_ENV, shared_path

# Tests that read ../shared through each of the paths tests.conftest hands out (the fixture run as the app's
# run root, the LeRobot recordings, the upstream observations); small and quick.
PROBES = [
    "tests/app/test_app.py::test_every_page_runs_on_the_fixture_run",
    "tests/io/test_traces.py::test_lerobot_rtc_trace_converts_to_our_convention",
    "tests/io/test_levels.py::test_there_are_twelve_paper_levels",
]
COPIED = ("rtc", "tests", "pages", "runs", "worlds", "traces", "streamlit_app.py", "pyproject.toml", "README.md")


def test_no_test_or_benchmark_spells_the_shared_path():
    """Only tests/conftest.py says where the material is; everything else imports it from there."""
    spelled = re.compile(r"""["']shared["']|\.\./shared|RTC_SHARED""")
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for folder in ("tests", "benchmarks")
        for path in (PROJECT_ROOT / folder).rglob("*.py")
        if path.name != "test_shared_material.py"
        and path != PROJECT_ROOT / "tests" / "conftest.py"
        and spelled.search(path.read_text())
    ]
    assert offenders == []


def test_probes_exist():
    """The probes name real tests (a renamed test would make the subprocess check vacuous)."""
    for probe in PROBES:
        file, name = probe.split("::")
        assert f"def {name}(" in (PROJECT_ROOT / file).read_text(), probe


def _run_probes(project, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *PROBES],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
def test_material_elsewhere_is_found_through_rtc_shared(tmp_path):
    shared_path("fixtures")  # the material itself must exist for this test to mean anything
    project = tmp_path / "clone" / "project"  # no clone/shared beside it
    project.mkdir(parents=True)
    for name in COPIED:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, project / name)
    assert not (project.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != SHARED_ENV}
    env["PYTHONPATH"] = str(project)  # the copy's rtc and tests, not the installed checkout's

    found = _run_probes(project, {**env, SHARED_ENV: str(SHARED)})
    assert found.returncode == 0, found.stdout[-3000:] + found.stderr[-3000:]
    assert f"{len(PROBES)} passed" in found.stdout

    missing = _run_probes(project, env)
    assert missing.returncode != 0
    assert "reference material" in missing.stdout and SHARED_ENV in missing.stdout
