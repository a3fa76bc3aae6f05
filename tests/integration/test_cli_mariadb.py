"""MariaDB through the CLI, as a developer would use it: back up a labelled
container whose credentials live in its own environment, restore it into a
fresh container by name, and compare everything (tables, counts, checksums,
views, routines, triggers, events, accounts). With the source gone, the
root password must come from Holdfast's environment."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from service.adapters.docker import DockerAdapter
from tests.contract.test_mariadb_engine import (
    APP_PASSWORD,
    MARIADB_IMAGE,
    MARIADB_STYLE_ENV,
    READER_PASSWORD,
    ROOT_PASSWORD,
    MariaDBContainers,
    fingerprint,
    seed,
)
from tests.integration.conftest import KNOWN_SECRETS, DockerCleanup, Holdfast

pytestmark = pytest.mark.docker
KNOWN_SECRETS.update({ROOT_PASSWORD, APP_PASSWORD, READER_PASSWORD})


@pytest.fixture
def adapter() -> Iterator[DockerAdapter]:
    adapter = DockerAdapter()
    yield adapter
    adapter.close()


@pytest.fixture
def mariadb_source(docker_client: docker.DockerClient, test_network: str,
                   adapter: DockerAdapter) -> Iterator[Container]:
    containers = MariaDBContainers(docker_client, test_network, MARIADB_IMAGE, adapter)
    try:
        source = containers.make(MARIADB_STYLE_ENV)
        seed(adapter, source)
        yield source
    finally:
        containers.remove_all()


def test_mariadb_round_trip_through_the_cli(
    holdfast: Holdfast, mariadb_source: Container, adapter: DockerAdapter,
    docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
) -> None:
    name = mariadb_source.name
    instances = {i["name"]: i for i in holdfast.json("instances")}
    assert instances[name]["engine"] == "mariadb"
    snapshot = holdfast.json("backup", name)
    assert snapshot["status"] == "complete" and snapshot["engine"] == "mariadb"
    manifest = (holdfast.snapshots_dir / name / snapshot["id"] / "manifest.json").read_text()
    for secret in (ROOT_PASSWORD, APP_PASSWORD, READER_PASSWORD):
        assert secret not in manifest
    expected = fingerprint(adapter, mariadb_source.id)
    assert expected["tables"] and expected["routines"] and expected["triggers"]

    first = docker_cleanup.restored(f"{name}-r1")
    result = holdfast.json("restore", snapshot["id"], "--name", first)
    assert result["volumes"] == [f"{first}-data"]
    assert sorted(result["databases"]) == sorted(snapshot_databases(holdfast, name))
    assert fingerprint(adapter, docker_client.containers.get(first).id) == expected

    mariadb_source.remove(force=True, v=True)
    second = docker_cleanup.restored(f"{name}-r2-{secrets.token_hex(2)}")
    _, line = holdfast.fail("restore", snapshot["id"], "--name", second, code=2)
    assert "MARIADB_ROOT_PASSWORD" in line
    holdfast.json("restore", snapshot["id"], "--name", second,
                  env={"MARIADB_ROOT_PASSWORD": ROOT_PASSWORD,
                       "MARIADB_PASSWORD": APP_PASSWORD})
    assert fingerprint(adapter, docker_client.containers.get(second).id) == expected


def snapshot_databases(holdfast: Holdfast, instance: str) -> list[str]:
    snapshot = holdfast.json("snapshots", instance)[0]
    path = holdfast.snapshots_dir / instance / snapshot["id"] / "manifest.json"
    import json
    return list(json.loads(path.read_text())["databases"])
