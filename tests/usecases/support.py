"""Set-up shared by the use-case tests: a fake database container, a backup of it,
catalog rows made by hand, and a look at what a storage target holds."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta

from backup.pipeline import data_key, manifest_key, new_snapshot_id
from backup.streams import read_all
from backup.types import Manifest, Snapshot, SnapshotStatus
from service.usecases import backups
from tests.fakes.docker import FakeContainer
from tests.fakes.services import FakeWorld

PASSWORD = "s3cret"
DB_LABELS = {"holdfast.enable": "true", "holdfast.engine": "fake"}
DEAD_RUNNER = f"{socket.gethostname()}:999999:0"
"""A runner on this host whose process is gone (no pid 999999 started at tick 0)."""
OTHER_HOST_RUNNER = "otherhost:1:1"
"""A runner on a host sharing the catalog: it cannot be checked, so it may be running."""
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def add_db(world: FakeWorld, name: str, *, content: bytes | None = None,
           labels: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None,
           running: bool = True, volume: str | None = None) -> FakeContainer:
    """A labelled fake database holding ``content`` (random by default) in volume
    ``<name>-vol``, with its password set."""
    return world.docker.add_container(
        name, labels={**DB_LABELS, **(labels or {})},
        env={"FAKE_PASSWORD": PASSWORD} if env is None else env, running=running,
        volume=volume or f"{name}-vol",
        content=os.urandom(50_000) if content is None else content)


def take_backup(world: FakeWorld, name: str, target: str | None = None) -> Snapshot:
    return backups.execute_backup(world.services,
                                  backups.prepare_backup(world.services, name, target))


def objects(world: FakeWorld, target: str = "local") -> dict[str, bytes]:
    """Every object in ``target``, key -> bytes."""
    storage = world.storage(target)
    found = {}
    for info in storage.list():
        with storage.open(info.key) as chunks:
            found[info.key] = read_all(chunks, 1 << 30)
    return found


def replace_object(world: FakeWorld, key: str, data: bytes, target: str = "local") -> None:
    storage = world.storage(target)
    storage.delete(key)
    storage.put(key, [data])


def snapshot_keys(snapshot: Snapshot) -> set[str]:
    return {data_key(snapshot.instance, snapshot.id), manifest_key(snapshot.instance, snapshot.id)}


def make_snapshot(world: FakeWorld, instance: str, *, at: datetime = T0,
                  status: SnapshotStatus = SnapshotStatus.COMPLETE, target: str = "local",
                  pinned: bool = False, runner: str | None = None,
                  engine: str = "fake", data: bytes = b"stored bytes") -> Snapshot:
    """A catalog row with objects under its keys in ``target`` (``data`` as the
    data object and, for a complete snapshot, its manifest), as a backup would
    leave them (the data is not a real dump: this one cannot be restored)."""
    snapshot_id = new_snapshot_id(at)
    snapshot = Snapshot(
        id=snapshot_id, instance=instance, engine=engine, target=target, status=status,
        created_at=at, data_key=data_key(instance, snapshot_id), pinned=pinned, runner=runner,
        size_bytes=len(data) if status == SnapshotStatus.COMPLETE else None,
        raw_bytes=len(data) if status == SnapshotStatus.COMPLETE else None,
        sha256=hashlib.sha256(data).hexdigest() if status == SnapshotStatus.COMPLETE else None,
        finished_at=at + timedelta(seconds=1) if status != SnapshotStatus.RUNNING else None)
    storage = world.storage(target)
    storage.put(snapshot.data_key, [data])
    if status == SnapshotStatus.COMPLETE:
        assert snapshot.finished_at and snapshot.size_bytes is not None and snapshot.sha256
        manifest = Manifest(
            snapshot_id=snapshot_id, instance=instance, engine=engine,
            data_key=snapshot.data_key, data_format="test-bytes", compression="none",
            image="", image_id="", created_at=at, finished_at=snapshot.finished_at,
            size_bytes=snapshot.size_bytes, raw_bytes=snapshot.size_bytes,
            sha256=snapshot.sha256)
        storage.put(manifest_key(instance, snapshot_id), [manifest.to_bytes()])
    world.catalog.add_snapshot(snapshot)
    return snapshot


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``condition`` every 10 ms; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.01)
