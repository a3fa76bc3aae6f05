"""The real :class:`~service.adapters.docker.DockerAdapter` on the local Docker
engine runs the Docker engine contract that the fake of the Docker-free tier
(``test_fake_docker.py``) runs too.

The engine is shared: every container and volume here has a fresh uuid-suffixed
name, carries the ``holdfast.test=1`` label, runs on the internal test network,
and is force-removed at teardown; nothing else is touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping

import docker
import pytest
from docker.errors import NotFound

from backup.ports import ContainerSpec
from service.adapters.docker import DockerAdapter
from tests.contract.docker_contract import (
    VOLUME_DESTINATION,
    ContainerFactory,
    DockerEngineContract,
    NameFactory,
    SpecFactory,
)
from tests.harness.docker_fixtures import (
    HELPER_IMAGE,
    TEST_LABEL,
    DockerCleanup,
    require_image,
)

pytestmark = pytest.mark.docker

COMMAND = ("sleep", "infinity")


class TestDockerAdapter(DockerEngineContract):
    @pytest.fixture
    def cleanup(self, docker_client: docker.DockerClient) -> Iterator[DockerCleanup]:
        cleanup = DockerCleanup(docker_client)
        yield cleanup
        errors = cleanup.remove_all()
        if errors:
            pytest.fail("cleanup failed:\n" + "\n".join(errors), pytrace=False)

    @pytest.fixture
    def docker_engine(self) -> Iterator[DockerAdapter]:
        adapter = DockerAdapter(helper_image=HELPER_IMAGE)
        yield adapter
        adapter.close()

    @pytest.fixture
    def image(self, docker_client: docker.DockerClient) -> str:
        return require_image(docker_client, HELPER_IMAGE)

    @pytest.fixture
    def unique_name(self, cleanup: DockerCleanup) -> NameFactory:
        def fresh(kind: str) -> str:
            # Tracked as both: a name the test gives a volume may end up a
            # container's, and removing what does not exist is harmless.
            name = f"hf-contract-{kind}-{uuid.uuid4().hex[:10]}"
            cleanup.containers.append(name)
            cleanup.volumes.append(name)
            return name

        return fresh

    @pytest.fixture
    def make_container(self, docker_client: docker.DockerClient, test_network: str,
                       image: str, cleanup: DockerCleanup) -> ContainerFactory:
        def make(name: str, labels: Mapping[str, str], volume: str) -> str:
            cleanup.containers.append(name)
            cleanup.volumes.append(volume)
            try:
                docker_client.volumes.get(volume)
            except NotFound:
                docker_client.volumes.create(name=volume, labels={TEST_LABEL: "1"})
            else:
                pytest.fail(f"volume {volume} already exists")
            # init: sleep as PID 1 would ignore SIGTERM and every stop would
            # wait for the kill.
            container = docker_client.containers.run(
                image, list(COMMAND), name=name, detach=True, init=True,
                labels={**labels, TEST_LABEL: "1"}, network=test_network,
                volumes={volume: {"bind": VOLUME_DESTINATION, "mode": "rw"}})
            return str(container.id)

        return make

    @pytest.fixture
    def container_spec(self, test_network: str, image: str,
                       cleanup: DockerCleanup) -> SpecFactory:
        def spec(name: str, volumes: Mapping[str, str]) -> ContainerSpec:
            cleanup.containers.append(name)
            cleanup.volumes.extend(volumes)  # Docker creates a missing named volume
            return ContainerSpec(name=name, image=image, env={"CONTRACT": "1"},
                                 volumes=dict(volumes), labels={TEST_LABEL: "1"},
                                 networks=(test_network,), command=COMMAND)

        return spec
