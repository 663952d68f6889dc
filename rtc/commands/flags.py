"""Command-line flags derived from the settings' declarations (``rtc.experiments.settings``): no type, default, range
or help text is retyped here.

``rtc-visualize`` has one flag per field of ``RTCSettings`` / ``LookSettings`` with a ``Spec.flag``; ``rtc-sweep``
one per field of ``SweepSettings`` and of its ``RolloutSettings`` template with a ``Spec.sweep_flag``. Why argparse
and not tyro: see docs/cli.md ("Why argparse").
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rtc.errors import SettingsError
from rtc.experiments.fields import Setting


class Parser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line, ``error: ...``, with exit code 2 (like every other refusal)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def dest(setting: Setting, kind: str = "flag") -> str:
    """The argparse attribute of a setting's flag: its field name for rtc-visualize, the flag's own name for
    rtc-sweep (``--episodes`` -> ``episodes``)."""
    return setting.name if kind == "flag" else getattr(setting, kind).lstrip("-").replace("-", "_")


def add_setting_flags(
    parser: argparse.ArgumentParser,
    settings: Iterable[Setting],
    kind: str = "flag",
    shown: Mapping[str, Any] | None = None,
    unset: Iterable[str] | None = None,
) -> None:
    """One flag per setting that has one (``Spec.flag``, or ``Spec.sweep_flag`` with ``kind``): its type, choices,
    accepted range and help from the declaration. The default shown is ``shown[name]`` (else the declared one); the
    argparse default is None for the names in ``unset`` (every one when ``unset`` is None), so that a flag given is
    told from one left out (a preset, or a default that depends on the policy, fills those in)."""
    unset = None if unset is None else set(unset)
    for setting in settings:
        name = getattr(setting, kind)
        if name is None:
            continue
        default = shown[setting.name] if shown and setting.name in shown else setting.default_text
        left_out = unset is None or setting.name in unset or setting.default is None
        value = None if left_out else (list(setting.default) if setting.kind is tuple else setting.default)
        options: dict[str, Any] = {"dest": dest(setting, kind), "default": value}
        if setting.kind is tuple:
            options.update(nargs="+", metavar=setting.metavar or "VALUE")
            options["type"] = str if setting.words or setting.item is str else setting.item
        elif setting.options:
            options["choices"] = setting.options
        else:
            options["type"] = setting.kind
        options["help"] = setting.help_text(default=default).replace("%", "%%")
        parser.add_argument(name, **options)


def flag_value(setting: Setting, raw: Any, kind: str = "sweep_flag") -> Any:
    """A setting's value from its parsed flag (a list becomes a tuple; a word such as ``all`` stays a word), checked
    (``SettingsError`` naming the flag and what is accepted)."""
    called = getattr(setting, kind)
    if setting.kind is tuple:
        if setting.words and len(raw) == 1 and raw[0] in setting.words:
            value: Any = raw[0]
        else:
            items = []
            for text in raw:
                try:
                    items.append(setting.item(text))
                except ValueError:
                    raise SettingsError(
                        f"{called} {text!r} is not accepted; accepted: {setting.range_text()}"
                    ) from None
            value = tuple(dict.fromkeys(items))
    else:
        value = raw
    return setting.check(value, called=called)


def given_values(args: argparse.Namespace, settings: Iterable[Setting], kind: str = "sweep_flag") -> dict[str, Any]:
    """The checked values of the flags given (not None), by field name."""
    return {
        s.name: flag_value(s, getattr(args, dest(s, kind)), kind)
        for s in settings
        if getattr(s, kind) is not None and getattr(args, dest(s, kind)) is not None
    }
