"""The integrity checks of :mod:`backup.integrity` on a memory target: a whole
snapshot passes every check; any flipped byte or cut of the stored object is
reported and never called whole; each layer (sha256, size, age, zstd, hfa1
framing) is caught by its own check when only it is damaged; and the target
check finds missing, short, corrupt, unparsable and orphaned objects."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.encryption import Identities, load_identities, new_identity, parse_recipients
from backup.framing import pack
from backup.integrity import Outcome, SnapshotReport, check_snapshot
from backup.integrity_target import check_target, unclaimed
from backup.pipeline import data_key, manifest_key
from backup.storage.memory import MemoryStorage
from backup.streams import compress, read_all
from backup.types import Manifest, Snapshot, SnapshotStatus

T0 = datetime(2026, 12, 3, 5, 0, tzinfo=UTC)
PAYLOAD = [("meta", [b'{"databases": ["app"]}']),
           ("db/app", [random.Random(12).randbytes(150_000)])]


def _archive(members: Iterable[tuple[str, list[bytes]]] = PAYLOAD) -> bytes:
    return b"".join(compress(pack(members)))


def _store(storage: MemoryStorage, stored: bytes, *, snapshot_id: str = "20261203T050000Z-aaaaaa",
           instance: str = "shop", encrypted: bool = False, fingerprints: tuple[str, ...] = (),
           data_format: str = "holdfast-postgres-v1", size: int | None = None,
           sha256: str | None = None) -> Manifest:
    """``stored`` as a snapshot's data object with a manifest recording ``size``
    and ``sha256`` (those of ``stored`` unless given)."""
    key = data_key(instance, snapshot_id, encrypted=encrypted)
    storage.put(key, [stored])
    manifest = Manifest(
        snapshot_id=snapshot_id, instance=instance, engine="postgres", data_key=key,
        data_format=data_format, compression="zstd", image="postgres:16", image_id="sha256:1",
        created_at=T0, finished_at=T0, raw_bytes=0,
        size_bytes=len(stored) if size is None else size,
        sha256=hashlib.sha256(stored).hexdigest() if sha256 is None else sha256,
        encryption="age-v1" if encrypted else None, recipients=fingerprints)
    storage.put(manifest_key(instance, snapshot_id), [manifest.to_bytes()])
    return manifest


def _outcomes(report: SnapshotReport) -> dict[str, Outcome]:
    return {check.name: check.outcome for check in report.checks}


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage("local", "memory://local")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Identities, str, Identities]:
    """An identity, its recipient, and a stranger's identity."""
    folder = tmp_path_factory.mktemp("keys")
    made = []
    for name in ("ops", "stranger"):
        text, recipient = new_identity()
        (folder / name).write_text(text)
        made.append((load_identities(Path(folder / name)), recipient))
    return made[0][0], made[0][1], made[1][0]


def _encrypt(plain: bytes, recipient: str) -> tuple[bytes, tuple[str, ...]]:
    recipients = parse_recipients(recipient, source="test")
    return b"".join(recipients.encrypt([plain])), recipients.fingerprints


def test_a_whole_plaintext_snapshot_passes_every_check(storage: MemoryStorage) -> None:
    manifest = _store(storage, _archive())
    report = check_snapshot(storage, manifest, None)
    assert report.whole and report.fully_checked and report.problem() is None
    assert _outcomes(report) == {"manifest": Outcome.OK, "present": Outcome.OK,
                                 "size": Outcome.OK, "sha256": Outcome.OK,
                                 "decrypts": Outcome.NOT_CHECKED,  # it has no age layer
                                 "decompresses": Outcome.OK, "framing": Outcome.OK}
    assert report.members == 2 and report.stored_size == manifest.size_bytes


def test_a_whole_encrypted_snapshot_passes_with_its_identity(
        storage: MemoryStorage, keys: tuple[Identities, str, Identities]) -> None:
    identity, recipient, _ = keys
    stored, prints = _encrypt(_archive(), recipient)
    manifest = _store(storage, stored, encrypted=True, fingerprints=prints)
    report = check_snapshot(storage, manifest, identity)
    assert report.whole and report.fully_checked
    assert set(_outcomes(report).values()) == {Outcome.OK}


def test_without_an_identity_only_size_and_sha256_are_checked(
        storage: MemoryStorage, keys: tuple[Identities, str, Identities]) -> None:
    stored, prints = _encrypt(_archive(), keys[1])
    manifest = _store(storage, stored, encrypted=True, fingerprints=prints)
    report = check_snapshot(storage, manifest, None)
    assert report.whole and not report.fully_checked
    outcomes = _outcomes(report)
    assert outcomes["size"] == outcomes["sha256"] == Outcome.OK
    assert {outcomes[n] for n in ("decrypts", "decompresses", "framing")} == {Outcome.NOT_CHECKED}
    assert all(c.detail == "no identity" for c in report.checks if c.name == "decrypts")


