"""Written files: whole or not at all, with the permissions the user's umask gives any new file; strict JSON."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rtc.io import files

ROOT = Path(__file__).resolve().parents[2]

_WRITE = """
import os, sys
os.umask(int(sys.argv[2], 8))
from rtc.io.files import write_atomic, write_json
write_atomic(sys.argv[1] + "/data.bin", b"x")
write_json(sys.argv[1] + "/summary.json", {"a": 1})
write_atomic(sys.argv[1] + "/data.bin", b"rewritten")  # replacing a file gives the same mode
"""


@pytest.mark.slow
@pytest.mark.parametrize(("umask", "mode"), [("022", 0o644), ("077", 0o600), ("002", 0o664)])
def test_written_files_get_the_umask_mode_in_a_real_process(tmp_path, umask, mode):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", _WRITE, str(tmp_path), umask], check=True, env=env, timeout=60)
    for name in ("data.bin", "summary.json"):
        assert (tmp_path / name).stat().st_mode & 0o777 == mode, name
    assert (tmp_path / "data.bin").read_bytes() == b"rewritten"
    assert not list(tmp_path.glob("*.part"))


def _strict(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_strict_json_writes_undefined_numbers_as_null(tmp_path):
    value = {
        "nan": float("nan"),
        "inf": float("inf"),
        "numpy": np.float32("-inf"),
        "array": np.array([1.0, np.nan]),
        "nested": [{"x": (np.int64(3), math.nan)}],
        "fine": 0.5,
    }
    parsed = _strict(files.strict_json(value))
    assert parsed == {
        "nan": None,
        "inf": None,
        "numpy": None,
        "array": [1.0, None],
        "nested": [{"x": [3, None]}],
        "fine": 0.5,
    }
    files.write_json(tmp_path / "m.json", {"v": float("nan")})
    assert _strict((tmp_path / "m.json").read_text()) == {"v": None}
