"""Background jobs: each job's life is recorded in the catalog, one backup per
instance at a time, and shutdown neither strands nor half-finishes work."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from backup.errors import Cancelled, JobNotFound
from backup.types import SnapshotStatus
from service.adapters.catalog.urls import CatalogUnavailable
from service.observability.metrics import Metrics
from service.records import JobRecord, JobStatus
from service.runs import AlreadyRunning
from service.usecases import backups, instances, job_queries, restores, scheduled, volumes
from service.usecases.jobs import JobRunner, ShuttingDown
from tests.fakes.services import FakeWorld
from tests.usecases.support import add_db, objects, take_backup, wait_until

DONE = (JobStatus.SUCCEEDED, JobStatus.FAILED)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def runner(world: FakeWorld, metrics: Metrics) -> Iterator[JobRunner]:
    job_runner = JobRunner(world.services, workers=1, metrics=metrics)
    yield job_runner
    job_runner.cancel.set()
    job_runner.shutdown(grace=5)


def _job(world: FakeWorld, job_id: str) -> JobRecord:
    record = world.catalog.get_job(job_id)
    assert record is not None
    return record


def _when(world: FakeWorld, job_id: str, statuses: Sequence[JobStatus]) -> JobRecord:
    wait_until(lambda: _job(world, job_id).status in statuses, what=f"{job_id} in {statuses}")
    return _job(world, job_id)


def _finished(world: FakeWorld, job_id: str) -> JobRecord:
    return _when(world, job_id, DONE)


def _blocker(runner: JobRunner, release: threading.Event) -> JobRecord:
    """A job that occupies the only worker until ``release`` (or shutdown's cancel)."""
    def work() -> dict[str, Any]:
        while not release.wait(0.01):
            if runner.cancel.is_set():
                raise Cancelled("cancelled: the blocker was stopped")
        return {"blocked": True}

    return runner.submit("test", work)


def _snapshots_counted(metrics: Metrics, instance: str, status: str) -> float | None:
    return metrics.registry.get_sample_value("holdfast_snapshots_total",
                                             {"instance": instance, "status": status})


# --- backups ----------------------------------------------------------------------


def test_a_backup_job_records_the_snapshot_and_what_retention_pruned(
        world: FakeWorld, runner: JobRunner, metrics: Metrics) -> None:
    add_db(world, "shop", labels={"holdfast.retention": "last=1"})
    first = take_backup(world, "shop")
    job = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    assert (job.kind, job.status, job.instance) == ("backup", JobStatus.QUEUED, "shop")
    done = _finished(world, job.id)
    assert done.status == JobStatus.SUCCEEDED and done.error is None
    assert done.result is not None and done.result["pruned"] == [first.id]
    (snapshot,) = world.catalog.list_snapshots()
    assert done.result["id"] == snapshot.id == done.snapshot_id
    assert done.result["status"] == "complete" and done.result["sha256"] == snapshot.sha256
    assert done.started_at is not None and done.finished_at is not None
    assert done.created_at <= done.started_at <= done.finished_at
    assert _snapshots_counted(metrics, "shop", "complete") == 1
    wait_until(lambda: world.services.gate.holder("shop") is None, what="the gate to open")


def test_a_job_is_queued_then_running_then_done(world: FakeWorld, runner: JobRunner) -> None:
    release = threading.Event()
    job = _blocker(runner, release)
    running = _when(world, job.id, [JobStatus.RUNNING])
    assert running.started_at is not None and running.finished_at is None
    assert running.result is None
    release.set()
    done = _finished(world, job.id)
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, {"blocked": True})


