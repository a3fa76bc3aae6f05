"""Exact per-table row counts read from a ``pg_dump --format=custom --compress=0``
stream as it passes, and role names from the ``pg_dumpall --globals-only`` script.

A custom-format archive written to a pipe is: a header (``PGDMP``, the
archive version, integer and offset sizes, the format, the compression, the
creation time, database and server versions), the table of contents (one
entry per object: its dump id, tag, description, schema, statements, owner,
dependencies and a data offset), then the data blocks in order, each a block
type, a dump id and length-prefixed chunks up to a zero length. The data of a
``TABLE DATA`` entry is the table's ``COPY`` text: one line per row (newlines
inside values escaped as ``\\n``) up to a ``\\.`` line. Counting
them gives the rows pg_dump read inside its own snapshot. Archive versions
1.12 (PostgreSQL 9.6/10) to 1.16 (17) are read; a compressed archive, or any
other version, is refused by raising (the scan then records no figures).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass

from backup.figures import Consume, Need, Pass, Reader

_MAGIC = b"PGDMP"
_CUSTOM_FORMAT = 1
_BLOCK_DATA, _BLOCK_BLOBS = 1, 3
_OLDEST, _NEWEST = (1, 12), (1, 16)
_ROLE_LINE = re.compile(rb'^CREATE ROLE ("(?:[^"]|"")+"|[^\s;]+);\s*$')
_ROLE_LINE_LIMIT = 64 * 1024


def _int(int_size: int) -> Generator[Need | Pass, bytes, int]:
    """pg_dump's ReadInt: a sign byte, then ``int_size`` bytes little-endian."""
    raw = yield Need(1 + int_size)
    value = int.from_bytes(raw[1:], "little")
    return -value if raw[0] else value


def _str(int_size: int) -> Generator[Need | Pass, bytes, str | None]:
    """pg_dump's ReadStr: a length (negative: NULL), then the bytes."""
    length = yield from _int(int_size)
    if length < 0:
        return None
    raw = yield Need(length)
    return raw.decode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class TocEntry:
    """One object of an archive's table of contents, as pg_restore sees it."""

    dump_id: int
    desc: str
    """The object's type: ``TABLE DATA``, ``INDEX``, ``CONSTRAINT``, ``FK CONSTRAINT``, ..."""
    tag: str
    namespace: str
    defn: str
    """The statement that creates it (empty for data)."""
    tablespace: str


def _header() -> Generator[Need | Pass, bytes, tuple[tuple[int, int], int, int]]:
    """Read an uncompressed custom-format archive's header: (version, int size, offset size)."""
    head = yield Need(len(_MAGIC) + 6)
    if head[:5] != _MAGIC:
        raise ValueError("not a pg_dump custom-format archive")
    version, int_size, off_size, archive_format = (head[5], head[6]), head[8], head[9], head[10]
    if not _OLDEST <= version <= _NEWEST or archive_format != _CUSTOM_FORMAT:
        raise ValueError(f"pg_dump archive version {version[0]}.{version[1]} "
                         f"(format {archive_format}) is not read")
    if version >= (1, 15):
        compression = (yield Need(1))[0]
    else:
        compression = yield from _int(int_size)
    if compression != 0:
        raise ValueError("the pg_dump archive is compressed")
    for _ in range(7):  # creation time
        yield from _int(int_size)
    for _ in range(3):  # database, server version, pg_dump version
        yield from _str(int_size)
    return version, int_size, off_size


