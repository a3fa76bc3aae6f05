"""Figures: what a snapshot held, recorded at backup time and measured again on a restored copy.

A verified restore compares two :class:`Figures` of one kind: those an engine
gathered from its dump stream as it passed (:attr:`backup.engines.base.Dump.figures`)
and those it measures on the throwaway copy the snapshot was restored into
(``Engine.measure``). Each kind names its values the same way on both sides:

``tables`` (postgres, mariadb/mysql)
    ``"db.schema.table"`` (postgres) or ``"db.table"`` (mariadb) -> rows;
    postgres also ``"role:NAME"`` -> 1 for every role and ``"database:NAME"``
    -> 1 for every database, so a missing role or an empty database shows too.
``keys`` (redis)
    ``"db0"`` -> keys without a TTL (one with a TTL may expire before a
    restore; a database holding only such keys is left out).
``tree`` (volume)
    ``"files"`` (regular files), ``"bytes"`` (their total size),
    ``"entries"`` (every archived path) -> int, ``"tree_sha256"`` -> hex.

:func:`compare` lists every value that differs, as a :class:`Difference`
whose :meth:`~Difference.describe` is the one line a user reads. Estimated
figures (``exact=False``) compare their counts within :data:`ESTIMATE_TOLERANCE`.
This module also holds :class:`Scanner`, the push driver every stream reader
that gathers figures is written against; it is pure and streams.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

ESTIMATE_TOLERANCE = 0.1
"""Estimated counts match when they differ by at most this fraction of the
recorded count, or by at most :data:`ESTIMATE_SLACK` (small tables)."""
ESTIMATE_SLACK = 10
_REDIS_DB = re.compile(r"db\d+")
NEED_LIMIT = 64 * 1024 * 1024
"""The most a reader may ask to hold at once; more means a damaged stream (or
a format it misreads), and the scan fails rather than buffer it."""
_TREE_NAMES = frozenset({"files", "bytes", "entries", "tree_sha256"})

Value = int | str


@dataclass(frozen=True)
class Figures:
    """What a snapshot held: recorded at backup time, measured again after a verified restore."""

    kind: str
    """``tables`` (postgres, mariadb/mysql), ``keys`` (redis), ``tree`` (volume)."""
    values: Mapping[str, Value] = field(default_factory=dict, hash=False)
    exact: bool = True
    """False: the counts are estimates, compared within :data:`ESTIMATE_TOLERANCE`."""
    method: str = ""
    """One line saying how they were taken, shown to users."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "values": dict(sorted(self.values.items())),
                "exact": self.exact, "method": self.method}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Figures:
        values = {str(name): value if isinstance(value, str) else int(value)
                  for name, value in (data.get("values") or {}).items()}
        return cls(kind=str(data["kind"]), values=values, exact=bool(data.get("exact", True)),
                   method=str(data.get("method", "")))


@dataclass(frozen=True)
class Difference:
    """One figure that is not the same on both sides; None: absent on that side."""

    name: str
    recorded: Value | None
    measured: Value | None

    def describe(self) -> str:
        """One line, e.g. ``table shop.public.orders: 1200 rows recorded, 1199 restored``."""
        subject, unit = _subject(self.name)
        if unit is None:  # presence only (roles, databases)
            if self.measured is None:
                return f"{subject}: present at backup, missing from the restored copy"
            if self.recorded is None:
                return f"{subject}: not in the snapshot, present in the restored copy"
            return f"{subject}: {self.recorded} recorded, {self.measured} restored"
        if self.measured is None:
            return f"{subject}: {_show(self.recorded, unit)} recorded, missing from the " \
                   "restored copy"
        if self.recorded is None:
            return f"{subject}: not in the snapshot, {_show(self.measured, unit)} in the " \
                   "restored copy"
        return f"{subject}: {_show(self.recorded, unit)} recorded, " \
               f"{_show(self.measured, '')} restored".rstrip()


def _subject(name: str) -> tuple[str, str | None]:
    """What a value is about, and the unit of its count (None: presence only)."""
    for prefix in ("role:", "database:"):
        if name.startswith(prefix):
            return f"{prefix[:-1]} {name[len(prefix):]}", None
    if name in _TREE_NAMES:
        return name, ""
    if name == "kind":
        return "kind of figures", ""
    if _REDIS_DB.fullmatch(name):
        return f"database {name}", "keys"
    return f"table {name}", "rows"


def _show(value: Value | None, unit: str) -> str:
    if isinstance(value, str) and len(value) > 16:
        return value[:12] + "…"
    return f"{value} {unit}".rstrip()


def compare(recorded: Figures, measured: Figures) -> list[Difference]:
    """Every figure that differs, sorted by name; empty when the copy matches.

    Figures of different kinds differ in ``kind`` alone. A name on one side
    only is a difference (the other side None). Counts compare exactly,
    unless either side is an estimate (``exact=False``): then two counts match
    when they differ by at most :data:`ESTIMATE_TOLERANCE` of the recorded one
    or :data:`ESTIMATE_SLACK`, whichever is larger; presence still must match.
    """
    if recorded.kind != measured.kind:
        return [Difference("kind", recorded.kind, measured.kind)]
    estimated = not (recorded.exact and measured.exact)
    differences = []
    for name in sorted(set(recorded.values) | set(measured.values)):
        before, after = recorded.values.get(name), measured.values.get(name)
        if not _matches(before, after, estimated):
            differences.append(Difference(name, before, after))
    return differences


