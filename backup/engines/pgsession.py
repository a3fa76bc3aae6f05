"""A ``psql`` session in a container, sent one statement at a time.

A parallel dump holds a transaction open (the one whose snapshot the dump
processes share) while it asks questions in it, and a parallel restore hands
each worker its next statement only when the last one has finished. Both need
a conversation, not a script: :class:`PsqlSession` keeps one ``psql`` running
through :meth:`~backup.ports.ContainerExec.stream` with ``stdin``, sends a
statement followed by an ``\\echo`` of a marker no output can contain, and
reads the answer up to that marker. ``ON_ERROR_STOP`` makes psql exit on the
first error, which ends the stream with psql's message, raised as
:class:`~backup.errors.ExecFailed`.
"""

from __future__ import annotations

import queue
import secrets
from collections.abc import Iterator, Mapping

from backup.errors import ExecFailed
from backup.ports import ContainerExec

_END = None


class PsqlSession:
    """One psql process; not for use from several threads at once."""

    def __init__(self, runner: ContainerExec, container_id: str, database: str,
                 env: Mapping[str, str]) -> None:
        self._outgoing: queue.Queue[bytes | None] = queue.Queue()
        self._marker = f"holdfast-{secrets.token_hex(8)}"
        self._count = 0
        self._pending = b""
        self._answers = runner.stream(
            container_id,
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", database],
            env=env, stdin=self._input())
        self._closed = False

    def _input(self) -> Iterator[bytes]:
        while (statement := self._outgoing.get()) is not _END:
            yield statement

    def query(self, sql: str) -> list[str]:
        """Run ``sql`` (one or more complete statements) and return the lines it
        printed (unaligned, tuples only: one row per line, ``|`` between fields).
        Raises :class:`ExecFailed` with psql's error if a statement fails."""
        if self._closed:
            raise ExecFailed("psql", None, "the session is closed")
        self._count += 1
        marker = f"{self._marker}-{self._count}"
        self._outgoing.put(sql.encode() + f"\n\\echo {marker}\n".encode())
        return self._lines_until(marker)

    def _lines_until(self, marker: str) -> list[str]:
        wanted = marker.encode()
        lines: list[str] = []
        while True:
            while b"\n" in self._pending:
                line, _, self._pending = self._pending.partition(b"\n")
                if line == wanted:
                    return lines
                lines.append(line.decode("utf-8", "surrogateescape"))
            try:
                self._pending += next(self._answers)
            except StopIteration:
                self._closed = True
                raise ExecFailed("psql", None, "the session ended before its answer") from None

    def close(self) -> None:
        """End the input and wait for psql to exit; raises if it failed."""
        if self._closed:
            return
        self._closed = True
        self._outgoing.put(_END)
        for _ in self._answers:
            pass

    def abandon(self) -> None:
        """End the session without waiting for an answer (after a failure elsewhere)."""
        self._closed = True
        self._outgoing.put(_END)
        close = getattr(self._answers, "close", None)
        if close is not None:
            close()
