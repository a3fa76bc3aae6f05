"""``DELETE /v1/jobs/{id}`` through FastAPI's TestClient on the fakes: 200 with the
cancelled job (or 202 while it still stops), 409 for an ended job, 404 for an unknown
one, and ``read`` plus the scope of the job's kind."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backup.errors import Cancelled
from backup.types import utcnow
from service.entrypoints.api import create_app
from service.usecases import cancellation, tokens
from service.usecases.jobs import JobRunner
from tests.fakes.docker import DUMP, LOAD
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client, bearer
from tests.usecases.entrypoints.helpers import add_db, wait_until

Json = dict[str, Any]


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


def _job(client: TestClient, job_id: str) -> Json:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def _stalled_backup(world: FakeWorld, client: TestClient, name: str = "shop-db") -> Json:
    """A backup job whose dump waits (as on a lock) until its stream is cut."""
    world.docker.stall.add(DUMP)
    response = client.post(f"/v1/instances/{name}/backups")
    assert response.status_code == 202, response.text
    job: Json = response.json()
    wait_until(lambda: (job["id"], DUMP) in world.docker.stalled)
    return job


def _ended(client: TestClient, job_id: str) -> Json:
    wait_until(lambda: _job(client, job_id)["status"] not in ("queued", "running"))
    return _job(client, job_id)


def test_delete_cancels_a_running_backup_and_answers_200_with_the_final_job(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    job = _stalled_backup(world, client)

    response = client.delete(f"/v1/jobs/{job['id']}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["status"], body["error"]) == (
        job["id"], "cancelled", "cancelled by request")
    assert body["finished_at"] is not None
    assert _job(client, job["id"]) == body
    (snapshot,) = client.get("/v1/snapshots", params={"instance": "shop-db"}).json()
    assert (snapshot["status"], snapshot["error"]) == ("failed", "cancelled")
    world.docker.stall.clear()
    again = client.post("/v1/instances/shop-db/backups")
    assert again.status_code == 202, again.text  # the instance is free again
    assert _ended(client, again.json()["id"])["status"] == "succeeded"


def test_delete_cancels_a_queued_job_which_never_starts(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, "one")
    add_db(world, "two")
    add_db(world, "three")
    first, second = _stalled_backup(world, client, "one"), _stalled_backup(world, client, "two")
    queued = client.post("/v1/instances/three/backups").json()  # both workers are busy
    assert queued["status"] == "queued"

    response = client.delete(f"/v1/jobs/{queued['id']}")

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["started_at"]) == ("cancelled", None)
    for job in (first, second):
        assert client.delete(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert client.get("/v1/snapshots", params={"instance": "three"}).json() == []


def test_delete_answers_202_while_the_job_is_still_stopping(
        world: FakeWorld, client: TestClient, jobs: JobRunner,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cancellation, "CANCEL_WAIT", 0.05)
    release = threading.Event()

    def slow_to_stop() -> dict[str, Any]:  # as a step that checks for cancel only at its end
        release.wait(10)
        raise Cancelled("stopped at last")

    job = jobs.submit("backup", slow_to_stop, instance="shop-db")
    wait_until(lambda: _job(client, job.id)["status"] == "running")

    response = client.delete(f"/v1/jobs/{job.id}")

    assert response.status_code == 202, response.text
    assert (response.json()["id"], response.json()["status"]) == (job.id, "running")
    release.set()
    assert _ended(client, job.id)["status"] == "cancelled"


def test_delete_of_an_ended_job_is_409_and_changes_nothing(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    job = client.post("/v1/instances/shop-db/backups").json()
    done = _ended(client, job["id"])
    assert done["status"] == "succeeded"

    response = client.delete(f"/v1/jobs/{job['id']}")

    assert response.status_code == 409, response.text
    assert response.json()["error"] == (f"job {job['id']} already succeeded; only a queued "
                                        "or running job can be cancelled")
    assert _job(client, job["id"]) == done


def test_delete_of_an_unknown_job_is_404(client: TestClient) -> None:
    response = client.delete("/v1/jobs/job-nope")
    assert response.status_code == 404, response.text
    assert "no job 'job-nope'" in response.json()["error"]


def test_cancelling_needs_the_scope_of_the_jobs_kind(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    job = _stalled_backup(world, client)
    secrets = {scopes: tokens.create_token(world.services, "t-" + scopes.replace("+", "-"),
                                           scopes.split("+"), None, "test", utcnow()).secret
               for scopes in ("read", "restore+read", "backup", "backup+read")}
    for scopes, needed in (("read", "backup"), ("restore+read", "backup"), ("backup", "read")):
        refused = client.delete(f"/v1/jobs/{job['id']}", headers=bearer(secrets[scopes]))
        assert refused.status_code == 403, refused.text
        assert f"'{needed}' scope" in refused.json()["error"]
    assert world.docker.aborted_holders == []  # the refused ones cut nothing
    assert _job(client, job["id"])["status"] == "running"
    allowed = client.delete(f"/v1/jobs/{job['id']}", headers=bearer(secrets["backup+read"]))
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["status"] == "cancelled"


def test_a_restore_job_is_cancelled_with_the_restore_scope_and_leaves_no_container(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    done = _ended(client, client.post("/v1/instances/shop-db/backups").json()["id"])
    world.docker.stall.add(LOAD)
    started = client.post(f"/v1/snapshots/{done['snapshot_id']}/restore", json={"name": "copy"})
    assert started.status_code == 202, started.text
    job = started.json()
    wait_until(lambda: (job["id"], LOAD) in world.docker.stalled)
    secret = tokens.create_token(world.services, "restorer", ["restore", "read"], None, "test",
                                 utcnow()).secret

    response = client.delete(f"/v1/jobs/{job['id']}", headers=bearer(secret))

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert "copy" not in world.docker.container_names()
    assert "copy-data" not in world.docker.volumes


def test_a_verified_restore_is_cancelled_with_the_restore_scope_and_leaves_nothing(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    done = _ended(client, client.post("/v1/instances/shop-db/backups").json()["id"])
    world.docker.stall.add(LOAD)
    started = client.post(f"/v1/snapshots/{done['snapshot_id']}/verify-restore")
    assert started.status_code == 202, started.text
    job = started.json()
    wait_until(lambda: (job["id"], LOAD) in world.docker.stalled)
    secrets = {scopes: tokens.create_token(world.services, "t-" + scopes.replace("+", "-"),
                                           scopes.split("+"), None, "test", utcnow()).secret
               for scopes in ("backup+read", "restore+read")}
    refused = client.delete(f"/v1/jobs/{job['id']}", headers=bearer(secrets["backup+read"]))
    assert refused.status_code == 403 and "'restore' scope" in refused.json()["error"]

    response = client.delete(f"/v1/jobs/{job['id']}", headers=bearer(secrets["restore+read"]))

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert not [name for name in (*world.docker.container_names(), *world.docker.volumes,
                                  *world.docker.networks) if name.startswith("holdfast-verify-")]
    snapshot = world.catalog.get_snapshot(done["snapshot_id"])
    assert snapshot is not None and snapshot.verification is None
