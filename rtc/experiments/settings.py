"""Every setting a user chooses, declared once: the table ``SETTINGS``.

Each row (``Setting``) says, for one setting: its library name (``RTCSettings`` / ``RolloutSettings`` field), its
name in the app's ``View``, its URL key, its ``rtc-visualize`` and ``rtc-sweep`` flags, its type, the range it
accepts (static, or derived from the policy: chunk size ``H``, action dim ``A``, batch size, delay ``d``), its
defaults (static or derived, e.g. ``default_timing(H)``), its label and help text, and the widget that shows it.
Everything else is derived from the table: URL parsing and writing (``rtc.app.state``), the sidebar widgets
(``streamlit_app.py``, ``pages/_traces.py``), the command-line flags (``rtc.commands``), validation
(``RTCSettings.validate``, ``RolloutSettings.validate``, the app's ``check_view``: one check per setting,
``Setting.check``), the one-line description and file names of a selection. Adding a setting means adding a row.

Plain Python apart from the schedule names (``rtc.numerics.sampler``), so command lines build their parsers
cheaply; the method names (``rtc.numerics.methods``, which imports flax) are read when first needed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rtc.errors import SettingsError
from rtc.numerics.sampler import SCHEDULES

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


# The tracking documentation's example (d = 3, s = 6, 20 flow steps, w_max = 5 with H = 8). It lies outside
# the paper's range (s > H - d): offered as a named preset, with its warning, never as a default.
TRACKING_DOC_PRESET = {"inference_delay": 3, "execute_horizon": 6, "num_flow_steps": 20, "max_guidance_weight": 5.0}

# The situations an open-loop inspection can put the sampler in, with the one sentence that labels each.
SITUATIONS: dict[str, str] = {
    "same-observation": (
        "Mode switch: the previous chunk is a plain sample from another seed at the same observation, "
        "shifted by s; a multimodal policy's next plain sample may pick another behaviour, RTC should keep it."
    ),
    "protocol": (
        "Second chunk: the first chunk's first s actions were executed open loop (no action noise) from the "
        "level's reset, and the new chunk is sampled at the observation reached, as rollouts and sweeps do."
    ),
}
DEFAULT_SITUATION = "same-observation"


# ---------------------------------------------------------------------------------------------
# Ranges and defaults that depend on the policy


@dataclasses.dataclass(frozen=True)
class Bounds:
    """What a range or a default may depend on: the policy's chunk size ``H`` and action dim ``A``, the batch size
    and the inference delay ``d`` (``None``: not known here, e.g. while building a command-line parser)."""

    chunk_size: int | None = None
    action_dim: int | None = None
    batch_size: int | None = None
    delay: int | None = None


@dataclasses.dataclass(frozen=True)
class Derived:
    """A bound or default computed from ``Bounds``; ``text`` names it where it is not known (help texts)."""

    compute: Callable[[Bounds], Any]
    text: str
    show_name: bool = False  # messages say "max(1, d)=2" rather than "2"
    before_policy: bool = False  # can be computed before a policy is loaded (a command line's default)

    def __call__(self, bounds: Bounds) -> Any:
        return self.compute(bounds)


_H = Derived(lambda b: b.chunk_size, "H")
_H_MINUS_1 = Derived(lambda b: b.chunk_size - 1, "H - 1")
_S_LOW = Derived(lambda b: max(1, b.delay or 0), "max(1, d)", show_name=True)
_BATCH_MINUS_1 = Derived(lambda b: b.batch_size - 1, "batch size - 1")
_A_MINUS_1 = Derived(lambda b: b.action_dim - 1, "A - 1")
_DEFAULT_DELAY = Derived(
    lambda b: default_timing(b.chunk_size)[0], "max(1, H // 4) for the policy's chunk size H (2 for H = 8)"
)
_DEFAULT_HORIZON = Derived(
    lambda b: default_timing(b.chunk_size)[1], "H // 2 (4 for H = 8), inside the paper's range max(1, d) <= s <= H - d"
)
_DEFAULT_DIMS = Derived(
    lambda b: tuple(range(3 if b.action_dim is None else min(3, b.action_dim))), "0 1 2", before_policy=True
)


# ---------------------------------------------------------------------------------------------
# One setting


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of the table (see the module docstring)."""

    name: str  # library name: the RTCSettings / RolloutSettings field (or the command line's for the rest)
    kind: type  # int, float, str (a choice) or tuple (of ints: action dimensions)
    label: str  # widget label
    help: str  # what it is; the accepted range and the default are added from the row
    default: Any  # value or Derived (the inspection's default: RTCSettings, View)
    field: str | None = None  # the app's View field
    url: str | None = None  # URL query key
    flag: str | None = None  # rtc-visualize flag
    sweep_flag: str | None = None  # rtc-sweep flag
    low: Any = None  # number or Derived (a number setting always has one)
    high: Any = None  # number or Derived; None: any finite value
    app_high: Any = None  # a tighter upper bound in the app (keeps it responsive); None: ``high``
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()  # a callable: read when first needed
    widget: str | None = None  # number | select | radio | multiselect; None: not a widget
    section: str = "settings"  # settings: what is run; look: what to look at (also for recorded traces)
    step: float = 1
    called: str = ""  # how messages name it (default: ``name``)
    note: Callable[[Bounds], str] | None = None  # appended to the accepted range in messages
    resets_with: tuple[str, ...] = ()  # View fields reset with it when a link's value is refused
    rollout_default: Any = None  # RolloutSettings' default, where it has the setting (None: not a rollout setting)
    sweep_default: Any = None  # rtc-sweep's default (None: ``rollout_default``)
    captions: Mapping[str, str] | None = None  # a sentence shown under the widget for each choice
    describe: str | None = None  # its part of a selection's one-line description ("{} flow steps")
    stem: Callable[[Any], str] | None = None  # its part of a selection's file name

    @property
    def options(self) -> tuple[str, ...]:
        """The accepted choices (empty for a number)."""
        return self.choices() if callable(self.choices) else self.choices

    @property
    def message_name(self) -> str:
        return self.called or self.name

    def default_for(self, bounds: Bounds = Bounds()) -> Any:
        return self.default(bounds) if isinstance(self.default, Derived) else self.default

    def bounds(self, bounds: Bounds = Bounds(), app: bool = False) -> tuple[Any, Any]:
        """The accepted ``(low, high)`` for known ``bounds`` (``app``: the app's tighter limit)."""
        high = self.app_high if app and self.app_high is not None else self.high
        return _value(self.low, bounds), _value(high, bounds)

    def range_text(self, bounds: Bounds | None = None, app: bool = False) -> str:
        """What is accepted, in words: ``1..1000``, ``max(1, d)=2..8``, ``0..H``, ``one of exp, linear``."""
        if self.options:
            return f"one of {', '.join(self.options)}"
        high_bound = self.app_high if app and self.app_high is not None else self.high
        if self.low is not None and high_bound is None:
            return f"a finite value >= {_number(self.low)}"

        def text(bound: Any) -> str:
            if not isinstance(bound, Derived):
                return _number(bound)
            if bounds is None:
                return bound.text
            value = _number(bound(bounds))
            return f"{bound.text}={value}" if bound.show_name else value

        return f"{text(self.low)}..{text(high_bound)}"

    def check(self, value: Any, bounds: Bounds = Bounds(), app: bool = False, called: str = "") -> Any:
        """``value`` if accepted, else ``SettingsError`` naming it and what is accepted (``called``: its name there)."""
        name = called or self.message_name
        name += " " if name.startswith("-") else "="  # a flag is written "--flag value", a setting "name=value"
        if self.options:
            if value not in self.options:
                raise SettingsError(f"{name}{value!r} is not accepted; choose one of {', '.join(self.options)}")
            return value
        if self.kind is tuple:
            if not value:
                low, high = self.bounds(bounds, app)
                raise SettingsError(f"no {name[:-1]} chosen; pick at least one of {low}..{high}")
            for item in value:
                self._check_number(item, bounds, app, name)
            return value
        return self._check_number(value, bounds, app, name)

    def _check_number(self, value: Any, bounds: Bounds, app: bool, name: str) -> Any:
        low, high = self.bounds(bounds, app)
        if high is None:
            if not (math.isfinite(value) and value >= low):
                raise SettingsError(f"{name}{value} is not accepted; use a finite value >= {_number(low)}")
            return value
        if not low <= value <= high:
            note = self.note(bounds) if self.note else ""
            if app and self.app_high is not None and value > high:
                note += f" (the app's limit; the library accepts up to {_number(_value(self.high, bounds))})"
            raise SettingsError(f"{name}{value} is out of range; accepted: {self.range_text(bounds, app)}{note}")
        return value

    def parse(self, text: str, called: str = "") -> Any:
        """A value from text (a URL parameter); ``SettingsError`` when it is not of the setting's type."""
        name = called or self.message_name
        if self.kind is str:
            return self.check(text, called=name)
        if self.kind is tuple:
            return tuple(dict.fromkeys(_parse_int(p.strip(), name) for p in text.split(",") if p.strip()))
        if self.kind is float:
            try:
                return float(text)
            except ValueError:
                raise SettingsError(f"{name}={text!r} is not a number") from None
        return _parse_int(text, name)

    def format(self, value: Any) -> str:
        """The text of a value (URL parameters): the inverse of ``parse``."""
        if self.kind is tuple:
            return ",".join(str(v) for v in value)
        if self.kind is float:
            short = f"{value:g}"  # "5", "2.5": short links; the exact repr where that would round
            return short if float(short) == value else repr(float(value))
        return str(value)

    def help_text(self, bounds: Bounds | None = None, app: bool = False, default: Any = None) -> str:
        """The help text with what is accepted and, when given, a default (a value or ``Derived``)."""
        parts = [self.help]
        if not self.options:
            parts.append(f"Accepted: {self.range_text(bounds, app)}.")
        if default is not None:
            parts.append(f"Default: {default.text if isinstance(default, Derived) else self.format(default)}.")
        return " ".join(parts)


