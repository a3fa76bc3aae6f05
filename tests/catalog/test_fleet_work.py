"""The fleet's work queue in the catalog, on every backend and the fake: a request
queued for a host is claimed once under a lease, leases are renewed and expire
into ``interrupted``, and a schedule's slot goes to one daemon only."""

from __future__ import annotations

import threading
from datetime import timedelta

from service.ports import CatalogPort
from service.records import JobRecord, JobStatus
from tests.catalog.test_catalog import T0


def request_for(host: str, n: int, **changes: object) -> JobRecord:
    job = JobRecord(id=f"job-{host}-{n:04d}", kind="backup", status=JobStatus.QUEUED,
                    created_at=T0 + timedelta(seconds=n), instance=f"db-{n}", host=host,
                    request={"kind": "backup", "instance": f"db-{n}"})
    for name, value in changes.items():
        object.__setattr__(job, name, value)
    return job


LEASE = T0 + timedelta(minutes=1)


def test_requests_are_claimed_oldest_first_by_their_host_only(catalog: CatalogPort) -> None:
    for n in (3, 1, 2):
        catalog.add_job(request_for("edge-b", n))
    catalog.add_job(request_for("edge-a", 9))
    catalog.add_job(request_for("edge-b", 4, request=None))  # its own runner's job
    claimed = catalog.claim_requests("edge-b", 2, LEASE)
    assert [j.id for j in claimed] == ["job-edge-b-0001", "job-edge-b-0002"]
    assert all(j.lease_expires_at == LEASE for j in claimed)
    assert claimed[0].request == {"kind": "backup", "instance": "db-1"}
    assert [j.id for j in catalog.claim_requests("edge-b", 10, LEASE)] == ["job-edge-b-0003"]
    assert catalog.claim_requests("edge-b", 10, LEASE) == []
    got = catalog.get_job("job-edge-a-0009")
    assert got is not None and got.lease_expires_at is None


def test_a_claimed_request_is_handed_out_once_to_concurrent_claimers(
        catalog: CatalogPort) -> None:
    for n in range(60):
        catalog.add_job(request_for("edge-b", n))
    barrier, lock = threading.Barrier(4), threading.Lock()
    got: list[str] = []

    def claim() -> None:
        barrier.wait()
        while batch := catalog.claim_requests("edge-b", 5, LEASE):
            with lock:
                got.extend(j.id for j in batch)

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(got) == [f"job-edge-b-{n:04d}" for n in range(60)]  # each exactly once


def test_saving_a_job_never_moves_its_lease(catalog: CatalogPort) -> None:
    catalog.add_job(request_for("edge-b", 1))
    claimed, = catalog.claim_requests("edge-b", 1, LEASE)
    later = LEASE + timedelta(minutes=5)
    assert catalog.renew_leases("edge-b", later) == 1
    # A runner writing progress holds the record it claimed, with the old lease.
    catalog.save_job(JobRecord(**{**claimed.__dict__, "status": JobStatus.RUNNING,
                                  "started_at": T0, "bytes_done": 10}))
    got = catalog.get_job(claimed.id)
    assert got is not None and (got.status, got.bytes_done) == (JobStatus.RUNNING, 10)
    assert got.lease_expires_at == later


