"""A streaming archive whose members can be written and read several at once ("hfa2").

A parallel dump runs several dump processes at the same time and a parallel
restore feeds several load processes at the same time, while the snapshot stays
one object written and read front to back: no member is buffered whole and no
temporary file is needed. Members are framed as in :mod:`backup.framing`
(hfa1), but every record carries the number of the stream it belongs to, so
the data of the members of one *concurrent* step interleave in the order the
dump produced them; a reader hands each member's data to its own consumer.

An archive is a sequence of steps. A *sequential* member is written whole
before the next step starts (a schema, which the loads after it need); a
*concurrent* step writes its members interleaved, up to ``jobs`` open at a
time, and ends when all have ended. A reader runs a sequential member's
consumer inline, and the consumers of concurrent members in threads, waiting
for all of them before the next sequential member. Memory stays bounded on
both sides by queue depths of whole records.

Layout (all integers big-endian)::

    b"HFA2\\n"
    b"M" u32 stream u8 kind u16 name-length name   open a member (kind S or C)
    b"D" u32 stream u32 length data                data of that member
    b"E" u32 stream                                end of that member
    b"Z"                                           end of archive
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import queue
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from backup.errors import CorruptSnapshot
from backup.framing import _Reader

MAGIC = b"HFA2\n"
SEQUENTIAL, CONCURRENT = b"S", b"C"
MAX_OPEN = 64
"""Concurrent members a reader accepts open at once (an archive claiming more is corrupt)."""
_MAX_RECORD = 4 * 1024 * 1024
_POLL = 0.1


@dataclass(frozen=True)
class Sequential:
    """One member written whole before the next step."""

    name: str
    chunks: Iterable[bytes]


@dataclass(frozen=True)
class Concurrent:
    """Members written interleaved, up to ``jobs`` at a time, each pulled lazily
    (so a member's process starts when a worker takes it up)."""

    members: Iterable[tuple[str, Iterable[bytes]]]
    jobs: int


Step = Sequential | Concurrent


def _open(stream: int, kind: bytes, name: str) -> bytes:
    encoded = name.encode()
    return b"M" + struct.pack(">IcH", stream, kind, len(encoded)) + encoded


def _data(stream: int, chunk: bytes) -> Iterator[bytes]:
    for start in range(0, len(chunk), _MAX_RECORD):
        piece = chunk[start:start + _MAX_RECORD]
        yield b"D" + struct.pack(">II", stream, len(piece)) + piece


def _end(stream: int) -> bytes:
    return b"E" + struct.pack(">I", stream)


def pack(steps: Iterable[Step], depth: int = 16) -> Iterator[bytes]:
    """Frame ``steps`` into one archive stream, lazily. A concurrent step's
    members are read by worker threads, at most ``depth`` chunks ahead of the
    consumer; an exception a member raises is raised here, after the workers
    have stopped and closed what they read."""
    yield MAGIC
    numbers = iter(range(1, 2**32))
    for step in steps:
        if isinstance(step, Sequential):
            stream = next(numbers)
            yield _open(stream, SEQUENTIAL, step.name)
            for chunk in step.chunks:
                if chunk:
                    yield from _data(stream, chunk)
            yield _end(stream)
        else:
            yield from _ConcurrentWriter(step, numbers, depth).records()
    yield b"Z"


class _ConcurrentWriter:
    """Worker threads that read a concurrent step's members into one queue of records."""

    def __init__(self, step: Concurrent, numbers: Iterator[int], depth: int) -> None:
        if step.jobs < 1:
            raise ValueError("jobs must be at least 1")
        self._members = iter(step.members)
        self._jobs = step.jobs
        self._numbers = numbers
        self._lock = threading.Lock()
        self._out: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()

    def records(self) -> Iterator[bytes]:
        # Each worker runs in a copy of this context: the commands its members
        # start belong to the job that reads the archive (backup.cancel).
        workers = [threading.Thread(target=contextvars.copy_context().run, args=(self._work,),
                                    name=f"pack-{n}", daemon=True) for n in range(self._jobs)]
        for worker in workers:
            worker.start()
        finished = 0
        try:
            while finished < len(workers):
                item = self._out.get()
                if item is None:
                    finished += 1
                elif isinstance(item, BaseException):
                    raise item
                else:
                    yield item
        finally:
            self._stop.set()
            while any(worker.is_alive() for worker in workers):
                with contextlib.suppress(queue.Empty):
                    self._out.get(timeout=_POLL)

    def _next_member(self) -> tuple[int, str, Iterable[bytes]] | None:
        with self._lock:  # the members' iterable is shared by the workers
            member = next(self._members, None)
            return None if member is None else (next(self._numbers), *member)

    def _work(self) -> None:
        try:
            while not self._stop.is_set() and (member := self._next_member()) is not None:
                self._copy(*member)
        except BaseException as exc:  # raised to the archive's consumer
            self._put(exc)
            return
        self._put(None)

    def _copy(self, stream: int, name: str, chunks: Iterable[bytes]) -> None:
        source = iter(chunks)
        try:
            if not self._put(_open(stream, CONCURRENT, name)):
                return
            for chunk in source:
                for record in _data(stream, chunk):
                    if not self._put(record):
                        return
            self._put(_end(stream))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._out.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False


# --- reading -------------------------------------------------------------------------

def sniff(chunks: Iterable[bytes]) -> tuple[bool, Iterator[bytes]]:
    """Whether a stream is an hfa2 archive, and the stream again, whole."""
    stream = iter(chunks)
    head = b""
    for chunk in stream:
        head += chunk
        if len(head) >= len(MAGIC):
            break
    return head.startswith(MAGIC), itertools.chain([head], stream)


Consumer = Callable[[str, Iterator[bytes]], None]
"""Takes a member's name and its data; must read the data to its end (or raise)."""


class _Aborted(Exception):
    """A concurrent member's data stops because the archive's reading failed."""


def unpack(chunks: Iterable[bytes], *, sequential: Consumer, concurrent: Consumer,
           depth: int = 8) -> list[str]:
    """Read an archive, handing each member to a consumer: ``sequential`` ones
    inline, ``concurrent`` ones in a thread each (up to ``depth`` records of
    data queued for it), all of which have returned before the next sequential
    member is handed over and before this returns. Returns the member names in
    the order they opened. The first exception, from the archive (damage:
    :class:`CorruptSnapshot`) or from a consumer, is raised once every
    consumer thread has stopped; the others then see their data end in an error."""
    dispatch = _Dispatch(concurrent, depth)
    reader = _Reader(chunks)
    if reader.read_exact(len(MAGIC)) != MAGIC:
        raise CorruptSnapshot("snapshot data is not a Holdfast hfa2 archive (bad header)")
    names: list[str] = []
    try:
        while (kind := reader.read_exact(1)) != b"Z":
            if kind != b"M":
                dispatch.record(kind, reader)
                continue
            stream, member_kind, name = _read_open(reader)
            names.append(name)
            if member_kind == SEQUENTIAL:
                dispatch.join()
                data = _inline(reader, stream, name)
                sequential(name, data)
                for _ in data:  # what the consumer left, up to the member's end
                    pass
            else:
                dispatch.start(stream, name)
        if not reader.at_end():
            raise CorruptSnapshot("snapshot archive has data after its end record")
        if dispatch.open_streams():
            raise CorruptSnapshot("snapshot archive ends with members still open")
    except BaseException as exc:
        dispatch.abort(exc)
        dispatch.join(raising=False)
        raise
    dispatch.join()
    return names


def _read_open(reader: _Reader) -> tuple[int, bytes, str]:
    stream, kind, length = struct.unpack(">IcH", reader.read_exact(7))
    if kind not in (SEQUENTIAL, CONCURRENT):
        raise CorruptSnapshot(f"snapshot archive has a member of unknown kind {kind!r}")
    try:
        return stream, kind, reader.read_exact(length).decode()
    except UnicodeDecodeError:
        raise CorruptSnapshot("snapshot archive has a damaged member name") from None


def _inline(reader: _Reader, stream: int, name: str) -> Iterator[bytes]:
    """A sequential member's data, read straight from the archive."""
    while True:
        kind = reader.read_exact(1)
        (number,) = struct.unpack(">I", reader.read_exact(4))
        if number != stream or kind not in (b"D", b"E"):
            raise CorruptSnapshot(f"snapshot archive interleaves another member with {name}")
        if kind == b"E":
            return
        yield from _payload(reader)


def _payload(reader: _Reader) -> Iterator[bytes]:
    (length,) = struct.unpack(">I", reader.read_exact(4))
    if length > _MAX_RECORD:
        raise CorruptSnapshot("snapshot archive has an oversized record")
    yield reader.read_exact(length)


class _Dispatch:
    """The consumer threads of the concurrent members open now, and their queues."""

    def __init__(self, consumer: Consumer, depth: int) -> None:
        self._consumer = consumer
        self._depth = depth
        self._queues: dict[int, queue.Queue[bytes | BaseException | None]] = {}
        self._threads: list[threading.Thread] = []
        self._failed: list[BaseException] = []
        self._lock = threading.Lock()

    def open_streams(self) -> int:
        return len(self._queues)

    def start(self, stream: int, name: str) -> None:
        self._raise_if_failed()
        if stream in self._queues:
            raise CorruptSnapshot(f"snapshot archive opens stream {stream} twice")
        if len(self._queues) >= MAX_OPEN:
            raise CorruptSnapshot(f"snapshot archive has more than {MAX_OPEN} members open")
        feed: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=self._depth)
        self._queues[stream] = feed
        thread = threading.Thread(target=contextvars.copy_context().run,
                                  args=(self._consume, name, feed),
                                  name=f"unpack-{stream}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def record(self, kind: bytes, reader: _Reader) -> None:
        if kind not in (b"D", b"E"):
            raise CorruptSnapshot(f"snapshot archive has a bad record {kind!r}")
        (stream,) = struct.unpack(">I", reader.read_exact(4))
        feed = self._queues.get(stream)
        if feed is None:
            raise CorruptSnapshot(f"snapshot archive has data for stream {stream}, not open")
        if kind == b"E":
            del self._queues[stream]
            self._put(feed, None)
        else:
            for piece in _payload(reader):
                self._put(feed, piece)

    def _put(self, feed: queue.Queue[bytes | BaseException | None],
             item: bytes | BaseException | None) -> None:
        while True:
            self._raise_if_failed()
            try:
                feed.put(item, timeout=_POLL)
                return
            except queue.Full:
                continue

    def _consume(self, name: str, feed: queue.Queue[bytes | BaseException | None]) -> None:
        def data() -> Iterator[bytes]:
            while (item := feed.get()) is not None:
                if isinstance(item, BaseException):
                    raise _Aborted(str(item))
                yield item
        stream = data()
        try:
            self._consumer(name, stream)
            for _ in stream:  # what the consumer left: the reader must not block on it
                pass
        except _Aborted:
            pass
        except BaseException as exc:
            with self._lock:
                self._failed.append(exc)

    def _raise_if_failed(self) -> None:
        with self._lock:
            if self._failed:
                raise self._failed[0]

    def abort(self, error: BaseException) -> None:
        """End every open member's data with an error, so their consumers stop."""
        for feed in self._queues.values():
            while True:  # make room: the consumer sees the error next
                try:
                    feed.put_nowait(error)
                    break
                except queue.Full:
                    with contextlib.suppress(queue.Empty):
                        feed.get_nowait()
        self._queues.clear()

    def join(self, raising: bool = True) -> None:
        """Wait for every consumer thread; then raise the first consumer's error."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if raising:
            self._raise_if_failed()
