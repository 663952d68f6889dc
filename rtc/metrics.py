"""Numbers that summarise a sample against the previous chunk (pure numpy, per batch element)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def weighted_prefix_error(chunk: np.ndarray, prev_chunk: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sum_h W_h * ||chunk_h - prev_h||`` per batch element ``[B]`` (BID's distance with exp weights)."""
    distance = np.linalg.norm(np.asarray(chunk) - np.asarray(prev_chunk), axis=-1)  # [B, H]
    return distance @ np.asarray(weights)


def boundary_jump(chunk: np.ndarray, prev_chunk: np.ndarray, inference_delay: int) -> np.ndarray:
    """Size of the step from the last frozen action ``prev[d - 1]`` to the first new one ``chunk[d]`` ``[B]``.

    With ``d = 0`` it is the step from ``prev[0]`` (what would have run next) to ``chunk[0]``.
    """
    d = int(inference_delay)
    if d >= chunk.shape[-2]:
        return np.zeros(chunk.shape[0])
    before = prev_chunk[:, max(d - 1, 0)]
    return np.linalg.norm(chunk[:, d] - before, axis=-1)


def summarize(tracked: Mapping[str, Any], plain_action: np.ndarray | None = None) -> dict[str, float]:
    """Averages over the batch of an RTC run: weighted prefix error (RTC and, if given, plain),
    final-action difference to the plain sample, mean |correction| and mean |applied term|."""
    action = np.asarray(tracked["action"])
    prev = np.asarray(tracked["prev_action_chunk"])
    weights = np.asarray(tracked["prefix_weights"])
    delay = int(np.asarray(tracked["inference_delay"]))
    result = {
        "weighted_prefix_error_rtc": float(weighted_prefix_error(action, prev, weights).mean()),
        "boundary_jump_rtc": float(boundary_jump(action, prev, delay).mean()),
        "mean_abs_correction": float(np.abs(np.asarray(tracked["correction"])).mean()),
        "mean_abs_applied": float(np.abs(np.asarray(tracked["applied"])).mean()),
    }
    if plain_action is not None:
        plain = np.asarray(plain_action)
        result["weighted_prefix_error_plain"] = float(weighted_prefix_error(plain, prev, weights).mean())
        result["boundary_jump_plain"] = float(boundary_jump(plain, prev, delay).mean())
        result["final_action_difference"] = float(
            np.linalg.norm((action - plain).reshape(len(action), -1), axis=-1).mean()
        )
    return result
