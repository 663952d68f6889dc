"""The package layout is the architecture: each ``rtc`` subpackage imports only the layers below it.

Layers, bottom to top (each package's docstring says the same):

    rtc.errors -> rtc.numerics -> rtc.io -> rtc.experiments -> rtc.training -> rtc.report -> rtc.app
                                                                                           -> rtc.commands

``rtc.app`` and ``rtc.commands`` sit side by side at the top: neither imports the other. Nothing in ``rtc``
imports streamlit (the UI lives in ``pages/`` and ``streamlit_app.py``); numerics never import matplotlib,
altair or kinetix. Every import statement is checked, including those inside functions, and no two modules
import each other, directly or through others (no cycles, none hidden behind ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rtc

RTC = Path(rtc.__file__).resolve().parent
LAYERS = ("numerics", "io", "experiments", "training", "report", "app")
TOP = {"app": {"commands"}, "commands": {"app"}}  # side by side: never each other
RANK = {**{name: i for i, name in enumerate(LAYERS)}, "commands": len(LAYERS) - 1}
FORBIDDEN_THIRD_PARTY = {
    "numerics": {"streamlit", "matplotlib", "altair", "kinetix", "pandas"},
    "io": {"streamlit", "matplotlib", "altair"},
    "experiments": {"streamlit", "matplotlib", "altair"},
    "training": {"streamlit", "matplotlib", "altair"},
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
    if parts[1] in rtc._SUBMODULES:  # a public submodule name: judged by where it lives
        return rtc._SUBMODULES[parts[1]].split(".")[1]
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


def _module_name(path: Path) -> str:
    parts = path.relative_to(RTC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Module -> the ``rtc`` modules it imports (a name imported from a package counts as that submodule when
    one exists, else as the package)."""
    paths = [*_modules(), RTC / "__init__.py"]
    names = {_module_name(p) for p in paths}
    graph = {}
    for path in paths:
        own = _module_name(path)
        package = own if path.name == "__init__.py" else None
        targets = set()
        for _, module in _imports(path, package):
            while module and module not in names:
                module = module.rpartition(".")[0]
            if module and module != own:
                targets.add(module)
        graph[own] = targets
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    graph = _import_graph()
    # a package may re-export from its own submodules; only the submodules must not import each other in a ring
    for package in [m for m in graph if (RTC.parent / m.replace(".", "/") / "__init__.py").exists()]:
        graph[package] = {t for t in graph[package] if not t.startswith(package + ".")}
    assert _cycles(graph) == []


def test_the_cycle_checker_sees_a_ring():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_hides_behind_type_checking():
    hidden = [str(p.relative_to(RTC)) for p in _modules() if "TYPE_CHECKING" in p.read_text()]
    assert hidden == []
