"""Encrypted snapshots through the use cases: a target with recipients stores
only ciphertext, its manifest names fingerprints and no key, a restore needs
the right identity (and says which keys it needs before creating anything),
and ``holdfast.encrypt`` can never make a backup store plaintext by surprise."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from backup.encryption import fingerprint, new_identity
from backup.errors import (
    CorruptSnapshot,
    IdentityRequired,
    InvalidLabels,
    InvalidRecipients,
    WrongIdentity,
)
from backup.pipeline import manifest_key
from backup.types import Snapshot
from service.usecases import backups, restores, snapshots
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import add_db, objects, replace_object, take_backup

CONTENT = b"row-17|alice@example.com|" + os.urandom(200_000) + b"|row-18|bob@example.com"


def _identity(tmp_path: Path, name: str) -> tuple[Path, str]:
    text, recipient = new_identity()
    path = tmp_path / name
    path.write_text(text)
    return path, recipient


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    return {"ops": _identity(tmp_path, "ops.txt"), "dr": _identity(tmp_path, "dr.txt"),
            "stranger": _identity(tmp_path, "stranger.txt")}


def _world(tmp_path: Path, env: dict[str, str]) -> FakeWorld:
    return fake_world(tmp_path / "world", env)


@pytest.fixture
def encrypted(tmp_path: Path, keys: dict[str, tuple[Path, str]]) -> tuple[FakeWorld, Snapshot]:
    world = _world(tmp_path, {"HOLDFAST_AGE_RECIPIENTS":
                              f"{keys['ops'][1]},{keys['dr'][1]}"})
    add_db(world, "shop", content=CONTENT, volume="shop-data")
    return world, take_backup(world, "shop")


def _with_identity(world: FakeWorld, path: Path | None) -> FakeWorld:
    world.services.settings.identity_file = path
    world.services._identities.clear()
    return world


def test_the_stored_object_holds_no_plaintext_and_the_manifest_no_key(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = encrypted
    stored = objects(world)
    data = stored[snapshot.data_key]
    assert snapshot.data_key.endswith("/data.hfa.zst.age")
    assert data.startswith(b"age-encryption.org/v1\n")
    assert b"alice@example.com" not in data and CONTENT[30:60] not in data
    manifest = json.loads(stored[manifest_key("shop", snapshot.id)])
    assert manifest["encryption"] == "age-v1"
    assert manifest["recipients"] == [fingerprint(keys["ops"][1]), fingerprint(keys["dr"][1])]
    text = stored[manifest_key("shop", snapshot.id)].decode()
    for _path, recipient in keys.values():
        assert recipient not in text and "AGE-SECRET-KEY" not in text
    assert manifest["size_bytes"] == len(data) == snapshot.size_bytes


def test_each_recipient_alone_restores_the_exact_data(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = encrypted
    for number, who in enumerate(("ops", "dr")):
        _with_identity(world, keys[who][0])
        restores.run_restore(world.services, snapshot.id, f"copy{number}")
        assert world.docker.data_of(f"copy{number}") == CONTENT


def test_without_an_identity_the_restore_names_the_recipients_and_creates_nothing(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = encrypted
    containers = set(world.docker.containers)
    with pytest.raises(IdentityRequired) as refused:
        restores.prepare_restore(world.services, snapshot.id, "copy")
    message = str(refused.value)
    assert "\n" not in message and "--identity" in message
    assert fingerprint(keys["ops"][1]) in message and fingerprint(keys["dr"][1]) in message
    assert set(world.docker.containers) == containers


def test_a_wrong_identity_is_refused_before_anything_is_created(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = _with_identity(encrypted[0], keys["stranger"][0]), encrypted[1]
    volumes = set(world.docker.volumes)
    with pytest.raises(WrongIdentity, match=r"stranger\.txt"):
        restores.prepare_restore(world.services, snapshot.id, "copy")
    assert set(world.docker.volumes) == volumes


def test_a_damaged_ciphertext_is_corrupt_and_leaves_no_container(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = _with_identity(encrypted[0], keys["ops"][0]), encrypted[1]
    data = bytearray(objects(world)[snapshot.data_key])
    data[len(data) // 2] ^= 0x01
    replace_object(world, snapshot.data_key, bytes(data))
    with pytest.raises(CorruptSnapshot):
        restores.run_restore(world.services, snapshot.id, "copy")
    assert "copy" not in {c.name for c in world.docker.containers.values()}
    assert "copy-data" not in world.docker.volumes


def test_a_target_of_its_own_wins_over_the_global_recipients(
        tmp_path: Path, keys: dict[str, tuple[Path, str]]) -> None:
    world = _world(tmp_path, {"HOLDFAST_AGE_RECIPIENTS": keys["ops"][1],
                              "HOLDFAST_TARGET_OFFSITE_AGE_RECIPIENTS": keys["dr"][1]})
    add_db(world, "shop", content=CONTENT)
    local, offsite = take_backup(world, "shop"), take_backup(world, "shop", "offsite")
    manifests = {name: json.loads(objects(world, name)[manifest_key("shop", snap.id)])
                 for name, snap in (("local", local), ("offsite", offsite))}
    assert manifests["local"]["recipients"] == [fingerprint(keys["ops"][1])]
    assert manifests["offsite"]["recipients"] == [fingerprint(keys["dr"][1])]


def test_a_target_without_recipients_stores_plaintext_as_before(tmp_path: Path) -> None:
    world = _world(tmp_path, {})
    add_db(world, "shop", content=CONTENT)
    snapshot = take_backup(world, "shop")
    assert snapshot.data_key.endswith("/data.hfa.zst")
    manifest = json.loads(objects(world)[manifest_key("shop", snapshot.id)])
    assert manifest["encryption"] is None and manifest["recipients"] == []


def test_encrypt_false_is_refused_while_the_target_requires_encryption(
        tmp_path: Path, keys: dict[str, tuple[Path, str]]) -> None:
    world = _world(tmp_path, {"HOLDFAST_AGE_RECIPIENTS": keys["ops"][1]})
    add_db(world, "shop", labels={"holdfast.encrypt": "false"})
    with pytest.raises(InvalidLabels, match=r"requires encryption.*HOLDFAST_AGE_RECIPIENTS"):
        backups.prepare_backup(world.services, "shop")
    assert world.catalog.list_snapshots() == []


def test_encrypt_true_is_refused_for_a_target_without_recipients(tmp_path: Path) -> None:
    world = _world(tmp_path, {})
    add_db(world, "shop", labels={"holdfast.encrypt": "true"})
    with pytest.raises(InvalidLabels, match="no age recipients"):
        backups.prepare_backup(world.services, "shop")


def test_bad_recipients_are_refused_naming_the_setting(tmp_path: Path) -> None:
    world = _world(tmp_path, {"HOLDFAST_TARGET_OFFSITE_AGE_RECIPIENTS": "age1notakey"})
    add_db(world, "shop")
    with pytest.raises(InvalidRecipients, match="HOLDFAST_TARGET_OFFSITE_AGE_RECIPIENTS"):
        backups.prepare_backup(world.services, "shop", "offsite")


def test_a_recipients_file_is_read_with_its_comments(
        tmp_path: Path, keys: dict[str, tuple[Path, str]]) -> None:
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# ops\n{keys['ops'][1]}\n\n# disaster recovery\n{keys['dr'][1]}\n")
    world = _world(tmp_path, {"HOLDFAST_AGE_RECIPIENTS": str(listed)})
    add_db(world, "shop", content=CONTENT)
    snapshot = take_backup(world, "shop")
    _with_identity(world, keys["dr"][0])
    restores.run_restore(world.services, snapshot.id, "copy")
    assert world.docker.data_of("copy") == CONTENT


def test_a_new_machine_with_only_the_identity_and_the_target_restores(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]],
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's disaster recovery: a fresh catalog rebuilt from the target's
    manifests, then a restore with the identity file and the exported password."""
    old, snapshot = encrypted
    new = _world(tmp_path / "new", {})
    new.services._targets["local"] = old.storage("local")  # the same bucket, nothing else
    rebuilt = snapshots.rebuild_catalog(new.services)
    assert rebuilt.added == 1 and rebuilt.broken == []
    found = new.catalog.get_snapshot(snapshot.id)
    assert found is not None and found.data_key == snapshot.data_key
    _with_identity(new, keys["dr"][0])
    new.docker.images.add("fake/db:1")
    monkeypatch.setenv("FAKE_PASSWORD", "s3cret")  # not in the bucket: the README says so
    restores.run_restore(new.services, snapshot.id, "copy")
    assert new.docker.data_of("copy") == CONTENT
