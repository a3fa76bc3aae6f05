"""Copies and restore options through the API (TestClient) and the CLI (CliRunner) on
the fakes: each bad value is one 400 / exit 2 line and starts no job, an unknown
network is 404 / exit 3, a taken port 409 / exit 4; copies are listed and extended."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backup.types import utcnow
from service.entrypoints.api import create_app
from service.usecases import copies
from service.usecases.jobs import JobRunner
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


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


@pytest.fixture
def snapshot_id(world: FakeWorld) -> str:
    add_db(world)
    world.docker.networks.add("ci-net")
    return snapshot_of(world)


# --- API -------------------------------------------------------------------------------


def test_api_restore_with_options_answers_with_where_to_connect(
        world: FakeWorld, client: TestClient, snapshot_id: str) -> None:
    response = client.post(f"/v1/snapshots/{snapshot_id}/restore", json={
        "name": "ci-db", "network": "ci-net", "alias": "db", "publish": 0,
        "labels": {"ci.pipeline": "1234"}, "ttl": "4h"})
    assert response.status_code == 202, response.text
    job = finished(client, response.json())
    assert job["status"] == "succeeded", job["error"]
    result = job["result"]
    assert result["networks"]["ci-net"]["aliases"] == ["db"]
    [binding] = result["ports"]["7777/tcp"]
    assert result["urls"]["published"] == \
        f"fake://:{{FAKE_PASSWORD}}@127.0.0.1:{binding['host_port']}/main"
    assert "s3cret" not in json.dumps(job)
    assert world.docker.by_name("ci-db").labels["ci.pipeline"] == "1234"

    [listed] = client.get("/v1/copies").json()
    assert (listed["name"], listed["job_id"], listed["volumes"]) == (
        "ci-db", job["id"], ["ci-db-data"])
    assert 4 * 3600 - 60 < listed["seconds_left"] <= 4 * 3600
    assert client.get("/v1/copies/ci-db").json()["container_id"] == listed["container_id"]


def test_api_restore_latest_takes_the_options_too(
        world: FakeWorld, client: TestClient, snapshot_id: str) -> None:
    response = client.post("/v1/instances/shop-db/restore",
                           json={"name": "ci-db", "ttl": "1h", "network": "ci-net"})
    assert finished(client, response.json())["status"] == "succeeded"
    assert world.docker.by_name("ci-db").networks == ("ci-net",)


@pytest.mark.parametrize(("body", "message"), [
    ({"publish": 70000}, "1 to 65535"),
    ({"publish": "port"}, "1 to 65535"),
    ({"publish": True}, "body.publish"),
    ({"publish": "localhost:5433"}, "not an IP address"),
    ({"ttl": "30s"}, "from 1m to 365d"),
    ({"ttl": "4 hours"}, "from 1m to 365d"),
    ({"alias": "db"}, "alias needs a network"),
    ({"labels": {"holdfast.enable": "true"}}, "holdfast."),
    ({"network": "bad net"}, "not a valid network name"),
])
def test_api_bad_restore_options_are_400_and_start_no_job(
        world: FakeWorld, client: TestClient, snapshot_id: str, body: Json,
        message: str) -> None:
    error = assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore",
                                     json={"name": "ci-db", **body}), 400, "InvalidInput")
    assert message in error["error"]
    assert world.catalog.list_jobs() == [] and world.catalog.live_copies() == []


def test_api_unknown_network_is_404_and_starts_no_job(
        world: FakeWorld, client: TestClient, snapshot_id: str) -> None:
    assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore",
                             json={"name": "ci-db", "network": "nope"}), 404, "NetworkNotFound")
    assert world.catalog.list_jobs() == []


def test_api_taken_port_is_409(world: FakeWorld, client: TestClient, snapshot_id: str) -> None:
    first = finished(client, client.post(f"/v1/snapshots/{snapshot_id}/restore",
                                         json={"name": "one", "publish": 0}).json())
    port = first["result"]["ports"]["7777/tcp"][0]["host_port"]
    error = assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore",
                                     json={"name": "two", "publish": port}), 409, "PortTaken")
    assert str(port) in error["error"]


def test_api_extend_a_copy(world: FakeWorld, client: TestClient, snapshot_id: str) -> None:
    finished(client, client.post(f"/v1/snapshots/{snapshot_id}/restore",
                                 json={"name": "ci-db", "ttl": "1m"}).json())
    response = client.patch("/v1/copies/ci-db", json={"ttl": "2h"})
    assert response.status_code == 200, response.text
    assert 7200 - 60 < response.json()["seconds_left"] <= 7200
    assert_error(client.patch("/v1/copies/ci-db", json={"ttl": "0m"}), 400, "InvalidInput")
    assert_error(client.patch("/v1/copies/nope", json={"ttl": "2h"}), 404, "CopyNotFound")
    assert_error(client.get("/v1/copies/nope"), 404, "CopyNotFound")


def test_api_a_reaped_copy_is_no_longer_listed_and_its_job_says_so(
        world: FakeWorld, client: TestClient, snapshot_id: str) -> None:
    job = finished(client, client.post(f"/v1/snapshots/{snapshot_id}/restore",
                                       json={"name": "ci-db", "ttl": "1m"}).json())
    from datetime import timedelta

    copies.reap_expired_copies(world.services, utcnow() + timedelta(minutes=5))
    assert client.get("/v1/copies").json() == []
    # The job's typed result carries the removal (a model without the field dropped it).
    expired = client.get(f"/v1/jobs/{job['id']}").json()["result"]["expired"]
    assert expired["name"] == "ci-db" and expired["container_removed"]
    assert expired["volumes_removed"] == job["result"]["volumes"] and expired["error"] is None


# --- CLI -------------------------------------------------------------------------------


def test_cli_restore_with_options_and_copies_ls(
        world: FakeWorld, cli: Cli, snapshot_id: str) -> None:  # noqa: F811
    result = ok_json(cli("restore", snapshot_id, "--name", "ci-db", "--network", "ci-net",
                         "--alias", "db", "--publish", "0", "--label", "k=v", "--ttl", "4h",
                         "--json"))
    assert result["urls"]["networks"] == {"ci-net": "fake://:{FAKE_PASSWORD}@db:7777/main"}
    assert world.docker.by_name("ci-db").labels["k"] == "v"
    [listed] = ok_json(cli("copies", "ls", "--json"))
    assert (listed["name"], listed["container_id"]) == ("ci-db", result["container_id"])
    table = cli("copies", "ls")
    assert table.exit_code == 0 and "ci-db" in table.stdout and "3h 59m" in table.stdout


def test_cli_restore_prints_where_to_connect(
        world: FakeWorld, cli: Cli, snapshot_id: str) -> None:  # noqa: F811
    result = cli("restore", snapshot_id, "--name", "ci-db", "--publish", "0", "--ttl", "1h")
    assert result.exit_code == 0, result.output
    assert "connect: fake://:{FAKE_PASSWORD}@127.0.0.1:" in result.stdout
    assert "expires at" in result.stdout and "s3cret" not in result.output


def test_cli_copies_extend(world: FakeWorld, cli: Cli, snapshot_id: str) -> None:  # noqa: F811
    ok_json(cli("restore", snapshot_id, "--name", "ci-db", "--ttl", "1m", "--json"))
    extended = ok_json(cli("copies", "extend", "ci-db", "2h", "--json"))
    assert 7200 - 60 < extended["seconds_left"] <= 7200
    line = cli("copies", "extend", "ci-db", "3h")
    assert line.exit_code == 0 and "now expires at" in line.stdout
    assert "no live copy" in failed(cli("copies", "extend", "nope", "2h"), 3)
    assert "from 1m to 365d" in failed(cli("copies", "extend", "ci-db", "1y"), 2)


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--publish", "65536"], 2, "1 to 65535"),
    (["--ttl", "10s"], 2, "from 1m to 365d"),
    (["--alias", "db"], 2, "alias needs a network"),
    (["--label", "holdfast.enable=true"], 2, "holdfast."),
    (["--label", "novalue"], 2, "KEY=VALUE"),
    (["--network", "nope"], 3, "no Docker network named 'nope'"),
])
def test_cli_bad_restore_options(world: FakeWorld, cli: Cli, snapshot_id: str,  # noqa: F811
                                 args: list[str], code: int, message: str) -> None:
    assert message in failed(cli("restore", snapshot_id, "--name", "ci-db", *args), code)
    assert world.catalog.live_copies() == []
    assert "ci-db" not in {c.name for c in world.docker.containers.values()}


def test_cli_copies_ls_without_any(cli: Cli) -> None:  # noqa: F811
    result = cli("copies", "ls")
    assert result.exit_code == 0 and "no copies" in result.stdout
    assert ok_json(cli("copies", "ls", "--json")) == []
