"""How a setting is declared, and what every consumer derives from the declaration.

A settings class (``rtc.experiments.settings``) is a frozen dataclass; each field carries its ``Spec`` (label, help,
accepted range, URL key, command-line flags, widget, ...) in ``dataclasses.field(metadata=...)``, written with
``setting(default, Spec(...))``. ``settings_of(cls)`` reads the fields back as ``Setting``s (the field's name, type
and default with its spec) with the checks, parsing and formatting that the app's URL and widgets, the command
lines, validation, descriptions and file names share.

Plain Python (no jax, flax or numpy): the command lines build their parsers from it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rtc.errors import SettingsError

SPEC = "rtc.spec"  # the metadata key of a field's Spec


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
    """A bound or default computed from ``Bounds`` (``None`` where what it needs is not known); ``text`` names it
    (help texts, and messages when ``show_name``)."""

    compute: Callable[[Bounds], Any]
    text: str
    show_name: bool = False  # messages say "max(1, d)=2" rather than "2"

    def __call__(self, bounds: Bounds) -> Any:
        try:
            return self.compute(bounds)
        except TypeError:  # a size it needs is None (not known yet)
            return None


@dataclasses.dataclass(frozen=True)
class Spec:
    """Everything about one setting besides its name, type and default (the dataclass field's)."""

    label: str  # widget label
    help: str  # what it is; the accepted range and the default are added where shown
    low: Any = None  # number or Derived (a number setting always has one)
    high: Any = None  # number or Derived; None: any finite value
    app_high: Any = None  # a tighter upper bound in the app (keeps it responsive); None: ``high``
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()  # a callable: read when first needed
    words: tuple[str, ...] = ()  # words accepted besides numbers (``execute_horizon_rule``: all, min)
    policy_default: Derived | None = None  # the default where it depends on the policy (the field's is None)
    url: str | None = None  # URL query key (the app's view)
    flag: str | None = None  # rtc-visualize flag
    sweep_flag: str | None = None  # rtc-sweep flag
    widget: str | None = None  # number | select | radio | multiselect; None: not a widget
    step: float = 1
    metavar: str | None = None  # a list flag's value name (``INDEX``)
    called: str = ""  # how messages name it (default: the field's name)
    note: Callable[[Bounds], str] | None = None  # appended to the accepted range in messages
    resets_with: tuple[str, ...] = ()  # fields reset with it when a link's value is refused
    captions: Mapping[str, str] | None = None  # a sentence shown under the widget for each choice
    describe: str | None = None  # its part of a selection's one-line description ("{} flow steps")
    stem: Callable[[Any], str] | None = None  # its part of a selection's file name


def setting(default: Any, spec: Spec) -> Any:
    """A settings dataclass field: ``default`` and its ``spec``."""
    return dataclasses.field(default=default, metadata={SPEC: spec})


_KINDS = {"int": int, "float": float, "str": str, "bool": bool}


def _kind(annotation: Any) -> tuple[type, type]:
    """``(kind, item)`` of a field's annotation (a string under ``from __future__ import annotations``):
    ``int | None`` -> (int, int), ``tuple[int, ...]`` -> (tuple, int), ``str | tuple[int, ...]`` -> (str, str)."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    first = text.split("|")[0].strip()
    if first.startswith("tuple["):
        return tuple, _KINDS[first[len("tuple[") :].split(",")[0].strip()]
    return _KINDS[first], _KINDS[first]


@dataclasses.dataclass(frozen=True)
class Setting:
    """One field of a settings class with its ``Spec`` (whose attributes it also answers: ``setting.url``)."""

    owner: type
    name: str
    kind: type  # int, float, str, or tuple (of ``item``)
    item: type
    default: Any  # the field's default
    spec: Spec

    def __getattr__(self, attr: str) -> Any:
        if attr == "spec":  # not set yet (copying): no recursion
            raise AttributeError(attr)
        return getattr(self.spec, attr)

    @property
    def options(self) -> tuple[str, ...]:
        """The accepted choices (empty for a number)."""
        return self.choices() if callable(self.choices) else self.choices

    @property
    def message_name(self) -> str:
        return self.called or self.name

    def default_for(self, bounds: Bounds = Bounds()) -> Any:
        """The default, for the policy where it depends on it (``Spec.policy_default``, where ``bounds`` are known)."""
        derived = None if self.policy_default is None else self.policy_default(bounds)
        return self.default if derived is None else derived

    def bounds(self, bounds: Bounds = Bounds(), app: bool = False) -> tuple[Any, Any]:
        """The accepted ``(low, high)`` for known ``bounds`` (``app``: the app's tighter limit; ``None``: not known)."""
        high = self.app_high if app and self.app_high is not None else self.high
        return _value(self.low, bounds), _value(high, bounds)

    def range_text(self, bounds: Bounds | None = None, app: bool = False) -> str:
        """What is accepted, in words: ``1..1000``, ``max(1, d)=2..8``, ``0..H``, ``one of exp, linear``."""
        if self.options:
            return f"one of {', '.join(self.options)}"
        high_bound = self.app_high if app and self.app_high is not None else self.high
        words = "".join(f"'{w}', " for w in self.words)
        if self.low is not None and high_bound is None:
            return f"{words}a finite value >= {_number(self.low)}"

        def text(bound: Any) -> str:
            if not isinstance(bound, Derived):
                return _number(bound)
            value = None if bounds is None else bound(bounds)
            if value is None:
                return bound.text
            return f"{bound.text}={_number(value)}" if bound.show_name else _number(value)

        return f"{words}{text(self.low)}..{text(high_bound)}"

    def check(self, value: Any, bounds: Bounds = Bounds(), app: bool = False, called: str = "") -> Any:
        """``value`` if accepted, else ``SettingsError`` naming it and what is accepted (``called``: its name there)."""
        name = called or self.message_name
        name += " " if name.startswith("-") else "="  # a flag is written "--flag value", a setting "name=value"
        if self.words and value in self.words:
            return value
        if self.kind is tuple and isinstance(value, (tuple, list)):
            if not value and self.default == ():  # none means all (``levels``)
                return value
            if not value:
                raise SettingsError(f"no {name[:-1]} chosen; pick at least one of {self.range_text(bounds, app)}")
            for item in value:
                self._check_one(item, bounds, app, name)
            return value
        return self._check_one(value, bounds, app, name)

    def _check_one(self, value: Any, bounds: Bounds, app: bool, name: str) -> Any:
        if self.options:
            if value not in self.options:
                raise SettingsError(f"{name}{value!r} is not accepted; choose one of {', '.join(self.options)}")
            return value
        if isinstance(value, str):
            if self.item is str:
                return value
            raise SettingsError(f"{name}{value!r} is not accepted; accepted: {self.range_text(bounds, app)}")
        low, high = self.bounds(bounds, app)
        inside = math.isfinite(value) and value >= low and (high is None or value <= high)
        if not inside and self.high is None and not (app and self.app_high is not None):
            raise SettingsError(f"{name}{value} is not accepted; use a finite value >= {_number(low)}")
        if not inside:
            note = self.note(bounds) if self.note and high is not None else ""
            if app and self.app_high is not None and high is not None and value > high:
                note += f" (the app's limit; the library accepts up to {_number(_value(self.high, bounds))})"
            raise SettingsError(f"{name}{value} is out of range; accepted: {self.range_text(bounds, app)}{note}")
        return value

    def parse(self, text: str, called: str = "") -> Any:
        """A value from text (a URL parameter); ``SettingsError`` when it is not of the setting's type."""
        name = called or self.message_name
        if self.kind is tuple:
            items = [p.strip() for p in text.split(",") if p.strip()]
            return tuple(dict.fromkeys(self._parse_one(p, name) for p in items))
        return self._parse_one(text, name)

    def _parse_one(self, text: str, name: str) -> Any:
        if self.item is str or text in self.words:
            return text
        try:
            return self.item(text)
        except ValueError:
            what = "an integer" if self.item is int else "a number"
            raise SettingsError(f"{name}={text!r} is not {what}") from None

    def format(self, value: Any) -> str:
        """The text of a value (URL parameters): the inverse of ``parse``."""
        if self.kind is tuple and not isinstance(value, str):
            return ",".join(self._format_one(v) for v in value)
        return self._format_one(value)

    def _format_one(self, value: Any) -> str:
        if self.item is float and not isinstance(value, str):
            short = f"{value:g}"  # "5", "2.5": short links; the exact repr where that would round
            return short if float(short) == value else repr(float(value))
        return str(value)

    def help_text(self, bounds: Bounds | None = None, app: bool = False, default: Any = None) -> str:
        """The help text with what is accepted and, when given, a default (a value or ``Derived``)."""
        parts = [self.help]
        if self.options and self.kind is tuple:
            parts.append(f"Accepted: any of {', '.join(self.options)}.")
        elif not self.options and self.item is not str:
            parts.append(f"Accepted: {self.range_text(bounds, app)}.")
        if default is not None and default != ():
            shown = default.text if isinstance(default, Derived) else self.format(default).replace(",", " ")
            parts.append(f"Default: {shown}.")
        return " ".join(parts)

    @property
    def default_text(self) -> Any:
        """The default as help texts show it: a value, or the ``Derived`` that computes it."""
        return self.default if self.policy_default is None else self.policy_default


def _value(bound: Any, bounds: Bounds) -> Any:
    return bound(bounds) if isinstance(bound, Derived) else bound


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@functools.cache
def settings_of(cls: type) -> tuple[Setting, ...]:
    """The declared settings of a settings class, in field order (fields without a ``Spec`` are left out)."""
    out = []
    for f in dataclasses.fields(cls):
        if SPEC in f.metadata:
            kind, item = _kind(f.type)
            out.append(Setting(cls, f.name, kind, item, f.default, f.metadata[SPEC]))
    return tuple(out)


def by_name(cls: type) -> dict[str, Setting]:
    return {s.name: s for s in settings_of(cls)}


def check_values(values: Mapping[str, Any], settings: Iterable[Setting], bounds: Bounds, app: bool = False) -> None:
    """Check each of ``settings`` (its value in ``values``, by name), in declaration order; ranges that depend on
    the delay or the batch size take them from ``values``."""
    bounds = dataclasses.replace(
        bounds,
        delay=values.get("inference_delay", bounds.delay),
        batch_size=values.get("batch_size", bounds.batch_size),
    )
    for one in settings:
        one.check(values[one.name], bounds, app)


def validate(instance: Any, bounds: Bounds, app: bool = False) -> None:
    """Check every declared field of a settings object (``SettingsError`` naming the first refused value)."""
    values = {f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)}
    check_values(values, settings_of(type(instance)), bounds, app)