def test_a_flipped_byte_fails_sha256(storage: MemoryStorage) -> None:
    good = _archive()
    manifest = _store(storage, good[:40] + bytes([good[40] ^ 1]) + good[41:],
                      sha256=hashlib.sha256(good).hexdigest())
    report = check_snapshot(storage, manifest, None)
    assert not report.whole and report.problem() == "corrupt"
    assert _outcomes(report)["sha256"] == Outcome.FAILED and _outcomes(report)["size"] == Outcome.OK


def test_a_truncated_object_is_short_and_still_fully_read(storage: MemoryStorage) -> None:
    good = _archive()
    manifest = _store(storage, good[:-100], size=len(good), sha256=hashlib.sha256(good).hexdigest())
    report = check_snapshot(storage, manifest, None)
    assert report.problem() == "short" and report.stored_size == len(good) - 100
    assert _outcomes(report)["decompresses"] == Outcome.FAILED  # the frame is cut too


def test_a_missing_object_fails_present_and_checks_nothing_else(storage: MemoryStorage) -> None:
    manifest = _store(storage, _archive())
    storage.delete(manifest.data_key)
    report = check_snapshot(storage, manifest, None)
    assert report.problem() == "missing"
    assert [c.name for c in report.checks if c.outcome == Outcome.FAILED] == ["present"]


