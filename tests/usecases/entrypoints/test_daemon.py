"""The daemon's parts over the fakes: Discovery following Docker events, the Scheduler."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable, Iterator
from datetime import timedelta

import pytest
import uvicorn
from fastapi import FastAPI

from backup.pipeline import data_key, new_snapshot_id
from backup.types import Snapshot, SnapshotStatus, utcnow
from service.entrypoints.daemon import main
from service.entrypoints.daemon.discovery import Discovery
from service.entrypoints.daemon.scheduler import Scheduler
from service.records import JobRecord, JobStatus
from service.usecases.backups import prepare_backup
from service.usecases.instances import Instance, live_instances
from service.usecases.jobs import JobRunner
from service.usecases.schedules import INTERVAL_EPOCH
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.entrypoints.helpers import add_db, wait_until

HOURLY = {"holdfast.schedule": "@every 1h"}


class SyncRecorder:
    """Stands in for the scheduler: records every sync discovery makes."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool]] = []

    def __call__(self, instances: list[Instance], catch_up: bool) -> None:
        self.calls.append(([i.name for i in instances], catch_up))

    def last(self) -> tuple[list[str], bool] | None:
        return self.calls[-1] if self.calls else None


def names(instances: Iterable[Instance]) -> list[str]:
    return [i.name for i in instances]


@pytest.fixture
def sync() -> SyncRecorder:
    return SyncRecorder()


@pytest.fixture
def discovery(world: FakeWorld, sync: SyncRecorder) -> Iterator[Discovery]:
    found = Discovery(world.services, sync, max_backoff=0.05)
    yield found
    if found._thread.ident is not None:  # stop() before start() raises
        found.stop()


def following(discovery: Discovery) -> Discovery:
    discovery.start()
    wait_until(discovery.connected.is_set)
    return discovery


# --- Discovery ---------------------------------------------------------------------------


