"""Images: make sure one is on the engine, pulling it as ``docker run`` does.

:class:`Images` pulls a missing image through the engine (which uses its own
registry mirrors and proxies; docker-py adds the credentials of
``~/.docker/config.json``), one pull per image at a time, and logs its progress
through :mod:`logging` so the CLI and the daemon show it: a line each time a
layer changes state (waiting, downloading, extracting, complete) and, during
long downloads, a summary every few seconds, all at INFO. An engine that cannot pull (no
registry reachable, no such tag, access refused) gives
:class:`~backup.errors.ImagePullFailed` with the engine's own reason, at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from backup.errors import DockerRefused, ImagePullFailed, NotFound
from service.adapters.docker.connection import DockerConnection, one_line

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 5.0
"""Seconds between two summary lines while layers download or extract."""
# Statuses that repeat with a progress bar; only the first of a run is logged.
_REPEATING = frozenset({"Downloading", "Extracting", "Waiting"})


class PullProgress:
    """Turns the engine's pull messages into log lines: one per layer state
    change, a summary at most every :data:`PROGRESS_EVERY` seconds while bytes
    move, and the engine's closing status. ``clock`` is injectable for tests."""

    def __init__(self, image: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.image = image
        self._clock = clock
        self._states: dict[str, str] = {}
        self._bytes: dict[str, tuple[int, int]] = {}
        self._last_summary = clock()
        self._started = False

    def feed(self, message: Mapping[str, Any]) -> list[str]:
        """The lines to log for one message; raises :class:`ImagePullFailed`
        for an error the engine reports inside the stream."""
        if message.get("error"):
            detail = (message.get("errorDetail") or {}).get("message") or message["error"]
            raise ImagePullFailed(self.image, one_line(str(detail)))
        status = str(message.get("status") or "")
        layer = message.get("id")
        lines = []
        if not self._started:
            # Said once the engine has begun, so a pull refused at once (no
            # registry) is one error line and nothing else.
            self._started = True
            lines.append(f"image {self.image} is not on the Docker engine; pulling it")
        if status.startswith("Pulling from"):
            pass  # its id is the tag, not a layer
        elif layer:
            detail = message.get("progressDetail") or {}
            if "current" in detail and "total" in detail:
                self._bytes[layer] = (int(detail["current"]), int(detail["total"]))
            if self._states.get(layer) != status:
                self._states[layer] = status
                lines.append(f"pulling {self.image}: layer {layer}: {status.lower()}")
        elif status.startswith(("Digest:", "Status:")):
            lines.append(f"pulling {self.image}: {status}")
        if self._bytes and self._clock() - self._last_summary >= PROGRESS_EVERY:
            lines.append(self.summary())
        return lines

    def summary(self) -> str:
        self._last_summary = self._clock()
        done = sum(1 for state in self._states.values()
                   if state in ("Pull complete", "Already exists"))
        current = sum(c for c, _ in self._bytes.values())
        total = sum(t for _, t in self._bytes.values())
        moved = f", {current / 1e6:.1f} of {total / 1e6:.1f} MB" if total else ""
        return f"pulling {self.image}: layers {done}/{len(self._states)} complete{moved}"


class Images:
    """The images of one engine, as far as running containers needs them."""

    def __init__(self, connection: DockerConnection) -> None:
        self._connection = connection
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def present(self, image: str) -> bool:
        """Whether ``image`` is on the engine (no pull)."""
        try:
            self._connection.call(lambda: self._connection.api.inspect_image(image))
        except NotFound:
            return False
        return True

    def ensure_image(self, image: str) -> None:
        """Return once ``image`` is on the engine, pulling it if it is missing;
        raise :class:`ImagePullFailed` if the engine cannot pull it. Callers
        asking for the same image at once share one pull."""
        with self._lock_for(image):
            if self.present(image):
                return
            try:
                self._connection.call(lambda: self._pull(image))
            except ImagePullFailed:
                raise  # the stream's own error, already worded
            except (DockerRefused, NotFound) as exc:
                # No registry (a 500 naming the DNS failure), no such tag or no
                # access (404): the engine's words are the reason.
                raise ImagePullFailed(image, str(exc).removeprefix("Docker refused: ")) \
                    from exc
            if not self.present(image):
                raise ImagePullFailed(image, "the engine reported no error, but the image "
                                             "is still not there")
            logger.info("pulled image %s", image)

    def _pull(self, image: str) -> None:
        # One callable for the request and the stream, so an engine that goes
        # away mid-pull is translated like any other call.
        progress = PullProgress(image)
        for message in self._connection.api.pull(image, stream=True, decode=True):
            for line in progress.feed(message):
                logger.info("%s", line)

    def _lock_for(self, image: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(image, threading.Lock())