def test_damaged_ciphertext_with_matching_sha_fails_the_decrypt_check(
        storage: MemoryStorage, keys: tuple[Identities, str, Identities]) -> None:
    stored, prints = _encrypt(_archive(), keys[1])
    damaged = bytearray(stored)
    damaged[len(damaged) // 2] ^= 0x40
    manifest = _store(storage, bytes(damaged), encrypted=True, fingerprints=prints)
    report = check_snapshot(storage, manifest, keys[0])
    outcomes = _outcomes(report)
    assert outcomes["size"] == outcomes["sha256"] == Outcome.OK  # the manifest matches
    assert outcomes["decrypts"] == Outcome.FAILED and report.problem() == "corrupt"
    assert outcomes["framing"] == Outcome.NOT_CHECKED


def test_a_zstd_stream_that_is_not_whole_fails_decompression(storage: MemoryStorage) -> None:
    manifest = _store(storage, _archive()[:-7])  # the manifest records the cut object
    report = check_snapshot(storage, manifest, None)
    outcomes = _outcomes(report)
    assert outcomes["sha256"] == Outcome.OK and outcomes["decompresses"] == Outcome.FAILED
    assert not report.whole


def test_a_cut_framing_fails_only_the_framing_check(storage: MemoryStorage) -> None:
    framed = b"".join(pack(PAYLOAD))
    manifest = _store(storage, b"".join(compress([framed[:-30]])))  # a whole zstd frame
    report = check_snapshot(storage, manifest, None)
    failed = [c for c in report.checks if c.outcome == Outcome.FAILED]
    assert [c.name for c in failed] == ["framing"] and "ends early" in (failed[0].detail or "")
    assert _outcomes(report)["decompresses"] == Outcome.OK


def test_trailing_data_after_the_archive_fails_framing(storage: MemoryStorage) -> None:
    framed = b"".join(pack(PAYLOAD)) + b"junk"
    manifest = _store(storage, b"".join(compress([framed])))
    assert _outcomes(check_snapshot(storage, manifest, None))["framing"] == Outcome.FAILED


def test_a_wrong_identity_is_reported_not_as_corruption(
        storage: MemoryStorage, keys: tuple[Identities, str, Identities]) -> None:
    stored, _ = _encrypt(_archive(), keys[1])
    manifest = _store(storage, stored, encrypted=True)  # no fingerprints: found while reading
    report = check_snapshot(storage, manifest, keys[2])
    assert report.whole and report.identity_problem and report.problem() is None
    assert _outcomes(report)["decrypts"] == Outcome.NOT_CHECKED


@st.composite
def _damage(draw: st.DrawFn) -> tuple[str, int, int]:
    kind = draw(st.sampled_from(["flip", "cut"]))
    return kind, draw(st.integers(0, 10**9)), draw(st.integers(0, 7))


_ARCHIVE = _archive([("meta", [b"{}"]), ("db/app", [bytes(range(256)) * 64])])


@given(_damage())
@settings(max_examples=100, deadline=None)
def test_any_flipped_byte_or_truncation_is_never_whole(damage: tuple[str, int, int]) -> None:
    storage = MemoryStorage("local", "memory://local")
    kind, where, bit = damage
    at = where % len(_ARCHIVE)
    if kind == "flip":
        stored = _ARCHIVE[:at] + bytes([_ARCHIVE[at] ^ (1 << bit)]) + _ARCHIVE[at + 1:]
    else:
        stored = _ARCHIVE[:at]
    manifest = _store(storage, stored, size=len(_ARCHIVE),
                      sha256=hashlib.sha256(_ARCHIVE).hexdigest())
    report = check_snapshot(storage, manifest, None)
    assert not report.whole
    assert report.problem() == ("corrupt" if kind == "flip" else "short")


# --- the whole target -------------------------------------------------------------------


def _row(manifest: Manifest, status: SnapshotStatus = SnapshotStatus.COMPLETE) -> Snapshot:
    return Snapshot(id=manifest.snapshot_id, instance=manifest.instance, engine="postgres",
                    target="local", status=status, created_at=T0, data_key=manifest.data_key)


def test_the_target_check_reports_each_kind_of_damage(storage: MemoryStorage) -> None:
    good = _store(storage, _archive(), snapshot_id="20261203T050000Z-000001")
    short = _store(storage, _archive(), snapshot_id="20261203T050000Z-000002")
    missing = _store(storage, _archive(), snapshot_id="20261203T050000Z-000003")
    corrupt = _store(storage, _archive(), snapshot_id="20261203T050000Z-000004")
    data = read_all(storage.open(short.data_key).__enter__(), 1 << 24)
    storage.delete(short.data_key)
    storage.put(short.data_key, [data[:-10]])
    storage.delete(missing.data_key)
    storage.delete(corrupt.data_key)
    storage.put(corrupt.data_key, [data[:50] + bytes([data[50] ^ 1]) + data[51:]])
    storage.put("shop/20261203T050000Z-000005/manifest.json", [b"{not json"])
    storage.put("shop/20261203T050000Z-000005/data.hfa.zst", [b"beside it"])
    storage.put("shop/stray.bin", [b"nobody's"])
    storage.put("shop/20261203T050000Z-000009/data.hfa.zst", [b"in flight"])
    gone = Snapshot(id="20261203T050000Z-000008", instance="shop", engine="postgres",
                    target="local", status=SnapshotStatus.COMPLETE, created_at=T0,
                    data_key="shop/20261203T050000Z-000008/data.hfa.zst")
    running = Snapshot(id="20261203T050000Z-000009", instance="shop", engine="postgres",
                       target="local", status=SnapshotStatus.RUNNING, created_at=T0,
                       data_key="shop/20261203T050000Z-000009/data.hfa.zst")
    report = check_target(storage, [_row(good), gone, running], None)
    found = {(p.kind, p.key) for p in report.problems}
    assert found == {
        ("short", short.data_key), ("missing", missing.data_key),
        ("corrupt", corrupt.data_key),
        ("manifest", "shop/20261203T050000Z-000005/manifest.json"),
        ("no-manifest", manifest_key("shop", gone.id)),
        ("orphan", "shop/stray.bin"),
    }
    assert not report.whole and "1 orphan" in report.summary()
    assert [r.whole for r in report.snapshots if r.snapshot_id == good.snapshot_id] == [True]


def test_the_target_check_without_identity_says_what_it_left_unchecked(
        storage: MemoryStorage, keys: tuple[Identities, str, Identities]) -> None:
    stored, prints = _encrypt(_archive(), keys[1])
    _store(storage, stored, encrypted=True, fingerprints=prints)
    _store(storage, _archive(), snapshot_id="20261203T050000Z-bbbbbb")
    report = check_target(storage, [], None)
    assert report.whole
    assert report.summary().endswith(
        "1 encrypted objects checked for size and sha256 only: no identity")
    wrong = check_target(storage, [], keys[2])
    assert wrong.whole and wrong.identity_problems
    assert "wrong identity" in wrong.summary()
    assert check_target(storage, [], keys[0]).partly_checked == []


@given(st.sets(st.sampled_from(["a/1/x", "a/1/y", "a/2/x", "b/3/x", "c"]), max_size=5),
       st.sets(st.sampled_from(["a/1/x", "a/2/x"])), st.sets(st.sampled_from(["a/1/", "b/3/"])))
def test_unclaimed_is_the_listing_less_claims_and_flights(
        listed: set[str], claimed: set[str], flying: set[str]) -> None:
    orphans = unclaimed(dict.fromkeys(listed, 1), claimed, flying)
    for key in listed:
        in_flight = any(key.startswith(prefix) and key.count("/") == 2 for prefix in flying)
        assert (key in orphans) == (key not in claimed and not in_flight)
