"""Fixtures that run every catalog test on SQLite and on a real PostgreSQL server.

The PostgreSQL server is a throwaway cluster: initdb'd into a temporary
directory, started on a free 127.0.0.1 port with its socket in that directory,
and removed at the end of the session. Each test gets its own database. If the
server binaries are missing the tests fail, with the command that installs them,
rather than pass on SQLite alone.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from service.adapters.catalog import open_catalog
from service.adapters.catalog.sqlite_reader import QuickReadCatalog, open_quick_catalog
from service.ports import CatalogPort
from tests.fakes.catalog import InMemoryCatalog

PG_BIN = Path(os.environ.get("HOLDFAST_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_OS_USER = "postgres"
STARTUP_TIMEOUT = 30.0

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres_catalog),
]


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; as any other user it runs as that user.
    if os.geteuid() == 0:
        return ["runuser", "-u", PG_OS_USER, "--", *argv]
    return argv


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = PG_BIN / "initdb", PG_BIN / "pg_ctl"
    if not all(p.exists() for p in (initdb, pg_ctl, PG_BIN / "postgres")):
        pytest.fail(
            f"PostgreSQL server binaries not found in {PG_BIN}; the catalog tests need them. "
            "Install with: apt-get install -y postgresql-15 "
            "(or set HOLDFAST_TEST_PG_BIN to another bin directory)",
            pytrace=False,
        )
    started = time.monotonic()
    # Not tmp_path_factory: its directories are private to root, and the server
    # runs as the postgres user.
    root = Path(tempfile.mkdtemp(prefix="holdfast-pg-"))
    data, log = root / "data", root / "server.log"
    if os.geteuid() == 0:
        shutil.chown(root, user=PG_OS_USER)
    running = False
    try:
        _run(
            [
                str(initdb),
                "-D",
                str(data),
                "-U",
                PG_OS_USER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )
        server = _start(pg_ctl, data, root, log)
        running = True
        _check_connects(server)
        print(
            f"\npostgres fixture ready in {time.monotonic() - started:.2f}s on port {server.port}"
        )
        yield server
    finally:
        if running:
            # "fast": roll back open sessions instead of waiting for them to end.
            _run([str(pg_ctl), "-D", str(data), "-m", "fast", "-w", "stop"], "pg_ctl stop")
        shutil.rmtree(root, ignore_errors=True)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"{what} failed: {(done.stderr or done.stdout)[-2000:]}", pytrace=False)


def _start(pg_ctl: Path, data: Path, socket_dir: Path, log: Path) -> PostgresServer:
    # The free port may be taken again before the server binds it, so try a few.
    for _attempt in range(3):
        port = _free_port()
        options = (
            f"-h 127.0.0.1 -p {port} -k {socket_dir} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
            # Not UTC, so the tests see timestamps normalised on the way out.
            "-c timezone=America/New_York"
        )
        done = subprocess.run(
            _as_postgres(
                [
                    str(pg_ctl),
                    "-D",
                    str(data),
                    "-l",
                    str(log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(STARTUP_TIMEOUT)),
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0:
            return PostgresServer("127.0.0.1", port, PG_OS_USER)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else done.stderr
    pytest.fail(f"postgres did not start: {tail}", pytrace=False)


def _check_connects(server: PostgresServer) -> None:
    try:
        with server.admin() as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as error:
        pytest.fail(f"postgres started but refuses connections: {error}", pytrace=False)


@pytest.fixture
def pg_database(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server; yields its postgresql:// URL."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with pg_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.url(name)
    with pg_server.admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty catalog database URL, once per backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog' / 'holdfast.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


# The catalog port's contract holds for the in-memory fake of the Docker-free
# tier too, so every test written against ``catalog`` runs on it as well.
# So does the CLI's QuickReadCatalog (stdlib reads of a SQLite file at the newest
# revision, writes through the full catalog): "sqlite-quick" runs every test on it.
CATALOGS = [*BACKENDS, pytest.param("sqlite-quick", id="sqlite-quick"),
            pytest.param("memory", id="memory")]


@pytest.fixture(params=CATALOGS)
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CatalogPort]:
    """An empty catalog: SQLite, PostgreSQL, and the fake of :mod:`tests.fakes.catalog`."""
    if request.param == "memory":
        yield InMemoryCatalog()
        return
    url = (request.getfixturevalue("pg_database") if request.param == "postgresql"
           else f"sqlite:///{tmp_path / 'catalog' / 'holdfast.db'}")
    opened: CatalogPort
    if request.param == "sqlite-quick":
        open_catalog(url).close()  # creates and migrates the file
        opened = open_quick_catalog(url)
        assert isinstance(opened, QuickReadCatalog)
    else:
        opened = open_catalog(url)
    try:
        yield opened
    finally:
        opened.close()
