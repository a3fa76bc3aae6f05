"""Use cases for snapshots: list, look up, delete, and rebuild the catalog.

The catalog is an index of what the targets hold; each snapshot's manifest in
its target is the record of truth, which is why :func:`rebuild_catalog` can
recreate every complete snapshot's row from the manifests alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from backup.errors import (
    Conflict,
    SnapshotNotFound,
)
from backup.pipeline import (
    delete_snapshot_objects,
    is_manifest_key,
    manifest_key,
)
from backup.storage import Storage
from backup.streams import read_all
from backup.types import (
    Manifest,
    Snapshot,
    SnapshotStatus,
)
from service.bootstrap import Services
from service.runs import may_be_running

logger = logging.getLogger(__name__)
_MANIFEST_LIMIT = 1024 * 1024


def list_snapshots(svc: Services, instance: str | None = None) -> list[Snapshot]:
    return svc.catalog.list_snapshots(instance=instance)


def get_snapshot(svc: Services, snapshot_id: str) -> Snapshot:
    snapshot = svc.catalog.get_snapshot(snapshot_id)
    if snapshot is None:
        raise SnapshotNotFound(
            f"no snapshot {snapshot_id!r}; 'holdfast snapshots' lists them"
        )
    return snapshot


def delete_snapshot(svc: Services, snapshot_id: str) -> Snapshot:
    snapshot = get_snapshot(svc, snapshot_id)
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

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "targets": self.targets}


def _manifests(storage: Storage) -> Iterator[Manifest]:
    for info in storage.list():
        if is_manifest_key(info.key):
            with storage.open(info.key) as chunks:
                yield Manifest.from_bytes(read_all(chunks, _MANIFEST_LIMIT))


def rebuild_catalog(svc: Services) -> RebuildReport:
    """Recreate the catalog's snapshot rows from the manifests in every target."""
    added = updated = 0
    per_target: dict[str, int] = {}
    for target_name in sorted(svc.settings.targets):
        storage = svc.target(target_name)
        count = 0
        for manifest in _manifests(storage):
            count += 1
            existing = svc.catalog.get_snapshot(manifest.snapshot_id)
            svc.catalog.save_snapshot(Snapshot(
                id=manifest.snapshot_id, instance=manifest.instance, engine=manifest.engine,
                target=target_name, status=SnapshotStatus.COMPLETE,
                created_at=manifest.created_at, finished_at=manifest.finished_at,
                data_key=manifest.data_key, size_bytes=manifest.size_bytes,
                raw_bytes=manifest.raw_bytes, sha256=manifest.sha256, image=manifest.image,
                image_id=manifest.image_id, pinned=existing.pinned if existing else False,
            ))
            if existing is None:
                added += 1
            else:
                updated += 1
        per_target[target_name] = count
    return RebuildReport(added=added, updated=updated, targets=per_target)

