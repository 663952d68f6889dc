"""The two download buttons of every page: this page's bundle and the whole report (``rtc.report.bundle`` packs
what ``rtc.report.page_content`` declares for each page), built on click in the render workers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from pages import _data
from pages._selection import Context, TraceContext
from rtc.app import state as app_state
from rtc.experiments import pipeline
from rtc.report import bundle, page_content, render


def downloads(
    page: str, context: Context, result: pipeline.Inspection, extras: Mapping[str, Any] | None = None
) -> None:
    """Two lazy download buttons: this page's figures, and the whole report.

    ``extras`` holds an analysis page's results by page key (see ``page_content.page_figures``) and, under
    ``"animations"``, GIFs by name that go into both bundles.
    """
    animations = dict((extras or {}).get("animations") or {})
    data = page_content.extra_data(extras)
    waiting = page_content.waiting(page, extras)
    if waiting:
        extras = None  # nothing computed yet: the page's bundle holds the inspection only
    if isinstance(context, TraceContext):
        view, stem, level_path = context.view, f"trace_{context.stem}", None
    else:
        view, stem, level_path = context.view, app_state.file_stem(context.target, context.view), context.level_path
    look = (view.look.batch_index, view.look.horizon_index, view.look.action_dim_indices)

    def pictures() -> dict[str, bytes]:  # rendered on click only (the first render of a level is slow)
        if level_path is None:
            return {}
        return {f"level_{level_path.stem}": _data.level_picture_png(str(level_path))}

    def content(figures, charts, meta, sections) -> bundle.BundleContent:
        return bundle.BundleContent(figures, charts, meta, sections, pictures(), animations, data)

    def page_zip() -> bytes:
        if waiting:
            figures, charts = {}, {}
        else:
            figures = page_content.page_figure_makers(page, result, *look, extras)
            charts = page_content.page_charts(page, result, *look, extras)
        sections = {page: [*charts, *figures, *animations]}
        return _build_bundle(result, content(figures, charts, context.meta(page), sections))

    def report_zip() -> bytes:
        figures, charts, sections = page_content.report_content(result, *look, extras=extras)
        if animations:
            sections.setdefault(page, []).extend(animations)
        return _build_bundle(result, content(figures, charts, context.meta("report"), sections))

    buttons = (
        ("Download this page's figures (zip: PNG, SVG, PDF, data, report.html)", page_zip, "page", page, "download"),
        ("Download the whole report (all pages, zip)", report_zip, "report", "report", "folder_zip"),
    )
    for column, (label, make_zip, kind, name, icon) in zip(st.columns(2), buttons, strict=True):
        column.download_button(
            label,
            data=make_zip,
            file_name=f"rtc_{name}_{stem}.zip",
            mime="application/zip",
            on_click="ignore",
            key=f"download_{kind}_{page}",
            icon=f":material/{icon}:",
        )


def _build_bundle(result: bundle.Record, content: bundle.BundleContent) -> bytes:
    """``bundle.build_bundle`` with the figures rendered in the process's render workers (inline if one died).

    The pool replaces a dead worker itself, so it stays in use for the next download.
    """
    try:
        return bundle.build_bundle(result, content, executor=_data.render_pool())
    except render.WorkerLost:
        return bundle.build_bundle(result, content)
