"""The narrow interfaces the domain needs from a container runtime.

Engines and the restore runner talk to containers only through these
protocols; ``service.docker`` implements them with docker-py. Keeping them this
small is what lets the domain be tested with fakes and keeps docker-py out of
``backup/`` and ``restore/``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from backup.types import DatabaseContainer


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: str


class ContainerExec(Protocol):
    """Runs commands inside a running container.

    Secrets go in ``env``, which is passed through the exec API and never shows
    on a process command line; ``argv`` must never contain one.
    """

    def stream(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
    ) -> Iterator[bytes]:
        """Start ``argv`` and yield its stdout as it arrives.

        After the last chunk, if the process exited non-zero or its stream broke,
        the iterator raises :class:`~backup.errors.ExecFailed` carrying the tail of
        stderr, so a consumer that commits only after exhausting the iterator
        never commits a truncated dump. Closing the iterator early closes the
        connection. Raises :class:`~backup.errors.DockerUnavailable` if the engine
        cannot be reached.
        """
        ...

    def run(
        self,
        container_id: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        stdin: Iterable[bytes] | None = None,
        check: bool = True,
        output_limit: int = 1024 * 1024,
    ) -> ExecResult:
        """Run ``argv`` to completion, feeding it ``stdin`` chunks if given.

        stdout is kept up to ``output_limit`` bytes (the rest is drained and
        dropped, so a chatty process never blocks). With ``check`` a non-zero
        exit raises :class:`~backup.errors.ExecFailed`. The caller owns ``stdin``;
        if it raises, the process is cut off and the exception propagates.
        """
        ...


@dataclass(frozen=True)
class VolumeSpec:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ContainerSpec:
    """Everything needed to create a container; the restore planner's output."""

    name: str
    image: str
    env: Mapping[str, str]
    volumes: Mapping[str, str]  # volume name -> mount destination
    labels: Mapping[str, str] = field(default_factory=dict)
    networks: tuple[str, ...] = ()
    command: tuple[str, ...] | None = None


class ContainerRuntime(Protocol):
    """Creates and removes containers and volumes."""

    def container_name_taken(self, name: str) -> bool: ...

    def volume_exists(self, name: str) -> bool: ...

    def image_exists(self, image: str) -> bool: ...

    def create_volume(self, spec: VolumeSpec) -> None:
        """Create a named volume. Raises :class:`~backup.errors.NameTaken` if it exists."""
        ...

    def start_container(self, spec: ContainerSpec) -> DatabaseContainer:
        """Create and start a container. Raises :class:`~backup.errors.NameTaken`
        if the name is in use; the container is removed again if it cannot start."""
        ...

    def inspect(self, container_id: str) -> DatabaseContainer:
        """Current state of a container; raises :class:`~backup.errors.NotFound`."""
        ...

    def logs_tail(self, container_id: str, lines: int = 20) -> str: ...

    def remove_container(self, container_id: str) -> None:
        """Force-remove a container; a missing one is not an error."""
        ...

    def remove_volume(self, name: str) -> None:
        """Remove a volume; a missing one is not an error."""
        ...