def _matches(before: Value | None, after: Value | None, estimated: bool) -> bool:
    if before is None or after is None:
        return before is after
    if estimated and isinstance(before, int) and isinstance(after, int):
        return abs(after - before) <= max(ESTIMATE_SLACK, ESTIMATE_TOLERANCE * abs(before))
    return before == after


# --- streaming readers ------------------------------------------------------------


@dataclass
class Need:
    """A reader's request: the next ``count`` bytes, whole. ``end_ok``: the
    stream may end cleanly here instead (the reader then receives ``b""``)."""

    count: int
    end_ok: bool = False


@dataclass
class Pass:
    """A reader's request: hand the next ``count`` bytes to ``sink`` in pieces,
    without collecting them (the data of a table or a file)."""

    count: int
    sink: Callable[[memoryview], None]


@dataclass
class Consume:
    """A reader's request: hand every byte that comes to ``sink`` until it
    returns how many of the last bytes it was given it used (its part of the
    stream ended there; the rest goes to the reader's next request). For
    formats of many small records, which one Python call per record through
    :class:`Need` would make slow (a pg_dump archive frames every row)."""

    sink: Callable[[memoryview], int | None]


Reader = Generator[Need | Pass | Consume, bytes, None]
"""A stream reader: yields requests, receives what a :class:`Need` asked for
(``b""`` after a :class:`Pass`), and returns when its format says the stream is over."""


class Scanner:
    """Drives a :data:`Reader` with chunks as they pass, in bounded memory.

    A reader that raises (a format it does not know, a damaged stream) stops
    being fed and marks the scan ``failed``: gathering figures must never
    fail a backup whose data the engine's own tools accept.
    """

    def __init__(self, reader: Reader, what: str) -> None:
        self._reader = reader
        self._what = what
        self._buffer = bytearray()
        self.done = False
        self.failed = False
        self._request: Need | Pass | Consume | None = self._step(None)

    def _step(self, value: bytes | None) -> Need | Pass | Consume | None:
        try:
            # A generator starts with send(None); every later step sends bytes.
            request = self._reader.send(value)  # type: ignore[arg-type]
            if isinstance(request, Need) and not 0 <= request.count <= NEED_LIMIT:
                raise ValueError(f"a record of {request.count} bytes is not plausible")
            return request
        except StopIteration:
            self.done = True
        except Exception as exc:  # any reader fault only costs the figures
            logger.warning("cannot gather figures from %s: %s", self._what, exc)
            self.failed = True
        return None

    def feed(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view and self._request is not None:
            request = self._request
            if isinstance(request, Consume):
                used = self._consume(request, view)
                if used is None:  # all of it, and it wants more
                    return
                view = view[used:]
                if self._request is request:
                    self._request = self._step(b"")
                continue
            if isinstance(request, Pass):
                piece, view = view[:request.count], view[request.count:]
                request.sink(piece)
                request.count -= len(piece)
                if request.count == 0:
                    self._request = self._step(b"")
                continue
            wanted = request.count - len(self._buffer)
            self._buffer += view[:wanted]
            view = view[wanted:]
            self._advance_need()

    def _consume(self, request: Consume, view: memoryview) -> int | None:
        try:
            return request.sink(view)
        except Exception as exc:  # as a reader's own fault: only the figures are lost
            logger.warning("cannot gather figures from %s: %s", self._what, exc)
            self.failed = True
            self._request = None
            return len(view)

    def _advance_need(self) -> None:
        while isinstance(self._request, Need) and len(self._buffer) >= self._request.count:
            data = bytes(self._buffer)
            self._buffer.clear()
            self._request = self._step(data)
        while isinstance(self._request, Pass) and self._request.count == 0:
            self._request = self._step(b"")

    def finish(self) -> bool:
        """Call once the stream ended; True when the reader saw a whole stream."""
        self._advance_need()
        request = self._request
        if isinstance(request, Need) and request.end_ok and not self._buffer:
            self._request = self._step(b"")
        if not self.done and not self.failed:
            logger.warning("cannot gather figures from %s: the stream ended early", self._what)
            self.failed = True
        return self.done and not self.failed

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """Pass ``chunks`` through unchanged, feeding each to the reader."""
        for chunk in chunks:
            self.feed(chunk)
            yield chunk
        self.finish()


def scan(reader: Reader, chunks: Iterable[bytes], what: str) -> bool:
    """Run ``reader`` over a whole stream (a measurement, not a pass-through)."""
    scanner = Scanner(reader, what)
    for chunk in chunks:
        scanner.feed(chunk)
    return scanner.finish()
