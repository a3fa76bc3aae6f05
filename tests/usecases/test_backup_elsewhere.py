"""A backup job is refused when submitted (not after it was accepted) if another process,
such as a CLI backup, is backing the instance up: the refusal names that snapshot. A
running row left by a process that is gone does not block."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from backup.types import Snapshot, SnapshotStatus
from service.records import JobStatus
from service.runs import AlreadyRunning, runner_for
from service.usecases import backups
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.usecases.support import (
    DEAD_RUNNER,
    OTHER_HOST_RUNNER,
    add_db,
    make_snapshot,
    wait_until,
)


@pytest.fixture
def runner(world: FakeWorld) -> Iterator[JobRunner]:
    job_runner = JobRunner(world.services, workers=1)
    yield job_runner
    job_runner.shutdown(grace=5, cancel_wait=5)


@pytest.fixture
def live_process() -> Iterator[str]:
    """The runner identity of another live process on this host (a CLI backup's)."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        yield runner_for(process.pid)
    finally:
        process.kill()
        process.wait(timeout=10)


def _running(world: FakeWorld, runner: str) -> Snapshot:
    return make_snapshot(world, "shop", status=SnapshotStatus.RUNNING, runner=runner)


@pytest.mark.parametrize("who", ["live_process", "other_host"])
def test_a_backup_another_process_is_writing_is_refused_at_submit(
        world: FakeWorld, runner: JobRunner, live_process: str, who: str) -> None:
    add_db(world, "shop")
    other = _running(world, live_process if who == "live_process" else OTHER_HOST_RUNNER)
    request = backups.prepare_backup(world.services, "shop")
    with pytest.raises(AlreadyRunning,
                       match=f"backup of shop is already running \\(snapshot {other.id}\\)"
                       ) as caught:
        runner.submit_backup(request)
    assert caught.value.holder == other.id
    assert world.catalog.list_jobs() == []
    assert world.catalog.list_snapshots() == [other]
    assert world.services.gate.holder("shop") is None


def test_a_running_row_of_a_dead_process_does_not_block(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    _running(world, DEAD_RUNNER)
    job = runner.submit_backup(backups.prepare_backup(world.services, "shop"))

    def done() -> bool:
        record = world.catalog.get_job(job.id)
        return record is not None and record.status in (JobStatus.SUCCEEDED, JobStatus.FAILED)
    wait_until(done, what="the backup job to finish")
    record = world.catalog.get_job(job.id)
    assert record is not None and record.status == JobStatus.SUCCEEDED, record
    assert len(world.catalog.list_snapshots(status=SnapshotStatus.COMPLETE)) == 1


def test_the_refusal_ends_once_the_other_process_is_gone(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        _running(world, runner_for(process.pid))
        request = backups.prepare_backup(world.services, "shop")
        with pytest.raises(AlreadyRunning):
            runner.submit_backup(request)
    finally:
        process.kill()
        process.wait(timeout=10)
    assert runner.submit_backup(request).status == JobStatus.QUEUED
