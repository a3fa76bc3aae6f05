"""An in-memory catalog with the semantics of :class:`service.adapters.catalog.Catalog`."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from backup.alerts import Alarm, Condition
from backup.errors import Conflict, InstanceNotFound, NameTaken
from backup.types import Snapshot, SnapshotStatus
from restore.copies import CopyRecord
from service.adapters.catalog.urls import CatalogUnavailable
from service.hosts import HostRecord
from service.records import Delivery, DeliveryStatus, InstanceRecord, JobRecord, JobStatus
from service.tokens import TokenRecord

_Record = TypeVar("_Record", InstanceRecord, JobRecord, Snapshot, CopyRecord, TokenRecord,
                   Delivery, Alarm)


def _in_utc(record: _Record) -> _Record:
    """Times come back as the same instants in UTC, as the SQL catalogs return them."""
    changes: dict[str, Any] = {f.name: value.astimezone(UTC) for f in fields(record)
                               if isinstance(value := getattr(record, f.name), datetime)}
    return replace(record, **changes)


class InMemoryCatalog:
    """Dicts behind a lock. ``down = True`` makes every call fail as an
    unreachable database does."""

    def __init__(self) -> None:
        self._instances: dict[str, InstanceRecord] = {}
        self._snapshots: dict[str, Snapshot] = {}
        self._jobs: dict[str, JobRecord] = {}
        self._copies: dict[str, CopyRecord] = {}
        self._tokens: dict[str, TokenRecord] = {}
        self._hosts: dict[str, HostRecord] = {}
        self._slots: dict[tuple[str, str, datetime], tuple[str, datetime]] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._alarms: dict[tuple[str, str], Alarm] = {}
        self._lock = threading.RLock()
        self.down = False
        self.closed = False

    def _check(self) -> None:
        if self.down:
            raise CatalogUnavailable("catalog database memory:// cannot be reached: it is down")

    def ping(self) -> None:
        self._check()

    def close(self) -> None:
        self.closed = True

    # --- instances ---------------------------------------------------------------

    def upsert_instance(self, rec: InstanceRecord) -> None:
        self._check()
        rec = _in_utc(rec)
        with self._lock:
            existing = self._instances.get(rec.name)
            if existing is not None:
                rec = replace(rec, first_seen=existing.first_seen,
                              policy_override=existing.policy_override,
                              clash=existing.clash, clash_host=existing.clash_host)
            self._instances[rec.name] = rec

    def get_instance(self, name: str) -> InstanceRecord | None:
        self._check()
        with self._lock:
            return self._instances.get(name)

    def list_instances(self) -> list[InstanceRecord]:
        self._check()
        with self._lock:
            return [self._instances[name] for name in sorted(self._instances)]

    def set_instance_clash(self, name: str, clash: str | None, host: str | None) -> None:
        self._check()
        with self._lock:
            record = self._instances.get(name)
            if record is not None:
                self._instances[name] = replace(record, clash=clash,
                                                clash_host=None if clash is None else host)

    def set_policy_override(self, name: str, policy: Mapping[str, Any] | None) -> None:
        self._check()
        with self._lock:
            record = self._instances.get(name)
            if record is None:
                raise InstanceNotFound(f"no instance named {name!r}")
            self._instances[name] = replace(
                record, policy_override=None if policy is None else dict(policy))

    # --- snapshots ---------------------------------------------------------------

    def add_snapshot(self, s: Snapshot) -> None:
        self._check()
        with self._lock:
            if s.id in self._snapshots:
                raise Conflict(f"snapshot {s.id} is already in the catalog")
            self._snapshots[s.id] = _in_utc(s)

    def save_snapshot(self, s: Snapshot) -> None:
        self._check()
        with self._lock:
            self._snapshots[s.id] = _in_utc(s)

    def get_snapshot(self, id: str) -> Snapshot | None:
        self._check()
        with self._lock:
            return self._snapshots.get(id)

    def list_snapshots(self, instance: str | None = None,
                       status: SnapshotStatus | None = None,
                       tags: Mapping[str, str] | None = None) -> list[Snapshot]:
        self._check()
        with self._lock:
            found = [s for s in self._snapshots.values()
                     if (instance is None or s.instance == instance)
                     and (status is None or s.status == status)
                     and all(s.tags.get(k) == v for k, v in (tags or {}).items())]
        return sorted(found, key=lambda s: (s.created_at, s.id), reverse=True)

    def latest_snapshot(self, instance: str) -> Snapshot | None:
        found = self.list_snapshots(instance=instance)
        return found[0] if found else None

    def snapshots_with_prefix(self, prefix: str, limit: int) -> list[Snapshot]:
        self._check()
        with self._lock:
            found = sorted((s for s in self._snapshots.values() if s.id.startswith(prefix)),
                           key=lambda s: s.id)
        return found[:max(0, limit)]

    def delete_snapshot(self, id: str) -> bool:
        self._check()
        with self._lock:
            return self._snapshots.pop(id, None) is not None

    def forget_instance(self, name: str) -> tuple[bool, list[str]]:
        self._check()
        with self._lock:
            removed = sorted((s for s in self._snapshots.values() if s.instance == name),
                             key=lambda s: (s.created_at, s.id))
            for snapshot in removed:
                del self._snapshots[snapshot.id]
            return self._instances.pop(name, None) is not None, [s.id for s in removed]

    # --- jobs --------------------------------------------------------------------

    def add_job(self, j: JobRecord) -> None:
        self._check()
        with self._lock:
            if j.id in self._jobs or (j.idempotency_key is not None and any(
                    other.idempotency_key == j.idempotency_key
                    for other in self._jobs.values())):
                raise Conflict(f"job {j.id} or its idempotency key is already in the catalog")
            # cancel_requested_at is written by request_cancel only.
            self._jobs[j.id] = _in_utc(replace(j, cancel_requested_at=None))

    def save_job(self, j: JobRecord) -> None:
        self._check()
        with self._lock:
            existing = self._jobs.get(j.id)  # its lease moves only by renew_leases
            if existing is not None and existing.status == JobStatus.INTERRUPTED:
                return  # another daemon ended it: its host does not write over that
            # Nor a cancel another daemon asked for (request_cancel's alone).
            self._jobs[j.id] = _in_utc(
                replace(j, cancel_requested_at=None) if existing is None else
                replace(j, lease_expires_at=existing.lease_expires_at,
                        cancel_requested_at=existing.cancel_requested_at))

    # --- the fleet's work ----------------------------------------------------------

    def claim_requests(self, host: str, limit: int, lease_until: datetime) -> list[JobRecord]:
        self._check()
        with self._lock:
            waiting = sorted((j for j in self._jobs.values()
                              if j.host == host and j.status == JobStatus.QUEUED
                              and j.request is not None and j.lease_expires_at is None),
                             key=lambda j: (j.created_at, j.id))[:limit]
            for job in waiting:
                self._jobs[job.id] = _in_utc(replace(job, lease_expires_at=lease_until))
            return [self._jobs[job.id] for job in waiting]

    def renew_leases(self, host: str, lease_until: datetime) -> int:
        self._check()
        with self._lock:
            live = [j for j in self._jobs.values() if j.host == host and not j.ended
                    and j.status in (JobStatus.QUEUED, JobStatus.RUNNING)
                    and j.lease_expires_at is not None]
            for job in live:
                self._jobs[job.id] = _in_utc(replace(job, lease_expires_at=lease_until))
            return len(live)

    def interrupt_expired(self, now: datetime, spare_host: str, error: str) -> list[JobRecord]:
        self._check()
        with self._lock:
            expired = sorted((j for j in self._jobs.values()
                              if j.status in (JobStatus.QUEUED, JobStatus.RUNNING)
                              and not j.ended and j.lease_expires_at is not None
                              and j.lease_expires_at < now and j.host is not None
                              and j.host != spare_host), key=lambda j: (j.created_at, j.id))
            for job in expired:
                self._jobs[job.id] = _in_utc(replace(job, status=JobStatus.INTERRUPTED,
                                                     finished_at=now, error=error))
            return [self._jobs[job.id] for job in expired]

    def cancel_unclaimed(self, job_id: str, now: datetime, reason: str) -> JobRecord | None:
        self._check()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status != JobStatus.QUEUED or job.ended \
                    or job.request is None or job.lease_expires_at is not None:
                return None
            self._jobs[job_id] = _in_utc(replace(job, status=JobStatus.CANCELLED,
                                                 finished_at=now, error=reason))
            return self._jobs[job_id]

    def request_cancel(self, job_id: str, now: datetime) -> bool:
        self._check()
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.ended:
                return False
            if job.cancel_requested_at is None:  # the first request's time is kept
                self._jobs[job_id] = _in_utc(replace(job, cancel_requested_at=now))
            return True

    def cancel_requests(self, host: str) -> list[str]:
        self._check()
        with self._lock:
            return [j.id for j in sorted(self._jobs.values(), key=lambda j: (j.created_at, j.id))
                    if j.host == host and not j.ended and j.cancel_requested_at is not None
                    and j.status in (JobStatus.QUEUED, JobStatus.RUNNING)]

    def claim_slot(self, instance: str, kind: str, slot: datetime, host: str,
                   now: datetime) -> bool:
        self._check()
        with self._lock:
            key = (instance, kind, slot.astimezone(UTC))
            if key in self._slots:
                return False
            self._slots[key] = (host, now)
            return True

    def prune_slots(self, before: datetime) -> int:
        self._check()
        with self._lock:
            old = [key for key, (_, claimed) in self._slots.items() if claimed < before]
            for key in old:
                del self._slots[key]
            return len(old)

    def get_job(self, id: str) -> JobRecord | None:
        self._check()
        with self._lock:
            return self._jobs.get(id)

    def job_with_idempotency_key(self, key: str) -> JobRecord | None:
        self._check()
        with self._lock:
            return next((j for j in self._jobs.values() if j.idempotency_key == key), None)

    def list_jobs(self, limit: int = 100, statuses: Iterable[JobStatus] | None = None,
                  kind: str | None = None, instance: str | None = None) -> list[JobRecord]:
        self._check()
        wanted = None if statuses is None else {str(status) for status in statuses}
        with self._lock:
            found = [j for j in self._jobs.values()
                     if (wanted is None or str(j.status) in wanted)
                     and (kind is None or j.kind == kind)
                     and (instance is None or j.instance == instance)]
        return sorted(found, key=lambda j: (j.created_at, j.id), reverse=True)[:limit]

    # --- notifications -----------------------------------------------------------

    def save_delivery(self, d: Delivery) -> None:
        self._check()
        with self._lock:
            first = self._deliveries.get(d.id)
            kept = d if first is None else replace(d, created_at=first.created_at)
            self._deliveries[d.id] = _in_utc(kept)

    def list_deliveries(self, limit: int = 100, *, destination: str | None = None,
                        event: str | None = None, instance: str | None = None,
                        status: DeliveryStatus | None = None) -> list[Delivery]:
        self._check()
        with self._lock:
            found = [d for d in self._deliveries.values()
                     if (destination is None or d.destination == destination)
                     and (event is None or d.message.event == event)
                     and (instance is None or d.instance == instance)
                     and (status is None or d.status == status)]
        return sorted(found, key=lambda d: (d.created_at, d.id), reverse=True)[:limit]

    def prune_deliveries(self, keep: int) -> int:
        self._check()
        with self._lock:
            newest = sorted((d.created_at for d in self._deliveries.values()), reverse=True)
            if len(newest) <= keep:
                return 0
            cutoff = newest[keep]
            doomed = [i for i, d in self._deliveries.items() if d.created_at <= cutoff]
            for delivery_id in doomed:
                del self._deliveries[delivery_id]
            return len(doomed)

    def get_alarm(self, condition: Condition, subject: str) -> Alarm | None:
        self._check()
        with self._lock:
            return self._alarms.get((str(condition), subject))

    def save_alarm(self, a: Alarm) -> None:
        self._check()
        with self._lock:
            self._alarms[(str(a.condition), a.subject)] = _in_utc(a)

    def clear_alarm(self, condition: Condition, subject: str) -> bool:
        self._check()
        with self._lock:
            return self._alarms.pop((str(condition), subject), None) is not None

    def list_alarms(self) -> list[Alarm]:
        self._check()
        with self._lock:
            return [self._alarms[key] for key in sorted(self._alarms)]

    # --- copies ------------------------------------------------------------------

    def add_copy(self, c: CopyRecord) -> None:
        self._check()
        with self._lock:
            if c.container_id in self._copies:
                raise Conflict(f"copy {c.name} ({c.container_id[:12]}) is already in the "
                               "catalog")
            self._copies[c.container_id] = _in_utc(c)

    def save_copy(self, c: CopyRecord) -> None:
        self._check()
        with self._lock:
            if c.container_id in self._copies:
                self._copies[c.container_id] = _in_utc(c)

    def live_copies(self, name: str | None = None) -> list[CopyRecord]:
        self._check()
        with self._lock:
            found = [c for c in self._copies.values()
                     if c.removed_at is None and (name is None or c.name == name)]
        return sorted(found, key=lambda c: (c.created_at, c.container_id), reverse=True)

    # --- tokens ------------------------------------------------------------------

    def add_token(self, t: TokenRecord) -> None:
        self._check()
        with self._lock:
            if t.name in self._tokens or any(
                    other.token_hash == t.token_hash for other in self._tokens.values()):
                raise NameTaken(f"a token named {t.name!r} exists already; revoke it first "
                                "(holdfast tokens revoke) or choose another name")
            self._tokens[t.name] = _in_utc(t)

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        self._check()
        with self._lock:
            return next((t for t in self._tokens.values() if t.token_hash == token_hash), None)

    def save_host(self, h: HostRecord) -> None:
        self._check()
        with self._lock:
            self._hosts[h.name] = h

    def list_hosts(self) -> list[HostRecord]:
        self._check()
        with self._lock:
            return [self._hosts[name] for name in sorted(self._hosts)]

    def list_tokens(self) -> list[TokenRecord]:
        self._check()
        with self._lock:
            return [self._tokens[name] for name in sorted(self._tokens)]

    def delete_token(self, name: str) -> bool:
        self._check()
        with self._lock:
            return self._tokens.pop(name, None) is not None

    def touch_token(self, name: str, at: datetime) -> None:
        self._check()
        with self._lock:
            if name in self._tokens:
                self._tokens[name] = replace(self._tokens[name], last_used_at=at.astimezone(UTC))
