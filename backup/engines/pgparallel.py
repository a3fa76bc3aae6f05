"""Parallel logical dump and restore of PostgreSQL, streamed (data format v2).

**Dump.** For each database a coordinator ``psql`` session opens a repeatable
read transaction, exports its snapshot (``pg_export_snapshot()``), takes the
ACCESS SHARE locks pg_dump would take, and lists the tables; it stays open
until the database is done, so every process below reads that one snapshot:

- ``pg_dump --snapshot --section=pre-data`` (the schema without indexes);
- at once, up to ``jobs`` at a time: ``pg_dump --snapshot --section=data``
  without the large tables' data, and one ``COPY ... TO STDOUT`` per piece of
  each large table (:mod:`backup.engines.pgplan`), each in a transaction that
  has imported the snapshot;
- ``pg_dump --snapshot --section=post-data`` (indexes, constraints, triggers).

They are framed into one hfa2 stream (:mod:`backup.multiplex`), so the snapshot
is one object and nothing is written to a temporary file.

**Restore.** The schema loads first; then the data members load at once, each
into its own process (``pg_restore --section=data``, ``psql -c 'COPY ... FROM
STDIN'``); then the indexes and constraints of different tables build at once
(``pg_restore -L`` with the entries of one batch; the list reaches it on a pipe
of its own, the archive on stdin), and the remaining post-data entries last.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from backup.engines.pgplan import (
    Piece,
    PieceSizes,
    PostDataPlan,
    TableInfo,
    plan_json,
    plan_pieces,
    plan_post_data,
)
from backup.engines.pgscan import archive_reader, table_of_contents
from backup.engines.pgsession import PsqlSession
from backup.errors import CorruptSnapshot, DumpFailed, ExecFailed, RestoreFailed, dump_stream
from backup.figures import Scanner
from backup.multiplex import Concurrent, Sequential, Step
from backup.ports import ContainerExec
from backup.streams import read_all
from backup.types import DatabaseContainer

PLAN, PRE_DATA, DATA, POST_DATA, PIECE = "plan", "pre-data", "data", "post-data", "piece/"
POST_DATA_LIMIT = 256 * 1024 * 1024
"""A post-data archive (statements only) larger than this is refused as damaged."""
PARALLEL_FROM = 120000
"""``server_version_num`` from which the parallel dump runs (``attgenerated`` exists)."""

_LOCK_ALL = """DO $holdfast$ DECLARE r record; BEGIN
FOR r IN SELECT c.oid::regclass AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname !~ '^pg_(toast|temp)'
LOOP EXECUTE format('LOCK TABLE %s IN ACCESS SHARE MODE', r.t); END LOOP; END $holdfast$;"""
_HEX = "encode(convert_to({}, getdatabaseencoding()), 'hex')"
_LIST_TABLES = f"""SELECT {_HEX.format('n.nspname')}, {_HEX.format('c.relname')},
  pg_relation_size(c.oid) / current_setting('block_size')::int,
  coalesce((SELECT string_agg({_HEX.format('a.attname')}, ',' ORDER BY a.attnum)
            FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0
              AND NOT a.attisdropped AND a.attgenerated = ''), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence IN ('p', 'u')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                  AND d.objid = c.oid AND d.deptype = 'e');"""
# The list of entries reaches pg_restore on fd 3 from a pipe; its stdin stays the
# archive (pg_restore reopens a named archive file, which a pipe cannot bear).
_RESTORE_LISTED = ('exec 4<&0; printf "%s\\n" "$HOLDFAST_TOC" | '
                   '{ exec 3<&0 0<&4 4<&-; exec pg_restore --exit-on-error -L /dev/fd/3 '
                   '--dbname "$1"; }')


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode("utf-8", "surrogateescape")


@dataclass
class DumpCounts:
    """Rows counted as the data passed: per piece, and from each pg_dump of the rest."""

    pieces: dict[int, int] = field(default_factory=dict)
    rest: dict[str, int] = field(default_factory=dict)
    scanners: list[Scanner] = field(default_factory=list)
    named: dict[int, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def complete(self) -> bool:
        return all(s.done and not s.failed for s in self.scanners)

    def table_rows(self) -> dict[str, int]:
        rows = dict(self.rest)
        for number, count in self.pieces.items():
            rows[self.named[number]] = rows.get(self.named[number], 0) + count
        return rows


class ParallelDump:
    """The hfa2 steps of one parallel dump (consumed once, by :func:`backup.multiplex.pack`)."""

    def __init__(self, container: DatabaseContainer, runner: ContainerExec,
                 env: Mapping[str, str], jobs: int, sizes: PieceSizes) -> None:
        self.sizes = sizes
        self.container = container
        self.runner = runner
        self.env = dict(env)
        self.jobs = jobs
        self.counts = DumpCounts()

    def database_steps(self, database: str) -> Iterator[Step]:
        session = PsqlSession(self.runner, self.container.id, database, self.env)
        try:
            snapshot = self._begin(session, database)
            encoding = session.query(
                "SELECT pg_encoding_to_char(encoding) FROM pg_database "
                "WHERE datname = current_database();")[0]
            version = int(session.query("SHOW server_version_num;")[0])
            pieces = plan_pieces(self._tables(session), self.jobs, version, self.sizes)
            yield Sequential(f"db/{database}/{PLAN}", [plan_json(database, encoding, pieces)])
            yield Sequential(f"db/{database}/{PRE_DATA}", self._pg_dump(
                database, snapshot, ["--section=pre-data"]))
            yield Concurrent(self._data_members(database, snapshot, encoding, pieces),
                             jobs=self.jobs)
            yield Sequential(f"db/{database}/{POST_DATA}", self._pg_dump(
                database, snapshot, ["--section=post-data"]))
        except BaseException:
            session.abandon()
            raise
        session.query("COMMIT;")
        session.close()

    def _begin(self, session: PsqlSession, database: str) -> str:
        try:
            answer = session.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; "
                                   "SELECT pg_export_snapshot();")
            session.query(_LOCK_ALL)
        except ExecFailed as exc:
            raise DumpFailed(exc.describe(f"the snapshot of database {database}")) from exc
        if len(answer) != 1 or not answer[0]:
            raise DumpFailed(f"no exported snapshot from database {database}: {answer[:3]}")
        return answer[0]

    def _tables(self, session: PsqlSession) -> list[TableInfo]:
        tables = []
        for line in session.query(_LIST_TABLES):
            schema, name, pages, columns = line.split("|")
            tables.append(TableInfo(_unhex(schema), _unhex(name), int(pages),
                                    tuple(_unhex(c) for c in columns.split(",") if c)))
        return tables

    def _data_members(self, database: str, snapshot: str, encoding: str,
                      pieces: Sequence[Piece]) -> Iterator[tuple[str, Iterable[bytes]]]:
        excluded = [f"--exclude-table-data={p.table.pattern}"
                    for p in {p.table.qualified: p for p in pieces}.values()]
        scanner = Scanner(archive_reader(self.counts.rest, database),
                          f"the pg_dump of the data of {database}")
        self.counts.scanners.append(scanner)
        yield f"db/{database}/{DATA}", scanner.watch(self._pg_dump(
            database, snapshot, ["--section=data", *excluded]))
        for number, piece in enumerate(pieces):
            key = len(self.counts.named)
            self.counts.named[key] = f"{database}.{piece.table.schema}.{piece.table.name}"
            yield f"db/{database}/{PIECE}{number}", self._counted(key, dump_stream(
                self.runner.stream(self.container.id, [
                    "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database,
                    "-c", "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                    "-c", f"SET TRANSACTION SNAPSHOT '{snapshot}'",
                    "-c", "SET row_security = off", "-c", piece.copy_out(), "-c", "COMMIT"],
                    env={**self.env, "PGCLIENTENCODING": encoding}),
                f"COPY of {piece.table.qualified} in database {database}"))

    def _counted(self, key: int, chunks: Iterable[bytes]) -> Iterator[bytes]:
        rows = 0
        for chunk in chunks:
            rows += chunk.count(b"\n")
            yield chunk
        with self.counts.lock:
            self.counts.pieces[key] = rows

    def _pg_dump(self, database: str, snapshot: str, options: list[str]) -> Iterator[bytes]:
        return dump_stream(self.runner.stream(self.container.id, [
            "pg_dump", "--format=custom", "--compress=0", f"--snapshot={snapshot}", *options,
            "--dbname", database], env=self.env), f"pg_dump {options[0]} of database {database}")


# --- restore -----------------------------------------------------------------------

@dataclass
class ParallelRestore:
    """The consumers of a v2 archive's members (:func:`backup.multiplex.unpack`)."""

    container: DatabaseContainer
    runner: ContainerExec
    env: Mapping[str, str]
    maintenance_db: str
    jobs: int
    sizes: PieceSizes
    existing: Callable[[], list[str]]
    """The databases the container has now."""
    restore_globals: Callable[[Iterable[bytes]], None]
    meta: dict[str, object] = field(default_factory=dict)
    plans: dict[str, list[Piece]] = field(default_factory=dict)
    encodings: dict[str, str] = field(default_factory=dict)
    restored: list[str] = field(default_factory=list)

    def sequential(self, name: str, data: Iterator[bytes]) -> None:
        if name == "meta.json":
            self.meta = json.loads(read_all(data, 1024 * 1024))
        elif name == "globals.sql":
            self.restore_globals(data)
        elif name.startswith("db/"):
            database, _, part = name[3:].rpartition("/")
            self._database_part(database, part, data)
        else:
            raise CorruptSnapshot(f"postgres snapshot has an unknown member {name}")

    def _database_part(self, database: str, part: str, data: Iterator[bytes]) -> None:
        if part == PLAN:
            plan = json.loads(read_all(data, 64 * 1024 * 1024))
            self.plans[database] = [Piece.from_json(p) for p in plan["pieces"]]
            self.encodings[database] = str(plan["encoding"])
        elif part == PRE_DATA:
            if database in self.existing():
                argv = ["pg_restore", "--exit-on-error", "--section=pre-data",
                        "--dbname", database]
            else:
                argv = ["pg_restore", "--exit-on-error", "--create", "--section=pre-data",
                        "--dbname", self.maintenance_db]
            self._run(argv, data, f"the schema of database {database}")
        elif part == POST_DATA:
            self._post_data(database, read_all(data, POST_DATA_LIMIT))
            self.restored.append(database)
        else:
            raise CorruptSnapshot(f"postgres snapshot has an unknown member db/{database}/{part}")

    def concurrent(self, name: str, data: Iterator[bytes]) -> None:
        if name.startswith("db/") and name.endswith("/" + DATA):
            database = name[3:-len(DATA) - 1]
            self._run(["pg_restore", "--exit-on-error", "--section=data", "--dbname", database],
                      data, f"the data of database {database}")
            return
        database, _, number = name[3:].rpartition("/" + PIECE)
        pieces = self.plans.get(database, [])
        if not name.startswith("db/") or not number.isdigit() or int(number) >= len(pieces):
            raise CorruptSnapshot(f"postgres snapshot has an unknown member {name}")
        piece = pieces[int(number)]
        self._run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database,
                   "-c", piece.copy_in()], data, f"{piece.table.qualified} in {database}",
                  PGCLIENTENCODING=self.encodings[database])

    def _post_data(self, database: str, archive: bytes) -> None:
        try:
            entries = table_of_contents(archive)
        except ValueError as exc:
            raise CorruptSnapshot(f"the post-data archive of {database} is damaged: {exc}") \
                from None
        pages = {f"{p.table.schema}.{p.table.name}": p.table.pages
                 for p in self.plans.get(database, [])}
        plan = plan_post_data(entries, pages, self.jobs, self.sizes.split_min_pages)
        self._run_batches(database, archive, plan)
        if plan.after:
            self._listed(database, archive, plan.after)

    def _run_batches(self, database: str, archive: bytes, plan: PostDataPlan) -> None:
        pending = list(reversed(plan.parallel))
        lock = threading.Lock()
        failures: list[BaseException] = []

        def work() -> None:
            while True:
                with lock:
                    if failures or not pending:
                        return
                    batch = pending.pop()
                try:
                    self._listed(database, archive, batch)
                except BaseException as exc:
                    with lock:
                        failures.append(exc)
                    return

        workers = [threading.Thread(target=contextvars.copy_context().run, args=(work,),
                                    name=f"post-data-{n}", daemon=True)
                   for n in range(max(1, min(self.jobs, len(pending))))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if failures:
            raise failures[0]

    def _listed(self, database: str, archive: bytes, ids: Sequence[int]) -> None:
        self._run(["sh", "-c", _RESTORE_LISTED, "sh", database], [archive],
                  f"indexes and constraints of database {database}",
                  HOLDFAST_TOC="\n".join(f"{i};" for i in ids))

    def _run(self, argv: list[str], data: Iterable[bytes], what: str, **extra: str) -> None:
        try:
            self.runner.run(self.container.id, argv, env={**self.env, **extra}, stdin=data)
        except ExecFailed as exc:
            raise RestoreFailed(f"restoring {what} into {self.container.name} failed: {exc}") \
                from exc
