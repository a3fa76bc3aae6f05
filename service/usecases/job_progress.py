"""A running job's record as its worker changes it, and who hears of each change.

The :class:`~service.usecases.jobs.JobRunner` keeps one :class:`LiveJob` per
job it has queued: every write of that job (its status, its phase, its byte
count) goes through it, so a progress report from the dump never overwrites a
status the worker just stored, nor the other way round. Phase changes are
written at once; byte counts at most once per :data:`PROGRESS_INTERVAL` per job
(the count in between is kept in memory and goes out with the next write), so
a fast dump does not write a row per chunk.

After each write, :class:`JobWatchers` calls the job's subscribers: that is the
in-process signal ``?wait=true`` and the SSE stream wait on instead of polling
the catalog. Subscribers are called on the writer's thread and must only hand
the news on (set an event, ``call_soon_threadsafe``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

from backup.errors import HoldfastError
from backup.phases import Phase
from backup.types import utcnow
from service.ports import CatalogPort
from service.records import JobRecord

logger = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0
"""Seconds between two byte-count writes of one job (phase changes are written at once)."""


class JobWatchers:
    """Callbacks per job id, called after each write of that job."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, list[Callable[[], object]]] = {}

    def subscribe(self, job_id: str, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback`` after every write of ``job_id``; returns the function
        that stops it (calling that twice is harmless)."""
        with self._lock:
            self._subscribers.setdefault(job_id, []).append(callback)

        def unsubscribe() -> None:
            with self._lock:
                callbacks = self._subscribers.get(job_id, [])
                if callback in callbacks:
                    callbacks.remove(callback)
                if not callbacks:
                    self._subscribers.pop(job_id, None)

        return unsubscribe

    def notify(self, job_id: str) -> None:
        with self._lock:
            callbacks = list(self._subscribers.get(job_id, ()))
        for callback in callbacks:
            try:
                callback()
            except Exception:  # one broken listener must not fail the job writing
                logger.exception("a listener of job %s failed", job_id)

    def watching(self, job_id: str) -> int:
        with self._lock:
            return len(self._subscribers.get(job_id, ()))


_PROGRESS_FIELDS = ("phase", "bytes_done", "transfer_started_at", "progress_at")
"""What a :class:`LiveJob` owns: a status write from the worker keeps these as
the progress callbacks last set them."""


class LiveJob:
    """The one current record of a job this process runs. :meth:`store` writes
    the worker's change (raising if the catalog cannot); :meth:`phase` and
    :meth:`progress` are the backup's and restore's callbacks and never raise:
    progress that cannot be written is logged and the job goes on."""

    def __init__(self, record: JobRecord, catalog: CatalogPort, watchers: JobWatchers, *,
                 interval: float = PROGRESS_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._record = record
        self._catalog = catalog
        self._watchers = watchers
        self._interval = interval
        self._clock = clock
        self._written = clock()
        self._lock = threading.Lock()

    @property
    def record(self) -> JobRecord:
        with self._lock:
            return self._record

    def store(self, record: JobRecord) -> JobRecord:
        """Write ``record`` with this job's progress as it stands (and any byte
        count not yet written); returns what was written."""
        with self._lock:
            kept = {name: getattr(self._record, name) for name in _PROGRESS_FIELDS}
            self._record = replace(record, **kept)
            self._write()
            written = self._record
        self._watchers.notify(written.id)
        return written

    def phase(self, phase: Phase) -> None:
        """Enter ``phase``: written at once, with the byte count so far."""
        with self._lock:
            if self._record.ended or self._record.phase == str(phase):
                return
            self._record = replace(self._record, phase=str(phase))
            written = self._write_quietly()
        if written:
            self._watchers.notify(self._record.id)

    def progress(self, done: int, elapsed: float) -> None:
        """A :data:`~backup.streams.ProgressCallback`: ``done`` bytes counted over
        ``elapsed`` seconds of the transfer; written if none was for an interval."""
        with self._lock:
            if self._record.ended:
                return
            now = utcnow()
            since = self._record.transfer_started_at or now - timedelta(seconds=elapsed)
            self._record = replace(self._record, bytes_done=done, progress_at=now,
                                   transfer_started_at=since)
            written = self._clock() - self._written >= self._interval and \
                self._write_quietly()
        if written:
            self._watchers.notify(self._record.id)

    def _write(self) -> None:
        self._catalog.save_job(self._record)
        self._written = self._clock()

    def _write_quietly(self) -> bool:
        try:
            self._write()
        except HoldfastError as exc:
            logger.warning("could not record the progress of job %s: %s", self._record.id,
                           exc, extra={"job": self._record.id})
            return False
        return True


class LiveJobs:
    """The job runner's way to the catalog's jobs: ``add_job`` and ``save_job``
    of a job go through its :class:`LiveJob` while it has not ended, and tell
    its watchers; every other catalog method is the catalog's own."""

    def __init__(self, catalog: CatalogPort, watchers: JobWatchers, *,
                 interval: float = PROGRESS_INTERVAL) -> None:
        self._catalog = catalog
        self._watchers = watchers
        self._interval = interval
        self._live: dict[str, LiveJob] = {}
        self._lock = threading.Lock()

    def add_job(self, j: JobRecord) -> None:
        self._catalog.add_job(j)
        with self._lock:
            self._live[j.id] = LiveJob(j, self._catalog, self._watchers,
                                       interval=self._interval)
        self._watchers.notify(j.id)

    def save_job(self, j: JobRecord) -> None:
        with self._lock:
            live = self._live.pop(j.id, None) if j.ended else self._live.get(j.id)
        if live is None:
            self._catalog.save_job(j)
            self._watchers.notify(j.id)
        else:
            live.store(j)

    def get_job(self, id: str) -> JobRecord | None:
        return self._catalog.get_job(id)

    def live(self, job_id: str) -> LiveJob | None:
        with self._lock:
            return self._live.get(job_id)

    def phase_callback(self, job_id: str) -> Callable[[Phase], None]:
        """The :data:`~backup.phases.PhaseCallback` of job ``job_id``."""
        def phase(value: Phase) -> None:
            live = self.live(job_id)
            if live is not None:
                live.phase(value)
        return phase

    def progress_callback(self, job_id: str) -> Callable[[int, float], None]:
        """The :data:`~backup.streams.ProgressCallback` of job ``job_id``."""
        def progress(done: int, elapsed: float) -> None:
            live = self.live(job_id)
            if live is not None:
                live.progress(done, elapsed)
        return progress

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._catalog, name)


def wait_for_end(watchers: JobWatchers, read: Callable[[], JobRecord], timeout: float,
                 recheck: float = 5.0) -> JobRecord:
    """Block until the job ``read`` returns has ended, or ``timeout`` seconds
    passed; return it as it then stands. Woken by the job's writes; the catalog
    is also read every ``recheck`` seconds, for a job this process does not run."""
    changed = threading.Event()
    record = read()
    unsubscribe = watchers.subscribe(record.id, changed.set)
    try:
        deadline = time.monotonic() + timeout
        record = read()
        while not record.ended:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            changed.wait(min(left, recheck))
            changed.clear()
            record = read()
        return record
    finally:
        unsubscribe()
