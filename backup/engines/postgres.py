"""PostgreSQL: ``pg_dumpall --globals-only`` plus one custom-format ``pg_dump``
per database, run inside the container with its own binaries.

Using the container's binaries means the dump tools always match the server
version. Credentials follow the official image's conventions
(``POSTGRES_USER``/``POSTGRES_PASSWORD``/``POSTGRES_DB``) and reach the tools
through the exec environment (``PGPASSWORD``), never argv. Dumps are taken
uncompressed (``-Z0``) because the pipeline compresses the whole stream with
zstd; compressing twice only burns CPU.

Readiness is judged over TCP on 127.0.0.1 with a real authenticated query: the
official image's init-time temporary server listens on the unix socket only,
so this check cannot pass until the final server is up.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

from backup.engines.base import Dump
from backup.engines.connections import postgres_url
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    ExecFailed,
    MissingCredentials,
    RestoreFailed,
    last_line,
)
from backup.framing import pack, unpack
from backup.ports import ContainerExec
from backup.types import DatabaseContainer

SOCKET_DIR = "/var/run/postgresql"
GLOBALS_MEMBER = "globals.sql"
META_MEMBER = "meta.json"
DATABASE_MEMBER_PREFIX = "db/"
_CREATE_ROLE = re.compile(r'^CREATE ROLE "?([^";]+)"?;\s*$')


class PostgresEngine:
    name: ClassVar[str] = "postgres"
    data_format: ClassVar[str] = "holdfast-postgres-v1"
    loads_before_start: ClassVar[bool] = False
    service_port: ClassVar[int | None] = 5432

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        return postgres_url(env, secret_names, host=host, port=port)

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        return [container.env.get("PGDATA") or "/var/lib/postgresql/data"]

    # --- credentials --------------------------------------------------------

    @staticmethod
    def _user(container: DatabaseContainer) -> str:
        return container.env.get("POSTGRES_USER") or "postgres"

    @staticmethod
    def _maintenance_db(container: DatabaseContainer) -> str:
        return container.env.get("POSTGRES_DB") or PostgresEngine._user(container)

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

    def _env(self, container: DatabaseContainer, **extra: str) -> dict[str, str]:
        env = {"PGUSER": self._user(container), "PGHOST": SOCKET_DIR, **extra}
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
             self._maintenance_db(container), "-c", query],
            env=self._env(container),
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
        env = self._env(container)
        meta = json.dumps({"databases": selected, "user": self._user(container)}).encode()

        def members() -> Iterator[tuple[str, Iterable[bytes]]]:
            yield META_MEMBER, [meta]
            yield GLOBALS_MEMBER, self._checked(
                runner.stream(container.id, ["pg_dumpall", "--globals-only",
                                             "-l", self._maintenance_db(container)], env=env),
                "pg_dumpall --globals-only",
            )
            for database in selected:
                yield DATABASE_MEMBER_PREFIX + database, self._checked(
                    runner.stream(container.id, ["pg_dump", "--format=custom", "--compress=0",
                                                 "--dbname", database], env=env),
                    f"pg_dump of database {database}",
                )

        return Dump(databases=tuple(selected), chunks=pack(members()))

    @staticmethod
    def _checked(chunks: Iterator[bytes], what: str) -> Iterator[bytes]:
        try:
            yield from chunks
        except ExecFailed as exc:
            raise DumpFailed(exc.describe(what)) from exc

    # --- readiness ----------------------------------------------------------

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        result = runner.run(
            container.id,
            ["psql", "-X", "-A", "-t", "-h", "127.0.0.1", "-d",
             self._maintenance_db(container), "-c", "SELECT 1"],
            env=self._env(container, PGCONNECT_TIMEOUT="3"),
            check=False,
        )
        return result.exit_code == 0 and result.stdout.strip() == b"1"

    # --- restore ------------------------------------------------------------

    def restore(
        self, container: DatabaseContainer, runner: ContainerExec, chunks: Iterable[bytes]
    ) -> list[str]:
        env = self._env(container)
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
                     self._maintenance_db(container)],
                    _skip_existing_roles(member, existing), env, "roles (globals)",
                )
            elif member.name.startswith(DATABASE_MEMBER_PREFIX):
                database = member.name[len(DATABASE_MEMBER_PREFIX):]
                if database in self.list_databases(container, runner):
                    argv = ["pg_restore", "--exit-on-error", "--single-transaction",
                            "--dbname", database]
                else:
                    argv = ["pg_restore", "--exit-on-error", "--create",
                            "--dbname", self._maintenance_db(container)]
                self._run_restore(container, runner, argv, member, env, f"database {database}")
                restored.append(database)
            else:
                member.skip()
        if sorted(restored) != sorted(expected):
            raise CorruptSnapshot(
                f"postgres snapshot lists databases {expected} but holds {restored}"
            )
        return restored

    def _roles(self, container: DatabaseContainer, runner: ContainerExec) -> list[str]:
        result = runner.run(
            container.id,
            ["psql", "-X", "-A", "-t", "-d", self._maintenance_db(container), "-c",
             "SELECT rolname FROM pg_roles"],
            env=self._env(container),
        )
        return result.stdout.decode().split()

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
