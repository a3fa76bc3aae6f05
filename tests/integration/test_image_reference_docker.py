"""The image-reference grammar of :mod:`backup.images` agrees with the Docker engine:
what it accepts, the engine looks up (404 when missing, never "invalid reference");
what it refuses for the form, the engine refuses too (400). Read-only: nothing is
pulled or created."""

from __future__ import annotations

import docker
import docker.errors
import pytest

from backup.images import reference_problem
from service.adapters.docker import DockerAdapter
from tests.unit.test_image_reference import HEX64

pytestmark = pytest.mark.docker

MISSING = ["holdfast-test/no-such-image:1", "localhost:5000/team/app:1.2.3",
           "registry.example.com/a/b/c:latest", "a__b", "a---b:x", "app:" + "T" * 128,
           f"holdfast-test/no-such@sha256:{HEX64}", f"postgres:15@sha256:{HEX64}"]
MALFORMED = ["Nope:1", "UPPER", "a b", "a:b:c", "busybox@sha256:abc", "a?b", "a#b",
             "%2e%2e", "app:" + "t" * 129, "a_", "-a"]


@pytest.mark.parametrize("reference", MISSING)
def test_a_reference_the_grammar_accepts_is_looked_up(
        docker_client: docker.DockerClient, reference: str) -> None:
    assert reference_problem(reference) is None
    with pytest.raises(docker.errors.APIError) as caught:
        docker_client.api.inspect_image(reference)
    assert caught.value.status_code == 404, caught.value


@pytest.mark.parametrize("reference", MALFORMED)
def test_a_reference_the_grammar_refuses_docker_refuses(
        docker_client: docker.DockerClient, reference: str) -> None:
    assert reference_problem(reference) is not None
    with pytest.raises(docker.errors.APIError) as caught:
        docker_client.api.inspect_image(reference)
    assert caught.value.status_code == 400, caught.value
    assert "invalid reference format" in str(caught.value)


def test_the_adapter_finds_a_present_image_and_not_a_missing_one() -> None:
    adapter = DockerAdapter()
    try:
        assert adapter.image_exists("holdfast-test/postgres:15")
        assert not adapter.image_exists("holdfast-test/no-such-image:1")
    finally:
        adapter.close()
