"""Backups: checks before anything is written, the snapshot's life in the catalog,
what lands in storage, the one-run-per-instance rule, and retention afterwards."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pytest

from backup.errors import (
    Cancelled,
    ContainerNotRunning,
    ExecFailed,
    InvalidLabels,
    MissingCredentials,
    StorageMisconfigured,
    StorageUnavailable,
    UnsupportedEngine,
)
from backup.pipeline import manifest_key
from backup.storage import ObjectInfo
from backup.types import Manifest, SnapshotStatus
from service.runs import AlreadyRunning
from service.usecases import backups
from tests.fakes.services import FakeWorld
from tests.usecases.support import (
    DEAD_RUNNER,
    OTHER_HOST_RUNNER,
    add_db,
    make_snapshot,
    objects,
    snapshot_keys,
    take_backup,
)


def _nothing_written(world: FakeWorld) -> bool:
    return (world.catalog.list_snapshots() == [] and objects(world) == {}
            and objects(world, "offsite") == {})


def test_a_backup_stores_the_dump_and_records_a_complete_snapshot(world: FakeWorld) -> None:
    add_db(world, "shop", content=b"row\n" * 20_000)
    snapshot = take_backup(world, "shop")
    stored = objects(world)
    assert set(stored) == snapshot_keys(snapshot)
    data = stored[snapshot.data_key]
    assert snapshot.status == SnapshotStatus.COMPLETE and snapshot.error is None
    assert snapshot.size_bytes == len(data) and snapshot.raw_bytes == 80_000
    assert snapshot.sha256 == hashlib.sha256(data).hexdigest()
    assert snapshot.runner is None and snapshot.finished_at is not None
    assert world.catalog.get_snapshot(snapshot.id) == snapshot


def test_the_manifest_describes_the_snapshot_without_secrets(world: FakeWorld) -> None:
    add_db(world, "shop", env={"FAKE_PASSWORD": "hunter2", "LANG": "C"})
    snapshot = take_backup(world, "shop")
    raw = objects(world)[manifest_key("shop", snapshot.id)]
    manifest = Manifest.from_bytes(raw)
    assert (manifest.snapshot_id, manifest.instance, manifest.engine) == (snapshot.id, "shop",
                                                                          "fake")
    assert (manifest.size_bytes, manifest.sha256) == (snapshot.size_bytes, snapshot.sha256)
    assert manifest.env == {"LANG": "C"} and manifest.secret_env == ("FAKE_PASSWORD",)
    assert b"hunter2" not in raw


def test_a_backup_records_the_instance(world: FakeWorld) -> None:
    container = add_db(world, "shop")
    take_backup(world, "shop")
    record = world.catalog.get_instance("shop")
    assert record is not None
    assert (record.engine, record.container_id) == ("fake", container.id)


def test_a_backup_goes_to_the_target_its_label_names(world: FakeWorld) -> None:
    add_db(world, "shop", labels={"holdfast.target": "offsite"})
    snapshot = take_backup(world, "shop")
    assert snapshot.target == "offsite"
    assert set(objects(world, "offsite")) == snapshot_keys(snapshot) and objects(world) == {}


def test_the_dump_gets_the_containers_password(world: FakeWorld) -> None:
    add_db(world, "shop")
    take_backup(world, "shop")
    assert [(name, argv[0], env) for name, argv, env in world.docker.execs] == [
        ("shop", "fake-dump", {"FAKE_PASSWORD": "s3cret"})]


def test_progress_sees_the_stored_bytes(world: FakeWorld) -> None:
    add_db(world, "shop")
    seen: list[int] = []
    request = backups.prepare_backup(world.services, "shop")
    snapshot = backups.execute_backup(world.services, request,
                                      progress=lambda done, _seconds: seen.append(done))
    assert seen and seen[-1] == snapshot.size_bytes


# --- refused before anything is written ----------------------------------------------


def test_a_missing_password_is_refused_before_anything_is_written(world: FakeWorld) -> None:
    add_db(world, "shop", env={})
    with pytest.raises(MissingCredentials, match="container shop has no FAKE_PASSWORD"):
        backups.prepare_backup(world.services, "shop")
    assert _nothing_written(world) and world.docker.execs == []


def test_a_stopped_container_is_refused(world: FakeWorld) -> None:
    add_db(world, "shop", running=False)
    with pytest.raises(ContainerNotRunning, match="container shop of instance shop is not running"):
        backups.prepare_backup(world.services, "shop")
    assert _nothing_written(world)


def test_label_errors_are_refused(world: FakeWorld) -> None:
    add_db(world, "shop", labels={"holdfast.retention": "forever"})
    with pytest.raises(InvalidLabels, match=r"instance shop has label errors: holdfast\.retention"):
        backups.prepare_backup(world.services, "shop")
    assert _nothing_written(world)


def test_an_undetectable_engine_is_refused(world: FakeWorld) -> None:
    world.docker.add_container("shop", image="acme/app:1", labels={"holdfast.enable": "true"})
    with pytest.raises(UnsupportedEngine, match="instance shop: cannot tell the engine"):
        backups.prepare_backup(world.services, "shop")


@pytest.mark.parametrize("label, given", [("nowhere", None), ("local", "nowhere")])
def test_an_unknown_target_is_refused(world: FakeWorld, label: str, given: str | None) -> None:
    add_db(world, "shop", labels={"holdfast.target": label})
    with pytest.raises(StorageMisconfigured,
                       match=r"no storage target named 'nowhere'; configured: local, offsite"):
        backups.prepare_backup(world.services, "shop", target=given)
    assert _nothing_written(world)


# --- failures while running --------------------------------------------------------


def test_a_dump_failing_mid_stream_leaves_a_failed_snapshot_and_no_data(
        world: FakeWorld) -> None:
    add_db(world, "shop", content=b"x" * 100_000)
    world.docker.dump_error, world.docker.dump_error_after = "disk on fire", 30_000
    request = backups.prepare_backup(world.services, "shop")
    with pytest.raises(ExecFailed, match="fake-dump exited 1: disk on fire"):
        backups.execute_backup(world.services, request)
    (snapshot,) = world.catalog.list_snapshots()
    assert snapshot.status == SnapshotStatus.FAILED
    assert snapshot.error == "fake-dump exited 1: disk on fire"
    assert snapshot.runner is None and snapshot.finished_at is not None
    assert objects(world) == {}
    assert world.services.gate.holder("shop") is None


def test_a_cancelled_backup_fails_with_a_cancelled_reason(world: FakeWorld) -> None:
    add_db(world, "shop")
    request = backups.prepare_backup(world.services, "shop")
    with pytest.raises(Cancelled):
        backups.execute_backup(world.services, request, cancelled=lambda: True)
    (snapshot,) = world.catalog.list_snapshots()
    assert snapshot.status == SnapshotStatus.FAILED
    assert snapshot.error is not None and snapshot.error.startswith("cancelled:")
    assert objects(world) == {}


def test_a_failure_during_shutdown_is_reported_as_cancelled(world: FakeWorld) -> None:
    add_db(world, "shop")
    world.docker.dump_error, world.docker.dump_error_after = "connection cut", 0
    request = backups.prepare_backup(world.services, "shop")
    with pytest.raises(ExecFailed, match="connection cut"):
        backups.execute_backup(world.services, request, cancelled=lambda: True)
    (snapshot,) = world.catalog.list_snapshots()
    assert snapshot.error == ("cancelled: Holdfast is shutting down "
                              "(fake-dump exited 1: connection cut)")


def test_a_manifest_that_cannot_be_written_takes_its_data_object_with_it(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, "shop")
    storage = world.storage()
    put = storage.put

    def put_but_no_manifests(key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        if key.endswith("/manifest.json"):
            raise StorageUnavailable("target 'local' went away")
        return put(key, chunks)

    monkeypatch.setattr(storage, "put", put_but_no_manifests)
    with pytest.raises(StorageUnavailable, match="went away"):
        take_backup(world, "shop")
    (snapshot,) = world.catalog.list_snapshots()
    assert (snapshot.status, snapshot.error) == (SnapshotStatus.FAILED,
                                                 "target 'local' went away")
    assert objects(world) == {}


# --- one run per instance -----------------------------------------------------------


def test_a_second_run_while_the_gate_is_held_names_the_holder(world: FakeWorld) -> None:
    add_db(world, "shop")
    request = backups.prepare_backup(world.services, "shop")
    world.services.gate.claim("shop", "job-20260101T000000Z-abcd")
    with pytest.raises(AlreadyRunning,
                       match=r"backup of shop is already running \(job-20260101T000000Z-abcd\)"):
        backups.execute_backup(world.services, request)
    assert world.catalog.list_snapshots() == []
    assert world.services.gate.holder("shop") == "job-20260101T000000Z-abcd"


def test_a_run_of_another_live_process_is_refused(world: FakeWorld) -> None:
    add_db(world, "shop")
    other = make_snapshot(world, "shop", status=SnapshotStatus.RUNNING, runner=OTHER_HOST_RUNNER)
    request = backups.prepare_backup(world.services, "shop")
    with pytest.raises(AlreadyRunning, match=f"already running \\(snapshot {other.id}\\)"):
        backups.execute_backup(world.services, request)
    assert world.catalog.list_snapshots() == [other]
    assert world.services.gate.holder("shop") is None


def test_a_run_left_by_a_dead_process_does_not_block(world: FakeWorld) -> None:
    add_db(world, "shop")
    make_snapshot(world, "shop", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER)
    assert take_backup(world, "shop").status == SnapshotStatus.COMPLETE


def test_a_job_that_holds_the_gate_runs_as_that_holder(world: FakeWorld) -> None:
    add_db(world, "shop")
    request = backups.prepare_backup(world.services, "shop")
    world.services.gate.claim("shop", "job-1")
    snapshot = backups.execute_backup(world.services, request, holder="job-1")
    assert snapshot.status == SnapshotStatus.COMPLETE
    assert world.services.gate.holder("shop") == "job-1"  # the job releases it, not the run


# --- retention afterwards ------------------------------------------------------------


def test_backup_then_prune_applies_the_retention_label(world: FakeWorld) -> None:
    add_db(world, "shop", labels={"holdfast.retention": "last=1"})
    first, pruned = backups.backup_then_prune(
        world.services, backups.prepare_backup(world.services, "shop"))
    assert pruned.forgotten == []
    second, pruned = backups.backup_then_prune(
        world.services, backups.prepare_backup(world.services, "shop"))
    assert pruned.forgotten == [first.id]
    assert world.catalog.list_snapshots() == [second]
    assert set(objects(world)) == snapshot_keys(second)


def test_without_retention_labels_every_snapshot_is_kept(world: FakeWorld) -> None:
    add_db(world, "shop")
    results = [backups.backup_then_prune(world.services,
                                         backups.prepare_backup(world.services, "shop"))
               for _ in range(3)]
    assert [pruned.forgotten for _, pruned in results] == [[], [], []]
    assert len(world.catalog.list_snapshots()) == 3
