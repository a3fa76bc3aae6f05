"""The contract every database engine must meet, as a reusable test mixin.

An engine's test class inherits :class:`EngineContract` and supplies fixtures:
``engine`` (the implementation), ``source`` (a running, seeded container as a
:class:`DatabaseContainer`), ``fresh_source`` (a factory for another running
container of the same image and environment, to restore into) and
``fingerprint`` (a callable returning a comparable summary of the data: row
counts and checksums). For the figures (:mod:`backup.figures`) it also
supplies ``known_figures`` (values the seeded source's figures must hold) and
``remove_one`` (deletes one row, key or file from a restored copy and returns
the names of the figures that must then differ); ``still_source`` is the
source with nothing writing to it (the source itself unless overridden).
Everything runs on a real Docker engine through the real adapter.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import docker
import pytest

from backup.engines.base import Engine
from backup.errors import CorruptSnapshot, DumpFailed, ExecFailed
from backup.figures import Figures, compare
from backup.pipeline import take_snapshot
from backup.ports import ExecResult
from backup.storage.local import LocalStorage
from backup.streams import decompress
from backup.types import DatabaseContainer, utcnow
from service.adapters.docker import DockerAdapter

Fingerprint = Callable[[DatabaseContainer], Any]
RemoveOne = Callable[[DatabaseContainer], set[str]]


class RecordingExec:
    """The real adapter, recording every argv it is asked to run."""

    def __init__(self, real: DockerAdapter) -> None:
        self.real = real
        self.argvs: list[list[str]] = []

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        self.argvs.append(list(argv))
        return self.real.stream(container_id, argv, env=env, user=user, stdin=stdin)

    def run(self, container_id: str, argv: Sequence[str], **kwargs: Any) -> ExecResult:
        self.argvs.append(list(argv))
        return self.real.run(container_id, argv, **kwargs)


def top_processes(client: docker.DockerClient, container_id: str) -> list[tuple[str, str]]:
    """``(pid, command line)`` of every process in a container, as ``docker top``
    shows them to anyone on the host."""
    top = client.api.top(container_id, ps_args="-eo pid,args")
    return [(str(row[0]), " ".join(str(c) for c in row[1:])) for row in top["Processes"] or []]


class BreakingExec:
    """The real adapter, except that streams break after ``limit`` chunks, as a
    dying database or a dropped connection would make them."""

    def __init__(self, real: DockerAdapter, limit: int) -> None:
        self.real = real
        self.limit = limit

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        # The adapter's streams are generators: closing one early, as the port
        # promises, closes the connection.
        source = cast("Generator[bytes, None, None]",
                      self.real.stream(container_id, argv, env=env, user=user, stdin=stdin))
        try:
            yield from itertools.islice(source, self.limit)
        finally:
            source.close()
        raise ExecFailed(argv[0], None, "stream cut by the test")

    def run(self, *args: Any, **kwargs: Any) -> ExecResult:
        return self.real.run(*args, **kwargs)


class EngineContract:
    @pytest.fixture
    def still_source(self, source: DatabaseContainer) -> DatabaseContainer:
        return source

    def _snapshot(self, engine: Engine, source: DatabaseContainer, runner: Any,
                  storage: LocalStorage) -> Any:
        return take_snapshot(snapshot_id="contract", instance="contract", created_at=utcnow(),
                             container=source, engine=engine, runner=runner, storage=storage)

    def test_dump_then_restore_reproduces_the_data(
        self, engine: Engine, source: DatabaseContainer, fresh_target: DatabaseContainer,
        adapter: DockerAdapter, fingerprint: Fingerprint, tmp_path: Path,
    ) -> None:
        storage = LocalStorage("local", tmp_path.as_uri())
        manifest = self._snapshot(engine, source, adapter, storage)
        assert manifest.raw_bytes > manifest.size_bytes > 0
        assert engine.is_ready(fresh_target, adapter)
        with storage.open(manifest.data_key) as chunks:
            restored = engine.restore(fresh_target, adapter, decompress(chunks))
        assert sorted(restored) == sorted(manifest.databases)
        assert fingerprint(fresh_target) == fingerprint(source)

    def test_broken_dump_stream_fails_and_stores_nothing(
        self, engine: Engine, source: DatabaseContainer, adapter: DockerAdapter, tmp_path: Path,
    ) -> None:
        storage = LocalStorage("local", tmp_path.as_uri())
        with pytest.raises(DumpFailed):
            self._snapshot(engine, source, BreakingExec(adapter, limit=3), storage)
        assert list(storage.list()) == []
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []

    def test_truncated_snapshot_is_refused_on_restore(
        self, engine: Engine, source: DatabaseContainer, fresh_target: DatabaseContainer,
        adapter: DockerAdapter, tmp_path: Path,
    ) -> None:
        storage = LocalStorage("local", tmp_path.as_uri())
        manifest = self._snapshot(engine, source, adapter, storage)
        with storage.open(manifest.data_key) as chunks:
            data = b"".join(decompress(chunks))
        with pytest.raises(CorruptSnapshot):
            engine.restore(fresh_target, adapter, [data[: len(data) * 2 // 3]])

    def test_figures_recorded_at_backup_match_the_source_and_the_restored_copy(
        self, engine: Engine, still_source: DatabaseContainer, fresh_target: DatabaseContainer,
        adapter: DockerAdapter, known_figures: Mapping[str, Any], remove_one: RemoveOne,
        tmp_path: Path,
    ) -> None:
        """The figures a dump gathered as it streamed equal those measured on
        the source (nothing wrote in between) and on the restored copy; the
        copy with one row, key or file removed differs in exactly the figures
        that removal touches, each named in its one-line description."""
        storage = LocalStorage("local", (tmp_path / "figures-store").as_uri())
        manifest = self._snapshot(engine, still_source, adapter, storage)
        assert manifest.figures is not None
        recorded = Figures.from_json(manifest.figures)
        assert recorded.exact and recorded.method
        known = {name: recorded.values.get(name) for name in known_figures}
        assert known == dict(known_figures), recorded.values
        databases = list(manifest.databases)
        source_differences = compare(recorded, engine.measure(still_source, adapter, databases))
        assert source_differences == [], source_differences
        with storage.open(manifest.data_key) as chunks:
            restored = engine.restore(fresh_target, adapter, decompress(chunks))
        measured = engine.measure(fresh_target, adapter, restored)
        assert measured.kind == recorded.kind and measured.exact
        assert compare(recorded, measured) == [], compare(recorded, measured)
        touched = remove_one(fresh_target)
        differences = compare(recorded, engine.measure(fresh_target, adapter, restored))
        assert {difference.name for difference in differences} == touched, differences
        for difference in differences:
            line = difference.describe()
            assert difference.name in line and "\n" not in line
            assert str(difference.recorded)[:12] in line
