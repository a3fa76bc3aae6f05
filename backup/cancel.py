"""Cancel signals: why a run should stop, as the ``cancelled`` checks of the pipeline see it.

The pipeline and the restore runner take ``cancelled: Callable[[], bool]`` and
look at it between chunks and between steps. A :class:`CancelSignal` is such a
callable that also says whether a user asked for the stop (``DELETE
/v1/jobs/{id}``) or the process is shutting down, so the records of the run can
say which. :class:`CancelSignals` keeps one per job of a runner; all of them
also turn true when the runner's shutdown event is set. :class:`ExecHolders`
says which job the commands a thread runs in containers belong to, so a cancel
cuts that job's commands only.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from backup.errors import Cancelled

BY_REQUEST = "cancelled"
"""A snapshot's error when a user cancelled the run that wrote it."""
BY_SHUTDOWN = "cancelled: Holdfast is shutting down"


class CancelSignal:
    """True once :meth:`request` was called or ``shutdown`` is set."""

    def __init__(self, shutdown: threading.Event | None = None) -> None:
        self._shutdown = shutdown or threading.Event()
        self._requested = threading.Event()

    def request(self) -> None:
        self._requested.set()

    @property
    def requested(self) -> bool:
        """Whether a user asked for the stop (not only a shutdown)."""
        return self._requested.is_set()

    def __call__(self) -> bool:
        return self._requested.is_set() or self._shutdown.is_set()


def requested(cancelled: Callable[[], bool]) -> bool:
    """Whether ``cancelled`` is a signal a user raised (a plain callable never is)."""
    return isinstance(cancelled, CancelSignal) and cancelled.requested


def raise_if_cancelled(cancelled: Callable[[], bool]) -> None:
    """:class:`Cancelled` (saying why) if ``cancelled()`` is true; for the
    checks between steps, where no chunk passes through ``interruptible``."""
    if cancelled():
        raise Cancelled(BY_REQUEST if requested(cancelled) else BY_SHUTDOWN)


class CancelSignals:
    """One :class:`CancelSignal` per job id, all tied to one shutdown event.
    Safe from any thread; a job's signal is dropped with :meth:`forget`."""

    def __init__(self, shutdown: threading.Event) -> None:
        self._shutdown = shutdown
        self._lock = threading.Lock()
        self._signals: dict[str, CancelSignal] = {}

    def of(self, job_id: str) -> CancelSignal:
        with self._lock:
            signal = self._signals.get(job_id)
            if signal is None:
                signal = self._signals[job_id] = CancelSignal(self._shutdown)
            return signal

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._signals.pop(job_id, None)


_current_holder: ContextVar[str | None] = ContextVar("holdfast_exec_holder", default=None)


class ExecHolders:
    """Which job ("holder") the container commands a thread starts belong to,
    and which holders were cut. The Docker adapter and its fake both keep their
    execs' owners here, so both follow the same rules:

    - inside :meth:`holding` a thread's commands are the holder's;
    - :meth:`cut` of a holder that holds makes :meth:`is_cut` true until its last
      ``holding`` block ends, so a cancelled job starts no command after the cut;
    - a cut of a holder that holds nothing is a no-op (it has ended).

    The caller cuts first and then collects the holder's open commands, and
    registers a new command before asking :meth:`is_cut`, so no command of a cut
    holder slips between the two. Safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        self._cut: set[str] = set()

    @contextlib.contextmanager
    def holding(self, holder: str) -> Iterator[None]:
        token = _current_holder.set(holder)
        with self._lock:
            self._held[holder] += 1
        try:
            yield
        finally:
            _current_holder.reset(token)
            with self._lock:
                self._held[holder] -= 1
                if self._held[holder] <= 0:
                    del self._held[holder]
                    self._cut.discard(holder)

    @contextlib.contextmanager
    def unheld(self) -> Iterator[None]:
        """Commands started inside belong to no holder (clean-up after a cut)."""
        token = _current_holder.set(None)
        try:
            yield
        finally:
            _current_holder.reset(token)

    @staticmethod
    def current() -> str | None:
        """The holder of this thread's commands, if any."""
        return _current_holder.get()

    def cut(self, holder: str) -> None:
        with self._lock:
            if holder in self._held:
                self._cut.add(holder)

    def is_cut(self, holder: str | None) -> bool:
        with self._lock:
            return holder is not None and holder in self._cut
