"""PostgreSQL: ``pg_dumpall --globals-only`` plus one custom-format ``pg_dump``
per database, run inside the container with its own binaries.

Using the container's binaries means the dump tools always match the server
version. Credentials follow the official image's conventions
(``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``) and reach the tools
through the exec environment (``PGPASSWORD``), never argv. Dumps are taken
uncompressed (``-Z0``) because the pipeline compresses the whole stream with
zstd; compressing twice only burns CPU.

The figures of a dump (:mod:`backup.figures`) are read from its own streams
(:mod:`backup.engines.pgscan`): exact row counts from each archive's COPY
data, roles from the globals; :meth:`PostgresEngine.measure` counts again.

Readiness is judged over TCP on 127.0.0.1 with a real authenticated query: the
official image's init-time temporary server listens on the unix socket only,
so this check cannot pass until the final server is up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

from backup import multiplex
from backup.engines.base import Dump
from backup.engines.connections import postgres_url
from backup.engines.pgparallel import PARALLEL_FROM, ParallelDump, ParallelRestore
from backup.engines.pgplan import PieceSizes
from backup.engines.pgscan import RoleLines, archive_reader
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    ExecFailed,
    MissingCredentials,
    RestoreFailed,
    dump_stream,
    last_line,
)
from backup.figures import Figures, Scanner
from backup.framing import pack, unpack
from backup.labels import JOBS_LABEL, MODE_LABEL, parse_jobs, parse_mode
from backup.multiplex import Sequential, Step
from backup.ports import ContainerExec
from backup.types import DatabaseContainer

SOCKET_DIR = "/var/run/postgresql"
GLOBALS_MEMBER = "globals.sql"
META_MEMBER = "meta.json"
DATABASE_MEMBER_PREFIX = "db/"
_CREATE_ROLE = re.compile(r'^CREATE ROLE "?([^";]+)"?;\s*$')
DUMP_METHOD = ("exact row counts from the COPY data of each pg_dump (taken inside its own "
               "snapshot), roles from pg_dumpall --globals-only")
MEASURE_METHOD = "SELECT count(*) of every table, roles from pg_roles"
PARALLEL_METHOD = ("exact row counts from the COPY data of each piece and of the pg_dump of the "
                   "rest (all inside one exported snapshot), roles from pg_dumpall --globals-only")
PARALLEL_FORMAT = "holdfast-postgres-v2"

# One row per ordinary table outside the system schemas (not those an
# extension owns, whose data pg_dump leaves out): hex schema, hex name, rows.
_COUNT_TABLES = """
SELECT encode(convert_to(n.nspname, getdatabaseencoding()), 'hex') || ' ' ||
       encode(convert_to(c.relname, getdatabaseencoding()), 'hex') || ' ' ||
       (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
                                                   n.nspname, c.relname), false, true, '')))[1]
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e')
"""


class PostgresEngine:
    name: ClassVar[str] = "postgres"
    data_format: ClassVar[str] = "holdfast-postgres-v1"
    read_formats: ClassVar[tuple[str, ...]] = ("holdfast-postgres-v1", "holdfast-postgres-v2")
    loads_before_start: ClassVar[bool] = False
    service_port: ClassVar[int | None] = 5432

    def __init__(self, sizes: PieceSizes | None = None) -> None:
        self._sizes = sizes or PieceSizes()
        """How a parallel dump cuts its tables (:mod:`backup.engines.pgplan`)."""

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        return postgres_url(env, secret_names, host=host, port=port)

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        return [container.env.get("PGDATA") or "/var/lib/postgresql/data"]

    # --- credentials --------------------------------------------------------

    @staticmethod
    def user(container: DatabaseContainer) -> str:
        return container.env.get("POSTGRES_USER") or "postgres"

    @staticmethod
    def maintenance_db(container: DatabaseContainer) -> str:
        return container.env.get("POSTGRES_DB") or PostgresEngine.user(container)

    def check(self, container: DatabaseContainer) -> None:
        env = container.env
        if env.get("POSTGRES_PASSWORD"):
            return
        if env.get("POSTGRES_HOST_AUTH_METHOD") == "trust":
            return
        hint = (
            "it uses POSTGRES_PASSWORD_FILE, which Holdfast cannot read yet; "
            "set POSTGRES_PASSWORD"
            if env.get("POSTGRES_PASSWORD_FILE")
            else "set POSTGRES_PASSWORD on the container (the official image's convention)"
        )
        raise MissingCredentials(
            f"container {container.name} has no POSTGRES_PASSWORD in its environment: {hint}"
        )

    def env_for(self, container: DatabaseContainer, **extra: str) -> dict[str, str]:
        env = {"PGUSER": self.user(container), "PGHOST": SOCKET_DIR, **extra}
        password = container.env.get("POSTGRES_PASSWORD")
        if password:
            env["PGPASSWORD"] = password
        return env

    # --- dump ---------------------------------------------------------------

    def list_databases(self, container: DatabaseContainer, runner: ContainerExec) -> list[str]:
        query = (
            "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
            "ORDER BY datname"
        )
        result = runner.run(
            container.id,
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d",
             self.maintenance_db(container), "-c", query],
            env=self.env_for(container),
            check=False,
        )
        if result.exit_code != 0:
            raise DumpFailed(
                f"cannot list databases in {container.name}: "
                f"{last_line(result.stderr) or f'psql exited {result.exit_code}'}"
            )
        return [line for line in result.stdout.decode().splitlines() if line]

    def dump(
        self, container: DatabaseContainer, runner: ContainerExec, databases: Sequence[str] = ()
    ) -> Dump:
        if dump_mode(container) == "physical":
            # The physical engine builds on this one, so it is imported here.
            from backup.engines.pgphysical import PostgresPhysicalEngine
            return PostgresPhysicalEngine().dump(container, runner, databases)
        self.check(container)
        present = self.list_databases(container, runner)
        if databases:
            missing = sorted(set(databases) - set(present))
            if missing:
                raise DumpFailed(
                    f"database(s) {', '.join(missing)} not found in {container.name}; "
                    f"it has: {', '.join(present)}"
                )
            selected = list(databases)
        else:
            selected = present
        jobs = self._jobs(container, runner)
        if jobs > 1:
            return self._parallel_dump(container, runner, selected, jobs)
        env = self.env_for(container)
        meta = json.dumps({"databases": selected, "user": self.user(container)}).encode()
        roles = RoleLines()
        counts: dict[str, int] = {}
        scanners = {database: Scanner(archive_reader(counts, database),
                                      f"the pg_dump of {database}") for database in selected}

        def members() -> Iterator[tuple[str, Iterable[bytes]]]:
            yield META_MEMBER, [meta]
            yield GLOBALS_MEMBER, roles.watch(dump_stream(
                runner.stream(container.id, ["pg_dumpall", "--globals-only",
                                             "-l", self.maintenance_db(container)], env=env),
                "pg_dumpall --globals-only",
            ))
            for database in selected:
                yield DATABASE_MEMBER_PREFIX + database, scanners[database].watch(dump_stream(
                    runner.stream(container.id, ["pg_dump", "--format=custom", "--compress=0",
                                                 "--dbname", database], env=env),
                    f"pg_dump of database {database}",
                ))

        def figures() -> Figures | None:
            whole = roles.complete and all(s.done and not s.failed for s in scanners.values())
            return _figures(selected, roles.roles, counts, DUMP_METHOD) if whole else None

        return Dump(databases=tuple(selected), chunks=pack(members()), figures=figures)

    def _jobs(self, container: DatabaseContainer, runner: ContainerExec) -> int:
        """``holdfast.jobs`` if the label is set, else :func:`auto_jobs`; 1 on a
        server older than the parallel dump needs."""
        labelled = dump_jobs(container)
        given = bool(container.labels.get(JOBS_LABEL, "").strip())
        if labelled == 1 and (given or not AUTO_PARALLEL):
            return 1
        result = runner.run(container.id, [
            "psql", "-X", "-A", "-t", "-d", self.maintenance_db(container), "-c",
            "SELECT current_setting('server_version_num') || ' ' || "
            "coalesce(sum(pg_database_size(datname)), 0) FROM pg_database "
            "WHERE datallowconn AND NOT datistemplate"], env=self.env_for(container), check=False)
        facts = result.stdout.decode().split()
        if result.exit_code != 0 or len(facts) != 2 or int(facts[0]) < PARALLEL_FROM:
            return 1
        if given:
            return labelled
        cpus = runner.run(container.id, ["sh", "-c", "nproc 2>/dev/null || echo 1"],
                          check=False).stdout.decode().strip()
        return auto_jobs(int(cpus) if cpus.isdigit() else 1, int(facts[1]))

    def _parallel_dump(self, container: DatabaseContainer, runner: ContainerExec,
                       selected: list[str], jobs: int) -> Dump:
        """Data format v2 (:mod:`backup.engines.pgparallel`): each database's
        tables dumped by ``jobs`` processes at once inside one exported snapshot."""
        env = self.env_for(container)
        work = ParallelDump(container, runner, env, jobs, self._sizes)
        roles = RoleLines()
        meta = json.dumps({"databases": selected, "user": self.user(container),
                           "jobs": jobs}).encode()

        def steps() -> Iterator[Step]:
            yield Sequential(META_MEMBER, [meta])
            yield Sequential(GLOBALS_MEMBER, roles.watch(dump_stream(
                runner.stream(container.id, ["pg_dumpall", "--globals-only",
                                             "-l", self.maintenance_db(container)], env=env),
                "pg_dumpall --globals-only")))
            for database in selected:
                yield from work.database_steps(database)

        def figures() -> Figures | None:
            if not (roles.complete and work.counts.complete()):
                return None
            return _figures(selected, roles.roles, work.counts.table_rows(), PARALLEL_METHOD)

        return Dump(databases=tuple(selected), chunks=multiplex.pack(steps()), figures=figures,
                    data_format=PARALLEL_FORMAT)

    def measure(self, container: DatabaseContainer, runner: ContainerExec,
                databases: Sequence[str] = ()) -> Figures:
        """Exact ``count(*)`` of every ordinary table of ``databases`` (every
        database when empty) and the roles in ``pg_roles`` but the built-in
        ``pg_*`` ones, named as the dump's figures are."""
        try:
            selected = list(databases) or self.list_databases(container, runner)
            roles = [role for role in self._roles(container, runner)
                     if not role.startswith("pg_")]
            counts: dict[str, int] = {}
            for database in selected:
                counts.update(self._count_tables(container, runner, database))
        except (DumpFailed, ExecFailed) as exc:
            raise RestoreFailed(f"cannot measure {container.name}: {exc}") from exc
        return _figures(selected, roles, counts, MEASURE_METHOD)

    def _count_tables(self, container: DatabaseContainer, runner: ContainerExec,
                      database: str) -> dict[str, int]:
        result = runner.run(
            container.id,
            ["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database,
             "-c", _COUNT_TABLES],
            env=self.env_for(container),
        )
        counts = {}
        for line in result.stdout.decode().split("\n"):
            if line:
                schema, table, rows = line.split(" ")
                counts[f"{database}.{_unhex(schema)}.{_unhex(table)}"] = int(rows)
        return counts

    # --- readiness ----------------------------------------------------------

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        result = runner.run(
            container.id,
            ["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-d",
             self.maintenance_db(container), "-c", "SELECT 1"],
            env=self.env_for(container, PGCONNECT_TIMEOUT="3"),
            check=False,
        )
        return result.exit_code == 0 and result.stdout.strip() == b"1"

    # --- restore ------------------------------------------------------------

    def restore(
        self, container: DatabaseContainer, runner: ContainerExec, chunks: Iterable[bytes]
    ) -> list[str]:
        parallel, chunks = multiplex.sniff(chunks)
        if parallel:
            return self._parallel_restore(container, runner, chunks)
        env = self.env_for(container)
        restored: list[str] = []
        members = unpack(chunks)
        first = next(members, None)
        if first is None or first.name != META_MEMBER:
            raise CorruptSnapshot("postgres snapshot does not start with its metadata member")
        expected = json.loads(first.read_small())["databases"]
        for member in members:
            if member.name == GLOBALS_MEMBER:
                existing = set(self._roles(container, runner))
                self._run_restore(
                    container, runner,
                    ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                     self.maintenance_db(container)],
                    _skip_existing_roles(member, existing), env, "roles (globals)",
                )
            elif member.name.startswith(DATABASE_MEMBER_PREFIX):
                database = member.name[len(DATABASE_MEMBER_PREFIX):]
                if database in self.list_databases(container, runner):
                    argv = ["pg_restore", "--exit-on-error", "--single-transaction",
                            "--dbname", database]
                else:
                    argv = ["pg_restore", "--exit-on-error", "--create",
                            "--dbname", self.maintenance_db(container)]
                self._run_restore(container, runner, argv, member, env, f"database {database}")
                restored.append(database)
            else:
                member.skip()
        if sorted(restored) != sorted(expected):
            raise CorruptSnapshot(
                f"postgres snapshot lists databases {expected} but holds {restored}"
            )
        return restored

    def _parallel_restore(self, container: DatabaseContainer, runner: ContainerExec,
                          chunks: Iterable[bytes]) -> list[str]:
        env = self.env_for(container)

        def restore_globals(data: Iterable[bytes]) -> None:
            existing = set(self._roles(container, runner))
            self._run_restore(container, runner,
                              ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                               self.maintenance_db(container)],
                              _skip_existing_roles(data, existing), env, "roles (globals)")

        work = ParallelRestore(container=container, runner=runner, env=env,
                               maintenance_db=self.maintenance_db(container),
                               jobs=restore_jobs(container), sizes=self._sizes,
                               existing=lambda: self.list_databases(container, runner),
                               restore_globals=restore_globals)
        multiplex.unpack(chunks, sequential=work.sequential, concurrent=work.concurrent)
        expected = work.meta.get("databases")
        if not isinstance(expected, list) or sorted(work.restored) != sorted(expected):
            raise CorruptSnapshot(
                f"postgres snapshot lists databases {expected} but holds {work.restored}")
        return work.restored

    def _roles(self, container: DatabaseContainer, runner: ContainerExec) -> list[str]:
        result = runner.run(
            container.id,
            ["psql", "-X", "-A", "-t", "-d", self.maintenance_db(container), "-c",
             "SELECT encode(convert_to(rolname, getdatabaseencoding()), 'hex') FROM pg_roles"],
            env=self.env_for(container),
        )
        return [_unhex(line) for line in result.stdout.decode().split()]

    @staticmethod
    def _run_restore(
        container: DatabaseContainer,
        runner: ContainerExec,
        argv: list[str],
        chunks: Iterable[bytes],
        env: Mapping[str, str],
        what: str,
    ) -> None:
        try:
            runner.run(container.id, argv, env=env, stdin=chunks)
        except ExecFailed as exc:
            raise RestoreFailed(f"restoring {what} into {container.name} failed: {exc}") from exc


