"""One connection to a Docker engine, and the translation of its errors.

:class:`DockerConnection` makes the docker-py client lazily, so commands that
need only the catalog work while the engine is down, and its :meth:`~DockerConnection.call`
is the one place where docker-py and ``requests`` errors become
:mod:`backup.errors`. The translation goes by the HTTP status the engine
answered with, never by the wording of its message: 404 is
:class:`~backup.errors.NotFound`, 409 is the caller's ``Conflict`` class where
it has one, any other 4xx is :class:`~backup.errors.DockerRefused`, and a 5xx or
no answer at all is :class:`~backup.errors.DockerUnavailable`. The other parts
of the adapter (exec, containers, volumes, helpers, events) share one
connection and call the engine only through it. docker-py (with requests, a
tenth of a second) is imported on the first connection, not with this module.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from backup.errors import DockerRefused, DockerUnavailable, HoldfastError, NotFound

if TYPE_CHECKING:
    import docker

_T = TypeVar("_T")

ConflictError = Callable[[str], HoldfastError]
"""Builds the error for a 409 from the refusal text (``Docker refused: <reason>``)."""


def docker_host_description() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


class DockerConnection:
    """The docker-py client of one engine, made on first use; ``close()``
    drops it and the next call reconnects."""

    def __init__(self, factory: Callable[[], docker.DockerClient] | None = None,
                 timeout: int = 60) -> None:
        self._factory = factory or (lambda: _from_env(timeout))
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                self._client = self.call(self._factory)
            return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    def call(self, action: Callable[[], _T], *, conflict: ConflictError | None = None) -> _T:
        """Run ``action`` (a docker-py call) with its errors translated; see
        :func:`translate`. ``conflict`` builds the error for a 409, where the
        caller knows what a conflict means (a volume in use, a name taken)."""
        import docker.errors
        import requests.exceptions

        try:
            return action()
        except (docker.errors.DockerException, requests.exceptions.ConnectionError,
                ConnectionError, FileNotFoundError) as exc:
            raise translate(exc, conflict) from exc

    def ping(self) -> None:
        self.call(self.client.ping)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _from_env(timeout: int) -> docker.DockerClient:
    import docker

    return docker.from_env(timeout=timeout)


def translate(exc: BaseException, conflict: ConflictError | None = None) -> HoldfastError:
    """The :mod:`backup.errors` class for a docker-py or connection error, by
    the HTTP status the engine answered with (none: it did not answer)."""
    import docker.errors

    status = exc.status_code if isinstance(exc, docker.errors.APIError) else None
    if status == 404 or isinstance(exc, docker.errors.NotFound):
        return NotFound(explain(exc))
    if status is not None and 400 <= status < 500:
        refused = f"Docker refused: {explain(exc)}"
        if status == 409 and conflict is not None:
            return conflict(refused)
        return DockerRefused(refused)
    return DockerUnavailable(
        f"cannot reach the Docker engine at {docker_host_description()}: "
        f"{short(exc)}; start Docker or set DOCKER_HOST"
    )


def refusal(exc: DockerUnavailable, what: str) -> HoldfastError:
    """``call`` reads any 5xx as an unreachable engine, but a start that fails
    (a mount runc cannot make, a missing executable) comes back as a 500
    carrying the engine's own reason: the engine is reachable, retrying will
    not help, and "start Docker" would send the user to the wrong problem."""
    import docker.errors

    cause = exc.__cause__
    if isinstance(cause, docker.errors.APIError) and cause.response is not None:
        return DockerRefused(f"{what}: Docker refused: {explain(cause)}")
    return exc


def explain(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).splitlines()[0]


def short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def parse_docker_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds, more digits than
    ``datetime`` holds; they are cut to microseconds. The zero time means never."""
    if not text or text.startswith("0001-01-01"):
        return None
    main, _, rest = str(text).replace("Z", "+00:00").partition(".")
    if rest:
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits):]
        main = f"{main}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(main)
    except ValueError:
        return None
