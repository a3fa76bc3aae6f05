"""The catalog's ``copies`` table: the containers restores created, as :class:`CopyRecord`.

:class:`CopyRows` is mixed into :class:`~service.adapters.catalog.repository.Catalog`
and uses its short sessions, like the rest of the repository: plain records
in and out, one statement per write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from backup.errors import Conflict
from restore.copies import CopyRecord
from service.adapters.catalog.models import CopyRow


class CopyRows:
    """The copies half of the catalog (see :class:`service.ports.CatalogPort`)."""

    def _session(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # the Catalog's own

    def add_copy(self, c: CopyRecord) -> None:
        try:
            with self._session() as session:
                session.execute(insert(CopyRow).values(_copy_values(c)))
        except IntegrityError as error:
            raise Conflict(f"copy {c.name} ({c.container_id[:12]}) is already in the "
                           "catalog") from error

    def save_copy(self, c: CopyRecord) -> None:
        values = _copy_values(c)
        del values["container_id"]
        with self._session() as session:
            session.execute(update(CopyRow).where(CopyRow.container_id == c.container_id)
                            .values(values))

    def live_copies(self, name: str | None = None) -> list[CopyRecord]:
        query = select(CopyRow).where(CopyRow.removed_at.is_(None)).order_by(
            CopyRow.created_at.desc(), CopyRow.container_id.desc())
        if name is not None:
            query = query.where(CopyRow.name == name)
        with self._session() as session:
            return list(_records(session.scalars(query)))


def _copy_values(c: CopyRecord) -> dict[str, Any]:
    return {
        "container_id": c.container_id,
        "name": c.name,
        "snapshot_id": c.snapshot_id,
        "instance": c.instance,
        "job_id": c.job_id,
        "volumes": list(c.volumes),
        "created_at": c.created_at,
        "expires_at": c.expires_at,
        "removed_at": c.removed_at,
        "removal_error": c.removal_error,
    }


def _records(rows: Iterator[CopyRow]) -> Iterator[CopyRecord]:
    for row in rows:
        yield CopyRecord(
            name=row.name, container_id=row.container_id, snapshot_id=row.snapshot_id,
            instance=row.instance, job_id=row.job_id, volumes=tuple(row.volumes),
            created_at=row.created_at, expires_at=row.expires_at, removed_at=row.removed_at,
            removal_error=row.removal_error)
