"""Start-up recovery: after a crash the catalog and the targets agree again, and
nothing a live process is doing is disturbed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

import pytest

from backup.errors import StorageUnavailable
from backup.types import SnapshotStatus, utcnow
from service.records import InstanceRecord, JobRecord, JobStatus
from service.runs import current_runner
from service.usecases import recovery
from tests.fakes.docker import FakeContainer
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import (
    DEAD_RUNNER,
    T0,
    add_db,
    make_snapshot,
    objects,
    replace_object,
    snapshot_keys,
    take_backup,
)


def test_a_snapshot_left_running_by_a_dead_process_is_failed_and_removed(
        world: FakeWorld) -> None:
    left = make_snapshot(world, "db", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER)
    report = recovery.recover(world.services)
    assert report.interrupted == [left.id]
    snapshot = world.catalog.get_snapshot(left.id)
    assert snapshot is not None and snapshot.status == SnapshotStatus.FAILED
    assert snapshot.error is not None and snapshot.error.startswith("interrupted:")
    assert snapshot.runner is None and snapshot.finished_at is not None
    assert objects(world) == {}


def test_a_snapshot_a_live_process_is_writing_is_left_alone(world: FakeWorld) -> None:
    running = make_snapshot(world, "db", status=SnapshotStatus.RUNNING, runner=current_runner())
    report = recovery.recover(world.services)
    assert report.interrupted == []
    assert world.catalog.get_snapshot(running.id) == running
    assert set(objects(world)) == {running.data_key}


def test_queued_and_running_jobs_of_the_last_daemon_are_failed(world: FakeWorld) -> None:
    jobs = {status: JobRecord(id=f"job-{status}", kind="backup", status=status, created_at=T0)
            for status in JobStatus}
    for job in jobs.values():
        world.catalog.add_job(job)
    report = recovery.recover(world.services)
    assert sorted(report.jobs) == ["job-queued", "job-running"]
    for status in (JobStatus.QUEUED, JobStatus.RUNNING):
        record = world.catalog.get_job(f"job-{status}")
        assert record is not None and record.status == JobStatus.FAILED
        assert record.error is not None and record.error.startswith("interrupted:")
        assert record.finished_at is not None
    for status in (JobStatus.SUCCEEDED, JobStatus.FAILED):
        assert world.catalog.get_job(f"job-{status}") == jobs[status]


def test_a_complete_snapshot_whose_data_is_missing_is_failed(world: FakeWorld) -> None:
    add_db(world, "db")
    healthy, lost = take_backup(world, "db"), take_backup(world, "db")
    world.storage().delete(lost.data_key)
    report = recovery.recover(world.services)
    assert report.broken == [lost.id]
    broken = world.catalog.get_snapshot(lost.id)
    assert broken is not None and broken.status == SnapshotStatus.FAILED
    assert broken.error == "data object missing in target local at start-up"
    assert world.catalog.get_snapshot(healthy.id) == healthy
    assert set(objects(world)) == snapshot_keys(healthy)


def test_a_complete_snapshot_whose_data_is_short_is_failed(world: FakeWorld) -> None:
    add_db(world, "db")
    short = take_backup(world, "db")
    data = objects(world)[short.data_key]
    replace_object(world, short.data_key, data[:100])
    report = recovery.recover(world.services)
    assert report.broken == [short.id]
    broken = world.catalog.get_snapshot(short.id)
    assert broken is not None
    assert broken.error == f"data object 100 bytes, not {len(data)} in target local at start-up"
    assert objects(world) == {}


def test_a_broken_snapshot_in_another_target_is_found_there(world: FakeWorld) -> None:
    add_db(world, "db", labels={"holdfast.target": "offsite"})
    lost = take_backup(world, "db")
    world.storage("offsite").delete(lost.data_key)
    report = recovery.recover(world.services)
    broken = world.catalog.get_snapshot(lost.id)
    assert report.broken == [lost.id] and broken is not None
    assert broken.error == "data object missing in target offsite at start-up"


def test_a_clean_catalog_is_left_as_it_is(world: FakeWorld) -> None:
    add_db(world, "db")
    snapshot = take_backup(world, "db")
    stored = objects(world)
    report = recovery.recover(world.services)
    assert (report.interrupted, report.broken, report.jobs, report.helpers) == ([], [], [], 0)
    assert world.catalog.list_snapshots() == [snapshot] and objects(world) == stored


def _helper(world: FakeWorld, runner: str) -> FakeContainer:
    helper = world.docker.add_container(f"holdfast-helper-{len(world.docker.containers)}",
                                        image="debian:bookworm-slim")
    helper.helper_of = runner
    return helper


def test_helper_containers_of_a_dead_process_are_removed(world: FakeWorld) -> None:
    orphan = _helper(world, DEAD_RUNNER)
    mine = _helper(world, current_runner())
    report = recovery.recover(world.services)
    assert report.helpers == 1
    assert orphan.id not in world.docker.containers and mine.id in world.docker.containers


def test_recovery_goes_on_when_docker_is_down(world: FakeWorld) -> None:
    left = make_snapshot(world, "db", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER)
    world.docker.unreachable = True
    report = recovery.recover(world.services)
    assert report.helpers == 0 and report.interrupted == [left.id]


# --- a volume snapshot that had stopped its container -------------------------------------


def _stopped_for_backup(world: FakeWorld, *, label: str = "true",
                        stopped_after: bool = True) -> tuple[FakeContainer, str]:
    """A container the volume engine stopped for a snapshot whose process then died."""
    began = utcnow() - timedelta(minutes=5)
    container = add_db(world, "files", labels={"holdfast.engine": "volume",
                                               "holdfast.stop-during-backup": label})
    world.catalog.upsert_instance(InstanceRecord(
        name="files", engine="volume", container_id=container.id, container_name="files",
        image=container.image, labels=dict(container.labels), error=None,
        first_seen=began, last_seen=began))
    snapshot = make_snapshot(world, "files", at=began, status=SnapshotStatus.RUNNING,
                             runner=DEAD_RUNNER, engine="volume")
    container.running = False
    container.stopped_at = began + (timedelta(minutes=1) if stopped_after
                                    else -timedelta(minutes=1))
    return container, snapshot.id


def test_a_container_stopped_by_an_interrupted_volume_snapshot_is_started(
        world: FakeWorld) -> None:
    container, snapshot_id = _stopped_for_backup(world)
    report = recovery.recover(world.services)
    assert report.interrupted == [snapshot_id] and report.restarted == ["files"]
    assert container.running


def test_a_container_that_stopped_before_the_snapshot_stays_stopped(world: FakeWorld) -> None:
    container, _ = _stopped_for_backup(world, stopped_after=False)
    report = recovery.recover(world.services)
    assert report.restarted == [] and not container.running


def test_a_container_without_stop_during_backup_stays_stopped(world: FakeWorld) -> None:
    container, _ = _stopped_for_backup(world, label="false")
    report = recovery.recover(world.services)
    assert report.restarted == [] and not container.running


def test_a_container_that_refuses_to_start_is_reported_not_raised(world: FakeWorld) -> None:
    container, snapshot_id = _stopped_for_backup(world)
    world.docker.refuse_start = "port is already allocated"
    report = recovery.recover(world.services)
    assert report.interrupted == [snapshot_id] and report.restarted == []
    assert not container.running


def test_a_target_that_cannot_be_read_does_not_stop_the_others(tmp_path: Path) -> None:
    world = fake_world(tmp_path, env={"HOLDFAST_TARGET_BAD": "nope://x"})
    add_db(world, "db")
    lost = take_backup(world, "db")
    world.storage().delete(lost.data_key)
    unreadable = lost.with_changes(id="20260101T000000Z-000bad", target="bad")
    world.catalog.add_snapshot(unreadable)
    report = recovery.recover(world.services)
    assert report.broken == [lost.id]
    assert world.catalog.get_snapshot(unreadable.id) == unreadable


def test_an_interrupted_snapshot_is_failed_even_if_its_leftovers_stay(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    left = make_snapshot(world, "db", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER)

    def unavailable(keys: Iterable[str]) -> None:
        raise StorageUnavailable("target 'local' cannot be reached")

    monkeypatch.setattr(world.storage(), "delete_many", unavailable)
    report = recovery.recover(world.services)
    snapshot = world.catalog.get_snapshot(left.id)
    assert report.interrupted == [left.id]
    assert snapshot is not None and snapshot.status == SnapshotStatus.FAILED
    assert set(objects(world)) == {left.data_key}  # the next prune removes them
