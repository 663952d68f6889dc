"""A render worker: ``python -m rtc.report.render_worker [module ...]`` runs jobs sent by
``rtc.report.render.RenderPool`` over its pipes, after importing the named ``rtc.report`` modules.

Each job arrives on stdin as one pickled ``(function, args, kwargs)`` and its answer leaves on the
original stdout as one pickled ``(ok, value)``. Only the parent process writes to the pipe (these are
the pool's own frames, never user files). The worker exits when stdin closes (its parent is gone or
shut it down), so it never outlives the pool.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import sys


def serve(inbox, outbox) -> None:
    """Answer jobs from ``inbox`` on ``outbox`` until ``inbox`` ends."""
    while True:
        try:
            function, args, kwargs = pickle.load(inbox)
        except EOFError:
            return
        try:
            answer = (True, function(*args, **kwargs))
        except BaseException as error:
            answer = (False, error)
        try:
            frame = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # an unpicklable result or exception
            frame = pickle.dumps((False, RuntimeError(f"render worker could not send back {answer[1]!r}: {error}")))
        outbox.write(frame)
        outbox.flush()


PRELOADABLE = "rtc.report."


def preload(modules: list[str]) -> None:
    """Import the named ``rtc.report`` modules now, so the first job does not wait for matplotlib."""
    for name in modules:
        if not name.startswith(PRELOADABLE):
            raise SystemExit(f"render worker: refusing to preload {name!r}; accepted: modules under {PRELOADABLE}*")
        importlib.import_module(name)


def main() -> None:
    # Ctrl-C reaches the whole process group; the parent decides when workers stop (by closing stdin).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload(sys.argv[1:])
    # The protocol keeps the real stdout; anything a job prints goes to stderr instead.
    outbox = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, outbox)
    # Every answer is flushed; skip the interpreter's teardown (a few hundred ms with matplotlib loaded), for
    # which the parent would wait.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
