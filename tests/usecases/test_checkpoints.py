"""Checkpoints with the fakes: a backup with tags and a pin writes them into the
row and the manifest from the first write, listings filter by tag, a restore
can pick the newest complete snapshot carrying a tag, pin and unpin rewrite the
manifest, a catalog rebuild keeps tags and pins, retention and delete respect
pins."""

from __future__ import annotations

import os

import pytest

from backup.errors import Conflict, ExecFailed, InvalidInput, SnapshotNotFound
from backup.pipeline import manifest_key
from backup.types import Manifest, Snapshot, SnapshotStatus
from service.usecases import backups, checkpoints, restores, retention, snapshots
from tests.fakes.services import FakeWorld
from tests.usecases.support import add_db, make_snapshot, objects

CONTENT = os.urandom(40_000)


def _backup(world: FakeWorld, name: str = "shop", tags: dict[str, str] | None = None,
            pin: bool = False) -> Snapshot:
    request = backups.prepare_backup(world.services, name, tags=tags, pin=pin)
    return backups.execute_backup(world.services, request)


def _manifest(world: FakeWorld, snapshot: Snapshot) -> Manifest:
    return Manifest.from_bytes(objects(world)[manifest_key(snapshot.instance, snapshot.id)])


@pytest.fixture
def shop(world: FakeWorld) -> FakeWorld:
    add_db(world, "shop", content=CONTENT, volume="shop-data")
    return world


# --- backups with tags and a pin ------------------------------------------------------


def test_a_backup_with_tags_and_pin_records_them_in_row_and_manifest(shop: FakeWorld) -> None:
    seen: list[Snapshot] = []
    original = shop.catalog.add_snapshot

    def watching(s: Snapshot) -> None:
        seen.append(s)
        original(s)

    shop.catalog.add_snapshot = watching  # type: ignore[method-assign]
    snapshot = _backup(shop, tags={"release": "v1.4.2", "env": "prod"}, pin=True)
    # The running row already carries them: a crash mid-dump loses nothing of the request.
    assert dict(seen[0].tags) == {"env": "prod", "release": "v1.4.2"} and seen[0].pinned
    stored = shop.catalog.get_snapshot(snapshot.id)
    assert stored is not None and stored.status == SnapshotStatus.COMPLETE
    assert dict(stored.tags) == {"env": "prod", "release": "v1.4.2"} and stored.pinned
    manifest = _manifest(shop, snapshot)
    assert dict(manifest.tags) == {"env": "prod", "release": "v1.4.2"} and manifest.pinned
    assert stored.to_json()["tags"] == {"env": "prod", "release": "v1.4.2"}
    assert stored.to_json()["pinned"] is True


def test_a_backup_without_tags_has_none(shop: FakeWorld) -> None:
    snapshot = _backup(shop)
    assert dict(snapshot.tags) == {} and not snapshot.pinned
    assert dict(_manifest(shop, snapshot).tags) == {} and not _manifest(shop, snapshot).pinned


@pytest.mark.parametrize("tags", [{"bad key": "x"}, {"k": "line\nbreak"},
                                  {f"k{i}": "v" for i in range(33)}, {"": "x"}])
