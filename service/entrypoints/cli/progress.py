"""Progress of the CLI's long operations (backup, restore, volume clone) on stderr.

On a terminal it is one line rewritten in place; anywhere else (a log file, CI,
a pipe, ``docker logs``) it is a line every :data:`INTERVAL` seconds, so a job
that takes an hour shows it is alive and how fast it goes. Lines come from a
heartbeat thread as well as from the byte counter, so they keep coming while no
bytes move: a dump tool still starting, a restore waiting for the database to
accept connections, a clone (which reports no bytes at all).
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

from service.entrypoints.cli.output import human_bytes

INTERVAL = 5.0
"""Seconds between two progress lines when stderr is not a terminal."""
LIVE_INTERVAL = 1.0
"""Seconds between two refreshes of the live line on a terminal when no bytes move."""


class Progress:
    """One operation's progress; call it as the use case's ``ProgressCallback``
    with ``(bytes so far, seconds)``. Use it as a context manager: the heartbeat
    runs inside the ``with`` block and the live line is ended on the way out."""

    def __init__(self, label: str, *, stream: TextIO | None = None,
                 interactive: bool | None = None, interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self._stream = stream if stream is not None else sys.stderr
        self._interactive = self._stream.isatty() if interactive is None else interactive
        self._interval = interval if interval is not None else (
            LIVE_INTERVAL if self._interactive else INTERVAL)
        self._clock = clock
        self._started = self._printed = clock()
        self._done: int | None = None
        self._live = False  # a live line is on the terminal and needs ending
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __call__(self, done: int, elapsed: float) -> None:
        with self._lock:
            self._done = done
            if self._interactive or self._clock() - self._printed >= self._interval:
                self._write()

    def tick(self) -> None:
        """What the heartbeat does each interval: a line if none was written for
        one interval (on a terminal, the live line's clock moves on)."""
        with self._lock:
            if self._interactive or self._clock() - self._printed >= self._interval:
                self._write()

    def line(self) -> str:
        elapsed = max(self._clock() - self._started, 0.0)
        if self._done is None:
            return f"{self.label}: running for {elapsed:.0f}s"
        rate = self._done / elapsed if elapsed > 0 else 0.0
        return (f"{self.label}: {human_bytes(self._done)} at {human_bytes(rate)}/s, "
                f"{elapsed:.0f}s")

    def _write(self) -> None:
        self._printed = self._clock()
        text = self.line()
        if self._interactive:
            # Never wider than the terminal, or the carriage return would not
            # go back to the start of the line.
            width = shutil.get_terminal_size().columns - 1
            self._stream.write("\r" + text[:width].ljust(min(70, width)))
            self._live = True
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            self.tick()

    def __enter__(self) -> Progress:
        self._heartbeat = threading.Thread(target=self._beat, name="holdfast-progress",
                                           daemon=True)
        self._heartbeat.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        with self._lock:
            if self._live:
                self._stream.write("\n")
                self._stream.flush()
                self._live = False
