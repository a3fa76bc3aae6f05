"""The catalog's ``hosts`` table: the fleet's Docker engines as :class:`~service.hosts.HostRecord`.

:class:`HostRows` is mixed into :class:`~service.adapters.catalog.repository.Catalog`.
A heartbeat is one upsert of the host's row, so daemons sharing a PostgreSQL
catalog never read-modify-write each other's rows.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Insert, select
from sqlalchemy.orm import Session

from service.adapters.catalog.models import Base, HostRow
from service.hosts import HostRecord


class HostRows:
    """The hosts part of the catalog (see :class:`service.ports.HostRegistry`)."""

    def _session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # the Catalog's own

    def _upsert(self, model: type[Base], values: dict[str, Any], keep: Any = ()) -> Insert:
        raise NotImplementedError  # the Catalog's own

    def save_host(self, h: HostRecord) -> None:
        values = {"name": h.name, "engine_version": h.engine_version, "instances": h.instances,
                  "started_at": h.started_at, "last_heartbeat": h.last_heartbeat,
                  "holdfast_version": h.holdfast_version, "runner": h.runner}
        with self._session() as session:
            session.execute(self._upsert(HostRow, values))

    def list_hosts(self) -> list[HostRecord]:
        with self._session() as session:
            return [HostRecord(name=row.name, engine_version=row.engine_version,
                               instances=row.instances, started_at=row.started_at,
                               last_heartbeat=row.last_heartbeat,
                               holdfast_version=row.holdfast_version, runner=row.runner)
                    for row in session.scalars(select(HostRow).order_by(HostRow.name))]
