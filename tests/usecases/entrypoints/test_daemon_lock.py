"""``run_daemon`` and its lock, on the fakes: a daemon refused by the lock stops
before recovery, the scheduler and the API (so the running daemon's work is left
alone), and one that starts holds the lock while it serves and gives it up after."""

from __future__ import annotations

import logging
import os
import signal
from datetime import UTC, datetime

import pytest
import uvicorn
from fastapi import FastAPI

from backup.errors import DaemonAlreadyRunning
from backup.types import SnapshotStatus, utcnow
from service.entrypoints.daemon import main
from service.ports import DaemonOwner
from service.records import JobRecord, JobStatus
from tests.fakes.lock import FakeDaemonLock
from tests.fakes.services import FakeWorld
from tests.usecases.support import DEAD_RUNNER, make_snapshot

FIRST = DaemonOwner(host="db-host", pid=4242, since=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))


@pytest.fixture
def daemon_env(world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """run_daemon over the world's services; what uvicorn was asked to serve."""
    served: list[str] = []
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])  # run_daemon configures logging
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(main, "bootstrap", lambda settings: world.services)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: served.append("served"))
    return served


def test_a_refused_daemon_stops_before_recovery_and_serving(
        world: FakeWorld, daemon_env: list[str]) -> None:
    # What the first daemon is doing: a refused second one must not call it interrupted.
    running = make_snapshot(world, "shop-db", status=SnapshotStatus.RUNNING, runner=DEAD_RUNNER)
    world.catalog.add_job(JobRecord(id="job-1", kind="backup", status=JobStatus.RUNNING,
                                    created_at=utcnow(), instance="shop-db"))
    lock = FakeDaemonLock({"data directory /fake": FIRST})

    with pytest.raises(DaemonAlreadyRunning) as caught:
        main.run_daemon(world.services.settings, lock=lock)

    assert str(caught.value).startswith(
        "another holdfast daemon is already running on data directory /fake "
        "(host db-host, pid 4242, since 2026-01-02T03:04:05Z); stop it first")
    assert daemon_env == []
    snapshot = world.catalog.get_snapshot(running.id)
    assert snapshot is not None and snapshot.status == SnapshotStatus.RUNNING
    job = world.catalog.get_job("job-1")
    assert job is not None and job.status == JobStatus.RUNNING
    assert (world.docker.closed, world.catalog.closed) == (1, True)


def test_a_daemon_holds_the_lock_while_it_serves_and_releases_it_after(
        world: FakeWorld, daemon_env: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    table: dict[str, DaemonOwner] = {}
    lock = FakeDaemonLock(table)
    seen: list[DaemonOwner] = []

    def serve(app: FastAPI, **_: object) -> None:
        seen.append(table["data directory /fake"])
        with pytest.raises(DaemonAlreadyRunning, match=f"pid {os.getpid()},"):
            FakeDaemonLock(table).acquire(FIRST)  # a second daemon meanwhile
    monkeypatch.setattr(uvicorn, "run", serve)

    main.run_daemon(world.services.settings, lock=lock)

    assert [owner.pid for owner in seen] == [os.getpid()]
    assert table == {} and lock.released == 1

