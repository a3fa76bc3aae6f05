"""The interface every database engine implements.

An engine knows how to dump a running container's data to a byte stream using
the container's own tools, how to tell when a fresh container of the same image
is really ready, and how to load a stream back into it. It reaches the
container only through :class:`~backup.ports.ContainerExec`; an engine that
works on volumes from outside the container (``volume``) also requires that
object to be a :class:`~backup.ports.HelperContainers`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol

from backup.figures import Figures
from backup.ports import ContainerExec
from backup.types import DatabaseContainer


@dataclass
class Dump:
    """A dump in progress: which databases it covers, and the data stream.

    ``chunks`` is lazy: the dump commands run as it is consumed, and it raises
    :class:`~backup.errors.DumpFailed` at the end if any of them failed.
    ``figures`` is valid once ``chunks`` is exhausted: what the stream held,
    gathered from it as it passed (no second scan of the data); None when the
    engine gathers none or could not read its own stream (which does not fail
    the dump: the engine's restore tools are the authority on the data).
    """

    databases: tuple[str, ...]
    chunks: Iterator[bytes]
    figures: Callable[[], Figures | None] = lambda: None
    data_format: str | None = None
    """The manifest's data format when it is not the engine's default one
    (a parallel Postgres dump: ``holdfast-postgres-v2``)."""


class Engine(Protocol):
    name: ClassVar[str]
    """The ``holdfast.engine`` label value."""

    data_format: ClassVar[str]
    """Recorded in the manifest (unless a dump names another); restore refuses
    formats not in :attr:`read_formats`."""

    read_formats: ClassVar[tuple[str, ...]]
    """The data formats :meth:`restore` reads."""

    loads_before_start: ClassVar[bool]
    """True when :meth:`restore` writes into the volumes of a created but not
    yet started container (files); False when it loads through the running
    server after :meth:`is_ready` (databases)."""

    service_port: ClassVar[int | None]
    """The port the server listens on inside the container (what a restore
    publishes); None for an engine with no server (``volume``)."""

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        """A URL reaching the server of a container with the recorded ``env``
        (no secret values) and secrets named ``secret_names``, the password as
        a ``{VARIABLE}`` placeholder (:mod:`backup.engines.connections`); None
        when the engine has no server."""
        ...

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        """Where the engine keeps its data inside the container; a restore
        mounts fresh volumes there when the snapshot recorded no mounts."""
        ...

    def check(self, container: DatabaseContainer) -> None:
        """Validate, from the container's environment alone, that a dump can
        run (credentials present). Raises :class:`~backup.errors.MissingCredentials`."""
        ...

    def dump(
        self, container: DatabaseContainer, runner: ContainerExec, databases: Sequence[str] = ()
    ) -> Dump:
        """Start dumping ``databases`` (all user databases when empty)."""
        ...

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        """True once the final server (not an init-time temporary one) accepts
        authenticated connections. Never raises for "not yet"."""
        ...

    def measure(
        self, container: DatabaseContainer, runner: ContainerExec, databases: Sequence[str] = ()
    ) -> Figures:
        """The figures :meth:`dump` records, measured directly on ``container``
        (a restored throwaway copy, so exact counts are affordable), for
        ``databases`` (all user databases when empty). Raises
        :class:`~backup.errors.RestoreFailed` when the copy cannot be measured."""
        ...

    def restore(
        self, container: DatabaseContainer, runner: ContainerExec, chunks: Iterable[bytes]
    ) -> list[str]:
        """Load a dump stream (as produced by :meth:`dump`, decompressed) into
        a ready container and return the databases restored. Raises
        :class:`~backup.errors.RestoreFailed` or :class:`~backup.errors.CorruptSnapshot`.
        The caller owns ``chunks``."""
        ...
