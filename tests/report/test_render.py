"""Render workers: never re-run the parent's ``__main__``, replace dead workers, same bytes as inline, no leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from matplotlib.figure import Figure

from rtc.report import render
from tests.conftest import DEMO_RUN, PROJECT_ROOT


def _figure() -> Figure:
    fig = Figure(figsize=(4, 3), layout="constrained")
    ax = fig.add_subplot()
    x = np.linspace(0, 1, 50)
    ax.plot(x, np.sin(6 * x), label="sin")
    ax.set_title("render test")
    ax.legend()
    return fig


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs or is still exiting: a killed worker's main thread shows as a zombie while its other
    threads (numpy's, matplotlib's) still exit, and its parent can reap it only after they are gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        return state != "Z" or len(os.listdir(f"/proc/{pid}/task")) > 1
    except FileNotFoundError:
        return False


def _group_members(pgid: int) -> list[int]:
    """Running (not zombie) processes in process group ``pgid``, read from /proc."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return []
    members = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(pid))
    return members


@pytest.mark.slow  # starts render worker processes
def test_pool_output_is_byte_identical_to_inline_rendering():
    figures = {"a": _figure(), "b": _figure()}
    inline = render.render_figures(figures)()
    with render.render_pool(2) as pool:
        pooled = render.render_figures(figures, executor=pool)()
    assert pooled == inline
    assert set(pooled["a"]) == set(render.FORMATS) and pooled["a"]["png"].startswith(b"\x89PNG")


def _imported(names: list[str]) -> dict[str, bool]:
    return {name: name in sys.modules for name in names}


@pytest.mark.slow  # starts render worker processes
def test_workers_import_their_preload_modules_before_the_first_job_and_png_needs_no_pdf_backend():
    names = ["rtc.report.plots", "matplotlib.backends.backend_pdf", "matplotlib.backends.backend_svg"]
    with render.render_pool(1, preload=("rtc.report.plots",)) as pool:
        assert pool.submit(_imported, names).result(timeout=120) == {
            "rtc.report.plots": True,  # imported at start (this job's module does not import it)
            "matplotlib.backends.backend_pdf": False,
            "matplotlib.backends.backend_svg": False,
        }
        png = pool.submit(render.build_and_render, _figure(), ("png",)).result(timeout=60)["png"]
        assert png.startswith(b"\x89PNG")
        assert not any(pool.submit(_imported, names[1:]).result(timeout=60).values())  # PNG only: no SVG/PDF


@pytest.mark.slow  # starts render worker processes
def test_a_worker_refuses_to_preload_modules_outside_the_report_package():
    with render.render_pool(1, preload=("os",)) as pool:
        try:
            pool.submit(os.getpid).result(timeout=60)
        except render.WorkerLost as error:
            assert "exit code 1" in str(error)
        else:
            raise AssertionError("a worker asked to preload 'os' must exit")


@pytest.mark.slow  # starts render worker processes
def test_a_caller_that_renders_too_takes_queued_jobs_and_gets_the_same_bytes():
    figures = {"a": _figure(), "b": _figure(), "c": _figure()}
    inline = render.render_figures(figures, ("png",))()
    with render.render_pool(1, caller_renders=True) as pool:
        busy = pool.submit(time.sleep, 1.0)  # holds the only worker
        while not busy.running():
            time.sleep(0.01)
        here = [pool.submit(os.getpid) for _ in range(3)]
        pool.run_queued_here()
        assert [future.result(timeout=60) for future in here] == [os.getpid()] * 3
        busy.result(timeout=60)
        assert render.render_figures(figures, ("png",), executor=pool)() == inline


@pytest.mark.slow  # starts render worker processes
def test_a_killed_worker_is_replaced_and_the_pool_keeps_working():
    with render.render_pool(1) as pool:
        first = pool.submit(os.getpid).result(timeout=60)
        assert pool.pids() == [first]
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = pool.submit(os.getpid).result(timeout=60)
        assert second != first and pool.pids() == [second]
        png = pool.submit(render.build_and_render, _figure(), ("png",)).result(timeout=60)["png"]
        assert png.startswith(b"\x89PNG")
    assert not _alive(second)  # shut down with the pool


@pytest.mark.slow  # starts render worker processes
def test_a_worker_dying_during_a_job_fails_that_job_only():
    with render.render_pool(1) as pool:
        victim = pool.pids()[0]
        doomed = pool.submit(os._exit, 3)  # the worker dies while it holds this job
        try:
            doomed.result(timeout=60)
        except render.WorkerLost as error:
            assert str(victim) in str(error) and "exit code 3" in str(error)
        else:
            raise AssertionError("a job whose worker died must fail")
        assert pool.submit(os.getpid).result(timeout=60) != victim


@pytest.mark.slow  # starts render worker processes
def test_errors_in_a_job_reach_the_caller():
    with render.render_pool(1) as pool:
        future = pool.submit(render.render_figure, _figure(), ("gif",))
        try:
            future.result(timeout=60)
        except Exception as error:
            assert "gif" in str(error) and type(error).__name__ == "RTCError"
        else:
            raise AssertionError("a bad format must fail")


@pytest.mark.slow  # starts a subprocess
def test_workers_never_run_the_parents_main_script(tmp_path):
    """Like Streamlit: ``__main__`` is a script with a ``__file__`` and no ``if __name__`` guard."""
    marker = tmp_path / "marker"
    script = tmp_path / "app_script.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, pathlib, sys
            if os.environ.get("RTC_TEST_PARENT") != str(os.getpid()):
                pathlib.Path({str(marker)!r}).write_text("re-executed")
            from rtc.report import render
            with render.render_pool(2) as pool:
                pids = [pool.submit(os.getpid).result(timeout=60) for _ in range(4)]
                assert os.getpid() not in pids
            print("ok")
            """
        )
    )
    code = (
        "import os, runpy, sys; os.environ['RTC_TEST_PARENT'] = str(os.getpid()); "
        f"sys.argv = [{str(script)!r}]; runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    # run_path as __main__ sets sys.modules['__main__'].__file__ to the script, as Streamlit does.
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
    assert not marker.exists()


@pytest.mark.slow  # starts a subprocess
def test_the_command_line_leaves_no_process_behind(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "rtc.commands.visualize", str(DEMO_RUN), "--output-dir", str(tmp_path / "out")],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    pgid = process.pid  # a new session: its leader's pid is the group id
    _, err = process.communicate(timeout=600)
    assert process.returncode == 0, err.decode()
    assert (tmp_path / "out" / "rtc_tracked.npz").exists()
    assert _group_members(pgid) == []  # at once: every worker was reaped before the command returned
