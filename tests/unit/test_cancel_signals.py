"""Cancel signals: a job's own request and the runner's shutdown both stop it, and
the stop says which, so a snapshot's error reads "cancelled" only when a user asked."""

from __future__ import annotations

import threading

import pytest

from backup.cancel import (
    BY_REQUEST,
    BY_SHUTDOWN,
    CancelSignals,
    ExecHolders,
    raise_if_cancelled,
    requested,
)
from backup.errors import Cancelled
from backup.streams import interruptible


def test_a_jobs_request_stops_only_that_job_and_says_so() -> None:
    shutdown = threading.Event()
    signals = CancelSignals(shutdown)
    mine, other = signals.of("job-1"), signals.of("job-2")
    mine.request()
    assert (mine(), other()) == (True, False)
    assert requested(mine) and not requested(other)
    with pytest.raises(Cancelled, match=f"^{BY_REQUEST}$"):
        raise_if_cancelled(mine)
    raise_if_cancelled(other)


def test_shutdown_stops_every_job_as_a_shutdown() -> None:
    shutdown = threading.Event()
    signals = CancelSignals(shutdown)
    signal = signals.of("job-1")
    shutdown.set()
    assert signal() and not requested(signal)
    with pytest.raises(Cancelled, match=f"^{BY_SHUTDOWN}$"):
        list(interruptible([b"a", b"b"], signal))


def test_a_plain_callable_is_never_a_users_request() -> None:
    assert not requested(lambda: True)
    with pytest.raises(Cancelled, match=f"^{BY_SHUTDOWN}$"):
        raise_if_cancelled(lambda: True)


def test_the_same_job_gets_the_same_signal_until_it_is_forgotten() -> None:
    signals = CancelSignals(threading.Event())
    first = signals.of("job-1")
    first.request()
    assert signals.of("job-1") is first
    signals.forget("job-1")
    assert not signals.of("job-1")()


def test_a_cut_holder_stays_cut_until_its_last_block_ends() -> None:
    holders = ExecHolders()
    holders.cut("job-1")  # holds nothing yet: ended, so nothing to cut
    assert not holders.is_cut("job-1")
    with holders.holding("job-1"):
        assert holders.current() == "job-1"
        with holders.holding("job-1"), holders.unheld():
            assert holders.current() is None
            holders.cut("job-1")
        assert holders.is_cut("job-1") and not holders.is_cut("job-2")
        assert not holders.is_cut(None)
    assert holders.current() is None and not holders.is_cut("job-1")


def test_holders_are_per_thread() -> None:
    holders = ExecHolders()
    seen: list[str | None] = []
    with holders.holding("job-1"):
        worker = threading.Thread(target=lambda: seen.append(holders.current()))
        worker.start()
        worker.join()
    assert seen == [None]
