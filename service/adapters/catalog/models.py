"""SQLAlchemy tables of the catalog: instances, snapshots and jobs.

The models mirror :mod:`service.records` and :class:`backup.types.Snapshot`
column for column and stay private to the catalog package; the repository converts
rows to records at its edge. ``migrations/versions`` must describe exactly these
tables, which ``tests/catalog/test_migrations.py`` checks on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware, in UTC.

    SQLite has no timezone type and SQLAlchemy's SQLite ``DateTime`` silently drops
    the offset, so values are converted to UTC and stored naive there; PostgreSQL
    gets ``timestamptz`` and answers in the session's time zone, which is
    normalised back to UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        # Naive values are taken as UTC, as backup.types.isoformat does.
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# A Python None in these columns is SQL NULL, not the JSON text 'null'.
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class InstanceRow(Base):
    __tablename__ = "instances"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    engine: Mapped[str | None] = mapped_column(String(32))
    container_id: Mapped[str | None] = mapped_column(String(128))
    container_name: Mapped[str | None] = mapped_column(String(255))
    image: Mapped[str | None] = mapped_column(String(512))
    labels: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    policy_override: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    host: Mapped[str | None] = mapped_column(String(64))
    # Why its name clashes with another host's container, and which host found it.
    clash: Mapped[str | None] = mapped_column(Text)
    clash_host: Mapped[str | None] = mapped_column(String(64))


class SnapshotRow(Base):
    __tablename__ = "snapshots"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    instance: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    engine: Mapped[str] = mapped_column(String(32), nullable=False)
    target: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    data_key: Mapped[str] = mapped_column(String(1024), nullable=False)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    raw_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    image: Mapped[str] = mapped_column(String(512), nullable=False)
    image_id: Mapped[str] = mapped_column(String(128), nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    pinned: Mapped[bool] = mapped_column(Boolean, nullable=False)
    # "host:pid:start-time" of the process writing a running snapshot, so a
    # restarted daemon can tell its own interrupted runs from live ones.
    runner: Mapped[str | None] = mapped_column(String(255))
    tags: Mapped[dict[str, str]] = mapped_column(JSON, nullable=False,
                                                 server_default=text("'{}'"))
    encryption: Mapped[str | None] = mapped_column(String(32))
    # Fingerprints only (backup.encryption): never a key.
    recipients: Mapped[list[str]] = mapped_column(JSON, nullable=False,
                                                  server_default=text("'[]'"))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verification: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    instance: Mapped[str | None] = mapped_column(String(255))
    snapshot_id: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    phase: Mapped[str | None] = mapped_column(String(32))
    bytes_done: Mapped[int | None] = mapped_column(BigInteger)
    bytes_total: Mapped[int | None] = mapped_column(BigInteger)
    # When the bytes began to flow and when bytes_done last changed: the rate
    # and ETA are computed from them (service.rates).
    transfer_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A client's Idempotency-Key, and a hash of the request it came with, so a
    # retry returns this job and the same key with another body is refused.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, index=True)
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    # The fleet: the host that runs it, a request queued there by another
    # daemon (claimed once its lease is set), and the lease its heartbeats renew.
    host: Mapped[str | None] = mapped_column(String(64), index=True)
    request: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # When a daemon other than its host's was asked to cancel it: its host's
    # daemon sees this and cancels it there. Written only by FleetWork's
    # request_cancel, never by a save of the job.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ScheduleSlotRow(Base):
    """One scheduled run claimed by one daemon: the key makes it run once per
    slot, however many daemons see the instance."""

    __tablename__ = "schedule_slots"

    instance: Mapped[str] = mapped_column(String(255), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    slot: Mapped[datetime] = mapped_column(UTCDateTime, primary_key=True)
    host: Mapped[str] = mapped_column(String(64), nullable=False)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)


class HostRow(Base):
    """One Docker engine of the fleet and its daemon's last heartbeat."""

    __tablename__ = "hosts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    engine_version: Mapped[str] = mapped_column(String(64), nullable=False)
    instances: Mapped[int] = mapped_column(Integer, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_heartbeat: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    holdfast_version: Mapped[str] = mapped_column(String(64), nullable=False)
    runner: Mapped[str] = mapped_column(String(255), nullable=False)


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # sha256 of the secret: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CopyRow(Base):
    """A container a restore created (a "copy"), so the daemon can list it and
    remove it when its TTL passes, and never anything it did not create."""

    __tablename__ = "copies"

    # A container id names one container for good; a name can be reused by a
    # later copy once the earlier one is gone, so it is only indexed.
    container_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    snapshot_id: Mapped[str] = mapped_column(String(128), nullable=False)
    instance: Mapped[str] = mapped_column(String(255), nullable=False)
    job_id: Mapped[str | None] = mapped_column(String(128))
    volumes: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removal_error: Mapped[str | None] = mapped_column(Text)


class NotificationRow(Base):
    """One delivery of an event (or a dead-man ping) to one destination."""

    __tablename__ = "notifications"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    destination: Mapped[str] = mapped_column(String(255), nullable=False)
    event: Mapped[str] = mapped_column(String(64), nullable=False)
    instance: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AlarmRow(Base):
    """A condition failing now (:class:`backup.alerts.Alarm`), so an event fires
    once per failing stretch across restarts."""

    __tablename__ = "alarms"

    condition: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(255), primary_key=True)
    since: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    failures: Mapped[int] = mapped_column(Integer, nullable=False)
