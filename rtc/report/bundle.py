"""Figure bundles: one zip with every figure (PNG, SVG, PDF), the tracked arrays, a manifest and an offline report.

Layout of a bundle::

    figures/png/<name>.png, figures/svg/<name>.svg, figures/pdf/<name>.pdf
    charts/<name>.vl.json        the interactive charts as Vega-Lite specs
    animations/<name>.gif        animations (closed-loop rollout episodes), when given
    data/tracked.npz             every tracked array as an RTC trace, format 1 (``rtc.io.traces``): ``rtc/<key>``,
                                 ``plain/<key>``, ``obs``, ``first_chunk``, ``meta``
    report.html                  self-contained: inline JavaScript, specs and images; opens offline
    manifest.json                selection, settings, package versions, time and sha256 of every other file

The bundle only packs: what a page holds (its figures, charts and data files) comes from the page's declaration in
``rtc.report.page_content`` (``page_figure_makers``, ``page_charts``, ``report_content``, ``extra_data``), so a page's
bundle holds exactly what the page draws. Nothing here imports streamlit.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import hashlib
import html
import io
import json
import zipfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

import altair as alt
import numpy as np

from rtc.experiments.pipeline import Inspection
from rtc.io.files import package_versions, strict_json
from rtc.io.traces import Trace
from rtc.report.page_content import PAGES
from rtc.report.render import FORMATS, FigureSource, render_figures

REPORT_META = ("selection", "run", "epoch", "level", "level_file", "checkpoint", "view", "link_query")
BUNDLE_FORMAT = "rtc-inspector-bundle"

Record = Inspection | Trace  # an inspection sampled here, or a recorded trace (rtc.io.traces)


# ---------------------------------------------------------------------------------------------
# Rendering


def chart_spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    """The Vega-Lite spec of ``chart`` with its data inlined (no row limit)."""
    with alt.data_transformers.disable_max_rows():
        return chart.to_dict()


@functools.cache
def vega_javascript() -> str | None:
    """Vega, Vega-Lite and vega-embed as one script (from vl-convert-python), or None if it is not installed."""
    try:
        import vl_convert
    except ImportError:
        return None
    version = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    supported = vl_convert.get_vegalite_versions()
    return vl_convert.javascript_bundle(vl_version=version if version in supported else None)


# ---------------------------------------------------------------------------------------------
# The bundle


def _npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    return buffer.getvalue()


def _script_json(value: Any) -> str:
    """JSON safe to place inside a ``<script>`` element."""
    return json.dumps(value).replace("</", "<\\/")


@dataclasses.dataclass(frozen=True)
class BundleContent:
    """What a bundle holds besides the record's arrays, each by name.

    ``figures`` (built figures or makers) are rendered in every format, ``charts`` stored as specs; ``meta``
    describes the selection (run, checkpoint, level, settings, ...) and is copied into the manifest;
    ``sections`` groups names by page for the report (default: one section with everything); ``pictures`` are
    PNG images (e.g. the level) stored under ``images/`` and shown at the top of the report; ``animations`` are
    GIFs stored under ``animations/`` and shown where ``sections`` names them; ``data`` are further data files
    (e.g. ``sweep.csv``, see ``rtc.report.page_content.extra_data``) stored under ``data/``.
    """

    figures: Mapping[str, FigureSource] = dataclasses.field(default_factory=dict)
    charts: Mapping[str, alt.TopLevelMixin] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sections: Mapping[str, Sequence[str]] | None = None
    pictures: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    animations: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    data: Mapping[str, bytes] = dataclasses.field(default_factory=dict)


def build_bundle(
    inspection: Record,
    content: BundleContent,
    *,
    formats: Sequence[str] = FORMATS,
    now: datetime.datetime | None = None,
    progress: Callable[[str], None] | None = None,
    executor: Executor | None = None,
) -> bytes:
    """A zip of ``content`` (figures in every format of ``formats``, charts as specs, ...), the record's arrays,
    a manifest and report.html.

    With an ``executor`` (see ``rtc.report.render.render_pool``) the figures are built and rendered in parallel,
    while this process writes the rest.
    """
    figures, meta, pictures, animations = content.figures, content.meta, content.pictures, content.animations
    files: dict[str, tuple[bytes, str]] = {}
    for name, picture in pictures.items():
        files[f"images/{name}.png"] = (picture, f"picture {name} (PNG)")
    for name, animation in animations.items():
        files[f"animations/{name}.gif"] = (animation, f"animation {name} (GIF)")
    images: dict[str, bytes] = {}
    if progress:
        progress(f"rendering {len(figures)} figures as {', '.join(f.upper() for f in formats)}")
    rendering = render_figures(figures, formats, executor=executor)  # runs on while the rest is written
    specs = {name: chart_spec(chart) for name, chart in content.charts.items()}
    tracked_npz = _npz(inspection.arrays())
    for name, rendered in rendering().items():
        for fmt, encoded in rendered.items():
            files[f"figures/{fmt}/{name}.{fmt}"] = (encoded, f"figure {name} as {fmt.upper()}")
            if fmt == "png":
                images[name] = encoded
    for name, spec in specs.items():
        files[f"charts/{name}.vl.json"] = (
            json.dumps(spec, indent=1).encode(),
            f"interactive chart {name} (Vega-Lite spec with data)",
        )
    files["data/tracked.npz"] = (
        tracked_npz,
        "RTC trace format 1: rtc/<key> (RTC sample), plain/<key> (plain sample, same noise), obs, first_chunk, "
        "meta (JSON)",
    )
    for name, extra in content.data.items():
        files[f"data/{name}"] = (extra, f"data {name}")
    created = (now or datetime.datetime.now(datetime.timezone.utc)).isoformat(timespec="seconds")
    if progress:
        progress("writing report.html")
    sections = content.sections or {"report": [*specs, *images, *animations]}
    report = report_html(inspection, dataclasses.replace(content, sections=sections), specs, images, created)
    files["report.html"] = (report.encode(), "self-contained report: interactive charts and figures, opens offline")
    manifest = {
        "format": BUNDLE_FORMAT,
        "version": 1,
        "created": created,
        **{k: v for k, v in meta.items() if k not in ("format", "version", "created", "files")},
        "settings": inspection.settings.to_dict(),
        "seed": inspection.settings.seed,
        "warnings": list(inspection.warnings),
        "notes": list(inspection.notes),
        "summary": inspection.summary,
        "packages": package_versions(),
        "files": [
            {"path": path, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "content": what}
            for path, (data, what) in files.items()
        ],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", strict_json(json.loads(json.dumps(manifest, default=_json_default))))
        for path, (data, _) in files.items():
            compress = zipfile.ZIP_STORED if path.endswith((".png", ".npz")) else zipfile.ZIP_DEFLATED
            archive.writestr(path, data, compress_type=compress)
    return buffer.getvalue()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


# ---------------------------------------------------------------------------------------------
# report.html

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: 0.3rem; }
p.what { color: #444; } table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
td, th { border: 1px solid #ddd; padding: 0.25rem 0.6rem; text-align: left; font-size: 0.9rem; }
.warning { background: #fff6e0; border-left: 4px solid #f0a500; padding: 0.5rem 0.8rem; }
.chart { margin: 1rem 0; overflow-x: auto; }
img.figure { max-width: min(100%, 950px); border: 1px solid #eee; margin: 0.5rem 0; display: block; }
img.picture { width: 280px; border: 1px solid #eee; }
.note { color: #666; font-size: 0.85rem; }
"""


