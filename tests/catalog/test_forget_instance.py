"""The catalog's forget_instance, on SQLite, PostgreSQL and the in-memory fake: the
instance row (its policy with it) and that instance's snapshot rows go in one
call; other instances' rows and every job stay."""

from __future__ import annotations

from datetime import timedelta

from service.ports import CatalogPort
from service.records import JobRecord, JobStatus
from tests.catalog.test_catalog import T0, make_instance, make_snapshot


def test_forget_removes_the_instance_and_its_snapshot_rows_only(catalog: CatalogPort) -> None:
    catalog.upsert_instance(make_instance("shop-db"))
    catalog.set_policy_override("shop-db", {"schedule": "@hourly"})
    catalog.upsert_instance(make_instance("other-db"))
    # Added newest first, so the answer's order (oldest first) is the catalog's doing.
    for n, snapshot_id in enumerate(["snap-c", "snap-b", "snap-a"]):
        catalog.add_snapshot(make_snapshot(snapshot_id, created_at=T0 - timedelta(hours=n)))
    catalog.add_snapshot(make_snapshot("other-1", instance="other-db"))
    catalog.add_job(JobRecord(id="job-1", kind="backup", status=JobStatus.SUCCEEDED,
                              created_at=T0, instance="shop-db"))

    assert catalog.forget_instance("shop-db") == (True, ["snap-a", "snap-b", "snap-c"])

    assert catalog.get_instance("shop-db") is None
    assert [r.name for r in catalog.list_instances()] == ["other-db"]
    assert [s.id for s in catalog.list_snapshots()] == ["other-1"]
    assert catalog.latest_snapshot("shop-db") is None
    assert catalog.get_job("job-1") is not None  # history stays
    # A new discovery starts afresh: no policy comes back with the record.
    catalog.upsert_instance(make_instance("shop-db"))
    record = catalog.get_instance("shop-db")
    assert record is not None and record.policy_override is None


def test_forget_of_an_unknown_name_removes_nothing(catalog: CatalogPort) -> None:
    catalog.upsert_instance(make_instance("shop-db"))
    catalog.add_snapshot(make_snapshot("snap-a"))
    assert catalog.forget_instance("nope") == (False, [])
    assert catalog.get_instance("shop-db") is not None
    assert [s.id for s in catalog.list_snapshots()] == ["snap-a"]


def test_snapshot_rows_without_an_instance_row_are_forgotten_too(catalog: CatalogPort) -> None:
    catalog.add_snapshot(make_snapshot("snap-a"))
    assert catalog.forget_instance("shop-db") == (False, ["snap-a"])
    assert catalog.list_snapshots() == []
