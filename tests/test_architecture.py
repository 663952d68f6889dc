"""The package layout is the architecture: each ``rtc`` subpackage imports only the layers below it.

Layers, bottom to top (each package's docstring says the same):

    rtc.errors -> rtc.numerics -> rtc.io -> rtc.experiments -> rtc.report -> rtc.app
                                                                          -> rtc.commands

``rtc.app`` and ``rtc.commands`` sit side by side at the top: neither imports the other. Nothing in ``rtc``
imports streamlit (the UI lives in ``pages/`` and ``streamlit_app.py``); numerics never import matplotlib,
altair or kinetix. Every import statement is checked, including those inside functions.
"""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest

import rtc

RTC = Path(rtc.__file__).resolve().parent
LAYERS = ("numerics", "io", "experiments", "report", "app")
TOP = {"app": {"commands"}, "commands": {"app"}}  # side by side: never each other
RANK = {**{name: i for i, name in enumerate(LAYERS)}, "commands": len(LAYERS) - 1}
FORBIDDEN_THIRD_PARTY = {
    "numerics": {"streamlit", "matplotlib", "altair", "kinetix", "pandas"},
    "io": {"streamlit", "matplotlib", "altair"},
    "experiments": {"streamlit", "matplotlib", "altair"},
    "report": {"streamlit"},
    "app": {"streamlit"},
    "commands": {"streamlit"},
}


def _modules() -> list[Path]:
    return sorted(p for p in RTC.rglob("*.py") if p.parent != RTC or p.name != "__init__.py")


def _imports(path: Path, package: str | None = None) -> list[tuple[int, str]]:
    """Every module an import statement in ``path`` names (relative imports resolved against ``package``, by
    default the package ``path`` lies in)."""
    package = package or ".".join(path.relative_to(RTC.parent).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if base in ("rtc", *_packages())]
    return found


def _packages() -> tuple[str, ...]:
    return tuple(f"rtc.{name}" for name in RANK)


def _layer(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "rtc" or len(parts) < 2:
        return None
    if parts[1] in RANK:
        return parts[1]
    if parts[1] in rtc._MOVED:  # a former flat path: judged by where it lives now
        return rtc._MOVED[parts[1]].split(".")[0]
    if parts[1] in rtc._EXPORTS:  # a lazily exported name: judged by the module that defines it
        return _layer(rtc._EXPORTS[parts[1]])
    return None  # rtc itself, rtc.errors


def test_every_module_lives_in_a_layer():
    flat = [p.name for p in RTC.glob("*.py") if p.name not in ("__init__.py", "errors.py")]
    assert flat == [], f"modules outside the layer packages: {flat}"
    for name in RANK:
        doc = ast.get_docstring(ast.parse((RTC / name / "__init__.py").read_text()))
        assert doc and "import" in doc, f"rtc.{name} must say what it holds and what it may import"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(RTC)))
def test_imports_point_down(path):
    rel = path.relative_to(RTC)
    own = rel.parts[0] if len(rel.parts) > 1 else None
    problems = []
    for line, module in _imports(path):
        top = module.split(".")[0]
        if top == "streamlit":
            problems.append(f"line {line}: imports streamlit (only pages/ and streamlit_app.py may)")
        if own is None:
            continue
        if top in FORBIDDEN_THIRD_PARTY[own]:
            problems.append(f"line {line}: rtc.{own} must not import {top}")
        target = _layer(module)
        if target is None or target == own:
            continue
        if target in TOP.get(own, set()) or RANK[target] > RANK[own]:
            problems.append(f"line {line}: rtc.{own} imports {module} (layer rtc.{target} is above it)")
    assert not problems, f"{rel}:\n" + "\n".join(problems)


def test_the_checker_sees_violations(tmp_path):
    """The rule itself: an upward import is found (so a green run means something)."""
    bad = tmp_path / "probe.py"
    bad.write_text(
        "def f():\n    from rtc.report import plots\n    import streamlit\n    from ..experiments import rollout\n"
    )
    imports = [m for _, m in _imports(bad, package="rtc.numerics")]
    assert {"rtc.report", "rtc.report.plots", "streamlit", "rtc.experiments.rollout"} <= set(imports)
    assert _layer("rtc.inspect") == "experiments"  # a lazy export counts where it is defined
    assert _layer("rtc.report.plots") == "report" and _layer("rtc.plots") == "report"
    assert RANK["report"] > RANK["numerics"]


@pytest.mark.parametrize("old", sorted(rtc._MOVED))
def test_former_flat_paths_are_the_same_modules(old):
    module = importlib.import_module(f"rtc.{old}")
    assert module is importlib.import_module(f"rtc.{rtc._MOVED[old]}")
    assert sys.modules[f"rtc.{old}"] is module


def test_a_function_moved_up_a_layer_says_where_it_went():
    from rtc.experiments import rollout

    with pytest.raises(AttributeError, match=r"moved to rtc\.report\.animation\.episode_frames"):
        rollout.episode_frames  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        rollout.nope  # noqa: B018
