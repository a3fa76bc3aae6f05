"""The daemon lock: one ``holdfast serve`` per data directory, and per catalog or host.

Two daemons on one catalog would both schedule every instance, and each one's
start-up recovery would mark the other's running snapshots failed. Each lock
here lasts exactly as long as its holder's process, so a daemon that crashed
(SIGKILL included) never blocks the next start and nothing stale is left to
clean up: :class:`FileLock` is an ``flock`` on a file in the data directory (or
beside a SQLite catalog kept elsewhere), which the kernel drops with the
process's last file descriptor; :class:`PostgresLock` is a session-level
advisory lock (``pg_try_advisory_lock``) on a dedicated connection, which the
server drops with the session. The holder's identity (host, pid, since when)
goes with each lock where the next process can read it: written into the
lock file, and as the lock session's ``application_name``, read back through
``pg_locks`` and ``pg_stat_activity``, so it can never name a holder that is gone.
:func:`daemon_lock_for` picks the locks a configuration needs. On PostgreSQL
the lock is per host name (:func:`host_lock_key`): a fleet's daemons share one
catalog, each the only one of its host.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from backup.errors import DaemonAlreadyRunning
from service.adapters.catalog.db import make_engine
from service.adapters.catalog.urls import (
    CatalogUnavailable,
    describe_error,
    normalize_url,
    redact_url,
)
from service.ports import DaemonLock, DaemonOwner

LOCK_FILE = "daemon.lock"
# Any constant shared by every Holdfast daemon works; this one spells "hfdaemn".
# The migrations' transaction lock uses another key, so the two never meet.
DAEMON_LOCK_KEY = 0x68666461656D6E
_APP_PREFIX = "holdfast-daemon"
_UNKNOWN = "holder unknown"


class FileLock:
    """An exclusive ``flock`` on ``path``, with the holder written into the file."""

    def __init__(self, path: Path, what: str,
                 advice: str = DaemonAlreadyRunning.ADVICE) -> None:
        self.path = path
        self.what = what
        self.advice = advice
        self._file: IO[str] | None = None

    def acquire(self, owner: DaemonOwner) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # "a+" creates the file but never truncates it, so the holder's identity
        # survives a loser's open; only the winner rewrites it, after locking.
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - kept while held
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _describe_file(handle.read())
            handle.close()
            raise DaemonAlreadyRunning(self.what, holder, self.advice) from None
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"host": owner.host, "pid": owner.pid,
                                 "since": owner.since.isoformat()}) + "\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            # Closing the descriptor drops the flock; the file stays for the next one.
            handle.close()


def _describe_file(content: str) -> str:
    try:
        data = json.loads(content)
        owner = DaemonOwner(host=str(data["host"]), pid=int(data["pid"]),
                            since=datetime.fromisoformat(data["since"]).astimezone(UTC))
    except (ValueError, KeyError, TypeError):
        return _UNKNOWN  # the holder is between locking and writing its name
    return owner.describe()


class PostgresLock:
    """A session-level advisory lock on a connection of its own, kept open while held."""

    def __init__(self, url: str, what: str = "this catalog", key: int = DAEMON_LOCK_KEY,
                 advice: str = DaemonAlreadyRunning.ADVICE) -> None:
        self.url = url
        self.what = what
        self.key = key
        self.advice = advice
        self._engine: Engine | None = None
        self._connection: Connection | None = None

    def acquire(self, owner: DaemonOwner) -> None:
        engine = make_engine(self.url)
        try:
            connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # Named before locking, so a loser that sees the lock sees the name too.
            connection.execute(text("SELECT set_config('application_name', :name, false)"),
                               {"name": _application_name(owner)})
            took = connection.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                      {"key": self.key}).scalar_one()
            if not took:
                holder = self._holder(connection)
                connection.close()
                raise DaemonAlreadyRunning(self.what, holder, self.advice)
        except DBAPIError as error:
            engine.dispose()
            raise CatalogUnavailable(
                f"catalog database {redact_url(normalize_url(self.url))} cannot be "
                f"locked: {describe_error(error, self.url)}") from error
        except BaseException:
            engine.dispose()
            raise
        self._engine, self._connection = engine, connection

    def _holder(self, connection: Connection) -> str:
        # A bigint advisory key shows in pg_locks as its high and low 32 bits.
        row = connection.execute(text(
            "SELECT a.application_name FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND l.classid = :high AND l.objid = :low "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ), {"high": self.key >> 32, "low": self.key & 0xFFFFFFFF}).first()
        return _describe_application_name(None if row is None else row[0])

    def release(self) -> None:
        connection, engine = self._connection, self._engine
        self._connection = self._engine = None
        if connection is not None:
            # Ending the session releases the lock, even if the unlock call fails.
            with contextlib.suppress(DBAPIError):
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            with contextlib.suppress(DBAPIError):
                connection.close()
        if engine is not None:
            engine.dispose()


def _application_name(owner: DaemonOwner) -> str:
    # PostgreSQL keeps 63 bytes of it: the host goes last, so only its tail can be cut.
    return f"{_APP_PREFIX} {owner.pid} {int(owner.since.timestamp())} {owner.host}"[:63]


def _describe_application_name(name: str | None) -> str:
    parts = (name or "").split(" ", 3)
    if len(parts) != 4 or parts[0] != _APP_PREFIX or not parts[1].isdigit() \
            or not parts[2].isdigit():
        return _UNKNOWN
    return DaemonOwner(host=parts[3], pid=int(parts[1]),
                       since=datetime.fromtimestamp(int(parts[2]), UTC)).describe()


class Locks:
    """Several locks taken in order and given up together; all or none are held."""

    def __init__(self, locks: list[DaemonLock]) -> None:
        self.locks = locks
        self._held: list[DaemonLock] = []

    def acquire(self, owner: DaemonOwner) -> None:
        try:
            for lock in self.locks:
                lock.acquire(owner)
                self._held.append(lock)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        while self._held:
            self._held.pop().release()


def host_lock_key(host: str) -> int:
    """The advisory lock key of host ``host``'s daemon: one per host name, so
    the daemons of a fleet share a PostgreSQL catalog, one per host."""
    digest = hashlib.sha256(f"holdfast-daemon:{host}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_SQLITE_FLEET = ("stop it first, or give this one its own HOLDFAST_DATA_DIR and "
                 "HOLDFAST_DATABASE_URL; the daemons of several hosts share a PostgreSQL "
                 "catalog (HOLDFAST_DATABASE_URL=postgresql://...), not a SQLite file")


def daemon_lock_for(catalog_url: str, data_dir: Path, host: str | None = None) -> Locks:
    """The locks a daemon with this catalog and data directory must hold: the
    data directory's, plus the catalog's when it lives elsewhere: a SQLite file
    outside the data directory (one daemon per file), or on PostgreSQL the lock
    of host ``host`` (one daemon per host; without a host, one per database)."""
    locks: list[DaemonLock] = [FileLock(data_dir / LOCK_FILE, f"data directory {data_dir}")]
    url = make_url(normalize_url(catalog_url))
    backend = url.get_backend_name()
    if backend == "postgresql" and host is not None:
        locks.append(PostgresLock(catalog_url, f"host {host} of catalog {redact_url(url)}",
                                  key=host_lock_key(host),
                                  advice="stop it first, or give this one its own "
                                         "HOLDFAST_HOST_NAME"))
    elif backend == "postgresql":
        locks.append(PostgresLock(catalog_url, f"catalog {redact_url(url)}"))
    elif backend == "sqlite":
        database = url.database or ""
        if database not in ("", ":memory:") and not database.startswith("file:"):
            path = Path(database).expanduser().resolve()
            if path.parent != data_dir.resolve():
                locks.append(FileLock(path.with_name(path.name + ".lock"),
                                      f"catalog {path}", _SQLITE_FLEET))
    return Locks(locks)