def _value(bound: Any, bounds: Bounds) -> Any:
    return bound(bounds) if isinstance(bound, Derived) else bound


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _parse_int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not an integer") from None


def _methods() -> tuple[str, ...]:
    from rtc.numerics.methods import METHODS  # imports flax: only when a method is checked

    return METHODS


def _weight_stem(value: float) -> str:
    return "w" + f"{value:g}".replace(".", "p")


# ---------------------------------------------------------------------------------------------
# The table (its order is the order of the app's View, of its widgets, of descriptions and file names)

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "prefix_attention_schedule",
        str,
        "Prefix schedule",
        "How guidance weights decay over the prefix: exp (paper), linear, ones (whole prefix), zeros (hard mask).",
        "exp",
        field="schedule",
        url="schedule",
        flag="--config.prefix-attention-schedule",
        choices=SCHEDULES,
        widget="select",
        describe="{} schedule",
        stem=str,
    ),
    Setting(
        "inference_delay",
        int,
        "Inference delay d",
        "Actions frozen from the previous chunk while inference runs.",
        _DEFAULT_DELAY,
        field="delay",
        url="d",
        flag="--config.inference-delay",
        low=0,
        high=_H,
        widget="number",
        called="inference delay d",
        note=lambda b: " (chunk size)",
        rollout_default=default_timing(8)[0],
        describe="d={}",
        stem=lambda v: f"d{v}",
    ),
    Setting(
        "execute_horizon",
        int,
        "Execute horizon s",
        "Actions executed per chunk; the guided prefix is H - s.",
        _DEFAULT_HORIZON,
        field="execute_horizon",
        url="s",
        flag="--config.execute-horizon",
        low=_S_LOW,
        high=_H,
        widget="number",
        called="execute horizon s",
        note=lambda b: f" (it must cover the delay d={b.delay} and fit in the chunk of {b.chunk_size})",
        resets_with=("delay",),
        rollout_default=default_timing(8)[1],
        describe="s={}",
        stem=lambda v: f"s{v}",
    ),
    Setting(
        "num_flow_steps",
        int,
        "Flow steps",
        "Euler steps from noise to data. A new value compiles once.",
        20,
        field="flow_steps",
        url="steps",
        flag="--config.num-flow-steps",
        sweep_flag="--flow-steps",
        low=1,
        high=1000,
        app_high=200,
        widget="number",
        rollout_default=5,
        describe="{} flow steps",
        stem=lambda v: f"n{v}",
    ),
    Setting(
        "max_guidance_weight",
        float,
        "Max guidance weight",
        "Clip for the guidance weight (w_max).",
        5.0,
        field="max_guidance_weight",
        url="w",
        flag="--config.max-guidance-weight",
        low=0.0,
        app_high=100.0,
        widget="number",
        step=0.5,
        rollout_default=5.0,
        describe="w_max={:g}",
        stem=_weight_stem,
    ),
    Setting(
        "seed",
        int,
        "Seed",
        "Noise seed.",
        0,
        field="seed",
        url="seed",
        flag="--seed",
        sweep_flag="--seed",
        low=0,
        high=MAX_SEED,
        widget="number",
        rollout_default=0,
        describe="seed {}",
        stem=lambda v: f"seed{v}",
    ),
    Setting(
        "batch_size",
        int,
        "Batch size",
        "Samples drawn from different noise for the same situation.",
        1,
        field="batch_size",
        url="batch",
        flag="--config.batch-size",
        low=1,
        high=4096,
        app_high=64,
        widget="number",
        describe="batch {}",
    ),
    Setting(
        "batch_index",
        int,
        "Batch element",
        "Which sample of the batch the figures show.",
        0,
        field="batch_index",
        url="b",
        low=0,
        high=_BATCH_MINUS_1,
        widget="number",
        section="look",
        called="batch element",
        note=lambda b: f" (batch size {b.batch_size})",
    ),
    Setting(
        "horizon_index",
        int,
        "Horizon index h",
        "Which action of the chunk the step-by-step figures follow (0 = next to execute).",
        0,
        field="horizon_index",
        url="h",
        low=0,
        high=_H_MINUS_1,
        widget="number",
        section="look",
        called="horizon index",
        note=lambda b: f" (chunk size {b.chunk_size})",
    ),
    Setting(
        "action_dim_indices",
        tuple,
        "Action dimensions",
        "Which action dimensions to plot.",
        _DEFAULT_DIMS,
        field="dims",
        url="dims",
        flag="--config.action-dim-indices",
        low=0,
        high=_A_MINUS_1,
        widget="multiselect",
        section="look",
        called="action dimension",
        note=lambda b: f" (the policy has {b.action_dim})",
    ),
    Setting(
        "situation",
        str,
        "Situation",
        "What the sampler is given. " + " ".join(f"{name}: {text}" for name, text in SITUATIONS.items()),
        DEFAULT_SITUATION,
        field="situation",
        url="situation",
        flag="--situation",
        choices=tuple(SITUATIONS),
        widget="radio",
        captions=SITUATIONS,
        describe="{} situation",
        stem=lambda v: "" if v == "protocol" else "sameobs",
    ),
    # closed-loop rollouts and sweeps only
    Setting(
        "method",
        str,
        "Method",
        "How each chunk is produced (rtc.numerics.methods).",
        None,
        choices=_methods,
        rollout_default="rtc_exp",
    ),
    Setting(
        "num_episodes",
        int,
        "Episodes",
        "Episodes per point.",
        None,
        sweep_flag="--episodes",
        low=1,
        high=65536,
        rollout_default=1,
        sweep_default=2048,
    ),
    Setting(
        "episode_steps",
        int,
        "Episode steps",
        "Environment steps per episode.",
        None,
        sweep_flag="--episode-steps",
        low=1,
        high=4096,
        rollout_default=256,
    ),
    Setting(
        "bid_samples",
        int,
        "BID samples",
        "Candidate chunks per step for bidirectional decoding (N).",
        None,
        sweep_flag="--bid-samples",
        low=1,
        high=256,
        rollout_default=4,
        sweep_default=16,
    ),
    Setting(
        "action_noise",
        float,
        "Action noise",
        "Standard deviation of the Gaussian noise added to executed actions.",
        None,
        low=0.0,
        rollout_default=0.1,
    ),
    Setting(
        "segment_steps",
        int,
        "Segment steps",
        "Environment steps per compiled segment (progress is reported between segments).",
        None,
        low=1,
        high=4096,
        rollout_default=32,
    ),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
