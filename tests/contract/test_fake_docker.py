"""The in-memory :class:`~tests.fakes.docker.FakeDocker` meets the same Docker
engine contract as the real adapter (``test_docker_adapter.py``), so the
Docker-free use-case tier can trust it. Needs no engine."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import pytest

from backup.ports import ContainerSpec
from service.ports import DockerEngine
from tests.contract.docker_contract import (
    VOLUME_DESTINATION,
    ContainerFactory,
    DockerEngineContract,
    NameFactory,
    SpecFactory,
)
from tests.fakes.docker import DATA_PATH, FakeDocker

IMAGE = "fake/db:1"
COMMAND = ("sleep", "infinity")


def test_the_fake_mounts_data_where_the_contract_expects() -> None:
    assert DATA_PATH == VOLUME_DESTINATION


class TestFakeDocker(DockerEngineContract):
    @pytest.fixture
    def fake(self) -> FakeDocker:
        return FakeDocker()

    @pytest.fixture
    def docker_engine(self, fake: FakeDocker) -> DockerEngine:
        return fake

    @pytest.fixture
    def image(self) -> str:
        return IMAGE

    @pytest.fixture
    def unique_name(self) -> NameFactory:
        return lambda kind: f"hf-contract-{kind}-{uuid.uuid4().hex[:10]}"

    @pytest.fixture
    def make_container(self, fake: FakeDocker) -> ContainerFactory:
        def make(name: str, labels: Mapping[str, str], volume: str) -> str:
            assert volume not in fake.volumes  # add_container would replace it
            return fake.add_container(name, image=IMAGE, labels=labels, volume=volume,
                                      command=COMMAND).id

        return make

    @pytest.fixture
    def container_spec(self, fake: FakeDocker) -> SpecFactory:
        # Like the real engine, the fake refuses networks nobody created; like
        # the real contract's test network, this one is internal.
        fake.networks.add("fake-net")
        fake.internal_networks.add("fake-net")

        def spec(name: str, volumes: Mapping[str, str]) -> ContainerSpec:
            return ContainerSpec(name=name, image=IMAGE, env={"CONTRACT": "1"},
                                 volumes=dict(volumes), labels={"holdfast.test": "1"},
                                 networks=("fake-net",), command=COMMAND)

        return spec
