"""Pure planning of a parallel Postgres dump and restore: decide here, apply in
:mod:`backup.engines.pgparallel`.

**Pieces.** A dump's work is split so that ``jobs`` processes stay busy: every
ordinary table of at least :data:`SPLIT_MIN_PAGES` pages is copied on its own,
and on PostgreSQL 14 or later (TID range scans) a large one is cut into page
ranges of about equal size, each a ``COPY (SELECT ... WHERE ctid ...)`` of its
own under the one exported snapshot. Everything else (small tables, sequences,
large objects) stays in one ``pg_dump --section=data`` that runs beside them.

**Post-data.** A restore builds indexes and constraints of different tables at
once: the post-data entries of type INDEX and CONSTRAINT are grouped by table
(one table's are built one after another, so none waits on another's lock),
big tables first, small ones batched; every other entry (foreign keys,
triggers, rules, comments...) runs after them in the archive's order.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from backup.engines.pgscan import TocEntry

SPLIT_MIN_PAGES = 1024
"""8 MiB of 8 KiB pages: smaller tables go in the one ``pg_dump`` of the rest."""
PIECE_MIN_PAGES = 4096
"""No piece is planned smaller than 32 MiB: a piece costs a process and a connection."""
PIECES_PER_JOB = 4
"""Aim for this many pieces per job over the large tables, so jobs end close together."""
MAX_PIECES_PER_TABLE = 64
TID_RANGES_FROM = 140000
"""``server_version_num`` from which ``WHERE ctid`` ranges are TID range scans, not filters."""
MAX_TOC_IDS = 2000
"""Entries handed to one pg_restore (their ids travel in an environment variable)."""


@dataclass(frozen=True)
class PieceSizes:
    """How a dump cuts its work (the defaults; tests use small ones)."""

    split_min_pages: int = SPLIT_MIN_PAGES
    piece_min_pages: int = PIECE_MIN_PAGES


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, always double-quoted (valid for any name)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    pages: int
    columns: tuple[str, ...]
    """The columns a COPY carries: not dropped, not generated."""

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def pattern(self) -> str:
        """The table as a pg_dump ``--exclude-table-data`` pattern: every character literal."""
        return self.qualified


@dataclass(frozen=True)
class Piece:
    """The rows of ``table`` in pages ``[first_page, end_page)`` (None: open-ended)."""

    table: TableInfo
    first_page: int | None = None
    end_page: int | None = None

    def copy_out(self) -> str:
        columns = ", ".join(quote_ident(c) for c in self.table.columns)
        bounds = []
        if self.first_page is not None:
            bounds.append(f"ctid >= '({self.first_page},0)'::tid")
        if self.end_page is not None:
            bounds.append(f"ctid < '({self.end_page},0)'::tid")
        where = f" WHERE {' AND '.join(bounds)}" if bounds else ""
        return f"COPY (SELECT {columns} FROM ONLY {self.table.qualified}{where}) TO STDOUT"

    def copy_in(self) -> str:
        columns = ", ".join(quote_ident(c) for c in self.table.columns)
        return f"COPY {self.table.qualified} ({columns}) FROM STDIN"

    def to_json(self) -> dict[str, object]:
        return {"schema": self.table.schema, "table": self.table.name,
                "columns": list(self.table.columns), "pages": self.table.pages,
                "first_page": self.first_page, "end_page": self.end_page}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Piece:
        columns = data["columns"]
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise ValueError("a piece's columns are not a list of names")
        first, end = data.get("first_page"), data.get("end_page")
        table = TableInfo(str(data["schema"]), str(data["table"]), int(str(data["pages"])),
                          tuple(columns))
        return cls(table, None if first is None else int(str(first)),
                   None if end is None else int(str(end)))


def plan_pieces(tables: Sequence[TableInfo], jobs: int, server_version: int,
                sizes: PieceSizes = PieceSizes()) -> list[Piece]:
    """The COPY pieces of a dump, largest first. ``tables`` are the candidates
    (ordinary tables of the snapshot); those below ``sizes.split_min_pages`` or
    without columns are left to pg_dump. Each large table's pieces cover its
    pages exactly once, the first from page 0 implicitly and the last open-ended
    (rows the snapshot sees can only be on pages it counted, but the bound
    costs nothing)."""
    large = [t for t in tables if t.pages >= sizes.split_min_pages and t.columns]
    if not large:
        return []
    total = sum(t.pages for t in large)
    target = max(sizes.piece_min_pages, math.ceil(total / (max(jobs, 1) * PIECES_PER_JOB)))
    pieces: list[Piece] = []
    for table in sorted(large, key=lambda t: (-t.pages, t.schema, t.name)):
        count = 1
        if server_version >= TID_RANGES_FROM:
            count = max(1, min(MAX_PIECES_PER_TABLE, round(table.pages / target)))
        cuts = [table.pages * k // count for k in range(count + 1)]
        for k in range(count):
            pieces.append(Piece(table, None if k == 0 else cuts[k],
                                None if k == count - 1 else cuts[k + 1]))
    return pieces


def plan_json(database: str, encoding: str, pieces: Sequence[Piece]) -> bytes:
    return json.dumps({"database": database, "encoding": encoding,
                       "pieces": [p.to_json() for p in pieces]}).encode()


# --- post-data ---------------------------------------------------------------------

_IDENT = r'(?:"(?:[^"]|"")*"|[^\s."(]+)'
_QUALIFIED = rf"({_IDENT}(?:\.{_IDENT})?)"
_INDEX_TABLE = re.compile(rf"^CREATE (?:UNIQUE )?INDEX {_IDENT} ON (?:ONLY )?{_QUALIFIED} ")
_CONSTRAINT_TABLE = re.compile(rf"^ALTER TABLE (?:ONLY )?{_QUALIFIED}\s+ADD CONSTRAINT ")
PARALLEL_KINDS = ("INDEX", "CONSTRAINT")


def entry_table(entry: TocEntry) -> str | None:
    """The table an INDEX or CONSTRAINT entry builds on, as its defn names it."""
    pattern = _INDEX_TABLE if entry.desc == "INDEX" else _CONSTRAINT_TABLE
    match = pattern.match(entry.defn) if entry.desc in PARALLEL_KINDS else None
    return None if match is None else _unquote(match.group(1))


def _unquote(qualified: str) -> str:
    parts = re.findall(_IDENT, qualified)
    return ".".join(p[1:-1].replace('""', '"') if p.startswith('"') else p for p in parts)


@dataclass(frozen=True)
class PostDataPlan:
    parallel: list[list[int]]
    """Batches of dump ids to run at once (each batch in one pg_restore), biggest first."""
    after: list[int]
    """Dump ids to run afterwards, one after another, in the archive's order."""


