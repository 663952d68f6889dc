"""The background preparer that reads levels with kinetix for the app (``rtc.io.level_prep``)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from rtc.io import export_cache, level_prep, levels


@pytest.mark.slow  # resets and draws levels with Kinetix: over 5 s of the fast set's time (--durations)
def test_preparer_stores_observation_and_picture_and_reports_a_bad_file(tmp_path, monkeypatch):
    monkeypatch.setattr(export_cache, "cache_folder", lambda: tmp_path / "cache")
    good, bad = tmp_path / "grasp_easy.json", tmp_path / "bad.json"
    shutil.copyfile(levels.PROJECT_WORLDS / "l" / "grasp_easy.json", good)
    bad.write_text("{oops")
    worker = level_prep.LevelPreparer()
    assert not worker.wait(good, "obs", timeout=1)  # never asked for
    assert worker.request(bad) and worker.request(good) and worker.request(good)
    assert not worker.wait(bad, "obs", timeout=300)  # refused: the app reads it itself and shows why
    assert worker.wait(good, "obs", timeout=300)
    assert worker.wait(good, "picture", timeout=300)
    worker.close()
    worker._thread.join(timeout=60)
    assert not worker.alive and not worker.request(good)
    assert levels.is_prepared(good)
    level = levels.open_level(good)
    assert not level.loaded  # everything the overview needs is on disk
    np.testing.assert_array_equal(levels.level_picture(level), levels.render_level(levels.load_level(good)))
    np.testing.assert_array_equal(levels.reset_observation(level), levels.reset(levels.load_level(good))[0])
