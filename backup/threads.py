"""Stream stages that run in a thread of their own, so that stages overlap.

A restore reads the stored object, checks its sha256, decompresses it and
writes it to a container's exec socket. On one thread these steps take turns:
while the socket write waits for the database to take more data, nothing reads
ahead. :func:`prefetched` runs the stages before it in a worker thread, a
bounded number of chunks ahead (hashlib, zstandard and socket writes release
the GIL, so on two cores the stages truly run at once). Memory stays bounded by
``depth`` chunks; errors reach the consumer at the point of the stream where
they happened; a consumer that stops early stops the worker and closes the
source, which then releases what it holds (a storage read, an exec).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable
from typing import TypeVar

T = TypeVar("T")

_POLL = 0.1
"""Seconds a blocked worker waits before it looks whether the consumer has gone."""


class _End:
    """The worker's last message: the source ended, or raised ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def prefetched(items: Iterable[T], depth: int = 4,
               name: str = "prefetch") -> Generator[T, None, None]:
    """Yield ``items`` in order, pulled up to ``depth`` ahead by a worker thread.

    An exception the source raises is raised here after the items before it.
    Closing this generator (or leaving a ``for`` loop over it) stops the worker
    and closes the source generator in the worker's thread before it returns.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    handoff: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    worker = threading.Thread(target=_produce, args=(items, handoff, stop), name=name,
                              daemon=True)
    worker.start()
    try:
        while True:
            item = handoff.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        _drain(handoff, worker)


def _produce(items: Iterable[T], handoff: queue.Queue[T | _End], stop: threading.Event) -> None:
    source = iter(items)
    end = _End()
    try:
        for item in source:
            if not _offer(handoff, item, stop):
                return
    except BaseException as exc:  # handed to the consumer, which raises it
        end = _End(exc)
    finally:
        close = getattr(source, "close", None)
        if stop.is_set() and close is not None:
            close()
    _offer(handoff, end, stop)


def _offer(handoff: queue.Queue[T | _End], item: T | _End, stop: threading.Event) -> bool:
    """Put ``item`` unless the consumer has gone; False if it has."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _drain(handoff: queue.Queue[T | _End], worker: threading.Thread) -> None:
    """Empty the queue until the worker has finished (it may be blocked putting)."""
    while worker.is_alive():
        try:
            handoff.get(timeout=_POLL)
        except queue.Empty:
            continue
