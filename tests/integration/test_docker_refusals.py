"""What the real engine refuses is reported as what it is, never as "cannot
reach the Docker engine": a name too long for its file system is bad input
(400, exit 2), concurrent size listings all succeed although Docker runs one
disk-usage walk at a time, and a helper image this registry-less engine cannot
pull is one line saying how to provide it."""

from __future__ import annotations

import contextlib
import secrets
import subprocess

import docker
import pytest
from docker.errors import NotFound

from backup.errors import DockerRejectedInput, DockerUnavailable
from backup.ports import VolumeSpec
from service.adapters.docker import DockerAdapter
from service.entrypoints.error_table import outcome_for
from tests.harness.docker_fixtures import HELPER_IMAGE, TEST_LABEL
from tests.integration.conftest import Holdfast, volume_exists

pytestmark = pytest.mark.docker

MISSING_IMAGE = "holdfast-test/does-not-exist:0"


def fresh(names: list[str], length: int = 0) -> str:
    name = f"hf-refusal-{secrets.token_hex(3)}"
    name += "a" * max(0, length - len(name))
    names.append(name)
    return name


def test_a_300_character_volume_name_is_refused_with_exit_2(
    holdfast: Holdfast, docker_client: docker.DockerClient, volume_names: list[str],
) -> None:
    name = fresh(volume_names, 300)
    _, line = holdfast.fail("volumes", "create", name, code=2)
    assert line.endswith("(300 characters): names are at most 255 characters")
    assert "cannot reach" not in line and name not in line
    assert not volume_exists(docker_client, name)


def test_the_engines_own_refusal_of_a_too_long_name_is_bad_input(
    docker_client: docker.DockerClient, volume_names: list[str],
) -> None:
    # Past the domain's check (as a caller of the adapter could be): Docker
    # 20.10 answers a 500 "file name too long", which is the input's fault.
    name = fresh(volume_names, 300)
    adapter = DockerAdapter(helper_image=HELPER_IMAGE)
    try:
        with pytest.raises(DockerRejectedInput) as caught:
            adapter.create_volume(VolumeSpec(name=name, labels={TEST_LABEL: "1"}))
    finally:
        adapter.close()
    assert not isinstance(caught.value, DockerUnavailable)
    outcome = outcome_for(caught.value)
    assert (outcome.http_status, outcome.exit_code) == (400, 2)
    assert str(caught.value).endswith("file name too long; use a shorter name")
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400
    assert not volume_exists(docker_client, name)


def test_size_listings_of_several_processes_at_once_all_succeed(
    holdfast: Holdfast, docker_client: docker.DockerClient, volume_names: list[str],
) -> None:
    # Each process has its own lock: what keeps them apart is the wait for a
    # walk another client runs.
    name = fresh(volume_names)
    docker_client.volumes.create(name=name, labels={TEST_LABEL: "1"})
    processes = [subprocess.Popen(holdfast._argv(("volumes", "ls", "--json")), env=holdfast.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
    outputs = [process.communicate(timeout=120) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert f'"name": "{name}"' in stdout


def test_a_helper_image_that_cannot_be_pulled_is_one_clear_line(
    holdfast: Holdfast, docker_client: docker.DockerClient, volume_names: list[str],
) -> None:
    with contextlib.suppress(NotFound):
        docker_client.images.get(MISSING_IMAGE)
        pytest.fail(f"{MISSING_IMAGE} exists on this engine; the test needs it missing")
    source, target = fresh(volume_names), fresh(volume_names)
    docker_client.volumes.create(name=source, labels={TEST_LABEL: "1"})
    # fail() also checks that the line is all the command printed, at any log level.
    for level in ("WARNING", "DEBUG"):
        _, line = holdfast.fail("volumes", "clone", source, target, code=3,
                                env={"HOLDFAST_HELPER_IMAGE": MISSING_IMAGE,
                                     "HOLDFAST_LOG_LEVEL": level})
        assert line.startswith(f"holdfast: cannot pull helper image {MISSING_IMAGE}: ")
        assert line.endswith("; load it with `docker load` or set HOLDFAST_HELPER_IMAGE to a "
                             "local image that has sh and GNU tar")
    assert not volume_exists(docker_client, target)  # the clone's new target is gone again
