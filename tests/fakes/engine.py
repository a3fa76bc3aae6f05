"""A database engine for the fake Docker engine: dumps and loads a container's bytes.

Registered as ``holdfast.engine=fake`` by :func:`register_fake_engine`. It
reaches the container only through :class:`~backup.ports.ContainerExec`, like
the real engines, and needs ``FAKE_PASSWORD`` in the container's environment
(a secret, so restores must find it, as with real engines). Its figures
(:mod:`backup.figures`, kind ``tree``) are the size and sha256 of the bytes
its dump streamed; :meth:`FakeEngine.measure` reads them again from the
container, so a verification of a fake snapshot compares real data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import ClassVar

from backup.engines import register_engine
from backup.engines.base import Dump
from backup.errors import ExecFailed, MissingCredentials, RestoreFailed
from backup.figures import Figures
from backup.ports import ContainerExec
from backup.types import DatabaseContainer
from tests.fakes.docker import DATA_PATH, DUMP, LOAD, READY

SECRET = "FAKE_PASSWORD"
METHOD = "size and sha256 of the fake database's bytes"


class ContentFigures:
    """The fake's figures: its content's size and sha256, as it passes."""

    def __init__(self) -> None:
        self.size = 0
        self.sha = hashlib.sha256()
        self.complete = False

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.size += len(chunk)
            self.sha.update(chunk)
            yield chunk
        self.complete = True

    def figures(self) -> Figures | None:
        if not self.complete:
            return None
        return Figures(kind="tree", method=METHOD, values={
            "files": 1, "bytes": self.size, "tree_sha256": self.sha.hexdigest()})


class FakeEngine:
    name: ClassVar[str] = "fake"
    data_format: ClassVar[str] = "fake-bytes-1"
    read_formats: ClassVar[tuple[str, ...]] = (data_format,)
    loads_before_start: ClassVar[bool] = False
    service_port: ClassVar[int | None] = 7777

    def connection_template(self, env: Mapping[str, str], secret_names: Collection[str],
                            *, host: str = "HOST", port: str | int = "PORT") -> str | None:
        password = f":{{{SECRET}}}@" if SECRET in secret_names else ""
        return f"fake://{password}{host}:{port}/main"

    def data_paths(self, container: DatabaseContainer) -> list[str]:
        return [DATA_PATH]

    def check(self, container: DatabaseContainer) -> None:
        if not container.env.get(SECRET):
            raise MissingCredentials(f"container {container.name} has no {SECRET}; set it")

    def dump(self, container: DatabaseContainer, runner: ContainerExec,
             databases: Sequence[str] = ()) -> Dump:
        env = {SECRET: container.env[SECRET]}
        content = ContentFigures()
        return Dump(databases=tuple(databases) or ("main",),
                    chunks=content.watch(runner.stream(container.id, [DUMP], env=env)),
                    figures=content.figures)

    def measure(self, container: DatabaseContainer, runner: ContainerExec,
                databases: Sequence[str] = ()) -> Figures:
        """The same figures, read from the container's content directly."""
        content = ContentFigures()
        try:
            for _ in content.watch(runner.stream(container.id, [DUMP],
                                                 env={SECRET: container.env.get(SECRET, "")})):
                pass
        except ExecFailed as exc:
            raise RestoreFailed(f"cannot measure {container.name}: {exc}") from exc
        figures = content.figures()
        assert figures is not None
        return figures

    def is_ready(self, container: DatabaseContainer, runner: ContainerExec) -> bool:
        return runner.run(container.id, [READY], check=False).exit_code == 0

    def restore(self, container: DatabaseContainer, runner: ContainerExec,
                chunks: Iterable[bytes]) -> list[str]:
        result = runner.run(container.id, [LOAD], stdin=chunks, check=False)
        if result.exit_code != 0:
            raise RestoreFailed(f"loading into {container.name} failed: {result.stderr}")
        return ["main"]


def register_fake_engine() -> None:
    """Make ``holdfast.engine=fake`` known (idempotent)."""
    register_engine("fake", "tests.fakes.engine:FakeEngine", physical=True)
