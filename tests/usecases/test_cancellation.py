"""Cancelling jobs: a queued job never runs, a running one (even stalled, as a dump
waiting on a lock) stops with only its own streams cut, and leaves the clean state
of a failure: no partial object, a failed snapshot, a free instance, no container
or volume the job created; the metrics stay balanced."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from backup.errors import JobNotFound
from backup.types import SnapshotStatus, utcnow
from service.observability.metrics import Metrics
from service.records import JobRecord, JobStatus
from service.usecases import backups, cancellation, restores, volumes
from service.usecases.cancellation import JobElsewhere, JobEnded
from service.usecases.jobs import CANCELLED_BY_REQUEST, JobRunner, new_job_id
from tests.fakes.docker import COPY, DUMP, LOAD
from tests.fakes.engine import FakeEngine
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import add_db, objects, take_backup, wait_until

LIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def runner(world: FakeWorld, metrics: Metrics) -> Iterator[JobRunner]:
    job_runner = JobRunner(world.services, workers=2, metrics=metrics)
    yield job_runner
    job_runner.cancel.set()
    world.docker.abort_streams()  # a stalled fake exec a failing test left behind
    job_runner.shutdown(grace=5)


def _job(world: FakeWorld, job_id: str) -> JobRecord:
    record = world.catalog.get_job(job_id)
    assert record is not None
    return record


def _ended(world: FakeWorld, job_id: str) -> JobRecord:
    wait_until(lambda: _job(world, job_id).status not in LIVE, what=f"{job_id} to end")
    return _job(world, job_id)


def _stalled(world: FakeWorld, job_id: str, program: str) -> None:
    wait_until(lambda: (job_id, program) in world.docker.stalled,
               what=f"{program} of {job_id} to stall")


def _gauge(metrics: Metrics, name: str) -> float | None:
    return metrics.registry.get_sample_value(name)


def _assert_cancelled(record: JobRecord) -> None:
    assert (record.status, record.error, record.result) == (
        JobStatus.CANCELLED, CANCELLED_BY_REQUEST, None)
    assert record.finished_at is not None


def _blockers(world: FakeWorld, runner: JobRunner, release: threading.Event) -> None:
    """Occupy both workers until ``release``."""
    started = [runner.submit("test", lambda: {"released": release.wait(10)}) for _ in range(2)]
    wait_until(lambda: all(_job(world, job.id).status == JobStatus.RUNNING for job in started),
               what="the blockers to run")


# --- queued ---------------------------------------------------------------------------


def test_a_queued_backup_is_cancelled_at_once_and_never_runs(
        world: FakeWorld, runner: JobRunner, metrics: Metrics) -> None:
    add_db(world, "shop")
    release = threading.Event()
    _blockers(world, runner, release)
    queued = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    outcome = cancellation.cancel_job(world.services, runner, queued.id, wait=0)
    assert outcome.ended
    _assert_cancelled(outcome.job)
    assert _job(world, queued.id) == outcome.job
    assert world.services.gate.holder("shop") is None
    release.set()
    # It never ran: no snapshot row, no dump, and a new backup is accepted.
    wait_until(lambda: runner.running() == 0, what="the blockers to end")
    assert world.catalog.list_snapshots() == []
    assert not any(argv[0] == DUMP for _, argv, _ in world.docker.execs)
    again = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    assert _ended(world, again.id).status == JobStatus.SUCCEEDED
    assert _job(world, queued.id).status == JobStatus.CANCELLED
    assert _gauge(metrics, "holdfast_queued_jobs") == 0
    assert _gauge(metrics, "holdfast_running_jobs") == 0


# --- running --------------------------------------------------------------------------


def test_a_running_backup_stalled_on_a_lock_is_cut_and_leaves_nothing(
        world: FakeWorld, runner: JobRunner, metrics: Metrics) -> None:
    add_db(world, "shop", labels={"holdfast.retention": "last=1"})
    earlier = take_backup(world, "shop")
    kept = objects(world)
    world.docker.stall.add(DUMP)
    job = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    _stalled(world, job.id, DUMP)
    assert _job(world, job.id).status == JobStatus.RUNNING

    outcome = cancellation.cancel_job(world.services, runner, job.id)

    assert outcome.ended
    _assert_cancelled(outcome.job)
    assert world.docker.aborted_holders == [job.id]  # its streams only, not shutdown's cut
    failed, complete = world.catalog.list_snapshots(instance="shop")
    assert (failed.status, failed.error) == (SnapshotStatus.FAILED, "cancelled")
    assert complete == earlier  # retention (last=1) did not run after the cancel
    assert objects(world) == kept  # the partial object is gone, the earlier one is kept
    assert world.services.gate.holder("shop") is None
    world.docker.stall.clear()
    again = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    assert _ended(world, again.id).status == JobStatus.SUCCEEDED
    assert _gauge(metrics, "holdfast_running_jobs") == 0
    assert _gauge(metrics, "holdfast_queued_jobs") == 0
    assert metrics.registry.get_sample_value(
        "holdfast_snapshots_total", {"instance": "shop", "status": "failed"}) == 1


def test_cancelling_one_job_leaves_the_others_streams_alone(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    add_db(world, "blog")
    world.docker.stall.add(DUMP)
    shop = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    blog = runner.submit_backup(backups.prepare_backup(world.services, "blog"))
    _stalled(world, shop.id, DUMP)
    _stalled(world, blog.id, DUMP)
    _assert_cancelled(cancellation.cancel_job(world.services, runner, shop.id).job)
    assert _job(world, blog.id).status == JobStatus.RUNNING
    assert world.services.gate.holder("blog") == blog.id
    cancellation.cancel_job(world.services, runner, blog.id)
    _assert_cancelled(_ended(world, blog.id))


def test_a_running_restore_is_undone_and_the_source_untouched(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop", content=b"the rows" * 10_000)
    snapshot = take_backup(world, "shop")
    before = world.docker.data_of("shop")
    volumes_before = set(world.docker.volumes)
    world.docker.stall.add(LOAD)
    job = runner.submit_restore(restores.prepare_restore(world.services, snapshot.id, "copy"))
    _stalled(world, job.id, LOAD)
    assert "copy" in world.docker.container_names() and "copy-data" in world.docker.volumes

    _assert_cancelled(cancellation.cancel_job(world.services, runner, job.id).job)

    assert "copy" not in world.docker.container_names()
    assert set(world.docker.volumes) == volumes_before  # copy-data is gone, the source's kept
    assert world.docker.data_of("shop") == before
    assert world.catalog.get_snapshot(snapshot.id) == snapshot
    assert world.catalog.live_copies() == []


def test_a_restore_cancelled_while_it_waits_for_ready_is_undone(
        tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    # Readiness would be awaited for 10 minutes: only the cancel ends the wait.
    world = fake_world(tmp_path, env={"HOLDFAST_READY_TIMEOUT": "600"})
    runner = JobRunner(world.services, workers=1, metrics=metrics)
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    waiting = threading.Event()

    def never_ready(self: FakeEngine, container: object, exec_: object) -> bool:
        waiting.set()
        return False

    monkeypatch.setattr(FakeEngine, "is_ready", never_ready)
    job = runner.submit_restore(restores.prepare_restore(world.services, snapshot.id, "copy"))
    assert waiting.wait(5)
    try:
        _assert_cancelled(cancellation.cancel_job(world.services, runner, job.id).job)
    finally:
        runner.shutdown(grace=0.1, cancel_wait=5)
    assert "copy" not in world.docker.container_names()
    assert "copy-data" not in world.docker.volumes


def test_a_running_clone_removes_the_volume_it_created(
        world: FakeWorld, runner: JobRunner) -> None:
    world.docker.add_container("db", volume="db-data", content=b"rows")
    world.docker.stall.add(COPY)
    job = runner.submit_clone(volumes.prepare_clone(world.services, "db-data", "db-copy"))
    _stalled(world, job.id, COPY)
    assert "db-copy" in world.docker.volumes
    _assert_cancelled(cancellation.cancel_job(world.services, runner, job.id).job)
    assert "db-copy" not in world.docker.volumes
    assert world.docker.volumes["db-data"].content == b"rows"


def test_a_cancelled_clone_keeps_a_volume_that_existed_before(
        world: FakeWorld, runner: JobRunner) -> None:
    world.docker.add_container("db", volume="db-data", content=b"rows")
    world.docker.add_container("other", volume="db-copy", content=b"old", running=False)
    world.docker.remove_container(world.docker.by_name("other").id)
    world.docker.stall.add(COPY)
    plan = volumes.prepare_clone(world.services, "db-data", "db-copy", force=True)
    job = runner.submit_clone(plan)
    _stalled(world, job.id, COPY)
    _assert_cancelled(cancellation.cancel_job(world.services, runner, job.id).job)
    assert "db-copy" in world.docker.volumes


# --- refused ----------------------------------------------------------------------------


def test_cancelling_an_ended_job_is_a_conflict_that_changes_nothing(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    job = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    done = _ended(world, job.id)
    assert done.status == JobStatus.SUCCEEDED
    with pytest.raises(JobEnded, match=f"job {job.id} already succeeded; only a queued or "
                                       "running job can be cancelled"):
        cancellation.cancel_job(world.services, runner, job.id)
    assert _job(world, job.id) == done
    assert [s.status for s in world.catalog.list_snapshots()] == [SnapshotStatus.COMPLETE]


def test_cancelling_an_unknown_job_is_not_found(world: FakeWorld, runner: JobRunner) -> None:
    with pytest.raises(JobNotFound, match="no job 'job-nope'"):
        cancellation.cancel_job(world.services, runner, "job-nope")


def test_a_job_another_process_runs_cannot_be_cancelled_here(
        world: FakeWorld, runner: JobRunner) -> None:
    other = JobRecord(id=new_job_id(), kind="backup", status=JobStatus.RUNNING,
                      created_at=utcnow(), instance="shop")
    world.catalog.add_job(other)
    with pytest.raises(JobElsewhere, match="is running in another Holdfast process"):
        cancellation.cancel_job(world.services, runner, other.id)
    assert _job(world, other.id) == other
