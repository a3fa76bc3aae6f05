"""Warm copies and the restores that clone them, through the CLI, on real engines.

Reflinks are tested as the issue asks: a private dockerd (in a network
namespace of its own) whose data root is a loop-mounted XFS made with
``reflink=1``. The shared engine's data root has no reflinks, so the same
restore there copies, and says so. Copies are judged on the data (table
checksums, Redis keys), on the warm copy's files staying as they were, and
on writes to one copy reaching neither the warm copy nor another copy.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from restore.warm import WARM_OF_LABEL
from tests.harness.docker_fixtures import (
    HELPER_IMAGE,
    POSTGRES_IMAGE,
    TEST_LABEL,
    DockerCleanup,
    PostgresFactory,
    psql,
    wait_for_postgres,
)
from tests.harness.private_dockerd import PrivateDockerd
from tests.harness.volume_trees import read_tree
from tests.integration.conftest import SEED_APPDB, Holdfast, fingerprint
from tests.integration.test_cli_redis import digest
from tests.integration.test_cli_redis import redis_source as redis_source  # the fixture

pytestmark = pytest.mark.docker

WARM = {"holdfast.warm": "true"}


def _remove_warm_copies(client: docker.DockerClient, instances: list[str]) -> None:
    for instance in instances:
        for container in client.containers.list(
                all=True, filters={"label": f"{WARM_OF_LABEL}={instance}"}):
            names = [m["Name"] for m in container.attrs["Mounts"] if m.get("Type") == "volume"]
            container.remove(force=True)
            for name in names:
                with contextlib.suppress(NotFound, APIError):
                    client.volumes.get(name).remove(force=True)


@pytest.fixture
def warm_instances(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Instances whose warm copies are removed after the test."""
    instances: list[str] = []
    yield instances
    _remove_warm_copies(docker_client, instances)


def _source(factory: PostgresFactory, warm_instances: list[str]) -> Container:
    source = factory(labels=WARM)
    psql(source, SEED_APPDB)
    warm_instances.append(str(source.name))
    return source


def _restore(holdfast: Holdfast, cleanup: DockerCleanup, ref: str, *extra: str) -> Any:
    """Restore the newest snapshot of instance ``ref`` (with ``--latest`` in
    ``extra``), or the snapshot ``ref``, into a fresh container."""
    name = cleanup.restored(f"hf-it-warm-{secrets.token_hex(3)}")
    result = holdfast.json("restore", ref, "--name", name, *extra)
    assert result["container"] == name
    return result


def _warm_volume(result: dict[str, Any], client: docker.DockerClient) -> str:
    warm = client.containers.get(result["warm"]["name"])
    return str(next(m["Name"] for m in warm.attrs["Mounts"] if m.get("Type") == "volume"))


def test_a_restore_of_the_warm_snapshot_copies_it_where_there_are_no_reflinks(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory,
        docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
        warm_instances: list[str]) -> None:
    source = _source(postgres_container_factory, warm_instances)
    before = fingerprint(source, "appdb")
    snapshot = holdfast.json("backup", str(source.name))

    warmed = holdfast.json("warm", "refresh", str(source.name))
    assert warmed["refreshed"] is True and warmed["warm"]["snapshot_id"] == snapshot["id"]
    warm = docker_client.containers.get(warmed["warm"]["name"])
    assert warm.status == "exited", "a warm copy is kept stopped"
    tree = read_tree(docker_client, _warm_volume(warmed, docker_client))
    again = holdfast.json("warm", "refresh", str(source.name))
    assert again["refreshed"] is False and again["warm"]["name"] == warm.name

    first = _restore(holdfast, docker_cleanup, str(source.name), "--latest")
    assert (first["method"], first["warm"]) == ("copy", warm.name), first
    assert "no reflinks" in first["note"], first
    copy = docker_client.containers.get(first["container"])
    assert fingerprint(copy, "appdb") == before
    psql(copy, "INSERT INTO customers (name) VALUES ('only in the copy')", db="appdb")

    second = _restore(holdfast, docker_cleanup, str(source.name), "--latest")
    assert fingerprint(docker_client.containers.get(second["container"]), "appdb") == before
    assert read_tree(docker_client, _warm_volume(warmed, docker_client)) == tree
    assert fingerprint(source, "appdb") == before, "the source changed"

    streamed = _restore(holdfast, docker_cleanup, str(source.name), "--latest",
                        "--no-warm")
    assert (streamed["method"], streamed["warm"]) == ("stream", None), streamed
    assert fingerprint(docker_client.containers.get(streamed["container"]), "appdb") == before


