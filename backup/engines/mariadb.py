"""MariaDB and MySQL: one ``mariadb-dump`` (or ``mysqldump``) run for every
selected database, loaded back through the ``mariadb`` (or ``mysql``) client.

Dump: a single dump process covers all selected databases (every database
but ``information_schema``, ``performance_schema``, ``mysql`` and ``sys``
unless ``holdfast.databases`` names some), so ``--single-transaction`` gives
one consistent InnoDB snapshot across all of them; tables, views, routines,
triggers and events are included (``--routines --triggers --events``),
binary columns as hex (``--hex-blob``), without ``LOCK TABLES`` and without
tablespace statements, which need privileges an application user lacks.
Non-transactional tables (MyISAM, Aria) and DDL running during the dump are
not covered by the snapshot, as with any ``--single-transaction`` dump. The
container's own tools are used, so they always match the server; MariaDB
images since 11.x ship only the ``mariadb-*`` names and MySQL images only
the ``mysql*`` ones, so the tool is looked up in the container (the
``mysql`` engine prefers the ``mysql*`` names). The dump must end with the
tool's ``-- Dump completed`` line, so a stream that stopped early never
passes for a complete one.

Accounts: when the dump runs as root with MariaDB's dump tool, the server's
accounts, roles and grants are captured too (``--system=users``). On
restore, statements about accounts that already exist in the fresh container
are skipped: its own initialisation created root, ``mariadb.sys``, the
healthcheck users and ``MARIADB_USER`` from the same environment, and their
passwords must stay those the container was configured with. Every other
account is created with its password hash, roles and grants; a grant that
cannot be applied (a table-level grant on a table that no longer exists, or
one of a database that was not selected) is logged as a warning and does not
fail the restore. Oracle's mysqldump cannot dump accounts, so a ``mysql``
snapshot taken with it holds the databases only.

Credentials follow the official images: ``MARIADB_ROOT_PASSWORD`` or
``MYSQL_ROOT_PASSWORD`` (or their ``_FILE`` variants) make Holdfast connect
as root; ``MARIADB_ALLOW_EMPTY_ROOT_PASSWORD``/``MYSQL_ALLOW_EMPTY_PASSWORD``
as root without a password; otherwise ``MARIADB_USER``/``MARIADB_PASSWORD``
(or the ``MYSQL_`` names) as that user, who sees only its own databases. The
password reaches the tools only as ``MYSQL_PWD`` in the exec environment,
never argv; a ``_FILE`` secret is read inside the container by the shell that
then execs the tool, so Holdfast never sees it at all. Dumps and restores
connect over the unix socket, where ``root@localhost`` always exists, whatever
``MARIADB_ROOT_HOST`` says.

Readiness: the official images initialise with a temporary server started
with ``--skip-networking``, so an authenticated TCP query on 127.0.0.1 is
the check; when TCP is refused (root restricted to ``localhost``, another
port), an authenticated query on the socket that finds ``skip_networking``
off proves the same thing, since only the final server has networking.

Restore: the archive (``meta.json``, ``dump.sql``, then ``accounts.sql`` if
captured) is streamed into the client with ``--binary-mode``. If the
snapshot turns out truncated or unreadable part way, the client is let to
finish on what it has (a cut statement fails), the databases the restore
created are dropped again, and :class:`~backup.errors.CorruptSnapshot` is
raised; accounts are loaded only once the whole archive has been read.
Both engines write and read the same archive (``holdfast-mariadb-v1``);
``meta.json`` records which tool made it. The dump's figures are the rows of
each table, counted in its INSERTs as it streams (:mod:`backup.engines.sqlscan`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from backup.engines.base import Dump
from backup.engines.connections import mysql_url
from backup.engines.sqlscan import RowCounter
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    ExecFailed,
    MissingCredentials,
    NotFound,
    RestoreFailed,
    last_line,
)
from backup.figures import Figures
from backup.framing import pack, unpack
from backup.ports import ContainerExec, ExecResult
from backup.types import DatabaseContainer

logger = logging.getLogger(__name__)

DATA_DIR = "/var/lib/mysql"
DATA_FORMAT = "holdfast-mariadb-v1"
META_MEMBER = "meta.json"
SQL_MEMBER = "dump.sql"
ACCOUNTS_MEMBER = "accounts.sql"
SYSTEM_SCHEMAS = ("information_schema", "performance_schema", "mysql", "sys")
ACCOUNTS_LIMIT = 64 * 1024 * 1024
PASSWORD_FILE_VAR = "HOLDFAST_PASSWORD_FILE"
# Written last by mariadb-dump and mysqldump (with --skip-dump-date, exactly this).
_TRAILER = b"-- Dump completed"
# Both dump tools and both clients accept these; 1G is the protocol's maximum,
# so a large row never fails on the client side.
_PACKET = "--max-allowed-packet=1G"
MEASURE_METHOD = "SELECT COUNT(*) of every base table"
_COUNT_BATCH = 200

# Reads a _FILE secret inside the container (the value never leaves it), then
# runs the first of the tools that is installed; `exec` keeps the tool itself
# as the process `docker top` shows, with no password on its command line.
_LAUNCH = (
    f'if [ -n "${{{PASSWORD_FILE_VAR}:-}}" ]; then '
    f'MYSQL_PWD="$(cat -- "${PASSWORD_FILE_VAR}")" || exit 2; '
    f"export MYSQL_PWD; unset {PASSWORD_FILE_VAR}; fi; "
    'for tool in {tools}; do if command -v "$tool" >/dev/null 2>&1; then '
    'exec "$tool" "$@"; fi; done; '
    'echo "none of {tools} is installed in the container" >&2; exit 127'
)
_FIND_TOOL = (
    'for tool in "$@"; do if command -v "$tool" >/dev/null 2>&1; then '
    'echo "$tool"; exec "$tool" --version; fi; done; exit 127'
)
_ACCOUNT = re.compile(r"`((?:[^`]|``)*)`@`((?:[^`]|``)*)`|'((?:[^'\\]|\\.)*)'@'((?:[^'\\]|\\.)*)'")
_PASSWORD_TEXT = re.compile(r"(PASSWORD\s*(?:\(\s*)?|USING\s+|AS\s+)'(?:[^'\\]|\\.)*'", re.I)


# --- credentials ----------------------------------------------------------


@dataclass(frozen=True)
class EnvNames:
    """The variable names of one image family's conventions."""

    root_password: str
    allow_empty: str
    random_root: str
    user: str
    password: str


