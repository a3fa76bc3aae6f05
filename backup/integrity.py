"""Integrity checks of stored snapshots, without restoring them.

:func:`check_snapshot` re-reads one snapshot's data object in a single
streaming pass and checks each layer the manifest promises: that the object is
there, its size and sha256 (of the stored bytes), that it decrypts (age), that
it decompresses (zstd, whose frame checksum covers the payload) and that its
hfa1 framing is whole, every member read to its end. Every check gets an
outcome (ok, failed with a one-line reason, or not checked and why), and the
object is always read to its end, so a failure in one layer never hides what
the size and sha256 say. :mod:`backup.integrity_target` does it for every
snapshot in a target.

Damage is reported, never raised; only operational failures (a target that
cannot be reached, a cancelled run) raise. Memory stays flat: manifests are
read with a size limit, data flows through generators chunk by chunk.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from backup import multiplex
from backup.encryption import FORMAT as AGE_FORMAT
from backup.encryption import Identities
from backup.errors import CorruptSnapshot, ObjectNotFound, WrongIdentity
from backup.framing import unpack
from backup.pipeline import COMPRESSION
from backup.storage.base import Storage
from backup.streams import ProgressCallback, decompress, interruptible, read_all
from backup.types import Manifest

MANIFEST_LIMIT = 1024 * 1024
"""A manifest is a few KiB; a bigger object under a manifest's name is not one."""
FRAMED_FORMATS = "holdfast-"
"""Data formats that are hfa1 archives: every engine's (``holdfast-<engine>-v1``)."""
STAGES = ("decrypts", "decompresses", "framing")
_PROGRESS_INTERVAL = 0.5


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class Check:
    """One check of a snapshot: ``detail`` says why it failed or was not made."""

    name: str
    outcome: Outcome
    detail: str | None = None
    applies: bool = True
    """False for a layer the object does not have (unencrypted, not framed)."""

    def to_json(self) -> dict[str, Any]:
        return {"check": self.name, "outcome": str(self.outcome), "detail": self.detail}


@dataclass(frozen=True)
class SnapshotReport:
    """What :func:`check_snapshot` found for one snapshot, check by check."""

    snapshot_id: str
    instance: str
    target: str
    data_key: str | None
    checks: tuple[Check, ...]
    encryption: str | None = None
    expected_size: int | None = None
    stored_size: int | None = None
    members: int | None = None
    """hfa1 members read, when the framing was checked."""
    identity_problem: str | None = None
    """Why the identity given could not open it (:class:`WrongIdentity`'s line)."""

    @property
    def whole(self) -> bool:
        return not any(check.outcome == Outcome.FAILED for check in self.checks)

    @property
    def fully_checked(self) -> bool:
        """Every layer the object has was read and checked."""
        return all(check.outcome == Outcome.OK for check in self.checks if check.applies)

    def first_failure(self) -> Check | None:
        return next((c for c in self.checks if c.outcome == Outcome.FAILED), None)

    def problem(self) -> str | None:
        """``missing``, ``short``, ``long``, ``corrupt`` (or ``manifest``), or None if whole."""
        failed = {c.name for c in self.checks if c.outcome == Outcome.FAILED}
        if not failed:
            return None
        if "manifest" in failed:
            return "manifest"
        if "present" in failed:
            return "missing"
        if "size" in failed and self.stored_size is not None and self.expected_size is not None:
            return "short" if self.stored_size < self.expected_size else "long"
        return "corrupt"

    def to_json(self) -> dict[str, Any]:
        failure = self.first_failure()
        return {
            "snapshot_id": self.snapshot_id, "instance": self.instance, "target": self.target,
            "data_key": self.data_key, "whole": self.whole,
            "fully_checked": self.fully_checked, "problem": self.problem(),
            "error": None if failure is None else f"{failure.name}: {failure.detail}",
            "encryption": self.encryption, "expected_size": self.expected_size,
            "stored_size": self.stored_size, "members": self.members,
            "checks": [check.to_json() for check in self.checks],
        }


def _not_checked(names: Iterable[str], why: str) -> list[Check]:
    return [Check(name, Outcome.NOT_CHECKED, why) for name in names]


def unreadable_manifest(snapshot_id: str, instance: str, target: str, why: str) -> SnapshotReport:
    """The report of a snapshot whose manifest is missing or does not parse."""
    return SnapshotReport(
        snapshot_id=snapshot_id, instance=instance, target=target, data_key=None,
        checks=(Check("manifest", Outcome.FAILED, why),
                *_not_checked(("present", "size", "sha256", *STAGES),
                              "no manifest to check against")))


