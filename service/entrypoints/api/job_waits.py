"""How the API answers with a job: ``Idempotency-Key``, ``?wait=true&timeout=S``,
and the Server-Sent Events of ``GET /v1/jobs/{id}/events``.

A route that starts a job hands :func:`answer_with_job` the request's
idempotency and a function that prepares and submits the job. The submit (its
checks touch Docker, storage and the catalog) runs in the thread pool; the wait
runs on the event loop, woken by the job runner's in-process signal
(:class:`~service.usecases.job_progress.JobWatchers`), so a client waiting ten
minutes holds no thread. The answer is 200 when the job returned has ended and
202 while it is queued or running; a replayed request (same key, same request)
also carries ``Idempotent-Replayed: true``.

Streams send the job's JSON as event ``progress`` on each change (the runner
writes progress at most about once a second) and as event ``end`` when it has
ended, then close; an ended job gets its ``end`` at once. sse-starlette sends a
comment every :data:`PING_SECONDS` to keep proxies from closing an idle
stream, and cancels the generator when the client goes away, which drops its
subscription. At most :data:`MAX_STREAMS` streams are open at once (503 above).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Annotated, Any

from fastapi import Header, Query, Request, status
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from backup.errors import Busy
from service.entrypoints.api.responses import Job
from service.records import JobRecord
from service.usecases.idempotency import KEY_PATTERN, Idempotency
from service.usecases.job_progress import JobWatchers
from service.usecases.jobs import JobRunner

DEFAULT_WAIT_SECONDS = 600.0
MAX_WAIT_SECONDS = 3600.0
RECHECK_SECONDS = 1.0
"""Besides its signal, a waiter re-reads the catalog this often: a job another
process runs (or one whose signal was missed) still ends the wait."""
PING_SECONDS = 15.0
MAX_STREAMS = 100

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="1 to 255 printable ASCII characters (a UUID "
    "will do): a retry with the same key and the same request returns the first "
    "request's job and starts nothing; the same key with another request is 409",
    json_schema_extra={"pattern": KEY_PATTERN})]
Wait = Annotated[bool, Query(description="block until the job ends (200 with its final "
                                         "state), or until `timeout` (202 as it stands)")]
Timeout = Annotated[float | None, Query(
    ge=1, le=MAX_WAIT_SECONDS,
    description=f"seconds to wait with `wait=true` (1 to {MAX_WAIT_SECONDS:.0f}, "
                f"default {DEFAULT_WAIT_SECONDS:.0f})")]

JOB_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Job, "description": "The job has ended (with `wait=true`, or a replay "
                                       "of an ended job): its final state"},
    202: {"model": Job, "description": "The job is queued or running: poll "
                                       "`GET /v1/jobs/{id}` or stream `GET /v1/jobs/{id}/events`"},
}
"""The two success statuses of a route answered by :func:`answer_with_job`."""


class TooManyStreams(Busy):
    """More event streams are open than the daemon serves at once (503)."""


async def answer_with_job(jobs: JobRunner, idempotency: Idempotency | None,
                          start: Callable[[Idempotency | None], JobRecord], *,
                          wait: bool, timeout: float | None) -> JSONResponse:
    """Submit (or, for a known key, find) the job, wait if asked, and answer it."""
    job, replayed = await run_in_threadpool(jobs.submit_once, idempotency, start)
    if wait:
        job = await wait_until_ended(jobs, job.id, timeout or DEFAULT_WAIT_SECONDS)
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(job.to_json(), headers=headers,
                        status_code=status.HTTP_200_OK if job.ended
                        else status.HTTP_202_ACCEPTED)


class _Changes:
    """An asyncio event set from any thread whenever the runner writes the job."""

    def __init__(self, watchers: JobWatchers, job_id: str) -> None:
        loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._unsubscribe = watchers.subscribe(
            job_id, lambda: loop.call_soon_threadsafe(self._event.set))

    async def next(self, timeout: float) -> None:
        """Return at the next change, or after ``timeout`` seconds."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)
        self._event.clear()

    def close(self) -> None:
        self._unsubscribe()


async def wait_until_ended(jobs: JobRunner, job_id: str, timeout: float) -> JobRecord:
    """The job once it has ended, or as it stands after ``timeout`` seconds."""
    changes = _Changes(jobs.watchers, job_id)
    try:
        deadline = time.monotonic() + timeout
        job = await run_in_threadpool(jobs.get, job_id)
        while not job.ended and (left := deadline - time.monotonic()) > 0:
            await changes.next(min(left, RECHECK_SECONDS))
            job = await run_in_threadpool(jobs.get, job_id)
        return job
    finally:
        changes.close()


def stream_slots(request: Request) -> StreamSlots:
    """The app's :class:`StreamSlots`, made on first use."""
    slots: StreamSlots | None = getattr(request.app.state, "job_streams", None)
    if slots is None:
        slots = request.app.state.job_streams = StreamSlots()
    return slots


class StreamSlots:
    """Counts the open event streams (one event loop: no lock needed)."""

    def __init__(self, limit: int = MAX_STREAMS) -> None:
        self.limit = limit
        self.open = 0

    def check(self) -> None:
        """Refuse a new stream while ``limit`` are open."""
        if self.open >= self.limit:
            raise TooManyStreams(f"{self.limit} job event streams are open already; poll "
                                 "GET /v1/jobs/{id} instead, or retry later")


async def job_events(jobs: JobRunner, job: JobRecord, slots: StreamSlots) -> AsyncIterator[
        ServerSentEvent]:
    """``progress`` on each change of the job's JSON, then ``end``. Counted in
    ``slots`` while it runs, however it ends (a client gone among them)."""
    slots.open += 1
    changes = _Changes(jobs.watchers, job.id)
    try:
        sent: dict[str, Any] | None = None
        while True:
            body = job.to_json()
            if job.ended:
                yield ServerSentEvent(data=json.dumps(body), event="end")
                return
            if body != sent:
                yield ServerSentEvent(data=json.dumps(body), event="progress")
                sent = body
            await changes.next(RECHECK_SECONDS)
            job = await run_in_threadpool(jobs.get, job.id)
    finally:
        changes.close()
        slots.open -= 1


def event_stream(jobs: JobRunner, job: JobRecord, slots: StreamSlots) -> EventSourceResponse:
    """The response streaming ``job``'s events; :class:`TooManyStreams` if
    ``slots`` are all taken."""
    slots.check()
    return EventSourceResponse(job_events(jobs, job, slots), ping=PING_SECONDS)
