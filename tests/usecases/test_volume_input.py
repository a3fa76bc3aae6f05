"""Volume names and labels are checked before Docker sees them, names no
volume can have are never sent to the engine, and the helper image a clone
needs is pulled when missing (or refused in one line when it cannot be)."""

from __future__ import annotations

import logging

import pytest

from backup.errors import ImageNotFound, InvalidInput, InvalidName, VolumeNotFound
from service.entrypoints.error_table import outcome_for
from service.usecases import volumes
from tests.fakes.docker import HELPER_IMAGE, NO_REGISTRY
from tests.fakes.services import FakeWorld


def test_a_300_character_name_is_refused_before_docker(world: FakeWorld) -> None:
    with pytest.raises(InvalidName) as caught:
        volumes.create_volume(world.services, "v" * 300)
    assert "names are at most 255 characters" in str(caught.value)
    assert (outcome_for(caught.value).http_status, outcome_for(caught.value).exit_code) == (400, 2)
    assert world.docker.volumes == {}


def test_a_clone_target_of_300_characters_is_refused(world: FakeWorld) -> None:
    volumes.create_volume(world.services, "source")
    with pytest.raises(InvalidName, match="names are at most 255 characters"):
        volumes.prepare_clone(world.services, "source", "t" * 300)


@pytest.mark.parametrize("labels", [{"": "x"}, {"k\x00": "x"}, {"k": "a\x00b"},
                                    {"k": "line\nbreak"}, {f"k{i}": "" for i in range(65)}])
def test_bad_labels_are_refused_and_nothing_is_created(world: FakeWorld,
                                                       labels: dict[str, str]) -> None:
    with pytest.raises(InvalidInput):
        volumes.create_volume(world.services, "scratch", labels)
    assert world.docker.volumes == {}


def test_good_labels_are_kept(world: FakeWorld) -> None:
    volumes.create_volume(world.services, "scratch", {"team": "shop", "note": "café"})
    assert world.docker.volumes["scratch"].labels == {"team": "shop", "note": "café"}


@pytest.mark.parametrize("name", ["../containers/x", "data\n", "v" * 300, "a"])
def test_a_name_no_volume_can_have_is_not_found_without_asking_docker(
    world: FakeWorld, name: str,
) -> None:
    world.docker.unreachable = True  # any question to the engine would fail differently
    with pytest.raises(VolumeNotFound, match="`holdfast volumes ls` lists them"):
        volumes.get_volume(world.services, name)
    with pytest.raises(VolumeNotFound):
        volumes.remove_volume(world.services, name)
    with pytest.raises(VolumeNotFound):
        volumes.prepare_clone(world.services, name, "target")


# --- the helper image --------------------------------------------------------------------


def test_a_clone_pulls_a_missing_helper_image_once(world: FakeWorld,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    volumes.create_volume(world.services, "source")
    assert HELPER_IMAGE not in world.docker.images
    with caplog.at_level(logging.INFO):
        volumes.clone_volume(world.services, "source", "copy-1")
        volumes.clone_volume(world.services, "source", "copy-2")
    assert world.docker.pulls == [HELPER_IMAGE]
    assert HELPER_IMAGE in world.docker.images
    assert f"image {HELPER_IMAGE} is not on the Docker engine; pulling it" in caplog.messages
    assert {"copy-1", "copy-2"} <= set(world.docker.volumes)


def test_a_clone_on_an_engine_that_cannot_pull_says_what_to_do(world: FakeWorld) -> None:
    volumes.create_volume(world.services, "source")
    world.docker.pullable = set()  # no registry
    with pytest.raises(ImageNotFound) as caught:
        volumes.clone_volume(world.services, "source", "copy")
    assert str(caught.value) == (
        f"cannot pull helper image {HELPER_IMAGE}: {NO_REGISTRY}; load it with `docker load` "
        "or set HOLDFAST_HELPER_IMAGE to a local image that has sh and GNU tar")
    assert outcome_for(caught.value).exit_code == 3
    assert set(world.docker.volumes) == {"source"}  # the half-made target is gone again


def test_a_local_helper_image_is_used_without_a_pull(world: FakeWorld) -> None:
    volumes.create_volume(world.services, "source")
    world.docker.pullable = set()
    world.docker.images.add(HELPER_IMAGE)  # loaded with docker load
    volumes.clone_volume(world.services, "source", "copy")
    assert world.docker.pulls == []
