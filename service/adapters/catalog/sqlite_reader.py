"""The CLI's quick way into a local SQLite catalog: reads through the standard
library's ``sqlite3``, writes through the full SQLAlchemy catalog opened on first use.

Importing SQLAlchemy costs about a quarter of a second, most of what a listing
such as ``holdfast snapshots`` would take (bench/cli_startup.py). When the
catalog is a plain ``sqlite:///PATH`` file already at the newest schema
revision, :func:`open_quick_catalog` returns a :class:`QuickReadCatalog`: its
read methods run SQL on a ``query_only`` connection and build the same records
as :class:`~service.adapters.catalog.repository.Catalog` does (the SQL mirrors
the repository's queries: same filters, same order); any other method, a write
among them, goes to a :class:`Catalog` opened on the first such call. Anything
else (PostgreSQL, a new or older database) gets :func:`open_catalog` at once,
which migrates. The daemon always uses the full catalog. The catalog contract
suite (tests/catalog) runs every test through this class as well.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from backup.types import Snapshot, SnapshotStatus
from service.adapters.catalog.schema_version import sqlite_file_of, sqlite_schema_is_current
from service.adapters.catalog.urls import CatalogUnavailable
from service.hosts import HostRecord
from service.records import InstanceRecord, JobRecord, JobStatus
from service.tokens import TokenRecord

if TYPE_CHECKING:
    from service.ports import CatalogPort

_Record = TypeVar("_Record", HostRecord, InstanceRecord, JobRecord, Snapshot, TokenRecord)

# How each table's columns are stored by SQLAlchemy on SQLite: UTCDateTime as
# naive UTC text, JSON as text, Boolean as 0/1, enums as their value.
# tests/catalog/test_sqlite_reader.py checks these against the models.
_TIMES = {"first_seen", "last_seen", "created_at", "finished_at", "started_at",
          "progress_at", "transfer_started_at", "last_used_at", "expires_at", "verified_at",
          "lease_expires_at", "cancel_requested_at", "last_heartbeat"}
_JSON = {"labels", "policy_override", "result", "tags", "scopes", "verification", "recipients",
         "request"}
_JSON_TUPLES = {"recipients"}
"""JSON lists the records hold as tuples."""
_FLAGS = {"pinned"}
_ENUMS: dict[type[Any], type[Any]] = {Snapshot: SnapshotStatus, JobRecord: JobStatus}

_SNAPSHOT_ORDER = " ORDER BY created_at DESC, id DESC"


class SqliteCatalogReader:
    """Read-only access to a SQLite catalog file at the newest schema revision.

    One connection, ``query_only`` and in autocommit mode (each query sees
    every commit made before it, by this process's writer or any other),
    guarded by a lock so progress threads may share it."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA busy_timeout=30000")
            self._db.execute("PRAGMA query_only=ON")
        except sqlite3.Error as error:
            raise self._unavailable(error) from error
        self._db.row_factory = sqlite3.Row

    def is_current(self) -> bool:
        """Whether the file records exactly the newest schema revision."""
        with self._lock:
            try:
                return sqlite_schema_is_current(self._db)
            except sqlite3.Error:
                return False

    def ping(self) -> None:
        self._rows("SELECT 1", ())

    def close(self) -> None:
        self._db.close()

    # --- instances --------------------------------------------------------------

    def get_instance(self, name: str) -> InstanceRecord | None:
        return self._first(InstanceRecord, "SELECT * FROM instances WHERE name = ?", (name,))

    def list_instances(self) -> list[InstanceRecord]:
        return self._all(InstanceRecord, "SELECT * FROM instances ORDER BY name", ())

    # --- snapshots --------------------------------------------------------------

    def get_snapshot(self, id: str) -> Snapshot | None:
        return self._first(Snapshot, "SELECT * FROM snapshots WHERE id = ?", (id,))

    def list_snapshots(self, instance: str | None = None,
                       status: SnapshotStatus | None = None,
                       tags: Mapping[str, str] | None = None) -> list[Snapshot]:
        """Snapshots, newest first, optionally of one instance, in one status and
        carrying every tag in ``tags`` (``json_extract``, as the repository's SQL)."""
        where, params = _conditions({"instance": instance,
                                     "status": None if status is None else str(status)})
        for key, value in (tags or {}).items():
            where += (" AND " if where else " WHERE ") + "json_extract(tags, ?) = ?"
            params.extend(['$."' + key + '"', value])
        return self._all(Snapshot, "SELECT * FROM snapshots" + where + _SNAPSHOT_ORDER, params)

    def latest_snapshot(self, instance: str) -> Snapshot | None:
        """The newest snapshot of ``instance`` in any status."""
        return self._first(Snapshot, "SELECT * FROM snapshots WHERE instance = ?"
                           + _SNAPSHOT_ORDER + " LIMIT 1", (instance,))

    def snapshots_with_prefix(self, prefix: str, limit: int) -> list[Snapshot]:
        """At most ``limit`` snapshots whose id starts with ``prefix``, by id
        (``substr``: SQLite's LIKE would ignore case)."""
        return self._all(Snapshot, "SELECT * FROM snapshots WHERE substr(id, 1, ?) = ? "
                         "ORDER BY id LIMIT ?", (len(prefix), prefix, max(0, limit)))

    # --- jobs -------------------------------------------------------------------

    def get_job(self, id: str) -> JobRecord | None:
        return self._first(JobRecord, "SELECT * FROM jobs WHERE id = ?", (id,))

    def job_with_idempotency_key(self, key: str) -> JobRecord | None:
        return self._first(JobRecord, "SELECT * FROM jobs WHERE idempotency_key = ?", (key,))

    def list_jobs(self, limit: int = 100, statuses: Iterable[JobStatus] | None = None,
                  kind: str | None = None, instance: str | None = None) -> list[JobRecord]:
        """The ``limit`` newest jobs (of the given statuses, kind and instance),
        newest first."""
        where, params = _conditions({"kind": kind, "instance": instance})
        if statuses is not None:
            wanted = [str(status) for status in statuses]
            where += (" AND " if where else " WHERE ") + (
                "status IN (" + ", ".join("?" * len(wanted)) + ")" if wanted else "0")
            params.extend(wanted)
        return self._all(JobRecord, "SELECT * FROM jobs" + where
                         + " ORDER BY created_at DESC, id DESC LIMIT ?", (*params, limit))

    # --- tokens -----------------------------------------------------------------

    def list_tokens(self) -> list[TokenRecord]:
        """Every token by name (``holdfast tokens ls``); scopes as the tuple the
        repository gives."""
        return [replace(t, scopes=tuple(t.scopes))
                for t in self._all(TokenRecord, "SELECT * FROM api_tokens ORDER BY name", ())]

    # --- hosts ------------------------------------------------------------------

    def list_hosts(self) -> list[HostRecord]:
        """Every host of the fleet by name (``holdfast instances`` shows their status)."""
        return self._all(HostRecord, "SELECT * FROM hosts ORDER BY name", ())

    # --- plumbing ---------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[object]) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise self._unavailable(error) from error

    def _first(self, kind: type[_Record], sql: str, params: Sequence[object]) -> _Record | None:
        rows = self._rows(sql, params)
        return _record(kind, rows[0]) if rows else None

    def _all(self, kind: type[_Record], sql: str, params: Sequence[object]) -> list[_Record]:
        return [_record(kind, row) for row in self._rows(sql, params)]

    def _unavailable(self, error: sqlite3.Error) -> CatalogUnavailable:
        first = (str(error).splitlines() or [type(error).__name__])[0]
        return CatalogUnavailable(f"catalog database sqlite:///{self._path} cannot be read: "
                                  f"{first}")


