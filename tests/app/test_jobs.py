"""The server's job queue: a limit on concurrent heavy jobs, positions, cancel, shared results."""

from __future__ import annotations

import threading

import pytest

from rtc.app import jobs


class Gate:
    """Work that reports progress and waits until released (or cancelled)."""

    def __init__(self, result):
        self.result, self.release, self.started = result, threading.Event(), threading.Event()
        self.calls = 0

    def __call__(self, context: jobs.JobContext):
        self.calls += 1
        self.started.set()
        while not self.release.wait(0.01):
            if context.report(0.5, "half way") is False:
                return None
        return self.result


def test_three_jobs_with_one_slot_two_wait_in_order(monkeypatch):
    monkeypatch.setenv(jobs.MAX_JOBS_ENV, "1")
    queue = jobs.JobQueue()
    assert queue.max_jobs == 1
    gates = [Gate(i) for i in range(3)]
    submitted = [queue.submit(("point", i), gate, f"job {i}") for i, gate in enumerate(gates)]
    assert gates[0].started.wait(5)
    assert [j.state for j in submitted] == [jobs.RUNNING, jobs.WAITING, jobs.WAITING]
    assert [j.position for j in submitted] == [None, 1, 2]
    assert queue.counts() == {"running": 1, "waiting": 2, "max_jobs": 1}
    gates[0].release.set()
    assert submitted[0].wait(5) and submitted[0].result == 0 and submitted[0].state == jobs.DONE
    assert gates[1].started.wait(5) and submitted[2].position == 1  # the next one runs, the last moved up
    gates[1].release.set()
    gates[2].release.set()
    assert submitted[2].wait(5) and [j.result for j in submitted] == [0, 1, 2]
    assert submitted[1].finished <= submitted[2].started  # one at a time


def test_cancel_waiting_and_running_jobs():
    queue = jobs.JobQueue(max_jobs=1)
    running, waiting = Gate("a"), Gate("b")
    first = queue.submit("a", running)
    second = queue.submit("b", waiting)
    assert running.started.wait(5)
    second.cancel()
    assert second.state == jobs.CANCELLED and second.position is None and waiting.calls == 0
    first.cancel()  # the work sees it at its next report and stops
    assert first.wait(5) and first.state == jobs.CANCELLED and first.result is None
    assert queue.counts()["running"] == 0


def test_same_key_shares_one_job_and_its_result():
    queue = jobs.JobQueue(max_jobs=2)
    gate = Gate({"solve_rate": 0.5})
    mine = queue.submit(("rollout", 1), gate)
    theirs = queue.submit(("rollout", 1), Gate("never run"))
    assert mine is theirs and mine.holders == 2
    mine.cancel()  # the other session still wants it
    assert gate.started.wait(5) and mine.state == jobs.RUNNING
    gate.release.set()
    assert mine.wait(5) and mine.result == {"solve_rate": 0.5} and gate.calls == 1
    later = queue.submit(("rollout", 1), Gate("never run"))
    assert later is mine and later.state == jobs.DONE  # a finished result is served to later sessions too


def test_failures_are_kept_for_the_asker_and_retried_on_next_submit():
    queue = jobs.JobQueue(max_jobs=1)

    def broken(context):
        raise ValueError("bad level")

    job = queue.submit("x", broken)
    assert job.wait(5) and job.state == jobs.FAILED and str(job.error) == "bad level"
    again = queue.submit("x", lambda context: 3)
    assert again is not job and again.wait(5) and again.result == 3


@pytest.mark.parametrize("text", ["0", "two", "-1"])
def test_bad_max_jobs_is_refused(text):
    with pytest.raises(ValueError, match=f"RTC_MAX_JOBS='{text}' is not accepted; use an integer >= 1"):
        jobs.default_max_jobs({"RTC_MAX_JOBS": text})
    assert jobs.default_max_jobs({}) >= 1


def test_bounded_cache_keeps_the_most_recent_entries():
    cache = jobs.BoundedCache(2)
    cache["a"], cache["b"] = 1, 2
    assert cache.get("a") == 1  # reading keeps "a"
    cache["c"] = 3
    assert list(cache) == ["a", "c"] and cache.get("b") is None and cache.get("b", 0) == 0
