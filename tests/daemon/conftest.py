"""Helpers for crash-safety tests of ``holdfast serve``.

Each test runs the daemon as a user runs it (:class:`tests.harness.daemon.Daemon`:
its own process, port, data directory and JSON logs). A daemon is never left
running: the ``daemon`` fixture kills whatever is still alive at teardown.

The tests judge outcomes on state, not on exit codes alone: the catalog (read
with :class:`CatalogReader`, or ``holdfast snapshots --json``), the files of the
``local`` target, and the daemon's own log records. A dump is caught "in
flight" by polling ``pg_stat_activity`` for pg_dump's ``COPY`` of a table big
enough (``fill_big_table``) that the copy lasts several seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from backup.types import Snapshot, SnapshotStatus
from service.adapters.catalog import JobRecord, open_catalog
from tests.harness.daemon import Daemon, wait_for
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    DEFAULT_POSTGRES_LABELS,
    PGDATA,
    TEST_LABEL,
    psql,
    wait_for_postgres,
)
from tests.harness.private_dockerd import PrivateDockerd

BASE_IMAGE = "holdfast-test/base:bookworm"

# ~128 bytes of md5 text per row: 700k rows is a ~110 MB table, whose COPY by
# pg_dump (plus zstd and sha256 in the daemon) lasts a second or two unthrottled,
# several seconds once the container is throttled (see ``throttled``).
BIG_ROWS = 700_000


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A :class:`Daemon` on ``tmp_path/data``, not started; killed at teardown if alive."""
    process = Daemon(tmp_path)
    try:
        yield process
    finally:
        process.close()


# --- the catalog and the files of the local target ------------------------------------


class CatalogReader:
    """Reads the catalog a daemon writes, straight from its SQLite file."""

    def __init__(self, data_dir: Path) -> None:
        self.url = f"sqlite:///{data_dir / 'catalog.sqlite3'}"

    @contextlib.contextmanager
    def _catalog(self) -> Iterator[Any]:
        catalog = open_catalog(self.url)
        try:
            yield catalog
        finally:
            catalog.close()

    def snapshots(self, instance: str | None = None) -> list[Snapshot]:
        with self._catalog() as catalog:
            return list(catalog.list_snapshots(instance=instance))

    def find_snapshot(self, snapshot_id: str) -> Snapshot | None:
        with self._catalog() as catalog:
            return catalog.get_snapshot(snapshot_id)  # type: ignore[no-any-return]

    def snapshot(self, snapshot_id: str) -> Snapshot:
        found = self.find_snapshot(snapshot_id)
        assert found is not None, f"no snapshot {snapshot_id} in the catalog"
        return found

    def job(self, job_id: str) -> JobRecord:
        with self._catalog() as catalog:
            found = catalog.get_job(job_id)
        assert found is not None, f"no job {job_id} in the catalog"
        return found  # type: ignore[no-any-return]


def snapshots_root(data_dir: Path) -> Path:
    return data_dir / "snapshots"


def partial_files(data_dir: Path, instance: str | None = None) -> list[Path]:
    """Temporary files of unfinished writes, of one instance or of all.

    Tests that check them name their instance: the daemon adopts every labelled
    container on the shared engine, other test sessions' scheduled ones too,
    and may be writing one of those at any moment."""
    root = snapshots_root(data_dir)
    if instance is not None:
        root = root / instance
    return sorted(root.rglob("*.partial")) if root.is_dir() else []


def files_of(data_dir: Path, snapshot_id: str) -> list[Path]:
    """Every file (temporary ones included) in the target that belongs to a snapshot."""
    root = snapshots_root(data_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and snapshot_id in p.relative_to(root).parts)


def data_file(data_dir: Path, snapshot: Snapshot) -> Path:
    assert snapshot.data_key, snapshot
    return snapshots_root(data_dir) / snapshot.data_key


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assert_snapshot_intact(data_dir: Path, snapshot: Snapshot) -> None:
    """A complete snapshot: its data file exists with the recorded size and sha256,
    and its manifest agrees."""
    assert snapshot.status == SnapshotStatus.COMPLETE, snapshot
    path = data_file(data_dir, snapshot)
    assert path.is_file(), f"complete snapshot {snapshot.id} has no data file {path}"
    assert path.stat().st_size == snapshot.size_bytes, \
        f"{snapshot.id}: {path.stat().st_size} bytes on disk, catalog says {snapshot.size_bytes}"
    assert sha256_of(path) == snapshot.sha256, f"{snapshot.id}: sha256 differs from the catalog"
    manifest = json.loads((path.parent / "manifest.json").read_text())
    assert manifest["snapshot_id"] == snapshot.id
    assert (manifest["size_bytes"], manifest["sha256"]) == (snapshot.size_bytes, snapshot.sha256)


