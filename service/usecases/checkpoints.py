"""Use cases for checkpoints: pin and unpin a snapshot, and find the newest
complete snapshot of an instance carrying given tags (restore by tag).

A pin lives in two places: the catalog row (which retention and the API read)
and the snapshot's manifest (the record of truth a ``holdfast catalog rebuild``
reads back). Pin and unpin rewrite the manifest first, atomically through
:meth:`backup.storage.Storage.replace`, and then the row. A rebuild pins a
snapshot that either its manifest or its old row says is pinned, so a failure
half-way can leave a snapshot kept that was meant to go, never the reverse.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from dataclasses import replace

from backup.errors import Conflict, InvalidInput, SnapshotNotFound
from backup.pipeline import manifest_key
from backup.tags import check_tags, tags_text
from backup.types import Snapshot, SnapshotStatus
from service.bootstrap import Services
from service.usecases.instances import find_instance
from service.usecases.snapshots import read_manifest, resolve_snapshot

logger = logging.getLogger(__name__)


def pin_snapshot(svc: Services, ref: str) -> Snapshot:
    """Pin the snapshot ``ref`` names (id or unambiguous prefix) so retention
    never removes it. Only a complete snapshot can be pinned (:class:`Conflict`
    otherwise); pinning a pinned one changes nothing."""
    return _set_pin(svc, resolve_snapshot(svc, ref), True)


def unpin_snapshot(svc: Services, ref: str) -> Snapshot:
    """Unpin the snapshot ``ref`` names: retention's policy applies to it again.
    Unpinning one that is not pinned changes nothing."""
    return _set_pin(svc, resolve_snapshot(svc, ref), False)


def _set_pin(svc: Services, snapshot: Snapshot, pinned: bool) -> Snapshot:
    if snapshot.pinned == pinned:
        return snapshot
    if pinned and snapshot.status is not SnapshotStatus.COMPLETE:
        raise Conflict(f"snapshot {snapshot.id} is {snapshot.status}; only complete "
                       "snapshots can be pinned")
    if snapshot.status is SnapshotStatus.COMPLETE:
        storage = svc.target(snapshot.target)
        manifest = read_manifest(storage, snapshot)
        if manifest.pinned != pinned:
            storage.replace(manifest_key(snapshot.instance, snapshot.id),
                            [replace(manifest, pinned=pinned).to_bytes()])
    changed = snapshot.with_changes(pinned=pinned)
    svc.catalog.save_snapshot(changed)
    logger.info("snapshot %s %s", snapshot.id, "pinned" if pinned else "unpinned",
                extra={"instance": snapshot.instance, "snapshot": snapshot.id})
    return changed


def latest_tagged_snapshot(svc: Services, instance: str, tags: Mapping[str, str]) -> Snapshot:
    """The newest complete snapshot of ``instance`` carrying every tag in
    ``tags`` (checked, at least one). :class:`InstanceNotFound` if neither the
    catalog nor the engine knows the instance, else :class:`SnapshotNotFound`
    naming the tags."""
    wanted = check_tags(tags)
    if not wanted:
        raise InvalidInput("give a tag to choose the snapshot by, like release=v1.4.2")
    found = svc.catalog.list_snapshots(instance=instance, status=SnapshotStatus.COMPLETE,
                                       tags=wanted)
    if found:
        return found[0]
    if svc.catalog.get_instance(instance) is None and \
            svc.catalog.latest_snapshot(instance) is None:
        find_instance(svc, instance)  # InstanceNotFound, unless a container is labelled so
    options = " ".join(f"--tag {shlex.quote(f'{k}={v}')}" for k, v in wanted.items())
    raise SnapshotNotFound(f"instance {instance} has no complete snapshot tagged "
                           f"{tags_text(wanted)}; 'holdfast snapshots {instance} {options}' "
                           "lists its snapshots so tagged")
