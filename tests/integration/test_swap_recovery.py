"""What a killed replace leaves, on a real engine: ``holdfast restore --replace`` is
SIGKILLed while its staging PostgreSQL container starts, which leaves
``NAME-restoring-<time>`` running with its fresh volume, both labelled with the
staging marks (the container replaced, the dead process); a replace is refused with
the line that says what to do; start-up recovery removes the container and its
volume and touches nothing else; the next replace goes through. Everything the test
creates is removed at the end, by name, as the staging container carries none of
the test's labels.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from pathlib import Path

import docker
import pytest
from docker.errors import NotFound

from restore.swap import STAGING_FOR_LABEL, STAGING_JOB_LABEL, STAGING_RUNNER_LABEL
from service.bootstrap import bootstrap
from service.settings import Settings
from service.usecases.recovery import recover
from tests.harness.docker_fixtures import PostgresFactory, psql
from tests.integration.conftest import Holdfast

pytestmark = pytest.mark.docker

SEED = "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 7);"
READY = {"HOLDFAST_READY_TIMEOUT": "90"}


def _staging_of(client: docker.DockerClient, name: str, timeout: float = 60.0) -> str:
    """The name of ``name``'s staging container, once the replace has made it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [c.name for c in client.containers.list(all=True, filters={"name": name})
                 if c.name.startswith(f"{name}-restoring-")]
        if found:
            return str(found[0])
        time.sleep(0.02)
    raise AssertionError(f"no {name}-restoring-* container within {timeout}s")


def _rows(client: docker.DockerClient, name: str) -> str:
    code, output = client.containers.get(name).exec_run(
        ["psql", "-U", "app", "-d", "appdb", "-X", "-At", "-c", "SELECT count(*) FROM items"])
    assert code == 0, output
    return bytes(output).decode().strip()


def test_recovery_removes_the_staging_container_and_volume_a_killed_replace_left(
        postgres_container_factory: PostgresFactory, docker_client: docker.DockerClient,
        tmp_path: Path) -> None:
    holdfast = Holdfast(data_dir=tmp_path / "data")
    name = f"hf-swaprec-{secrets.token_hex(3)}"
    db = postgres_container_factory(name=name)
    psql(db, SEED)
    snapshot_id = str(holdfast.json("backup", name)["id"])
    try:
        with holdfast.popen("restore", snapshot_id, "--replace", name) as process:
            staging = _staging_of(docker_client, name)
            process.kill()  # SIGKILL: nothing of the replace's clean-up runs
            process.wait(timeout=30)
        left = docker_client.containers.get(staging)
        assert left.labels[STAGING_FOR_LABEL] == name
        assert left.labels[STAGING_RUNNER_LABEL].split(":")[1] == str(process.pid)
        assert STAGING_JOB_LABEL not in left.labels  # a CLI run has no job
        volumes = [m["Name"] for m in left.attrs["Mounts"] if m["Type"] == "volume"]
        assert volumes and all(
            docker_client.volumes.get(v).attrs["Labels"][STAGING_FOR_LABEL] == name
            for v in volumes)

        _, line = holdfast.fail("restore", snapshot_id, "--replace", name)
        assert line.endswith(f"a replace of {name} is in progress (container {staging}); "
                             f"wait for its job to end, or, if none runs, docker rm -fv "
                             f"{staging}"), line

        services = bootstrap(Settings.load(holdfast.env()))
        try:
            report = recover(services)
        finally:
            services.close()
        assert report.staging == [staging]
        with pytest.raises(NotFound):
            docker_client.containers.get(staging)
        for volume in volumes:
            with pytest.raises(NotFound):
                docker_client.volumes.get(volume)
        db.reload()
        assert db.status == "running" and docker_client.containers.get(name).id == db.id
        assert _rows(docker_client, name) == "7"

        result = holdfast.json("restore", snapshot_id, "--replace", name, env=READY)
        assert result["container"] == name and result["replaced"]["container_id"] == db.id
    finally:
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            if container.name.startswith(f"{name}-"):  # the factory removes NAME itself
                container.remove(force=True, v=True)
        for container in docker_client.containers.list(all=True, filters={"name": name}):
            if container.name == name and container.id != db.id:  # the one swapped in
                container.remove(force=True, v=True)
        for volume in docker_client.volumes.list(filters={"name": name}):
            if volume.name.startswith(f"{name}-") and volume.name != f"{name}-data":
                with contextlib.suppress(NotFound):
                    volume.remove(force=True)
