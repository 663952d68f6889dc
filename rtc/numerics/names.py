"""The names the samplers and methods answer to, without importing jax or flax (settings and command lines read
them while building their parsers): ``rtc.numerics.sampler`` and ``rtc.numerics.methods`` re-export them."""

from __future__ import annotations

# Prefix-weight schedules (``rtc.numerics.sampler``), in index order.
SCHEDULES: tuple[str, ...] = ("exp", "linear", "ones", "zeros")

# How a chunk is produced (``rtc.numerics.methods``), in index order.
METHODS: tuple[str, ...] = (
    "naive",
    "rtc_exp",
    "rtc_linear",
    "rtc_ones",
    "hard_masking",
    "bid",
    "rtc_exp_jacobian_free",
    "rtc_linear_jacobian_free",
    "rtc_ones_jacobian_free",
    "training_time_rtc",
    "bid_forward",
)
