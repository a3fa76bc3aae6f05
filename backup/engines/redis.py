"""Redis: one consistent RDB streamed by ``redis-cli --rdb -``, loaded back
through a temporary server and replication.

Dump: ``redis-cli --rdb -`` (redis 7.0+) asks the server for a replication
snapshot (``REPLCONF rdb-only``) and writes the RDB to stdout, so nothing is
written to the container's disk and the snapshot is a point in time. The
archive holds ``meta.json`` (the databases and key counts seen by ``INFO
keyspace`` just before the dump) and ``dump.rdb``. The dump's figures
(:mod:`backup.figures`) are the keys without a TTL per database, counted in
the RDB as it streams (:mod:`backup.engines.rdbscan`), so they are exactly
what the snapshot holds; if the RDB does not parse (a value type of a newer
Redis), the ``INFO`` counts stand in, and the method says so.

Credentials: the password comes from a ``--requirepass X`` argument in the
container's command (how users of the official image set one) or else from
``REDIS_PASSWORD`` in its environment. It reaches redis-cli as
``REDISCLI_AUTH`` in the exec environment, never on argv.

Restore: a running server only reads an RDB at startup, ``DEBUG RELOAD`` is
refused by default since 7.0 (``enable-debug-command no``, immutable), and
``SHUTDOWN`` would end the container the restore runner just started. So the
RDB is written to a private directory in the container and a temporary
``redis-server`` (the container's own binary, loopback only, no persistence)
loads it on a spare port; the real server is made its replica with
``REPLICAOF``, which replaces its (fresh, empty) dataset with the temporary
server's, TTLs included; then ``REPLICAOF NO ONE`` promotes it again, ``SAVE``
persists the data into its volume, and the temporary server and file are
removed. The restored key count must equal what the temporary server loaded
from the file; the count recorded at dump time is not used for that check,
because keys written while the dump ran, or TTL keys expired since, make it
legitimately differ.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

from backup.engines.base import Dump
from backup.engines.connections import redis_url
from backup.engines.rdbscan import rdb_reader
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    ExecFailed,
    RestoreFailed,
    last_line,
)
from backup.figures import Figures, Scanner
from backup.framing import pack, unpack
from backup.ports import ContainerExec, ExecResult
from backup.types import DatabaseContainer

DATA_DIR = "/data"
META_MEMBER = "meta.json"
RDB_MEMBER = "dump.rdb"
DUMP_METHOD = ("keys without a TTL per database, counted in the RDB as it streamed (keys "
               "with a TTL may expire before a restore and are not compared)")
FALLBACK_METHOD = ("keys without a TTL per database from INFO keyspace just before the RDB "
                   "was taken (the RDB did not parse)")
MEASURE_METHOD = "keys without a TTL per database from INFO keyspace"
_KEYSPACE_LINE = re.compile(r"^(db\d+):keys=(\d+)(?:,expires=(\d+))?")
_RESTORE_DIR = "/tmp/holdfast-restore-"
SYNC_TIMEOUT_S = 600.0
_WRITE_RDB = 'umask 077 && mkdir -p "$1" && cat > "$1/dump.rdb"'
# The loader is orphaned to the container's init, which may never reap it, so
# a loader that died shows as a zombie: alive means present and not a zombie.
_ALIVE = ('pid="$(cat "$1" 2>/dev/null)" && [ -n "$pid" ] && [ -r "/proc/$pid/status" ] '
          '&& ! grep -q "^State:[[:space:]]*Z" "/proc/$pid/status"')
_START_TEMP = (
    'cd "$1" && exec redis-server --bind 127.0.0.1 --port "$2" --dir "$1" '
    '--dbfilename dump.rdb --save "" --appendonly no --daemonize yes '
    '--pidfile "$1/redis.pid" --logfile "$1/redis.log" --protected-mode yes '
    "--repl-diskless-sync yes --repl-diskless-sync-delay 0"
)


class RedisEngine:
    name: ClassVar[str] = "redis"
    data_format: ClassVar[str] = "holdfast-redis-v1"
    read_formats: ClassVar[tuple[str, ...]] = (data_format,)
    loads_before_start: ClassVar[bool] = False
    service_port: ClassVar[int | None] = 6379

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        return redis_url(env, secret_names, host=host, port=port)

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        return [DATA_DIR]

    # --- credentials --------------------------------------------------------

    @staticmethod
    def password(container: DatabaseContainer) -> str | None:
        """The server's password: the last ``--requirepass`` in its command,
        else ``REDIS_PASSWORD``; None when it has none."""
        found: str | None = None
        command = list(container.command)
        for index, arg in enumerate(command):
            if arg == "--requirepass" and index + 1 < len(command):
                found = command[index + 1]
        if found is not None:
            return found or None
        return container.env.get("REDIS_PASSWORD") or None

    def check(self, container: DatabaseContainer) -> None:
        # A server without a password is valid; a wrong or missing one shows
        # up as an authentication error from the dump itself.
        return None

    def _env(self, container: DatabaseContainer) -> dict[str, str]:
        password = self.password(container)
        return {"REDISCLI_AUTH": password} if password else {}

    def _cli(
        self, container: DatabaseContainer, runner: ContainerExec, *args: str,
        port: int | None = None, auth: bool = True,
    ) -> ExecResult:
        argv = ["redis-cli"]
        if port is not None:
            argv += ["-h", "127.0.0.1", "-p", str(port)]
        return runner.run(container.id, [*argv, *args],
                          env=self._env(container) if auth else {}, check=False)

    @staticmethod
    def _reply(result: ExecResult) -> str:
        """redis-cli exits 0 even for error replies when stdout is not a tty;
        errors come back as ``ERR ...``/``NOAUTH ...`` text, so callers check."""
        return result.stdout.decode(errors="replace").strip()

    def keyspace(self, container: DatabaseContainer, runner: ContainerExec,
                 port: int | None = None, auth: bool = True) -> dict[str, int]:
        """``{"db0": keys, ...}`` from ``INFO keyspace``."""
        return {db: keys for db, (keys, _) in
                self._keyspace(container, runner, port=port, auth=auth).items()}

    def _keyspace(self, container: DatabaseContainer, runner: ContainerExec,
                  port: int | None = None, auth: bool = True) -> dict[str, tuple[int, int]]:
        """``{"db0": (keys, keys with a TTL), ...}`` from ``INFO keyspace``."""
        result = self._cli(container, runner, "INFO", "keyspace", port=port, auth=auth)
        text = self._reply(result)
        if result.exit_code != 0 or not text.startswith("#"):
            raise ExecFailed("redis-cli INFO keyspace", result.exit_code,
                             result.stderr + "\n" + text)
        counts: dict[str, tuple[int, int]] = {}
        for line in text.splitlines():
            match = _KEYSPACE_LINE.match(line.strip())
            if match:
                counts[match.group(1)] = (int(match.group(2)), int(match.group(3) or 0))
        return counts

    # --- dump ---------------------------------------------------------------

    def dump(
        self, container: DatabaseContainer, runner: ContainerExec, databases: Sequence[str] = ()
    ) -> Dump:
        self.check(container)
        try:
            keyspace = self._keyspace(container, runner)
        except ExecFailed as exc:
            raise DumpFailed(f"cannot read the keyspace of {container.name}: {exc}"
                             + self._auth_hint(container, str(exc))) from exc
        if databases:
            raise DumpFailed(
                "a redis snapshot always covers the whole server (every numbered "
                "database); do not select databases"
            )
        counts = {db: keys for db, (keys, _) in keyspace.items()}
        persistent = {db: keys - expiring for db, (keys, expiring) in keyspace.items()}
        selected = tuple(sorted(counts, key=lambda name: int(name[2:])))
        meta = json.dumps({"databases": list(selected), "keys": counts}).encode()
        env = self._env(container)
        keys: dict[str, int] = {}
        scanner = Scanner(rdb_reader(keys), f"the RDB of {container.name}")

        def members() -> Iterator[tuple[str, Iterable[bytes]]]:
            yield META_MEMBER, [meta]
            yield RDB_MEMBER, scanner.watch(self._checked(
                runner.stream(container.id, ["redis-cli", "--rdb", "-"], env=env),
                "redis-cli --rdb -", container,
            ))

        def figures() -> Figures:
            if scanner.done and not scanner.failed:
                return _key_figures(keys, DUMP_METHOD)
            return _key_figures(persistent, FALLBACK_METHOD)

        return Dump(databases=selected, chunks=pack(members()), figures=figures)

    def measure(self, container: DatabaseContainer, runner: ContainerExec,
                databases: Sequence[str] = ()) -> Figures:
        """``INFO keyspace`` of ``container``, keys without a TTL (a snapshot
        covers every database)."""
        try:
            keyspace = self._keyspace(container, runner)
        except ExecFailed as exc:
            raise RestoreFailed(f"cannot measure the keyspace of {container.name}: {exc}") \
                from exc
        return _key_figures({db: keys - expiring for db, (keys, expiring) in keyspace.items()},
                            MEASURE_METHOD)

    def _checked(self, chunks: Iterator[bytes], what: str,
                 container: DatabaseContainer) -> Iterator[bytes]:
        seen = 0
        try:
            for chunk in chunks:
                seen += len(chunk)
                yield chunk
        except ExecFailed as exc:
            raise DumpFailed(exc.describe(what)
                             + self._auth_hint(container, exc.stderr_tail)) from exc
        if seen == 0:
            raise DumpFailed(f"{what} produced no data")

    def _auth_hint(self, container: DatabaseContainer, text: str) -> str:
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH failed" in text:
            return ("; Holdfast reads the password from --requirepass in the container's "
                    "command or from REDIS_PASSWORD")
        return ""

    # --- readiness ----------------------------------------------------------

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        try:
            result = self._cli(container, runner, "PING")
        except ExecFailed:
            return False
        return result.exit_code == 0 and self._reply(result) == "PONG"

    # --- restore ------------------------------------------------------------

    def restore(
        self, container: DatabaseContainer, runner: ContainerExec, chunks: Iterable[bytes]
    ) -> list[str]:
        members = unpack(chunks)
        first = next(members, None)
        if first is None or first.name != META_MEMBER:
            raise CorruptSnapshot("redis snapshot does not start with its metadata member")
        meta = json.loads(first.read_small())
        expected = sorted(meta["databases"])
        rdb = next(members, None)
        if rdb is None or rdb.name != RDB_MEMBER:
            raise CorruptSnapshot("redis snapshot has no dump.rdb member")
        workdir = _RESTORE_DIR + secrets.token_hex(6)
        port = 20000 + secrets.randbelow(30000)
        try:
            try:
                runner.run(container.id, ["sh", "-c", _WRITE_RDB, "sh", workdir], stdin=rdb)
            except ExecFailed as exc:
                raise RestoreFailed(
                    f"cannot write the RDB into {container.name}: {exc}") from exc
            for extra in members:  # reaches the end record: a truncated archive raises
                extra.skip()
            loaded = self._start_temp_server(container, runner, workdir, port)
            restored = sorted(loaded)
            if restored != expected:
                raise CorruptSnapshot(
                    f"redis snapshot lists databases {expected} but its RDB holds {restored}")
            self._replicate_from(container, runner, port)
            final = self.keyspace(container, runner)
            if final != loaded:
                raise RestoreFailed(
                    f"restored {container.name} holds keys {final} but the snapshot's "
                    f"RDB holds {loaded}")
            saved = self._reply(self._cli(container, runner, "SAVE"))
            if saved != "OK":
                raise RestoreFailed(f"SAVE after restoring {container.name} failed: {saved}")
        except ExecFailed as exc:
            raise RestoreFailed(f"restoring into {container.name} failed: {exc}") from exc
        finally:
            self._cleanup(container, runner, workdir, port)
        return restored

    def _start_temp_server(self, container: DatabaseContainer, runner: ContainerExec,
                           workdir: str, port: int) -> dict[str, int]:
        started = runner.run(container.id, ["sh", "-c", _START_TEMP, "sh", workdir, str(port)],
                             check=False)
        if started.exit_code != 0:
            raise RestoreFailed(f"cannot start a loader redis-server in {container.name}: "
                                f"{last_line(started.stderr) or started.exit_code}")
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        while True:
            reply = self._reply(self._cli(container, runner, "PING", port=port, auth=False))
            if reply == "PONG":
                break
            alive = runner.run(container.id, ["sh", "-c", _ALIVE, "sh", f"{workdir}/redis.pid"],
                               check=False)
            if alive.exit_code != 0:
                log = runner.run(container.id, ["tail", "-n", "5", f"{workdir}/redis.log"],
                                 check=False)
                raise CorruptSnapshot(
                    f"the snapshot's RDB does not load in {container.name}: "
                    f"{last_line(log.stdout.decode(errors='replace')) or 'loader exited'}")
            if time.monotonic() > deadline:
                raise RestoreFailed(f"the loader redis-server in {container.name} did not "
                                    f"load the snapshot within {SYNC_TIMEOUT_S:.0f}s: {reply}")
            time.sleep(0.2)
        return self.keyspace(container, runner, port=port, auth=False)

    def _replicate_from(self, container: DatabaseContainer, runner: ContainerExec,
                        port: int) -> None:
        reply = self._reply(self._cli(container, runner, "REPLICAOF", "127.0.0.1", str(port)))
        if not reply.startswith("OK"):
            raise RestoreFailed(f"REPLICAOF in {container.name} failed: {reply}")
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        try:
            while True:
                info = _info_fields(self._reply(self._cli(container, runner, "INFO",
                                                           "replication")))
                if (info.get("master_link_status") == "up"
                        and info.get("master_sync_in_progress") == "0"):
                    return
                if time.monotonic() > deadline:
                    raise RestoreFailed(
                        f"{container.name} did not finish loading the snapshot within "
                        f"{SYNC_TIMEOUT_S:.0f}s")
                time.sleep(0.2)
        finally:
            promoted = self._reply(self._cli(container, runner, "REPLICAOF", "NO", "ONE"))
            if not promoted.startswith("OK"):
                raise RestoreFailed(f"REPLICAOF NO ONE in {container.name} failed: {promoted}")

    def _cleanup(self, container: DatabaseContainer, runner: ContainerExec,
                 workdir: str, port: int) -> None:
        script = ('if [ -f "$1/redis.pid" ]; then redis-cli -h 127.0.0.1 -p "$2" '
                  'SHUTDOWN NOSAVE >/dev/null 2>&1 || kill "$(cat "$1/redis.pid")" 2>/dev/null; '
                  'fi; rm -rf "$1"')
        with contextlib.suppress(ExecFailed):
            runner.run(container.id, ["sh", "-c", script, "sh", workdir, str(port)],
                       check=False)


def _key_figures(persistent: Mapping[str, int], method: str) -> Figures:
    """A database whose keys all have a TTL is left out: once they expired, a
    copy no longer lists it at all, and that proves nothing."""
    return Figures(kind="keys", method=method,
                   values={db: keys for db, keys in persistent.items() if keys})


def _info_fields(text: str) -> Mapping[str, str]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            fields[key] = value
    return fields
