"""One page table (rtc.report.pages_registry): every page file has one entry, and navigation, pages and bundle
read it."""

from __future__ import annotations

import ast
import dataclasses

import pytest

from rtc.errors import RTCError
from rtc.report import bundle, pages_registry
from tests.conftest import PROJECT_ROOT as PROJECT


def test_every_page_file_has_exactly_one_entry_and_back():
    files = sorted(p.stem for p in (PROJECT / "pages").glob("*.py") if not p.name.startswith("_"))
    keys = [spec.key for spec in pages_registry.REGISTRY]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    assert sorted(keys) == files
    for spec in pages_registry.REGISTRY:
        assert (PROJECT / spec.file).is_file()
        assert spec.section in ("Inspection", "Analysis")
        assert spec.title and spec.icon.startswith(":material/") and spec.description
    defaults = [spec.key for spec in pages_registry.REGISTRY if spec.default]
    assert defaults == ["overview"]  # the root URL
    url_paths = [spec.url_path for spec in pages_registry.REGISTRY]
    assert len(url_paths) == len(set(url_paths))
    # URLs and titles are public (shared links, the bundle): they do not change by moving code.
    assert {s.key: s.url_path for s in pages_registry.REGISTRY if not s.default} == {
        k: k for k in files if k != "overview"
    }


def test_bundle_and_pages_read_the_table():
    assert {s.key: (s.title, s.description) for s in pages_registry.REGISTRY} == bundle.PAGES
    assert bundle.INSPECTION_PAGES == ("overview", "x_t", "v_t", "correction", "error")
    assert bundle.ANALYSIS_PAGES == {
        "compare": True,
        "diagnostics": False,
        "seeds": True,
        "rollout": True,
        "sweep": True,
    }
    assert bundle.RTC_PAGES == ("overview", "correction", "error")
    # Needing a policy is exactly what a recorded trace cannot give: every analysis page, no inspection page.
    assert [s.key for s in pages_registry.REGISTRY if s.needs_policy] == list(bundle.ANALYSIS_PAGES)
    assert [s.key for s in pages_registry.REGISTRY if s.chunk_page] == ["x_t", "v_t", "correction", "error"]


def test_navigation_reads_the_table():
    """streamlit_app.py builds every st.Page from the registry: no page path or title is written there."""
    tree = ast.parse((PROJECT / "streamlit_app.py").read_text())
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    for spec in pages_registry.REGISTRY:
        assert spec.file not in literals and spec.title not in literals, spec.key
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Page"
    ]
    assert len(calls) >= 1
    source = (PROJECT / "streamlit_app.py").read_text()
    assert "pages_registry.REGISTRY" in source and "pages_registry.SECTIONS" in source


def test_bundle_draws_through_the_builders_of_the_table(monkeypatch):
    """page_charts/page_figure_makers call the builders the table names (no dispatch on the page name)."""
    seen = []

    def charts(args):
        seen.append(("charts", args.page, args.b, args.h, args.dims))
        return {"c": "chart"}

    def figures(args):
        seen.append(("figures", args.page, args.b, args.h, args.dims))
        return {"f": "maker"}

    spec = dataclasses.replace(pages_registry.SPECS["x_t"], charts=charts, figures=figures)
    monkeypatch.setitem(pages_registry.SPECS, "x_t", spec)
    assert bundle.page_charts("x_t", None, 1, 2, [0, 3]) == {"c": "chart"}
    assert bundle.page_figure_makers("x_t", None, 1, 2, [0, 3]) == {"f": "maker"}
    assert seen == [("charts", "x_t", 1, 2, (0, 3)), ("figures", "x_t", 1, 2, (0, 3))]
    with pytest.raises(RTCError, match="unknown page 'nope'; pages: overview, x_t"):
        bundle.page_charts("nope", None, 0, 0, [0])


def test_every_inspection_page_has_a_figure_note():
    for spec in pages_registry.REGISTRY:
        assert callable(spec.figures) and callable(spec.charts), spec.key
        if spec.section == "Inspection":
            assert spec.figure_note, spec.key
