"""The HTTP API end to end: ``holdfast serve`` as a real process on a free port,
driven over HTTP through backup, listing, restore and delete, with the restored
data compared to the source."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import docker.errors
import httpx
import pytest

from tests.e2e.conftest import Daemon
from tests.harness.docker_fixtures import HELPER_IMAGE, TEST_LABEL, psql
from tests.harness.volume_trees import read_tree, seed_tree
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.docker

TOKEN = "test-token-" + os.urandom(6).hex()
CHECKSUM = "SELECT count(*) || ' ' || md5(string_agg(i::text, '|' ORDER BY i.id)) FROM items i"


@pytest.fixture
def server(daemon_factory: Callable[..., Daemon]) -> Iterator[httpx.Client]:
    daemon = daemon_factory(HOLDFAST_API_TOKEN=TOKEN).start()
    daemon.wait_ready()
    yield daemon.client
    assert daemon.stop() == 0
    assert "s3cret-test-pw" not in daemon.log_text()


def wait_for_job(client: httpx.Client, job: dict[str, Any],
                 timeout: float = 180) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        current: dict[str, Any] = client.get(f"/v1/jobs/{job['id']}").json()
        return current if current["status"] in ("succeeded", "failed") else None
    return wait_for(finished, timeout, f"job {job['id']} to finish", interval=0.3)


def discovered(client: httpx.Client, name: str, timeout: float = 60) -> dict[str, Any]:
    """The instance's view once discovery (which follows Docker's events, a moment
    after the container started) lists it."""
    def listed() -> dict[str, Any] | None:
        return next((view for view in client.get("/v1/instances").json()
                     if view["name"] == name), None)
    return wait_for(listed, timeout, f"discovery to list {name}")


def test_backup_restore_and_delete_over_http(server: httpx.Client, postgres_container_factory: Any,
                                             docker_client: Any) -> None:
    # A name of its own: the daemon adopts every labelled container on the engine,
    # other test sessions' too.
    instance = f"api-src-{os.urandom(3).hex()}"
    source = postgres_container_factory(labels={"holdfast.name": instance})
    psql(source, "CREATE TABLE items (id int PRIMARY KEY, label text);"
                 "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 30000) g")
    expected = psql(source, CHECKSUM)
    restored_name = f"{source.name}-restored"

    assert server.get("/readyz").json() == {"ready": True,
                                            "checks": {"catalog": "ok", "docker": "ok",
                                                       "discovery": "ok", "scheduler": "ok"}}
    assert httpx.get(f"{server.base_url}/v1/instances").status_code == 401
    mine = discovered(server, instance)
    assert mine["engine"] == "postgres" and mine["container"] == source.name
    assert "s3cret-test-pw" not in server.get("/v1/instances").text

    assert server.post("/v1/instances/nope/backups").status_code == 404
    accepted = server.post(f"/v1/instances/{instance}/backups", json={})
    assert accepted.status_code == 202, accepted.text
    job = wait_for_job(server, accepted.json())
    assert job["status"] == "succeeded", job
    snapshot_id = job["result"]["id"]

    listed = server.get("/v1/snapshots", params={"instance": instance}).json()
    assert [s["id"] for s in listed] == [snapshot_id]
    snapshot = server.get(f"/v1/snapshots/{snapshot_id}").json()
    assert snapshot["status"] == "complete" and snapshot["size_bytes"] > 0
    assert set(snapshot) >= {"id", "instance", "engine", "target", "status", "size_bytes",
                             "sha256", "created_at", "finished_at"}

    try:
        accepted = server.post(f"/v1/snapshots/{snapshot_id}/restore",
                               json={"name": restored_name})
        assert accepted.status_code == 202, accepted.text
        job = wait_for_job(server, accepted.json())
        assert job["status"] == "succeeded", job
        result = job["result"]
        assert result["container"] == restored_name
        assert result["volumes"] == [f"{restored_name}-data"]
        restored = docker_client.containers.get(restored_name)
        assert psql(restored, CHECKSUM) == expected

        taken = server.post(f"/v1/snapshots/{snapshot_id}/restore", json={"name": source.name})
        assert taken.status_code == 409 and "already exists" in taken.json()["error"]
    finally:
        for container in docker_client.containers.list(all=True,
                                                       filters={"name": restored_name}):
            container.remove(force=True)
        for volume in docker_client.volumes.list(filters={"name": f"{restored_name}-data"}):
            volume.remove(force=True)

    assert server.delete(f"/v1/snapshots/{snapshot_id}").status_code == 204
    assert server.get(f"/v1/snapshots/{snapshot_id}").status_code == 404
    assert server.get("/v1/jobs/job-nope").status_code == 404


def test_openapi_documents_the_contract_paths(server: httpx.Client) -> None:
    assert server.get("/docs").status_code == 200
    paths = set(server.get("/openapi.json").json()["paths"])
    assert paths >= {"/healthz", "/readyz", "/v1/instances", "/v1/instances/{name}/backups",
                     "/v1/snapshots", "/v1/snapshots/{snapshot_id}",
                     "/v1/snapshots/{snapshot_id}/restore", "/v1/jobs/{job_id}"}


def test_volumes_over_http(server: httpx.Client, docker_client: Any) -> None:
    suffix = os.urandom(3).hex()
    source, copy = f"hf-api-vol-{suffix}", f"hf-api-copy-{suffix}"
    user = None
    try:
        assert httpx.get(f"{server.base_url}/v1/volumes").status_code == 401
        created = server.post("/v1/volumes", json={"name": source,
                                                   "labels": {TEST_LABEL: "1"}})
        assert created.status_code == 201, created.text
        assert server.post("/v1/volumes", json={"name": source}).status_code == 409
        assert server.post("/v1/volumes", json={"name": "bad/name"}).status_code == 400
        seed_tree(docker_client, source)

        listed = {v["name"]: v for v in server.get("/v1/volumes").json()}
        assert listed[source]["size_bytes"] > 300_000 and listed[source]["in_use"] is False

        assert server.post(f"/v1/volumes/{source}/clone",
                           json={"target": source}).status_code == 400
        assert server.post(f"/v1/volumes/nope-{suffix}/clone",
                           json={"target": copy}).status_code == 404
        accepted = server.post(f"/v1/volumes/{source}/clone", json={"target": copy})
        assert accepted.status_code == 202, accepted.text
        job = wait_for_job(server, accepted.json())
        assert job["status"] == "succeeded", job
        assert job["kind"] == "clone" and job["result"]["target"] == copy
        assert read_tree(docker_client, copy)["entries"] == \
            read_tree(docker_client, source)["entries"]
        assert server.post(f"/v1/volumes/{source}/clone",
                           json={"target": copy}).status_code == 409

        user = docker_client.containers.create(
            HELPER_IMAGE, ["true"], labels={TEST_LABEL: "1"},
            volumes={copy: {"bind": "/data", "mode": "rw"}})
        refused = server.delete(f"/v1/volumes/{copy}")
        assert refused.status_code == 409 and user.name in refused.json()["error"]
        user.remove(force=True)
        user = None
        assert server.get(f"/v1/volumes/{copy}").json()["users"] == []
        assert server.delete(f"/v1/volumes/{copy}").status_code == 200
        assert server.get(f"/v1/volumes/{copy}").status_code == 404
    finally:
        if user is not None:
            user.remove(force=True)
        for name in (source, copy):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.volumes.get(name).remove(force=True)
