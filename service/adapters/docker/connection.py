"""One connection to a Docker engine, and the translation of its errors.

:class:`DockerConnection` makes the docker-py client lazily, so commands that
need only the catalog work while the engine is down, and its :meth:`~DockerConnection.call`
is the one place where docker-py and ``requests`` errors become
:mod:`backup.errors`. An engine that answered is never "unreachable": the
translation goes by the HTTP status it answered with and, where Docker reports
a refusal as a plain 500 (its 20.10 does for a name too long for the file
system, and for a second disk-usage walk), by its words. 404 is
:class:`~backup.errors.NotFound`; 409 is the caller's ``Conflict`` class where
it has one; 400 (and a name too long) is :class:`~backup.errors.DockerRejectedInput`;
a disk-usage walk already running is :class:`~backup.errors.DockerBusy`; any
other answer is :class:`~backup.errors.DockerRefused` carrying the engine's
reason. Only no answer at all (connection refused or reset, socket missing,
timeout) or a gateway's 502/503/504 is :class:`~backup.errors.DockerUnavailable`.
The other parts of the adapter (exec, containers, volumes, helpers, events)
share one connection and call the engine only through it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from backup.errors import (
    DockerBusy,
    DockerRefused,
    DockerRejectedInput,
    DockerUnavailable,
    HoldfastError,
    NotFound,
)

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
        except (docker.errors.DockerException, requests.exceptions.RequestException,
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


# Docker 20.10 answers these with a plain 500, so only its words tell them
# from a failure of the engine (matched in lower case).
_NAME_TOO_LONG = "file name too long"
_DISK_USAGE_BUSY = "a disk usage operation is already running"
# A proxy in front of the engine (a socket proxy, a TCP load balancer) answers
# these when the engine behind it does not; Docker itself uses 503 only for swarm.
_GATEWAY_STATUSES = frozenset({502, 503, 504})
_EXPLANATION_MAX = 300


def translate(exc: BaseException, conflict: ConflictError | None = None) -> HoldfastError:
    """The :mod:`backup.errors` class for a docker-py or connection error: by
    what the engine answered (see the module docstring), or
    :class:`DockerUnavailable` when it did not answer."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, docker.errors.NotFound):
        return NotFound(explain(exc))
    if isinstance(exc, docker.errors.APIError):
        return _answered(exc, conflict)
    if isinstance(exc, (docker.errors.InvalidArgument, docker.errors.NullResource,
                        docker.errors.InvalidRepository)):
        # docker-py's own check of an argument, before any request.
        return DockerRejectedInput(f"Docker refused: {explain(exc)}")
    if isinstance(exc, requests.exceptions.Timeout) and not isinstance(
            exc, requests.exceptions.ConnectTimeout):
        return DockerUnavailable(
            f"the Docker engine at {docker_host_description()} did not answer in time: "
            f"{short(exc)}; it may be overloaded, retry later")
    return unreachable(short(exc))


def _answered(exc: docker.errors.APIError, conflict: ConflictError | None) -> HoldfastError:
    status = exc.status_code
    reason = explain(exc)
    words = reason.lower()
    if status == 404:
        return NotFound(reason)
    if status in _GATEWAY_STATUSES:
        return unreachable(f"{status} {reason}")
    if _DISK_USAGE_BUSY in words:
        return DockerBusy(f"the Docker engine is busy: {reason}; retry in a moment")
    if status == 400 or _NAME_TOO_LONG in words:
        hint = "; use a shorter name" if _NAME_TOO_LONG in words else ""
        return DockerRejectedInput(f"Docker refused: {reason}{hint}")
    refused = f"Docker refused: {reason}"
    if status == 409 and conflict is not None:
        return conflict(refused)
    return DockerRefused(refused)


def unreachable(detail: str) -> DockerUnavailable:
    return DockerUnavailable(
        f"cannot reach the Docker engine at {docker_host_description()}: "
        f"{detail}; start Docker or set DOCKER_HOST"
    )


def explain(exc: BaseException) -> str:
    """The engine's reason, one line, at most about 300 characters: the head
    and the tail are kept, since Docker repeats the name it refused (which may
    be anything a user sent) and puts the cause last."""
    explanation = getattr(exc, "explanation", None)
    return one_line(str(explanation or exc)) or type(exc).__name__


def one_line(text: str) -> str:
    """The first line of ``text``, its middle cut out beyond about 300 characters."""
    lines = text.splitlines()
    line = lines[0] if lines else ""
    if len(line) > _EXPLANATION_MAX:
        half = _EXPLANATION_MAX // 2
        line = f"{line[:half]}…{line[-half:]}"
    return line


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