def test_leases_renew_for_their_host_and_expire_for_the_others(catalog: CatalogPort) -> None:
    for host, n in (("edge-a", 1), ("edge-b", 2), ("edge-b", 3)):
        catalog.add_job(request_for(host, n))
        catalog.claim_requests(host, 10, LEASE)
    catalog.add_job(request_for("edge-b", 4))  # queued for edge-b, never claimed
    done = request_for("edge-b", 5, lease_expires_at=LEASE, status=JobStatus.SUCCEEDED,
                       finished_at=T0)
    catalog.add_job(done)
    catalog.add_job(request_for("edge-c", 6, request=None))  # no lease: never swept
    assert catalog.renew_leases("edge-a", LEASE + timedelta(minutes=10)) == 1
    now = LEASE + timedelta(seconds=1)
    interrupted = catalog.interrupt_expired(now, "edge-a", "interrupted: edge-b stopped")
    assert [j.id for j in interrupted] == ["job-edge-b-0002", "job-edge-b-0003"]
    for job in interrupted:
        got = catalog.get_job(job.id)
        assert got is not None
        assert (got.status, got.finished_at, got.error) == (
            JobStatus.INTERRUPTED, now, "interrupted: edge-b stopped")
    for untouched in ("job-edge-a-0001", "job-edge-b-0004", "job-edge-c-0006"):
        got = catalog.get_job(untouched)
        assert got is not None and got.status == JobStatus.QUEUED and got.finished_at is None
    assert catalog.get_job(done.id) == done
    assert catalog.interrupt_expired(now, "edge-a", "again") == []


def test_the_host_s_own_expired_leases_are_spared(catalog: CatalogPort) -> None:
    catalog.add_job(request_for("edge-a", 1))
    catalog.claim_requests("edge-a", 1, LEASE)
    assert catalog.interrupt_expired(LEASE + timedelta(hours=1), "edge-a", "x") == []
    assert catalog.renew_leases("edge-b", LEASE) == 0


def test_a_slot_is_claimed_once(catalog: CatalogPort) -> None:
    slot = T0 + timedelta(hours=3)
    assert catalog.claim_slot("db", "backup", slot, "edge-a", T0) is True
    assert catalog.claim_slot("db", "backup", slot, "edge-b", T0) is False
    assert catalog.claim_slot("db", "verify", slot, "edge-b", T0) is True
    assert catalog.claim_slot("db", "backup", slot + timedelta(hours=1), "edge-b", T0) is True
    assert catalog.claim_slot("other", "backup", slot, "edge-b", T0) is True


def test_concurrent_claims_of_one_slot_have_one_winner(catalog: CatalogPort) -> None:
    slot, barrier = T0 + timedelta(hours=3), threading.Barrier(4)
    wins: list[bool] = []

    def claim(host: str) -> None:
        barrier.wait()
        wins.append(catalog.claim_slot("db", "backup", slot, host, T0))

    threads = [threading.Thread(target=claim, args=(f"edge-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(wins) == [False, False, False, True]


def test_old_slots_are_pruned(catalog: CatalogPort) -> None:
    catalog.claim_slot("db", "backup", T0, "edge-a", T0)
    catalog.claim_slot("db", "backup", T0 + timedelta(days=2), "edge-a", T0 + timedelta(days=2))
    assert catalog.prune_slots(T0 + timedelta(days=1)) == 1
    assert catalog.claim_slot("db", "backup", T0, "edge-a", T0) is True  # forgotten
    assert catalog.claim_slot("db", "backup", T0 + timedelta(days=2), "edge-b", T0) is False


def test_a_job_marked_interrupted_is_not_written_over_by_its_host(catalog: CatalogPort) -> None:
    catalog.add_job(request_for("edge-b", 1))
    claimed, = catalog.claim_requests("edge-b", 1, LEASE)
    catalog.interrupt_expired(LEASE + timedelta(seconds=1), "edge-a", "interrupted: lost")
    # edge-b was only cut off: it finishes, and its save comes in late.
    catalog.save_job(JobRecord(**{**claimed.__dict__, "status": JobStatus.SUCCEEDED,
                                  "finished_at": LEASE + timedelta(seconds=9)}))
    got = catalog.get_job(claimed.id)
    assert got is not None and (got.status, got.error) == (JobStatus.INTERRUPTED,
                                                           "interrupted: lost")
    other = request_for("edge-b", 2)
    catalog.add_job(other)
    catalog.save_job(JobRecord(**{**other.__dict__, "status": JobStatus.RUNNING}))
    saved = catalog.get_job(other.id)
    assert saved is not None and saved.status == JobStatus.RUNNING  # others still save