def test_a_passing_verified_restore_refreshes_the_warm_copy_of_a_newer_snapshot(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory,
        docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
        warm_instances: list[str]) -> None:
    source = _source(postgres_container_factory, warm_instances)
    old = holdfast.json("backup", str(source.name))
    holdfast.json("warm", "refresh", str(source.name))
    psql(source, "INSERT INTO customers (name) VALUES ('after the first backup')", db="appdb")
    new = holdfast.json("backup", str(source.name))
    holdfast.json("instances")  # the catalog learns the holdfast.warm label

    assert holdfast.json("verify", new["id"], "--restore")["result"] == "passed"
    listed = holdfast.json("warm", "ls", str(source.name))
    assert [w["snapshot_id"] for w in listed] == [new["id"]], "the old warm copy stays"
    restored = _restore(holdfast, docker_cleanup, str(source.name), "--latest")
    assert restored["warm"] == listed[0]["name"]
    assert fingerprint(docker_client.containers.get(restored["container"]), "appdb") == \
        fingerprint(source, "appdb")

    older = _restore(holdfast, docker_cleanup, old["id"])
    assert older["method"] == "stream" and new["id"] in (older["note"] or ""), older
    removed = holdfast.json("warm", "rm", str(source.name))
    assert [w["name"] for w in removed] == [listed[0]["name"]]
    assert not docker_client.containers.list(
        all=True, filters={"label": f"{WARM_OF_LABEL}={source.name}"})


def test_a_redis_warm_copy_restores_its_keys_with_appendonly_and_password(
        holdfast: Holdfast, redis_source: Container, docker_client: docker.DockerClient,
        docker_cleanup: DockerCleanup, warm_instances: list[str]) -> None:
    warm_instances.append(str(redis_source.name))
    expected = digest(redis_source)
    holdfast.json("backup", str(redis_source.name))
    holdfast.json("warm", "refresh", str(redis_source.name))
    result = _restore(holdfast, docker_cleanup, str(redis_source.name), "--latest")
    assert result["method"] == "copy" and result["warm"], result
    copy = docker_client.containers.get(result["container"])
    assert digest(copy) == expected
    assert "NOAUTH" in copy.exec_run(["redis-cli", "DBSIZE"]).output.decode()


# --- reflinks: a private engine on XFS -------------------------------------------------


@pytest.fixture(scope="module")
def xfs_engine() -> Iterator[PrivateDockerd]:
    if os.geteuid() != 0 or not shutil.which("mkfs.xfs"):
        pytest.skip("needs root and mkfs.xfs (apt-get install xfsprogs) for a loop-mounted XFS")
    engine = PrivateDockerd(reflink_size="16G")
    try:
        engine.start()
        for image in (POSTGRES_IMAGE, HELPER_IMAGE):
            engine.load_image(image)
        yield engine
    finally:
        engine.close()


XFS_NETWORK = "hf-it-xfs"


@pytest.fixture
def xfs_client(xfs_engine: PrivateDockerd) -> Iterator[docker.DockerClient]:
    """A client of the private engine, with an internal network; everything on
    the engine is removed after the test (nothing else uses it)."""
    client = xfs_engine.client()
    network = client.networks.create(XFS_NETWORK, internal=True, labels={TEST_LABEL: "1"})
    try:
        yield client
    finally:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        for volume in client.volumes.list():
            volume.remove(force=True)
        network.remove()
        client.close()


def _xfs_postgres(client: docker.DockerClient) -> Container:
    name = f"hf-it-xfs-pg-{secrets.token_hex(3)}"
    client.volumes.create(f"{name}-data", labels={TEST_LABEL: "1"})
    container = client.containers.run(
        POSTGRES_IMAGE, name=name, detach=True,
        environment={"POSTGRES_USER": "app", "POSTGRES_PASSWORD": secrets.token_hex(8),
                     "POSTGRES_DB": "appdb"},
        labels={"holdfast.enable": "true", TEST_LABEL: "1", **WARM},
        network=XFS_NETWORK,
        volumes={f"{name}-data": {"bind": "/var/lib/postgresql/data", "mode": "rw"}})
    wait_for_postgres(container)
    return container


def test_copies_of_a_warm_copy_share_its_blocks_and_never_each_others_writes(
        holdfast: Holdfast, xfs_engine: PrivateDockerd, xfs_client: docker.DockerClient) -> None:
    env = {"DOCKER_HOST": xfs_engine.host}
    source = _xfs_postgres(xfs_client)
    psql(source, SEED_APPDB)
    psql(source, "CREATE TABLE bulk AS SELECT g, md5(g::text) AS h FROM "
         "generate_series(1, 300000) g", db="appdb")
    before = fingerprint(source, "appdb")
    holdfast.json("backup", str(source.name), env=env)
    warmed = holdfast.json("warm", "refresh", str(source.name), env=env)
    warm_volume = _warm_volume(warmed, xfs_client)
    tree = read_tree(xfs_client, warm_volume)

    made = []
    for _ in range(2):
        name = f"hf-it-xfs-copy-{secrets.token_hex(3)}"
        result = holdfast.json("restore", str(source.name), "--latest", "--name", name,
                               env=env)
        assert (result["method"], result["note"]) == ("reflink", None), result
        made.append(xfs_client.containers.get(name))
    first, second = made
    assert fingerprint(first, "appdb") == before
    psql(first, "DELETE FROM bulk WHERE g % 2 = 0; INSERT INTO customers (name) "
         "VALUES ('only in the first copy')", db="appdb")
    psql(first, "CHECKPOINT")
    assert fingerprint(second, "appdb") == before, "a write to one copy reached another"
    assert read_tree(xfs_client, warm_volume) == tree, "a write to a copy reached the warm copy"
    assert fingerprint(source, "appdb") == before, "the source changed"
    cloned = holdfast.json("volumes", "clone", warm_volume, f"{warm_volume}-clone", env=env)
    assert cloned["method"] == "reflink", cloned
