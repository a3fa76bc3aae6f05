"""Redis through the CLI: a password-protected server (``--requirepass``, as
users of the official image set it) is backed up and restored into a fresh
container that asks for the same password and holds the same keys; with the
source gone, the password must come from ``REDIS_PASSWORD``."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from service.adapters.docker import DockerAdapter
from tests.contract.test_redis_engine import FINGERPRINT_LUA, REDIS_IMAGE, redis_cli, seed_commands
from tests.harness.docker_fixtures import TEST_LABEL
from tests.integration.conftest import KNOWN_SECRETS, DockerCleanup, Holdfast

pytestmark = pytest.mark.docker

PASSWORD = f"redis-cli-pw-{secrets.token_hex(6)}"
KNOWN_SECRETS.add(PASSWORD)


def digest(container: Container) -> dict[int, str]:
    return {db: redis_cli(container, PASSWORD, "-n", str(db), "EVAL", FINGERPRINT_LUA, "0")
            for db in (0, 3)}


@pytest.fixture
def redis_source(docker_client: docker.DockerClient, test_network: str,
                 docker_cleanup: DockerCleanup) -> Iterator[Container]:
    name = docker_cleanup.restored(f"hf-it-redis-{secrets.token_hex(3)}")
    docker_client.volumes.create(name=f"{name}-data", labels={TEST_LABEL: "1"})
    container = docker_client.containers.run(
        REDIS_IMAGE, ["redis-server", "--appendonly", "yes", "--requirepass", PASSWORD],
        name=name, detach=True, network=test_network,
        labels={TEST_LABEL: "1", "holdfast.enable": "true"},
        volumes={f"{name}-data": {"bind": "/data", "mode": "rw"}})
    deadline = time.monotonic() + 60
    while container.exec_run(["redis-cli", "PING"], environment={"REDISCLI_AUTH": PASSWORD}
                             ).output.strip() != b"PONG":
        container.reload()
        assert container.status == "running", container.logs(tail=20)
        assert time.monotonic() < deadline, container.logs(tail=20)
        time.sleep(0.2)
    adapter = DockerAdapter()
    try:
        result = adapter.run(container.id, ["redis-cli", "--pipe"],
                             env={"REDISCLI_AUTH": PASSWORD}, stdin=[b"".join(seed_commands())])
    finally:
        adapter.close()
    assert b"errors: 0" in result.stdout, result.stdout
    assert redis_cli(container, PASSWORD, "DBSIZE").strip() == "5002"
    yield container


def test_password_protected_redis_round_trip(
    holdfast: Holdfast, redis_source: Container, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    instances = {i["name"]: i for i in holdfast.json("instances")}
    assert instances[redis_source.name]["engine"] == "redis"
    snapshot = holdfast.json("backup", redis_source.name)
    assert snapshot["status"] == "complete" and snapshot["engine"] == "redis"
    manifest = (holdfast.snapshots_dir / redis_source.name / snapshot["id"] /
                "manifest.json").read_text()
    assert PASSWORD not in manifest and "{{secret:REDIS_PASSWORD}}" in manifest
    expected = digest(redis_source)

    first = docker_cleanup.restored(f"{redis_source.name}-r1")
    holdfast.json("restore", snapshot["id"], "--name", first)
    restored = docker_client.containers.get(first)
    # The restored server asks for the same password and keeps the options.
    noauth = restored.exec_run(["redis-cli", "DBSIZE"]).output.decode()
    assert "NOAUTH" in noauth
    assert digest(restored) == expected
    assert redis_cli(restored, PASSWORD, "CONFIG", "GET", "appendonly").split() == \
        ["appendonly", "yes"]
    assert PASSWORD not in str(restored.labels) and \
        not any(PASSWORD in entry for entry in restored.attrs["Config"]["Env"] or [])

    redis_source.remove(force=True)
    second = docker_cleanup.restored(f"{redis_source.name}-r2")
    _, line = holdfast.fail("restore", snapshot["id"], "--name", second, code=2)
    assert "REDIS_PASSWORD" in line
    holdfast.json("restore", snapshot["id"], "--name", second,
                  env={"REDIS_PASSWORD": PASSWORD})
    assert digest(docker_client.containers.get(second)) == expected
