"""Every page declared once (rtc.report.page_content): each page file has one declaration, a page that shows only
its declaration is one call, and navigation, pages and bundle read the declarations."""

from __future__ import annotations

import ast
import dataclasses
import inspect

import pytest

from rtc.errors import RTCError
from rtc.report import bundle, page_content
from tests.conftest import PROJECT_ROOT as PROJECT

# URLs and titles are public (shared links, the bundle): they do not change by moving code.
URL_PATHS = {
    "overview": "",
    "x_t": "x_t",
    "v_t": "v_t",
    "correction": "correction",
    "error": "error",
    "compare": "compare",
    "diagnostics": "diagnostics",
    "seeds": "seeds",
    "rollout": "rollout",
    "sweep": "sweep",
}


def test_every_page_file_has_exactly_one_declaration_and_back():
    files = sorted(p.stem for p in (PROJECT / "pages").glob("*.py") if not p.name.startswith("_"))
    keys = [spec.key for spec in page_content.REGISTRY]
    assert len(keys) == len(set(keys)), f"duplicate keys: {keys}"
    assert sorted(keys) == files
    for spec in page_content.REGISTRY:
        assert (PROJECT / spec.file).is_file()
        assert spec.section in ("Inspection", "Analysis")
        assert spec.title and spec.icon.startswith(":material/") and spec.description
    assert [spec.key for spec in page_content.REGISTRY if spec.default] == ["overview"]  # the root URL
    assert {s.key: s.url_path for s in page_content.REGISTRY} == URL_PATHS


def test_a_page_that_shows_only_its_declaration_is_one_call():
    """The four step-by-step pages were the same twelve lines in four files: each is now one call naming its key
    (the file stays for the URL, see pages/_frame.declared_page); every other page has a body of its own."""
    declared = []
    for spec in page_content.REGISTRY:
        tree = ast.parse((PROJECT / spec.file).read_text())
        code = [node for node in tree.body if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]
        if any(isinstance(node, ast.FunctionDef) and node.name == "body" for node in code):
            continue
        declared.append(spec.key)
        assert [ast.unparse(node) for node in code] == [
            "from pages import _frame",
            f"_frame.declared_page({spec.key!r})",
        ], spec.key
    assert declared == ["x_t", "v_t", "correction", "error"]


def test_derived_tables_read_the_declarations():
    assert {s.key: (s.title, s.description) for s in page_content.REGISTRY} == page_content.PAGES
    assert page_content.INSPECTION_PAGES == ("overview", "x_t", "v_t", "correction", "error")
    assert page_content.ANALYSIS_PAGES == {
        "compare": True,
        "diagnostics": False,
        "seeds": True,
        "rollout": True,
        "sweep": True,
    }
    assert page_content.RTC_PAGES == ("overview", "correction", "error")
    # Needing a policy is exactly what a recorded trace cannot give: every analysis page, no inspection page.
    assert list(page_content.POLICY_PAGES) == list(page_content.ANALYSIS_PAGES)
    assert page_content.CHUNK_PAGES == ("x_t", "v_t", "correction", "error")
    assert [s.key for s in page_content.REGISTRY if s.data] == ["sweep"]


def test_the_bundle_only_packs():
    """No page is named, and no figure or chart built, in rtc/report/bundle.py: it packs what it is given."""
    source = inspect.getsource(bundle)
    for spec in page_content.REGISTRY:
        assert f'"{spec.key}"' not in source, spec.key
    for name in ("page_figures", "page_charts", "report_content", "available_pages", "extra_data", "REGISTRY"):
        assert not hasattr(bundle, name), name


def test_navigation_reads_the_declarations():
    """streamlit_app.py builds every st.Page from the declarations: no page path or title is written there."""
    tree = ast.parse((PROJECT / "streamlit_app.py").read_text())
    literals = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    for spec in page_content.REGISTRY:
        assert spec.file not in literals and spec.title not in literals, spec.key
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "Page"
    ]
    assert len(calls) >= 1
    source = (PROJECT / "streamlit_app.py").read_text()
    assert "page_content.REGISTRY" in source and "page_content.SECTIONS" in source


def test_pages_draw_through_the_builders_of_their_declaration(monkeypatch):
    """page_charts/page_figure_makers call the builders the declaration names (no dispatch on the page name)."""
    seen = []

    def charts(args):
        seen.append(("charts", args.page, args.b, args.h, args.dims))
        return {"c": "chart"}

    def figures(args):
        seen.append(("figures", args.page, args.b, args.h, args.dims))
        return {"f": "maker"}

    spec = dataclasses.replace(page_content.SPECS["x_t"], charts=charts, figures=figures)
    monkeypatch.setitem(page_content.SPECS, "x_t", spec)
    assert page_content.page_charts("x_t", None, 1, 2, [0, 3]) == {"c": "chart"}
    assert page_content.page_figure_makers("x_t", None, 1, 2, [0, 3]) == {"f": "maker"}
    assert seen == [("charts", "x_t", 1, 2, (0, 3)), ("figures", "x_t", 1, 2, (0, 3))]
    with pytest.raises(RTCError, match="unknown page 'nope'; pages: overview, x_t"):
        page_content.page_charts("nope", None, 0, 0, [0])


def test_a_page_with_results_waits_for_them():
    assert page_content.waiting("sweep", None) and page_content.waiting("sweep", {"sweep": None})
    assert not page_content.waiting("sweep", {"sweep": ([], "solve_rate")})
    assert not page_content.waiting("diagnostics", None) and not page_content.waiting("x_t", None)


def test_every_inspection_page_has_a_figure_note():
    for spec in page_content.REGISTRY:
        assert callable(spec.figures) and callable(spec.charts), spec.key
        if spec.section == "Inspection":
            assert spec.figure_note, spec.key