MARIADB_ENV = EnvNames("MARIADB_ROOT_PASSWORD", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD",
                       "MARIADB_RANDOM_ROOT_PASSWORD", "MARIADB_USER", "MARIADB_PASSWORD")
MYSQL_ENV = EnvNames("MYSQL_ROOT_PASSWORD", "MYSQL_ALLOW_EMPTY_PASSWORD",
                     "MYSQL_RANDOM_ROOT_PASSWORD", "MYSQL_USER", "MYSQL_PASSWORD")


@dataclass(frozen=True)
class Credentials:
    """Who Holdfast connects as, and where the password comes from."""

    user: str
    source: str
    """The variable(s) it was read from, for messages (never the value)."""
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    """A path inside the container holding the password (a ``*_FILE`` variable)."""

    def exec_env(self) -> dict[str, str]:
        if self.password is not None:
            return {"MYSQL_PWD": self.password}
        if self.password_file is not None:
            return {PASSWORD_FILE_VAR: self.password_file}
        return {}


def resolve_credentials(env: Mapping[str, str], order: Sequence[EnvNames]) -> Credentials | None:
    """The account to connect as, from a container's environment, or None.

    Root first, because it sees every database and the accounts: a root
    password (the earlier family in ``order`` wins, as the MARIADB_ names win
    in the official mariadb image), then an allowed empty root password, then
    the application user with its password. Empty values count as unset,
    like the images' ``[ -z ... ]`` tests.
    """
    for names in order:
        if env.get(names.root_password):
            return Credentials("root", names.root_password, password=env[names.root_password])
        if env.get(names.root_password + "_FILE"):
            return Credentials("root", names.root_password + "_FILE",
                               password_file=env[names.root_password + "_FILE"])
    for names in order:
        if env.get(names.allow_empty):
            return Credentials("root", names.allow_empty)
    user_var = next((names.user for names in order if env.get(names.user)), None)
    if user_var is None:
        return None
    for names in order:
        if env.get(names.password):
            return Credentials(env[user_var], f"{user_var}/{names.password}",
                               password=env[names.password])
        if env.get(names.password + "_FILE"):
            return Credentials(env[user_var], f"{user_var}/{names.password}_FILE",
                               password_file=env[names.password + "_FILE"])
    return None


