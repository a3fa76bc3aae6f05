"""A streaming multi-member archive format ("hfa1") for snapshot data.

One snapshot holds several dumps (Postgres: the globals plus one custom-format
dump per database). tar cannot carry them without knowing each member's size up
front, which would force a temporary file, so members are framed instead: a
magic header, then for each member a name record followed by length-prefixed
data records and an end record, and a final end-of-archive record. A reader can
walk the archive in one pass with bounded memory, and a truncated archive is
detected because its end record is missing.

Layout (all integers big-endian)::

    b"HFA1\\n"
    b"M" u16 name-length name      start of a member
    b"D" u32 length data           data of the current member (repeated)
    b"E"                           end of the current member
    b"Z"                           end of archive
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from backup.errors import CorruptSnapshot
from backup.streams import read_all

MAGIC = b"HFA1\n"
_MAX_RECORD = 4 * 1024 * 1024


def pack(members: Iterable[tuple[str, Iterable[bytes]]]) -> Iterator[bytes]:
    """Frame ``(name, chunks)`` members into one archive stream, lazily.

    Each member's chunks are pulled only when the archive reaches it, so a member
    can be a live process's output that starts when the previous one ended.
    """
    yield MAGIC
    for name, chunks in members:
        encoded = name.encode()
        yield b"M" + struct.pack(">H", len(encoded)) + encoded
        for chunk in chunks:
            for start in range(0, len(chunk), _MAX_RECORD):
                piece = chunk[start : start + _MAX_RECORD]
                if piece:
                    yield b"D" + struct.pack(">I", len(piece)) + piece
        yield b"E"
    yield b"Z"


class _Reader:
    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()

    def read_exact(self, count: int) -> bytes:
        while len(self._buffer) < count:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                raise CorruptSnapshot("snapshot archive ends early (truncated data)") from None
        out = bytes(self._buffer[:count])
        del self._buffer[:count]
        return out

    def read_stream(self, count: int) -> Iterator[bytes]:
        """Yield exactly ``count`` bytes in pieces, without collecting them."""
        remaining = count
        while remaining:
            if not self._buffer:
                try:
                    self._buffer += next(self._chunks)
                except StopIteration:
                    raise CorruptSnapshot("snapshot archive ends early (truncated data)") from None
            piece = bytes(self._buffer[:remaining])
            del self._buffer[: len(piece)]
            remaining -= len(piece)
            yield piece

    def at_end(self) -> bool:
        if self._buffer:
            return False
        for chunk in self._chunks:
            if chunk:
                self._buffer += chunk
                return False
        return True


class Member:
    """One archive member; iterate it for its data. Must be consumed (or
    :meth:`skip`-ped) before the next member is read."""

    def __init__(self, name: str, reader: _Reader) -> None:
        self.name = name
        self._reader = reader
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        if self.done:
            return
        while True:
            kind = self._reader.read_exact(1)
            if kind == b"E":
                self.done = True
                return
            if kind != b"D":
                raise CorruptSnapshot(f"snapshot archive has a bad record {kind!r} in {self.name}")
            (length,) = struct.unpack(">I", self._reader.read_exact(4))
            if length > _MAX_RECORD:
                raise CorruptSnapshot("snapshot archive has an oversized record")
            yield from self._reader.read_stream(length)

    def skip(self) -> None:
        for _ in self:
            pass

    def read_small(self, limit: int = 16 * 1024 * 1024) -> bytes:
        """The whole member, for the small ones (metadata); refuses more than ``limit``."""
        return read_all(self, limit)


def unpack(chunks: Iterable[bytes]) -> Iterator[Member]:
    """Walk an archive stream, yielding members in order.

    Raises :class:`CorruptSnapshot` on a bad header, a malformed record, a
    truncated stream or trailing garbage.
    """
    reader = _Reader(chunks)
    if reader.read_exact(len(MAGIC)) != MAGIC:
        raise CorruptSnapshot("snapshot data is not a Holdfast archive (bad header)")
    while True:
        kind = reader.read_exact(1)
        if kind == b"Z":
            if not reader.at_end():
                raise CorruptSnapshot("snapshot archive has data after its end record")
            return
        if kind != b"M":
            raise CorruptSnapshot(f"snapshot archive has a bad record {kind!r}")
        (length,) = struct.unpack(">H", reader.read_exact(2))
        raw_name = reader.read_exact(length)
        try:
            name = raw_name.decode()
        except UnicodeDecodeError:
            raise CorruptSnapshot("snapshot archive has a damaged member name") from None
        member = Member(name, reader)
        yield member
        if not member.done:
            member.skip()
