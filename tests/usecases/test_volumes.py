"""Named volumes: list, create, remove and clone, with every refusal leaving the
volumes as they were."""

from __future__ import annotations

import pytest

from backup.errors import (
    CloneFailed,
    DockerRefused,
    ExecFailed,
    InvalidName,
    NameTaken,
    VolumeInUse,
    VolumeNotFound,
)
from backup.volumes import CLONED_FROM_LABEL
from service.usecases import volumes
from tests.fakes.services import FakeWorld


def _contents(world: FakeWorld) -> dict[str, bytes]:
    return {name: volume.content for name, volume in world.docker.volumes.items()}


def _volume_with(world: FakeWorld, name: str, content: bytes) -> None:
    volumes.create_volume(world.services, name)
    world.docker.volumes[name].content = content


# --- list / get / create ------------------------------------------------------------


def test_volumes_are_listed_with_their_users_and_sizes(world: FakeWorld) -> None:
    world.docker.add_container("db", volume="db-data", content=b"12345")
    volumes.create_volume(world.services, "spare")
    listed = {v.name: v for v in volumes.list_volumes(world.services)}
    assert sorted(listed) == ["db-data", "spare"]
    assert listed["db-data"].size_bytes == 5 and [u.name for u in listed["db-data"].users] == [
        "db"]
    assert not listed["spare"].in_use


def test_get_of_a_missing_volume_points_at_the_listing(world: FakeWorld) -> None:
    with pytest.raises(VolumeNotFound, match="no volume named ghost; `holdfast volumes ls`"):
        volumes.get_volume(world.services, "ghost")


def test_create_makes_an_empty_labelled_volume(world: FakeWorld) -> None:
    info = volumes.create_volume(world.services, "fresh", {"team": "shop"})
    assert (info.name, dict(info.labels), info.users) == ("fresh", {"team": "shop"}, ())
    assert world.docker.volumes["fresh"].content == b""


def test_create_of_an_existing_name_is_refused(world: FakeWorld) -> None:
    _volume_with(world, "taken", b"keep me")
    with pytest.raises(NameTaken, match="volume taken already exists; choose another name"):
        volumes.create_volume(world.services, "taken")
    assert world.docker.volumes["taken"].content == b"keep me"


@pytest.mark.parametrize("name", ["-lead", "x", "has space", "a/b"])
def test_create_with_a_bad_name_is_refused(world: FakeWorld, name: str) -> None:
    with pytest.raises(InvalidName, match=f"cannot name a volume '{name}'"):
        volumes.create_volume(world.services, name)
    assert world.docker.volumes == {}


# --- remove -------------------------------------------------------------------------


def test_remove_deletes_an_unused_volume(world: FakeWorld) -> None:
    volumes.create_volume(world.services, "spare")
    assert volumes.remove_volume(world.services, "spare").name == "spare"
    assert "spare" not in world.docker.volumes


def test_remove_of_a_volume_in_use_names_every_user(world: FakeWorld) -> None:
    world.docker.add_container("app", volume="shared", content=b"data")
    world.docker.add_container("old-app", running=False).volumes["shared"] = "/data"
    with pytest.raises(VolumeInUse, match=r"volume shared is used by container app \(running\), "
                                          r"old-app \(stopped\)"):
        volumes.remove_volume(world.services, "shared")
    assert world.docker.volumes["shared"].content == b"data"


def test_remove_of_a_missing_volume_is_refused(world: FakeWorld) -> None:
    with pytest.raises(VolumeNotFound, match="no volume named ghost"):
        volumes.remove_volume(world.services, "ghost")


# --- clone --------------------------------------------------------------------------


def test_clone_copies_the_content_into_a_new_labelled_volume(world: FakeWorld) -> None:
    world.docker.add_container("db", volume="db-data", content=b"precious rows")
    result = volumes.clone_volume(world.services, "db-data", "db-copy")
    assert world.docker.volumes["db-copy"].content == b"precious rows"
    assert world.docker.volumes["db-copy"].labels == {CLONED_FROM_LABEL: "db-data"}
    assert (result.source, result.target, result.created, result.size_bytes) == (
        "db-data", "db-copy", True, len(b"precious rows"))
    assert world.docker.volumes["db-data"].content == b"precious rows"


def test_clone_onto_an_existing_volume_needs_force(world: FakeWorld) -> None:
    _volume_with(world, "src", b"new")
    _volume_with(world, "dst", b"old")
    with pytest.raises(NameTaken, match=r"volume dst already exists; .* --force"):
        volumes.clone_volume(world.services, "src", "dst")
    assert world.docker.volumes["dst"].content == b"old"
    result = volumes.clone_volume(world.services, "src", "dst", force=True)
    assert world.docker.volumes["dst"].content == b"new" and not result.created


def test_clone_never_writes_under_a_container_even_with_force(world: FakeWorld) -> None:
    _volume_with(world, "src", b"new")
    world.docker.add_container("app", volume="dst", content=b"live")
    with pytest.raises(VolumeInUse, match=r"volume dst is used by container app \(running\)"):
        volumes.clone_volume(world.services, "src", "dst", force=True)
    assert world.docker.volumes["dst"].content == b"live"


def test_clone_of_a_missing_source_or_onto_itself_is_refused(world: FakeWorld) -> None:
    _volume_with(world, "src", b"x")
    before = _contents(world)
    with pytest.raises(VolumeNotFound, match="no volume named ghost"):
        volumes.clone_volume(world.services, "ghost", "dst")
    with pytest.raises(InvalidName, match="source and target are the same volume"):
        volumes.clone_volume(world.services, "src", "src", force=True)
    with pytest.raises(InvalidName, match="cannot name a volume '-dst'"):
        volumes.clone_volume(world.services, "src", "-dst")
    assert _contents(world) == before


def test_a_failed_copy_removes_the_target_it_created(world: FakeWorld) -> None:
    _volume_with(world, "src", b"x" * 100)
    world.docker.copy_error = "tar: write error: No space left on device"
    with pytest.raises(ExecFailed, match="No space left on device"):
        volumes.clone_volume(world.services, "src", "dst")
    assert sorted(world.docker.volumes) == ["src"]


def test_a_failed_forced_copy_says_the_target_is_incomplete(world: FakeWorld) -> None:
    _volume_with(world, "src", b"x" * 100)
    _volume_with(world, "dst", b"old")
    world.docker.copy_error = "tar: write error: No space left on device"
    with pytest.raises(CloneFailed, match=r"cloning src into dst failed: .*No space left on "
                                          r"device; dst was emptied for --force and is "
                                          r"incomplete now"):
        volumes.clone_volume(world.services, "src", "dst", force=True)
    assert "dst" in world.docker.volumes and world.docker.volumes["src"].content == b"x" * 100


def test_the_copy_error_is_raised_even_if_the_cleanup_fails(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    _volume_with(world, "src", b"x")
    world.docker.copy_error = "tar: write error"

    def refuse(name: str) -> None:
        raise DockerRefused(f"Docker refused: volume {name} is busy")

    monkeypatch.setattr(world.docker, "remove_volume", refuse)
    with pytest.raises(ExecFailed, match="tar: write error"):
        volumes.clone_volume(world.services, "src", "dst")