def test_bad_tags_are_refused_before_anything_is_written(shop: FakeWorld,
                                                         tags: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        backups.prepare_backup(shop.services, "shop", tags=tags)
    assert shop.catalog.list_snapshots() == [] and objects(shop) == {}


def test_a_failed_pinned_backup_is_recorded_unpinned(shop: FakeWorld) -> None:
    shop.docker.dump_error, shop.docker.dump_error_after = "disk on fire", 10_000
    with pytest.raises(ExecFailed):
        _backup(shop, tags={"release": "v1"}, pin=True)
    (failed,) = shop.catalog.list_snapshots()
    assert failed.status == SnapshotStatus.FAILED and not failed.pinned
    assert dict(failed.tags) == {"release": "v1"}


# --- listing by tag -----------------------------------------------------------------


def test_snapshots_list_by_tag(shop: FakeWorld) -> None:
    add_db(shop, "blog")
    v1 = _backup(shop, tags={"release": "v1"})
    v2 = _backup(shop, tags={"release": "v2", "env": "prod"})
    blog = _backup(shop, "blog", tags={"release": "v2"})

    def ids(inst: str | None, tags: dict[str, str] | None) -> list[str]:
        return [s.id for s in snapshots.list_snapshots(shop.services, inst, tags)]

    assert ids(None, {"release": "v2"}) == [blog.id, v2.id]
    assert ids("shop", {"release": "v2"}) == [v2.id]
    assert ids("shop", {"release": "v1"}) == [v1.id]
    assert ids("shop", {"release": "v2", "env": "dev"}) == []
    assert ids("shop", None) == [v2.id, v1.id]
    with pytest.raises(InvalidInput, match="tag key"):
        snapshots.list_snapshots(shop.services, "shop", {"no spaces": "x"})


# --- restore by tag -------------------------------------------------------------------


def test_restore_by_tag_takes_the_newest_complete_snapshot_with_it(shop: FakeWorld) -> None:
    tagged = _backup(shop, tags={"release": "v1.4.2"})
    shop.docker.by_name("shop")  # the source stays; a newer untagged backup follows
    _backup(shop, tags={"release": "v1.4.3"})
    _backup(shop)
    request = restores.prepare_tagged_restore(shop.services, "shop", {"release": "v1.4.2"},
                                              "copy")
    assert request.snapshot.id == tagged.id
    result = restores.execute_restore(shop.services, request)
    assert result.snapshot_id == tagged.id and shop.docker.data_of("copy") == CONTENT


def test_restore_by_tag_skips_a_failed_snapshot_with_the_tag(shop: FakeWorld) -> None:
    good = _backup(shop, tags={"release": "v2"})
    shop.docker.dump_error, shop.docker.dump_error_after = "boom", 10_000
    with pytest.raises(ExecFailed):
        _backup(shop, tags={"release": "v2"})
    request = restores.prepare_tagged_restore(shop.services, "shop", {"release": "v2"}, "copy")
    assert request.snapshot.id == good.id


def test_restore_by_a_tag_no_snapshot_carries_is_not_found_naming_it(shop: FakeWorld) -> None:
    _backup(shop, tags={"release": "v1"})
    with pytest.raises(SnapshotNotFound, match=r"no complete snapshot tagged release=v9.*"
                                               r"--tag release=v9"):
        restores.prepare_tagged_restore(shop.services, "shop", {"release": "v9"}, "copy")
    assert [c.name for c in shop.docker.containers.values()] == ["shop"]


def test_restore_by_tag_of_an_unknown_instance_is_instance_not_found(shop: FakeWorld) -> None:
    from backup.errors import InstanceNotFound

    with pytest.raises(InstanceNotFound):
        restores.prepare_tagged_restore(shop.services, "nope", {"release": "v1"}, "copy")


# --- pin and unpin ----------------------------------------------------------------------


def test_pin_and_unpin_change_the_row_and_rewrite_the_manifest(shop: FakeWorld) -> None:
    snapshot = _backup(shop, tags={"release": "v1"})
    before = _manifest(shop, snapshot)
    pinned = checkpoints.pin_snapshot(shop.services, snapshot.id[:10])  # a prefix will do
    assert pinned.pinned and pinned.id == snapshot.id
    stored = shop.catalog.get_snapshot(snapshot.id)
    assert stored is not None and stored.pinned
    after = _manifest(shop, snapshot)
    assert after.pinned and dict(after.tags) == {"release": "v1"}
    # Only the pin changed in the manifest.
    assert {**after.to_json(), "pinned": False} == before.to_json()
    unpinned = checkpoints.unpin_snapshot(shop.services, snapshot.id)
    assert not unpinned.pinned and not _manifest(shop, snapshot).pinned
    stored = shop.catalog.get_snapshot(snapshot.id)
    assert stored is not None and not stored.pinned


def test_pinning_twice_changes_nothing(shop: FakeWorld) -> None:
    snapshot = _backup(shop, pin=True)
    manifest = objects(shop)[manifest_key("shop", snapshot.id)]
    assert checkpoints.pin_snapshot(shop.services, snapshot.id).pinned
    assert objects(shop)[manifest_key("shop", snapshot.id)] == manifest


def test_only_complete_snapshots_can_be_pinned(shop: FakeWorld) -> None:
    failed = make_snapshot(shop, "shop", status=SnapshotStatus.FAILED)
    with pytest.raises(Conflict, match="only complete snapshots can be pinned"):
        checkpoints.pin_snapshot(shop.services, failed.id)
    stored = shop.catalog.get_snapshot(failed.id)
    assert stored is not None and not stored.pinned


def test_pin_of_an_unknown_snapshot_is_not_found(shop: FakeWorld) -> None:
    with pytest.raises(SnapshotNotFound):
        checkpoints.pin_snapshot(shop.services, "20990101T000000Z-abcdef")


def test_a_manifest_that_cannot_be_rewritten_leaves_the_row_unpinned(shop: FakeWorld) -> None:
    from backup.errors import StorageUnavailable

    snapshot = _backup(shop)
    storage = shop.storage("local")

    def refuse(key: str, chunks: object) -> object:
        raise StorageUnavailable("target 'local': disk gone")

    storage.replace = refuse  # type: ignore[method-assign,assignment]
    with pytest.raises(StorageUnavailable):
        checkpoints.pin_snapshot(shop.services, snapshot.id)
    stored = shop.catalog.get_snapshot(snapshot.id)
    assert stored is not None and not stored.pinned


# --- delete, retention and rebuild ------------------------------------------------------


def test_a_pinned_snapshot_cannot_be_deleted_until_unpinned(shop: FakeWorld) -> None:
    snapshot = _backup(shop, pin=True)
    with pytest.raises(Conflict, match="pinned; unpin it first"):
        snapshots.delete_snapshot(shop.services, snapshot.id)
    assert shop.catalog.get_snapshot(snapshot.id) is not None
    assert manifest_key("shop", snapshot.id) in objects(shop)
    checkpoints.unpin_snapshot(shop.services, snapshot.id)
    snapshots.delete_snapshot(shop.services, snapshot.id)
    assert shop.catalog.get_snapshot(snapshot.id) is None and objects(shop) == {}


def test_retention_keeps_a_snapshot_pinned_by_its_backup(shop: FakeWorld) -> None:
    pinned = _backup(shop, pin=True)
    middle = _backup(shop)
    newest = _backup(shop)
    shop.catalog.set_policy_override("shop", {"retention": "last=1"})
    result = retention.prune(shop.services, "shop")[0]
    assert sorted(result.kept) == sorted([newest.id, pinned.id])
    assert result.forgotten == [middle.id]


def test_a_rebuild_keeps_tags_and_pins_from_the_manifests(shop: FakeWorld) -> None:
    tagged = _backup(shop, tags={"release": "v1.4.2"}, pin=True)
    later = _backup(shop, tags={"release": "v1.4.3"})
    checkpoints.pin_snapshot(shop.services, later.id)
    checkpoints.unpin_snapshot(shop.services, tagged.id)
    plain = _backup(shop)
    for snapshot in (tagged, later, plain):
        shop.catalog.delete_snapshot(snapshot.id)  # a fresh catalog
    report = snapshots.rebuild_catalog(shop.services)
    assert report.added == 3
    rebuilt = {s.id: s for s in shop.catalog.list_snapshots()}
    assert (dict(rebuilt[tagged.id].tags), rebuilt[tagged.id].pinned) == (
        {"release": "v1.4.2"}, False)
    assert (dict(rebuilt[later.id].tags), rebuilt[later.id].pinned) == (
        {"release": "v1.4.3"}, True)
    assert (dict(rebuilt[plain.id].tags), rebuilt[plain.id].pinned) == ({}, False)


def test_a_rebuild_keeps_a_pin_only_the_row_has(shop: FakeWorld) -> None:
    snapshot = _backup(shop)
    # A row pinned while its manifest is not (a rewrite that failed, or a pin
    # from before manifests recorded pins): a rebuild never drops a pin.
    shop.catalog.save_snapshot(snapshot.with_changes(pinned=True))
    snapshots.rebuild_catalog(shop.services)
    stored = shop.catalog.get_snapshot(snapshot.id)
    assert stored is not None and stored.pinned


def test_a_manifest_without_tags_or_pin_reads_as_none() -> None:
    old = {"snapshot_id": "s", "instance": "i", "engine": "postgres", "data_key": "i/s/d",
           "data_format": "pg", "compression": "zstd", "image": "", "image_id": "",
           "created_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
           "size_bytes": 1, "raw_bytes": 1, "sha256": "ab", "version": 1}
    import json

    manifest = Manifest.from_bytes(json.dumps(old).encode())
    assert dict(manifest.tags) == {} and manifest.pinned is False


def test_start_up_recovery_leaves_no_failed_snapshot_pinned(shop: FakeWorld) -> None:
    from service.usecases import recovery
    from tests.usecases.support import DEAD_RUNNER

    interrupted = make_snapshot(shop, "shop", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER,
                                pinned=True)  # a backup --pin whose process died
    broken = _backup(shop, pin=True)
    shop.storage("local").delete(broken.data_key)
    report = recovery.recover(shop.services)
    assert set(report.interrupted) == {interrupted.id} and report.broken == [broken.id]
    for snapshot_id in (interrupted.id, broken.id):
        stored = shop.catalog.get_snapshot(snapshot_id)
        assert stored is not None and stored.status == SnapshotStatus.FAILED
        assert not stored.pinned
