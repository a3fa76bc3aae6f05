"""backup.multiplex (hfa2): round trips of any steps, true concurrency, and every failure.

A member's data must come out whole and in order whatever the interleaving;
sequential members must see every concurrent member before them finished; a
consumer or member that fails stops the rest and its error is the one raised;
damage of any kind is CorruptSnapshot, never a hang or a partial success.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import CorruptSnapshot
from backup.multiplex import MAGIC, Concurrent, Sequential, Step, pack, unpack

chunks_strategy = st.lists(st.binary(max_size=200), max_size=6)
step_strategy = st.one_of(
    st.tuples(st.just("S"), chunks_strategy),
    st.tuples(st.just("C"), st.lists(chunks_strategy, max_size=5), st.integers(1, 4)),
)


def build(spec: list[tuple]) -> tuple[list[Step], dict[str, bytes], list[str]]:  # type: ignore[type-arg]
    steps: list[Step] = []
    expected: dict[str, bytes] = {}
    sequential: list[str] = []
    for index, item in enumerate(spec):
        if item[0] == "S":
            name = f"s{index}"
            steps.append(Sequential(name, list(item[1])))
            expected[name] = b"".join(item[1])
            sequential.append(name)
        else:
            members = [(f"c{index}-{n}", list(chunks)) for n, chunks in enumerate(item[1])]
            steps.append(Concurrent(members, jobs=item[2]))
            expected.update((name, b"".join(chunks)) for name, chunks in members)
    return steps, expected, sequential


class Collector:
    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.finished: list[str] = []

    def __call__(self, name: str, chunks: Iterator[bytes]) -> None:
        body = b"".join(chunks)
        with self.lock:
            self.data[name] = body
            self.finished.append(name)


@given(st.lists(step_strategy, max_size=6), st.integers(1, 64))
@settings(max_examples=150, deadline=None)
def test_any_steps_round_trip_cut_anywhere(spec: list[tuple], piece: int) -> None:  # type: ignore[type-arg]
    steps, expected, sequential = build(spec)
    archive = b"".join(pack(steps))
    pieces = [archive[i:i + piece] for i in range(0, len(archive), piece)]
    seen = Collector()
    names = unpack(pieces, sequential=seen, concurrent=seen)
    assert seen.data == expected
    assert sorted(names) == sorted(expected)
    # Sequential members came through in order, each after all members before it.
    assert [n for n in seen.finished if n in sequential] == sequential
    for name in sequential:
        before = names[:names.index(name)]
        assert set(before) <= set(seen.finished[:seen.finished.index(name)])


def test_members_of_a_concurrent_step_are_read_at_the_same_time() -> None:
    # Each member waits until the other has started: with one at a time this
    # would never finish (the barrier times out and raises).
    barrier = threading.Barrier(2, timeout=10)

    def member(tag: bytes) -> Iterator[bytes]:
        yield tag + b"-first"
        barrier.wait()
        yield tag + b"-second"

    archive = b"".join(pack([Concurrent([("a", member(b"a")), ("b", member(b"b"))], jobs=2)]))
    seen = Collector()
    unpack([archive], sequential=seen, concurrent=seen)
    assert seen.data == {"a": b"a-firsta-second", "b": b"b-firstb-second"}


def test_consumers_of_concurrent_members_run_at_the_same_time() -> None:
    barrier = threading.Barrier(2, timeout=10)

    def consumer(name: str, chunks: Iterator[bytes]) -> None:
        barrier.wait()  # both must be running before either reads
        assert b"".join(chunks) == name.encode() * 3

    archive = b"".join(pack([Concurrent([("a", [b"a"] * 3), ("b", [b"b"] * 3)], jobs=2)]))
    assert sorted(unpack([archive], sequential=consumer, concurrent=consumer)) == ["a", "b"]
    assert not barrier.broken


def test_a_member_that_raises_stops_the_archive_with_its_error_and_closes_the_others() -> None:
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 1000
        finally:
            closed.set()

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise RuntimeError("pg_dump died")

    with pytest.raises(RuntimeError, match="pg_dump died"):
        for _ in pack([Concurrent([("endless", endless()), ("broken", broken())], jobs=2)]):
            pass
    assert closed.is_set()


def test_a_consumer_that_raises_stops_the_others_and_its_error_is_raised() -> None:
    stopped: list[str] = []

    def consumer(name: str, chunks: Iterator[bytes]) -> None:
        if name == "bad":
            next(chunks)
            raise ValueError("load failed")
        try:
            for _ in chunks:
                pass
        except BaseException:
            stopped.append(name)
            raise

    def big() -> Iterator[bytes]:
        for _ in range(10_000):
            yield b"y" * 4096

    archive = pack([Concurrent([("good", big()), ("bad", big())], jobs=2)])
    started = time.monotonic()
    with pytest.raises(ValueError, match="load failed"):
        unpack(archive, sequential=consumer, concurrent=consumer)
    assert time.monotonic() - started < 30
    assert stopped == ["good"]


@pytest.mark.parametrize("cut", [3, 10, 25, 40])
def test_a_truncated_archive_is_corrupt(cut: int) -> None:
    archive = b"".join(pack([Sequential("pre", [b"schema"]),
                             Concurrent([("a", [b"1" * 10]), ("b", [b"2" * 10])], jobs=2)]))
    seen = Collector()
    with pytest.raises(CorruptSnapshot):
        unpack([archive[:len(archive) - cut]], sequential=seen, concurrent=seen)


def test_damage_of_every_kind_is_corrupt() -> None:
    good = b"".join(pack([Concurrent([("a", [b"data"])], jobs=1)]))
    seen = Collector()
    for damaged in (b"HFA1\n" + good[5:],            # another format
                    good[:-1] + b"Q",                # bad end
                    good + b"trailing",              # garbage after the end
                    MAGIC + b"D" + b"\0\0\0\7" + b"\0\0\0\1x" + b"Z",  # data for no stream
                    MAGIC + b"M\0\0\0\1X\0\1aZ"):    # unknown member kind
        with pytest.raises(CorruptSnapshot):
            unpack([damaged], sequential=seen, concurrent=seen)


def test_jobs_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        list(pack([Concurrent([("a", [b"x"])], jobs=0)]))
