"""Engine detection on real containers: from the image name, then from the
binaries inside when the name says nothing (a company's own image), and an
explicit ``holdfast.engine`` label always wins."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.harness.docker_fixtures import TEST_LABEL
from tests.harness.waiting import wait_for
from tests.integration.conftest import Holdfast

pytestmark = pytest.mark.docker

# Test images re-tagged under names that hint at no engine.
RETAGGED = {
    "postgres": ("holdfast-test/postgres:15", "holdfast-test/acme-ledger", "1"),
    "mariadb": ("holdfast-test/mariadb:10.11", "holdfast-test/acme-orders", "1"),
    "redis": ("holdfast-test/redis:7", "holdfast-test/acme-sessions", "1"),
}
ENV = {"POSTGRES_PASSWORD": "detect-pw", "MARIADB_ROOT_PASSWORD": "detect-pw"}


@pytest.fixture
def started(docker_client: docker.DockerClient, test_network: str) -> Iterator[list[Container]]:
    containers: list[Container] = []
    yield containers
    for container in containers:
        container.remove(force=True, v=True)
    # Untag only: an extra tag would keep a replaced image alive after a rebuild.
    for _, repository, tag in RETAGGED.values():
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(f"{repository}:{tag}")


def run(client: docker.DockerClient, network: str, image: str, labels: dict[str, str],
        into: list[Container]) -> Container:
    container = client.containers.run(
        image, name=f"hf-it-detect-{secrets.token_hex(3)}", detach=True, network=network,
        environment=ENV, labels={TEST_LABEL: "1", "holdfast.enable": "true", **labels})
    into.append(container)
    return container


def test_engine_from_binaries_when_the_image_name_says_nothing(
    holdfast: Holdfast, docker_client: docker.DockerClient, test_network: str,
    started: list[Container],
) -> None:
    expected: dict[str, str] = {}
    for engine, (image, repository, tag) in RETAGGED.items():
        docker_client.images.get(image).tag(repository, tag)
        container = run(docker_client, test_network, f"{repository}:{tag}", {}, started)
        expected[container.name] = engine
    # The label wins over both the name and the binaries.
    labelled = run(docker_client, test_network, "holdfast-test/redis:7",
                   {"holdfast.engine": "volume"}, started)
    expected[labelled.name] = "volume"
    named = run(docker_client, test_network, "holdfast-test/redis:7", {}, started)
    expected[named.name] = "redis"

    # Binaries are probed only in a running container, and the servers take a
    # moment to start.
    def detected() -> bool:
        seen = {i["container"]: i["engine"] for i in holdfast.json("instances")
                if i["container"] in expected}
        return seen == expected
    wait_for(detected, 90, f"the engines {expected}", interval=1)
    engines = {i["container"]: i["engine"] for i in holdfast.json("instances")}
    assert {name: engines.get(name) for name in expected} == expected
