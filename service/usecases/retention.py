"""Use cases for retention: decide with :func:`backup.retention.plan_retention`, then delete.

The policy is the instance's labels as last seen (under any API override);
deletions go target by target, data before manifests, and a target that fails
keeps its catalog rows so the next prune tries again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from backup.errors import (
    DockerUnavailable,
    HoldfastError,
    InstanceNotFound,
)
from backup.pipeline import (
    delete_snapshot_objects,
)
from backup.retention import RetentionPolicy, plan_retention
from backup.types import (
    Snapshot,
)
from service.bootstrap import Services
from service.usecases.instances import effective_labels, policy_from_labels, refresh_instances

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneResult:
    instance: str
    policy: dict[str, int]
    kept: list[str]
    forgotten: list[str]
    dry_run: bool
    failures: list[str] = field(default_factory=list)
    """One line per target whose deletions failed (their rows are kept for the next prune)."""

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "policy": self.policy, "kept": self.kept,
                "forgotten": self.forgotten, "dry_run": self.dry_run,
                "failures": self.failures}


def retention_policy(svc: Services, instance: str) -> RetentionPolicy:
    """The instance's retention: its labels as last seen, under any API override."""
    record = svc.catalog.get_instance(instance)
    if record is None:
        return RetentionPolicy()
    labels = effective_labels(record.labels, record.policy_override)
    return RetentionPolicy.from_mapping(policy_from_labels(labels, record.name).retention)


def prune_instance(svc: Services, instance: str, *, dry_run: bool = False) -> PruneResult:
    """Decide with :func:`plan_retention`, then (unless ``dry_run``) delete what it
    forgets: each snapshot's manifest, then its data, then its catalog row."""
    policy = retention_policy(svc, instance)
    plan = plan_retention(svc.catalog.list_snapshots(instance=instance), policy)
    forgotten = list(plan.forget)
    failures: list[str] = []
    if not dry_run:
        by_target: dict[str, list[Snapshot]] = {}
        for snapshot in forgotten:
            by_target.setdefault(snapshot.target, []).append(snapshot)
        for target, doomed in sorted(by_target.items()):
            try:
                delete_snapshot_objects(svc.target(target),
                                        [(s.instance, s.id) for s in doomed])
            except HoldfastError as exc:  # keep the rows, so the next prune retries
                logger.error("cannot prune %d snapshot(s) of %s in target %s: %s", len(doomed),
                             instance, target, exc, extra={"instance": instance})
                forgotten = [s for s in forgotten if s.target != target]
                failures.append(f"cannot prune {len(doomed)} snapshot(s) of {instance} in "
                                f"target {target}: {exc}")
                continue
            for snapshot in doomed:
                svc.catalog.delete_snapshot(snapshot.id)
    return PruneResult(instance=instance, policy=policy.to_dict(),
                       kept=[s.id for s in plan.keep], forgotten=[s.id for s in forgotten],
                       dry_run=dry_run, failures=failures)


def apply_retention(svc: Services, instance: str) -> PruneResult:
    """Retention after a successful snapshot: what it removed, and what failed."""
    return prune_instance(svc, instance)


def prune(svc: Services, instance: str | None = None, *,
          dry_run: bool = False) -> list[PruneResult]:
    """Apply every instance's retention (or one's). Containers are looked at
    first, so labels changed by re-creating a container count; with the Docker
    engine down, the labels the catalog saw last are used."""
    try:
        refresh_instances(svc)
    except DockerUnavailable as exc:
        logger.warning("pruning with the last labels seen: %s", exc)
    if instance is not None and svc.catalog.get_instance(instance) is None \
            and not svc.catalog.list_snapshots(instance=instance):
        raise InstanceNotFound(f"no instance named {instance!r}; 'holdfast instances' lists them")
    names = [instance] if instance else sorted(
        {r.name for r in svc.catalog.list_instances()}
        | {s.instance for s in svc.catalog.list_snapshots()})
    return [prune_instance(svc, name, dry_run=dry_run) for name in names]

