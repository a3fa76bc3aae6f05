"""Who runs what: process identity for running snapshots, and the per-instance gate.

A running snapshot records the process writing it (``host:pid:start``, the
start time taken from ``/proc`` so a recycled pid is not mistaken for the
original). A restarted daemon uses that to tell its own interrupted runs from
runs a live CLI process is still writing. The :class:`InstanceGate` makes sure
one instance never has two runs at once within a process.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

from backup.errors import Conflict


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime); the command name in field 2 may contain spaces,
    # so split after its closing parenthesis.
    return stat.rsplit(")", 1)[1].split()[19]


def runner_for(pid: int) -> str:
    """The identity (``host:pid:start``) a run by process ``pid`` here records."""
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def current_runner() -> str:
    return runner_for(os.getpid())


def runner_alive(runner: str | None) -> bool | None:
    """True/False for a runner on this host; None when it cannot be known
    (another host sharing the catalog, or no runner recorded)."""
    if not runner:
        return None
    host, _, rest = runner.partition(":")
    pid_text, _, ticks = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    return _start_ticks(int(pid_text)) == ticks


def may_be_running(runner: str | None) -> bool:
    """Whether a run recorded with ``runner`` may still be going: a live process
    here, or a process on another host sharing the catalog (which this host
    cannot check). A run with no runner recorded, or whose process is gone, is
    not running."""
    alive = runner_alive(runner)
    return alive is True or (alive is None and bool(runner))


class AlreadyRunning(Conflict):
    """A run of ``instance`` is in progress; ``holder`` is its job or snapshot id
    (the API answers it as ``running``), ``kind`` says which when it helps, and
    ``activity`` what the run does (a backup, or a replace swapping its container)."""

    def __init__(self, instance: str, holder: str, kind: str | None = None,
                 activity: str = "backup") -> None:
        self.instance = instance
        self.holder = holder
        named = f"{kind} {holder}" if kind else holder
        super().__init__(f"a {activity} of {instance} is already running ({named}); "
                         "wait for it to finish")


class InstanceGate:
    """At most one run per instance in this process; ``holder`` names who has it
    (a job id or a snapshot id) so a refusal can point at the running one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[str, str] = {}
        self._activities: dict[str, str] = {}

    def claim(self, instance: str, holder: str, activity: str = "backup") -> None:
        """Give ``instance`` to ``holder``; :class:`AlreadyRunning` naming the
        current holder and what it does (``activity``) if another has it."""
        with self._lock:
            current = self._holders.get(instance)
            if current is not None:
                raise AlreadyRunning(instance, current,
                                     activity=self._activities.get(instance, "backup"))
            self._holders[instance] = holder
            self._activities[instance] = activity

    def refuse_if_held(self, instance: str) -> None:
        """:class:`AlreadyRunning` as :meth:`claim` raises it if ``instance``
        has a holder; a check made before the instance is even looked up (a
        replace may have its container stopped, or renamed aside)."""
        with self._lock:
            current = self._holders.get(instance)
            if current is not None:
                raise AlreadyRunning(instance, current,
                                     activity=self._activities.get(instance, "backup"))

    def release(self, instance: str, holder: str) -> None:
        with self._lock:
            if self._holders.get(instance) == holder:
                del self._holders[instance]
                self._activities.pop(instance, None)

    def release_held(self, holder: str) -> None:
        """Release every instance ``holder`` has (a job that never ran)."""
        with self._lock:
            for instance in [i for i, h in self._holders.items() if h == holder]:
                del self._holders[instance]
                self._activities.pop(instance, None)

    def holder(self, instance: str) -> str | None:
        with self._lock:
            return self._holders.get(instance)

    def running(self) -> dict[str, str]:
        with self._lock:
            return dict(self._holders)