def archive_reader(counts: dict[str, int], database: str) -> Reader:
    """A :data:`~backup.figures.Reader` adding ``database.schema.table`` -> rows
    to ``counts`` for every table whose data the archive holds."""
    version, int_size, off_size = yield from _header()
    tables = {entry.dump_id: (entry.namespace, entry.tag)
              for entry in (yield from _toc(version, int_size, off_size))
              if entry.desc == "TABLE DATA"}
    for schema, table in tables.values():
        counts[f"{database}.{schema}.{table}"] = 0
    while True:
        block = yield Need(1, end_ok=True)
        if not block:
            return
        dump_id = yield from _int(int_size)
        if block[0] == _BLOCK_DATA:
            name = tables.get(dump_id)
            yield Consume(_DataChunks(int_size, _adder(counts, f"{database}.{name[0]}.{name[1]}")
                                      if name else None))
        elif block[0] == _BLOCK_BLOBS:
            while (yield from _int(int_size)) != 0:  # each large object's oid
                yield Consume(_DataChunks(int_size))
        else:
            raise ValueError(f"pg_dump archive has an unknown block type {block[0]}")


def table_of_contents(archive: bytes) -> list[TocEntry]:
    """The entries of an uncompressed custom-format archive held in memory (a
    schema-only one: a post-data section). Raises :class:`ValueError` if it is not one."""
    def reader() -> Generator[Need | Pass, bytes, list[TocEntry]]:
        version, int_size, off_size = yield from _header()
        return (yield from _toc(version, int_size, off_size))

    steps, position = reader(), 0
    try:
        request = next(steps)
        while True:
            if not isinstance(request, Need):
                raise ValueError("a table of contents holds no data blocks")
            piece = archive[position:position + request.count]
            if len(piece) < request.count:
                raise ValueError("the pg_dump archive ends inside its table of contents")
            position += request.count
            request = steps.send(piece)
    except StopIteration as done:
        return list(done.value)


def _toc(version: tuple[int, int], int_size: int,
         off_size: int) -> Generator[Need | Pass, bytes, list[TocEntry]]:
    """Read the table of contents."""
    entries: list[TocEntry] = []
    for _ in range((yield from _int(int_size))):
        dump_id = yield from _int(int_size)
        yield from _int(int_size)  # has a data dumper
        fields: list[str | None] = []
        for _ in range(9):  # tableoid, oid, tag, desc, section(int), defn, drop, copy, namespace
            fields.append((yield from _str(int_size)) if len(fields) != 4
                          else str((yield from _int(int_size))))
        tablespace = yield from _str(int_size)
        if version >= (1, 14):
            yield from _str(int_size)  # table access method
        if version >= (1, 16):
            yield from _int(int_size)  # relkind
        yield from _str(int_size)  # owner
        yield from _str(int_size)  # "false" (with oids, long gone)
        while (yield from _str(int_size)) is not None:  # dependencies
            pass
        yield Need(1 + off_size)  # the data offset (unknown in a pipe)
        entries.append(TocEntry(dump_id=dump_id, desc=fields[3] or "", tag=fields[2] or "",
                                namespace=fields[8] or "", defn=fields[5] or "",
                                tablespace=tablespace or ""))
    return entries


