"""Episode animations: rendered frames of a recorded rollout, as a GIF."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from rtc.errors import RTCError
from rtc.experiments.rollout import Rollout
from rtc.io import levels
from rtc.io.files import write_atomic


def episode_frames(rollout: Rollout, episode: int = 0, every: int = 2, size: int = 192) -> list[np.ndarray]:
    """Rendered frames ``[size, size, 3]`` uint8 of ``episode``: the reset state, then every ``every``-th
    step up to the episode's end (always including the last state)."""
    from PIL import Image

    length = int(rollout.lengths[episode])
    steps = list(range(0, length + 1, max(1, every)))
    if steps[-1] != length:
        steps.append(length)
    frames = []
    for step in steps:
        picture = levels.render_state(rollout.episode_state(episode, step))
        frames.append(np.asarray(Image.fromarray(picture).resize((size, size), Image.Resampling.BILINEAR)))
    return frames


def gif_bytes(frames: list[np.ndarray], fps: float = 15.0) -> bytes:
    """The frames as a looping GIF."""
    from PIL import Image

    if not frames:
        raise RTCError("no frames to animate")
    images = [Image.fromarray(np.asarray(frame)) for frame in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
    return buffer.getvalue()


def save_animation(frames: list[np.ndarray], path: str | Path, fps: float = 15.0) -> Path:
    """Write the frames as a GIF at ``path`` (suffix ``.gif``); returns the path."""
    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise RTCError(f"save_animation writes GIF files; {path.name} does not end in .gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, gif_bytes(frames, fps))
    return path