def _image(name: str, data: bytes, css: str = "figure", mime: str = "image/png") -> str:
    encoded = base64.b64encode(data).decode()
    label = html.escape(name)
    return f'<img class="{css}" alt="{label}" title="{label}" src="data:{mime};base64,{encoded}">'


def _table(rows: Mapping[str, Any]) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.5g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def report_html(
    inspection: Record,
    content: BundleContent,
    specs: Mapping[str, dict[str, Any]],
    images: Mapping[str, bytes],
    created: str,
) -> str:
    """One HTML file with the selection, the summary, every interactive chart (``specs``) and every figure
    (``images``: PNG, inline), laid out by ``content.sections``."""
    meta, pictures, animations = content.meta, content.pictures, content.animations
    javascript = vega_javascript()
    script = javascript.replace("</script", "<\\/script") if javascript else None
    title = str(meta.get("title", "RTC report"))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>",
        f"<script>{script}</script>" if script else "",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Created {html.escape(created)}. Flow time t runs from 0 (noise) to 1 (data). '
        "Hover a chart for values, drag or scroll to pan and zoom, click a legend entry to isolate it "
        "(double-click to reset).</p>",
        _table({k: v for k, v in meta.items() if k in REPORT_META}),
        *(_image(name, data, "picture") for name, data in pictures.items()),
        "<h2>Settings</h2>",
        _table(inspection.settings.to_dict()),
    ]
    parts += [f'<p class="warning">{html.escape(w)}</p>' for w in (*inspection.notes, *inspection.warnings)]
    parts += ["<h2>Summary</h2>", _table(inspection.summary)]
    if javascript is None:
        parts.append(
            '<p class="warning">The interactive charts need vl-convert-python when the bundle is built; '
            "their specs are in charts/*.vl.json and the figures below are static.</p>"
        )
    chart_ids = {}
    for page, names in (content.sections or {}).items():
        heading, what = PAGES.get(page, (page, ""))
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if what:
            parts.append(f'<p class="what">{html.escape(what)}</p>')
        for name in names:
            if name in specs:
                chart_ids[name] = f"chart-{len(chart_ids)}"
                parts.append(f'<div class="chart" id="{chart_ids[name]}" data-name="{html.escape(name)}"></div>')
            elif name in images:
                parts.append(_image(name, images[name]))
            elif name in animations:
                parts.append(_image(name, animations[name], mime="image/gif"))
    specs_json = _script_json({chart_ids[n]: specs[n] for n in chart_ids})
    parts.append(f'<script type="application/json" id="chart-specs">{specs_json}</script>')
    if javascript:
        parts.append(
            "<script>const specs = JSON.parse(document.getElementById('chart-specs').textContent);"
            "for (const [id, spec] of Object.entries(specs)) {"
            "vegaEmbed('#' + id, spec, {actions: {export: true, source: false, compiled: false, editor: false}})"
            ".catch((err) => { document.getElementById(id).textContent = 'chart failed: ' + err; }); }</script>"
        )
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
