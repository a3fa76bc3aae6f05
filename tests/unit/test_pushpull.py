"""The push-to-pull bridge (:func:`backup.pushpull.pull_through`) keeps its contract:
what comes out is exactly what the transform writes, whatever the chunking; an
upstream failure comes out as itself and a transform's own through ``translate``;
closing early stops the worker and closes the upstream; and a consumer that stops
reading never has more than the queue's bound buffered ahead of it."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Generator, Iterator
from typing import IO

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyrage import x25519

from backup import pushpull
from backup.pushpull import pull_through

_FLIP = bytes(255 - value for value in range(256))
BOUND = (pushpull._DEPTH + 2) * pushpull._PIECE
"""Most bytes that may be in flight: the queue's slots, the piece being put and the
writer's partial one (a piece is cut once it reaches ``_PIECE``)."""


class Boom(Exception):
    """What a failing upstream raises."""


def flip_transform(read_size: int, write_size: int) -> pushpull.PushTransform:
    """A push transform that inverts every byte, reading and writing in its own sizes."""
    def transform(reader: IO[bytes], writer: IO[bytes]) -> None:
        while block := reader.read(read_size):
            flipped = block.translate(_FLIP)
            for at in range(0, len(flipped), write_size):
                writer.write(flipped[at:at + write_size])
    return transform


def copy_transform(reader: IO[bytes], writer: IO[bytes]) -> None:
    while block := reader.read(64 * 1024):
        writer.write(block)


def closable(stream: Iterator[bytes]) -> Generator[bytes, None, None]:
    """``pull_through``'s iterator, which is a generator (closing it is the contract)."""
    assert isinstance(stream, Generator)
    return stream


def worker_threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == f"holdfast-{name}"]


@given(st.lists(st.binary(max_size=2000), max_size=20), st.integers(1, 3000),
       st.integers(1, 3000))
@settings(max_examples=150, deadline=None)
def test_output_is_the_transforms_for_any_chunking(chunks: list[bytes], read_size: int,
                                                   write_size: int) -> None:
    transform = flip_transform(read_size, write_size)
    expected = io.BytesIO()
    transform(io.BytesIO(b"".join(chunks)), expected)
    assert b"".join(pull_through(transform, chunks, name="prop")) == expected.getvalue()


def test_output_larger_than_a_piece_comes_through_whole_and_in_order() -> None:
    chunks = [bytes([index % 251]) * 70_001 for index in range(40)]  # ~2.8 MB, odd sizes
    pieces = list(pull_through(flip_transform(100_000, 33_333), chunks, name="big"))
    assert b"".join(pieces) == b"".join(chunks).translate(_FLIP)
    assert len(pieces) > 1 and max(map(len, pieces)) < 2 * pushpull._PIECE


def failing_upstream(error: BaseException, good: int = 3) -> Iterator[bytes]:
    for _ in range(good):
        yield b"x" * 1000
    raise error


@pytest.mark.parametrize("library", ["python", "pyrage"])
def test_an_upstream_failure_comes_out_as_the_same_object(library: str) -> None:
    error = Boom("the dump exited 1")
    recipient = x25519.Identity.generate().to_public()

    def transform(reader: IO[bytes], writer: IO[bytes]) -> None:
        if library == "pyrage":  # pyrage wraps what its reader raised in its own error
            pyrage.encrypt_io(reader, writer, [recipient])
        else:
            copy_transform(reader, writer)

    translated: list[BaseException] = []

    def translate(exc: BaseException) -> BaseException:
        translated.append(exc)
        return exc

    with pytest.raises(Boom) as caught:
        b"".join(pull_through(transform, failing_upstream(error), name="up",
                              translate=translate))
    assert caught.value is error
    assert translated == []


class Translated(Exception):
    """What ``translate`` turns a transform's failure into."""


def test_a_transforms_own_failure_goes_through_translate() -> None:
    own = ValueError("bad block")

    def transform(reader: IO[bytes], writer: IO[bytes]) -> None:
        writer.write(reader.read(10))
        raise own

    with pytest.raises(Translated, match="translated: bad block") as caught:
        list(pull_through(transform, [b"0123456789abc"], name="own",
                          translate=lambda exc: Translated(f"translated: {exc}")))
    assert caught.value.__cause__ is own


def test_a_pyrage_failure_goes_through_translate() -> None:
    identity = x25519.Identity.generate()

    def transform(reader: IO[bytes], writer: IO[bytes]) -> None:
        pyrage.decrypt_io(reader, writer, [identity])

    with pytest.raises(Translated) as caught:
        list(pull_through(transform, [b"this is not an age file\n" * 10], name="garbage",
                          translate=lambda exc: Translated(str(exc))))
    assert isinstance(caught.value.__cause__, pyrage.DecryptError)


class CountingUpstream:
    """An endless, fast upstream that counts what was pulled and whether it was closed."""

    def __init__(self, chunk: int = 16 * 1024) -> None:
        self.chunk = chunk
        self.pulled = 0
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        block = b"z" * self.chunk
        try:
            while True:
                self.pulled += len(block)
                yield block
        finally:
            self.closed.set()

    def settled(self, quiet: float = 0.3, timeout: float = 10.0) -> int:
        """The count once it has stopped growing for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last = -1
        while last != self.pulled and time.monotonic() < deadline:
            last = self.pulled
            time.sleep(quiet)
        assert last == self.pulled, "the upstream never stopped being pulled"
        return last


@pytest.mark.parametrize("consumed_items", [0, 1, 5])
def test_closing_early_stops_the_worker_and_closes_the_upstream(consumed_items: int) -> None:
    upstream = CountingUpstream()
    stream = closable(pull_through(copy_transform, iter(upstream), name="early-close"))
    first = next(stream)  # starts the worker
    for _ in range(consumed_items):
        next(stream)
    assert worker_threads("early-close")
    stream.close()
    assert worker_threads("early-close") == []
    assert upstream.closed.is_set()
    assert first == b"z" * len(first)


def test_a_stopped_consumer_has_at_most_the_queue_bound_buffered() -> None:
    upstream = CountingUpstream()
    stream = closable(pull_through(copy_transform, iter(upstream), name="bounded"))
    consumed = len(next(stream))
    ahead = upstream.settled() - consumed
    stream.close()
    assert pushpull._PIECE <= ahead <= BOUND + 64 * 1024 + upstream.chunk, ahead


def test_pyrage_encryption_of_an_endless_stream_stays_bounded() -> None:
    recipient = x25519.Identity.generate().to_public()
    upstream = CountingUpstream()

    def transform(reader: IO[bytes], writer: IO[bytes]) -> None:
        pyrage.encrypt_io(reader, writer, [recipient])

    stream = closable(pull_through(transform, iter(upstream), name="bounded-age"))
    consumed = sum(len(next(stream)) for _ in range(3))
    ahead = upstream.settled() - consumed
    stream.close()
    assert ahead <= BOUND + 1024 * 1024, ahead  # pyrage's own buffers: well under a MiB
    assert worker_threads("bounded-age") == [] and upstream.closed.is_set()
