"""The engine's container lifecycle events, for the daemon's discovery.

:func:`follow_events` subscribes to the start, die, destroy and rename events
(:data:`LIFECYCLE_EVENTS`) of labelled containers; :class:`ContainerEvents`
implements :class:`service.ports.ContainerEvents` over the open stream. A
stream that breaks raises :class:`~backup.errors.DockerUnavailable`, one that
the engine ends simply stops; either way the caller reconnects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from backup.errors import DockerUnavailable
from service.adapters.docker.connection import DockerConnection, short

LIFECYCLE_EVENTS = ("start", "die", "destroy", "rename")


class ContainerEvents:
    """An open event stream: yields ``(action, container_id)`` pairs."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[tuple[str, str]]:
        import requests.exceptions  # loaded with docker-py by the connection already

        try:
            for event in self._stream:
                actor = event.get("Actor") or {}
                container_id = actor.get("ID") or event.get("id")
                action = str(event.get("Action") or event.get("status") or "")
                if container_id and action in LIFECYCLE_EVENTS:
                    yield action, container_id
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            raise DockerUnavailable(f"the Docker event stream broke: {short(exc)}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


def follow_events(connection: DockerConnection) -> ContainerEvents:
    """Follow the engine's container lifecycle events (start, die, destroy,
    rename). Iterating blocks until an event arrives; ``close()`` from another
    thread ends the iteration. The iterator ends or raises when the engine
    goes away; the caller reconnects."""
    stream = connection.call(lambda: connection.api.events(
        decode=True, filters={"type": ["container"], "event": list(LIFECYCLE_EVENTS),
                              "label": ["holdfast.enable"]}))
    return ContainerEvents(stream)
