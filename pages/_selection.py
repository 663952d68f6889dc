"""The sidebar's selection: what the run sidebar (``streamlit_app.py``) and the trace sidebar (``pages/_traces.py``)
resolve and every page draws for, and the link's query both sidebars restore from."""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from rtc.app import state as app_state
from rtc.app.state import Limits, Target, View
from rtc.experiments import pipeline
from rtc.io import traces
from rtc.io.checkpoints import RunInfo

CONTEXT_KEY = "rtc_context"


def query() -> dict[str, str]:
    """The link's query parameters (the URL holds every choice)."""
    return {key: st.query_params[key] for key in st.query_params}


def nothing_found(what: str, dirs: Sequence[Path], env: str, holds: str) -> str:
    """The message for an empty source: no ``what`` under the configured ``dirs``, and what ``env`` should name."""
    where = ", ".join(map(str, dirs)) or "the configured roots"
    return f"No {what} under {where}. Set {env} to folders that hold {holds}"


@dataclasses.dataclass(frozen=True)
class Context:
    """The sidebar's selection, resolved to files, for the pages to draw."""

    target: Target
    view: View
    run: RunInfo
    checkpoint: Path
    level_path: Path | None
    level_note: str
    limits: Limits
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def settings(self) -> pipeline.RTCSettings:
        return self.view.rtc

    @property
    def policy_name(self) -> str:
        """How a refusal names the selected policy: ``run epoch E level``."""
        return f"{self.target.run} epoch {self.target.epoch} {self.target.level}"

    def meta(self, page: str) -> dict:
        """What a bundle's manifest says about this selection."""
        return {
            "title": f"RTC report — {self.target.run}, epoch {self.target.epoch}, {self.target.level}",
            "page": page,
            "run": self.target.run,
            "epoch": self.target.epoch,
            "level": self.target.level,
            "level_file": self.level_note,
            "checkpoint": self.checkpoint.relative_to(self.run.path).as_posix(),
            "view": {
                "batch_index": self.view.look.batch_index,
                "horizon_index": self.view.look.horizon_index,
                "action_dims": list(self.view.look.action_dim_indices),
            },
            "selection": app_state.describe(self.target, self.view),
            "link_query": "?" + urllib.parse.urlencode(app_state.to_query(self.target, self.view), safe="/,"),
        }


@dataclasses.dataclass(frozen=True)
class TraceContext:
    """The sidebar's selection when the source is a recorded trace (``rtc.io.traces``) instead of a run."""

    trace: traces.Trace
    trace_id: str | None  # the id under a trace root, None for an upload (no link can name it)
    name: str
    view: View
    limits: Limits
    warnings: tuple[str, ...] = ()
    error: str | None = None

    @property
    def stem(self) -> str:
        raw = Path(self.name).stem
        return "".join(c if c.isalnum() or c in "-_" else "-" for c in raw)

    def describe(self) -> str:
        steps, batch, horizon, action_dim = self.trace.shape
        kind = "RTC call" if self.trace.is_rtc else "first chunk, no RTC"
        return (
            f"trace {self.name} · from {self.trace.source} · {kind} · {steps} flow steps, batch {batch}, "
            f"H = {horizon}, {action_dim} action dims"
        )

    def meta(self, page: str) -> dict:
        """What a bundle's manifest says about this selection."""
        meta = {
            "title": f"RTC report — trace {self.name}",
            "page": page,
            "trace": self.trace_id or f"upload: {self.name}",
            "trace_source": self.trace.source,
            "jacobian_free": self.trace.jacobian_free,
            "trace_meta": self.trace.meta,
            "view": {
                "batch_index": self.view.look.batch_index,
                "horizon_index": self.view.look.horizon_index,
                "action_dims": list(self.view.look.action_dim_indices),
            },
            "selection": self.describe(),
        }
        if self.trace_id is not None:
            query = app_state.trace_query(self.trace_id, self.view)
            meta["link_query"] = "?" + urllib.parse.urlencode(query, safe="/,")
        return meta


def set_context(context: Context | TraceContext | None) -> None:
    st.session_state[CONTEXT_KEY] = context


def get_context() -> Context | TraceContext | None:
    return st.session_state.get(CONTEXT_KEY)