class QuickReadCatalog(SqliteCatalogReader):
    """A :class:`SqliteCatalogReader` whose other methods, writes among them, are
    those of the full catalog at the same URL, opened (without migrating: the
    schema is current) on the first call that needs it."""

    def __init__(self, path: Path, url: str) -> None:
        super().__init__(path)
        self._url = url
        self._full: CatalogPort | None = None
        self._opening = threading.Lock()

    def full_catalog(self) -> CatalogPort:
        with self._opening:
            if self._full is None:
                from service.adapters.catalog.db import open_catalog

                self._full = open_catalog(self._url)
            return self._full

    def __getattr__(self, name: str) -> Any:
        # Only names the reader lacks get here: the catalog's writes and any
        # read the reader does not serve.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.full_catalog(), name)

    def close(self) -> None:
        super().close()
        if self._full is not None:
            self._full.close()


def open_quick_catalog(url: str) -> CatalogPort:
    """The catalog at ``url`` for a one-shot command: a :class:`QuickReadCatalog`
    for an existing SQLite file at the newest revision, else :func:`open_catalog`
    (which creates and migrates)."""
    path = sqlite_file_of(url)
    if path is not None and path.is_file():
        quick = QuickReadCatalog(path, url)
        if quick.is_current():
            # Checked structurally by the catalog contract suite, which runs
            # every CatalogPort test through this class.
            return cast("CatalogPort", quick)
        quick.close()
    from service.adapters.catalog.db import open_catalog

    return open_catalog(url)


def _conditions(equal: Mapping[str, object]) -> tuple[str, list[object]]:
    """`` WHERE a = ? AND b = ?`` for the values that are not None."""
    given = {column: value for column, value in equal.items() if value is not None}
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{column} = ?" for column in given), list(given.values())


def _record(kind: type[_Record], row: sqlite3.Row) -> _Record:
    """The record ``kind`` from a row of its table: each field from the column of
    the same name (columns no field reads are ignored)."""
    columns = set(row.keys())
    values = {f.name: _value(kind, f.name, row[f.name]) for f in fields(kind)
              if f.name in columns}
    return kind(**values)


def _value(kind: type[Any], column: str, stored: Any) -> Any:
    if stored is None:
        return None
    if column in _TIMES:
        return datetime.fromisoformat(stored).replace(tzinfo=UTC)
    if column in _JSON:
        loaded = json.loads(stored)
        return tuple(loaded) if column in _JSON_TUPLES else loaded
    if column in _FLAGS:
        return bool(stored)
    if column == "status":
        return _ENUMS[kind](stored)
    return stored
