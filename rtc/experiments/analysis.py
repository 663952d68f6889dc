"""The analysis pages' computations on top of one inspection: method comparison and many seeds.

Both reuse the inspection's observation and previous chunk; the comparison also reuses the RTC sample's
starting noise (``tracked["x_t"][0]``), so the naive row is the inspection's plain sample. Nothing here
imports streamlit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rtc.errors import SettingsError
from rtc.experiments.pipeline import Inspection
from rtc.numerics import methods, metrics, seeds
from rtc.numerics.model import FlowPolicy
from rtc.numerics.sampler import GuidanceSettings

MAX_BID_SAMPLES = 64
MAX_SEEDS = 256


@dataclasses.dataclass(frozen=True)
class MethodComparison:
    """Final chunks ``[B, H, A]`` per method from one noise, the previous chunk and the scoring table."""

    chunks: dict[str, np.ndarray]
    prev_chunk: np.ndarray
    inference_delay: int
    prefix_attention_horizon: int
    bid_samples: int
    rows: list[dict[str, Any]]
    jump_reason: str | None = None  # why the jump at d is undefined ("—" in the table); None when defined
    prev_valid: int | None = None  # planned actions in the previous chunk (H in the first block); None: p
    execute_horizon: int | None = None  # s: the chunk runs d <= i < s; None: not known

    @property
    def weights(self) -> np.ndarray:
        """The exp prefix weights every method is scored with ``[H]``."""
        horizon = self.prev_chunk.shape[-2]
        return methods.comparison_weights(self.inference_delay, self.prefix_attention_horizon, horizon)


def _timing(inspection: Inspection) -> tuple[int, int]:
    tracked = inspection.tracked
    return int(tracked["inference_delay"]), int(tracked["prefix_attention_horizon"])


def comparison_noise(inspection: Inspection, bid_samples: int) -> jax.Array:
    """Candidate noise ``[N, B, H, A]``: candidate 0 is the inspection's starting noise, the rest are
    BID's extra draws (from the inspection's seed, so they never depend on N)."""
    if not 1 <= bid_samples <= MAX_BID_SAMPLES:
        raise SettingsError(f"BID samples N={bid_samples} is out of range; accepted: 1..{MAX_BID_SAMPLES}")
    start = jnp.asarray(inspection.tracked["x_t"][0])
    extra = methods.candidate_noise(jax.random.key(inspection.settings.seed + 1), start.shape, bid_samples)
    return jnp.concatenate([start[None], extra[1:]])


def compare_inspection(
    policy: FlowPolicy,
    inspection: Inspection,
    bid_samples: int = 8,
    chosen: Sequence[str] | None = None,
    timing_repeats: int = 5,
    weak_policy: FlowPolicy | None = None,
    bid_k: int = methods.DEFAULT_BID_K,
) -> MethodComparison:
    """Every method in ``chosen`` (default: those the policy can run, ``methods.applicable_methods``) on the
    inspection's observation, previous chunk and starting noise, scored by ``methods.comparison_table``; each
    method's wall time per chunk is measured in the same call (same batch, after warm-up, methods timed in turn
    ``timing_repeats`` times; 0 skips timing). ``weak_policy`` and ``bid_k`` serve BID's forward term."""
    delay, prefix = _timing(inspection)
    prev = np.asarray(inspection.tracked["prev_action_chunk"])
    inputs = methods.MethodInputs(
        jnp.asarray(inspection.obs),
        jnp.asarray(prev),
        comparison_noise(inspection, bid_samples),
        delay,
        prefix,
        inspection.settings.max_guidance_weight,
        inspection.settings.num_flow_steps,
        weak_policy=weak_policy,
        bid_k=bid_k,
    )
    chosen = methods.applicable_methods(policy, weak_policy, delay) if chosen is None else chosen
    chunks = methods.compare_methods(policy, inputs, chosen)
    seconds = methods.time_methods(policy, inputs, chosen, repeats=timing_repeats) if timing_repeats > 0 else None
    last = inspection.last_executed_action
    valid = metrics.prev_valid_of(inspection.tracked)
    rows = methods.comparison_table(
        chunks, prev, delay, prefix, last_executed=last, seconds_per_chunk=seconds, prev_valid=valid
    )
    reason = metrics.boundary_jump_reason(delay, valid, prev.shape[-2], last is not None)
    execute = inspection.tracked.get("execute_horizon")
    execute = None if execute is None else int(execute)
    return MethodComparison(chunks, prev, delay, prefix, bid_samples, rows, reason, valid, execute)


def seeds_for_inspection(
    policy: FlowPolicy, inspection: Inspection, count: int, batch_index: int = 0, jacobian_free: bool = False
) -> dict[str, dict[str, np.ndarray]]:
    """RTC and plain runs (and Jacobian-free RTC runs if ``jacobian_free``) for seeds ``seed .. seed + count - 1``
    on batch element ``batch_index``'s observation and previous chunk (``seeds.seed_batch``), with the
    inspection's RTC settings."""
    if not 1 <= count <= MAX_SEEDS:
        raise SettingsError(f"number of seeds {count} is out of range; accepted: 1..{MAX_SEEDS}")
    settings = inspection.settings
    delay, prefix = _timing(inspection)
    guidance = GuidanceSettings.create(
        delay, prefix, settings.prefix_attention_schedule, settings.max_guidance_weight, policy.action_chunk_size
    )
    first = settings.seed
    return seeds.seed_batch(
        policy,
        inspection.obs[batch_index],
        inspection.tracked["prev_action_chunk"][batch_index],
        guidance,
        list(range(first, first + count)),
        settings.num_flow_steps,
        jacobian_free,
        prev_valid=metrics.prev_valid_of(inspection.tracked),
    )
