"""Numbers from the paper's stack: the fixture run against upstream_small_reference.npz (reference material).

Every tracked array (``v_t`` included) and the action are compared to 2e-6 absolute. That holds because
the time embedding keeps the reference's order of operations (``(1 / period) * 2 pi``); see
``rtc.numerics.model.sinusoidal_time_embedding``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

from rtc.io.checkpoints import load_policy
from rtc.numerics.sampler import SCHEDULES

CASES = [(epoch, key) for epoch in (0, 3) for key in ("worlds_l_grasp_easy", "worlds_l_hard_lunar_lander")]
ATOL = 2e-6


@pytest.fixture(scope="module")
def reference():
    from tests.conftest import shared_path

    return np.load(shared_path("fixtures", "upstream_small_reference.npz"))


@pytest.mark.parametrize(("epoch", "key"), CASES)
def test_naive_sample_matches_the_paper_stack(reference, fixture_run, legacy_threefry, epoch, key):
    policy = load_policy(fixture_run / str(epoch) / "policies" / f"{key}.pkl")
    prefix = f"{epoch}/{key}/"
    action = policy.action(jax.random.key(11), reference[prefix + "obs"], 10)
    np.testing.assert_allclose(action, reference[prefix + "naive_n10_key11"], rtol=0, atol=ATOL)


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize(("epoch", "key"), CASES)
def test_rtc_and_every_tracked_array_match_the_paper_stack(
    reference, fixture_run, legacy_threefry, epoch, key, schedule
):
    policy = load_policy(fixture_run / str(epoch) / "policies" / f"{key}.pkl")
    prefix = f"{epoch}/{key}/"
    case = prefix + f"rtc_{schedule}_n10_d2_s5_w5_key12/"
    obs, prev = reference[prefix + "obs"], reference[prefix + "naive_n10_key11"]
    action, tracked = policy.realtime_action(jax.random.key(12), obs, 10, prev, 2, 8 - 5, schedule, 5.0, True)
    np.testing.assert_allclose(action, reference[case + "action"], rtol=0, atol=ATOL)
    for name in ("x_t", "v_t", "correction", "error", "x_1_pred", "time"):
        np.testing.assert_allclose(tracked[name], reference[case + name], rtol=0, atol=ATOL, err_msg=name)
