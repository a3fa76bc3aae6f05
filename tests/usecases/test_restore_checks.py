"""A restore's image is checked before anything is created: a malformed reference is
bad input, a missing image is not found, whether given or recorded; and a restore of
an instance's latest snapshot takes its newest complete one."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backup.errors import (
    DockerRefused,
    ImageNotFound,
    InstanceNotFound,
    InvalidInput,
    SnapshotNotFound,
)
from backup.types import SnapshotStatus
from service.usecases import restores
from tests.fakes.services import FakeWorld
from tests.usecases.support import T0, add_db, make_snapshot, objects, take_backup


def _state(world: FakeWorld) -> object:
    """Everything a restore could change, to compare before and after."""
    return (sorted(world.docker.containers), sorted(world.docker.volumes),
            world.catalog.list_snapshots(), world.catalog.list_jobs(), sorted(objects(world)))


@pytest.mark.parametrize("image", ["Nope:1", "", "../images/x", "a b", "x" * 600,
                                   "postgres:15\n", "fake/db:\u0661"],
                         ids=lambda image: repr(image[:16]))
def test_a_malformed_image_is_bad_input_before_anything(world: FakeWorld, image: str) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    before = _state(world)
    with pytest.raises(InvalidInput, match="is not a valid image reference") as caught:
        restores.prepare_restore(world.services, snapshot.id, "copy", image=image)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
    assert _state(world) == before


def test_a_recorded_image_that_is_malformed_asks_for_image(world: FakeWorld) -> None:
    add_db(world, "shop")
    world.docker.by_name("shop").image = "Bad Image"
    snapshot = take_backup(world, "shop")
    with pytest.raises(InvalidInput, match=r"recorded image 'Bad Image' .*; pass --image"):
        restores.prepare_restore(world.services, snapshot.id, "copy")
    assert restores.prepare_restore(world.services, snapshot.id, "copy",
                                    image="fake/db:1").plan.container.image == "fake/db:1"


def test_a_missing_image_is_not_found(world: FakeWorld) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    with pytest.raises(ImageNotFound, match="image fake/db:2 is not on this Docker engine"):
        restores.prepare_restore(world.services, snapshot.id, "copy", image="fake/db:2")


def test_a_reference_docker_refuses_is_bad_input_not_a_conflict(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")

    def refuse(image: str) -> bool:
        raise DockerRefused("Docker refused: invalid reference format")
    monkeypatch.setattr(world.docker, "image_exists", refuse)
    with pytest.raises(InvalidInput, match="image 'fake/db:1' is not accepted by Docker"):
        restores.prepare_restore(world.services, snapshot.id, "copy")


# --- the latest snapshot -------------------------------------------------------------


def test_latest_restores_the_newest_complete_snapshot(world: FakeWorld) -> None:
    add_db(world, "shop")
    take_backup(world, "shop")
    newest = take_backup(world, "shop")
    later = max(newest.created_at, T0) + timedelta(hours=1)
    make_snapshot(world, "shop", at=later, status=SnapshotStatus.FAILED)
    make_snapshot(world, "shop", at=later + timedelta(hours=1), status=SnapshotStatus.RUNNING)
    request = restores.prepare_latest_restore(world.services, "shop", "copy")
    assert request.snapshot == newest
    result = restores.execute_restore(world.services, request)
    assert result.snapshot_id == newest.id
    assert world.docker.data_of("copy") == world.docker.data_of("shop")


def test_latest_without_a_complete_snapshot_names_the_instance(world: FakeWorld) -> None:
    add_db(world, "shop")
    make_snapshot(world, "shop", status=SnapshotStatus.FAILED)
    with pytest.raises(SnapshotNotFound, match="instance shop has no complete snapshot"):
        restores.prepare_latest_restore(world.services, "shop", "copy")


def test_latest_of_an_unknown_instance_is_not_found(world: FakeWorld) -> None:
    with pytest.raises(InstanceNotFound, match="no running instance named 'ghost'"):
        restores.prepare_latest_restore(world.services, "ghost", "copy")


def test_latest_of_a_labelled_container_never_backed_up_names_it(world: FakeWorld) -> None:
    add_db(world, "shop")
    with pytest.raises(SnapshotNotFound, match="instance shop has no complete snapshot"):
        restores.prepare_latest_restore(world.services, "shop", "copy")


def test_latest_checks_the_image_first(world: FakeWorld) -> None:
    add_db(world, "shop")
    take_backup(world, "shop")
    with pytest.raises(InvalidInput, match="is not a valid image reference"):
        restores.prepare_latest_restore(world.services, "shop", "copy", image="Nope")