class _DataChunks:
    """A :class:`~backup.figures.Consume` sink walking a data block's
    length-prefixed chunks up to the zero length that ends it, in one loop per
    piece of the stream: pg_dump writes every COPY row as a chunk of its own,
    and a generator step per row made the scan the slowest part of a backup.
    With ``rows`` it counts the rows of COPY text: its lines up to a ``\\.``
    line (a data line is never exactly that: a backslash in a value is written
    doubled), which pg_dump ends the data with; an empty line is a row."""

    def __init__(self, int_size: int, rows: Callable[[int], None] | None = None) -> None:
        self._header_size = 1 + int_size
        self._rows = rows
        self._ended = rows is None  # past the end line: nothing more is counted
        self._header = b""
        self._left = 0  # data bytes of the current chunk still to come
        self._chunk = bytearray()  # a chunk split across pieces, up to _HELD bytes of it
        self._count = 0

    def __call__(self, view: memoryview) -> int | None:
        data = view.tobytes()
        pos, end = 0, len(data)
        while pos < end:
            if self._left:
                pos = self._continue_chunk(data, pos)
            elif len(self._header) == 0 and (done := self._whole_chunks(data, pos))[0] != pos:
                pos, finished = done
                if finished:
                    return self._finish(pos)
            else:
                take = min(end, pos + self._header_size - len(self._header))
                self._header += data[pos:take]
                pos = take
                if len(self._header) == self._header_size:
                    header, self._header = self._header, b""
                    length = _chunk_length(header, 0, self._header_size)
                    if length == 0:
                        return self._finish(pos)
                    self._left = length
        return None

    def _whole_chunks(self, data: bytes, pos: int) -> tuple[int, bool]:
        """The fast path, for every chunk that lies whole in ``data`` from
        ``pos`` (locals only: this loop runs once per row). Returns where it
        stopped, and whether the block's end was met."""
        size, end, count, number = self._header_size, len(data), data.count, int.from_bytes
        rows = 0
        try:
            while pos + size <= end:
                if data[pos]:
                    raise ValueError("pg_dump archive has a negative chunk length")
                length = number(data[pos + 1:pos + size], "little")
                if length == 0:
                    return pos + size, True
                start, stop = pos + size, pos + size + length
                if stop > end:
                    break
                if not self._ended:
                    # One row per chunk, as pg_dump writes them; anything else
                    # (an end line, several rows) takes the careful way.
                    if data[start] != _BACKSLASH and count(b"\n", start, stop) == 1:
                        rows += 1
                    else:
                        self._lines(data, start, stop)
                pos = stop
            return pos, False
        finally:
            self._count += rows

    def _continue_chunk(self, data: bytes, pos: int) -> int:
        """Take the next part of a chunk that began in an earlier piece."""
        stop = min(len(data), pos + self._left)
        self._left -= stop - pos
        if not self._ended:
            if len(self._chunk) + stop - pos <= _HELD:
                self._chunk += data[pos:stop]
            else:  # a line this long is no end line: count it as it passes
                self._count += bytes(self._chunk).count(b"\n") + data.count(b"\n", pos, stop)
                self._chunk.clear()
            if not self._left:
                whole = bytes(self._chunk)
                self._chunk.clear()
                self._lines(whole, 0, len(whole))
        return stop

    def _lines(self, data: bytes, start: int, stop: int) -> None:
        lines = data.count(b"\n", start, stop)
        if data.startswith(_END_LINE, start):
            self._ended = True
            return
        if lines > 1 and (at := data.find(b"\n" + _END_LINE, start, stop)) >= 0:
            lines = data.count(b"\n", start, at + 1)
            self._ended = True
        self._count += lines

    def _finish(self, pos: int) -> int:
        if self._rows is not None and self._count:
            self._rows(self._count)
        return pos


_END_LINE = b"\\.\n"
_BACKSLASH = ord("\\")
_HELD = 1024 * 1024
"""A chunk split across pieces is held up to this size, to find an end line in it."""


def _chunk_length(data: bytes, pos: int, size: int) -> int:
    if data[pos]:
        raise ValueError("pg_dump archive has a negative chunk length")
    return int.from_bytes(data[pos + 1:pos + size], "little")


def _adder(counts: dict[str, int], name: str) -> Callable[[int], None]:
    def add(rows: int) -> None:
        counts[name] += rows
    return add


class RoleLines:
    """Collects ``CREATE ROLE name;`` from a globals script as it passes."""

    def __init__(self) -> None:
        self.roles: list[str] = []
        self.complete = False
        self._pending = b""

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            *lines, self._pending = (self._pending + chunk).split(b"\n")
            for line in lines:
                self._line(line)
            # A line this long is no CREATE ROLE; keep only a bounded tail.
            self._pending = self._pending[-_ROLE_LINE_LIMIT:]
            yield chunk
        self._line(self._pending)
        self.complete = True

    def _line(self, line: bytes) -> None:
        match = _ROLE_LINE.match(line)
        if match:
            name = match.group(1)
            if name.startswith(b'"'):
                name = name[1:-1].replace(b'""', b'"')
            self.roles.append(name.decode("utf-8", "surrogateescape"))
