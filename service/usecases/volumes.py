"""Use cases for named volumes: list, create, remove and clone.

The CLI (``holdfast volumes ...``) and the API (``/v1/volumes``) call these
and nothing else. Each reads the current state from Docker, lets the pure
decisions in :mod:`backup.volumes` accept or refuse the request, and only then
changes anything, so a refused request leaves every volume as it was.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from backup.cancel import raise_if_cancelled
from backup.errors import CloneFailed, HoldfastError, NameTaken, VolumeNotFound
from backup.names import shown
from backup.ports import VolumeSpec
from backup.volumes import (
    ClonePlan,
    VolumeInfo,
    check_volume_labels,
    check_volume_name,
    decide_clone,
    decide_removal,
    is_volume_name,
)
from service.bootstrap import Services

logger = logging.getLogger(__name__)


def list_volumes(svc: Services, sizes: bool = True) -> list[VolumeInfo]:
    return svc.docker.list_volumes(sizes=sizes)


def _lookup(svc: Services, name: str, size: bool = False) -> VolumeInfo | None:
    """The volume of that name; a name no volume can have is not asked for."""
    return svc.docker.get_volume(name, size=size) if is_volume_name(name) else None


def _not_found(name: str) -> VolumeNotFound:
    named = name if is_volume_name(name) else shown(name)
    return VolumeNotFound(f"no volume named {named}; `holdfast volumes ls` lists them")


def get_volume(svc: Services, name: str, size: bool = True) -> VolumeInfo:
    volume = _lookup(svc, name, size=size)
    if volume is None:
        raise _not_found(name)
    return volume


def create_volume(svc: Services, name: str,
                  labels: Mapping[str, str] | None = None) -> VolumeInfo:
    """Create an empty volume; its name and labels are checked first
    (:func:`~backup.volumes.check_volume_labels`), before Docker sees them."""
    check_volume_name(name)
    check_volume_labels(labels or {})
    if svc.docker.get_volume(name) is not None:
        raise NameTaken(f"volume {name} already exists; choose another name")
    svc.docker.create_volume(VolumeSpec(name=name, labels=dict(labels or {})))
    logger.info("created volume %s", name)
    return get_volume(svc, name, size=False)


def remove_volume(svc: Services, name: str) -> VolumeInfo:
    if not is_volume_name(name):
        raise _not_found(name)
    volume = decide_removal(svc.docker.get_volume(name), name)
    svc.docker.remove_unused_volume(name)
    logger.info("removed volume %s", name)
    return volume


@dataclass(frozen=True)
class CloneResult:
    source: str
    target: str
    created: bool
    size_bytes: int | None
    seconds: float
    method: str = "copy"
    """``reflink`` (blocks shared until written) or ``copy``; see :class:`VolumeCopy`."""
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "created": self.created,
                "size_bytes": self.size_bytes, "seconds": round(self.seconds, 3),
                "method": self.method, "note": self.note}


def prepare_clone(svc: Services, source: str, target: str, force: bool = False) -> ClonePlan:
    """Every check a clone can fail, before anything is written."""
    if not is_volume_name(source):
        raise _not_found(source)
    return decide_clone(svc.docker.get_volume(source), svc.docker.get_volume(target),
                        source_name=source, target_name=target, force=force)


def execute_clone(svc: Services, plan: ClonePlan, *,
                  cancelled: Callable[[], bool] = lambda: False) -> CloneResult:
    """Copy through a short-lived helper container. A target this call created
    is removed again if the copy fails or is cancelled (a cancelled job's copy
    is cut by its exec streams); a reused (``--force``) one is left, emptied or
    partly written, and the error says so."""
    started = time.monotonic()
    if plan.create_target:
        svc.docker.create_volume(VolumeSpec(name=plan.target, labels=dict(plan.labels)))
    try:
        raise_if_cancelled(cancelled)
        copied = svc.docker.copy_volume(plan.source, plan.target)
        raise_if_cancelled(cancelled)
    except BaseException as exc:
        if plan.create_target:
            try:
                svc.docker.remove_volume(plan.target)
            except HoldfastError as cleanup:
                logger.error("could not remove the half-cloned volume %s: %s",
                             plan.target, cleanup)
        elif isinstance(exc, HoldfastError):
            raise CloneFailed(
                f"cloning {plan.source} into {plan.target} failed: {exc}; {plan.target} was "
                "emptied for --force and is incomplete now") from exc
        raise
    size = get_volume(svc, plan.target).size_bytes
    logger.info("cloned volume %s into %s", plan.source, plan.target)
    return CloneResult(source=plan.source, target=plan.target, created=plan.create_target,
                       size_bytes=size, seconds=time.monotonic() - started,
                       method=copied.method, note=copied.note)


def clone_volume(svc: Services, source: str, target: str, force: bool = False) -> CloneResult:
    return execute_clone(svc, prepare_clone(svc, source, target, force))