def assert_complete_snapshots_intact(data_dir: Path) -> list[Snapshot]:
    """Every ``complete`` snapshot in the catalog is backed by a whole data file;
    returns them.

    A running daemon may be pruning a snapshot (of another session's scheduled
    container with a retention label) while this looks: retention deletes the
    files first and the catalog row after, so a snapshot whose files are gone
    passes only if its row disappears within a few seconds too."""
    catalog = CatalogReader(data_dir)
    complete = [s for s in catalog.snapshots() if s.status == SnapshotStatus.COMPLETE]
    checked = []
    for snapshot in complete:
        try:
            assert_snapshot_intact(data_dir, snapshot)
        except (AssertionError, OSError) as problem:
            try:
                wait_for(lambda: catalog.find_snapshot(snapshot.id) is None, 30,  # noqa: B023
                         f"the row of {snapshot.id}, whose files are gone, to go too")
            except AssertionError:
                raise problem from None
            continue
        checked.append(snapshot)
    return checked


def assert_nothing_stored_for(data_dir: Path, snapshot: Snapshot) -> None:
    """No data, manifest or temporary file of ``snapshot`` (nor any temporary file
    of its instance) is left in the target."""
    assert files_of(data_dir, snapshot.id) == [], f"files of {snapshot.id} remain"
    assert partial_files(data_dir, snapshot.instance) == [], "temporary .partial files remain"
    assert not data_file(data_dir, snapshot).exists()


# --- database containers --------------------------------------------------------------

_ACTIVE_DUMP = ("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_dump' "
                "AND state = 'active' AND query LIKE 'COPY %' ORDER BY pid")


def fill_big_table(container: Container, rows: int = BIG_ROWS) -> None:
    """A table of ``rows`` rows of md5 text (~128 bytes each). UNLOGGED only makes
    it faster to fill; pg_dump dumps its data all the same."""
    psql(container, "CREATE UNLOGGED TABLE big AS SELECT g AS id, md5(g::text) || "
                    "md5((g + 1)::text) || md5((g + 2)::text) || md5((g + 3)::text) AS payload "
                    f"FROM generate_series(1, {rows}) g")


def active_dumps(container: Container) -> list[int]:
    return [int(pid) for pid in psql(container, _ACTIVE_DUMP, db="postgres").split()]


def dump_in_flight(container: Container, timeout: float = 60) -> int:
    """Wait until a pg_dump in ``container`` is copying table data; return its backend pid."""
    pids = wait_for(lambda: active_dumps(container), timeout,
                    f"a pg_dump copying data in {container.name}", interval=0.05)
    return pids[0]


def terminate_dumps(container: Container, timeout: float = 30) -> None:
    """End every pg_dump session in ``container`` (the orphan of a killed daemon
    runs on until Docker notices its reader is gone) and wait until none is left."""
    query = ("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE application_name IN ('pg_dump', 'pg_dumpall')")
    psql(container, query, db="postgres")
    wait_for(lambda: psql(container, "SELECT count(*) FROM pg_stat_activity WHERE "
                                     "application_name IN ('pg_dump', 'pg_dumpall')",
                          db="postgres").strip() == "0",
             timeout, f"the pg_dump sessions in {container.name} to end")


@contextlib.contextmanager
def throttled(container: Container, cpus: float) -> Iterator[None]:
    """Limit ``container`` (postgres and the pg_dump running in it) to ``cpus``
    CPUs, so a dump caught in flight lasts long enough for what the test does
    next; the limit is lifted on exit (if the container still exists)."""
    container.update(cpu_period=100_000, cpu_quota=int(cpus * 100_000))
    try:
        yield
    finally:
        with contextlib.suppress(NotFound, APIError):
            container.update(cpu_quota=-1)


@pytest.fixture(scope="module")
def big_source(docker_client: docker.DockerClient, test_network: str,
               postgres_image: str) -> Iterator[Container]:
    """One postgres container per module with a ~140 MB table ``big``."""
    name = f"hf-daemon-big-{secrets.token_hex(3)}"
    volume = f"{name}-data"
    docker_client.volumes.create(name=volume, labels={TEST_LABEL: "1"})
    try:
        container = docker_client.containers.run(
            postgres_image, name=name, detach=True, environment=dict(DEFAULT_POSTGRES_ENV),
            labels=dict(DEFAULT_POSTGRES_LABELS), network=test_network,
            volumes={volume: {"bind": PGDATA, "mode": "rw"}},
        )
        wait_for_postgres(container)
        fill_big_table(container)
        container.reload()
        yield container
    finally:
        with contextlib.suppress(NotFound):
            docker_client.containers.get(name).remove(force=True, v=True)
        with contextlib.suppress(NotFound):
            docker_client.volumes.get(volume).remove(force=True)


# --- a private Docker engine (tests.harness.private_dockerd) ----------------------


@pytest.fixture
def private_dockerd() -> Iterator[PrivateDockerd]:
    shared_bridge = Path("/sys/class/net/docker0")
    had_bridge = shared_bridge.exists()
    engine = PrivateDockerd()
    try:
        yield engine
    finally:
        engine.close()
        assert shared_bridge.exists() or not had_bridge, \
            "the shared engine's docker0 disappeared while the private engine ran"
