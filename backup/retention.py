"""Retention planning: decide which snapshots of one instance to keep and which to forget.

This is the "decide" half of pruning (cosmicpython's ``determine_actions``): a pure
function of the catalog's snapshots and a :class:`RetentionPolicy` that returns a
:class:`RetentionPlan`; a thin shell elsewhere deletes what the plan forgets. The
count rules are a port of restic's ``forget --keep-last/--keep-hourly/--keep-daily/
--keep-weekly/--keep-monthly/--keep-yearly`` (``ApplyPolicy`` in
``internal/restic/snapshot_policy.go``), applied to complete snapshots only, with
buckets taken in UTC. Around that core Holdfast adds its own rules: failed snapshots
are always forgotten, running ones are never touched, pinned ones are kept outside
the policy, and the newest complete snapshot is always kept.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from types import MappingProxyType

from backup.types import Snapshot, SnapshotStatus

# The keep rules in restic's evaluation order; also the label keys (labels.RETENTION_KEYS).
KINDS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")

REASON_PINNED = "pinned"
REASON_NEWEST = "newest"
REASON_EMPTY_POLICY = "policy is empty"  # restic's wording for the same case


@dataclass(frozen=True)
class RetentionPolicy:
    """How many snapshots to keep per rule; 0 means the rule is off.

    ``last=N`` keeps the N newest snapshots; ``daily=N`` keeps the newest snapshot of
    each of the N newest days that have one, and likewise per hour, ISO week, month
    and year. A policy with every rule off keeps everything.
    """

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"retention {item.name}={value!r} must be a whole number >= 0")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, int]) -> RetentionPolicy:
        """Build from ``parse_retention``'s output (``{"daily": 7, ...}``). Raises ValueError."""
        unknown = sorted(set(mapping) - set(KINDS))
        if unknown:
            raise ValueError(
                f"unknown retention rule(s) {', '.join(unknown)}; use {', '.join(KINDS)}"
            )
        return cls(**{kind: mapping[kind] for kind in KINDS if kind in mapping})

    @property
    def is_empty(self) -> bool:
        return not any(self.to_dict())

    def to_dict(self) -> dict[str, int]:
        """The rules that are on, in ``KINDS`` order; ``from_mapping`` reads it back."""
        return {kind: getattr(self, kind) for kind in KINDS if getattr(self, kind)}


@dataclass(frozen=True)
class RetentionPlan:
    """What to do with one instance's snapshots.

    ``keep`` and ``forget`` are ordered newest first. Running snapshots are in
    neither. ``reasons`` maps the id of every kept snapshot to why it is kept, e.g.
    ``("last", "daily 2026-11-29")``; ``"oldest daily 2014-08-08"`` marks restic's
    rule that keeps the oldest snapshot while a rule still has count left.
    """

    keep: tuple[Snapshot, ...]
    forget: tuple[Snapshot, ...]
    reasons: Mapping[str, tuple[str, ...]]


def plan_retention(
    snapshots: Iterable[Snapshot],
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
) -> RetentionPlan:
    """Decide, for the snapshots of one instance, which to keep and which to forget.

    - Complete snapshots that are not pinned go through the restic rules.
    - Pinned complete snapshots are kept (reason ``"pinned"``) and are left out of
      the rules, so they use up no count (as restic's ``--keep-tag`` is meant to).
    - The newest complete snapshot is always kept and carries ``"newest"``.
    - An empty policy keeps every complete snapshot (restic: "policy is empty").
    - Failed snapshots are always forgotten, pinned or not: their objects are
      leftovers. Running snapshots are in neither list.

    Order is (created_at, id), newest first, so equal timestamps plan the same way
    every time. Naive timestamps are taken as UTC. ``now`` is accepted for restic's
    ``--keep-within*`` rules, which measure from the newest snapshot not after
    ``now``; the count rules ported here do not use it.

    Raises ValueError if the snapshots belong to more than one instance or two of
    them share an id.
    """
    del now  # reserved for --keep-within*; see the docstring
    ordered = sorted(snapshots, key=_order_key, reverse=True)
    _check_one_instance(ordered)

    complete = [snap for snap in ordered if snap.status is SnapshotStatus.COMPLETE]
    candidates = [snap for snap in complete if not snap.pinned]
    reasons: dict[str, list[str]] = {snap.id: [REASON_PINNED] for snap in complete if snap.pinned}
    if policy.is_empty:
        for snap in candidates:
            reasons[snap.id] = [REASON_EMPTY_POLICY]
    else:
        for snap_id, matched in _apply_policy(candidates, policy).items():
            reasons[snap_id] = matched
    if complete:
        reasons.setdefault(complete[0].id, []).insert(0, REASON_NEWEST)

    keep = tuple(snap for snap in complete if snap.id in reasons)
    forget = tuple(
        snap
        for snap in ordered
        if snap.status is SnapshotStatus.FAILED
        or (snap.status is SnapshotStatus.COMPLETE and snap.id not in reasons)
    )
    frozen = {snap.id: tuple(reasons[snap.id]) for snap in keep}
    return RetentionPlan(keep=keep, forget=forget, reasons=MappingProxyType(frozen))


