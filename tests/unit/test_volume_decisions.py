"""The pure decisions behind ``holdfast volumes rm`` and ``clone``."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import InvalidName, NameTaken, VolumeInUse, VolumeNotFound
from backup.volumes import (
    CLONED_FROM_LABEL,
    VolumeInfo,
    VolumeUser,
    check_volume_name,
    decide_clone,
    decide_removal,
)

RUNNING = VolumeUser(name="shop-db", id="c1", running=True)
STOPPED = VolumeUser(name="old-db", id="c2", running=False)


def volume(name: str, *users: VolumeUser) -> VolumeInfo:
    return VolumeInfo(name=name, users=users)


def test_removal_of_an_unused_volume_is_allowed() -> None:
    assert decide_removal(volume("scratch"), "scratch").name == "scratch"


@pytest.mark.parametrize("users", [(RUNNING,), (STOPPED,), (STOPPED, RUNNING)])
def test_removal_is_refused_while_any_container_uses_it(users: tuple[VolumeUser, ...]) -> None:
    with pytest.raises(VolumeInUse) as refused:
        decide_removal(volume("data", *users), "data")
    message = str(refused.value)
    assert "\n" not in message and "remove those containers first" in message
    for user in users:
        assert user.describe() in message


def test_removal_of_a_missing_volume_says_how_to_list() -> None:
    with pytest.raises(VolumeNotFound, match="holdfast volumes ls"):
        decide_removal(None, "nope")


def test_clone_into_a_new_volume_creates_it_with_provenance() -> None:
    plan = decide_clone(volume("src", RUNNING), None, source_name="src", target_name="copy")
    assert plan.create_target
    assert (plan.source, plan.target) == ("src", "copy")
    assert plan.labels == {CLONED_FROM_LABEL: "src"}


def test_clone_never_writes_into_an_existing_volume_without_force() -> None:
    with pytest.raises(NameTaken, match="--force"):
        decide_clone(volume("src"), volume("copy"), source_name="src", target_name="copy")
    forced = decide_clone(volume("src"), volume("copy"), source_name="src",
                          target_name="copy", force=True)
    assert not forced.create_target


def test_clone_with_force_still_refuses_a_target_in_use() -> None:
    with pytest.raises(VolumeInUse, match="old-db"):
        decide_clone(volume("src"), volume("copy", STOPPED), source_name="src",
                     target_name="copy", force=True)


def test_clone_refuses_missing_source_bad_target_and_itself() -> None:
    with pytest.raises(VolumeNotFound):
        decide_clone(None, None, source_name="gone", target_name="copy")
    with pytest.raises(InvalidName):
        decide_clone(volume("src"), None, source_name="src", target_name="bad/name")
    with pytest.raises(InvalidName, match="same volume"):
        decide_clone(volume("src"), volume("src"), source_name="src", target_name="src",
                     force=True)


@given(st.text(min_size=0, max_size=40))
def test_volume_names_follow_dockers_rule(name: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    valid = (len(name) >= 2 and name[0].isascii() and name[0].isalnum()
             and all(char in allowed for char in name))
    if valid:
        check_volume_name(name)
    else:
        with pytest.raises(InvalidName):
            check_volume_name(name)


def test_json_shape() -> None:
    info = VolumeInfo(name="v", labels={"b": "2", "a": "1"}, size_bytes=10,
                      created_at=datetime(2026, 11, 30, tzinfo=UTC), users=(RUNNING,))
    assert info.to_json() == {
        "name": "v", "driver": "local", "labels": {"a": "1", "b": "2"},
        "created_at": "2026-11-30T00:00:00Z", "size_bytes": 10,
        "users": [{"name": "shop-db", "id": "c1", "running": True}], "in_use": True,
    }
