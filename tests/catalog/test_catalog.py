"""The catalog repository against SQLite and PostgreSQL: every record type round
trips field by field, listings are ordered and filtered, and errors are ours."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.errors import Conflict, HoldfastError, InstanceNotFound
from backup.types import Snapshot, SnapshotStatus
from service.adapters.catalog import (
    Catalog,
    CatalogUnavailable,
    InstanceRecord,
    JobRecord,
    JobStatus,
    open_catalog,
)
from service.adapters.catalog.db import make_engine
from service.adapters.catalog.urls import normalize_url, redact_url

T0 = datetime(2024, 5, 17, 3, 0, 0, 123456, tzinfo=UTC)
CEST = timezone(timedelta(hours=2))


def assert_same_fields(actual: Any, expected: Any) -> None:
    """Field-by-field equality, with every timestamp timezone-aware and in UTC."""
    assert type(actual) is type(expected)
    for f in dataclasses.fields(expected):
        got, want = getattr(actual, f.name), getattr(expected, f.name)
        if isinstance(want, datetime):
            assert isinstance(got, datetime), f.name
            assert got.tzinfo is not None, f"{f.name} is naive"
            assert got.utcoffset() == timedelta(0), f"{f.name} is not UTC"
        assert got == want, f.name
        assert type(got) is type(want), f.name


def make_snapshot(id: str = "snap-1", **changes: Any) -> Snapshot:
    base = Snapshot(
        id=id,
        instance="shop-db",
        engine="postgres",
        target="local",
        status=SnapshotStatus.COMPLETE,
        created_at=T0,
        data_key=f"shop-db/{id}.pgdump.zst",
        finished_at=T0 + timedelta(seconds=42, microseconds=7),
        size_bytes=5 * 2**40,  # past 32 bits: the columns are BIGINT
        raw_bytes=17 * 2**40,
        sha256="ab" * 32,
        image="postgres:16",
        image_id="sha256:" + "cd" * 32,
        error=None,
        pinned=True,
    )
    return base.with_changes(**changes)


def make_instance(name: str = "shop-db", **changes: Any) -> InstanceRecord:
    base = InstanceRecord(
        name=name,
        engine="postgres",
        container_id="c0ffee" * 10,
        container_name="shop-db-1",
        image="postgres:16",
        labels={"holdfast.enable": "true", "holdfast.schedule": "@daily"},
        error=None,
        first_seen=T0,
        last_seen=T0,
    )
    return dataclasses.replace(base, **changes)


def make_job(id: str = "job-1", **changes: Any) -> JobRecord:
    base = JobRecord(id=id, kind="backup", status=JobStatus.QUEUED, created_at=T0)
    return dataclasses.replace(base, **changes)


# --- instances -----------------------------------------------------------------


def test_instance_round_trip(catalog: Catalog) -> None:
    rec = make_instance(
        error="holdfast.schedule: bad cron '61 * * * *'",
        # Given in another zone: it must come back as the same instant, in UTC.
        first_seen=T0.astimezone(CEST),
        last_seen=(T0 + timedelta(minutes=5)).astimezone(CEST),
        policy_override={"schedule": "@hourly", "retention": {"last": 3}, "enabled": True},
        host="edge-1",
    )
    catalog.upsert_instance(rec)
    got = catalog.get_instance("shop-db")
    assert got is not None
    assert_same_fields(got, rec)
    assert got.first_seen.tzinfo is UTC or got.first_seen.utcoffset() == timedelta(0)


def test_instance_with_nulls_round_trips(catalog: Catalog) -> None:
    rec = InstanceRecord("bare", None, None, None, None, {}, None, T0, T0, None)
    catalog.upsert_instance(rec)
    assert_same_fields(catalog.get_instance("bare"), rec)


def test_get_instance_missing(catalog: Catalog) -> None:
    assert catalog.get_instance("nope") is None


def test_upsert_instance_survives_container_recreation(catalog: Catalog) -> None:
    catalog.upsert_instance(make_instance())
    catalog.set_policy_override("shop-db", {"schedule": "@hourly"})
    later = T0 + timedelta(days=3)
    recreated = make_instance(
        container_id="beef" * 16,
        container_name="shop-db-2",
        image="postgres:17",
        labels={"holdfast.enable": "true"},
        error="holdfast.engine: unknown engine 'oracle'",
        first_seen=later,  # what discovery would say about a container it just met
        last_seen=later,
    )
    catalog.upsert_instance(recreated)
    got = catalog.get_instance("shop-db")
    assert got is not None
    assert got.first_seen == T0
    assert got.last_seen == later
    assert got.container_id == "beef" * 16
    assert got.container_name == "shop-db-2"
    assert got.image == "postgres:17"
    assert got.labels == {"holdfast.enable": "true"}
    assert got.error == "holdfast.engine: unknown engine 'oracle'"
    # Discovery knows nothing of the API's policy and must not erase it.
    assert got.policy_override == {"schedule": "@hourly"}
    assert [i.name for i in catalog.list_instances()] == ["shop-db"]


def test_list_instances_sorted_by_name(catalog: Catalog) -> None:
    for name in ["web-db", "cache", "accounts", "zeta"]:
        catalog.upsert_instance(make_instance(name))
    assert [i.name for i in catalog.list_instances()] == ["accounts", "cache", "web-db", "zeta"]


def test_set_policy_override(catalog: Catalog) -> None:
    catalog.upsert_instance(make_instance())
    policy = {"schedule": "0 3 * * *", "retention": {"daily": 7, "weekly": 4}, "target": "s3"}
    catalog.set_policy_override("shop-db", policy)
    got = catalog.get_instance("shop-db")
    assert got is not None and got.policy_override == policy
    catalog.set_policy_override("shop-db", None)
    got = catalog.get_instance("shop-db")
    assert got is not None and got.policy_override is None


def test_set_policy_override_unknown_instance(catalog: Catalog) -> None:
    with pytest.raises(InstanceNotFound):
        catalog.set_policy_override("ghost", {"schedule": "@daily"})


# --- snapshots -----------------------------------------------------------------


def test_snapshot_round_trip(catalog: Catalog) -> None:
    snap = make_snapshot(created_at=T0.astimezone(CEST))
    catalog.add_snapshot(snap)
    got = catalog.get_snapshot(snap.id)
    assert got is not None
    assert_same_fields(got, snap)
    assert got.to_json() == snap.to_json()
    assert got.to_json()["created_at"] == "2024-05-17T03:00:00.123456Z"


def test_snapshot_with_nulls_round_trips(catalog: Catalog) -> None:
    snap = Snapshot(
        id="s-running",
        instance="shop-db",
        engine="redis",
        target="local",
        status=SnapshotStatus.RUNNING,
        created_at=T0,
        data_key="shop-db/s-running.rdb",
    )
    catalog.add_snapshot(snap)
    assert_same_fields(catalog.get_snapshot("s-running"), snap)


def test_add_snapshot_twice_is_a_conflict(catalog: Catalog) -> None:
    catalog.add_snapshot(make_snapshot())
    with pytest.raises(Conflict):
        catalog.add_snapshot(make_snapshot())


def test_save_snapshot_inserts_then_replaces(catalog: Catalog) -> None:
    running = make_snapshot(
        status=SnapshotStatus.RUNNING,
        finished_at=None,
        size_bytes=None,
        raw_bytes=None,
        sha256=None,
        pinned=False,
    )
    catalog.save_snapshot(running)
    assert_same_fields(catalog.get_snapshot(running.id), running)
    failed = running.with_changes(
        status=SnapshotStatus.FAILED,
        finished_at=T0 + timedelta(seconds=3),
        error='pg_dump exited 1: FATAL: role "x" does not exist',
    )
    catalog.save_snapshot(failed)
    assert_same_fields(catalog.get_snapshot(running.id), failed)
    assert len(catalog.list_snapshots()) == 1


def test_get_snapshot_missing(catalog: Catalog) -> None:
    assert catalog.get_snapshot("nope") is None


def test_list_snapshots_newest_first(catalog: Catalog) -> None:
    # Inserted out of order; "b" and "c" share a timestamp, so the id breaks the tie.
    order = [("b", 2), ("a", 1), ("d", 3), ("c", 2), ("e", 0)]
    for sid, minutes in order:
        catalog.add_snapshot(make_snapshot(sid, created_at=T0 + timedelta(minutes=minutes)))
    assert [s.id for s in catalog.list_snapshots()] == ["d", "c", "b", "a", "e"]


def test_list_snapshots_orders_by_instant_not_by_local_time(catalog: Catalog) -> None:
    # 04:00+02:00 is 02:00Z, earlier than 03:00Z, although its wall clock is later.
    catalog.add_snapshot(make_snapshot("early", created_at=datetime(2024, 1, 1, 4, tzinfo=CEST)))
    catalog.add_snapshot(make_snapshot("late", created_at=datetime(2024, 1, 1, 3, tzinfo=UTC)))
    assert [s.id for s in catalog.list_snapshots()] == ["late", "early"]


def test_list_snapshots_filters(catalog: Catalog) -> None:
    catalog.add_snapshot(make_snapshot("a1", instance="a", status=SnapshotStatus.COMPLETE))
    catalog.add_snapshot(
        make_snapshot(
            "a2", instance="a", status=SnapshotStatus.FAILED, created_at=T0 + timedelta(hours=1)
        )
    )
    catalog.add_snapshot(make_snapshot("b1", instance="b", status=SnapshotStatus.COMPLETE))
    assert [s.id for s in catalog.list_snapshots(instance="a")] == ["a2", "a1"]
    assert [s.id for s in catalog.list_snapshots(instance="b")] == ["b1"]
    assert catalog.list_snapshots(instance="c") == []
    complete = catalog.list_snapshots(status=SnapshotStatus.COMPLETE)
    assert sorted(s.id for s in complete) == ["a1", "b1"]
    assert [s.id for s in catalog.list_snapshots("a", SnapshotStatus.COMPLETE)] == ["a1"]
    assert catalog.list_snapshots("b", SnapshotStatus.RUNNING) == []


def test_latest_snapshot_any_status(catalog: Catalog) -> None:
    assert catalog.latest_snapshot("shop-db") is None
    catalog.add_snapshot(make_snapshot("old", created_at=T0))
    catalog.add_snapshot(
        make_snapshot("new", created_at=T0 + timedelta(hours=1), status=SnapshotStatus.FAILED)
    )
    catalog.add_snapshot(make_snapshot("other", instance="x", created_at=T0 + timedelta(days=1)))
    latest = catalog.latest_snapshot("shop-db")
    assert latest is not None and latest.id == "new"


def test_delete_snapshot(catalog: Catalog) -> None:
    catalog.add_snapshot(make_snapshot("keep"))
    catalog.add_snapshot(make_snapshot("drop"))
    assert catalog.delete_snapshot("drop") is True
    assert catalog.get_snapshot("drop") is None
    assert catalog.delete_snapshot("drop") is False
    assert [s.id for s in catalog.list_snapshots()] == ["keep"]


# --- jobs ----------------------------------------------------------------------


def test_job_round_trip(catalog: Catalog) -> None:
    job = JobRecord(
        id="job-rt",
        kind="restore",
        status=JobStatus.SUCCEEDED,
        created_at=T0.astimezone(CEST),
        instance="shop-db",
        snapshot_id="snap-1",
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=30),
        error=None,
        result={"container": "shop-restored", "volumes": ["v1", "v2"], "nested": {"n": 1.5}},
    )
    catalog.add_job(job)
    got = catalog.get_job("job-rt")
    assert got is not None
    assert_same_fields(got, job)
    assert got.to_json() == job.to_json()


def test_job_lifecycle(catalog: Catalog) -> None:
    queued = make_job(instance="shop-db")
    catalog.add_job(queued)
    assert_same_fields(catalog.get_job("job-1"), queued)

    running = dataclasses.replace(queued, status=JobStatus.RUNNING, started_at=T0 + timedelta(1))
    catalog.save_job(running)
    assert_same_fields(catalog.get_job("job-1"), running)

    done = dataclasses.replace(
        running,
        status=JobStatus.SUCCEEDED,
        finished_at=T0 + timedelta(days=1, seconds=9),
        snapshot_id="snap-9",
        result=make_snapshot("snap-9").to_json(),
    )
    catalog.save_job(done)
    got = catalog.get_job("job-1")
    assert_same_fields(got, done)
    assert got is not None
    assert got.to_json() == {
        "id": "job-1",
        "kind": "backup",
        "status": "succeeded",
        "instance": "shop-db",
        "snapshot_id": "snap-9",
        "created_at": "2024-05-17T03:00:00.123456Z",
        "started_at": "2024-05-18T03:00:00.123456Z",
        "finished_at": "2024-05-18T03:00:09.123456Z",
        "error": None,
        "error_type": None,
        "result": make_snapshot("snap-9").to_json(),
        "phase": None,
        "bytes_done": None,
        "bytes_total": None,
        "rate": None,
        "eta_seconds": None,
        "host": None,
    }

    failed = dataclasses.replace(done, status=JobStatus.FAILED, error="boom", result=None)
    catalog.save_job(failed)
    assert_same_fields(catalog.get_job("job-1"), failed)


def test_save_job_inserts(catalog: Catalog) -> None:
    job = make_job("fresh", kind="restore", snapshot_id="s")
    catalog.save_job(job)
    assert_same_fields(catalog.get_job("fresh"), job)


def test_add_job_twice_is_a_conflict(catalog: Catalog) -> None:
    catalog.add_job(make_job())
    with pytest.raises(Conflict):
        catalog.add_job(make_job())


def test_get_job_missing(catalog: Catalog) -> None:
    assert catalog.get_job("nope") is None


def test_list_jobs_newest_first_with_limit(catalog: Catalog) -> None:
    for n in range(7):
        catalog.add_job(make_job(f"job-{n}", created_at=T0 + timedelta(seconds=n)))
    assert [j.id for j in catalog.list_jobs()] == [f"job-{n}" for n in range(6, -1, -1)]
    assert [j.id for j in catalog.list_jobs(limit=3)] == ["job-6", "job-5", "job-4"]


# --- concurrency, errors and the engine ------------------------------------------


def test_concurrent_writers_from_threads(catalog: Catalog) -> None:
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for n in range(15):
                moment = T0 + timedelta(seconds=worker * 100 + n)
                catalog.upsert_instance(make_instance("shared", last_seen=moment))
                catalog.save_snapshot(make_snapshot(f"w{worker}-{n}", created_at=moment))
                catalog.save_job(make_job(f"w{worker}", status=JobStatus.RUNNING))
                catalog.list_snapshots(instance="shop-db")
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(catalog.list_snapshots()) == 6 * 15
    assert len(catalog.list_jobs()) == 6
    shared = catalog.get_instance("shared")
    assert shared is not None and shared.first_seen == T0


def test_ping_passes_on_a_live_catalog_and_fails_on_a_dead_one(catalog: Catalog) -> None:
    catalog.ping()  # returns None; raising would fail the test
    dead = Catalog(make_engine(
        "postgresql://holdfast:ping-secret-9f@127.0.0.1:1/none?connect_timeout=2"))
    with pytest.raises(CatalogUnavailable) as caught:
        dead.ping()
    assert "ping-secret-9f" not in str(caught.value)
    dead.close()


def test_closed_catalog_can_reconnect(db_url: str) -> None:
    first = open_catalog(db_url)
    first.add_snapshot(make_snapshot())
    first.close()
    again = open_catalog(db_url)  # the second open finds the schema at head already
    try:
        assert again.get_snapshot("snap-1") is not None
    finally:
        again.close()


def test_sqlite_engine_pragmas_and_directory(tmp_path: Any) -> None:
    path = tmp_path / "deep" / "er" / "catalog.db"
    opened = open_catalog(f"sqlite:///{path}")
    try:
        assert path.exists()
        with opened.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        opened.close()


def test_in_memory_sqlite_is_shared_between_threads() -> None:
    opened = open_catalog("sqlite://")
    try:
        worker = threading.Thread(target=opened.add_snapshot, args=(make_snapshot(),))
        worker.start()
        worker.join()
        assert opened.get_snapshot("snap-1") is not None
    finally:
        opened.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
def test_unreachable_postgres_raises_catalog_unavailable(scheme: str) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        url = f"{scheme}://holdfast:s3cr3t-pa55@127.0.0.1:{port}/catalog"
        with pytest.raises(CatalogUnavailable) as caught:
            open_catalog(url)
    message = str(caught.value)
    assert "s3cr3t-pa55" not in message
    assert "s3cr3t-pa55" not in repr(caught.value)
    assert "***" in message and f"127.0.0.1:{port}" in message
    assert "\n" not in message
    assert isinstance(caught.value, HoldfastError) and caught.value.retryable


def test_unreachable_sqlite_raises_catalog_unavailable(tmp_path: Any) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CatalogUnavailable):
        open_catalog(f"sqlite:///{blocker}/sub/catalog.db")


def test_not_a_sqlite_database(tmp_path: Any) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not an SQLite file" * 100)
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog(f"sqlite:///{junk}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["mysql://root:hunter2@localhost/db", "not a url :hunter2", "nosuchdb+x://u:hunter2@h/d"],
)
def test_unsupported_or_bad_urls(url: str) -> None:
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog(url)
    assert "hunter2" not in str(caught.value)


# --- URLs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u:p@h/db?sslmode=require", "postgresql+psycopg://u:p@h/db?sslmode=require"),
        ("POSTGRES://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("postgresql+psycopg2://h/db", "postgresql+psycopg2://h/db"),
        ("sqlite:////var/lib/holdfast/catalog.db", "sqlite:////var/lib/holdfast/catalog.db"),
        ("sqlite:///relative.db", "sqlite:///relative.db"),
        ("sqlite://", "sqlite://"),
        ("  postgres://h/db\n", "postgresql+psycopg://h/db"),
        ("mysql://h/db", "mysql://h/db"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql+psycopg://u:pw@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgresql+psycopg://u@h/db?password=pw", "postgresql+psycopg://u@h/db?password=***"),
        ("sqlite:///x.db", "sqlite:///x.db"),
        ("::garbage pw", "<unparsable database URL>"),
    ],
)
def test_redact_url(given: str, expected: str) -> None:
    assert redact_url(given) == expected


# --- properties ------------------------------------------------------------------

moments = st.datetimes(
    min_value=datetime(1970, 1, 2),
    max_value=datetime(2200, 1, 1),
    timezones=st.sampled_from([UTC, CEST, timezone(timedelta(hours=-9, minutes=-30))]),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(created=moments, finished=st.none() | moments, size=st.none() | st.integers(0, 2**63 - 1))
def test_any_timestamp_and_size_round_trips(
    catalog: Catalog, created: datetime, finished: datetime | None, size: int | None
) -> None:
    snap = make_snapshot("prop", created_at=created, finished_at=finished, size_bytes=size)
    catalog.save_snapshot(snap)
    assert_same_fields(catalog.get_snapshot("prop"), snap)
