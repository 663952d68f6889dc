"""Command-line flags derived from the settings table (``rtc.experiments.settings``): no type, default, range or
help text is retyped here.

``rtc-visualize`` has one flag per row with a ``flag`` (an inspection's settings, defaults of ``RTCSettings``);
``rtc-sweep`` one per row with a ``sweep_flag`` (a rollout's, defaults of the sweep). Why argparse and not tyro:
see the README ("One settings table").
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

from rtc.experiments import settings as table


def _default(setting: table.Setting, kind: str, presets: Mapping[str, Mapping[str, Any]]) -> tuple[Any, Any]:
    """``(argparse default, default shown in the help)``. A setting a preset may set, or whose default depends on
    the policy, defaults to None, so that a flag given is told from one left out."""
    if kind == "sweep_flag":
        value = setting.sweep_default if setting.sweep_default is not None else setting.rollout_default
        return value, value
    needs_policy = isinstance(setting.default, table.Derived) and not setting.default.before_policy
    if needs_policy or any(setting.name in preset for preset in presets.values()):
        return None, setting.default
    value = setting.default_for()
    return (list(value) if setting.kind is tuple else value), value


def dest(setting: table.Setting, kind: str = "flag") -> str:
    """The argparse attribute of a setting's flag: its library name for rtc-visualize, the flag's own name for
    rtc-sweep (``--episodes`` -> ``episodes``)."""
    return setting.name if kind == "flag" else getattr(setting, kind).lstrip("-").replace("-", "_")


def add_setting_flags(
    parser: argparse.ArgumentParser,
    settings: Iterable[table.Setting],
    kind: str = "flag",
    presets: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """One flag per row of ``settings`` that has one (``Setting.flag``, or ``Setting.sweep_flag`` with ``kind``):
    its type, choices, default, accepted range and help, all from the row."""
    for setting in settings:
        name = getattr(setting, kind)
        if name is None:
            continue
        default, shown = _default(setting, kind, presets or {})
        options: dict[str, Any] = {"dest": dest(setting, kind), "default": default}
        if setting.options:
            options["choices"] = setting.options
        elif setting.kind is tuple:
            options.update(type=int, nargs="+", metavar="INDEX")
        else:
            options["type"] = setting.kind
        options["help"] = setting.help_text(default=shown).replace("%", "%%")
        parser.add_argument(name, **options)


def check_flags(args: argparse.Namespace, settings: Iterable[table.Setting], kind: str = "sweep_flag") -> None:
    """Each flag's static check (``Setting.check``; ``SettingsError`` naming the flag and what is accepted)."""
    for setting in settings:
        if getattr(setting, kind) is not None:
            setting.check(getattr(args, dest(setting, kind)), called=getattr(setting, kind))
