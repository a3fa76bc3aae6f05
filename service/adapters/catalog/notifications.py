"""The catalog's ``notifications`` and ``alarms`` tables.

:class:`NotificationRows` is mixed into
:class:`~service.adapters.catalog.repository.Catalog`: each delivery's latest
state (:class:`~service.records.Delivery`, ``GET /v1/notifications``), kept to
a bounded number, and the alarms open now (:class:`backup.alerts.Alarm`), so an
event fires once per failing stretch even across restarts.
"""

from __future__ import annotations

from collections.abc import Collection
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Insert, delete, select
from sqlalchemy.orm import Session

from backup.alerts import Alarm, Condition
from service.adapters.catalog.models import AlarmRow, Base, NotificationRow
from service.records import Delivery, DeliveryStatus, Message


class NotificationRows:
    """The notifications half of the catalog (see :class:`service.ports.NotificationLog`)."""

    def _session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # the Catalog's own

    def _upsert(self, model: type[Base], values: dict[str, Any],
                keep: Collection[str] = ()) -> Insert:
        raise NotImplementedError  # the Catalog's own

    def save_delivery(self, d: Delivery) -> None:
        with self._session() as session:
            session.execute(self._upsert(NotificationRow, _delivery_values(d),
                                         keep=("created_at",)))

    def list_deliveries(self, limit: int = 100, *, destination: str | None = None,
                        event: str | None = None, instance: str | None = None,
                        status: DeliveryStatus | None = None) -> list[Delivery]:
        query = select(NotificationRow).order_by(NotificationRow.created_at.desc(),
                                                 NotificationRow.id.desc()).limit(limit)
        for column, wanted in ((NotificationRow.destination, destination),
                               (NotificationRow.event, event),
                               (NotificationRow.instance, instance),
                               (NotificationRow.status, None if status is None else str(status))):
            if wanted is not None:
                query = query.where(column == wanted)
        with self._session() as session:
            return [_delivery(row) for row in session.scalars(query)]

    def prune_deliveries(self, keep: int) -> int:
        with self._session() as session:
            cutoff = session.scalars(
                select(NotificationRow.created_at).order_by(NotificationRow.created_at.desc())
                .offset(keep).limit(1)).first()
            if cutoff is None:
                return 0
            result = session.execute(delete(NotificationRow)
                                     .where(NotificationRow.created_at <= cutoff))
            return int(result.rowcount)  # type: ignore[attr-defined]

    def get_alarm(self, condition: Condition, subject: str) -> Alarm | None:
        with self._session() as session:
            row = session.get(AlarmRow, (str(condition), subject))
            return None if row is None else _alarm(row)

    def save_alarm(self, a: Alarm) -> None:
        with self._session() as session:
            session.execute(self._upsert(AlarmRow, {
                "condition": str(a.condition), "subject": a.subject, "since": a.since,
                "reason": a.reason, "failures": a.failures}))

    def clear_alarm(self, condition: Condition, subject: str) -> bool:
        with self._session() as session:
            result = session.execute(delete(AlarmRow).where(
                AlarmRow.condition == str(condition), AlarmRow.subject == subject))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def list_alarms(self) -> list[Alarm]:
        with self._session() as session:
            rows = session.scalars(select(AlarmRow).order_by(AlarmRow.condition,
                                                             AlarmRow.subject))
            return [_alarm(row) for row in rows]


def _delivery_values(d: Delivery) -> dict[str, Any]:
    return {"id": d.id, "destination": d.destination, "event": d.message.event,
            "instance": d.instance, "title": d.message.title, "body": d.message.body,
            "payload": dict(d.message.payload), "status": str(d.status),
            "attempts": d.attempts, "error": d.error, "created_at": d.created_at,
            "finished_at": d.finished_at}


def _delivery(row: NotificationRow) -> Delivery:
    return Delivery(id=row.id, destination=row.destination,
                    message=Message(row.event, row.title, row.body, dict(row.payload)),
                    status=DeliveryStatus(row.status), created_at=row.created_at,
                    attempts=row.attempts, error=row.error, finished_at=row.finished_at)


def _alarm(row: AlarmRow) -> Alarm:
    return Alarm(Condition(row.condition), row.subject, row.since, row.reason, row.failures)