def test_refresh_records_instances_and_syncs_with_catch_up(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    add_db(world)
    add_db(world, "stopped-db", running=False)
    world.docker.add_container("plain", labels={})
    assert names(discovery.refresh()) == ["shop-db", "stopped-db"]
    assert sync.calls == [(["shop-db", "stopped-db"], True)]
    assert [r.name for r in world.catalog.list_instances()] == ["shop-db", "stopped-db"]
    assert names(discovery.instances()) == ["shop-db", "stopped-db"]


def test_a_started_labelled_container_is_picked_up_from_its_event(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    following(discovery)
    assert sync.calls == [([], True)]
    new = add_db(world, "new-db")
    world.docker.emit("start", new.id)
    wait_until(lambda: sync.last() == (["new-db"], False))
    assert names(discovery.instances()) == ["new-db"]
    assert world.catalog.get_instance("new-db") is not None


def test_a_destroyed_container_is_dropped_but_its_history_kept(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    gone = add_db(world)
    following(discovery)
    assert names(discovery.instances()) == ["shop-db"]
    world.docker.remove_container(gone.id)
    world.docker.emit("destroy", gone.id)
    wait_until(lambda: sync.last() == ([], False))
    assert discovery.instances() == []
    assert world.catalog.get_instance("shop-db") is not None


def test_an_unlabelled_containers_event_is_ignored(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    following(discovery)
    plain = world.docker.add_container("plain", labels={})
    world.docker.emit("start", plain.id)
    labelled = add_db(world)
    world.docker.emit("start", labelled.id)  # events are handled in order: plain's went first
    wait_until(lambda: sync.last() == (["shop-db"], False))
    assert sync.calls == [([], True), (["shop-db"], False)]
    assert world.catalog.get_instance("plain") is None


def test_a_broken_event_stream_reconnects_and_relists(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    following(discovery)
    add_db(world, "late-db")  # no event: only a fresh listing can find it
    first = world.docker.events[0]
    first.break_stream()
    wait_until(lambda: sync.last() == (["late-db"], True))
    assert first.closed
    assert len(world.docker.events) == 2
    wait_until(discovery.connected.is_set)

    newer = add_db(world, "newer-db")  # the new stream is followed too
    world.docker.emit("start", newer.id)
    wait_until(lambda: sync.last() == (["late-db", "newer-db"], False))


def test_an_ended_event_stream_reconnects_and_relists(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    following(discovery)
    world.docker.events[0].close()  # the engine hung up (EventStreamEnded)
    wait_until(lambda: len(world.docker.events) == 2 and discovery.connected.is_set())
    assert sync.calls == [([], True), ([], True)]


def test_an_event_for_a_container_already_gone_drops_it(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    gone = add_db(world)
    following(discovery)
    world.docker.remove_container(gone.id)
    world.docker.emit("die", gone.id)  # inspecting it finds nothing
    wait_until(lambda: sync.last() == ([], False))
    assert discovery.instances() == []


def test_an_event_that_cannot_be_inspected_is_logged_and_the_stream_kept(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder,
        caplog: pytest.LogCaptureFixture) -> None:
    following(discovery)
    missed, seen = add_db(world, "missed-db"), add_db(world, "seen-db")
    world.docker.unreachable = True
    with caplog.at_level(logging.WARNING):
        world.docker.emit("start", missed.id)
        wait_until(lambda: "could not follow start" in caplog.text)
    world.docker.unreachable = False
    world.docker.emit("start", seen.id)
    wait_until(lambda: sync.last() == (["seen-db"], False))
    assert len(world.docker.events) == 1


def test_discovery_keeps_retrying_while_docker_is_down(
        world: FakeWorld, discovery: Discovery, sync: SyncRecorder) -> None:
    add_db(world)
    world.docker.unreachable = True
    discovery.start()
    assert not discovery.connected.is_set()
    world.docker.unreachable = False
    wait_until(discovery.connected.is_set)
    assert sync.calls == [(["shop-db"], True)]


def test_stop_ends_the_thread_and_closes_the_stream(
        world: FakeWorld, discovery: Discovery) -> None:
    following(discovery)
    discovery.stop()
    assert not discovery._thread.is_alive()
    assert [stream.closed for stream in world.docker.events] == [True]


def test_discovery_drives_the_scheduler_as_containers_start_and_stop(
        world: FakeWorld, jobs: JobRunner) -> None:
    scheduler = Scheduler(world.services, jobs)
    found = Discovery(world.services, lambda instances, catch_up: scheduler.sync(
        instances, catch_up=catch_up), max_backoff=0.05)
    scheduler.start()
    try:
        following(found)
        new = add_db(world, labels=HOURLY)
        world.docker.emit("start", new.id)
        wait_until(lambda: scheduler.scheduled() == {"shop-db": "@every 1h"})
        assert scheduler.next_run("shop-db") is not None
        world.docker.stop_container(new.id)
        world.docker.emit("die", new.id)
        wait_until(lambda: scheduler.scheduled() == {})
        assert scheduler.next_run("shop-db") is None
        assert [i.name for i in found.instances()] == ["shop-db"]  # stopped, still known
    finally:
        found.stop()
        scheduler.shutdown()


# --- Scheduler ---------------------------------------------------------------------------


@pytest.fixture
def scheduler(world: FakeWorld, jobs: JobRunner) -> Iterator[Scheduler]:
    made = Scheduler(world.services, jobs)
    yield made
    made.shutdown()


def test_sync_schedules_only_running_instances_with_a_valid_schedule(
        world: FakeWorld, scheduler: Scheduler) -> None:
    add_db(world, "running-db", labels=HOURLY)
    add_db(world, "stopped-db", labels=HOURLY, running=False)
    add_db(world, "broken-db", labels={"holdfast.schedule": "whenever"})
    add_db(world, "manual-db")
    scheduler.sync(live_instances(world.services))
    assert scheduler.scheduled() == {"running-db": "@every 1h"}
    assert world.catalog.list_jobs() == []


def test_next_run_is_set_for_a_scheduled_instance(
        world: FakeWorld, scheduler: Scheduler) -> None:
    add_db(world, labels=HOURLY)
    add_db(world, "manual-db")
    scheduler.start()
    scheduler.sync(live_instances(world.services))
    next_run = scheduler.next_run("shop-db")
    assert next_run is not None
    assert timedelta() < next_run - utcnow() <= timedelta(hours=1)
    assert (next_run - INTERVAL_EPOCH) % timedelta(hours=1) == timedelta()  # the same fleet-wide
    assert scheduler.next_run("manual-db") is None


def test_sync_removes_the_jobs_of_vanished_instances(
        world: FakeWorld, scheduler: Scheduler) -> None:
    add_db(world, labels=HOURLY)
    gone = add_db(world, "gone-db", labels=HOURLY)
    scheduler.sync(live_instances(world.services))
    assert set(scheduler.scheduled()) == {"shop-db", "gone-db"}
    world.docker.remove_container(gone.id)
    scheduler.sync(live_instances(world.services))
    assert scheduler.scheduled() == {"shop-db": "@every 1h"}
    assert scheduler.next_run("gone-db") is None


def test_sync_follows_a_changed_schedule(world: FakeWorld, scheduler: Scheduler) -> None:
    container = add_db(world, labels=HOURLY)
    scheduler.start()
    scheduler.sync(live_instances(world.services))
    container.labels["holdfast.schedule"] = "@every 6h"
    scheduler.sync(live_instances(world.services))
    assert scheduler.scheduled() == {"shop-db": "@every 6h"}
    next_run = scheduler.next_run("shop-db")
    assert next_run is not None and timedelta() < next_run - utcnow() <= timedelta(hours=6)
    assert (next_run - INTERVAL_EPOCH) % timedelta(hours=6) == timedelta()


def seed_snapshot(world: FakeWorld, instance: str, age: timedelta) -> Snapshot:
    created = utcnow() - age
    snapshot_id = new_snapshot_id(created)
    snapshot = Snapshot(id=snapshot_id, instance=instance, engine="fake", target="local",
                        status=SnapshotStatus.COMPLETE, created_at=created,
                        finished_at=created, data_key=data_key(instance, snapshot_id))
    world.catalog.add_snapshot(snapshot)
    return snapshot


def status_of(world: FakeWorld, job_id: str) -> JobStatus | None:
    record = world.catalog.get_job(job_id)
    return None if record is None else record.status


def test_catch_up_runs_an_overdue_instance_exactly_once(
        world: FakeWorld, scheduler: Scheduler) -> None:
    add_db(world, labels=HOURLY)
    add_db(world, "recent-db", labels=HOURLY)
    add_db(world, "never-db", labels=HOURLY)
    seed_snapshot(world, "shop-db", timedelta(hours=2))
    # Ran within the current hourly slot (slots fall on whole hours, fleet-wide).
    seed_snapshot(world, "recent-db", (utcnow() - utcnow().replace(minute=0, second=0)) / 2)

    scheduler.sync(live_instances(world.services), catch_up=True)
    [job] = world.catalog.list_jobs()
    assert (job.kind, job.instance) == ("backup", "shop-db")
    wait_until(lambda: status_of(world, job.id) == JobStatus.SUCCEEDED)
    assert len(world.catalog.list_snapshots("shop-db", SnapshotStatus.COMPLETE)) == 2

    scheduler.sync(live_instances(world.services), catch_up=True)  # now it is up to date
    assert len(world.catalog.list_jobs()) == 1


def test_a_started_scheduler_fires_on_its_schedule(world: FakeWorld, scheduler: Scheduler) -> None:
    add_db(world, labels={"holdfast.schedule": "@every 1s"})
    scheduler.start()
    scheduler.sync(live_instances(world.services))
    wait_until(lambda: bool(world.catalog.list_snapshots("shop-db", SnapshotStatus.COMPLETE)))
    [job, *_] = world.catalog.list_jobs()
    assert (job.kind, job.instance) == ("backup", "shop-db")


def test_fire_skips_with_a_log_when_the_instance_already_runs(
        world: FakeWorld, scheduler: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    add_db(world, labels=HOURLY)
    scheduler.sync(live_instances(world.services))
    world.services.gate.claim("shop-db", "job-manual")
    with caplog.at_level(logging.INFO):
        scheduler._fire("shop-db")
    assert world.catalog.list_jobs() == []
    [record] = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert "job-manual" in record.getMessage()
    assert record.levelno == logging.INFO


def test_fire_logs_an_error_when_the_backup_cannot_start(
        world: FakeWorld, scheduler: Scheduler, caplog: pytest.LogCaptureFixture) -> None:
    container = add_db(world, labels=HOURLY)
    scheduler.sync(live_instances(world.services))
    del container.env["FAKE_PASSWORD"]
    with caplog.at_level(logging.INFO):
        scheduler._fire("shop-db")
        scheduler._fire("unknown-db")  # not synced: nothing to do
    assert world.catalog.list_jobs() == []
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "cannot start" in record.getMessage() and "FAKE_PASSWORD" in record.getMessage()


# --- run_daemon ----------------------------------------------------------------------------


def test_run_daemon_recovers_serves_with_live_parts_and_shuts_down(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, labels=HOURLY)
    world.catalog.add_job(JobRecord(id="job-old", kind="backup", status=JobStatus.RUNNING,
                                    created_at=utcnow(), instance="shop-db"))
    served: dict[str, object] = {}

    def serve(app: FastAPI, *, host: str, port: int, **_: object) -> None:
        client = api_client(app)
        wait_until(lambda: client.get("/v1/instances").json()[0]["next_run"] is not None)
        served["address"] = (host, port)
        served["ready"] = client.get("/readyz").status_code

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])  # run_daemon configures logging
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(main, "bootstrap", lambda settings: world.services)
    monkeypatch.setattr(uvicorn, "run", serve)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    # Nothing listens on 8999 here; the real check is tests/unit/test_bind_guard.py.
    monkeypatch.setattr(main, "ensure_port_free", lambda host, port: None)
    main.run_daemon(world.services.settings, host="127.0.0.1", port=8999)

    assert served == {"address": ("127.0.0.1", 8999), "ready": 200}
    old = world.catalog.get_job("job-old")
    assert old is not None and old.status == JobStatus.FAILED
    assert (old.error or "").startswith("interrupted")
    assert (world.docker.closed, world.catalog.closed) == (1, True)
    assert not [t for t in threading.enumerate() if t.name == "holdfast-discovery"]


# --- JobRunner, as the API and the scheduler use it --------------------------------------


def test_a_backup_job_lets_go_of_its_instance_before_it_is_seen_finished(
        world: FakeWorld, jobs: JobRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that polls the job until it has succeeded may ask for the next
    backup at once: the instance is free by the time the final status is stored."""
    add_db(world)
    holders_when_finished: list[str | None] = []
    save_job = world.catalog.save_job

    def recording(job: JobRecord) -> None:
        if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
            holders_when_finished.append(world.services.gate.holder("shop-db"))
        save_job(job)
    monkeypatch.setattr(world.catalog, "save_job", recording)

    first = jobs.submit_backup(prepare_backup(world.services, "shop-db"))
    wait_until(lambda: status_of(world, first.id) == JobStatus.SUCCEEDED)
    assert holders_when_finished == [None]
    second = jobs.submit_backup(prepare_backup(world.services, "shop-db"))  # no AlreadyRunning
    wait_until(lambda: status_of(world, second.id) == JobStatus.SUCCEEDED)
    assert holders_when_finished == [None, None]
