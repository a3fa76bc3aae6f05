"""The engine's container lifecycle events, for the daemon's discovery.

:func:`follow_events` subscribes to the start, die, destroy and rename events
(:data:`LIFECYCLE_EVENTS`) of labelled containers in a scope; :class:`ContainerEvents`
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
from service.ports import SCOPE_LABEL, in_scope

LIFECYCLE_EVENTS = ("start", "die", "destroy", "rename")


class ContainerEvents:
    """An open event stream: yields ``(action, container_id)`` pairs."""

    def __init__(self, stream: Any, scope: str | None = None) -> None:
        self._stream = stream
        self._scope = scope

    def __iter__(self) -> Iterator[tuple[str, str]]:
        import requests.exceptions  # loaded with docker-py by the connection already

        try:
            for event in self._stream:
                actor = event.get("Actor") or {}
                container_id = actor.get("ID") or event.get("id")
                action = str(event.get("Action") or event.get("status") or "")
                # A container event's attributes carry the container's labels.
                if container_id and action in LIFECYCLE_EVENTS and \
                        in_scope(actor.get("Attributes") or {}, self._scope):
                    yield action, container_id
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            raise DockerUnavailable(f"the Docker event stream broke: {short(exc)}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


def follow_events(connection: DockerConnection, scope: str | None = None) -> ContainerEvents:
    """Follow the lifecycle events (start, die, destroy, rename) of labelled
    containers in ``scope`` (:func:`service.ports.in_scope`). Iterating blocks
    until an event arrives; ``close()`` from another thread ends the iteration.
    The iterator ends or raises when the engine goes away; the caller reconnects."""
    labels = ["holdfast.enable"] + ([f"{SCOPE_LABEL}={scope}"] if scope else [])
    stream = connection.call(lambda: connection.api.events(
        decode=True, filters={"type": ["container"], "event": list(LIFECYCLE_EVENTS),
                              "label": labels}))
    return ContainerEvents(stream, scope)