# --- pure helpers -----------------------------------------------------------


def quote_identifier(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def parse_hex_lines(output: bytes) -> list[str]:
    """Names selected as ``HEX(name)``, one per line: immune to tabs, newlines
    or any other byte a database name may contain."""
    return [bytes.fromhex(line).decode("utf-8", "surrogateescape")
            for line in output.decode("ascii").split()]


def _account_of(match: re.Match[str]) -> tuple[str, str]:
    if match.group(1) is not None:
        user, host = match.group(1).replace("``", "`"), match.group(2).replace("``", "`")
    else:
        user = re.sub(r"\\(.)", r"\1", match.group(3))
        host = re.sub(r"\\(.)", r"\1", match.group(4))
    return user, host.lower()


def skip_existing_accounts(sql: bytes, existing: set[tuple[str, str]]) -> tuple[bytes, int]:
    """Drop the statements of an accounts dump that are about accounts the
    target already has; returns the script and how many statements were dropped.

    mariadb-dump writes one statement per line, and the account a statement is
    about is the last ``user@host`` on it (``CREATE USER IF NOT EXISTS u@h``,
    ``GRANT ... ON ... TO u@h [IDENTIFIED BY PASSWORD '...']``, ``SET DEFAULT
    ROLE r FOR u@h``, ``GRANT PROXY ON x@y TO u@h``). Hosts compare without
    case, as the server compares them.
    """
    existing = {(user, host.lower()) for user, host in existing}
    kept: list[str] = []
    dropped = 0
    for line in sql.decode("utf-8", "surrogateescape").split("\n"):
        accounts = [_account_of(match) for match in _ACCOUNT.finditer(line)]
        if accounts and accounts[-1] in existing:
            dropped += 1
            continue
        kept.append(line)
    return "\n".join(kept).encode("utf-8", "surrogateescape"), dropped


def redact_passwords(text: str) -> str:
    """Client error lines can quote the statement; keep hashes out of logs."""
    return _PASSWORD_TEXT.sub(lambda m: m.group(1) + "'<redacted>'", text)


def is_mariadb_tool(version: str) -> bool:
    """``mariadb-dump from 11.4.2-MariaDB`` / ``mysqldump  Ver 10.19 Distrib
    10.11.6-MariaDB`` versus Oracle's ``mysqldump  Ver 8.0.36 for Linux``."""
    return "mariadb" in version.lower()


@dataclass(frozen=True)
class DumpTool:
    name: str
    version: str

    @property
    def mariadb(self) -> bool:
        return is_mariadb_tool(self.version)


def dump_arguments(tool: DumpTool, user: str, databases: Sequence[str]) -> list[str]:
    """Arguments of the one dump run covering ``databases`` (after the tool name)."""
    args = [
        f"--user={user}", "--protocol=socket", "--default-character-set=utf8mb4",
        # One consistent InnoDB snapshot for every database; LOCK TABLES would
        # be pointless with it and needs a privilege users often lack.
        "--single-transaction", "--skip-lock-tables", "--quick",
        "--routines", "--triggers", "--events", "--hex-blob",
        # Tablespace statements need the PROCESS privilege and a fresh server
        # has its own tablespaces; the date would make the trailer variable.
        "--no-tablespaces", "--skip-dump-date", _PACKET,
    ]
    if not tool.mariadb:
        # With GTIDs on, Oracle's tool writes SET @@GLOBAL.GTID_PURGED, which
        # fails on a fresh server that has executed transactions of its own.
        args.append("--set-gtid-purged=OFF")
    # "--" so that a database named like an option is still a database.
    return [*args, "--databases", "--", *databases]


def accounts_arguments(user: str) -> list[str]:
    # --insert-ignore makes it CREATE USER/ROLE IF NOT EXISTS.
    return [f"--user={user}", "--protocol=socket", "--default-character-set=utf8mb4",
            "--system=users", "--insert-ignore", "--skip-dump-date", _PACKET]


def launch_argv(tools: Sequence[str], args: Sequence[str]) -> list[str]:
    """``sh -c`` running the first installed of ``tools`` with ``args``; the
    tool names are this module's constants, never user input."""
    return ["sh", "-c", _LAUNCH.replace("{tools}", " ".join(tools)), tools[0], *args]


# --- the engines -------------------------------------------------------------


class _StopOnError:
    """Feeds a chunk stream to a process, but ends the stream quietly instead
    of raising when reading it fails, and keeps the error: the process then
    sees end of input and exits, and the caller raises once it has, so no
    cleanup races a client that is still loading."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except Exception as exc:  # re-raised by the caller after the load ended
            self.error = exc


class MariaDBEngine:
    name: ClassVar[str] = "mariadb"
    data_format: ClassVar[str] = DATA_FORMAT
    read_formats: ClassVar[tuple[str, ...]] = (data_format,)
    loads_before_start: ClassVar[bool] = False

    env_order: ClassVar[tuple[EnvNames, ...]] = (MARIADB_ENV, MYSQL_ENV)
    dump_tools: ClassVar[tuple[str, ...]] = ("mariadb-dump", "mysqldump")
    clients: ClassVar[tuple[str, ...]] = ("mariadb", "mysql")
    service_port: ClassVar[int | None] = 3306

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        return mysql_url(env, secret_names, host=host, port=port,
                         families=tuple(names.user.split("_")[0] for names in self.env_order))

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        return [DATA_DIR]

    # --- credentials --------------------------------------------------------

    def credentials(self, container: DatabaseContainer) -> Credentials:
        found = resolve_credentials(container.env, self.env_order)
        if found is not None:
            return found
        first = self.env_order[0]
        random = any(container.env.get(names.random_root) for names in self.env_order)
        why = (f"its root password is random ({first.random_root}), so Holdfast needs "
               f"{first.user} and {first.password}"
               if random else
               f"set {first.root_password} (or {first.user} and {first.password})")
        raise MissingCredentials(
            f"container {container.name} has no database credentials in its environment: "
            f"{why}, the official image's convention")

    def check(self, container: DatabaseContainer) -> None:
        self.credentials(container)

    def _hint(self, creds: Credentials, text: str) -> str:
        if "Access denied" in text:
            return (f"; Holdfast connected as {creds.user} with the password from "
                    f"{creds.source}, which the server does not accept")
        return ""

    def _client(self, container: DatabaseContainer, runner: ContainerExec, creds: Credentials,
                args: Sequence[str], *, stdin: Iterable[bytes] | None = None) -> ExecResult:
        argv = launch_argv(self.clients, [f"--user={creds.user}",
                                          "--default-character-set=utf8mb4", *args])
        return runner.run(container.id, argv, env=creds.exec_env(), stdin=stdin, check=False)

    def _query(self, container: DatabaseContainer, runner: ContainerExec, creds: Credentials,
               sql: str) -> ExecResult:
        return self._client(container, runner, creds,
                            ["--protocol=socket", "--batch", "--skip-column-names", "-e", sql])

    # --- dump ---------------------------------------------------------------

    def find_dump_tool(self, container: DatabaseContainer, runner: ContainerExec) -> DumpTool:
        result = runner.run(container.id, ["sh", "-c", _FIND_TOOL, "sh", *self.dump_tools],
                            check=False)
        lines = result.stdout.decode(errors="replace").splitlines()
        if result.exit_code != 0 or not lines:
            raise DumpFailed(f"none of {', '.join(self.dump_tools)} works in container "
                             f"{container.name}: {last_line(result.stderr) or result.exit_code}")
        return DumpTool(lines[0].strip(), " ".join(lines[1:]).strip())

    def list_databases(self, container: DatabaseContainer, runner: ContainerExec,
                       creds: Credentials | None = None) -> list[str]:
        """User databases the credentials can see, sorted."""
        creds = creds or self.credentials(container)
        excluded = ", ".join(f"'{name}'" for name in SYSTEM_SCHEMAS)
        result = self._query(container, runner, creds,
                             "SELECT HEX(SCHEMA_NAME) FROM information_schema.SCHEMATA "
                             f"WHERE SCHEMA_NAME NOT IN ({excluded}) ORDER BY SCHEMA_NAME")
        if result.exit_code != 0:
            raise DumpFailed(
                f"cannot list databases in {container.name}: "
                f"{last_line(result.stderr) or f'client exited {result.exit_code}'}"
                + self._hint(creds, result.stderr))
        return parse_hex_lines(result.stdout)

    def dump(
        self, container: DatabaseContainer, runner: ContainerExec, databases: Sequence[str] = ()
    ) -> Dump:
        creds = self.credentials(container)
        present = self.list_databases(container, runner, creds)
        if databases:
            missing = sorted(set(databases) - set(present))
            if missing:
                raise DumpFailed(
                    f"database(s) {', '.join(missing)} not found in {container.name} "
                    f"(as user {creds.user}); it has: {', '.join(present) or 'none'}")
            selected = list(dict.fromkeys(databases))
        else:
            selected = present
        if not selected:
            raise DumpFailed(f"{container.name} has no user databases that {creds.user} can "
                             "see; there is nothing to back up")
        tool = self.find_dump_tool(container, runner)
        accounts = creds.user == "root" and tool.mariadb
        meta = json.dumps({
            "format": DATA_FORMAT, "databases": selected, "user": creds.user,
            "tool": tool.name, "tool_version": tool.version, "accounts": accounts,
        }).encode()
        env = creds.exec_env()
        counter = RowCounter()

        def members() -> Iterator[tuple[str, Iterable[bytes]]]:
            yield META_MEMBER, [meta]
            yield SQL_MEMBER, counter.watch(self._checked(
                runner.stream(container.id, launch_argv(
                    [tool.name], dump_arguments(tool, creds.user, selected)), env=env),
                f"{tool.name} of {', '.join(selected)}", creds))
            if accounts:
                yield ACCOUNTS_MEMBER, self._checked(
                    runner.stream(container.id, launch_argv(
                        [tool.name], accounts_arguments(creds.user)), env=env),
                    f"{tool.name} --system=users", creds)

        return Dump(databases=tuple(selected), chunks=pack(members()),
                    figures=lambda: counter.figures() if counter.complete else None)

    def measure(self, container: DatabaseContainer, runner: ContainerExec,
                databases: Sequence[str] = ()) -> Figures:
        """``SELECT COUNT(*)`` of every base table of ``databases`` (every
        user database when empty), as ``db.table`` -> rows. CHECKSUM TABLE
        is not taken: on InnoDB it reads every row, and the dump side could
        not compute the same sum from the SQL without a second scan."""
        creds = self.credentials(container)
        try:
            selected = list(databases) or self.list_databases(container, runner, creds)
        except DumpFailed as exc:
            raise RestoreFailed(str(exc)) from exc
        wanted = ", ".join(f"'{name.encode('utf-8', 'surrogateescape').hex().upper()}'"
                           for name in selected) or "''"
        listing = self._measured(container, runner, creds, (
            "SELECT HEX(TABLE_SCHEMA), HEX(TABLE_NAME) FROM information_schema.TABLES "
            "WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') "
            f"AND HEX(TABLE_SCHEMA) IN ({wanted})"))
        names = parse_hex_lines(listing)
        tables = list(zip(names[::2], names[1::2], strict=True))
        rows: dict[str, int] = {}
        for start in range(0, len(tables), _COUNT_BATCH):
            batch = tables[start:start + _COUNT_BATCH]
            query = " UNION ALL ".join(
                f"SELECT {index}, COUNT(*) FROM {quote_identifier(db)}.{quote_identifier(table)}"
                for index, (db, table) in enumerate(batch))
            for line in self._measured(container, runner, creds, query).decode().splitlines():
                index, count = line.split("\t")
                db, table = batch[int(index)]
                rows[f"{db}.{table}"] = int(count)
        return Figures(kind="tables", values=rows, method=MEASURE_METHOD)

    def _measured(self, container: DatabaseContainer, runner: ContainerExec,
                  creds: Credentials, sql: str) -> bytes:
        result = self._query(container, runner, creds, sql)
        if result.exit_code != 0:
            raise RestoreFailed(f"cannot count the rows of {container.name}: "
                                f"{last_line(result.stderr) or result.exit_code}")
        return result.stdout

    def _checked(self, chunks: Iterator[bytes], what: str,
                 creds: Credentials) -> Iterator[bytes]:
        seen = 0
        tail = b""
        try:
            for chunk in chunks:
                seen += len(chunk)
                tail = (tail + chunk[-256:])[-256:]
                yield chunk
        except ExecFailed as exc:
            raise DumpFailed(exc.describe(what) + self._hint(creds, exc.stderr_tail)) from exc
        except NotFound as exc:
            # The adapter turns a container lost mid-dump into ExecFailed; this
            # is one removed before the dump's exec could even be created.
            raise DumpFailed(f"{what} lost its container: {exc}") from exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        if seen == 0:
            raise DumpFailed(f"{what} produced no data")
        if _TRAILER not in tail:
            raise DumpFailed(f"{what} ended without its '-- Dump completed' line; "
                             "the dump is incomplete")

    # --- readiness ----------------------------------------------------------

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        creds = self.credentials(container)
        try:
            tcp = self._client(container, runner, creds, [
                "--protocol=tcp", "--host=127.0.0.1", "--connect-timeout=3",
                "--batch", "--skip-column-names", "-e", "SELECT 1"])
            if tcp.exit_code == 0 and tcp.stdout.strip() == b"1":
                return True
            # Only the final server has networking; a socket query that says so
            # (with the same credentials) proves it is up and accepts them.
            sock = self._query(container, runner, creds, "SELECT @@skip_networking")
        except ExecFailed:
            return False
        return sock.exit_code == 0 and sock.stdout.strip() == b"0"

    # --- restore ------------------------------------------------------------

    def restore(
        self, container: DatabaseContainer, runner: ContainerExec, chunks: Iterable[bytes]
    ) -> list[str]:
        creds = self.credentials(container)
        members = unpack(chunks)
        first = next(members, None)
        if first is None or first.name != META_MEMBER:
            raise CorruptSnapshot(f"{self.name} snapshot does not start with its metadata member")
        try:
            meta = json.loads(first.read_small())
            expected = [str(name) for name in meta["databases"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptSnapshot(f"{self.name} snapshot metadata is unreadable: {exc}") from exc
        sql = next(members, None)
        if sql is None or sql.name != SQL_MEMBER:
            raise CorruptSnapshot(f"{self.name} snapshot has no {SQL_MEMBER} member")
        try:
            before = set(self.list_databases(container, runner, creds))
        except DumpFailed as exc:
            raise RestoreFailed(str(exc)) from exc
        created = [name for name in expected if name not in before]
        accounts: bytes | None = None
        try:
            self._load(container, runner, creds, sql)
            for member in members:  # reaches the end record: a truncated archive raises
                if member.name == ACCOUNTS_MEMBER:
                    accounts = member.read_small(ACCOUNTS_LIMIT)
                else:
                    member.skip()
            after = set(self.list_databases(container, runner, creds))
            missing = [name for name in expected if name not in after]
            if missing:
                raise RestoreFailed(f"after loading the dump, {container.name} lacks "
                                    f"database(s) {', '.join(missing)}")
        except DumpFailed as exc:
            self._drop(container, runner, creds, created)
            raise RestoreFailed(str(exc)) from exc
        except BaseException:
            self._drop(container, runner, creds, created)
            raise
        if accounts is not None:
            self._load_accounts(container, runner, creds, accounts)
        return expected

    def _load(self, container: DatabaseContainer, runner: ContainerExec, creds: Credentials,
              sql: Iterable[bytes]) -> None:
        feed = _StopOnError(sql)
        try:
            result = self._client(container, runner, creds, [
                "--protocol=socket", "--binary-mode", "--batch", _PACKET], stdin=feed)
        except ExecFailed as exc:
            raise RestoreFailed(f"loading the dump into {container.name} failed: {exc}") from exc
        if feed.error is not None:
            # The snapshot is at fault, whatever the client made of its cut input.
            raise feed.error
        if result.exit_code != 0:
            raise RestoreFailed(
                f"loading the dump into {container.name} failed: "
                f"{last_line(result.stderr) or f'client exited {result.exit_code}'}"
                + self._hint(creds, result.stderr))

    def _drop(self, container: DatabaseContainer, runner: ContainerExec, creds: Credentials,
              databases: Sequence[str]) -> None:
        """Best effort: a failed restore leaves no half-loaded database it created."""
        if not databases:
            return
        script = "".join(f"DROP DATABASE IF EXISTS {quote_identifier(name)};\n"
                         for name in databases).encode()
        try:
            result = self._client(container, runner, creds,
                                  ["--protocol=socket", "--batch", "--force"], stdin=[script])
        except ExecFailed as exc:
            logger.warning("could not drop the partly restored databases in %s: %s",
                           container.name, exc)
            return
        if result.exit_code != 0 or "ERROR" in result.stderr:
            logger.warning("could not drop the partly restored databases in %s: %s",
                           container.name, last_line(result.stderr))

    def _load_accounts(self, container: DatabaseContainer, runner: ContainerExec,
                       creds: Credentials, sql: bytes) -> None:
        listing = self._query(container, runner, creds,
                              "SELECT HEX(User), HEX(Host) FROM mysql.user")
        if listing.exit_code != 0:
            raise RestoreFailed(f"cannot list the accounts of {container.name}: "
                                f"{last_line(listing.stderr)}")
        names = parse_hex_lines(listing.stdout)
        existing = {(user, host.lower()) for user, host in zip(names[::2], names[1::2],
                                                                  strict=True)}
        script, skipped = skip_existing_accounts(sql, existing)
        logger.debug("restoring accounts into %s; %d statement(s) skipped for accounts "
                     "it already has", container.name, skipped)
        # --force: one grant that no longer applies must not cost the others.
        result = self._client(container, runner, creds,
                              ["--protocol=socket", "--binary-mode", "--batch", "--force"],
                              stdin=[script])
        errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR")]
        if result.exit_code != 0 and not errors:
            raise RestoreFailed(f"restoring the accounts into {container.name} failed: "
                                f"{last_line(result.stderr) or result.exit_code}")
        if errors:
            logger.warning("restoring accounts into %s: %d statement(s) failed, first: %s",
                           container.name, len(errors), redact_passwords(errors[0]))


class MySQLEngine(MariaDBEngine):
    """The same engine for MySQL images: ``mysqldump``/``mysql`` and the
    ``MYSQL_*`` variables first (MariaDB's names still work as fallbacks)."""

    name: ClassVar[str] = "mysql"
    env_order: ClassVar[tuple[EnvNames, ...]] = (MYSQL_ENV, MARIADB_ENV)
    dump_tools: ClassVar[tuple[str, ...]] = ("mysqldump", "mariadb-dump")
    clients: ClassVar[tuple[str, ...]] = ("mysql", "mariadb")