def read_manifest(storage: Storage, key: str) -> Manifest | str:
    """The manifest under ``key``, or one line saying why there is none to use.
    Storage failures other than a missing object raise."""
    try:
        with storage.open(key) as chunks:
            raw = read_all(chunks, MANIFEST_LIMIT)
    except ObjectNotFound:
        return f"no manifest {key} in target {storage.name}"
    except CorruptSnapshot as exc:
        return f"manifest {key} is not one: {exc}"
    try:
        return Manifest.from_bytes(raw)
    except (ValueError, KeyError, TypeError, AssertionError) as exc:
        return f"manifest {key} does not parse ({type(exc).__name__}: {exc})"


class _Tally:
    """Size and sha256 of the stored bytes, counted as they are read."""

    def __init__(self, progress: ProgressCallback | None) -> None:
        self.size = 0
        self._sha = hashlib.sha256()
        self._progress = progress
        self._started = self._reported = time.monotonic()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._sha.update(chunk)

    def tap(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """Count each chunk as it is pulled; what is not pulled stays in ``chunks``."""
        for chunk in chunks:
            self.add(chunk)
            now = time.monotonic()
            if self._progress is not None and now - self._reported >= _PROGRESS_INTERVAL:
                self._reported = now
                self._progress(self.size, now - self._started)
            yield chunk


class _StageFailed(Exception):
    """A layer of the pass rejected the data (its check failed)."""

    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class _Pass:
    """The outcomes of the layers of one read: failed, ended (ok) or neither."""

    def __init__(self) -> None:
        self.ended: set[str] = set()
        self.failed: dict[str, str] = {}
        self.skipped: dict[str, str] = {}
        self.absent: dict[str, str] = {}
        """Layers the object does not have, and why."""
        self.members: int | None = None
        self.identity_problem: str | None = None

    def stage(self, name: str, chunks: Iterable[bytes]) -> Iterator[bytes]:
        try:
            yield from chunks
        except CorruptSnapshot as exc:
            raise _StageFailed(name, str(exc)) from None
        self.ended.add(name)

    def check(self, name: str) -> Check:
        if name in self.failed:
            return Check(name, Outcome.FAILED, self.failed[name])
        if name in self.absent:
            return Check(name, Outcome.NOT_CHECKED, self.absent[name], applies=False)
        if name in self.skipped:
            return Check(name, Outcome.NOT_CHECKED, self.skipped[name])
        if name in self.ended:
            return Check(name, Outcome.OK)
        first = next(iter(self.failed), "reading")
        return Check(name, Outcome.NOT_CHECKED, f"not read to its end: {first} failed first")


class _Skip(Exception):
    """The layers cannot be read (no identity): only size and sha256 are checked."""


def _decrypted(chunks: Iterator[bytes], manifest: Manifest, identities: Identities | None,
               done: _Pass) -> Iterator[bytes]:
    """The stored chunks decrypted (a stage of ``done``), or as they are if not encrypted."""
    if manifest.encryption is None:
        done.absent["decrypts"] = "stored unencrypted"
        return chunks
    if manifest.encryption != AGE_FORMAT:
        raise _StageFailed("decrypts", f"encrypted as {manifest.encryption!r}; this Holdfast "
                                       f"reads {AGE_FORMAT}")
    if identities is None:
        raise _Skip("no identity")
    return done.stage("decrypts", identities.decrypt(chunks, f"snapshot {manifest.snapshot_id}"))


def _decompressed(chunks: Iterator[bytes], manifest: Manifest, done: _Pass) -> Iterator[bytes]:
    if manifest.compression == COMPRESSION:
        return done.stage("decompresses", decompress(chunks))
    if manifest.compression == "none":
        done.absent["decompresses"] = "stored uncompressed"
        return chunks
    raise _StageFailed("decompresses", f"compression {manifest.compression!r} is not one this "
                                       f"Holdfast reads ({COMPRESSION})")


def _read_layers(chunks: Iterator[bytes], manifest: Manifest, identities: Identities | None,
                 done: _Pass) -> None:
    """Read the object through every layer it has, to the archive's end record."""
    decrypted = _decrypted(chunks, manifest, identities, done)
    try:
        plain = _decompressed(decrypted, manifest, done)
        if not manifest.data_format.startswith(FRAMED_FORMATS):
            done.absent["framing"] = f"data format {manifest.data_format} is not a Holdfast archive"
            for _ in plain:
                pass
            return
        done.members = _framing(done, plain)
    finally:
        # A decryption worker may still be reading the stored chunks: stop it
        # (and wait for it) before anything else reads them.
        close = getattr(decrypted, "close", None)
        if close is not None:
            close()


def _framing(done: _Pass, plain: Iterator[bytes]) -> int:
    """Walk the archive to its end record, reading every member; how many there were."""
    members = 0
    parallel, data = multiplex.sniff(plain)
    try:
        if parallel:  # several members at once (a parallel dump)
            members = len(multiplex.unpack(data, sequential=_drain, concurrent=_drain))
        else:
            for member in unpack(data):
                member.skip()
                members += 1
    except CorruptSnapshot as exc:
        raise _StageFailed("framing", str(exc)) from None
    except UnicodeDecodeError:  # framing.unpack decodes a damaged member name as it is
        raise _StageFailed("framing", "snapshot archive has a member name that is not "
                                      "UTF-8 (damaged data)") from None
    done.ended.add("framing")
    return members


def _drain(name: str, data: Iterator[bytes]) -> None:
    for _ in data:
        pass


def check_snapshot(storage: Storage, manifest: Manifest, identities: Identities | None, *,
                   progress: ProgressCallback | None = None,
                   cancelled: Callable[[], bool] = lambda: False) -> SnapshotReport:
    """Re-read ``manifest``'s data object from ``storage`` and check every layer.

    Without ``identities`` an encrypted object is checked for presence, size and
    sha256 only (the other checks say ``no identity``); an identity that does
    not open it leaves them unchecked too, with the reason in
    ``identity_problem``. Raises storage errors and
    :class:`~backup.errors.Cancelled`, never for damage."""
    tally, done = _Tally(progress), _Pass()
    base = SnapshotReport(snapshot_id=manifest.snapshot_id, instance=manifest.instance,
                          target=storage.name, data_key=manifest.data_key, checks=(),
                          encryption=manifest.encryption, expected_size=manifest.size_bytes)
    try:
        with storage.open(manifest.data_key) as stored:
            upstream = iter(interruptible(stored, cancelled))
            _read_guarded(tally.tap(upstream), manifest, identities, done)
            for chunk in upstream:  # whatever failed, size and sha256 see every byte
                tally.add(chunk)
    except ObjectNotFound:
        return replace(base, checks=(
            Check("manifest", Outcome.OK),
            Check("present", Outcome.FAILED, f"no object {manifest.data_key} in target "
                                             f"{storage.name}"),
            *_not_checked(("size", "sha256", *STAGES), "no object to read")))
    return replace(base, stored_size=tally.size, members=done.members,
                   identity_problem=done.identity_problem,
                   checks=(Check("manifest", Outcome.OK), Check("present", Outcome.OK),
                           _size_check(tally.size, manifest.size_bytes),
                           _sha_check(tally.sha256, manifest.sha256),
                           *(done.check(name) for name in STAGES)))


def _read_guarded(chunks: Iterator[bytes], manifest: Manifest, identities: Identities | None,
                  done: _Pass) -> None:
    """:func:`_read_layers`, its damage and identity refusals recorded in ``done``."""
    try:
        _read_layers(chunks, manifest, identities, done)
    except _StageFailed as failed:
        done.failed[failed.stage] = failed.reason
    except _Skip as skip:
        done.skipped.update({name: str(skip) for name in STAGES if name not in done.absent})
    except WrongIdentity as wrong:
        done.identity_problem = str(wrong)
        done.skipped.update({name: f"the identity does not open it ({wrong})"
                             for name in STAGES if name not in done.absent})


def _size_check(stored: int, expected: int) -> Check:
    if stored == expected:
        return Check("size", Outcome.OK)
    shape = "short" if stored < expected else "long"
    return Check("size", Outcome.FAILED,
                 f"{stored} bytes stored, the manifest says {expected} ({shape})")


def _sha_check(stored: str, expected: str) -> Check:
    if stored == expected:
        return Check("sha256", Outcome.OK)
    return Check("sha256", Outcome.FAILED,
                 f"sha256 {stored[:12]}... of the stored bytes, the manifest says "
                 f"{expected[:12]}...")
