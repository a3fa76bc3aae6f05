"""Snapshots: listing, lookup, deletion and rebuilding the catalog from the manifests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from backup.errors import Conflict, SnapshotNotFound, StorageUnavailable
from backup.types import SnapshotStatus
from service.runs import current_runner
from service.usecases import snapshots
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import (
    DEAD_RUNNER,
    OTHER_HOST_RUNNER,
    add_db,
    make_snapshot,
    objects,
    snapshot_keys,
    take_backup,
)


def test_snapshots_are_listed_newest_first_and_by_instance(world: FakeWorld) -> None:
    add_db(world, "a")
    add_db(world, "b")
    a1, b1, a2 = take_backup(world, "a"), take_backup(world, "b"), take_backup(world, "a")
    assert [s.id for s in snapshots.list_snapshots(world.services)] == [a2.id, b1.id, a1.id]
    assert snapshots.list_snapshots(world.services, "a") == [a2, a1]
    assert snapshots.list_snapshots(world.services, "nobody") == []


def test_get_returns_the_catalog_row(world: FakeWorld) -> None:
    add_db(world, "a")
    snapshot = take_backup(world, "a")
    assert snapshots.get_snapshot(world.services, snapshot.id) == snapshot


def test_an_unknown_snapshot_points_at_the_listing(world: FakeWorld) -> None:
    with pytest.raises(SnapshotNotFound, match=r"no snapshot 'nope'; 'holdfast snapshots' lists"):
        snapshots.get_snapshot(world.services, "nope")


def test_delete_removes_the_objects_and_the_row(world: FakeWorld) -> None:
    add_db(world, "a")
    doomed, kept = take_backup(world, "a"), take_backup(world, "a")
    assert snapshots.delete_snapshot(world.services, doomed.id) == doomed
    assert world.catalog.list_snapshots() == [kept]
    assert set(objects(world)) == snapshot_keys(kept)


def test_delete_of_an_unknown_snapshot_changes_nothing(world: FakeWorld) -> None:
    add_db(world, "a")
    kept = take_backup(world, "a")
    with pytest.raises(SnapshotNotFound):
        snapshots.delete_snapshot(world.services, "nope")
    assert world.catalog.list_snapshots() == [kept] and set(objects(world)) == snapshot_keys(kept)


@pytest.mark.parametrize("runner", [current_runner(), OTHER_HOST_RUNNER])
def test_a_snapshot_being_written_cannot_be_deleted(world: FakeWorld, runner: str) -> None:
    running = make_snapshot(world, "a", status=SnapshotStatus.RUNNING, runner=runner)
    with pytest.raises(Conflict, match=f"snapshot {running.id} is still being written"):
        snapshots.delete_snapshot(world.services, running.id)
    assert world.catalog.list_snapshots() == [running]
    assert set(objects(world)) == {running.data_key}


def test_a_running_snapshot_of_a_dead_process_can_be_deleted(world: FakeWorld) -> None:
    left = make_snapshot(world, "a", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER)
    snapshots.delete_snapshot(world.services, left.id)
    assert world.catalog.list_snapshots() == [] and objects(world) == {}


def test_a_delete_the_target_refuses_keeps_the_row(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, "a")
    snapshot = take_backup(world, "a")

    def unavailable(keys: Iterable[str]) -> None:
        raise StorageUnavailable("target 'local' cannot be reached")

    monkeypatch.setattr(world.storage(), "delete_many", unavailable)
    with pytest.raises(StorageUnavailable):
        snapshots.delete_snapshot(world.services, snapshot.id)
    assert world.catalog.list_snapshots() == [snapshot]


def test_read_manifest_reads_the_stored_manifest(world: FakeWorld) -> None:
    add_db(world, "a")
    snapshot = take_backup(world, "a")
    manifest = snapshots.read_manifest(world.storage(), snapshot)
    assert (manifest.snapshot_id, manifest.data_key, manifest.sha256) == (
        snapshot.id, snapshot.data_key, snapshot.sha256)


# --- rebuild_catalog ---------------------------------------------------------------


def test_rebuild_recreates_lost_rows_from_the_manifests(world: FakeWorld) -> None:
    add_db(world, "a")
    add_db(world, "b", labels={"holdfast.target": "offsite"})
    local, offsite = take_backup(world, "a"), take_backup(world, "b")
    for snapshot in (local, offsite):
        world.catalog.delete_snapshot(snapshot.id)
    report = snapshots.rebuild_catalog(world.services)
    assert report.to_json() == {"added": 2, "updated": 0, "targets": {"local": 1, "offsite": 1},
                                "broken": [], "errors": {}}
    assert world.catalog.get_snapshot(local.id) == local
    assert world.catalog.get_snapshot(offsite.id) == offsite


def test_rebuild_updates_existing_rows_and_keeps_them_pinned(world: FakeWorld) -> None:
    add_db(world, "a")
    pinned, lost = take_backup(world, "a"), take_backup(world, "a")
    world.catalog.save_snapshot(pinned.with_changes(pinned=True, size_bytes=1))
    world.catalog.delete_snapshot(lost.id)
    report = snapshots.rebuild_catalog(world.services)
    assert (report.added, report.updated) == (1, 1)
    assert world.catalog.get_snapshot(pinned.id) == pinned.with_changes(pinned=True)
    assert world.catalog.get_snapshot(lost.id) == lost


def test_rebuild_leaves_rows_without_a_manifest_alone(world: FakeWorld) -> None:
    failed = make_snapshot(world, "a", status=SnapshotStatus.FAILED)
    report = snapshots.rebuild_catalog(world.services)
    assert report.to_json() == {"added": 0, "updated": 0, "targets": {"local": 0, "offsite": 0},
                                "broken": [], "errors": {}}
    assert world.catalog.list_snapshots() == [failed]


def test_rebuild_does_not_promise_a_snapshot_whose_data_is_gone(world: FakeWorld) -> None:
    add_db(world, "a")
    snapshot = take_backup(world, "a")
    world.storage().delete(snapshot.data_key)  # data deleted, manifest not yet
    world.catalog.delete_snapshot(snapshot.id)
    report = snapshots.rebuild_catalog(world.services)
    row = world.catalog.get_snapshot(snapshot.id)
    assert row is None or row.status != SnapshotStatus.COMPLETE
    assert report.broken == [snapshot.id]
    assert row is not None and row.error is not None and "data object missing" in row.error


def test_a_broken_target_does_not_stop_the_rebuild_of_the_others(tmp_path: Path) -> None:
    world = fake_world(tmp_path, env={"HOLDFAST_TARGET_BAD": "nope://x"})
    add_db(world, "a")
    snapshot = take_backup(world, "a")
    world.catalog.delete_snapshot(snapshot.id)
    report = snapshots.rebuild_catalog(world.services)
    assert world.catalog.get_snapshot(snapshot.id) == snapshot
    assert list(report.errors) == ["bad"] and "unsupported URL scheme" in report.errors["bad"]
    assert report.targets == {"local": 1, "offsite": 0}
