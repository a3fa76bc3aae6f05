"""Restores: every refusal happens before anything is created, a restore gives back
the very bytes that were dumped, and a failed one leaves nothing behind."""

from __future__ import annotations

import os

import pytest

from backup.errors import (
    CorruptSnapshot,
    DockerRefused,
    ExecFailed,
    ImageNotFound,
    InvalidName,
    MissingCredentials,
    NameTaken,
    ObjectNotFound,
    RestoreFailed,
    SnapshotNotRestorable,
    UnsupportedEngine,
    VolumeInUse,
)
from backup.ports import VolumeSpec
from backup.streams import compress
from backup.types import Snapshot
from service.usecases import restores
from tests.fakes.services import FakeWorld
from tests.usecases.support import add_db, make_snapshot, objects, replace_object, take_backup

CONTENT = os.urandom(120_000)


@pytest.fixture
def snapshot(world: FakeWorld) -> Snapshot:
    add_db(world, "shop", content=CONTENT, volume="shop-data")
    return take_backup(world, "shop")


def _state(world: FakeWorld) -> object:
    """Everything a restore could change, to compare before and after."""
    return (sorted((c.name, c.running, tuple(c.volumes)) for c in world.docker.containers.values()),
            {name: v.content for name, v in world.docker.volumes.items()},
            world.catalog.list_snapshots(), world.catalog.list_instances(),
            world.catalog.list_jobs(), objects(world))


# --- a restore ----------------------------------------------------------------------


def test_a_restore_gives_back_the_dumped_bytes_in_a_fresh_container(
        world: FakeWorld, snapshot: Snapshot) -> None:
    result = restores.run_restore(world.services, snapshot.id, "copy")
    assert world.docker.data_of("copy") == CONTENT
    copy = world.docker.by_name("copy")
    assert copy.running and copy.volumes == {"copy-data": "/data"}
    assert copy.env["FAKE_PASSWORD"] == "s3cret"
    assert copy.labels == {"holdfast.restored-from": snapshot.id,
                           "holdfast.source-instance": "shop"}
    assert (result.snapshot_id, result.container, result.container_id) == (
        snapshot.id, "copy", copy.id)
    assert (result.volumes, result.image, result.databases) == (["copy-data"], "fake/db:1",
                                                                ["main"])
    assert result.to_json()["seconds"] >= 0


def test_a_restore_leaves_the_source_untouched(world: FakeWorld, snapshot: Snapshot) -> None:
    source = world.docker.by_name("shop")
    restores.run_restore(world.services, snapshot.id, "copy")
    assert world.docker.data_of("shop") == CONTENT and source.running
    assert source.volumes == {"shop-data": "/data"}


