"""A replace through the API holds its instance like a backup does: a backup asked for
while the replace loads or swaps is 409 naming the replace job (``running``), and a
replace asked for while a backup runs is 409 naming the backup, starting no job."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.entrypoints.helpers import add_db
from tests.usecases.entrypoints.test_api import assert_error, finished, snapshot_of


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


def _hold_at(world: FakeWorld, method: str, name_part: str) -> tuple[threading.Event,
                                                                     threading.Event]:
    """Hold the first ``world.docker.<method>`` of a container whose name has
    ``name_part`` until the second event is set; the first is set once held."""
    reached, go = threading.Event(), threading.Event()
    original = getattr(world.docker, method)

    def held(first: Any, *args: Any, **kwargs: Any) -> Any:
        name = getattr(first, "name", None) or (args[0] if args else "")
        if not reached.is_set() and name_part in name:
            reached.set()
            go.wait(10)
        return original(first, *args, **kwargs)
    setattr(world.docker, method, held)
    return reached, go


@pytest.mark.parametrize(("method", "name_part"), [
    ("create_container", "-restoring-"),  # the load
    ("rename_container", "-replaced-"),  # the swap: the old container is stopped
])
def test_a_backup_while_a_replace_runs_is_409_naming_the_replace_job(
        world: FakeWorld, client: TestClient, method: str, name_part: str) -> None:
    add_db(world, "prod-db")
    snapshot_id = snapshot_of(world, "prod-db")
    reached, go = _hold_at(world, method, name_part)
    response = client.post(f"/v1/snapshots/{snapshot_id}/restore", json={"replace": "prod-db"})
    assert response.status_code == 202, response.text
    job = response.json()
    try:
        assert reached.wait(10)
        body = assert_error(client.post("/v1/instances/prod-db/backups"), 409, "AlreadyRunning")
        assert body["running"] == job["id"]
        assert body["error"].startswith("a replace of prod-db is already running")
    finally:
        go.set()
    assert finished(client, job)["status"] == "succeeded"
    assert [j.kind for j in world.catalog.list_jobs()] == ["restore"]
    after = client.post("/v1/instances/prod-db/backups")
    assert after.status_code == 202, after.text


def test_a_replace_while_a_backup_runs_is_409_naming_the_backup(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, "prod-db")
    snapshot_id = snapshot_of(world, "prod-db")
    world.services.gate.claim("prod-db", "job-backing-up")
    body = assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore",
                                    json={"replace": "prod-db"}), 409, "AlreadyRunning")
    assert body["running"] == "job-backing-up"
    assert world.catalog.list_jobs() == []
    assert sorted(c.name for c in world.docker.containers.values()) == ["prod-db"]
