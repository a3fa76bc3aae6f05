"""Integrity of a whole target: every snapshot in it, and what only its listing shows.

:func:`check_target` checks each manifest's snapshot with
:func:`backup.integrity.check_snapshot` and compares the target's listing with
the catalog: manifests that do not parse, complete catalog rows whose manifest
is gone, and objects that no manifest claims (orphans), leaving alone the
objects of backups in flight. Pure where it can be (:func:`unclaimed`,
:func:`catalog_without_manifest`); damage is reported, never raised.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from backup.encryption import Identities
from backup.errors import WrongIdentity
from backup.integrity import (
    STAGES,
    Check,
    Outcome,
    SnapshotReport,
    check_snapshot,
    read_manifest,
    unreadable_manifest,
)
from backup.pipeline import is_manifest_key, manifest_key
from backup.storage.base import Storage
from backup.types import Snapshot, SnapshotStatus


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a target: ``kind`` is ``missing``, ``short``, ``long``,
    ``corrupt``, ``manifest`` (does not parse), ``no-manifest`` (a complete
    catalog row without one) or ``orphan`` (an object no manifest claims)."""

    kind: str
    key: str
    detail: str
    snapshot_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "key": self.key, "snapshot_id": self.snapshot_id,
                "detail": self.detail}


@dataclass(frozen=True)
class TargetReport:
    """What :func:`check_target` found: one report per manifest, and every problem
    (the snapshots' and the listing's), sorted by key."""

    target: str
    objects: int
    snapshots: tuple[SnapshotReport, ...]
    problems: tuple[Problem, ...]
    identity_problems: tuple[str, ...] = field(default=())

    @property
    def whole(self) -> bool:
        return not self.problems

    @property
    def partly_checked(self) -> list[SnapshotReport]:
        """Encrypted snapshots whose layers could not be read (no or a wrong identity)."""
        return [r for r in self.snapshots if r.encryption is not None and not r.fully_checked
                and r.problem() is None]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for problem in self.problems:
            counts[problem.kind] = counts.get(problem.kind, 0) + 1
        found = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "no problems"
        line = (f"target {self.target}: {len(self.snapshots)} snapshot(s), {self.objects} "
                f"object(s): {found}")
        partial = self.partly_checked
        if partial:
            why = "wrong identity" if self.identity_problems else "no identity"
            line += (f"; {len(partial)} encrypted objects checked for size and sha256 only: "
                     f"{why}")
        return line

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "whole": self.whole, "objects": self.objects,
                "summary": self.summary(), "problems": [p.to_json() for p in self.problems],
                "snapshots": [r.to_json() for r in self.snapshots]}


def snapshot_dir(key: str) -> str | None:
    """``<instance>/<snapshot id>/`` of a snapshot object's key, or None."""
    parts = key.split("/")
    return f"{parts[0]}/{parts[1]}/" if len(parts) == 3 else None


def unclaimed(listing: Mapping[str, int], claimed: Iterable[str],
              in_flight: Iterable[str]) -> list[str]:
    """Keys of ``listing`` that are neither ``claimed`` (a manifest's or its
    data object's) nor under a snapshot directory of ``in_flight``; pure."""
    taken, flying = set(claimed), set(in_flight)
    return sorted(key for key in listing
                  if key not in taken and snapshot_dir(key) not in flying)


def catalog_without_manifest(catalog: Sequence[Snapshot], listing: Mapping[str, int]) -> list[
        Snapshot]:
    """Complete catalog rows whose manifest is not in ``listing``; pure."""
    return [s for s in catalog if s.status == SnapshotStatus.COMPLETE
            and manifest_key(s.instance, s.id) not in listing]