def _apply_policy(newest_first: list[Snapshot], policy: RetentionPolicy) -> dict[str, list[str]]:
    """restic's ApplyPolicy count rules over a newest-first list; id -> reasons of the kept.

    Port of internal/restic/snapshot_policy.go as of restic 1257c2c0 (the
    ``nr == len(list)-1`` "keep the oldest" rule of restic >= 0.16, PR #4366) with the
    "oldest ..." reason of PR #5039. The -1 ("keep all") counts and the within/tag
    rules are not ported; labels only give counts >= 1. restic buckets a snapshot
    in the time zone it was recorded in; Holdfast buckets in UTC.
    """
    counts = {kind: getattr(policy, kind) for kind in KINDS}
    # restic starts each bucket's "last value" at -1, which no bucket value equals.
    last_bucket: dict[str, str | None] = dict.fromkeys(KINDS)
    kept: dict[str, list[str]] = {}
    oldest = len(newest_first) - 1
    for nr, snap in enumerate(newest_first):
        moment = _utc(snap.created_at)
        matched: list[str] = []
        for kind in KINDS:
            if counts[kind] <= 0:
                continue
            bucket = _bucket(kind, moment, nr)
            # restic also keeps the oldest snapshot while a rule has count left, so a
            # short history is kept as far back as it goes.
            if bucket != last_bucket[kind] or nr == oldest:
                label = "last" if kind == "last" else f"{kind} {bucket}"
                matched.append(f"oldest {label}" if bucket == last_bucket[kind] else label)
                last_bucket[kind] = bucket
                counts[kind] -= 1
        if matched:
            kept[snap.id] = matched
    return kept


def _bucket(kind: str, moment: datetime, nr: int) -> str:
    """The period ``moment`` falls in; equal strings mean the same period.

    Mirrors restic's ``always``, ``ymdh``, ``ymd``, ``yw`` (Go's ISOWeek), ``ym`` and
    ``y``, as readable labels rather than integers.
    """
    if kind == "last":
        return f"#{nr}"  # restic's always(): every snapshot is its own bucket
    if kind == "hourly":
        return moment.strftime("%Y-%m-%dT%H")
    if kind == "daily":
        return moment.strftime("%Y-%m-%d")
    if kind == "weekly":
        year, week, _ = moment.isocalendar()
        return f"{year:04d}-W{week:02d}"
    if kind == "monthly":
        return moment.strftime("%Y-%m")
    if kind == "yearly":
        return f"{moment.year:04d}"
    raise ValueError(f"unknown retention rule {kind!r}")


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _order_key(snap: Snapshot) -> tuple[datetime, str]:
    return (_utc(snap.created_at), snap.id)


def _check_one_instance(snapshots: list[Snapshot]) -> None:
    instances = sorted({snap.instance for snap in snapshots})
    if len(instances) > 1:
        raise ValueError(f"retention plans one instance at a time; got {', '.join(instances)}")
    seen: set[str] = set()
    for snap in snapshots:
        if snap.id in seen:
            raise ValueError(f"snapshot id {snap.id!r} appears twice")
        seen.add(snap.id)