def plan_post_data(entries: Sequence[TocEntry], pages: dict[str, int], jobs: int,
                   big_from: int = SPLIT_MIN_PAGES) -> PostDataPlan:
    """Group ``entries`` (a post-data archive's) for a restore with ``jobs``
    workers; ``pages`` sizes tables by their ``schema.name`` (unknown: small)."""
    by_table: dict[str, list[int]] = {}
    after: list[int] = []
    for entry in entries:
        table = entry_table(entry)
        if table is None:
            after.append(entry.dump_id)
        else:
            by_table.setdefault(table, []).append(entry.dump_id)
    big = sorted((t for t in by_table if pages.get(t, 0) >= big_from),
                 key=lambda t: (-pages[t], t))
    batches = [by_table[t] for t in big]
    small = [by_table[t] for t in sorted(by_table) if t not in set(big)]
    lanes: list[list[int]] = [[] for _ in range(max(1, jobs))]
    for index, ids in enumerate(small):  # a table's entries stay in one lane
        lanes[index % len(lanes)].extend(ids)
    batches.extend(lane for lane in lanes if lane)
    return PostDataPlan(parallel=[chunk for batch in batches
                                  for chunk in _bounded(batch, MAX_TOC_IDS)],
                        after=after)


def _bounded(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i:i + size] for i in range(0, len(ids), size)]
