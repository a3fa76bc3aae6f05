"""Per-table row counts read from a ``mysqldump``/``mariadb-dump`` stream as it passes.

The dump writes ``USE `db`;`` before each database, ``CREATE TABLE `t` (``
for each table and its rows as extended inserts, ``INSERT INTO `t` VALUES
(...),(...);`` (MariaDB's tool since 10.x puts each tuple on a line of its
own), each statement starting a line. :class:`RowCounter` is a
small state machine over those bytes: between statements it looks only at
the start of each line (a bounded prefix, so a long line costs no memory);
inside the values of an insert it counts the tuples that open at depth zero,
skipping quoted strings with their backslash escapes and doubled quotes
(``''`` closes and reopens a string, which leaves the state the same), so
parentheses, commas, semicolons and newlines inside strings are data. Hex
and ``_binary`` literals need nothing special: they are bare or quoted
tokens. Statements inside ``DELIMITER ;;`` blocks (triggers, routines,
events) are not table data and are skipped. A table with no rows counts 0.

That byte-by-byte walk runs at a few MB/s in Python, so the whole lines of
values in a chunk take a fast path: the dump tools escape newlines inside
strings, so whole lines hold whole string literals and a ``;`` before a
newline ends the statement; with the strings cut out, the rows
are the opening parentheses (the tools write only literals inside a tuple),
and :func:`outside_strings` cuts them out at C speed.
In MariaDB's style, where every tuple starts a line, the rows are simply
the lines that start with ``(``. Lines the fast path cannot vouch for (a
quote left open, unbalanced parentheses, a stray ``;``, or one line longer
than :data:`FAST_LINE_LIMIT`) go through the state machine instead, which is
exact on any input the tools write.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from backup.figures import Figures

METHOD = "row tuples counted in the dump's INSERT statements as it streamed"
_LINE_PREFIX = 1024
FAST_LINE_LIMIT = 4 * 1024 * 1024
_INSERT = re.compile(rb"INSERT INTO `((?:[^`]|``)+)` (?:\(.*?\) )?VALUES\b")
_USE = re.compile(rb"USE `((?:[^`]|``)+)`;")
_CREATE = re.compile(rb"CREATE TABLE `((?:[^`]|``)+)` \(")
_DELIMITER = re.compile(rb"DELIMITER (\S+)")
_SPECIAL = re.compile(rb"[()'\";]")
_IN_QUOTE = {ord("'"): re.compile(rb"['\\]"), ord('"'): re.compile(rb'["\\]')}
_BACKSLASH, _OPEN, _CLOSE, _END = ord("\\"), ord("("), ord(")"), ord(";")
_LINE, _SKIP, _VALUES = "line", "skip", "values"


def outside_strings(values: bytes) -> bytes | None:
    """``values`` without its single-quoted strings, or None when one is left
    open. Escapes pair left to right, so dropping every escaped backslash and
    then every escaped quote leaves only quotes that open or close a string
    (a doubled ``''`` closes and reopens one); splitting on them leaves the
    outside at the even places. All of it runs in C, unlike a regex."""
    if b"\\" in values:
        values = values.replace(b"\\\\", b"").replace(b"\\'", b"").replace(b'\\"', b"")
    parts = values.split(b"'")
    return b"".join(parts[::2]) if len(parts) % 2 else None


def _name(raw: bytes) -> str:
    return raw.replace(b"``", b"`").decode("utf-8", "surrogateescape")


class RowCounter:
    """Counts rows per ``db.table``; feed it the dump's chunks in order."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self._mode = _LINE
        self._line = bytearray()
        self._database = ""
        self._table = ""
        self._in_routines = False
        self._depth = 0
        self._quote: int | None = None
        self._escaped = False
        self._slow = False
        self._tuple_lines = False
        self._pending = bytearray()
        self.complete = False
        """True once the stream it watched ended without an error."""

    def feed(self, chunk: bytes) -> None:
        position, end = 0, len(chunk)
        while position < end:
            if self._mode == _VALUES:
                position = (self._slow_line(chunk, position) if self._slow
                            else self._fast_line(chunk, position))
            elif self._mode == _SKIP:
                newline = chunk.find(b"\n", position)
                position = end if newline < 0 else newline + 1
                if newline >= 0:
                    self._mode = _LINE
            else:
                position = self._collect(chunk, position)

    def _collect(self, chunk: bytes, position: int) -> int:
        """Gather the start of a line (without its newline), then decide on it."""
        room = _LINE_PREFIX - len(self._line)
        newline = chunk.find(b"\n", position, position + room)
        stop = newline if newline >= 0 else min(len(chunk), position + room)
        self._line += chunk[position:stop]
        if newline < 0 and len(self._line) < _LINE_PREFIX:
            return stop
        line = bytes(self._line)
        self._line.clear()
        self._mode = _SKIP
        self._decide(line)
        if self._mode == _VALUES:
            header = _INSERT.match(line)
            assert header is not None
            # The values begin right after the header, in a clean state: the
            # fast path takes the rest of the prefix, then the line goes on.
            self._pending += line[header.end():]
            self._slow = False
            self._tuple_lines = newline >= 0 and not line[header.end():].strip()
        return stop

    def _clean(self) -> bool:
        return self._quote is None and self._depth == 0 and not self._escaped

    def _fast_line(self, chunk: bytes, position: int) -> int:
        """Count the whole lines of values in ``chunk`` at once (see the module
        docstring); a statement ends at the first ``;`` before a newline."""
        last = chunk.rfind(b"\n", position)
        if last < 0:
            self._pending += chunk[position:]
            if len(self._pending) > FAST_LINE_LIMIT:
                self._slow = True
                self._values(bytes(self._pending), 0, len(self._pending))
                self._pending.clear()
            return len(chunk)
        carried = len(self._pending)
        block = bytes(self._pending) + chunk[position:last + 1]
        self._pending.clear()

        def in_chunk(index: int) -> int:
            return max(position, position + index - carried)

        finish = block.find(b";\n")
        region = block if finish < 0 else block[:finish + 1]
        if self._tuple_lines:
            # Every tuple starts a line, and no string holds a raw newline.
            self.rows[self._table] += region.count(b"\n(") + region.startswith(b"(")
            if finish >= 0:
                self._mode = _SKIP
            return in_chunk(len(region))
        stripped = outside_strings(region)
        opens = stripped.count(b"(") if stripped is not None else -1
        if (stripped is None or b'"' in stripped or opens != stripped.count(b")")
                or stripped.count(b";") != (finish >= 0)):
            reached = self._values(region, 0, len(region))
            if self._mode == _VALUES:
                self._slow = not self._clean()
            return in_chunk(reached)
        self.rows[self._table] += opens
        if finish >= 0:
            self._mode = _SKIP
        return in_chunk(len(region))

    def _slow_line(self, chunk: bytes, position: int) -> int:
        """The state machine up to the end of the line, back to fast when clean."""
        newline = chunk.find(b"\n", position)
        stop = len(chunk) if newline < 0 else newline + 1
        reached = self._values(chunk, position, stop)
        if self._mode == _VALUES and newline >= 0 and self._clean():
            self._slow = False
        return reached

    def _decide(self, line: bytes) -> None:
        delimiter = _DELIMITER.match(line)
        if delimiter:
            self._in_routines = delimiter.group(1) != b";"
            return
        if self._in_routines:
            return
        if (match := _INSERT.match(line)) is not None:
            self._table = f"{self._database}.{_name(match.group(1))}"
            self.rows.setdefault(self._table, 0)
            self._mode, self._depth, self._quote = _VALUES, 0, None
        elif (match := _CREATE.match(line)) is not None:
            self.rows.setdefault(f"{self._database}.{_name(match.group(1))}", 0)
        elif (match := _USE.match(line)) is not None:
            self._database = _name(match.group(1))

    def _values(self, data: bytes, position: int, end: int) -> int:
        """Scan insert values in ``data[position:end]``; returns where scanning stopped."""
        if self._escaped and position < end:
            position, self._escaped = position + 1, False
        while position < end:
            if self._quote is not None:
                found = _IN_QUOTE[self._quote].search(data, position, end)
                if found is None:
                    return end
                position = found.start() + 1
                if data[found.start()] == _BACKSLASH:
                    if position < end:
                        position += 1
                    else:
                        self._escaped = True
                else:
                    self._quote = None
                continue
            found = _SPECIAL.search(data, position, end)
            if found is None:
                return end
            position = found.start() + 1
            self._token(data[found.start()])
            if self._mode != _VALUES:
                return position
        return end

    def _token(self, byte: int) -> None:
        if byte == _OPEN:
            if self._depth == 0:
                self.rows[self._table] += 1
            self._depth += 1
        elif byte == _CLOSE:
            self._depth -= 1
        elif byte == _END and self._depth == 0:
            self._mode = _SKIP
        elif byte != _END:
            self._quote = byte

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass ``chunks`` through unchanged, counting as they go."""
        for chunk in chunks:
            self.feed(chunk)
            yield chunk
        self.complete = True

    def figures(self) -> Figures:
        return Figures(kind="tables", values=dict(self.rows), method=METHOD)
