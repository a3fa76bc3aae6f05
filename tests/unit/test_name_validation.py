"""Every check of a name, id or key matches the whole string: ``valid + "\\n"`` is
refused wherever ``valid`` is accepted (``re.match`` with ``$`` let a trailing
newline through). Also the length bounds of Docker names and the rules for
volume labels, all pure and without an engine."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import HoldfastError, InvalidInput, InvalidName
from backup.names import (
    CONTAINER_NAME_MAX,
    DOCKER_NAME,
    VOLUME_NAME_MAX,
    check_container_name,
    check_volume_name,
    is_volume_name,
)
from backup.pipeline import data_key
from backup.storage.base import validate_key
from backup.storage.s3.options import parse_options
from backup.types import Manifest, Mount, fill_command
from backup.volumes import (
    LABEL_KEY_MAX,
    LABEL_VALUE_MAX,
    LABELS_MAX,
    check_volume_labels,
)
from restore.planner import plan_restore
from service.settings import Settings

MOMENT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
NAMES = st.from_regex(DOCKER_NAME, fullmatch=True).filter(lambda n: len(n) <= 100)
KEY_PARTS = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,30}", fullmatch=True).filter(
    lambda part: ".partial" not in part)
TRAILERS = st.sampled_from(["\n", "\r\n", "\n\n"])


def manifest(*paths: str) -> Manifest:
    return Manifest(
        snapshot_id="20261129T120000Z-abcdef", instance="billing", engine="postgres",
        data_key="billing/20261129T120000Z-abcdef/data.hfa.zst",
        data_format="holdfast-postgres-v1", compression="zstd", image="postgres:15",
        image_id="sha256:1", created_at=MOMENT, finished_at=MOMENT, size_bytes=10, raw_bytes=20,
        sha256="0" * 64, env={},
        mounts=tuple(Mount(path, "volume", "b") for path in paths or ["/var/lib/postgresql"]))


def restore_as(name: str) -> None:
    plan_restore(manifest(), new_name=name, default_data_paths=["/data"], secret_values={},
                 taken_container_names=set(), existing_volumes=set())


def target_named(name: str) -> None:
    Settings.load({f"HOLDFAST_TARGET_{name}": "file:///srv/backups"})


def storage_class(name: str) -> None:
    parse_options("offsite", f"storage_class={name}")


def volume_label_key(key: str) -> None:
    check_volume_labels({key: "v"})


def volume_label_value(value: str) -> None:
    check_volume_labels({"k": value})


NAME_CHECKS: dict[str, Callable[[str], object]] = {
    "volume name": check_volume_name,
    "container name": check_container_name,
    "restored container name": restore_as,
    "instance name in a storage key": lambda name: data_key(name, "20261129T120000Z-abcdef"),
    "volume label key": volume_label_key,
    "volume label value": volume_label_value,
}


@pytest.mark.parametrize("check", list(NAME_CHECKS.values()), ids=list(NAME_CHECKS))
@given(name=NAMES, trailer=TRAILERS)
def test_a_valid_name_with_a_trailing_newline_is_refused(
    check: Callable[[str], object], name: str, trailer: str,
) -> None:
    check(name)  # valid as it is ...
    with pytest.raises(InvalidInput):
        check(name + trailer)  # ... and refused with a newline after it


@given(name=NAMES, trailer=TRAILERS)
def test_a_volume_name_with_a_trailing_newline_cannot_exist(name: str, trailer: str) -> None:
    assert is_volume_name(name) and not is_volume_name(name + trailer)


@given(parts=st.lists(KEY_PARTS, min_size=1, max_size=4), trailer=TRAILERS)
def test_a_storage_key_with_a_trailing_newline_is_refused(parts: list[str],
                                                          trailer: str) -> None:
    key = "/".join(parts)
    assert validate_key(key) == key
    with pytest.raises(InvalidName):
        validate_key(key + trailer)


@given(name=st.from_regex(r"[A-Z0-9_]{1,20}", fullmatch=True), trailer=TRAILERS)
def test_a_target_name_with_a_trailing_newline_is_refused(name: str, trailer: str) -> None:
    target_named(name)
    with pytest.raises(InvalidInput, match="target names are letters, digits and _"):
        target_named(name + trailer)


@given(name=st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True), trailer=TRAILERS)
def test_a_storage_class_with_a_trailing_newline_is_refused(name: str, trailer: str) -> None:
    storage_class(name)
    with pytest.raises(InvalidInput, match="is not a storage class name"):
        storage_class(name + trailer)


@given(name=st.from_regex(r"[A-Z0-9_]{1,20}", fullmatch=True), trailer=TRAILERS)
def test_a_secret_mark_with_a_trailing_newline_is_no_mark(name: str, trailer: str) -> None:
    assert fill_command([f"{{{{secret:{name}}}}}"], {name: "pw"}) == ("pw",)
    # Not a mark: left as the text it is, never filled with the secret.
    marked = f"{{{{secret:{name}}}}}{trailer}"
    assert fill_command([marked], {name: "pw"}) == (marked,)


# --- lengths -----------------------------------------------------------------------------


def test_a_volume_name_may_be_255_characters_and_no_more() -> None:
    check_volume_name("v" * VOLUME_NAME_MAX)
    with pytest.raises(InvalidName) as caught:
        check_volume_name("v" * 300)
    message = str(caught.value)
    assert message.endswith("(300 characters): names are at most 255 characters")
    assert len(message) < 150  # the name is not echoed whole


def test_a_container_name_may_be_128_characters_and_no_more() -> None:
    check_container_name("c" * CONTAINER_NAME_MAX)
    restore_as("c" * CONTAINER_NAME_MAX)
    with pytest.raises(InvalidName, match="names are at most 128 characters"):
        check_container_name("c" * (CONTAINER_NAME_MAX + 1))
    with pytest.raises(InvalidName, match="names are at most 128 characters"):
        restore_as("c" * 300)


@pytest.mark.parametrize("name", ["a", "-a", ".hidden", "a b", "a/b", "../x", "é-x", ""])
def test_names_outside_dockers_grammar_are_refused(name: str) -> None:
    with pytest.raises(InvalidName, match=r"use 2 to 255 letters, digits and _\.-"):
        check_volume_name(name)
    assert not is_volume_name(name)


def test_a_restore_whose_mount_path_would_make_a_too_long_volume_name_is_refused() -> None:
    long_path = "/" + "p" * 200
    with pytest.raises(InvalidName, match="over Docker's 255 characters; choose a shorter"):
        plan_restore(manifest(long_path, "/other"), new_name="c" * 100,
                     default_data_paths=[], secret_values={},
                     taken_container_names=set(), existing_volumes=set())


# --- volume labels -----------------------------------------------------------------------


@pytest.mark.parametrize(("labels", "message"), [
    ({"": "x"}, "a volume label needs a key: an empty key is not allowed"),
    ({"te\x00am": "x"}, r"the key of volume label 'te\\x00am' holds the control character "
                        r"U\+0000; labels are plain text"),
    ({"team": "sh\x00op"}, r"the value of volume label 'team' holds the control character "
                           r"U\+0000"),
    ({"team": "a\tb"}, r"the value of volume label 'team' holds the control character U\+0009"),
    ({"team": "a\x7fb"}, r"U\+007F"),
    ({"team": "a\x85b"}, r"U\+0085"),
    ({"k" * (LABEL_KEY_MAX + 1): "x"}, "is longer than 128 characters"),
    ({"team": "v" * (LABEL_VALUE_MAX + 1)}, "the value of volume label 'team' is longer "
                                            "than 1024 characters"),
    ({f"k{i}": "v" for i in range(LABELS_MAX + 1)}, "a volume takes at most 64 labels, not 65"),
])
def test_bad_volume_labels_are_refused_in_one_line(labels: dict[str, str],
                                                   message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        check_volume_labels(labels)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_labels_at_every_bound_are_accepted() -> None:
    check_volume_labels({f"k{i}": "v" for i in range(LABELS_MAX)})
    check_volume_labels({"k" * LABEL_KEY_MAX: "v" * LABEL_VALUE_MAX, "unicode": "café ☕"})
    check_volume_labels({})


def test_every_refusal_here_is_a_holdfast_error() -> None:
    assert issubclass(InvalidName, HoldfastError)
