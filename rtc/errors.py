"""The project's errors: every failure a user can cause is an ``RTCError`` whose message names the value and what is
accepted.

The app shows them with ``st.error`` and stays usable; the command line prints one line and exits with code 2.
Anything else is a bug (the app logs its traceback on the server and shows a short notice).
``RTCError`` is a ``ValueError`` so callers that caught ``ValueError`` keep working.
"""

from __future__ import annotations


class RTCError(ValueError):
    """A failure caused by input: a file, a path, a setting or an index. The message says what is accepted."""


class SettingsError(RTCError):
    """A setting out of its accepted range (delay, execute horizon, flow steps, guidance weight, seed, ...)."""


class IndexRangeError(RTCError, IndexError):
    """An index (batch element, horizon index, action dimension, episode, ...) outside its range."""


class CheckpointError(RTCError):
    """A checkpoint that cannot be used: unsafe, truncated, corrupt, or not matching what is asked."""


class RunError(CheckpointError):
    """A training-run folder that is missing, empty, or has no such epoch."""


class LevelError(RTCError):
    """A level file that cannot be used (not JSON, not a Kinetix level, another size or observation size)."""


class PathError(RTCError):
    """A path that resolves outside the folders the app was configured to read."""


class SelectionError(RTCError):
    """A selection the app refuses (from a widget or a link)."""


class TraceError(RTCError):
    """A trace file that cannot be read: not an .npz, pickled or object arrays, a wrong layout, inconsistent shapes."""
