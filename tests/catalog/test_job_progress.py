"""Jobs' progress columns, idempotency keys and list filters on every catalog: SQLite,
PostgreSQL, the CLI's quick SQLite reader and the in-memory fake."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from backup.errors import Conflict
from service.ports import CatalogPort
from service.records import JobRecord, JobStatus
from tests.catalog.test_catalog import T0


def job(id: str, *, kind: str = "backup", instance: str | None = "shop",
        status: JobStatus = JobStatus.SUCCEEDED, at: int = 0,
        key: str | None = None) -> JobRecord:
    return JobRecord(id=id, kind=kind, status=status, instance=instance,
                     created_at=T0 + timedelta(minutes=at), idempotency_key=key,
                     request_fingerprint=None if key is None else "f" * 64)


def test_progress_and_the_key_round_trip(catalog: CatalogPort) -> None:
    queued = job("j1", status=JobStatus.QUEUED, key="deploy-42")
    catalog.add_job(queued)
    running = replace(queued, status=JobStatus.RUNNING, phase="loading", bytes_done=5 << 30,
                      bytes_total=6 << 30, transfer_started_at=T0 + timedelta(seconds=1),
                      progress_at=T0 + timedelta(seconds=11), started_at=T0)
    catalog.save_job(running)
    got = catalog.get_job("j1")
    assert got == running
    assert got is not None and got.rate() == (5 << 30) / 10
    assert catalog.job_with_idempotency_key("deploy-42") == running


def test_a_key_names_one_job(catalog: CatalogPort) -> None:
    catalog.add_job(job("j1", key="deploy-42"))
    with pytest.raises(Conflict):
        catalog.add_job(job("j2", key="deploy-42"))
    assert [j.id for j in catalog.list_jobs()] == ["j1"]
    catalog.add_job(job("j3", key="deploy-43"))
    catalog.add_job(job("j4"))
    catalog.add_job(job("j5"))  # jobs without a key do not clash
    assert {j.id for j in catalog.list_jobs()} == {"j1", "j3", "j4", "j5"}


def test_a_key_is_compared_exactly(catalog: CatalogPort) -> None:
    catalog.add_job(job("j1", key="Deploy-42"))
    assert catalog.job_with_idempotency_key("deploy-42") is None
    assert catalog.job_with_idempotency_key("Deploy-4") is None
    assert catalog.job_with_idempotency_key("Deploy-42%") is None


def test_list_jobs_filters_by_kind_status_and_instance_newest_first(
        catalog: CatalogPort) -> None:
    catalog.add_job(job("b1", at=0))
    catalog.add_job(job("r1", kind="restore", at=1))
    catalog.add_job(job("b2", status=JobStatus.FAILED, at=2))
    catalog.add_job(job("b3", instance="blog", at=3))
    catalog.add_job(job("c1", kind="clone", instance=None, status=JobStatus.RUNNING, at=4))

    def ids(**filters: object) -> list[str]:
        return [j.id for j in catalog.list_jobs(**filters)]  # type: ignore[arg-type]

    assert ids() == ["c1", "b3", "b2", "r1", "b1"]
    assert ids(kind="backup") == ["b3", "b2", "b1"]
    assert ids(instance="shop") == ["b2", "r1", "b1"]
    assert ids(kind="backup", instance="shop") == ["b2", "b1"]
    assert ids(kind="backup", instance="shop", statuses=[JobStatus.SUCCEEDED]) == ["b1"]
    assert ids(statuses=[JobStatus.FAILED, JobStatus.RUNNING]) == ["c1", "b2"]
    assert ids(statuses=[]) == []
    assert ids(kind="backup", limit=2) == ["b3", "b2"]
    assert ids(kind="restore", instance="blog") == []