def test_an_image_can_be_chosen(world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.images.add("fake/db:2")
    result = restores.run_restore(world.services, snapshot.id, "copy", image="fake/db:2")
    assert result.image == "fake/db:2" and world.docker.by_name("copy").image == "fake/db:2"


def test_prepare_writes_nothing(world: FakeWorld, snapshot: Snapshot) -> None:
    before = _state(world)
    request = restores.prepare_restore(world.services, snapshot.id, "copy")
    assert request.plan.container.name == "copy" and request.plan.volume_names == ["copy-data"]
    assert _state(world) == before


def test_force_restores_into_an_unused_existing_volume(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.create_volume(VolumeSpec(name="copy-data"))
    world.docker.volumes["copy-data"].content = b"old contents"
    request = restores.prepare_restore(world.services, snapshot.id, "copy", force=True)
    assert request.plan.reused_volumes == ("copy-data",)
    restores.execute_restore(world.services, request)
    assert world.docker.data_of("copy") == CONTENT


def test_secrets_on_the_command_line_are_carried_over(world: FakeWorld) -> None:
    world.docker.add_container(
        "cache", labels={"holdfast.enable": "true", "holdfast.engine": "fake"},
        env={"FAKE_PASSWORD": "pw"}, volume="cache-data", content=b"k=v",
        command=("fake-server", "--requirepass", "hunter2"))
    snapshot = take_backup(world, "cache")
    assert b"hunter2" not in objects(world)[f"cache/{snapshot.id}/manifest.json"]
    restores.run_restore(world.services, snapshot.id, "copy")
    assert world.docker.by_name("copy").command == ("fake-server", "--requirepass", "hunter2")


def _redis_style(world: FakeWorld) -> Snapshot:
    world.docker.add_container(
        "cache", labels={"holdfast.enable": "true", "holdfast.engine": "fake"},
        env={"FAKE_PASSWORD": "pw"}, volume="cache-data", content=b"k=v",
        command=("fake-server", "--requirepass=hunter2"))
    snapshot = take_backup(world, "cache")
    world.docker.remove_container(world.docker.by_name("cache").id)
    return snapshot


def test_a_command_line_secret_comes_from_the_environment_once_the_source_is_gone(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = _redis_style(world)
    monkeypatch.setenv("FAKE_PASSWORD", "pw")
    monkeypatch.setenv("REDIS_PASSWORD", "from-env")
    restores.run_restore(world.services, snapshot.id, "copy")
    assert world.docker.by_name("copy").command == ("fake-server", "--requirepass=from-env")


def test_a_command_line_secret_nobody_has_is_refused(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = _redis_style(world)
    monkeypatch.setenv("FAKE_PASSWORD", "pw")
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    with pytest.raises(MissingCredentials, match="needs REDIS_PASSWORD for the new container"):
        restores.prepare_restore(world.services, snapshot.id, "copy")


# --- refusals -----------------------------------------------------------------------


def test_a_failed_snapshot_is_not_restorable(world: FakeWorld) -> None:
    add_db(world, "shop")
    world.docker.dump_error = "broken"
    with pytest.raises(ExecFailed, match="broken"):
        take_backup(world, "shop")
    (failed,) = world.catalog.list_snapshots()
    with pytest.raises(SnapshotNotRestorable,
                       match=f"snapshot {failed.id} is failed, only complete snapshots restore"):
        restores.prepare_restore(world.services, failed.id, "copy")


def test_a_snapshot_of_another_data_format_is_refused(world: FakeWorld) -> None:
    other = make_snapshot(world, "shop")
    with pytest.raises(UnsupportedEngine, match="has data format test-bytes, this Holdfast reads "
                                                "fake-bytes-1"):
        restores.prepare_restore(world.services, other.id, "copy")


def test_a_taken_container_name_is_refused(world: FakeWorld, snapshot: Snapshot) -> None:
    before = _state(world)
    with pytest.raises(NameTaken, match="a container named shop already exists"):
        restores.prepare_restore(world.services, snapshot.id, "shop")
    assert _state(world) == before


def test_an_unusable_name_is_refused(world: FakeWorld, snapshot: Snapshot) -> None:
    with pytest.raises(InvalidName, match="cannot name a container '-bad'"):
        restores.prepare_restore(world.services, snapshot.id, "-bad")


def test_an_existing_volume_is_refused_without_force(world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.create_volume(VolumeSpec(name="copy-data"))
    before = _state(world)
    with pytest.raises(NameTaken, match=r"volume copy-data already exists.*--force"):
        restores.prepare_restore(world.services, snapshot.id, "copy")
    assert _state(world) == before


def test_force_never_writes_under_a_container(world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.add_container("squatter", volume="copy-data", content=b"mine")
    with pytest.raises(VolumeInUse,
                       match=r"volume copy-data is used by container squatter \(running\)"):
        restores.prepare_restore(world.services, snapshot.id, "copy", force=True)
    assert world.docker.data_of("squatter") == b"mine"


def test_a_missing_image_is_refused(world: FakeWorld, snapshot: Snapshot) -> None:
    with pytest.raises(ImageNotFound, match="image nope:1 is not on this Docker engine"):
        restores.prepare_restore(world.services, snapshot.id, "copy", image="nope:1")
    world.docker.images.discard("fake/db:1")
    with pytest.raises(ImageNotFound, match="image fake/db:1 is not on this Docker engine"):
        restores.prepare_restore(world.services, snapshot.id, "copy")


def test_a_secret_nobody_has_is_refused_once_the_source_is_gone(
        world: FakeWorld, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    world.docker.remove_container(world.docker.by_name("shop").id)
    monkeypatch.delenv("FAKE_PASSWORD", raising=False)
    before = _state(world)
    with pytest.raises(MissingCredentials,
                       match=f"snapshot {snapshot.id} needs FAKE_PASSWORD for the new container"):
        restores.prepare_restore(world.services, snapshot.id, "copy")
    assert _state(world) == before


def test_a_secret_comes_from_the_environment_once_the_source_is_gone(
        world: FakeWorld, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    world.docker.remove_container(world.docker.by_name("shop").id)
    monkeypatch.setenv("FAKE_PASSWORD", "from-env")
    restores.run_restore(world.services, snapshot.id, "copy")
    copy = world.docker.by_name("copy")
    assert copy.env["FAKE_PASSWORD"] == "from-env"
    assert world.docker.data_of("copy") == CONTENT


def test_the_live_source_wins_over_the_environment(
        world: FakeWorld, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PASSWORD", "from-env")
    restores.run_restore(world.services, snapshot.id, "copy")
    assert world.docker.by_name("copy").env["FAKE_PASSWORD"] == "s3cret"


# --- failures while restoring ------------------------------------------------------------


def _only_the_source_is_left(world: FakeWorld) -> bool:
    return ([c.name for c in world.docker.containers.values()] == ["shop"]
            and sorted(world.docker.volumes) == ["shop-data"]
            and world.docker.data_of("shop") == CONTENT)


def test_a_failing_load_removes_what_the_restore_created(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.load_error = "ERROR: out of disk"
    with pytest.raises(RestoreFailed, match="loading into copy failed: ERROR: out of disk"):
        restores.run_restore(world.services, snapshot.id, "copy")
    assert _only_the_source_is_left(world)


def test_a_failing_load_keeps_a_volume_reused_with_force(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.create_volume(VolumeSpec(name="copy-data"))
    world.docker.load_error = "ERROR: out of disk"
    with pytest.raises(RestoreFailed):
        restores.run_restore(world.services, snapshot.id, "copy", force=True)
    assert "copy-data" in world.docker.volumes
    assert [c.name for c in world.docker.containers.values()] == ["shop"]


def test_a_damaged_data_object_is_corrupt_and_cleaned_up(
        world: FakeWorld, snapshot: Snapshot) -> None:
    data = objects(world)[snapshot.data_key]
    middle = len(data) // 2
    replace_object(world, snapshot.data_key,
                   data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:])
    with pytest.raises(CorruptSnapshot, match="corrupt"):
        restores.run_restore(world.services, snapshot.id, "copy")
    assert _only_the_source_is_left(world)


def test_a_swapped_data_object_fails_its_checksum(world: FakeWorld, snapshot: Snapshot) -> None:
    other = b"".join(compress([os.urandom(len(CONTENT))]))  # valid zstd, other bytes
    assert len(other) == len(objects(world)[snapshot.data_key])
    replace_object(world, snapshot.data_key, other)
    with pytest.raises(CorruptSnapshot, match=r"sha256 \w+… does not match its manifest"):
        restores.run_restore(world.services, snapshot.id, "copy")
    assert _only_the_source_is_left(world)


def test_a_truncated_data_object_is_corrupt(world: FakeWorld, snapshot: Snapshot) -> None:
    data = objects(world)[snapshot.data_key]
    replace_object(world, snapshot.data_key, data[:-10])
    with pytest.raises(CorruptSnapshot,
                       match=f"snapshot data is {len(data) - 10} bytes, its manifest says "
                             f"{len(data)}"):
        restores.run_restore(world.services, snapshot.id, "copy")
    assert _only_the_source_is_left(world)


def test_a_missing_data_object_fails_the_restore_and_cleans_up(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.storage().delete(snapshot.data_key)
    with pytest.raises(ObjectNotFound, match=f"no object {snapshot.data_key}"):
        restores.run_restore(world.services, snapshot.id, "copy")
    assert _only_the_source_is_left(world)


def test_a_refused_start_removes_what_the_restore_created(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.refuse_start = "no cgroup for you"
    with pytest.raises(DockerRefused, match="Docker refused: no cgroup for you"):
        restores.run_restore(world.services, snapshot.id, "copy")
    assert _only_the_source_is_left(world)
