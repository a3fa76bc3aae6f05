"""Use cases for integrity checks: verify one snapshot, or everything a target holds.

Each is split as restores are: ``prepare_*`` does every check that can fail on
the request (an unknown snapshot or target, a snapshot still being written, an
encrypted snapshot without an identity that opens it) before anything is
read, so the API answers those at once; ``execute_*`` reads the data
(:mod:`backup.integrity`) and returns the report. A report that finds damage is
an answer, not an error: the CLI exits 1 on it, and a job ends ``succeeded``
with ``whole: false`` (a failed job carries no result to show what failed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backup.encryption import Identities, require_identities
from backup.errors import Conflict, TargetNotFound, WrongIdentity
from backup.integrity import SnapshotReport, check_snapshot, read_manifest, unreadable_manifest
from backup.integrity_target import TargetReport, check_target
from backup.pipeline import manifest_key
from backup.storage import Storage
from backup.streams import ProgressCallback
from backup.types import Manifest, Snapshot, SnapshotStatus
from service.bootstrap import Services
from service.runs import may_be_running
from service.usecases.snapshots import get_snapshot
from service.usecases.targets import PROBE_PREFIX

if TYPE_CHECKING:  # the job runner imports the use cases, not the other way round
    from service.records import JobRecord
    from service.usecases.idempotency import Idempotency
    from service.usecases.jobs import JobRunner

Cancelled = Callable[[], bool]


@dataclass(frozen=True)
class VerifyRequest:
    """A snapshot to verify, with what was found before reading its data."""

    snapshot: Snapshot
    storage: Storage
    manifest: Manifest | str
    """Its manifest, or one line saying why there is none to check against."""
    identities: Identities | None = None


@dataclass(frozen=True)
class VerifyTargetRequest:
    name: str
    storage: Storage
    identities: Identities | None


def prepare_verify(svc: Services, ref: str) -> VerifyRequest:
    """The snapshot ``ref`` (an id or an unambiguous prefix) ready to verify.
    :class:`Conflict` while it is being written; an encrypted one needs an
    identity that opens it (:class:`~backup.errors.IdentityRequired`,
    :class:`~backup.errors.WrongIdentity`, the same lines as a restore's)."""
    snapshot = get_snapshot(svc, ref)
    if snapshot.status == SnapshotStatus.RUNNING and may_be_running(snapshot.runner):
        raise Conflict(f"snapshot {snapshot.id} is still being written; verify it once it "
                       "is complete")
    storage = svc.target(snapshot.target)
    manifest = read_manifest(storage, manifest_key(snapshot.instance, snapshot.id))
    identities = None
    if isinstance(manifest, Manifest) and manifest.encryption is not None:
        identities = require_identities(svc.identities(), manifest.recipients,
                                        f"snapshot {snapshot.id}")
    return VerifyRequest(snapshot=snapshot, storage=storage, manifest=manifest,
                         identities=identities)


def execute_verify(request: VerifyRequest, progress: ProgressCallback | None = None,
                   cancelled: Cancelled = lambda: False) -> SnapshotReport:
    """Re-read the snapshot's data object and check it against its manifest.
    An identity the data itself refuses raises :class:`WrongIdentity`, as a
    restore would; damage is in the report."""
    snapshot, manifest = request.snapshot, request.manifest
    if isinstance(manifest, str):
        return unreadable_manifest(snapshot.id, snapshot.instance, request.storage.name,
                                   manifest)
    report = check_snapshot(request.storage, manifest, request.identities, progress=progress,
                            cancelled=cancelled)
    if report.identity_problem is not None:
        raise WrongIdentity(report.identity_problem)
    return report


def verify_snapshot(svc: Services, ref: str) -> SnapshotReport:
    """:func:`prepare_verify` then :func:`execute_verify`."""
    return execute_verify(prepare_verify(svc, ref))


def prepare_verify_target(svc: Services, name: str) -> VerifyTargetRequest:
    """The configured target ``name`` (:class:`TargetNotFound` otherwise), with
    the identity if one is configured: without one, encrypted objects are
    checked for size and sha256 only, and the report says so."""
    if name not in svc.settings.targets:
        known = ", ".join(sorted(svc.settings.targets))
        raise TargetNotFound(f"no storage target named {name!r}; configured: {known}")
    return VerifyTargetRequest(name=name, storage=svc.target(name),
                               identities=svc.identities())


def execute_verify_target(svc: Services, request: VerifyTargetRequest,
                          cancelled: Cancelled = lambda: False) -> TargetReport:
    """Check every snapshot in the target and its listing against the catalog."""
    def rows() -> Sequence[Snapshot]:
        return [s for s in svc.catalog.list_snapshots() if s.target == request.name]

    return check_target(request.storage, rows(), request.identities,
                        reread_catalog=rows, ignore=(f"{PROBE_PREFIX}/",), cancelled=cancelled)


def verify_target(svc: Services, name: str) -> TargetReport:
    """:func:`prepare_verify_target` then :func:`execute_verify_target`."""
    return execute_verify_target(svc, prepare_verify_target(svc, name))


def submit_verify(jobs: JobRunner, request: VerifyRequest,
                  idempotency: Idempotency | None = None, *,
                  claimed: JobRecord | None = None) -> JobRecord:
    """Queue a prepared verification of one snapshot (kind ``verify``); its
    result is the report, ``whole: false`` when it found damage. ``claimed``:
    the request another host queued for this one, run as that job."""
    snapshot = request.snapshot
    return jobs.submit_watched(
        "verify", lambda progress, cancelled: execute_verify(request, progress,
                                                             cancelled).to_json(),
        instance=snapshot.instance, snapshot_id=snapshot.id, idempotency=idempotency,
        bytes_total=snapshot.size_bytes, claimed=claimed)


def submit_verify_target(svc: Services, jobs: JobRunner, request: VerifyTargetRequest,
                         idempotency: Idempotency | None = None) -> JobRecord:
    """Queue a verification of a whole target (kind ``verify-target``)."""
    return jobs.submit_watched(
        "verify-target", lambda _, cancelled: execute_verify_target(svc, request,
                                                                   cancelled).to_json(),
        idempotency=idempotency)
