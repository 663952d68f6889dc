"""Levels prepared in the background: each level file read with kinetix, its reset observation and picture stored
on disk (``rtc.io.levels.reset_observation`` and ``level_picture``), while the caller does other work.

The app asks for the chosen level (``preparer().request``) as soon as it knows it, then loads the policy and
compiles the sampler; importing kinetix, reading the file and compiling the level's reset and renderer run
meanwhile in one background thread (JAX compiles without holding the GIL, so the two overlap; a thread, not a
process, so nothing is imported twice on a busy machine). ``wait`` blocks until a stage is stored. If
preparing fails, the caller does the same work itself and shows the error it gets.
"""

from __future__ import annotations

import queue
import threading
import traceback
from pathlib import Path

STAGES = ("obs", "picture")


class LevelPreparer:
    """One background thread preparing the requested level files in order, and what it has stored so far."""

    def __init__(self) -> None:
        self._requests: queue.Queue[str | None] = queue.Queue()
        self._done: dict[str, set[str]] = {}
        self._sent: set[str] = set()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._serve, name="level-prep", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        from rtc.errors import RTCError
        from rtc.io import levels

        while (path := self._requests.get()) is not None:
            try:
                level = levels.load_level(path)
                levels.reset_observation(level)
                self._mark(path, "obs")
                levels.level_picture(level)
                self._mark(path, "picture")
            except (RTCError, OSError):
                self._mark(path, "error")  # the caller reads the level itself and shows why
            except Exception:  # never leave a caller waiting
                traceback.print_exc()
                self._mark(path, "error")

    def _mark(self, path: str, stage: str) -> None:
        with self._changed:
            self._done.setdefault(path, set()).add(stage)
            self._changed.notify_all()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def request(self, path: str | Path) -> bool:
        """Ask for ``path`` (once); False when the preparer is closed."""
        key = str(path)
        with self._changed:
            if not self.alive:
                return False
            if key not in self._sent:
                self._sent.add(key)
                self._requests.put(key)
        return True

    def wait(self, path: str | Path, stage: str = "obs", timeout: float | None = None) -> bool:
        """Block until ``stage`` ("obs" or "picture") of the requested ``path`` is stored; False when it failed,
        it was never requested or ``timeout`` passed."""
        key = str(path)
        with self._changed:
            if key not in self._sent:
                return False
            self._changed.wait_for(lambda: bool({stage, "error"} & self._done.get(key, set())), timeout)
            return stage in self._done.get(key, set())

    def close(self) -> None:
        """Stop after the requests already made."""
        self._requests.put(None)


_preparer: LevelPreparer | None = None
_lock = threading.Lock()


def preparer() -> LevelPreparer:
    """This process's level preparer, started on first use."""
    global _preparer
    with _lock:
        if _preparer is None or not _preparer.alive:
            _preparer = LevelPreparer()
        return _preparer