SECTIONS = {"settings": "RTC settings", "look": "What to look at"}  # the sidebar's headings
VIEW: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.field)  # the app's View, in order
BY_FIELD: dict[str, Setting] = {s.field: s for s in VIEW}
LOOK: tuple[Setting, ...] = tuple(s for s in VIEW if s.section == "look")  # what to look at (traces too)
# An open-loop inspection's settings (RTCSettings) and a closed-loop rollout's (RolloutSettings).
INSPECTION: tuple[Setting, ...] = tuple(s for s in VIEW if s.section == "settings")
ROLLOUT: tuple[Setting, ...] = tuple(s for s in SETTINGS if s.rollout_default is not None)


def inspection_defaults() -> dict[str, Any]:
    """RTCSettings' field defaults (delay and execute horizon: ``None``, filled in for the policy's chunk size)."""
    return {s.name: None if isinstance(s.default, Derived) else s.default for s in INSPECTION}


def rollout_defaults() -> dict[str, Any]:
    return {s.name: s.rollout_default for s in ROLLOUT}


def check_values(values: Mapping[str, Any], settings: Iterable[Setting], bounds: Bounds, app: bool = False) -> None:
    """Check each of ``settings`` (its library name's value in ``values``), in table order; ranges that depend on
    the delay or the batch size take them from ``values``."""
    bounds = dataclasses.replace(
        bounds,
        delay=values.get("inference_delay", bounds.delay),
        batch_size=values.get("batch_size", bounds.batch_size),
    )
    for setting in settings:
        setting.check(values[setting.name], bounds, app)


