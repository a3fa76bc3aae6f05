"""The fleet's work in the catalog: requests claimed under a lease, leases renewed
and expired, cancels asked across hosts, scheduled slots claimed once.

:class:`FleetWork` is mixed into :class:`~service.adapters.catalog.repository.Catalog`
(see :class:`service.ports.FleetWorkQueue` for the contract). A claim is one
``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``: on
PostgreSQL two daemons polling at once never get the same row and never wait
on each other's rows; SQLite, which has no row locks, serialises the statement
under its database lock. An unclaimed request is cancelled by one ``UPDATE``
under the same conditions, so a claim and a cancel never both take it; a
cancel of a job already claimed only sets ``cancel_requested_at``, which its
host reads (:meth:`FleetWork.cancel_requests`) and which no save of the job
writes. A slot is claimed by inserting its key: the primary
key, not a read before the write, decides which daemon runs it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import delete, func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.adapters.catalog.job_rows import job_record
from service.adapters.catalog.models import JobRow, ScheduleSlotRow, UTCDateTime
from service.records import JobRecord, JobStatus

_LIVE = (str(JobStatus.QUEUED), str(JobStatus.RUNNING))


class FleetWork:
    """The fleet's work queue part of the catalog."""

    def _session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # the Catalog's own

    def claim_requests(self, host: str, limit: int, lease_until: datetime) -> list[JobRecord]:
        waiting = (select(JobRow.id)
                   .where(JobRow.host == host, JobRow.status == str(JobStatus.QUEUED),
                          JobRow.request.is_not(None), JobRow.lease_expires_at.is_(None))
                   .order_by(JobRow.created_at, JobRow.id).limit(limit)
                   .with_for_update(skip_locked=True))
        claim = (update(JobRow).where(JobRow.id.in_(waiting.scalar_subquery()))
                 .values(lease_expires_at=lease_until).returning(JobRow))
        with self._session() as session:
            rows = session.scalars(claim, execution_options={"synchronize_session": False})
            return sorted((job_record(row) for row in rows), key=lambda j: (j.created_at, j.id))

    def renew_leases(self, host: str, lease_until: datetime) -> int:
        renew = (update(JobRow)
                 .where(JobRow.host == host, JobRow.status.in_(_LIVE),
                        JobRow.finished_at.is_(None), JobRow.lease_expires_at.is_not(None))
                 .values(lease_expires_at=lease_until))
        with self._session() as session:
            return int(session.execute(renew).rowcount)  # type: ignore[attr-defined]

    def interrupt_expired(self, now: datetime, spare_host: str, error: str) -> list[JobRecord]:
        expired = (update(JobRow)
                   .where(JobRow.status.in_(_LIVE), JobRow.finished_at.is_(None),
                          # A request never claimed has no lease: it waits for its host.
                          JobRow.lease_expires_at < now, JobRow.host != spare_host)
                   .values(status=str(JobStatus.INTERRUPTED), finished_at=now, error=error)
                   .returning(JobRow))
        with self._session() as session:
            rows = session.scalars(expired, execution_options={"synchronize_session": False})
            return sorted((job_record(row) for row in rows), key=lambda j: (j.created_at, j.id))

    def cancel_unclaimed(self, job_id: str, now: datetime, reason: str) -> JobRecord | None:
        # The same conditions as a claim's, in one UPDATE: on PostgreSQL a claim
        # holding the row makes this wait and then find its lease set (no row),
        # and a claim's SKIP LOCKED passes over a row this is cancelling.
        cancel = (update(JobRow)
                  .where(JobRow.id == job_id, JobRow.status == str(JobStatus.QUEUED),
                         JobRow.finished_at.is_(None), JobRow.request.is_not(None),
                         JobRow.lease_expires_at.is_(None))
                  .values(status=str(JobStatus.CANCELLED), finished_at=now, error=reason)
                  .returning(JobRow))
        with self._session() as session:
            row = session.scalars(cancel,
                                  execution_options={"synchronize_session": False}).first()
            return None if row is None else job_record(row)

    def request_cancel(self, job_id: str, now: datetime) -> bool:
        asked = func.coalesce(JobRow.cancel_requested_at, literal(now, UTCDateTime()))
        request = (update(JobRow)
                   .where(JobRow.id == job_id, JobRow.finished_at.is_(None))
                   .values(cancel_requested_at=asked))
        with self._session() as session:
            return int(session.execute(request).rowcount) > 0  # type: ignore[attr-defined]

    def cancel_requests(self, host: str) -> list[str]:
        asked = (select(JobRow.id)
                 .where(JobRow.host == host, JobRow.status.in_(_LIVE),
                        JobRow.finished_at.is_(None), JobRow.cancel_requested_at.is_not(None))
                 .order_by(JobRow.created_at, JobRow.id))
        with self._session() as session:
            return list(session.scalars(asked))

    def claim_slot(self, instance: str, kind: str, slot: datetime, host: str,
                   now: datetime) -> bool:
        values = {"instance": instance, "kind": kind, "slot": slot, "host": host,
                  "claimed_at": now}
        try:
            with self._session() as session:
                session.execute(insert(ScheduleSlotRow).values(values))
        except IntegrityError:
            return False
        return True

    def prune_slots(self, before: datetime) -> int:
        with self._session() as session:
            gone = session.execute(delete(ScheduleSlotRow)
                                   .where(ScheduleSlotRow.claimed_at < before))
            return int(gone.rowcount)  # type: ignore[attr-defined]
