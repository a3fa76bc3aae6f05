"""Running a push-style stream transform as one more pull stage of a pipeline.

Some libraries transform streams only by pushing: they read from one file
object and write to another until the input ends (pyrage's ``encrypt_io`` and
``decrypt_io``). Holdfast's pipeline pulls: each stage is a generator of
chunks. :func:`pull_through` joins the two without a temporary file: the
transform runs on a worker thread that reads the upstream chunks and writes
into a small bounded queue, which the generator drains. The queue's bound is
the back-pressure, so memory stays flat whatever the stream's size.

Failures keep their meaning across the thread: an exception raised by the
upstream chunks (a dump that failed, a cancelled run) is re-raised as itself,
not as the library's wrapper of it; the library's own errors go through the
caller's ``translate``. Closing the generator early stops the worker at its
next read or write and closes the upstream from the worker's side (a
generator may only be closed by the thread running it).
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

logger = logging.getLogger(__name__)

PushTransform = Callable[[IO[bytes], IO[bytes]], Any]
"""``transform(reader, writer)``: reads ``reader`` to its end, writes the result."""

_PIECE = 256 * 1024
_DEPTH = 8
"""Queue slots of up to ``_PIECE`` bytes each: at most ~2 MiB in flight."""
_JOIN_TIMEOUT = 30.0


class _Stopped(Exception):
    """Raised inside the worker when the consumer has gone away."""


class _Done:
    """The worker's last queue item: the transform's outcome."""

    def __init__(self, failure: BaseException | None) -> None:
        self.failure = failure


class _UpstreamReader(io.RawIOBase):
    """A raw file object over the upstream chunks that remembers what they raised."""

    def __init__(self, chunks: Iterable[bytes], stop: threading.Event) -> None:
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")
        self._stop = stop
        self.failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            if self._stop.is_set():
                raise _Stopped()
            try:
                self._pending = memoryview(next(self._chunks))
            except StopIteration:
                return 0
            except BaseException as exc:
                self.failure = exc
                raise
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def close_upstream(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class _QueueWriter(io.RawIOBase):
    """A raw file object that gathers writes into pieces and queues them."""

    def __init__(self, out: queue.Queue[bytes | _Done], stop: threading.Event) -> None:
        self._out = out
        self._stop = stop
        self._buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        if len(self._buffer) >= _PIECE:
            self.flush_piece()
        return len(data)

    def flush_piece(self) -> None:
        if self._buffer:
            self.put(bytes(self._buffer))
            self._buffer.clear()

    def put(self, item: bytes | _Done) -> None:
        while True:
            if self._stop.is_set():
                raise _Stopped()
            try:
                self._out.put(item, timeout=0.2)
                return
            except queue.Full:
                continue


def pull_through(transform: PushTransform, chunks: Iterable[bytes], *,
                 translate: Callable[[BaseException], BaseException] = lambda exc: exc,
                 name: str = "stream") -> Iterator[bytes]:
    """Yield what ``transform`` writes when it reads ``chunks``.

    Raises what the upstream raised, as itself; any other failure of the
    transform is raised as ``translate(exc)``. ``name`` names the worker
    thread (for thread dumps and logs).
    """
    out: queue.Queue[bytes | _Done] = queue.Queue(maxsize=_DEPTH)
    stop = threading.Event()
    reader = _UpstreamReader(chunks, stop)
    writer = _QueueWriter(out, stop)

    def work() -> None:
        failure: BaseException | None = None
        try:
            transform(reader, writer)  # type: ignore[arg-type]
            writer.flush_piece()
        except BaseException as exc:
            failure = reader.failure or exc
        finally:
            try:
                reader.close_upstream()
            except BaseException as exc:  # the consumer is told what failed first
                failure = failure or exc
        if not isinstance(failure, _Stopped):
            with contextlib.suppress(_Stopped):  # the consumer has gone: nobody to tell
                writer.put(_Done(failure))

    worker = threading.Thread(target=work, name=f"holdfast-{name}", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if isinstance(item, _Done):
                if item.failure is None:
                    return
                if item.failure is reader.failure:
                    raise item.failure
                raise translate(item.failure) from item.failure
            yield item
    finally:
        stop.set()
        _drain_until_done(out, worker)


def _drain_until_done(out: queue.Queue[bytes | _Done], worker: threading.Thread) -> None:
    """Empty the queue so a worker blocked on it wakes, and wait for it (bounded:
    a worker stuck in the upstream's own read is left to end with it)."""
    worker.join(timeout=0)
    waited = 0.0
    while worker.is_alive() and waited < _JOIN_TIMEOUT:
        try:
            while True:
                out.get_nowait()
        except queue.Empty:
            pass
        worker.join(timeout=0.1)
        waited += 0.1
    if worker.is_alive():
        logger.warning("%s worker still waiting on its input after %.0fs; leaving it",
                       worker.name, _JOIN_TIMEOUT)
