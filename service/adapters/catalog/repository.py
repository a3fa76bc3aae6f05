"""The catalog's repository: instances, snapshots and jobs in and out as records.

Nothing outside this package reaches the database except through
:class:`Catalog`. Every method opens its own short session and returns plain records,
never ORM objects, so one catalog can serve the API, the scheduler and job
threads at once. Writes are single statements (inserts, upserts, updates and
deletes) so SQLite never has to upgrade a read lock to a write lock mid-way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Insert,
    Table,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from backup.errors import Conflict, InstanceNotFound
from backup.types import Snapshot, SnapshotStatus
from service.adapters.catalog.copies import CopyRows
from service.adapters.catalog.fleet_work import FleetWork
from service.adapters.catalog.hosts import HostRows
from service.adapters.catalog.job_rows import job_record as _job_record
from service.adapters.catalog.job_rows import job_values as _job_values
from service.adapters.catalog.models import Base, InstanceRow, JobRow, SnapshotRow
from service.adapters.catalog.notifications import NotificationRows
from service.adapters.catalog.tokens import TokenRows
from service.adapters.catalog.urls import (
    SUPPORTED_BACKENDS,
    CatalogUnavailable,
    describe_error,
    redact_url,
)
from service.records import InstanceRecord, JobRecord, JobStatus

# Set once when first discovered, or only through the API: a later upsert
# from discovery must not reset them.
_INSTANCE_KEEP_ON_UPDATE = ("first_seen", "policy_override", "clash", "clash_host")


class Catalog(CopyRows, TokenRows, NotificationRows, HostRows, FleetWork):
    """Thread-safe access to the catalog database behind ``engine``. Copies
    (the containers restores created) are :class:`~.copies.CopyRows`; API
    tokens are :class:`~.tokens.TokenRows`; notification deliveries and open
    alarms are :class:`~.notifications.NotificationRows`."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in SUPPORTED_BACKENDS:
            raise CatalogUnavailable(
                f"catalog database {redact_url(engine.url)} is not supported: "
                "use a sqlite:/// or postgresql:// URL"
            )
        self._engine = engine
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> None:
        """Check that the database answers; CatalogUnavailable if it does not."""
        try:
            with self._engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except DBAPIError as error:
            # Anything from the driver this early (refused, bad password, not a
            # database file) means the same to the caller: no catalog.
            raise self._unavailable("reached", error) from error

    # --- instances --------------------------------------------------------------

    def upsert_instance(self, rec: InstanceRecord) -> None:
        """Insert ``rec``, or refresh the instance of that name, keeping its first_seen
        and its policy override (which only :meth:`set_policy_override` changes)."""
        stmt = self._upsert(InstanceRow, _instance_values(rec), keep=_INSTANCE_KEEP_ON_UPDATE)
        with self._session() as session:
            session.execute(stmt)

    def get_instance(self, name: str) -> InstanceRecord | None:
        with self._session() as session:
            row = session.get(InstanceRow, name)
            return None if row is None else _instance_record(row)

    def list_instances(self) -> list[InstanceRecord]:
        with self._session() as session:
            rows = session.scalars(select(InstanceRow).order_by(InstanceRow.name))
            return [_instance_record(row) for row in rows]

    def set_instance_clash(self, name: str, clash: str | None, host: str | None) -> None:
        stmt = (update(InstanceRow).where(InstanceRow.name == name)
                .values(clash=clash, clash_host=None if clash is None else host))
        with self._session() as session:
            session.execute(stmt)

    def set_policy_override(self, name: str, policy: Mapping[str, Any] | None) -> None:
        """Set (or with ``None`` clear) the API's policy for an instance; InstanceNotFound
        if no instance has that name."""
        stmt = (
            update(InstanceRow)
            .where(InstanceRow.name == name)
            .values(policy_override=None if policy is None else dict(policy))
        )
        with self._session() as session:
            if session.execute(stmt).rowcount == 0:  # type: ignore[attr-defined]
                raise InstanceNotFound(f"no instance named {name!r}")

    # --- snapshots --------------------------------------------------------------

    def add_snapshot(self, s: Snapshot) -> None:
        """Record a new snapshot; Conflict if one with that id exists."""
        try:
            with self._session() as session:
                session.execute(insert(SnapshotRow).values(_snapshot_values(s)))
        except IntegrityError as error:
            raise Conflict(f"snapshot {s.id} is already in the catalog") from error

    def save_snapshot(self, s: Snapshot) -> None:
        """Insert ``s``, or replace every field of the snapshot with its id."""
        stmt = self._upsert(SnapshotRow, _snapshot_values(s))
        with self._session() as session:
            session.execute(stmt)

    def get_snapshot(self, id: str) -> Snapshot | None:
        with self._session() as session:
            row = session.get(SnapshotRow, id)
            return None if row is None else _snapshot(row)

    def list_snapshots(
        self, instance: str | None = None, status: SnapshotStatus | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> list[Snapshot]:
        """Snapshots, newest first, optionally of one instance, in one status and
        carrying every tag in ``tags``."""
        query = select(SnapshotRow).order_by(SnapshotRow.created_at.desc(), SnapshotRow.id.desc())
        if instance is not None:
            query = query.where(SnapshotRow.instance == instance)
        if status is not None:
            query = query.where(SnapshotRow.status == str(status))
        for key, value in (tags or {}).items():
            # JSON_EXTRACT(tags, '$."key"') on SQLite, tags ->> 'key' on PostgreSQL:
            # a missing key is NULL, which equals nothing.
            query = query.where(SnapshotRow.tags[key].as_string() == value)
        with self._session() as session:
            return [_snapshot(row) for row in session.scalars(query)]

    def latest_snapshot(self, instance: str) -> Snapshot | None:
        """The newest snapshot of ``instance`` in any status."""
        query = (
            select(SnapshotRow)
            .where(SnapshotRow.instance == instance)
            .order_by(SnapshotRow.created_at.desc(), SnapshotRow.id.desc())
            .limit(1)
        )
        with self._session() as session:
            row = session.scalars(query).first()
            return None if row is None else _snapshot(row)

    def snapshots_with_prefix(self, prefix: str, limit: int) -> list[Snapshot]:
        """At most ``limit`` snapshots whose id starts with ``prefix``, by id.
        LIKE (its ``%`` and ``_`` escaped) can use the key's index; the substr
        comparison makes the match exact where SQLite's LIKE ignores case."""
        query = (
            select(SnapshotRow)
            .where(SnapshotRow.id.startswith(prefix, autoescape=True))
            .where(func.substr(SnapshotRow.id, 1, len(prefix)) == prefix)
            .order_by(SnapshotRow.id)
            .limit(max(0, limit))
        )
        with self._session() as session:
            return [_snapshot(row) for row in session.scalars(query)]

    def delete_snapshot(self, id: str) -> bool:
        """Forget a snapshot; False if there was none with that id."""
        with self._session() as session:
            result = session.execute(delete(SnapshotRow).where(SnapshotRow.id == id))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def forget_instance(self, name: str) -> tuple[bool, list[str]]:
        """Delete the instance row and its snapshot rows in one transaction; whether
        there was an instance row, and the snapshot ids removed, oldest first."""
        # DELETE ... RETURNING (SQLite 3.35+, PostgreSQL): writes only, so SQLite
        # never has to turn a read lock into a write lock half-way.
        with self._session() as session:
            removed = session.execute(
                delete(SnapshotRow).where(SnapshotRow.instance == name)
                .returning(SnapshotRow.id, SnapshotRow.created_at)).all()
            result = session.execute(delete(InstanceRow).where(InstanceRow.name == name))
            had_row = bool(result.rowcount)  # type: ignore[attr-defined]
        return had_row, [row.id for row in sorted(removed, key=lambda r: (r.created_at, r.id))]

    # --- jobs -------------------------------------------------------------------

    def add_job(self, j: JobRecord) -> None:
        """Record a new job; Conflict if one with that id, or with its
        idempotency key, exists (the unique index decides a race)."""
        try:
            with self._session() as session:
                session.execute(insert(JobRow).values(_job_values(j)))
        except IntegrityError as error:
            raise Conflict(f"job {j.id} or its idempotency key is already in the catalog") \
                from error

    def save_job(self, j: JobRecord) -> None:
        """Insert ``j``, or replace every field of the job with its id but its
        lease, which only its host's heartbeats move (:meth:`renew_leases`). A
        job another daemon marked ``interrupted`` stays so: its host, back from
        being cut off, does not write over that. Its ``cancel_requested_at`` is
        never written here (not among the values), so a save never clears a
        cancel another daemon asked for (:meth:`request_cancel`)."""
        stmt = self._upsert(JobRow, _job_values(j), keep=("lease_expires_at",),
                            unless=JobRow.status == str(JobStatus.INTERRUPTED))
        with self._session() as session:
            session.execute(stmt)

    def get_job(self, id: str) -> JobRecord | None:
        with self._session() as session:
            row = session.get(JobRow, id)
            return None if row is None else _job_record(row)

    def job_with_idempotency_key(self, key: str) -> JobRecord | None:
        with self._session() as session:
            row = session.scalars(select(JobRow).where(JobRow.idempotency_key == key)).first()
            return None if row is None else _job_record(row)

    def list_jobs(self, limit: int = 100, statuses: Iterable[JobStatus] | None = None,
                  kind: str | None = None, instance: str | None = None) -> list[JobRecord]:
        """The ``limit`` newest jobs (of the given statuses, kind and instance),
        newest first."""
        query = select(JobRow).order_by(JobRow.created_at.desc(), JobRow.id.desc()).limit(limit)
        if statuses is not None:
            query = query.where(JobRow.status.in_([str(status) for status in statuses]))
        if kind is not None:
            query = query.where(JobRow.kind == kind)
        if instance is not None:
            query = query.where(JobRow.instance == instance)
        with self._session() as session:
            return [_job_record(row) for row in session.scalars(query)]

    # --- plumbing ---------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except (OperationalError, InterfaceError) as error:
            raise self._unavailable("used", error) from error

    def _unavailable(self, failed_to: str, error: BaseException) -> CatalogUnavailable:
        return CatalogUnavailable(
            f"catalog database {redact_url(self._engine.url)} cannot be {failed_to}: "
            f"{describe_error(error, self._engine.url)}"
        )

    def _upsert(
        self, model: type[Base], values: dict[str, Any], keep: Collection[str] = (),
        unless: ColumnElement[bool] | None = None,
    ) -> Insert:
        """INSERT ``values``, or on a key clash UPDATE every column but the key and
        ``keep`` (only where ``unless`` is false of the stored row, if given)."""
        where = None if unless is None else ~unless
        # Both backends have INSERT ... ON CONFLICT, which, unlike a read followed
        # by a write, cannot race with another thread inserting the same key.
        table = model.__table__
        assert isinstance(table, Table)
        key = [column.name for column in table.primary_key.columns]
        changing = [name for name in values if name not in key and name not in keep]
        if self._engine.dialect.name == "postgresql":
            pg = postgresql.insert(table).values(values)
            return pg.on_conflict_do_update(
                index_elements=key, set_={name: pg.excluded[name] for name in changing},
                where=where)
        lite = sqlite.insert(table).values(values)
        return lite.on_conflict_do_update(
            index_elements=key, set_={name: lite.excluded[name] for name in changing},
            where=where)


def _instance_values(rec: InstanceRecord) -> dict[str, Any]:
    return {
        "name": rec.name,
        "engine": rec.engine,
        "container_id": rec.container_id,
        "container_name": rec.container_name,
        "image": rec.image,
        "labels": dict(rec.labels),
        "error": rec.error,
        "first_seen": rec.first_seen,
        "last_seen": rec.last_seen,
        "policy_override": None if rec.policy_override is None else dict(rec.policy_override),
        "host": rec.host,
        "clash": rec.clash,
        "clash_host": rec.clash_host,
    }


def _instance_record(row: InstanceRow) -> InstanceRecord:
    return InstanceRecord(
        name=row.name,
        engine=row.engine,
        container_id=row.container_id,
        container_name=row.container_name,
        image=row.image,
        labels=dict(row.labels),
        error=row.error,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        policy_override=row.policy_override,
        host=row.host,
        clash=row.clash,
        clash_host=row.clash_host,
    )


def _snapshot_values(s: Snapshot) -> dict[str, Any]:
    return {
        "id": s.id,
        "instance": s.instance,
        "engine": s.engine,
        "target": s.target,
        "status": str(s.status),
        "created_at": s.created_at,
        "finished_at": s.finished_at,
        "data_key": s.data_key,
        "size_bytes": s.size_bytes,
        "raw_bytes": s.raw_bytes,
        "sha256": s.sha256,
        "image": s.image,
        "image_id": s.image_id,
        "error": s.error,
        "pinned": s.pinned,
        "runner": s.runner,
        "tags": dict(s.tags),
        "encryption": s.encryption,
        "recipients": list(s.recipients),
        "verified_at": s.verified_at,
        "verification": dict(s.verification) if s.verification else None,
    }


def _snapshot(row: SnapshotRow) -> Snapshot:
    return Snapshot(
        id=row.id,
        instance=row.instance,
        engine=row.engine,
        target=row.target,
        status=SnapshotStatus(row.status),
        created_at=row.created_at,
        data_key=row.data_key,
        finished_at=row.finished_at,
        size_bytes=row.size_bytes,
        raw_bytes=row.raw_bytes,
        sha256=row.sha256,
        image=row.image,
        image_id=row.image_id,
        error=row.error,
        pinned=row.pinned,
        runner=row.runner,
        tags=dict(row.tags or {}),
        encryption=row.encryption,
        recipients=tuple(row.recipients or ()),
        verified_at=row.verified_at,
        verification=row.verification,
    )
