"""RTC inspector: pick a run, level and schedule; see every denoising step; share the link; download the figures.

    streamlit run streamlit_app.py

The sidebar holds every choice (shared by all pages) and mirrors it in the URL, so a copied link
opens the same view. Run folders come from ``RTC_RUNS_ROOTS`` (default: ``runs/`` and ``./logs-bc``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # so that pages can import their shared helpers
    sys.path.insert(0, str(ROOT))


def _starting():
    """Before the heavy imports below (JAX, flax, matplotlib, altair: seconds in a fresh process): the page set
    up, the sidebar's title and, on the process's first run, a progress message (an ``st.status``, returned with
    its placeholder; None on later runs)."""
    st.set_page_config(page_title="RTC inspector", page_icon=":material/bolt:", layout="wide")
    with st.sidebar:
        st.title("RTC inspector")
        st.caption("Real-time chunking, one denoising step at a time. The URL holds every choice: copy it to share.")
    if "pages._data" in sys.modules:
        return None
    placeholder = st.empty()
    status = placeholder.status("Starting the RTC inspector…", expanded=True)
    status.write("Importing JAX, flax and the plotting libraries (a fresh process takes a few seconds)…")
    return placeholder, status


STARTING = _starting()

from pages import _data, _frame, _selection, _traces, _widgets  # noqa: E402
from rtc.app import state as app_state  # noqa: E402
from rtc.app.state import Limits, Target, View  # noqa: E402
from rtc.errors import RTCError  # noqa: E402
from rtc.experiments.fields import Bounds, by_name  # noqa: E402
from rtc.experiments.settings import SECTIONS, RTCSettings  # noqa: E402
from rtc.io import levels, roots  # noqa: E402
from rtc.report import page_content  # noqa: E402


def _page(spec: page_content.PageSpec) -> st.Page:
    """The navigation entry of one declared page (rtc.report.page_content)."""
    if spec.default:
        return st.Page(spec.file, title=spec.title, icon=spec.icon, default=True)
    return st.Page(spec.file, title=spec.title, icon=spec.icon, url_path=spec.url_path)


PAGES = {
    section: [_page(spec) for spec in page_content.REGISTRY if spec.section == section]
    for section in page_content.SECTIONS
}

NOTICES_KEY = "rtc_notices"


def _level_file(key: str, candidates: list[Path]) -> Path | None:
    return roots.find_level_file(key, candidates)


def _select_target(runs: dict, candidates: list[Path]) -> Target:
    """Run, epoch and level selectors (restored from the link on a session's first run)."""
    state = st.session_state
    has_file = lambda key: _level_file(key, candidates) is not None  # noqa: E731
    if "w_run" not in state:
        target, notices = app_state.parse_target(_selection.query(), runs, has_file)
        state[NOTICES_KEY] = state.get(NOTICES_KEY, []) + notices
        state.update(w_run=target.run, w_epoch=target.epoch, w_level=target.level)
    if state["w_run"] not in runs:
        state[NOTICES_KEY] = [*state.get(NOTICES_KEY, []), f"run {state['w_run']} is gone; showing another"]
        state["w_run"] = app_state.default_target(runs, has_file).run
    run_id = st.selectbox("Run", list(runs), key="w_run", help="Training runs found under RTC_RUNS_ROOTS.")
    run = runs[run_id]
    epochs = sorted(run.epochs, reverse=True)
    if state.get("w_epoch") not in epochs:
        state["w_epoch"] = run.latest_epoch
    epoch = st.selectbox(
        "Checkpoint epoch",
        epochs,
        key="w_epoch",
        format_func=lambda e: f"{e} (latest)" if e == run.latest_epoch else str(e),
    )
    keys = run.levels(epoch)
    if state.get("w_level") not in keys:
        state["w_level"] = app_state.parse_target({"run": run_id, "epoch": str(epoch)}, runs, has_file)[0].level
    level = st.selectbox(
        "Level",
        keys,
        key="w_level",
        format_func=lambda k: k if has_file(k) else f"{k} (no level file)",
        help="Levels this checkpoint has a policy for.",
    )
    return Target(run_id, epoch, level)


def _apply_preset(name: str, limits: Limits) -> None:
    """Button callback: put a named preset's values into the widgets (before they are drawn)."""
    chosen = app_state.preset_view(name, app_state.view_of(_widgets.read(app_state.VIEW)), limits)
    _widgets.store(chosen.values(), app_state.VIEW)


def _select_view(limits: Limits) -> View:
    """The settings' widgets, section by section (restored from the link on a session's first run); values outside
    a widget's range are clamped with a notice."""
    state = st.session_state
    if _widgets.key(app_state.VIEW[0]) not in state:
        view, notices = app_state.parse_view(_selection.query(), limits)
        state[NOTICES_KEY] = state.get(NOTICES_KEY, []) + notices
        _widgets.store(view.values(), app_state.VIEW)
    clamped: list[str] = []
    batch_key = _widgets.key(by_name(RTCSettings)["batch_size"])

    def bounds() -> Bounds:  # the widget ranges: the policy's sizes and the batch size chosen above
        return Bounds(limits.chunk_size, limits.action_dim, batch_size=state[batch_key])

    for section, (heading, settings_class) in SECTIONS.items():
        st.subheader(heading)
        if section == "settings":
            for index, (name, preset) in enumerate(app_state.PRESETS.items()):
                st.button(
                    f"Preset: {name}",
                    key=f"w_preset_{index}",
                    on_click=_apply_preset,
                    args=(name, limits),
                    width="stretch",
                    help=f"{preset.help} Sets {', '.join(preset.sets)}.",
                )
        _widgets.draw([s for s in app_state.VIEW if s.owner is settings_class], bounds, notices=clamped)
    state[NOTICES_KEY] = [*state.get(NOTICES_KEY, []), *clamped]
    return app_state.view_of(_widgets.read(app_state.VIEW))


def sidebar() -> _selection.Context | _selection.TraceContext | None:
    """Every selector; returns the resolved selection (or None when there is nothing to show). The title is drawn
    first, by ``_starting``."""
    if _traces.choose_source() == "Traces":
        return _traces.sidebar()
    dirs = roots.run_roots()
    runs = _data.runs_under(tuple(str(r) for r in dirs))
    if not runs:
        st.error(
            _selection.nothing_found(
                "training runs found", dirs, roots.RUNS_ROOTS_ENV, "<run>/<epoch>/policies/<level_key>."
            )
        )
        return None
    candidates = _data.level_candidates(tuple(str(d) for d in roots.level_dirs()))
    target = _select_target(runs, candidates)
    level_path = _level_file(target.level, candidates)
    if level_path is None:
        note = (
            f"No level file for {target.level} in the offered folders "
            f"({', '.join(str(d) for d in roots.level_dirs())} and kinetix's own levels). "
            f"Add the folder that holds it to {roots.LEVEL_DIRS_ENV}."
        )
        st.warning(note)
    else:
        note = _display_level(level_path)
        paper_note = levels.paper_level_note(target.level, level_path)
        if paper_note:
            st.warning(paper_note)
    run = runs[target.run]
    checkpoint = roots.checked_checkpoint(run, target.epoch, target.level, dirs)
    with st.spinner(f"Loading checkpoint {target.run} epoch {target.epoch}…"):
        policy = _data.policy(str(checkpoint), _data.mtime(checkpoint))
    limits = Limits(policy.action_chunk_size, policy.action_dim)
    picture = st.empty()
    view = _select_view(limits)
    error, warnings = None, []
    try:
        warnings = app_state.check_view(view, limits)
    except app_state.SelectionError as err:
        error = str(err)
        st.error(f"Refused: {err}")
    for warning in warnings:
        st.warning(warning)
    schedule_note = None if error else app_state.schedule_note(view, limits)
    if schedule_note:
        st.info(schedule_note)
    st.session_state["rtc_picture_slot"] = (picture, level_path)
    st.query_params.from_dict(app_state.to_query(target, view))
    return _selection.Context(target, view, run, checkpoint, level_path, note, limits, tuple(warnings), error)


def _display_level(path: Path) -> str:
    for folder in roots.level_dirs():
        if roots.is_within(path, folder):
            return (Path(folder.name) / path.resolve().relative_to(folder)).as_posix()
    return f"kinetix/levels/l/{path.name}"


def _level_picture_in_sidebar() -> None:
    """Fill the sidebar's picture slot once a page has drawn (rendering the level is slow the first time)."""
    slot = st.session_state.get("rtc_picture_slot")
    if not slot or slot[1] is None:
        return
    placeholder, path = slot
    try:
        placeholder.image(_data.level_picture(str(path)), caption=_display_level(path), width="stretch")
    except (RTCError, OSError) as err:
        placeholder.warning(f"Cannot draw the level: {err}")


def main() -> None:
    _data.setup_process()
    _data.release_crowded_programs()
    navigation = st.navigation(PAGES)
    if STARTING is not None:
        STARTING[1].write("Loading the checkpoint…")
    with st.sidebar:
        try:
            context = sidebar()
        except (RTCError, OSError) as err:
            _frame.user_error(err)
            context = None
        except Exception as err:
            _frame.unexpected(err)
            context = None
    _selection.set_context(context)
    for notice in st.session_state.pop(NOTICES_KEY, []):
        st.warning(f"From the link: {notice}", icon=":material/link_off:")
    _frame.mark_entrypoint_run()
    if STARTING is not None:
        STARTING[0].empty()  # the page shows its own progress from here
    navigation.run()
    with st.sidebar:
        _level_picture_in_sidebar()
    _data.render_pool()  # after the first page is drawn: starts the bundle's render workers


main()