def dump_jobs(container: DatabaseContainer) -> int:
    """How many processes dump at once: the ``holdfast.jobs`` label (1, the
    default, is the sequential v1 format). Raises :class:`DumpFailed` for a bad value."""
    try:
        return parse_jobs(container.labels.get(JOBS_LABEL))
    except ValueError as exc:
        raise DumpFailed(f"label holdfast.jobs {exc} (container {container.name})") from None


def dump_mode(container: DatabaseContainer) -> str:
    """``logical`` or ``physical``: the ``holdfast.mode`` label. Raises
    :class:`DumpFailed` for a bad value."""
    try:
        return parse_mode(container.labels.get(MODE_LABEL))
    except ValueError as exc:
        raise DumpFailed(f"label holdfast.mode {exc} (container {container.name})") from None


AUTO_PARALLEL_FROM = 1024**3
"""Databases (their sum) from this size could be dumped in parallel by default."""
AUTO_MAX_JOBS = 4
AUTO_PARALLEL = False
"""Off: measured on 2 cores (bench/restore_postgres.py, pgbench 1.1 GB), a
parallel snapshot backs up about twice as fast but restores slower than a
sequential one (concurrent COPYs into one table contend for its extension lock
on Postgres 15 and for the two cores), so the default stays one process until
a restore of it is faster too. ``holdfast.jobs`` turns it on per instance."""