def test_a_second_backup_of_the_same_instance_names_the_first_job(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    release = threading.Event()
    _blocker(runner, release)
    request = backups.prepare_backup(world.services, "shop")
    first = runner.submit_backup(request)
    with pytest.raises(AlreadyRunning, match=f"backup of shop is already running \\({first.id}\\)"):
        runner.submit_backup(request)
    assert len(world.catalog.list_jobs()) == 2
    release.set()
    assert _finished(world, first.id).status == JobStatus.SUCCEEDED
    assert len(world.catalog.list_snapshots()) == 1


def test_a_backup_the_catalog_cannot_record_frees_its_instance(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    request = backups.prepare_backup(world.services, "shop")
    world.catalog.down = True
    with pytest.raises(CatalogUnavailable):
        runner.submit_backup(request)
    assert world.services.gate.holder("shop") is None


def test_a_failed_backup_job_records_the_one_line_error(
        world: FakeWorld, runner: JobRunner, metrics: Metrics) -> None:
    add_db(world, "shop")
    world.docker.dump_error = "ERROR: disk on fire\nCONTEXT: COPY rows, line 3"
    job = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    done = _finished(world, job.id)
    assert done.status == JobStatus.FAILED
    assert done.error == "fake-dump exited 1: ERROR: disk on fire"
    # Its JSON names the error's class (holdfast --server exits by it) and has no result.
    assert (done.to_json()["error_type"], done.to_json()["result"]) == ("ExecFailed", None)
    (snapshot,) = world.catalog.list_snapshots()
    assert snapshot.status == SnapshotStatus.FAILED and snapshot.error == done.error
    assert _snapshots_counted(metrics, "shop", "failed") == 1
    wait_until(lambda: world.services.gate.holder("shop") is None, what="the gate to open")


# --- restores and clones ------------------------------------------------------------


def test_a_restore_job_restores_and_records_the_result(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop", content=b"the data" * 1000)
    snapshot = take_backup(world, "shop")
    request = restores.prepare_restore(world.services, snapshot.id, "copy")
    job = runner.submit_restore(request)
    assert (job.kind, job.instance, job.snapshot_id) == ("restore", "shop", snapshot.id)
    done = _finished(world, job.id)
    assert done.status == JobStatus.SUCCEEDED and done.snapshot_id == snapshot.id
    assert done.result is not None
    assert (done.result["container"], done.result["volumes"]) == ("copy", ["copy-data"])
    assert world.docker.data_of("copy") == b"the data" * 1000


def test_a_failed_restore_job_records_why(world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    request = restores.prepare_restore(world.services, snapshot.id, "copy")
    world.docker.refuse_start = "no memory"
    done = _finished(world, runner.submit_restore(request).id)
    assert done.status == JobStatus.FAILED and done.error is not None
    assert done.error.endswith("Docker refused: no memory")
    assert "copy" not in world.docker.container_names()


def test_a_clone_job_copies_the_volume(world: FakeWorld, runner: JobRunner) -> None:
    world.docker.add_container("db", volume="db-data", content=b"rows")
    plan = volumes.prepare_clone(world.services, "db-data", "db-copy")
    done = _finished(world, runner.submit_clone(plan).id)
    assert (done.kind, done.status) == ("clone", JobStatus.SUCCEEDED)
    assert done.result is not None and done.result["target"] == "db-copy"
    assert done.result["created"] is True and done.result["size_bytes"] == 4
    assert world.docker.volumes["db-copy"].content == b"rows"


# --- looking up ----------------------------------------------------------------------


def test_get_job_returns_the_record(world: FakeWorld, runner: JobRunner) -> None:
    release = threading.Event()
    release.set()
    job = _blocker(runner, release)
    _finished(world, job.id)
    assert job_queries.get_job(world.services, job.id) == _job(world, job.id)


def test_get_job_of_an_unknown_id_is_refused(world: FakeWorld) -> None:
    with pytest.raises(JobNotFound, match="no job 'job-nope'; job ids come from the POST"):
        job_queries.get_job(world.services, "job-nope")


# --- shutting down -------------------------------------------------------------------


def test_after_shutdown_new_work_is_refused(world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    request = backups.prepare_backup(world.services, "shop")
    runner.shutdown(grace=1)
    with pytest.raises(ShuttingDown, match="shutting down and takes no new work"):
        runner.submit("test", lambda: {})
    with pytest.raises(ShuttingDown):
        runner.submit_backup(request)
    assert world.services.gate.holder("shop") is None
    assert world.catalog.list_jobs() == []


def test_shutdown_fails_queued_jobs_and_frees_their_instance(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    blocker = _blocker(runner, threading.Event())
    _when(world, blocker.id, [JobStatus.RUNNING])
    queued = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    runner.shutdown(grace=0.05, cancel_wait=5)
    record = _job(world, queued.id)
    assert record.status == JobStatus.FAILED
    assert record.error == "cancelled: Holdfast shut down before it started"
    assert _job(world, blocker.id).error == "cancelled: the blocker was stopped"
    assert world.services.gate.holder("shop") is None
    assert world.catalog.list_snapshots() == []


def test_shutdown_cancels_a_running_backup_and_fails_its_snapshot(
        world: FakeWorld, runner: JobRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, "shop", content=b"z" * 100_000)
    dumping = threading.Event()
    original = world.docker.stream

    def slow_stream(container_id: str, argv: Sequence[str], *,
                    env: Mapping[str, str] | None = None,
                    user: str | None = None) -> Iterator[bytes]:
        for n, chunk in enumerate(original(container_id, argv, env=env, user=user)):
            if n == 1:
                dumping.set()
                runner.cancel.wait(5)  # a dump still going when shutdown's grace ends
            yield chunk

    monkeypatch.setattr(world.docker, "stream", slow_stream)
    job = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    assert dumping.wait(5)
    runner.shutdown(grace=0.05, cancel_wait=5)
    record = _job(world, job.id)
    assert record.status == JobStatus.FAILED
    assert record.error is not None and record.error.startswith("cancelled:")
    (snapshot,) = world.catalog.list_snapshots()
    assert snapshot.status == SnapshotStatus.FAILED
    assert snapshot.error is not None and snapshot.error.startswith("cancelled:")
    assert objects(world) == {}


def test_a_queued_job_that_starts_after_cancel_is_not_run(
        world: FakeWorld, runner: JobRunner) -> None:
    ran = threading.Event()
    release = threading.Event()
    blocker = _blocker(runner, release)
    _when(world, blocker.id, [JobStatus.RUNNING])

    def work() -> dict[str, Any]:
        ran.set()
        return {}

    queued = runner.submit("test", work)
    runner.cancel.set()
    done = _finished(world, queued.id)
    assert (done.status, done.error) == (JobStatus.FAILED, "cancelled: Holdfast shut down first")
    assert not ran.is_set()


def test_shutdown_cuts_the_streams_of_a_job_that_ignores_cancel(
        world: FakeWorld, runner: JobRunner) -> None:
    def stalled() -> dict[str, Any]:  # a dump waiting on a lock inside the database
        wait_until(lambda: world.docker.aborted > 0, timeout=10, what="the streams to be cut")
        raise Cancelled("cancelled: stream cut")

    job = runner.submit("test", stalled)
    _when(world, job.id, [JobStatus.RUNNING])
    runner.shutdown(grace=0.05, cancel_wait=0.2)
    assert world.docker.aborted == 1
    assert _finished(world, job.id).error == "cancelled: stream cut"


# --- scheduled backups -----------------------------------------------------------------


def test_a_scheduled_backup_is_queued_and_runs(world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop", labels={"holdfast.schedule": "@hourly"})
    job = scheduled.start_scheduled_backup(world.services, runner,
                                      instances.find_instance(world.services, "shop"))
    assert job is not None and _finished(world, job.id).status == JobStatus.SUCCEEDED
    assert [s.status for s in world.catalog.list_snapshots()] == [SnapshotStatus.COMPLETE]


def test_a_scheduled_backup_that_cannot_start_queues_nothing(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop", running=False, labels={"holdfast.schedule": "@hourly"})
    instance = instances.find_instance(world.services, "shop")
    assert scheduled.start_scheduled_backup(world.services, runner, instance) is None
    assert world.catalog.list_jobs() == []


def test_a_scheduled_backup_is_skipped_while_one_runs(world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop", labels={"holdfast.schedule": "@hourly"})
    instance = instances.find_instance(world.services, "shop")
    world.services.gate.claim("shop", "job-earlier")
    assert scheduled.start_scheduled_backup(world.services, runner, instance) is None
    assert world.catalog.list_jobs() == []
