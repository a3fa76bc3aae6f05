"""Waiting for asynchronous state, with a deadline, for the tests that drive real processes.

A daemon, a Docker engine and a database all change state on their own time: a
helper container appears after the app it archives has stopped, a container's
event reaches discovery a moment after ``docker run`` returns, a metric moves
after the catalog row it counts. A test that reads such state once races the
thing it watches, and goes red on a busy machine. Every assertion on state
something else produces therefore polls for it with :func:`wait_for`, which
returns the first truthy value (so the test can go on asserting on it) and
fails with what it was waiting for, and the last value seen, once the deadline
passes. Deadlines are generous upper bounds, never measurements: a passing run
waits only as long as the state takes to appear.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

_T = TypeVar("_T")


def wait_for(condition: Callable[[], _T | Literal[False] | None], timeout: float, what: str,
             interval: float = 0.1) -> _T:
    """Poll ``condition`` until it returns something truthy and return that (so
    never None or False, which the type says); raise AssertionError naming
    ``what`` and the last value once ``timeout`` seconds have passed. The
    condition is always tried once more after the deadline, so a slow poll
    never fails a state that did arrive."""
    deadline = time.monotonic() + timeout
    while True:
        expired = time.monotonic() > deadline
        result = condition()
        if result:
            return result
        if expired:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} "
                                 f"(last: {result!r})")
        time.sleep(interval)
