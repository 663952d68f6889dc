"""Behaviours found among plain samples, and the share of samples that stay in the previous chunk's."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rtc.numerics import behaviours, metrics, seeds
from rtc.numerics.sampler import GuidanceSettings
from tests.conftest import random_policy

H, A = 8, 6
RNG = np.random.default_rng(5)


def _blobs(centres: np.ndarray, labels: np.ndarray, spread: float = 0.1) -> np.ndarray:
    return centres[labels] + spread * RNG.normal(size=(len(labels), H, A))


def test_two_separated_behaviours_are_found_and_shares_counted_by_nearest_behaviour():
    centres = np.stack([np.full((H, A), -1.0), np.full((H, A), 1.0)])
    plain_labels = np.arange(20) % 2
    plain = _blobs(centres, plain_labels)
    prev = centres[0] + 0.1 * RNG.normal(size=(H, A))
    rtc = _blobs(centres, np.r_[np.zeros(17, int), np.ones(3, int)])
    found = behaviours.find_behaviours(plain, H)
    assert found.count == 2 and found.reason is None
    np.testing.assert_array_equal(found.membership(plain) == found.membership(plain[:1])[0], plain_labels == 0)
    shares = behaviours.stay_shares(plain, prev, H, {"plain": plain, "rtc": rtc})
    assert shares["reason"] is None and shares["behaviours"] == 2
    assert shares["stay_plain"] == pytest.approx(0.5) and shares["stay_plain_n"] == 20
    assert shares["stay_rtc"] == pytest.approx(17 / 20) and shares["stay_rtc_n"] == 20
    low, high = metrics.wilson_interval(17, 20)
    assert (shares["stay_rtc_low"], shares["stay_rtc_high"]) == pytest.approx((low, high))
    assert sorted(shares["behaviour_counts_rtc"]) == [3, 17]


def test_three_equidistant_behaviours_in_sixteen_samples_are_three():
    """Where k = 2 is no better than k = 1 (three behaviours at similar distances), the global-max rule still finds
    three (Tibshirani's first-k rule stops at one here)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, H, A))
    labels = rng.integers(3, size=16)
    chunks = centres[labels] + 0.2 * rng.normal(size=(16, H, A))
    found = behaviours.find_behaviours(chunks, H)
    assert found.count == 3
    assert sorted(np.bincount(found.membership(chunks))) == sorted(np.bincount(labels))


def test_only_the_previous_chunks_planned_actions_decide_membership():
    """Behaviours that differ only after prev_valid (the previous chunk's zero padding) are one behaviour there."""
    centres = np.zeros((2, H, A))
    centres[1, 4:] = 3.0
    plain = _blobs(centres, np.arange(24) % 2)
    assert behaviours.find_behaviours(plain, H).count == 2
    assert behaviours.find_behaviours(plain, 4).count == 1


@pytest.mark.parametrize("shape", ["round", "elongated"])
def test_one_behaviour_gives_no_share(shape):
    """A unimodal cloud, round or stretched along one direction (where a silhouette threshold would split it)."""
    if shape == "round":
        plain = RNG.normal(size=(32, H, A))
    else:
        plain = np.outer(RNG.normal(size=32), RNG.normal(size=H * A)).reshape(32, H, A)
        plain += 0.01 * RNG.normal(size=plain.shape)
    shares = behaviours.stay_shares(plain, plain[0], H, {"plain": plain})
    assert shares["behaviours"] == 1 and "one behaviour" in shares["reason"]
    assert not any(key.startswith("stay_") for key in shares)


def test_too_few_samples_or_no_planned_action_give_no_share():
    plain = RNG.normal(size=(behaviours.MIN_SAMPLES - 1, H, A))
    shares = behaviours.stay_shares(plain, plain[0], H, {"plain": plain})
    assert "too few" in shares["reason"] and "stay_plain" not in shares
    plain = RNG.normal(size=(16, H, A))
    assert "no planned action" in behaviours.stay_shares(plain, plain[0], 0, {"plain": plain})["reason"]


@pytest.mark.slow
def test_a_unimodal_policy_shows_one_behaviour_and_no_share():
    """A real (small, randomly initialised) flow policy maps noise smoothly to one cloud of chunks."""
    policy = random_policy()
    obs = jax.random.normal(jax.random.key(1), (33, 10))[:1].repeat(33, axis=0)
    chunks = np.asarray(policy.action(jax.random.key(99), obs, 6))  # 33 plain samples at one observation
    membership = behaviours.stay_shares(chunks[1:], chunks[0], H, {"plain": chunks[1:]})
    assert membership["behaviours"] == 1 and "one behaviour" in membership["reason"]
    assert "stay_plain" not in membership


@pytest.mark.slow
def test_the_multimodal_demo_policy_keeps_its_behaviour_under_rtc():
    """The demo policy (push, pull, wave) in the paper's first block: plain samples often land in another
    behaviour than the previous chunk's, RTC samples rarely do."""
    from rtc.experiments import protocol
    from rtc.io import levels
    from rtc.io.checkpoints import load_policy, read_run
    from tests.conftest import DEMO_RUN

    policy = load_policy(read_run(DEMO_RUN).checkpoint(-1, "worlds_l_grasp_easy"))
    level = levels.load_level(levels.resolve_level_path("worlds/l/grasp_easy.json"))
    situation = protocol.make_situation("same-observation", policy, level, 10, 4, jax.random.key(7))
    guidance = GuidanceSettings.create(2, 4, "exp", 5.0, 8)
    prev = situation.prev_action_chunk
    result = seeds.seed_batch(policy, situation.obs, prev, guidance, list(range(32)), 10, prev_valid=8)
    membership = seeds.behaviour_membership(result)
    assert membership["reason"] is None and membership["behaviours"] >= 2
    assert membership["stay_plain_n"] == membership["stay_rtc_n"] == 32
    assert membership["stay_rtc"] > membership["stay_plain"]
    assert membership["stay_rtc_low"] > membership["stay_plain_high"]  # the intervals do not overlap
    for name in ("plain", "rtc"):
        assert membership[f"stay_{name}_low"] <= membership[f"stay_{name}"] <= membership[f"stay_{name}_high"]
