"""Engines and schema migrations for the catalog database, SQLite or PostgreSQL.

Nothing here runs at import time: :func:`open_catalog` is the one entry point
that turns a URL into a ready :class:`~service.adapters.catalog.repository.Catalog`,
migrating the schema to the newest revision on the way, and every failure to
reach or migrate the database surfaces as :class:`CatalogUnavailable` with a
one-line message in which the URL's password is masked. Alembic is imported
only when there is something to migrate: a catalog already at the newest
revision (every CLI command after the first) is recognised by reading
``alembic_version`` against the revisions in ``migrations/versions``, which
saves a third of a second at each command's start.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, pool, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

import migrations
from service.adapters.catalog.repository import Catalog
from service.adapters.catalog.schema_version import script_heads
from service.adapters.catalog.urls import (
    SUPPORTED_BACKENDS,
    CatalogUnavailable,
    describe_error,
    normalize_url,
    redact_url,
)

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic's ``context`` and ``op`` are module-level proxies to whichever migration
# runs, so two threads migrating at once (even different databases) would mix up.
_ALEMBIC_IN_USE = threading.Lock()
# Any constant shared by every Holdfast process works; this one spells "hfmigr".
_MIGRATION_LOCK_KEY = 0x68666D69677200


def make_engine(url: str) -> Engine:
    """An engine for ``url`` set up for the catalog's use from several threads."""
    parsed = make_url(normalize_url(url))
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise CatalogUnavailable(
            f"catalog database {redact_url(parsed)} is not supported: "
            "use a sqlite:/// or postgresql:// URL"
        )
    if backend == "sqlite":
        return _make_sqlite_engine(parsed)
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in parsed.query:
        # libpq waits forever for a host that drops packets; the daemon should not.
        connect_args["connect_timeout"] = 10
    return create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)


def _make_sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in database
    if in_memory:
        # One shared connection, or each thread would see its own empty database.
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, poolclass=pool.StaticPool
        )
    else:
        if not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # The busy timeout makes concurrent writers wait for each other
            # instead of failing; it comes first so that switching to WAL (which
            # lets the API read while a backup job writes) waits too when two
            # processes open a fresh database at once.
            cursor.execute("PRAGMA busy_timeout=30000")
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    return engine


def _switch_to_wal(cursor: Any) -> None:
    # Changing the journal mode needs an exclusive lock and SQLite may answer
    # "database is locked" at once, without its busy handler, while another
    # connection holds the file; a short retry loop covers that start-up race.
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def alembic_config(connection: Connection) -> Config:
    """An Alembic configuration built in code that migrates through ``connection``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).resolve().parent))
    config.attributes["connection"] = connection
    return config


def upgrade_to_head(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe from several threads or processes at once."""
    from alembic import command

    with _ALEMBIC_IN_USE, engine.begin() as connection:
        _lock_for_migration(connection)
        command.upgrade(alembic_config(connection), "head")


def downgrade_to_base(engine: Engine) -> None:
    """Drop every catalog table; tests use it to check that each migration reverses."""
    from alembic import command

    with _ALEMBIC_IN_USE, engine.begin() as connection:
        _lock_for_migration(connection)
        command.downgrade(alembic_config(connection), "base")


def _lock_for_migration(connection: Connection) -> None:
    # The daemon and a CLI command may start together against a fresh database;
    # without a lock both would try to create the same tables. Each lock lasts
    # until the surrounding transaction ends, and Alembic reads the current
    # revision only after it is held, so the second process finds nothing to do.
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
    elif connection.dialect.name == "sqlite":
        # pysqlite opens no transaction for DDL, so take the write lock by hand.
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def schema_is_current(connection: Connection) -> bool:
    """True when the database records exactly the one head revision, so there is
    nothing to migrate; False sends the caller to Alembic, which also handles a
    revision it does not know."""
    heads = script_heads()
    if len(heads) != 1 or not inspect(connection).has_table("alembic_version"):
        return False
    recorded = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
    return list(recorded) == list(heads)


def open_catalog(url: str) -> Catalog:
    """Connect to the catalog at ``url``, migrate it to the newest schema, and return it."""
    try:
        engine = make_engine(url)
    except (ArgumentError, NoSuchModuleError) as error:
        raise CatalogUnavailable(
            f"catalog database URL {redact_url(url)} is not valid: {type(error).__name__}"
        ) from error
    except OSError as error:
        raise CatalogUnavailable(
            f"catalog database {redact_url(url)} cannot be created: {error}"
        ) from error
    shown = redact_url(engine.url)
    try:
        catalog = Catalog(engine)
        catalog.ping()
        try:
            with engine.connect() as connection:
                current = schema_is_current(connection)
            if not current:
                _migrate(engine)
        except SQLAlchemyError as error:
            raise CatalogUnavailable(
                f"catalog database {shown} cannot be migrated: {describe_error(error, engine.url)}"
            ) from error
    except BaseException:
        engine.dispose()
        raise
    return catalog


def _migrate(engine: Engine) -> None:
    from alembic.util.exc import CommandError

    try:
        upgrade_to_head(engine)
    except CommandError as error:
        raise CatalogUnavailable(
            f"catalog database {redact_url(engine.url)} cannot be migrated: "
            f"{describe_error(error, engine.url)}") from error
