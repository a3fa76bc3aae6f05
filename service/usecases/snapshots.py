"""Use cases for snapshots: list, look up (by id or id prefix), delete, and
rebuild the catalog.

The catalog is an index of what the targets hold; each snapshot's manifest in
its target is the record of truth, which is why :func:`rebuild_catalog` can
recreate every complete snapshot's row from the manifests alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from backup.errors import (
    Conflict,
    HoldfastError,
    InvalidInput,
    SnapshotNotFound,
    quoted,
)
from backup.pipeline import (
    data_object_problem,
    delete_snapshot_objects,
    is_manifest_key,
    manifest_key,
)
from backup.storage import Storage
from backup.streams import read_all
from backup.tags import check_tags
from backup.types import (
    Manifest,
    Snapshot,
    SnapshotStatus,
)
from service.bootstrap import Services
from service.runs import may_be_running

logger = logging.getLogger(__name__)
_MANIFEST_LIMIT = 1024 * 1024

MIN_PREFIX = 6
"""Shortest id prefix looked up: fewer characters would match by surprise."""
_CANDIDATES = 5
"""Ids an ambiguous prefix's refusal lists."""
# What a snapshot reference may contain (ids are 20261129T215230Z-3f9a1c): a
# reference outside it names no snapshot and is never sent to the catalog.
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def list_snapshots(svc: Services, instance: str | None = None,
                   tags: Mapping[str, str] | None = None) -> list[Snapshot]:
    """Snapshots, newest first, of ``instance`` if given, carrying every tag in
    ``tags`` (checked: a bad key or value is :class:`InvalidInput`)."""
    return svc.catalog.list_snapshots(instance=instance, tags=check_tags(tags) or None)


def resolve_snapshot(svc: Services, ref: str) -> Snapshot:
    """The snapshot ``ref`` names: its exact id, or else a prefix of exactly one
    id at least :data:`MIN_PREFIX` characters long. A prefix of several is
    :class:`InvalidInput` listing a few; none is :class:`SnapshotNotFound`."""
    if not _REF.fullmatch(ref):
        raise InvalidInput(f"{quoted(ref)} is not a snapshot id: ids look like "
                           "20261129T215230Z-3f9a1c; 'holdfast snapshots' lists them")
    snapshot = svc.catalog.get_snapshot(ref)
    if snapshot is not None:
        return snapshot
    if len(ref) < MIN_PREFIX:
        raise SnapshotNotFound(f"no snapshot {ref!r}; 'holdfast snapshots' lists them "
                               f"(an id prefix needs at least {MIN_PREFIX} characters)")
    found = svc.catalog.snapshots_with_prefix(ref, _CANDIDATES + 1)
    if not found:
        raise SnapshotNotFound(f"no snapshot {ref!r}; 'holdfast snapshots' lists them")
    if len(found) > 1:
        shown = ", ".join(s.id for s in found[:_CANDIDATES])
        more = ", ..." if len(found) > _CANDIDATES else ""
        raise InvalidInput(f"snapshot id prefix {ref!r} is ambiguous: it matches {shown}"
                           f"{more}; give more characters")
    return found[0]


def get_snapshot(svc: Services, ref: str) -> Snapshot:
    """A snapshot by id or unambiguous id prefix; see :func:`resolve_snapshot`."""
    return resolve_snapshot(svc, ref)


def delete_snapshot(svc: Services, snapshot_id: str) -> Snapshot:
    """Delete a snapshot's objects and row. :class:`Conflict` while it is being
    written, or while it is pinned (unpinning is the deliberate step)."""
    snapshot = get_snapshot(svc, snapshot_id)
    if snapshot.pinned:
        raise Conflict(f"snapshot {snapshot.id} is pinned; unpin it first "
                       f"(holdfast unpin {snapshot.id})")
    if snapshot.status == SnapshotStatus.RUNNING and \
            may_be_running(snapshot.runner):
        raise Conflict(f"snapshot {snapshot_id} is still being written; wait for it to finish")
    delete_snapshot_objects(svc.target(snapshot.target), [(snapshot.instance, snapshot.id)])
    svc.catalog.delete_snapshot(snapshot.id)
    return snapshot


