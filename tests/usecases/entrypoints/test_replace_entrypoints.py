"""Swap-in rollback through the API (TestClient) and the CLI (CliRunner) on the fakes:
``replace`` restores and swaps in, undo swaps back, and every contradiction or unknown
container is one 400/404 (exit 2/3) line that starts no job and changes no container."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.docker import FakeContainer
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.entrypoints.helpers import add_db
from tests.usecases.entrypoints.test_api import assert_error, finished, snapshot_of
from tests.usecases.entrypoints.test_cli import (  # noqa: F401  (fixtures)
    Cli,
    _keep_logging,
    cli,
    cli_for,
    failed,
    ok_json,
)

Json = dict[str, Any]
CHANGED = b"changed after the snapshot"


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


@pytest.fixture
def prod(world: FakeWorld) -> FakeContainer:
    return add_db(world, "prod-db")


@pytest.fixture
def snapshot_id(world: FakeWorld, prod: FakeContainer) -> str:
    snapshot = snapshot_of(world, "prod-db")
    world.docker.volumes["prod-db-vol"].content = CHANGED
    return snapshot


def _containers(world: FakeWorld) -> list[tuple[str, str, bool]]:
    return sorted((c.name, c.id, c.running) for c in world.docker.containers.values())


# --- API -------------------------------------------------------------------------------


def test_api_replace_then_undo(world: FakeWorld, client: TestClient, prod: FakeContainer,
                               snapshot_id: str) -> None:
    response = client.post(f"/v1/snapshots/{snapshot_id}/restore", json={"replace": "prod-db"})
    assert response.status_code == 202, response.text
    job = finished(client, response.json())
    assert job["status"] == "succeeded", job["error"]
    new = world.docker.by_name("prod-db")
    assert (job["result"]["container"], job["result"]["container_id"]) == ("prod-db", new.id)
    assert job["result"]["replaced"] == {"container": prod.name, "container_id": prod.id,
                                         "status": "stopped"}
    assert prod.name.startswith("prod-db-replaced-") and not prod.running
    assert world.docker.data_of("prod-db") != CHANGED

    undone = client.post("/v1/containers/prod-db/undo-replace")
    assert undone.status_code == 200, undone.text
    assert undone.json() == {"container": "prod-db", "container_id": prod.id,
                             "restored_from": job["result"]["replaced"]["container"],
                             "set_aside": {"container": new.name, "container_id": new.id,
                                           "status": "stopped"}}
    assert world.docker.data_of("prod-db") == CHANGED and prod.running


def test_api_replace_latest_of_an_instance(world: FakeWorld, client: TestClient,
                                           prod: FakeContainer, snapshot_id: str) -> None:
    response = client.post("/v1/instances/prod-db/restore", json={"replace": "prod-db"})
    job = finished(client, response.json())
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["snapshot_id"] == snapshot_id
    assert job["result"]["replaced"]["container_id"] == prod.id


@pytest.mark.parametrize(("body", "status", "kind", "words"), [
    ({"replace": "nope"}, 404, "NotFound", "no container named 'nope' to replace"),
    ({"replace": "prod-db", "name": "other"}, 400, "InvalidInput", "leave out name"),
    ({"replace": "prod-db", "ttl": "4h"}, 400, "InvalidInput", "leave out ttl"),
    ({"replace": "prod-db", "publish": 0}, 400, "InvalidInput", "leave out publish"),
    ({"replace": "bad name!"}, 400, "InvalidName", "bad name"),
    ({}, 400, "InvalidInput", "body: Value error, name the fresh container"),
])
def test_api_bad_replace_is_refused_and_starts_no_job(
        world: FakeWorld, client: TestClient, snapshot_id: str, body: Json, status: int,
        kind: str, words: str) -> None:
    before = _containers(world)
    error = assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore", json=body),
                         status, kind)
    assert words in error["error"]
    assert world.catalog.list_jobs() == [] and _containers(world) == before


def test_api_undo_with_nothing_to_undo_is_404(world: FakeWorld, client: TestClient,
                                              prod: FakeContainer) -> None:
    error = assert_error(client.post("/v1/containers/prod-db/undo-replace"), 404, "NotFound")
    assert "no container prod-db-replaced-*" in error["error"]


def test_api_undo_replace_is_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/containers/{name}/undo-replace"]) == {"post"}
    body = client.get("/openapi.json").json()["components"]["schemas"]["RestoreBody"]
    assert "replace" in body["properties"] and "name" not in body.get("required", [])


# --- CLI -------------------------------------------------------------------------------


def test_cli_replace_then_undo(world: FakeWorld, cli: Cli, prod: FakeContainer,  # noqa: F811
                               snapshot_id: str) -> None:
    result = cli("restore", snapshot_id, "--replace", "prod-db")
    assert result.exit_code == 0, result.output
    assert "into container prod-db" in result.stdout
    assert f"kept stopped as {prod.name}" in result.stdout
    assert "holdfast restore --undo-replace prod-db" in result.stdout
    new = world.docker.by_name("prod-db")

    undone = ok_json(cli("restore", "--undo-replace", "prod-db", "--json"))
    assert (undone["container_id"], undone["set_aside"]["container_id"]) == (prod.id, new.id)
    assert world.docker.data_of("prod-db") == CHANGED


def test_cli_replace_json_records_the_swap(world: FakeWorld, cli: Cli,  # noqa: F811
                                           prod: FakeContainer, snapshot_id: str) -> None:
    result = ok_json(cli("restore", snapshot_id, "--replace", "prod-db", "--json"))
    assert result["replaced"]["container_id"] == prod.id
    assert result["container"] == "prod-db"


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--replace", "nope"], 3, "no container named 'nope' to replace"),
    (["--replace", "prod-db", "--name", "x"], 2, "leave out name"),
    (["--replace", "prod-db", "--network", "n"], 2, "leave out network"),
    ([], 2, "--name NEW, or swap"),
])
def test_cli_bad_replace(world: FakeWorld, cli: Cli, snapshot_id: str,  # noqa: F811
                         args: list[str], code: int, words: str) -> None:
    before = _containers(world)
    assert words in failed(cli("restore", snapshot_id, *args), code)
    assert _containers(world) == before


@pytest.mark.parametrize(("args", "code", "words"), [
    (["--undo-replace", "prod-db"], 3, "no container prod-db-replaced-*"),
    (["SNAP", "--undo-replace", "prod-db"], 2, "takes no SNAPSHOT"),
    (["--undo-replace", "prod-db", "--name", "x"], 2, "--name given"),
    (["--undo-replace", "prod-db", "--tag", "release=v1"], 2, "--tag given"),
    ([], 2, "give the SNAPSHOT"),
])
def test_cli_bad_undo(world: FakeWorld, cli: Cli, prod: FakeContainer,  # noqa: F811
                      args: list[str], code: int, words: str) -> None:
    before = _containers(world)
    assert words in failed(cli("restore", *args), code)
    assert _containers(world) == before