# ---------------------------------------------------------------------------------------------
# The checks that involve more than one setting


def check_situation(situation: str) -> str:
    return BY_NAME["situation"].check(situation)


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
    BY_NAME["inference_delay"].check(inference_delay, bounds)
    BY_NAME["execute_horizon"].check(execute_horizon, bounds)
    return timing_warnings(inference_delay, execute_horizon, chunk_size)


_ROLLOUT_DEFAULTS = rollout_defaults()


@dataclasses.dataclass(frozen=True)
class RolloutSettings:
    """What a closed-loop evaluation runs; defaults follow the paper (5 flow steps, noise 0.1, 256 steps). Defaults,
    ranges and help: ``rtc.experiments.settings.SETTINGS`` (``rollout_default``)."""

    method: str = _ROLLOUT_DEFAULTS["method"]
    inference_delay: int = _ROLLOUT_DEFAULTS["inference_delay"]
    execute_horizon: int = _ROLLOUT_DEFAULTS["execute_horizon"]
    num_episodes: int = _ROLLOUT_DEFAULTS["num_episodes"]
    episode_steps: int = _ROLLOUT_DEFAULTS["episode_steps"]
    num_flow_steps: int = _ROLLOUT_DEFAULTS["num_flow_steps"]
    max_guidance_weight: float = _ROLLOUT_DEFAULTS["max_guidance_weight"]
    bid_samples: int = _ROLLOUT_DEFAULTS["bid_samples"]
    action_noise: float = _ROLLOUT_DEFAULTS["action_noise"]
    seed: int = _ROLLOUT_DEFAULTS["seed"]
    segment_steps: int = _ROLLOUT_DEFAULTS["segment_steps"]

    def validate(self, chunk_size: int) -> list[str]:
        """Raise ``SettingsError`` naming a refused value and what is accepted (``Setting.check`` of each setting,
        in table order); return warnings (``protocol.validate_timing``'s and the closed loop's)."""
        bounds = Bounds(chunk_size=chunk_size)
        check_values(self.to_dict(), ROLLOUT, bounds)
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
