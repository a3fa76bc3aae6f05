"""Helper containers (volume archives, clones): always removed when their call
ends, early close and failure included, and the ones a killed Holdfast left
behind are removed at start-up while a live process's helpers stay."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator, Iterator
from typing import cast

import docker
import pytest

from backup.errors import ExecFailed
from service.adapters.docker import DockerAdapter
from service.adapters.docker.adapter import HELPER_LABEL
from service.runs import current_runner
from tests.harness.docker_fixtures import HELPER_IMAGE, TEST_LABEL

pytestmark = pytest.mark.docker


@pytest.fixture
def adapter() -> Iterator[DockerAdapter]:
    adapter = DockerAdapter(helper_image=HELPER_IMAGE)
    yield adapter
    adapter.close()


def mine(client: docker.DockerClient) -> list[str]:
    return [c.id for c in client.containers.list(
        all=True, filters={"label": f"{HELPER_LABEL}={current_runner()}"})]


def test_helpers_are_removed_after_success_failure_and_early_close(
    adapter: DockerAdapter, docker_client: docker.DockerClient,
) -> None:
    out = adapter.helper_run(["sh", "-c", "echo hello"])
    assert out.stdout == b"hello\n"
    with pytest.raises(ExecFailed):
        adapter.helper_run(["sh", "-c", "echo broken >&2; exit 3"])
    # The adapter's streams are generators, which the port lets a caller close early.
    stream = cast("Generator[bytes, None, None]",
                  adapter.helper_stream(["sh", "-c", "yes | head -c 50000000"]))
    assert next(stream)
    assert len(mine(docker_client)) == 1  # the helper exists while it streams
    stream.close()
    assert mine(docker_client) == []


def test_only_orphaned_helpers_are_removed(adapter: DockerAdapter,
                                           docker_client: docker.DockerClient) -> None:
    dead = f"{socket.gethostname()}:999999999:1"
    orphan = docker_client.containers.create(
        HELPER_IMAGE, ["sleep", "infinity"], labels={HELPER_LABEL: dead, TEST_LABEL: "1"})
    live = docker_client.containers.create(
        HELPER_IMAGE, ["sleep", "infinity"],
        labels={HELPER_LABEL: current_runner(), TEST_LABEL: "1"})
    try:
        removed = adapter.remove_orphan_helpers()
        assert orphan.id in removed and live.id not in removed
        remaining = {c.id for c in docker_client.containers.list(all=True)}
        assert orphan.id not in remaining and live.id in remaining
    finally:
        live.remove(force=True)
        with contextlib.suppress(docker.errors.NotFound):
            orphan.remove(force=True)
