"""Behaviours of a policy at one observation, found among its plain samples, and membership in them.

A multimodal policy (push, pull, wave) draws chunks from a few distinct behaviours; RTC should keep the
previous chunk's. Whether it does is only a question where the policy has more than one behaviour there:

- **Behaviours**: k-means (k-means++ starts, best of several restarts, a fixed generator so the answer is
  reproducible) on the plain samples' chunks, restricted to the indices where the previous chunk holds planned
  actions (``i < prev_valid``: the whole chunk in the paper's first block, ``H - s`` actions later). The number
  of behaviours ``k`` is chosen by the gap statistic (Tibshirani, Walther and Hastie, 2001; reference: uniform
  over the box of the samples' principal axes) with the "global max, one standard error" rule: the smallest
  ``k`` whose gap is within one standard error of the largest gap. (The "first k with Gap(k) >= Gap(k + 1) -
  s(k + 1)" rule stops at k = 1 when three equidistant behaviours make k = 2 no better than k = 1.) A ``k > 1``
  is kept only when its gap exceeds that of ``k = 1`` by more than twice their standard errors together, so a
  single behaviour, even one spread evenly along a line, is not split by chance: where it is unclear the answer
  is one behaviour and no share. Unlike a silhouette threshold, it can answer ``k = 1``, also for an elongated
  single behaviour.
- **Membership**: each chunk belongs to the behaviour whose centre is nearest (Euclidean, same indices).
- **Stayed**: a sample stayed in the previous chunk's behaviour when it belongs to the behaviour the previous
  chunk belongs to. The share of samples that stayed comes with its Wilson 95 % interval and ``n``; plain samples
  give the chance that the policy picks that behaviour again unguided.

With one behaviour (or too few samples to find any) no share is given: every sample would "stay" trivially.
Pure numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from rtc.numerics import metrics

MIN_SAMPLES = 8  # fewer plain samples cannot show distinct behaviours
MAX_BEHAVIOURS = 6
REFERENCES = 20  # reference data sets of the gap statistic
RESTARTS = 6
SEPARATION = 2.0  # k > 1 needs a gap above k = 1's by this many times their standard errors together


def kmeans(points: np.ndarray, k: int, rng: np.random.Generator, restarts: int = RESTARTS) -> tuple:
    """``(within-cluster sum of squares, centres [k, F], labels [N])`` of the best of ``restarts`` k-means runs
    (k-means++ starts) on ``points [N, F]``."""
    points = np.asarray(points, float)
    count = len(points)
    best = None
    for _ in range(restarts):
        centres = points[[rng.integers(count)]]
        for _ in range(1, k):
            nearest = ((points[:, None] - centres[None]) ** 2).sum(-1).min(axis=1)
            total = nearest.sum()
            pick = rng.choice(count, p=nearest / total) if total > 0 else rng.integers(count)
            centres = np.concatenate([centres, points[[pick]]])
        for _ in range(100):
            labels = ((points[:, None] - centres[None]) ** 2).sum(-1).argmin(axis=1)
            moved = np.array([points[labels == j].mean(0) if np.any(labels == j) else centres[j] for j in range(k)])
            if np.array_equal(moved, centres):
                break
            centres = moved
        squared = ((points[:, None] - centres[None]) ** 2).sum(-1)
        labels = squared.argmin(axis=1)
        within = float(squared[np.arange(count), labels].sum())
        if best is None or within < best[0]:
            best = (within, centres, labels)
    return best


def gap_statistic_count(points: np.ndarray, max_k: int, rng: np.random.Generator) -> int:
    """The number of clusters the gap statistic chooses among ``1..max_k`` (see the module docstring)."""
    points = np.asarray(points, float)
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    projected = centred @ axes.T
    low, high = projected.min(axis=0), projected.max(axis=0)
    references = [rng.uniform(low, high, size=projected.shape) @ axes for _ in range(REFERENCES)]
    gaps, spreads = [], []
    for k in range(1, max_k + 1):
        log_within = np.log(max(kmeans(points, k, rng)[0], 1e-300))
        log_reference = np.log([max(kmeans(ref, k, rng, restarts=2)[0], 1e-300) for ref in references])
        gaps.append(float(log_reference.mean() - log_within))
        spreads.append(float(log_reference.std() * np.sqrt(1 + 1 / REFERENCES)))
    best = int(np.argmax(gaps))
    k = next(k for k in range(1, max_k + 1) if gaps[k - 1] >= gaps[best] - spreads[best])
    if gaps[k - 1] - gaps[0] <= SEPARATION * (spreads[k - 1] + spreads[0]):
        return 1  # not clearly better than one behaviour
    return k


@dataclasses.dataclass(frozen=True, eq=False)
class Behaviours:
    """The behaviours found among plain samples: ``centres [k, F]`` on the chunk indices ``i < prev_valid``
    (``F = prev_valid * A``); ``reason`` says why none is reported (too few samples, no planned action)."""

    centres: np.ndarray
    prev_valid: int
    samples: int
    reason: str | None = None

    @property
    def count(self) -> int:
        return len(self.centres)

    def features(self, chunks: np.ndarray) -> np.ndarray:
        chunks = np.asarray(chunks, float)
        return chunks[:, : self.prev_valid].reshape(len(chunks), -1)

    def membership(self, chunks: np.ndarray) -> np.ndarray:
        """The behaviour each chunk ``[N, H, A]`` belongs to (its nearest centre), ``[N]``."""
        features = self.features(chunks)
        return ((features[:, None] - self.centres[None]) ** 2).sum(-1).argmin(axis=1)


def find_behaviours(plain_chunks: np.ndarray, prev_valid: int, seed: int = 0) -> Behaviours:
    """The behaviours among plain samples ``[S, H, A]`` drawn at one observation (see the module docstring)."""
    chunks = np.asarray(plain_chunks, float)
    count, valid = len(chunks), int(prev_valid)
    empty = np.zeros((0, valid * chunks.shape[-1]))
    if valid <= 0:
        return Behaviours(empty, valid, count, "the previous chunk holds no planned action to compare with")
    if count < MIN_SAMPLES:
        return Behaviours(empty, valid, count, f"{count} plain samples are too few to find behaviours")
    features = chunks[:, :valid].reshape(count, -1)
    if np.allclose(features, features[0]):
        return Behaviours(features[:1], valid, count)
    rng = np.random.default_rng(seed)
    k = gap_statistic_count(features, min(MAX_BEHAVIOURS, count // 2), rng)
    return Behaviours(kmeans(features, k, rng)[1], valid, count)


def stay_shares(
    plain_chunks: np.ndarray, prev_chunk: np.ndarray, prev_valid: int, runs: Mapping[str, np.ndarray]
) -> dict:
    """Behaviours among ``plain_chunks`` and, per run in ``runs`` (name -> chunks ``[S, H, A]``), the share of
    samples in the previous chunk's behaviour: ``behaviours`` (their number; 0 when none was looked for),
    ``reason`` (why there is no share, or ``None``), ``prev_behaviour`` and per run ``stay_<name>``,
    ``stay_<name>_low``, ``stay_<name>_high`` (Wilson 95 %), ``stay_<name>_n`` and ``behaviour_counts_<name>``
    (samples per behaviour). No share where there is one behaviour."""
    found = find_behaviours(plain_chunks, prev_valid)
    out: dict = {"behaviours": found.count, "plain_samples": found.samples, "reason": found.reason}
    if found.reason is None and found.count == 1:
        out["reason"] = (
            f"the policy shows one behaviour at this observation ({found.samples} plain samples, gap statistic): "
            "every sample is in the previous chunk's behaviour, so no share is given"
        )
    if out["reason"] is not None:
        return out
    prev = np.asarray(prev_chunk, float).reshape(1, *np.shape(plain_chunks)[1:])
    own = int(found.membership(prev)[0])
    out["prev_behaviour"] = own
    for name, chunks in runs.items():
        labels = found.membership(chunks)
        stayed, n = int(np.sum(labels == own)), len(labels)
        low, high = metrics.wilson_interval(stayed, n)
        out[f"stay_{name}"] = stayed / n
        out[f"stay_{name}_low"], out[f"stay_{name}_high"], out[f"stay_{name}_n"] = low, high, n
        out[f"behaviour_counts_{name}"] = np.bincount(labels, minlength=found.count)
    return out
