"""Use cases that find and remove warm copies, and pick the one a restore clones.

Warm copies are known by their labels on the engine (:mod:`restore.warm`),
not by a catalog row: a warm copy removed by hand is simply gone, and one
left by a killed refresh is found like any other. :func:`choose_warm` is what
every restore asks before it streams a snapshot.
"""

from __future__ import annotations

import logging

from backup.errors import HoldfastError, InvalidInput
from restore.planner import RestorePlan
from restore.warm import WARM_OF_LABEL, WarmChoice, WarmCopy, as_warm_copy, warm_sources
from service.bootstrap import Services

logger = logging.getLogger(__name__)


def list_warm_copies(svc: Services, instance: str | None = None) -> list[WarmCopy]:
    """The warm copies on the engine (of ``instance``), newest refresh first."""
    found = [warm for container in svc.docker.containers_labelled(WARM_OF_LABEL, instance)
             if (warm := as_warm_copy(container)) is not None]
    return sorted(found, key=lambda w: (w.instance, w.stamp), reverse=True)


def choose_warm(svc: Services, plan: RestorePlan, instance: str, *, wanted: bool,
                image_given: bool) -> WarmChoice:
    """Whether the restore ``plan`` (of a snapshot of ``instance``) clones a warm
    copy; see :func:`restore.warm.warm_sources`. Listed even when not ``wanted``,
    so the result can say a warm copy was there and not used."""
    return warm_sources(plan, list_warm_copies(svc, instance), wanted=wanted,
                        image_given=image_given)


def remove_warm_copy(svc: Services, warm: WarmCopy) -> None:
    """Remove the warm copy's container, then its volumes (nothing else uses them)."""
    svc.docker.remove_container(warm.container_id)
    for volume in sorted(warm.volumes.values()):
        svc.docker.remove_volume(volume)
    logger.info("removed warm copy %s of %s", warm.name, warm.instance,
                extra={"instance": warm.instance})


def remove_warm_copies(svc: Services, instance: str) -> list[WarmCopy]:
    """Remove every warm copy of ``instance``; the ones removed. A removal that
    fails is logged and the others are still removed; it is then raised."""
    if not instance or len(instance) > 255:
        raise InvalidInput("name the instance whose warm copies to remove")
    removed, failure = [], None
    for warm in list_warm_copies(svc, instance):
        try:
            remove_warm_copy(svc, warm)
            removed.append(warm)
        except HoldfastError as exc:
            logger.error("could not remove warm copy %s: %s", warm.name, exc)
            failure = failure or exc
    if failure is not None:
        raise failure
    return removed
