"""Fixtures and helpers for driving the ``holdfast`` CLI against real containers.

The CLI runs as a user would run it: a separate process (``python -m
service.entrypoints.cli``) with an explicit environment in which every ``HOLDFAST_*``
variable of the test process is dropped and ``HOLDFAST_DATA_DIR`` points into
the test's own temporary directory, so each test has its own catalog and
``local`` target. Every output of every call is checked for the passwords the
tests know about: a secret must never reach a user's terminal.

Round trips are judged on the data: :func:`fingerprint` reduces a database to
row counts and checksums per table, sequence positions, schema objects and
roles, and the tests compare source and restored fingerprints.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    DEFAULT_POSTGRES_LABELS,
    HELPER_IMAGE,
    PGDATA,
    TEST_LABEL,
    psql,
    wait_for_postgres,
)
from tests.harness.docker_fixtures import (
    DockerCleanup as DockerCleanup,  # re-exported: the test modules import it from here
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 300.0
READER_PASSWORD = "reader-pw"

# Every password a test container is given; none may appear in CLI output.
KNOWN_SECRETS: set[str] = {DEFAULT_POSTGRES_ENV["POSTGRES_PASSWORD"], READER_PASSWORD}


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    """A CLI run, for assertion messages."""
    args = proc.args[3:] if isinstance(proc.args, list) else proc.args
    return (f"holdfast {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}--- stderr ---\n{proc.stderr}")


class StderrNotOneLine(AssertionError):
    """A failing command printed other than exactly one line on stderr."""


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


PROGRESS_LINE = re.compile(r"(backup|restore|clone|verify|verify target) [^:\s]+: .+")
"""A progress report off a terminal (service/entrypoints/cli/progress.py): one
every few seconds while a job runs, so a slow machine prints some before the error."""


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single line a failing command printed on stderr besides its progress
    reports (asserts there is exactly one, and that it comes last)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    others = [line for line in lines if not PROGRESS_LINE.fullmatch(line)]
    if len(others) != 1 or lines[-1] != others[0]:
        raise StderrNotOneLine(f"expected exactly one line on stderr:\n{describe(proc)}")
    return others[0]


@dataclass
class Holdfast:
    """The ``holdfast`` CLI, run in a subprocess with its own data directory."""

    data_dir: Path
    calls: list[subprocess.CompletedProcess[str]] = field(default_factory=list)

    @property
    def snapshots_dir(self) -> Path:
        return self.data_dir / "snapshots"

    def catalog_files(self) -> list[Path]:
        return sorted(self.data_dir.glob("catalog.sqlite3*"))

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith("HOLDFAST_")}
        env["HOLDFAST_DATA_DIR"] = str(self.data_dir)
        env["HOLDFAST_HELPER_IMAGE"] = HELPER_IMAGE
        env.update(extra or {})
        return env

    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "service.entrypoints.cli", *args]

    def _record(self, proc: subprocess.CompletedProcess[str]) -> None:
        self.calls.append(proc)
        for secret in KNOWN_SECRETS:
            assert secret not in proc.stdout, f"a password leaked to stdout:\n{describe(proc)}"
            assert secret not in proc.stderr, f"a password leaked to stderr:\n{describe(proc)}"

    def run(self, *args: str, env: Mapping[str, str] | None = None,
            timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(self._argv(args), env=self.env(env), cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)
        self._record(proc)
        return proc

    def json(self, *args: str, env: Mapping[str, str] | None = None) -> Any:
        """Run with ``--json``, require success, and return the parsed stdout."""
        proc = self.run(*args, "--json", env=env)
        assert proc.returncode == 0, describe(proc)
        try:
            return json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"--json printed something other than JSON ({exc}):\n"
                                 f"{describe(proc)}") from None

    def fail(self, *args: str, code: int | None = None,
             env: Mapping[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], str]:
        """Run a command that must fail; returns the process and its one stderr line."""
        proc = self.run(*args, env=env)
        assert proc.returncode != 0, f"expected a failure:\n{describe(proc)}"
        if code is not None:
            assert proc.returncode == code, f"expected exit {code}:\n{describe(proc)}"
        return proc, one_line(proc)

    @contextlib.contextmanager
    def popen(self, *args: str) -> Iterator[subprocess.Popen[str]]:
        """Start a command in the background; it is killed if still running on exit."""
        process = subprocess.Popen(self._argv(args), env=self.env(), cwd=REPO_ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            yield process
        finally:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)

    def finish(self, process: subprocess.Popen[str],
               timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
        """Wait for a :meth:`popen` process and record it like a :meth:`run`."""
        stdout, stderr = process.communicate(timeout=timeout)
        proc = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        self._record(proc)
        return proc


@pytest.fixture
def holdfast(tmp_path: Path) -> Holdfast:
    return Holdfast(data_dir=tmp_path / "data")


# --- data fingerprints -----------------------------------------------------------

_USER_SCHEMAS = "NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"


def _rows(container: Container, db: str, sql: str) -> list[str]:
    return [line for line in psql(container, sql, db=db).splitlines() if line]


def fingerprint(container: Container, db: str) -> dict[str, Any]:
    """Row count and md5 of every user table, sequence positions, schema objects
    and the cluster's roles (pg_* excluded), as seen in database ``db``."""
    tables = _rows(container, db,
                   "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                   f"WHERE schemaname {_USER_SCHEMAS} ORDER BY 1")
    per_table: dict[str, str] = {}
    if tables:
        union = " UNION ALL ".join(
            f"SELECT '{table.replace(chr(39), chr(39) * 2)}' || ':' || count(*) || ':' || "
            f"md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} AS t"
            for table in tables
        )
        for line in _rows(container, db, union):
            table, _, rest = line.partition(":")
            per_table[table] = rest
    return {
        "tables": per_table,
        "sequences": _rows(container, db,
                           "SELECT format('%I.%I', schemaname, sequencename) || '=' || "
                           "coalesce(last_value::text, 'unused') FROM pg_sequences "
                           f"WHERE schemaname {_USER_SCHEMAS} ORDER BY 1"),
        "views": _rows(container, db,
                       "SELECT format('%I.%I', schemaname, viewname) FROM pg_views "
                       f"WHERE schemaname {_USER_SCHEMAS} ORDER BY 1"),
        "functions": _rows(container, db,
                           "SELECT p.oid::regprocedure::text FROM pg_proc p "
                           "JOIN pg_namespace n ON n.oid = p.pronamespace "
                           f"WHERE n.nspname {_USER_SCHEMAS} ORDER BY 1"),
        "triggers": _rows(container, db,
                          "SELECT tgrelid::regclass::text || '.' || tgname FROM pg_trigger "
                          "WHERE NOT tgisinternal ORDER BY 1"),
        "roles": _rows(container, db,
                       "SELECT rolname || ':' || rolcanlogin || ':' || rolsuper FROM pg_roles "
                       "WHERE rolname !~ '^pg_' ORDER BY 1"),
    }


# --- Docker objects --------------------------------------------------------------


@pytest.fixture
def docker_cleanup(docker_client: docker.DockerClient) -> Iterator[DockerCleanup]:
    tracker = DockerCleanup(docker_client)
    yield tracker
    errors = tracker.remove_all()
    if errors:
        pytest.fail("cleanup failed:\n" + "\n".join(errors), pytrace=False)


@pytest.fixture
def box(docker_client: docker.DockerClient, test_network: str) -> Iterator[Container]:
    """A container that only sleeps, to exec in."""
    container = docker_client.containers.run(
        HELPER_IMAGE, ["sleep", "infinity"], detach=True, network=test_network,
        name=f"hf-test-exec-{secrets.token_hex(4)}", labels={TEST_LABEL: "1"})
    try:
        yield container
    finally:
        container.remove(force=True, v=True)


def commands(container: Container) -> list[str]:
    """The command line of every process in ``container``, as ``docker top`` shows them."""
    top: dict[str, Any] = container.top(ps_args="-eo pid,args")
    return [" ".join(str(c) for c in row[1:]) for row in top["Processes"] or []]


@pytest.fixture
def volume_names(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Names for the test's volumes; whatever exists under them is removed after."""
    names: list[str] = []
    yield names
    for name in names:
        with contextlib.suppress(NotFound):
            docker_client.volumes.get(name).remove(force=True)


def container_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.containers.get(name)
    except NotFound:
        return False
    return True


def volume_exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.volumes.get(name)
    except NotFound:
        return False
    return True


# --- the shared, seeded source ----------------------------------------------------

SEED_APPDB = """
CREATE TABLE customers (
    id serial PRIMARY KEY,
    name text NOT NULL,
    email text UNIQUE,
    created_at timestamptz NOT NULL DEFAULT '2024-01-01 00:00:00+00'
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    amount numeric(10, 2) NOT NULL,
    note text
);
CREATE TABLE audit_log (
    id serial PRIMARY KEY,
    order_id bigint NOT NULL,
    action text NOT NULL
);
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
SELECT nextval('invoice_no') FROM generate_series(1, 5);
INSERT INTO customers (name, email)
    SELECT 'customer ' || g, 'c' || g || '@example.test' FROM generate_series(1, 500) g;
INSERT INTO orders (customer_id, amount, note)
    SELECT 1 + g % 500, (g % 100000) / 100.0, md5(g::text) FROM generate_series(1, 50000) g;
CREATE FUNCTION log_order_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO audit_log (order_id, action) VALUES (NEW.id, TG_OP);
    RETURN NEW;
END
$$;
CREATE TRIGGER orders_audit AFTER UPDATE ON orders
    FOR EACH ROW EXECUTE FUNCTION log_order_change();
UPDATE orders SET note = note || '!' WHERE id <= 100;
CREATE VIEW customer_totals AS
    SELECT c.id, c.name, sum(o.amount) AS total
    FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY c.id, c.name;
CREATE ROLE reader LOGIN PASSWORD 'reader-pw';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
"""

SEED_REPORTS = """
CREATE TABLE monthly (month date PRIMARY KEY, revenue numeric(12, 2) NOT NULL);
INSERT INTO monthly SELECT d::date, extract(month FROM d) * 1000.5
    FROM generate_series('2024-01-01'::date, '2024-12-01'::date, interval '1 month') d;
GRANT SELECT ON monthly TO reader;
"""


@dataclass(frozen=True)
class Source:
    """A running, seeded postgres container that tests must not modify."""

    container: Container
    name: str
    """Container name, which is also the instance name (no holdfast.name label)."""
    password: str
    volume: str


def start_postgres(client: docker.DockerClient, image: str, network: str, name: str,
                   env: Mapping[str, str], volume: str) -> Container:
    """Run a labelled postgres container on a fresh named volume and wait for it."""
    client.volumes.create(name=volume, labels={TEST_LABEL: "1"})
    container = client.containers.run(
        image, name=name, detach=True, environment=dict(env),
        labels=dict(DEFAULT_POSTGRES_LABELS), network=network,
        volumes={volume: {"bind": PGDATA, "mode": "rw"}},
    )
    wait_for_postgres(container)
    container.reload()
    return container


@pytest.fixture(scope="module")
def pg_source(docker_client: docker.DockerClient, test_network: str,
              postgres_image: str) -> Iterator[Source]:
    """One seeded source per module: ``appdb`` (tables, a ~50k-row table, a view,
    a sequence, a trigger function), ``reports``, and a login role ``reader``."""
    name = f"hf-it-src-{secrets.token_hex(3)}"
    password = f"hf-src-pw-{secrets.token_hex(8)}"
    KNOWN_SECRETS.add(password)
    volume = f"{name}-data"
    env = {**DEFAULT_POSTGRES_ENV, "POSTGRES_PASSWORD": password}
    container: Container | None = None
    try:
        container = start_postgres(docker_client, postgres_image, test_network, name, env,
                                   volume)
        psql(container, SEED_APPDB)
        psql(container, "CREATE DATABASE reports")
        psql(container, SEED_REPORTS, db="reports")
        psql(container, "ANALYZE", db="appdb")
        yield Source(container=container, name=name, password=password, volume=volume)
    finally:
        with contextlib.suppress(NotFound):
            docker_client.containers.get(name).remove(force=True, v=True)
        with contextlib.suppress(NotFound):
            docker_client.volumes.get(volume).remove(force=True)
