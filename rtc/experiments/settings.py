"""Every setting a user chooses, declared once: four frozen dataclasses whose fields carry their default, accepted
range, help, URL key, flags and widget (``rtc.experiments.fields.Spec`` in the field's metadata).

- ``RTCSettings``: one open-loop inspection (what is run: schedule, d, s, flow steps, w_max, seed, batch, situation);
- ``LookSettings``: what to look at (batch element, horizon index, action dimensions; recorded traces too);
- ``RolloutSettings``: one closed-loop evaluation (a point of a sweep);
- ``SweepSettings``: which points a sweep evaluates, with the paper's defaults (``rtc-sweep``, the Sweep page and
  the library share them).

Everything else iterates the fields (``fields.settings_of``): the app's ``View`` (``rtc.app.state``: an
``RTCSettings`` and a ``LookSettings``), URL parsing and writing, the sidebar widgets (``pages/_widgets.py``), the
command-line flags (``rtc.commands.flags``), validation (``.validate``), descriptions and file names. Adding a
setting means adding a field. Named presets are ``INSPECTION_PRESETS`` and ``SWEEP_PRESETS``.

Plain Python (the schedule and method names come from ``rtc.numerics.names``, which imports neither jax nor flax),
so command lines build their parsers cheaply.
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Any

from rtc.errors import SettingsError
from rtc.experiments.fields import Bounds, Derived, Spec, by_name, setting, settings_of, validate
from rtc.numerics.names import METHODS, SCHEDULES

MAX_SEED = 2**31 - 1

# ---------------------------------------------------------------------------------------------
# The paper's timing and the open-loop situations (pure; ``rtc.experiments.protocol`` re-exports them)


def default_timing(chunk_size: int) -> tuple[int, int]:
    """A default ``(d, s)`` inside the paper's range ``max(1, d) <= s <= H - d`` where the schedules differ.

    ``d = max(1, H // 4)`` and ``s = max(1, H // 2)``, so the guided prefix ``H - s`` extends past the
    delay and the decaying part of the weights is not empty (H = 8: d = 2, s = 4, weights on 0..3).
    """
    h = int(chunk_size)
    if h < 2:
        return 0, 1
    return min(max(1, h // 4), h - 1), max(1, h // 2)


# The situations an open-loop inspection can put the sampler in, with the one sentence that labels each.
SITUATIONS: dict[str, str] = {
    "same-observation": (
        "The paper's first block: the previous chunk is a plain sample (other noise) at the same observation, "
        "unshifted (index i of both chunks is the same time step; all H actions planned, none executed yet); a "
        "multimodal policy's next plain sample may pick another behaviour, RTC should keep it."
    ),
    "protocol": (
        "Second block: the first chunk's first s actions were executed open loop (no action noise) from the "
        "level's reset, and the new chunk is sampled at the observation reached, against the first chunk's "
        "remaining H − s actions shifted to the front and zero-padded, as later blocks of rollouts and sweeps do."
    ),
}
DEFAULT_SITUATION = "same-observation"


def _weight_stem(value: float) -> str:
    return "w" + f"{value:g}".replace(".", "p")


_H = Derived(lambda b: b.chunk_size, "H")
_H_MINUS_1 = Derived(lambda b: b.chunk_size - 1, "H - 1")
_S_LOW = Derived(lambda b: max(1, b.delay or 0), "max(1, d)", show_name=True)
_BATCH_MINUS_1 = Derived(lambda b: b.batch_size - 1, "batch size - 1")
_A_MINUS_1 = Derived(lambda b: b.action_dim - 1, "A - 1")

# ---------------------------------------------------------------------------------------------
# Settings that inspections and rollouts both have (each class gives its own default)

DELAY = Spec(
    "Inference delay d",
    "Actions frozen from the previous chunk while inference runs.",
    low=0,
    high=_H,
    policy_default=Derived(
        lambda b: default_timing(b.chunk_size)[0], "max(1, H // 4) for the policy's chunk size H (2 for H = 8)"
    ),
    url="d",
    flag="--config.inference-delay",
    widget="number",
    called="inference delay d",
    note=lambda b: " (chunk size)",
    describe="d={}",
    stem=lambda v: f"d{v}",
)
HORIZON = Spec(
    "Execute horizon s",
    "Actions executed per chunk; the guided prefix is H - s.",
    low=_S_LOW,
    high=_H,
    policy_default=Derived(
        lambda b: default_timing(b.chunk_size)[1],
        "H // 2 (4 for H = 8), inside the paper's range max(1, d) <= s <= H - d",
    ),
    url="s",
    flag="--config.execute-horizon",
    widget="number",
    called="execute horizon s",
    note=lambda b: f" (it must cover the delay d={b.delay} and fit in the chunk of {b.chunk_size})",
    resets_with=("inference_delay",),
    describe="s={}",
    stem=lambda v: f"s{v}",
)
FLOW_STEPS = Spec(
    "Flow steps",
    "Euler steps from noise to data. A new value compiles once.",
    low=1,
    high=1000,
    app_high=200,
    url="steps",
    flag="--config.num-flow-steps",
    sweep_flag="--flow-steps",
    widget="number",
    describe="{} flow steps",
    stem=lambda v: f"n{v}",
)
MAX_WEIGHT = Spec(
    "Max guidance weight",
    "Clip for the guidance weight (w_max).",
    low=0.0,
    app_high=100.0,
    url="w",
    flag="--config.max-guidance-weight",
    widget="number",
    step=0.5,
    describe="w_max={:g}",
    stem=_weight_stem,
)
SEED = Spec(
    "Seed",
    "Noise seed.",
    low=0,
    high=MAX_SEED,
    url="seed",
    flag="--seed",
    sweep_flag="--seed",
    widget="number",
    describe="seed {}",
    stem=lambda v: f"seed{v}",
)


# ---------------------------------------------------------------------------------------------
# An open-loop inspection, and what to look at


@dataclasses.dataclass(frozen=True)
class RTCSettings:
    """What the user chooses for one inspection. ``inference_delay``/``execute_horizon`` left at ``None`` take the
    default for the policy's chunk size (``default_timing``: d = 2, s = 4 for H = 8, inside the paper's range)."""

    prefix_attention_schedule: str = setting(
        "exp",
        Spec(
            "Prefix schedule",
            "How guidance weights decay over the prefix: exp (paper), linear, ones (whole prefix), zeros (hard mask).",
            choices=SCHEDULES,
            url="schedule",
            flag="--config.prefix-attention-schedule",
            widget="select",
            describe="{} schedule",
            stem=str,
        ),
    )
    inference_delay: int | None = setting(None, DELAY)
    execute_horizon: int | None = setting(None, HORIZON)
    num_flow_steps: int = setting(20, FLOW_STEPS)
    max_guidance_weight: float = setting(5.0, MAX_WEIGHT)
    seed: int = setting(0, SEED)
    batch_size: int = setting(
        16,
        Spec(
            "Batch size",
            "Samples drawn from different noise for the same situation.",
            low=1,
            high=4096,
            app_high=64,
            url="batch",
            flag="--config.batch-size",
            widget="number",
            describe="batch {}",
        ),
    )
    situation: str = setting(
        DEFAULT_SITUATION,
        Spec(
            "Situation",
            "What the sampler is given. " + " ".join(f"{name}: {text}" for name, text in SITUATIONS.items()),
            choices=tuple(SITUATIONS),
            url="situation",
            flag="--situation",
            widget="radio",
            captions=SITUATIONS,
            describe="{} situation",
            stem=lambda v: "" if v == "protocol" else "sameobs",
        ),
    )

    def for_chunk_size(self, chunk_size: int) -> RTCSettings:
        """These settings with the settings left at ``None`` (delay, execute horizon) filled in for chunks of
        ``chunk_size``."""
        bounds = Bounds(chunk_size=chunk_size)
        filled = {s.name: s.default_for(bounds) for s in settings_of(RTCSettings) if getattr(self, s.name) is None}
        return dataclasses.replace(self, **filled)

    @classmethod
    def tracking_doc_preset(cls, **overrides: Any) -> RTCSettings:
        """The tracking documentation's example (d=3, s=6, 20 steps, w_max=5): outside the paper's range."""
        return dataclasses.replace(INSPECTION_PRESETS["tracking-doc"].settings, **overrides)

    def validate(self, chunk_size: int) -> list[str]:
        """Raise ``SettingsError`` naming a refused value and what is accepted (each field's check, in order);
        return warnings."""
        if self.inference_delay is None or self.execute_horizon is None:
            return self.for_chunk_size(chunk_size).validate(chunk_size)
        validate(self, Bounds(chunk_size=chunk_size))
        return timing_warnings(self.inference_delay, self.execute_horizon, chunk_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LookSettings:
    """What the figures show of an inspection or a recorded trace (nothing is re-run when it changes)."""

    batch_index: int = setting(
        0,
        Spec(
            "Batch element",
            "Which sample of the batch the figures show.",
            low=0,
            high=_BATCH_MINUS_1,
            url="b",
            widget="number",
            called="batch element",
            note=lambda b: f" (batch size {b.batch_size})",
        ),
    )
    horizon_index: int = setting(
        0,
        Spec(
            "Horizon index h",
            "Which action of the chunk the step-by-step figures follow (0 = next to execute).",
            low=0,
            high=_H_MINUS_1,
            url="h",
            widget="number",
            called="horizon index",
            note=lambda b: f" (chunk size {b.chunk_size})",
        ),
    )
    action_dim_indices: tuple[int, ...] = setting(
        (0, 1, 2),
        Spec(
            "Action dimensions",
            "Which action dimensions to plot.",
            low=0,
            high=_A_MINUS_1,
            policy_default=Derived(lambda b: tuple(range(min(3, b.action_dim))), "0 1 2 (the first three)"),
            url="dims",
            flag="--config.action-dim-indices",
            metavar="INDEX",
            widget="multiselect",
            called="action dimension",
            note=lambda b: f" (the policy has {b.action_dim})",
        ),
    )

    def validate(self, chunk_size: int, action_dim: int, batch_size: int) -> None:
        validate(self, Bounds(chunk_size, action_dim, batch_size))


# The sidebar's sections: a heading and the settings class whose fields it shows.
SECTIONS: dict[str, tuple[str, type]] = {
    "settings": ("RTC settings", RTCSettings),
    "look": ("What to look at", LookSettings),
}


# ---------------------------------------------------------------------------------------------
# Closed loop: one rollout, and a sweep of them


@dataclasses.dataclass(frozen=True)
class RolloutSettings:
    """What a closed-loop evaluation runs; defaults follow the paper (5 flow steps, action noise 0.1, 256 steps,
    BID with N = 16)."""

    method: str = setting(
        "rtc_exp", Spec("Method", "How each chunk is produced (rtc.numerics.methods).", choices=METHODS)
    )
    inference_delay: int = setting(default_timing(8)[0], DELAY)
    execute_horizon: int = setting(default_timing(8)[1], HORIZON)
    num_episodes: int = setting(
        1, Spec("Episodes", "Episodes per point.", low=1, high=65536, sweep_flag="--episodes", widget="number")
    )
    episode_steps: int = setting(
        256,
        Spec(
            "Episode steps",
            "Environment steps per episode.",
            low=1,
            high=4096,
            sweep_flag="--episode-steps",
            widget="number",
        ),
    )
    num_flow_steps: int = setting(5, FLOW_STEPS)
    max_guidance_weight: float = setting(5.0, MAX_WEIGHT)
    bid_samples: int = setting(
        16,
        Spec(
            "BID samples",
            "Candidate chunks per step for bidirectional decoding (N).",
            low=1,
            high=256,
            sweep_flag="--bid-samples",
            widget="number",
        ),
    )
    bid_k: int = setting(
        2,
        Spec(
            "BID k",
            "BID's forward term (method bid_forward only): the size of its positive set (the policy's k samples "
            "nearest the previous chunk) and negative set (the weak policy's k nearest); at most the BID sample "
            "count N.",
            low=1,
            high=256,
            sweep_flag="--bid-k",
            widget="number",
        ),
    )
    action_noise: float = setting(
        0.1,
        Spec(
            "Action noise",
            "Standard deviation of the Gaussian noise added to every executed action (the paper's 0.1).",
            low=0.0,
            high=1.0,
            sweep_flag="--action-noise",
            widget="number",
            step=0.05,
        ),
    )
    seed: int = setting(0, SEED)
    segment_steps: int = setting(
        32,
        Spec(
            "Segment steps",
            "Environment steps per compiled segment (progress is reported between segments).",
            low=1,
            high=4096,
        ),
    )

    def validate(self, chunk_size: int) -> list[str]:
        """Raise ``SettingsError`` naming a refused value and what is accepted (each field's check, in order);
        return warnings (``timing_warnings`` and the closed loop's)."""
        validate(self, Bounds(chunk_size=chunk_size))
        if self.method == "bid_forward" and self.bid_k > self.bid_samples:
            raise SettingsError(
                f"bid_k={self.bid_k} is out of range; accepted: 1..{self.bid_samples} (the BID sample count N)"
            )
        warnings = timing_warnings(self.inference_delay, self.execute_horizon, chunk_size)
        padded = chunk_size - self.execute_horizon
        if self.inference_delay > padded:
            warnings.append(
                f"closed loop: the previous chunk holds only H - s = {padded} planned actions, so the frozen "
                f"actions at indices {padded}..{self.inference_delay - 1} of every block after the first are its "
                "zero padding: zero actions are executed there (as in the paper's evaluation code)"
            )
        return warnings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


EXECUTE_HORIZON_RULES: dict[str, str] = {
    "all": "all: every s with max(1, d) ≤ s ≤ H − d (the paper's)",
    "min": "min: s = max(1, d) (the most reactive)",
    "max": "max: s = max(1, d, H − d) (the largest the paper sweeps)",
}


def execute_horizons_for(inference_delay: int, chunk_size: int, rule: str | int = "min") -> list[int]:
    """Execute horizons of one delay under ``rule``: ``all`` is the paper's range, every s with
    ``max(1, d) <= s <= H - d`` (at least ``max(1, d)``); a tuple of ints: those with ``max(1, d) <= s <= H``
    (possibly none); otherwise ``[execute_horizon_for(...)]``."""
    low = max(1, inference_delay)
    if rule == "all":
        return list(range(low, max(low, chunk_size - inference_delay) + 1))
    if isinstance(rule, (tuple, list)):
        return sorted({int(s) for s in rule if low <= int(s) <= chunk_size})
    return [execute_horizon_for(inference_delay, chunk_size, rule)]


def execute_horizon_for(inference_delay: int, chunk_size: int, rule: str | int = "min") -> int:
    """The execute horizon s of a sweep point. ``min``: ``max(1, d)`` (the most reactive choice, the
    default); ``max``: ``H - d`` (largest s the paper sweeps, at least ``max(1, d)``); an int: that s,
    which must satisfy ``max(1, d) <= s <= H``."""
    low = max(1, inference_delay)
    if rule == "min":
        return low
    if rule == "max":
        return max(low, chunk_size - inference_delay)
    if isinstance(rule, numbers.Integral) and not isinstance(rule, bool):
        if not low <= rule <= chunk_size:
            raise SettingsError(
                f"execute horizon {rule} is out of range for d={inference_delay}; accepted {low}..{chunk_size}"
            )
        return int(rule)
    raise SettingsError(f"execute_horizon_rule={rule!r} is not accepted; use 'min', 'max', 'all' or an integer")


@dataclasses.dataclass(frozen=True)
class SweepSettings:
    """Which points to evaluate, with the paper's defaults: naive, RTC (exp), hard masking and BID (N = 16),
    d = 0..4, every s of the paper's range, 2048 episodes of 256 steps, 5 flow steps, action noise 0.1, on every
    level. Each point is ``template`` with its method, delay and execute horizon replaced (``points``)."""

    methods: tuple[str, ...] = setting(
        ("naive", "rtc_exp", "hard_masking", "bid"),
        Spec(
            "Methods",
            "Methods to evaluate (rtc.numerics.methods).",
            choices=METHODS,
            sweep_flag="--methods",
            metavar="METHOD",
            widget="multiselect",
        ),
    )
    delays: tuple[int, ...] = setting(
        (0, 1, 2, 3, 4),
        Spec(
            "Inference delays d",
            "Inference delays to evaluate.",
            low=0,
            high=_H_MINUS_1,
            sweep_flag="--delays",
            metavar="D",
            widget="multiselect",
        ),
    )
    execute_horizon_rule: tuple[int, ...] | str = setting(
        "all",
        Spec(
            "Execute horizons s",
            "Execute horizons per delay: 'all' (every s with max(1,d) <= s <= H-d, the paper's), 'min' "
            "(s = max(1,d)), 'max' (s = max(1, d, H-d)) or integers (those with max(1,d) <= s <= H).",
            low=1,
            high=_H,
            words=tuple(EXECUTE_HORIZON_RULES),
            captions=EXECUTE_HORIZON_RULES,
            sweep_flag="--execute-horizons",
            metavar="S",
            widget="select",
        ),
    )
    template: RolloutSettings = RolloutSettings(num_episodes=2048)  # the settings every point shares
    levels: tuple[str, ...] = setting(
        (),
        Spec(
            "Levels",
            "Level keys (none: every level the checkpoint has a policy and a level file for; the app sweeps the "
            "sidebar's level).",
            sweep_flag="--levels",
            metavar="KEY",
        ),
    )

    def validate(self) -> None:
        """Check the methods, delays and execute horizons that can be checked before a policy is loaded."""
        if not self.methods or not self.delays:
            raise SettingsError("a sweep needs at least one method and one delay")
        validate(self, Bounds())

    def points(self, chunk_size: int) -> list[RolloutSettings]:
        """Rollout settings of every (method, delay, execute horizon) point, validated (the delays and execute
        horizons against the policy's chunk size: d in 0..H - 1, s in 1..H)."""
        self.validate()
        validate(self, Bounds(chunk_size=chunk_size))
        out = []
        for method in self.methods:
            for delay in self.delays:
                for horizon in execute_horizons_for(int(delay), chunk_size, self.execute_horizon_rule):
                    point = dataclasses.replace(
                        self.template, method=method, inference_delay=int(delay), execute_horizon=horizon
                    )
                    point.validate(chunk_size)
                    out.append(point)
        return out


# ---------------------------------------------------------------------------------------------
# Named presets


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named choice of settings: ``label`` and ``help`` as shown, the ``settings`` and, for a preset that sets
    only some fields (the app keeps the rest as chosen), their names in ``sets`` (empty: every field)."""

    label: str
    help: str
    settings: Any
    sets: tuple[str, ...] = ()

    def values(self) -> dict[str, Any]:
        """The fields this preset sets, by name (the policy-dependent ones may be ``None``: filled in later)."""
        names = self.sets or tuple(f.name for f in dataclasses.fields(self.settings))
        return {name: getattr(self.settings, name) for name in names}


_TIMING = ("prefix_attention_schedule", "inference_delay", "execute_horizon", "num_flow_steps", "max_guidance_weight")
INSPECTION_PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "Default (paper range)",
        "The defaults: d = max(1, H // 4), s = H // 2 (inside the paper's range), 20 flow steps, exp, w_max = 5.",
        RTCSettings(),
        _TIMING,
    ),
    "tracking-doc": Preset(
        "Tracking-doc example (d=3, s=6, 20 steps, w_max=5)",
        "The tracking documentation's d=3, s=6, 20 steps, w_max=5 (outside the paper's range).",
        RTCSettings(inference_delay=3, execute_horizon=6, num_flow_steps=20, max_guidance_weight=5.0),
        _TIMING,
    ),
}
# The tracking documentation's example by library name (``rtc.experiments.protocol`` re-exports it).
TRACKING_DOC_PRESET = {
    k: v for k, v in INSPECTION_PRESETS["tracking-doc"].values().items() if k != "prefix_attention_schedule"
}

SWEEP_PRESETS: dict[str, Preset] = {
    "paper": Preset(
        "Paper",
        "The paper's grid (the defaults): naive, RTC (exp), hard masking, BID (N = 16); d = 0..4; every s with "
        "max(1,d) <= s <= H-d; 2048 episodes of 256 steps; action noise 0.1; every level (12 in the paper).",
        SweepSettings(),
    ),
    "quick": Preset(
        "Quick",
        "naive and RTC (exp), d = 0, 2, 4, s = max(1,d), 64 episodes of 256 steps, on worlds_l_grasp_easy: 6 "
        "points; rtc-sweep runs/demo --preset quick took 4 min 3 s on the shared 2-core development machine "
        "(JAX compilation cache warm; a cold one adds about 30 s).",
        SweepSettings(
            methods=("naive", "rtc_exp"),
            delays=(0, 2, 4),
            execute_horizon_rule="min",
            template=RolloutSettings(num_episodes=64),
            levels=("worlds_l_grasp_easy",),
        ),
    ),
}


# ---------------------------------------------------------------------------------------------
# The checks that involve more than one setting


def check_situation(situation: str) -> str:
    return by_name(RTCSettings)["situation"].check(situation)


def timing_warnings(inference_delay: int, execute_horizon: int, chunk_size: int) -> list[str]:
    """Why accepted timing lies outside the paper's range ``s <= H - d`` (empty when inside it)."""
    if execute_horizon <= chunk_size - inference_delay:
        return []
    return [
        f"execute horizon s={execute_horizon} > chunk size - delay = {chunk_size - inference_delay}: the prefix "
        f"horizon H - s = {chunk_size - execute_horizon} is shorter than the delay d={inference_delay}, so the "
        f"frozen actions at indices {chunk_size - execute_horizon}..{inference_delay - 1} get no guidance "
        "(in closed loop they execute the previous chunk's zero padding)"
    ]


def validate_timing(inference_delay: int, execute_horizon: int, chunk_size: int) -> list[str]:
    """Check ``0 <= d <= s <= H`` (raise ``SettingsError`` naming the value) and return warnings.

    The paper sweeps ``s <= H - d``; beyond it the prefix horizon ``H - s`` is shorter than the
    delay, so frozen actions from index ``H - s`` on get no guidance, and in closed loop they execute
    the previous chunk's zero padding. That is accepted with a warning.
    """
    bounds = Bounds(chunk_size=chunk_size, delay=inference_delay)
    rows = by_name(RTCSettings)
    rows["inference_delay"].check(inference_delay, bounds)
    rows["execute_horizon"].check(execute_horizon, bounds)
    return timing_warnings(inference_delay, execute_horizon, chunk_size)
