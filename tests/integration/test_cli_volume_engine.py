"""The ``volume`` engine through the CLI: an app that keeps its state in two
named volumes and a bind mount, labelled ``holdfast.engine=volume`` and
``holdfast.stop-during-backup=true``, is backed up (stopped, archived, started
again) and restored by name into a fresh container on fresh volumes; the file
trees are compared entry by entry."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from tests.harness.docker_fixtures import HELPER_IMAGE, TEST_LABEL
from tests.harness.volume_trees import read_tree, seed_tree
from tests.integration.conftest import DockerCleanup, Holdfast

pytestmark = pytest.mark.docker
APP_IMAGE = "holdfast-test/app:1"


def started_at(container: Container) -> str:
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


@pytest.fixture
def app(docker_client: docker.DockerClient, test_network: str, tmp_path: Path,
        docker_cleanup: DockerCleanup) -> Iterator[Container]:
    name = f"hf-it-app-{secrets.token_hex(3)}"
    data, uploads = f"{name}-data", f"{name}-uploads"
    docker_cleanup.volumes.extend([data, uploads])
    for volume in (data, uploads):
        docker_client.volumes.create(name=volume, labels={TEST_LABEL: "1"})
    seed_tree(docker_client, uploads)
    # The app runs as uid 1000 and writes into the volume's root.
    docker_client.containers.run(HELPER_IMAGE, ["sh", "-c", "chown 1000:1000 /v && chmod 0770 /v"],
                                 remove=True, network_mode="none", labels={TEST_LABEL: "1"},
                                 volumes={uploads: {"bind": "/v", "mode": "rw"}})
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    (static / "css" / "site.css").write_text("body { color: teal }\n")
    (static / "index.html").write_text("<h1>hello</h1>\n")
    container = docker_client.containers.run(
        APP_IMAGE, name=name, detach=True, network=test_network,
        labels={TEST_LABEL: "1", "holdfast.enable": "true", "holdfast.engine": "volume",
                "holdfast.stop-during-backup": "true"},
        volumes={data: {"bind": "/var/lib/app", "mode": "rw"},
                 uploads: {"bind": "/srv/uploads", "mode": "rw"},
                 str(static): {"bind": "/srv/static", "mode": "ro"}})
    docker_cleanup.containers.append(name)
    deadline = time.monotonic() + 30
    while b"tick 2" not in container.exec_run(["cat", "/var/lib/app/app.log"]).output:
        assert time.monotonic() < deadline, container.logs(tail=20)
        time.sleep(0.3)
    yield container
    with contextlib.suppress(docker.errors.NotFound):
        container.remove(force=True)


def test_volume_snapshot_round_trip_through_the_cli(
    holdfast: Holdfast, app: Container, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    name = app.name
    assert {i["name"]: i["engine"] for i in holdfast.json("instances")}[name] == "volume"
    before = started_at(app)
    snapshot = holdfast.json("backup", name)
    assert snapshot["status"] == "complete" and snapshot["engine"] == "volume"
    # Stopped for the archive and started again after it.
    app.reload()
    assert app.status == "running" and started_at(app) != before

    app.stop(timeout=5)  # freeze the source so its trees can be compared
    source = {path: read_tree(docker_client, volume) for path, volume in (
        ("/var/lib/app", f"{name}-data"), ("/srv/uploads", f"{name}-uploads"))}

    new = f"{name}-copy"
    docker_cleanup.containers.append(new)
    expected_volumes = [f"{new}-srv-static", f"{new}-srv-uploads", f"{new}-var-lib-app"]
    docker_cleanup.volumes.extend(expected_volumes)
    result = holdfast.json("restore", snapshot["id"], "--name", new)
    assert sorted(result["volumes"]) == expected_volumes
    restored = docker_client.containers.get(new)
    assert restored.status == "running"
    restored.stop(timeout=5)

    uploads = read_tree(docker_client, f"{new}-srv-uploads")
    assert uploads["entries"] == source["/srv/uploads"]["entries"]
    assert uploads["allocated_kib"]["./sparse.img"] < 1024
    data = read_tree(docker_client, f"{new}-var-lib-app")["entries"]
    wanted = source["/var/lib/app"]["entries"]
    # The restored app ran and appended to its log; everything else is equal.
    assert {k: v for k, v in data.items() if k != "./app.log"} == \
        {k: v for k, v in wanted.items() if k != "./app.log"}
    assert "./from-image.txt" in data and "./config.ini" in data
    log_restored = docker_client.containers.run(
        HELPER_IMAGE, ["head", "-n", "2", "/v/app.log"], remove=True, network_mode="none",
        labels={TEST_LABEL: "1"}, volumes={f"{new}-var-lib-app": {"bind": "/v", "mode": "ro"}})
    log_source = docker_client.containers.run(
        HELPER_IMAGE, ["head", "-n", "2", "/v/app.log"], remove=True, network_mode="none",
        labels={TEST_LABEL: "1"}, volumes={f"{name}-data": {"bind": "/v", "mode": "ro"}})
    assert log_restored == log_source and log_source.startswith(b"tick 1 ")
    static = read_tree(docker_client, f"{new}-srv-static")["entries"]
    assert static["./index.html"][0] == "f" and "./css/site.css" in static