def auto_jobs(cpus: int, database_bytes: int) -> int:
    """The default degree of a dump: 1 while :data:`AUTO_PARALLEL` is off;
    else one process per CPU of the container, up to :data:`AUTO_MAX_JOBS`,
    for databases of :data:`AUTO_PARALLEL_FROM` or more."""
    if not AUTO_PARALLEL or database_bytes < AUTO_PARALLEL_FROM:
        return 1
    return max(1, min(cpus, AUTO_MAX_JOBS))


def restore_jobs(container: DatabaseContainer) -> int:
    """How many indexes and constraints a restore builds at once: the new
    container's ``holdfast.jobs`` if it is more than 1, else 2."""
    try:
        jobs = parse_jobs(container.labels.get(JOBS_LABEL))
    except ValueError:
        jobs = 1
    return jobs if jobs > 1 else 2


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-8", "surrogateescape")


def _figures(databases: Sequence[str], roles: Sequence[str], counts: dict[str, int],
             method: str) -> Figures:
    values: dict[str, int | str] = {f"database:{name}": 1 for name in databases}
    values.update({f"role:{name}": 1 for name in roles})
    values.update(counts)
    return Figures(kind="tables", values=values, method=method)


def _skip_existing_roles(chunks: Iterable[bytes], existing: set[str]) -> Iterator[bytes]:
    """Drop ``CREATE ROLE x;`` for roles the fresh container already has (its
    bootstrap superuser), so the globals load with ON_ERROR_STOP and still set
    the role's attributes and password through the ``ALTER ROLE`` that follows."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = [line for line in lines if not _creates_existing(line, existing)]
        if kept:
            yield b"\n".join(kept) + b"\n"
    if pending and not _creates_existing(pending, existing):
        yield pending


def _creates_existing(line: bytes, existing: set[str]) -> bool:
    match = _CREATE_ROLE.match(line.decode(errors="replace"))
    return bool(match and match.group(1) in existing)