def read_manifest(storage: Storage, snapshot: Snapshot) -> Manifest:
    with storage.open(manifest_key(snapshot.instance, snapshot.id)) as chunks:
        return Manifest.from_bytes(read_all(chunks, _MANIFEST_LIMIT))


@dataclass(frozen=True)
class RebuildReport:
    added: int
    updated: int
    targets: dict[str, int]
    """Manifests read per target."""
    broken: list[str] = field(default_factory=list)
    """Snapshots whose manifest remains but whose data object is missing or short
    (a prune or delete that stopped half-way): recorded as failed, never complete."""
    errors: dict[str, str] = field(default_factory=dict)
    """Targets that could not be read, with the reason; the others are rebuilt."""

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "targets": self.targets,
                "broken": self.broken, "errors": self.errors}


def _manifests(storage: Storage) -> Iterator[Manifest]:
    for info in storage.list():
        if is_manifest_key(info.key):
            with storage.open(info.key) as chunks:
                yield Manifest.from_bytes(read_all(chunks, _MANIFEST_LIMIT))


def _row_from(manifest: Manifest, target: str, existing: Snapshot | None,
              stored_size: int | None) -> Snapshot:
    """The catalog row a manifest stands for: complete only if its data object
    is there with the size the manifest records. Tags come from the manifest;
    so does the pin (pin and unpin rewrite it), but a pin the existing row has
    is never dropped: where the two disagree (a rewrite that failed), keeping
    the snapshot is the safe side. A broken snapshot is not pinned, as a failed
    backup is not."""
    problem = data_object_problem(stored_size, manifest.size_bytes)
    whole = problem is None
    return Snapshot(
        id=manifest.snapshot_id, instance=manifest.instance, engine=manifest.engine,
        target=target, status=SnapshotStatus.COMPLETE if whole else SnapshotStatus.FAILED,
        created_at=manifest.created_at, finished_at=manifest.finished_at,
        data_key=manifest.data_key, size_bytes=manifest.size_bytes,
        raw_bytes=manifest.raw_bytes, sha256=manifest.sha256, image=manifest.image,
        image_id=manifest.image_id,
        pinned=whole and (manifest.pinned or (existing is not None and existing.pinned)),
        tags=dict(manifest.tags),
        encryption=manifest.encryption, recipients=manifest.recipients,
        # A verification is the catalog's record (the manifest is written once):
        # a rebuild keeps the one the row has.
        verified_at=existing.verified_at if existing else None,
        verification=existing.verification if existing else None,
        error=None if whole else f"data object {problem} in target {target} at catalog "
                                 "rebuild",
    )


@dataclass
class _TargetRebuild:
    manifests: int = 0
    added: int = 0
    updated: int = 0
    broken: list[str] = field(default_factory=list)


def _rebuild_target(svc: Services, target: str) -> _TargetRebuild:
    storage = svc.target(target)
    sizes = {info.key: info.size for info in storage.list()}
    done = _TargetRebuild()
    for manifest in _manifests(storage):
        existing = svc.catalog.get_snapshot(manifest.snapshot_id)
        row = _row_from(manifest, target, existing, sizes.get(manifest.data_key))
        svc.catalog.save_snapshot(row)
        done.manifests += 1
        if existing is None:
            done.added += 1
        else:
            done.updated += 1
        if row.status != SnapshotStatus.COMPLETE:
            done.broken.append(row.id)
    return done


def rebuild_catalog(svc: Services) -> RebuildReport:
    """Recreate the catalog's snapshot rows from the manifests in every target.
    A target that cannot be read is reported in ``errors`` and the others are
    still rebuilt."""
    per_target: dict[str, _TargetRebuild] = {}
    errors: dict[str, str] = {}
    for target in sorted(svc.settings.targets):
        try:
            per_target[target] = _rebuild_target(svc, target)
        except HoldfastError as exc:
            errors[target] = str(exc)
            logger.error("catalog rebuild skipped target %s: %s", target, exc,
                         extra={"target": target})
    done = per_target.values()
    return RebuildReport(added=sum(t.added for t in done), updated=sum(t.updated for t in done),
                         targets={name: t.manifests for name, t in per_target.items()},
                         broken=[i for t in done for i in t.broken], errors=errors)
