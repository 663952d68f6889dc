"""One queue of heavy jobs per server process (closed-loop rollouts, sweeps), shared by every session.

At most ``max_jobs`` jobs run at once (``RTC_MAX_JOBS``, default one per two CPU cores); the others wait
in submission order and know their position. A job is identified by a key (everything that determines
its result), so a session asking for a point that is queued, running or recently finished gets the same
job and its result instead of starting the work again. Each session that asks holds the job; cancelling
releases that session's hold, and a job nobody holds any more stops (waiting: removed from the queue;
running: the work sees ``JobContext.cancelled`` at its next progress report and stops).

Streamlit-free: the app keeps one ``JobQueue`` per process (``st.cache_resource``) and polls its jobs.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import os
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from rtc.errors import SettingsError

MAX_JOBS_ENV = "RTC_MAX_JOBS"
WAITING, RUNNING, DONE, FAILED, CANCELLED = "waiting", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class JobCancelled(RuntimeError):
    """Raised inside a job's work (by ``JobContext.check``) once nobody holds the job any more."""


def default_max_jobs(environ: dict[str, str] | None = None) -> int:
    """``RTC_MAX_JOBS`` if set (an integer >= 1), else ``max(1, cpu_count // 2)``."""
    environ = os.environ if environ is None else environ
    text = environ.get(MAX_JOBS_ENV, "").strip()
    if not text:
        return max(1, (os.cpu_count() or 2) // 2)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise SettingsError(f"{MAX_JOBS_ENV}={text!r} is not accepted; use an integer >= 1")
    return value


@dataclasses.dataclass
class JobContext:
    """What a job's work sees: report progress, and whether it should stop."""

    job: Job

    @property
    def cancelled(self) -> bool:
        return self.job.holders <= 0

    def report(self, fraction: float, text: str = "") -> bool:
        """Record progress; returns ``False`` once the job is cancelled (usable as a progress callback result)."""
        self.job.fraction, self.job.text = max(0.0, min(1.0, float(fraction))), text
        return not self.cancelled

    def check(self) -> None:
        if self.cancelled:
            raise JobCancelled(f"job {self.job.label} cancelled")


@dataclasses.dataclass(eq=False)
class Job:
    key: Hashable
    label: str
    work: Callable[[JobContext], Any]
    queue: JobQueue
    state: str = WAITING
    fraction: float = 0.0
    text: str = ""
    result: Any = None
    error: BaseException | None = None
    holders: int = 1
    submitted: float = dataclasses.field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    @property
    def position(self) -> int | None:
        """1-based place among waiting jobs (1 = next to start); ``None`` when not waiting."""
        return self.queue.position(self)

    def cancel(self) -> None:
        """Release one hold; when none is left the job stops (or never starts)."""
        self.queue.release(self)

    def wait(self, timeout: float | None = None) -> bool:
        return self.queue.wait(self, timeout)


class JobQueue:
    """Runs submitted jobs on worker threads, at most ``max_jobs`` at once, first come first served."""

    def __init__(self, max_jobs: int | None = None, keep_finished: int = 64):
        self.max_jobs = default_max_jobs() if max_jobs is None else int(max_jobs)
        if self.max_jobs < 1:
            raise SettingsError(f"max_jobs={max_jobs} must be >= 1")
        self._lock = threading.Condition()
        self._waiting: collections.deque[Job] = collections.deque()
        self._running: set[Job] = set()
        self._by_key: collections.OrderedDict[Hashable, Job] = collections.OrderedDict()
        self._keep = keep_finished

    # --- asking for work
    def submit(self, key: Hashable, work: Callable[[JobContext], Any], label: str = "") -> Job:
        """The job for ``key``: an existing queued, running or finished (done) one, now also held by the
        caller, or a new one that starts when a slot is free."""
        with self._lock:
            job = self._by_key.get(key)
            if job is not None and job.state not in (FAILED, CANCELLED):
                if not job.done:
                    job.holders += 1
                self._by_key.move_to_end(key)
                return job
            job = Job(key=key, label=label or str(key), work=work, queue=self)
            self._by_key[key] = job
            self._waiting.append(job)
            self._trim()
            self._start_ready()
            return job

    def get(self, key: Hashable) -> Job | None:
        with self._lock:
            return self._by_key.get(key)

    def position(self, job: Job) -> int | None:
        with self._lock:
            try:
                return self._waiting.index(job) + 1
            except ValueError:
                return None

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"running": len(self._running), "waiting": len(self._waiting), "max_jobs": self.max_jobs}

    def release(self, job: Job) -> None:
        with self._lock:
            if job.done:
                return
            job.holders -= 1
            if job.holders > 0:
                return
            if job.state == WAITING:
                self._waiting.remove(job)
                self._finish(job, CANCELLED)
            # a running job sees ``cancelled`` at its next report and stops there

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: job.done, timeout)

    # --- internals (called with the lock held)
    def _trim(self) -> None:
        finished = [k for k, j in self._by_key.items() if j.done]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._by_key[key]

    def _start_ready(self) -> None:
        while self._waiting and len(self._running) < self.max_jobs:
            job = self._waiting.popleft()
            job.state, job.started = RUNNING, time.monotonic()
            self._running.add(job)
            threading.Thread(target=self._run, args=(job,), name=f"rtc-job {job.label}", daemon=True).start()

    def _finish(self, job: Job, state: str) -> None:
        job.state, job.finished = state, time.monotonic()
        if state == DONE:
            job.fraction = 1.0
        self._lock.notify_all()

    def _run(self, job: Job) -> None:
        context = JobContext(job)
        try:
            result = job.work(context)
        except BaseException as err:  # the job's failure belongs to the sessions that asked for it
            with self._lock:
                job.error = err
                self._running.discard(job)
                self._finish(job, CANCELLED if context.cancelled else FAILED)
                self._start_ready()
            return
        with self._lock:
            job.result = result
            self._running.discard(job)
            self._finish(job, CANCELLED if context.cancelled and result is None else DONE)
            self._start_ready()


class BoundedCache(collections.OrderedDict):
    """A dict that keeps its ``max_entries`` most recently set or read entries (thread-safe enough for the app's
    caches of small immutable results: a lost race only recomputes an entry)."""

    def __init__(self, max_entries: int):
        super().__init__()
        self.max_entries = int(max_entries)

    def __getitem__(self, key: Hashable) -> Any:
        value = super().__getitem__(key)
        with contextlib.suppress(KeyError):
            self.move_to_end(key)
        return value

    def get(self, key: Hashable, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __setitem__(self, key: Hashable, value: Any) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.max_entries:
            self.popitem(last=False)
