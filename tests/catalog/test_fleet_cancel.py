"""Cancels across hosts in the catalog, on every backend and the fake: a request no
host has claimed is cancelled in one step (never also claimed), a job its host
has is only asked to stop (``cancel_requested_at``), its host lists what it was
asked to stop, and no save of the job clears the request."""

from __future__ import annotations

import threading
from datetime import timedelta

from service.ports import CatalogPort
from service.records import JobRecord, JobStatus
from tests.catalog.test_catalog import T0
from tests.catalog.test_fleet_work import LEASE, request_for

NOW = T0 + timedelta(minutes=2)
REASON = "cancelled by request"


def _stored(catalog: CatalogPort, job_id: str) -> JobRecord:
    got = catalog.get_job(job_id)
    assert got is not None
    return got


def test_an_unclaimed_request_is_cancelled_at_once_and_never_claimed(
        catalog: CatalogPort) -> None:
    queued = request_for("edge-b", 1)
    catalog.add_job(queued)
    cancelled = catalog.cancel_unclaimed(queued.id, NOW, REASON)
    assert cancelled is not None
    assert (cancelled.id, cancelled.status, cancelled.finished_at, cancelled.error) == (
        queued.id, JobStatus.CANCELLED, NOW, REASON)
    assert (cancelled.lease_expires_at, cancelled.host, cancelled.request) == (
        None, "edge-b", queued.request)
    assert _stored(catalog, queued.id) == cancelled
    assert catalog.claim_requests("edge-b", 10, LEASE) == []
    assert catalog.cancel_unclaimed(queued.id, NOW, "again") is None  # ended: untouched
    assert _stored(catalog, queued.id) == cancelled


def test_only_an_unclaimed_request_is_cancelled_in_one_step(catalog: CatalogPort) -> None:
    catalog.add_job(request_for("edge-b", 1))
    claimed, = catalog.claim_requests("edge-b", 1, LEASE)
    own = request_for("edge-b", 2, request=None)  # a runner's own queued job
    done = request_for("edge-b", 3, status=JobStatus.SUCCEEDED, finished_at=T0)
    for job in (own, done):
        catalog.add_job(job)
    for job in (claimed, own, done):
        assert catalog.cancel_unclaimed(job.id, NOW, REASON) is None
        assert _stored(catalog, job.id) == job
    assert catalog.cancel_unclaimed("job-nope", NOW, REASON) is None


def test_a_cancel_request_is_listed_for_the_job_s_host_until_it_ends(
        catalog: CatalogPort) -> None:
    for n in (2, 1):
        catalog.add_job(request_for("edge-b", n))
    catalog.add_job(request_for("edge-a", 3))
    catalog.add_job(request_for("edge-b", 4))  # never asked to stop
    claimed = {j.id: j for j in catalog.claim_requests("edge-b", 10, LEASE)}
    assert catalog.cancel_requests("edge-b") == []
    for job_id in ("job-edge-b-0002", "job-edge-b-0001", "job-edge-a-0003"):
        assert catalog.request_cancel(job_id, NOW) is True
    assert catalog.cancel_requests("edge-b") == ["job-edge-b-0001", "job-edge-b-0002"]
    assert catalog.cancel_requests("edge-a") == ["job-edge-a-0003"]
    asked = _stored(catalog, "job-edge-b-0001")
    assert asked.cancel_requested_at == NOW
    assert (asked.status, asked.finished_at, asked.lease_expires_at) == (
        JobStatus.QUEUED, None, LEASE)  # only asked: its host decides
    # A second request keeps the first one's time.
    assert catalog.request_cancel("job-edge-b-0001", NOW + timedelta(seconds=5)) is True
    assert _stored(catalog, "job-edge-b-0001").cancel_requested_at == NOW
    # Its host cancels it: it is no longer listed.
    first = claimed["job-edge-b-0001"]
    catalog.save_job(JobRecord(**{**first.__dict__, "status": JobStatus.CANCELLED,
                                  "finished_at": NOW + timedelta(seconds=1),
                                  "error": REASON}))
    assert catalog.cancel_requests("edge-b") == ["job-edge-b-0002"]
    assert _stored(catalog, first.id).cancel_requested_at == NOW  # kept, as a record


def test_an_ended_or_unknown_job_is_not_asked_to_stop(catalog: CatalogPort) -> None:
    done = request_for("edge-b", 1, status=JobStatus.FAILED, finished_at=T0,
                       lease_expires_at=LEASE, error="boom")
    catalog.add_job(done)
    assert catalog.request_cancel(done.id, NOW) is False
    assert _stored(catalog, done.id) == done
    assert catalog.cancel_requests("edge-b") == []
    assert catalog.request_cancel("job-nope", NOW) is False


def test_saving_a_job_never_writes_or_clears_its_cancel_request(catalog: CatalogPort) -> None:
    catalog.add_job(request_for("edge-b", 1))
    claimed, = catalog.claim_requests("edge-b", 1, LEASE)
    assert catalog.request_cancel(claimed.id, NOW) is True
    # Its host writes progress from the record it claimed, without the request.
    catalog.save_job(JobRecord(**{**claimed.__dict__, "status": JobStatus.RUNNING,
                                  "started_at": T0, "bytes_done": 10}))
    got = _stored(catalog, claimed.id)
    assert (got.status, got.bytes_done, got.cancel_requested_at) == (
        JobStatus.RUNNING, 10, NOW)
    assert catalog.cancel_requests("edge-b") == [claimed.id]
    # Nor does a record carrying one set it: only request_cancel writes it.
    fresh = request_for("edge-b", 2, cancel_requested_at=NOW)
    catalog.add_job(fresh)
    saved = request_for("edge-b", 3, cancel_requested_at=NOW)
    catalog.save_job(saved)
    catalog.save_job(JobRecord(**{**fresh.__dict__, "bytes_done": 5}))
    for job_id in (fresh.id, saved.id):
        assert _stored(catalog, job_id).cancel_requested_at is None
    assert catalog.cancel_requests("edge-b") == [claimed.id]


def test_a_request_is_either_claimed_or_cancelled_never_both(catalog: CatalogPort) -> None:
    ids = [request_for("edge-b", n).id for n in range(40)]
    for n in range(40):
        catalog.add_job(request_for("edge-b", n))
    barrier, lock = threading.Barrier(3), threading.Lock()
    claimed: list[str] = []
    cancelled: list[str] = []

    def claim() -> None:
        barrier.wait()
        while batch := catalog.claim_requests("edge-b", 3, LEASE):
            with lock:
                claimed.extend(j.id for j in batch)

    def cancel() -> None:
        barrier.wait()
        for job_id in reversed(ids):
            if catalog.cancel_unclaimed(job_id, NOW, REASON) is not None:
                with lock:
                    cancelled.append(job_id)

    threads = [threading.Thread(target=claim), threading.Thread(target=claim),
               threading.Thread(target=cancel)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not set(claimed) & set(cancelled)
    assert sorted(claimed + cancelled) == sorted(ids)  # each exactly once
    for job_id in claimed:
        got = _stored(catalog, job_id)
        assert (got.status, got.lease_expires_at, got.finished_at) == (
            JobStatus.QUEUED, LEASE, None)
    for job_id in cancelled:
        got = _stored(catalog, job_id)
        assert (got.status, got.lease_expires_at, got.error) == (
            JobStatus.CANCELLED, None, REASON)
