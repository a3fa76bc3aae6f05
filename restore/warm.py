"""Warm copies: a stopped, restored copy of an instance that restores clone from.

A *warm copy* of an instance is a container restored from one of its
snapshots, waited for until it answered, then stopped cleanly, and kept with
its volumes (``NAME-warm-<time>``). It is never started again: a restore of
the same snapshot on the same engine clones its volumes instead of streaming
the snapshot (:func:`warm_sources`), with reflinks where Docker's data root
allows them (XFS with ``reflink=1``, btrfs), else with a plain copy, and says
which in its result. A warm copy is made on demand (``holdfast warm refresh``)
and, for instances labelled ``holdfast.warm=true``, each time a newer
snapshot passes a verified restore; the older warm copies of the instance
are removed once the new one is ready (:func:`superseded`).

Everything here is pure: names, labels, which warm copy a restore may clone,
and the mapping of its volumes onto the new container's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from backup.names import CONTAINER_NAME_MAX
from backup.types import DatabaseContainer
from restore.planner import RESTORED_FROM_LABEL, RestorePlan

WARM_OF_LABEL = "holdfast.warm-of"
"""On a warm copy: the instance it is a copy of."""
WARM_STAMP_LABEL = "holdfast.warm-stamp"
"""On a warm copy: when its refresh began (``20261205T071200Z``); newer wins."""

CopyMethod = Literal["stream", "reflink", "copy"]
"""How a restore filled its volumes: the snapshot streamed and loaded, or
the volumes of a warm copy cloned with reflinks or copied file by file."""


def warm_name(instance: str, at: str) -> str:
    """The warm copy's container name: ``INSTANCE-warm-<stamp>``, the instance
    cut short where the whole would pass a container name's length (the
    ``holdfast.warm-of`` label, not the name, says whose copy it is)."""
    suffix = f"-warm-{at}"
    return f"{instance[:CONTAINER_NAME_MAX - len(suffix)]}{suffix}"


@dataclass(frozen=True)
class WarmCopy:
    """A warm copy as found on the engine."""

    container_id: str
    name: str
    instance: str
    snapshot_id: str
    stamp: str
    image: str
    running: bool
    volumes: Mapping[str, str]
    """Mount destination -> volume name."""

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "container_id": self.container_id,
                "instance": self.instance, "snapshot_id": self.snapshot_id,
                "refreshed": self.stamp, "image": self.image,
                "status": "running" if self.running else "stopped",
                "volumes": sorted(self.volumes.values())}


def as_warm_copy(container: DatabaseContainer) -> WarmCopy | None:
    """The warm copy ``container`` is, or None if it carries no warm labels."""
    labels = container.labels
    instance, snapshot = labels.get(WARM_OF_LABEL), labels.get(RESTORED_FROM_LABEL)
    if not instance or not snapshot:
        return None
    return WarmCopy(
        container_id=container.id, name=container.name, instance=instance,
        snapshot_id=snapshot, stamp=labels.get(WARM_STAMP_LABEL, ""), image=container.image,
        running=container.running,
        volumes={m.destination: m.source for m in container.mounts if m.kind == "volume"})


@dataclass(frozen=True)
class WarmChoice:
    """What a restore does about warm copies: clone ``warm`` (``sources`` maps
    each new volume to the warm volume it is cloned from), or stream the
    snapshot, saying why in ``note`` (None when no warm copy was in question)."""

    warm: WarmCopy | None = None
    sources: Mapping[str, str] | None = None
    note: str | None = None


def warm_sources(plan: RestorePlan, warms: Sequence[WarmCopy], *, wanted: bool = True,
                 image_given: bool = False) -> WarmChoice:
    """Decide whether the restore ``plan`` clones a warm copy of its snapshot.

    The newest stopped warm copy of the plan's snapshot is used when it has a
    volume at every mount destination of the plan and the same image; else the
    snapshot streams and ``note`` says why. ``wanted=False`` (``--no-warm``)
    always streams."""
    same = sorted((w for w in warms if w.snapshot_id == plan.snapshot_id),
                  key=lambda w: w.stamp, reverse=True)
    if not wanted:
        return WarmChoice(note="warm copies not used (asked not to)" if same else None)
    if not same:
        return WarmChoice(note=None if not warms else
                          f"no warm copy of snapshot {plan.snapshot_id} (the newest is of "
                          f"{max(warms, key=lambda w: w.stamp).snapshot_id})")
    warm = next((w for w in same if not w.running), None)
    if warm is None:
        return WarmChoice(note=f"warm copy {same[0].name} is running, so it is not cloned; "
                               "stop it, or run holdfast warm refresh")
    if image_given and warm.image != plan.container.image:
        return WarmChoice(note=f"warm copy {warm.name} runs {warm.image}, not "
                               f"{plan.container.image}: the snapshot streamed")
    sources: dict[str, str] = {}
    for volume, destination in plan.container.volumes.items():
        source = warm.volumes.get(destination)
        if source is None:
            return WarmChoice(note=f"warm copy {warm.name} has no volume at {destination}: "
                                   "the snapshot streamed")
        sources[volume] = source
    return WarmChoice(warm=warm, sources=sources)


def superseded(warms: Sequence[WarmCopy], instance: str, kept: WarmCopy) -> list[WarmCopy]:
    """The warm copies of ``instance`` older than ``kept``: removed once it is
    ready. A refresh that began later (a newer stamp) is left to remove this one."""
    return [w for w in warms if w.instance == instance and w.container_id != kept.container_id
            and w.stamp <= kept.stamp]
