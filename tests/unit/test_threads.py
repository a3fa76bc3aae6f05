"""backup.threads.prefetched: order, errors in place, bounded read-ahead, early stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import CorruptSnapshot
from backup.threads import prefetched


@given(st.lists(st.binary(max_size=64), max_size=50), st.integers(1, 8))
@settings(max_examples=100, deadline=None)
def test_items_come_out_in_order_and_complete(items: list[bytes], depth: int) -> None:
    assert list(prefetched(items, depth=depth)) == items


def test_an_error_is_raised_after_the_items_before_it() -> None:
    def source() -> Iterator[bytes]:
        yield b"a"
        yield b"b"
        raise CorruptSnapshot("damaged here")

    seen: list[bytes] = []
    with pytest.raises(CorruptSnapshot, match="damaged here"):
        for item in prefetched(source()):
            seen.append(item)
    assert seen == [b"a", b"b"]


def test_it_reads_no_more_than_depth_ahead() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for number in range(100):
            produced.append(number)
            yield number

    stream = prefetched(source(), depth=3)
    assert next(stream) == 0
    time.sleep(0.3)  # time for the worker to run as far ahead as it may
    # Three queued, plus the one the worker holds while the queue is full.
    assert len(produced) <= 1 + 3 + 1
    assert list(stream) == list(range(1, 100))


def test_stopping_early_closes_the_source_and_ends_the_worker() -> None:
    closed = threading.Event()

    def source() -> Iterator[int]:
        try:
            yield from range(1_000_000)
        finally:
            closed.set()

    before = threading.active_count()
    stream = prefetched(source(), depth=2, name="prefetch-test")
    assert [next(stream), next(stream)] == [0, 1]
    stream.close()
    assert closed.is_set()
    assert not any(t.name == "prefetch-test" for t in threading.enumerate())
    assert threading.active_count() <= before


def test_a_depth_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next(prefetched([b"x"], depth=0))