def check_target(storage: Storage, catalog: Sequence[Snapshot], identities: Identities | None,
                 *, reread_catalog: Callable[[], Sequence[Snapshot]] = lambda: (),
                 ignore: Sequence[str] = (),
                 cancelled: Callable[[], bool] = lambda: False) -> TargetReport:
    """Check every snapshot in ``storage`` against its manifest (as
    :func:`check_snapshot`: an identity that does not open one is reported for
    it, and its layers left unchecked) and the listing against ``catalog`` (the
    catalog's rows of this target, read before the listing). ``reread_catalog``
    reads them again after it: a snapshot that was not complete before is in
    flight, its objects no orphans. Keys starting with one of ``ignore`` are
    not Holdfast's snapshots (a target probe's). Raises only storage errors and
    :class:`~backup.errors.Cancelled`."""
    listing = {i.key: i.size for i in storage.list() if not i.key.startswith(tuple(ignore))}
    running = _in_flight(catalog, reread_catalog())
    reports: list[SnapshotReport] = []
    problems: list[Problem] = []
    claimed: list[str] = []
    for key in (k for k in listing if is_manifest_key(k)):
        claimed.append(key)
        report = _check_listed(storage, key, listing, identities, cancelled)
        if report.data_key is not None:
            claimed.append(report.data_key)
        else:  # the manifest says nothing: what lies beside it is reported with it
            claimed.extend(k for k in listing if snapshot_dir(k) == snapshot_dir(key))
        reports.append(report)
        problems.extend(_problems_of(report, key))
    for row in catalog_without_manifest(catalog, listing):
        problems.append(Problem("no-manifest", manifest_key(row.instance, row.id),
                                f"the catalog lists snapshot {row.id} as complete but its "
                                "manifest is not in the target", row.id))
    for key in unclaimed(listing, claimed, running):
        problems.append(Problem("orphan", key, f"{listing[key]} bytes that no manifest claims"))
    return TargetReport(target=storage.name, objects=len(listing), snapshots=tuple(reports),
                        problems=tuple(sorted(problems, key=lambda p: (p.key, p.kind))),
                        identity_problems=tuple(sorted({r.identity_problem for r in reports
                                                        if r.identity_problem})))


def _in_flight(before: Sequence[Snapshot], after: Sequence[Snapshot]) -> set[str]:
    """Snapshot directories of backups that may be writing: running in either
    reading of the catalog, or new in the second (started during the listing)."""
    known = {s.id for s in before}
    return {f"{s.instance}/{s.id}/" for s in (*before, *after)
            if s.status == SnapshotStatus.RUNNING or s.id not in known}


def _check_listed(storage: Storage, key: str, listing: Mapping[str, int],
                  identities: Identities | None, cancelled: Callable[[], bool]) -> SnapshotReport:
    manifest = read_manifest(storage, key)
    if isinstance(manifest, str):
        parts = key.split("/")
        return unreadable_manifest(parts[1], parts[0], storage.name, manifest)
    if manifest.encryption is not None and identities is not None:
        try:
            identities.check_opens(manifest.recipients, f"snapshot {manifest.snapshot_id}")
        except WrongIdentity as wrong:
            return _refused(check_snapshot(storage, manifest, None, cancelled=cancelled), wrong)
    return check_snapshot(storage, manifest, identities, cancelled=cancelled)


def _refused(report: SnapshotReport, wrong: WrongIdentity) -> SnapshotReport:
    """``report`` (read without an identity) with the identity's refusal as the reason."""
    checks = tuple(Check(c.name, c.outcome, f"the identity does not open it ({wrong})")
                   if c.name in STAGES and c.outcome == Outcome.NOT_CHECKED else c
                   for c in report.checks)
    return replace(report, checks=checks, identity_problem=str(wrong))


def _problems_of(report: SnapshotReport, key: str) -> list[Problem]:
    kind, failure = report.problem(), report.first_failure()
    if kind is None or failure is None:
        return []
    where = key if kind == "manifest" else (report.data_key or key)
    return [Problem(kind, where, f"{failure.name}: {failure.detail}", report.snapshot_id)]
