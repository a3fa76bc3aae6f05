"""How the daemon's background parts are doing, for ``/readyz``.

Readiness is more than "the catalog and Docker answer": a daemon whose
discovery loop died, or has failed for longer than its back-off, or whose
scheduler stopped, schedules nothing while its API still answers. Discovery
and the scheduler each report here (:class:`LoopStatus` keeps a loop's last
success and failure); :class:`DaemonStatus` holds one probe per part by name.
It lives in :class:`~service.bootstrap.Services`, which is how the readiness
use case gets it; outside the daemon (the CLI, an API built alone in tests)
nothing is registered and only the catalog and Docker are checked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

Probe = Callable[[], str | None]
"""None while the part works, else the one-line reason it does not."""


class DaemonStatus:
    """The probes of the daemon's background parts, by name (thread-safe)."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}
        self._lock = threading.Lock()

    def watch(self, name: str, probe: Probe) -> None:
        """Check ``probe`` on every readiness request, reported as ``name``."""
        with self._lock:
            self._probes[name] = probe

    def checks(self) -> dict[str, str]:
        """Each watched part's ``ok`` or the reason it is not working."""
        with self._lock:
            probes = dict(self._probes)
        found = {}
        for name, probe in probes.items():
            try:
                problem = probe()
            except Exception as exc:  # a broken probe must not break /readyz
                problem = f"{name} cannot say how it is: {exc}"
            found[name] = "ok" if problem is None else problem
        return found


class LoopStatus:
    """A retrying loop's health: working once it has succeeded, and until it
    has been failing for longer than ``grace`` seconds (its longest back-off,
    so one retry in progress is not yet a failure)."""

    def __init__(self, what: str, grace: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._grace = grace
        self._clock = clock
        self._lock = threading.Lock()
        self._succeeded = False
        self._failing_since: float | None = None
        self._reason: str | None = None

    def ok(self) -> None:
        with self._lock:
            self._succeeded, self._failing_since, self._reason = True, None, None

    def failing(self, reason: str) -> None:
        with self._lock:
            if self._failing_since is None:
                self._failing_since = self._clock()
            self._reason = " ".join(reason.split())

    def problem(self) -> str | None:
        """None while working, else why not (one line)."""
        with self._lock:
            since, reason, succeeded = self._failing_since, self._reason, self._succeeded
        if not succeeded:
            return f"{self._what} has not completed its first pass yet" + (
                f" (last error: {reason})" if reason else "")
        if since is not None and self._clock() - since > self._grace:
            return f"{self._what} has been failing for {self._clock() - since:.0f}s: {reason}"
        return None
