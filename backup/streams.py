"""Stream plumbing: every stage is a generator of ``bytes`` chunks.

A snapshot flows from the container's stdout through compression and hashing
into a storage target without ever being held whole in memory or written to a
temporary dump file: each stage pulls one chunk at a time from the one before,
so back-pressure reaches the dump process through the Docker exec socket and
memory stays flat whatever the dump size.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterable, Iterator

import zstandard

from backup.cancel import raise_if_cancelled
from backup.errors import CorruptSnapshot

CHUNK_SIZE = 1024 * 1024
ZSTD_LEVEL = 3

ProgressCallback = Callable[[int, float], None]
"""Called with (bytes so far, seconds elapsed) as data passes."""


class Meter:
    """Counts bytes and hashes them as they pass, without buffering."""

    def __init__(self, progress: ProgressCallback | None = None, interval: float = 0.5) -> None:
        self.size = 0
        self._sha = hashlib.sha256()
        self._progress = progress
        self._interval = interval
        self._started = time.monotonic()
        self._last_report = 0.0

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def measure(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.size += len(chunk)
            self._sha.update(chunk)
            if self._progress is not None:
                now = time.monotonic()
                if now - self._last_report >= self._interval:
                    self._last_report = now
                    self._progress(self.size, now - self._started)
            yield chunk
        if self._progress is not None:
            self._progress(self.size, self.elapsed)


def interruptible(chunks: Iterable[bytes], cancelled: Callable[[], bool]) -> Iterator[bytes]:
    """Pass chunks through until ``cancelled()`` turns true, then raise
    :class:`~backup.errors.Cancelled` (saying why: :func:`backup.cancel.raise_if_cancelled`);
    the storage target then discards its partial write."""
    for chunk in chunks:
        raise_if_cancelled(cancelled)
        yield chunk


def compress(chunks: Iterable[bytes], level: int = ZSTD_LEVEL) -> Iterator[bytes]:
    """zstd-compress a chunk stream into one zstd frame, emitting ~1 MiB pieces."""
    # The frame checksum lets the decoder itself reject damaged data at the
    # frame's end, on top of the manifest's sha256 of the stored bytes.
    compressor = zstandard.ZstdCompressor(level=level, write_checksum=True)
    chunker = compressor.chunker(chunk_size=CHUNK_SIZE)
    for chunk in chunks:
        yield from chunker.compress(chunk)
    yield from chunker.finish()  # type: ignore[no-untyped-call]


_DECODE_SLICE = 2048
"""Compressed bytes fed to the decoder per call. zstd expands at most about
32768:1 (a 3-byte RLE block stands for 128 KiB) and the decoder returns all it
makes at once, so slices this small bound one call's output to ~64 MiB however
compressible the dump (1 MiB of compressed zeros would otherwise come out as one
32 GiB piece), at the cost of about a third of the decoder's speed on ordinary
dumps (still ~1 GiB/s here, faster than sha256 or any restore)."""


def decompress(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Inverse of :func:`compress`, in pieces of about :data:`CHUNK_SIZE` (never
    more than ~64 MiB). A truncated frame raises :class:`CorruptSnapshot`."""
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        view = memoryview(chunk)
        for start in range(0, len(view), _DECODE_SLICE):
            try:
                out = decompressor.decompress(view[start:start + _DECODE_SLICE])
            except zstandard.ZstdError as exc:
                raise CorruptSnapshot(f"snapshot data is corrupt (not valid zstd: {exc})") \
                    from exc
            parts.append(out)
            size += len(out)
            if size >= CHUNK_SIZE:
                yield b"".join(parts)
                parts, size = [], 0
    if size:
        yield b"".join(parts)
    if not decompressor.eof:
        raise CorruptSnapshot("snapshot data ends before its zstd frame does (truncated object)")


def verify(chunks: Iterable[bytes], *, sha256: str, size: int) -> Iterator[bytes]:
    """Pass chunks through and raise :class:`CorruptSnapshot` at the end if they
    do not have the expected size and sha256 (the manifest's)."""
    meter = Meter()
    yield from meter.measure(chunks)
    if meter.size != size:
        raise CorruptSnapshot(f"snapshot data is {meter.size} bytes, its manifest says {size}")
    if meter.sha256 != sha256:
        raise CorruptSnapshot(
            f"snapshot data sha256 {meter.sha256[:12]}… does not match its manifest "
            f"({sha256[:12]}…): the stored object is corrupt"
        )


def rechunk(chunks: Iterable[bytes], size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Regroup a stream of small chunks into pieces of about ``size`` bytes."""
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def read_all(chunks: Iterable[bytes], limit: int) -> bytes:
    """Collect a stream that is known to be small (a manifest), refusing more than ``limit``."""
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > limit:
            raise CorruptSnapshot(f"object is larger than the {limit} bytes expected")
    return bytes(out)


class IterStream(io.RawIOBase):
    """A raw read-only file object over a chunk iterator. Like any raw stream it
    may return short reads; wrap it with :func:`as_file` for ``read(n)`` that
    fills ``n`` bytes."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                self._pending = next(self._chunks)
            except StopIteration:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def as_file(chunks: Iterable[bytes], buffer_size: int = CHUNK_SIZE) -> io.BufferedReader:
    """A buffered file object over chunks, for APIs that want ``read(n)``."""
    return io.BufferedReader(IterStream(chunks), buffer_size=buffer_size)
