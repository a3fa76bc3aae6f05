"""A :class:`service.ports.DaemonLock` in memory, for the daemon's start-up tests.

Locks that share one ``table`` exclude each other as daemons on one data
directory do (the real locks' behaviour when a holder dies is tested on real
processes in ``tests/catalog/test_daemon_lock.py``).
"""

from __future__ import annotations

from backup.errors import DaemonAlreadyRunning
from service.ports import DaemonOwner


class FakeDaemonLock:
    def __init__(self, table: dict[str, DaemonOwner] | None = None,
                 what: str = "data directory /fake") -> None:
        self.table: dict[str, DaemonOwner] = {} if table is None else table
        self.what = what
        self.acquired: list[DaemonOwner] = []
        self.released = 0

    def acquire(self, owner: DaemonOwner) -> None:
        holder = self.table.get(self.what)
        if holder is not None:
            raise DaemonAlreadyRunning(self.what, holder.describe())
        self.table[self.what] = owner
        self.acquired.append(owner)

    def release(self) -> None:
        if self.acquired and self.table.get(self.what) == self.acquired[-1]:
            del self.table[self.what]
            self.released += 1

