"""``verify_snapshot`` and ``verify_target`` on the fakes: whole plaintext and
encrypted snapshots pass; each kind of damage is reported by the check it
concerns (a flipped byte by sha256, a cut by size, a missing object, damaged
ciphertext whose manifest matches it by the decrypt check, a cut zstd frame by
decompression, a cut archive re-compressed whole by the framing check alone);
a target check finds orphans but not a running backup's object; identities
are required, or reported per object, as the brief says."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from backup.encryption import fingerprint, new_identity, parse_recipients
from backup.errors import Conflict, IdentityRequired, TargetNotFound, WrongIdentity
from backup.framing import pack
from backup.integrity import Outcome, SnapshotReport
from backup.pipeline import manifest_key
from backup.streams import compress, decompress
from backup.types import Manifest, Snapshot, SnapshotStatus
from service.usecases.integrity import verify_snapshot, verify_target
from service.usecases.targets import PROBE_PREFIX
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import (
    DEAD_RUNNER,
    OTHER_HOST_RUNNER,
    add_db,
    make_snapshot,
    objects,
    replace_object,
    take_backup,
)


def _outcome(report: SnapshotReport, check: str) -> Outcome:
    return next(c.outcome for c in report.checks if c.name == check)


def _failed(report: SnapshotReport) -> list[str]:
    return [c.name for c in report.checks if c.outcome == Outcome.FAILED]


def _manifest(world: FakeWorld, snapshot: Snapshot) -> Manifest:
    return Manifest.from_bytes(objects(world)[manifest_key(snapshot.instance, snapshot.id)])


def _store_as_recorded(world: FakeWorld, snapshot: Snapshot, data: bytes,
                       data_format: str | None = None) -> None:
    """Replace the snapshot's data object with ``data`` and rewrite its manifest
    to record exactly that object (so size and sha256 pass), in ``data_format``."""
    recorded = _manifest(world, snapshot)
    manifest = replace(recorded, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                       data_format=data_format or recorded.data_format)
    replace_object(world, snapshot.data_key, data)
    replace_object(world, manifest_key(snapshot.instance, snapshot.id), manifest.to_bytes())


@pytest.fixture
def backed_up(world: FakeWorld) -> Snapshot:
    add_db(world, "shop")
    return take_backup(world, "shop")


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    made = {}
    for name in ("ops", "stranger"):
        text, recipient = new_identity()
        (tmp_path / name).write_text(text)
        made[name] = (tmp_path / name, recipient)
    return made


@pytest.fixture
def encrypted(tmp_path: Path, keys: dict[str, tuple[Path, str]]) -> tuple[FakeWorld, Snapshot]:
    world = fake_world(tmp_path / "world", {"HOLDFAST_AGE_RECIPIENTS": keys["ops"][1]})
    add_db(world, "shop")
    return world, take_backup(world, "shop")


def _identity(world: FakeWorld, path: Path | None) -> FakeWorld:
    world.services.settings.identity_file = path
    world.services._identities.clear()
    return world


def test_a_whole_plaintext_backup_verifies(world: FakeWorld, backed_up: Snapshot) -> None:
    report = verify_snapshot(world.services, backed_up.id)
    assert report.whole and report.fully_checked
    assert report.stored_size == backed_up.size_bytes
    assert _outcome(report, "decompresses") == Outcome.OK


def test_a_whole_encrypted_backup_verifies_with_its_identity(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = _identity(encrypted[0], keys["ops"][0]), encrypted[1]
    report = verify_snapshot(world.services, snapshot.id)
    assert report.whole and report.fully_checked and report.encryption == "age-v1"
    assert _outcome(report, "decrypts") == Outcome.OK


def test_a_flipped_byte_is_a_sha256_failure(world: FakeWorld, backed_up: Snapshot) -> None:
    data = bytearray(objects(world)[backed_up.data_key])
    data[100] ^= 0x80
    replace_object(world, backed_up.data_key, bytes(data))
    report = verify_snapshot(world.services, backed_up.id)
    assert "sha256" in _failed(report) and "size" not in _failed(report)
    assert report.problem() == "corrupt"


def test_a_truncated_object_is_a_size_failure(world: FakeWorld, backed_up: Snapshot) -> None:
    replace_object(world, backed_up.data_key, objects(world)[backed_up.data_key][:-1])
    report = verify_snapshot(world.services, backed_up.id)
    assert report.problem() == "short" and "size" in _failed(report)


def test_a_missing_object_fails_present(world: FakeWorld, backed_up: Snapshot) -> None:
    world.storage().delete(backed_up.data_key)
    report = verify_snapshot(world.services, backed_up.id)
    assert _failed(report) == ["present"] and report.problem() == "missing"


def test_damaged_ciphertext_recorded_as_is_fails_the_decrypt_check(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = _identity(encrypted[0], keys["ops"][0]), encrypted[1]
    data = bytearray(objects(world)[snapshot.data_key])
    data[len(data) // 2] ^= 0x04
    _store_as_recorded(world, snapshot, bytes(data))
    report = verify_snapshot(world.services, snapshot.id)
    assert _failed(report) == ["decrypts"], report


def test_ciphertext_of_a_cut_zstd_stream_fails_decompression_after_decrypting(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = _identity(encrypted[0], keys["ops"][0]), encrypted[1]
    recipients = parse_recipients(keys["ops"][1], source="test")
    plain = world.docker.data_of("shop")
    cut = b"".join(compress([plain]))[:-20]
    _store_as_recorded(world, snapshot, b"".join(recipients.encrypt([cut])))
    report = verify_snapshot(world.services, snapshot.id)
    assert _failed(report) == ["decompresses"]
    assert _outcome(report, "decrypts") == Outcome.OK and report.stored_size == \
        len(objects(world)[snapshot.data_key])


def test_a_zstd_stream_that_is_not_whole_fails_decompression(
        world: FakeWorld, backed_up: Snapshot) -> None:
    _store_as_recorded(world, backed_up, objects(world)[backed_up.data_key][:-30])
    report = verify_snapshot(world.services, backed_up.id)
    assert _failed(report) == ["decompresses"]


def test_a_cut_archive_compressed_whole_fails_only_the_framing_check(
        world: FakeWorld, backed_up: Snapshot) -> None:
    payload = b"".join(decompress([objects(world)[backed_up.data_key]]))
    archive = b"".join(pack([("meta", [b"{}"]), ("data", [payload])]))
    _store_as_recorded(world, backed_up, b"".join(compress([archive[:-10]])),
                       data_format="holdfast-volume-v1")
    report = verify_snapshot(world.services, backed_up.id)
    assert _failed(report) == ["framing"]
    _store_as_recorded(world, backed_up, b"".join(compress([archive])),
                       data_format="holdfast-volume-v1")
    whole = verify_snapshot(world.services, backed_up.id)
    assert whole.whole and whole.members == 2 and _outcome(whole, "framing") == Outcome.OK


def test_without_an_identity_an_encrypted_snapshot_is_refused_up_front(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = encrypted
    with pytest.raises(IdentityRequired, match=fingerprint(keys["ops"][1])):
        verify_snapshot(world.services, snapshot.id)
    _identity(world, keys["stranger"][0])
    with pytest.raises(WrongIdentity, match="stranger"):
        verify_snapshot(world.services, snapshot.id)


def test_a_snapshot_being_written_is_a_conflict(world: FakeWorld) -> None:
    running = make_snapshot(world, "shop", status=SnapshotStatus.RUNNING,
                            runner=OTHER_HOST_RUNNER)
    with pytest.raises(Conflict, match="still being written"):
        verify_snapshot(world.services, running.id)
    stale = make_snapshot(world, "shop", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER)
    report = verify_snapshot(world.services, stale.id)  # its writer is gone: no manifest
    assert _failed(report) == ["manifest"]


def test_a_complete_row_without_its_manifest_is_not_whole(
        world: FakeWorld, backed_up: Snapshot) -> None:
    world.storage().delete(manifest_key("shop", backed_up.id))
    report = verify_snapshot(world.services, backed_up.id)
    assert _failed(report) == ["manifest"] and not report.whole
    problems = verify_target(world.services, "local").problems
    assert {(p.kind, p.snapshot_id) for p in problems} == {
        ("no-manifest", backed_up.id), ("orphan", None)}  # its data object, unclaimed now


def test_the_target_check_finds_orphans_but_not_a_backup_in_flight(
        world: FakeWorld, backed_up: Snapshot) -> None:
    assert verify_target(world.services, "local").whole
    running = make_snapshot(world, "shop", status=SnapshotStatus.RUNNING)
    world.storage().put("shop/20200101T000000Z-dead00/data.hfa.zst", [b"a failed backup's"])
    world.storage().put(f"{PROBE_PREFIX}/host-1234", [b"a check in progress"])
    report = verify_target(world.services, "local")
    assert [(p.kind, p.key) for p in report.problems] == [
        ("orphan", "shop/20200101T000000Z-dead00/data.hfa.zst")]
    assert running.data_key in objects(world)
    assert json.loads(json.dumps(report.to_json()))["whole"] is False


def test_the_target_check_without_identity_or_with_a_wrong_one_still_runs(
        encrypted: tuple[FakeWorld, Snapshot], keys: dict[str, tuple[Path, str]]) -> None:
    world, snapshot = encrypted
    report = verify_target(world.services, "local")
    assert report.whole and [r.snapshot_id for r in report.partly_checked] == [snapshot.id]
    [checked] = report.snapshots
    assert _outcome(checked, "sha256") == Outcome.OK and not checked.fully_checked
    _identity(world, keys["stranger"][0])
    wrong = verify_target(world.services, "local")
    assert wrong.whole and "wrong identity" in wrong.summary()
    assert "does not open" in (wrong.snapshots[0].identity_problem or "")
    _identity(world, keys["ops"][0])
    assert verify_target(world.services, "local").partly_checked == []


def test_an_unknown_target_is_not_found(world: FakeWorld) -> None:
    with pytest.raises(TargetNotFound, match="configured: local, offsite"):
        verify_target(world.services, "elsewhere")
