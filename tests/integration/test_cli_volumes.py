"""``holdfast volumes``: ls, create, rm and clone against the real Docker
engine, with clones judged on the file trees (contents, owners, modes, links,
holes) and refusals judged on what is left untouched."""

from __future__ import annotations

import secrets

import docker
import pytest
from docker.models.containers import Container

from tests.harness.docker_fixtures import HELPER_IMAGE, TEST_LABEL
from tests.harness.volume_trees import read_tree, seed_tree
from tests.integration.conftest import Holdfast, volume_exists

pytestmark = pytest.mark.docker


def fresh(names: list[str], prefix: str = "hf-it-vol") -> str:
    name = f"{prefix}-{secrets.token_hex(3)}"
    names.append(name)
    return name


def holder(client: docker.DockerClient, volume: str, running: bool) -> Container:
    container = client.containers.create(
        HELPER_IMAGE, ["sleep", "infinity"], name=f"hf-it-holder-{secrets.token_hex(3)}",
        labels={TEST_LABEL: "1"}, network_mode="none",
        volumes={volume: {"bind": "/data", "mode": "rw"}})
    if running:
        container.start()
    return container


def test_create_list_and_remove(holdfast: Holdfast, docker_client: docker.DockerClient,
                                volume_names: list[str]) -> None:
    name = fresh(volume_names)
    created = holdfast.json("volumes", "create", name, "--label", "team=data",
                            "--label", TEST_LABEL + "=1")
    assert created["name"] == name and created["labels"]["team"] == "data"
    assert docker_client.volumes.get(name).attrs["Labels"]["team"] == "data"

    _, line = holdfast.fail("volumes", "create", name, code=4)
    assert name in line and "already exists" in line
    _, line = holdfast.fail("volumes", "create", "bad/name", code=2)
    _, line = holdfast.fail("volumes", "create", "x", "--label", "novalue", code=2)
    assert "KEY=VALUE" in line

    docker_client.containers.run(
        HELPER_IMAGE, ["sh", "-c", "head -c 5000000 /dev/urandom > /v/blob"], remove=True,
        network_mode="none", labels={TEST_LABEL: "1"}, volumes={name: {"bind": "/v", "mode": "rw"}})
    listed = {v["name"]: v for v in holdfast.json("volumes", "ls")}
    assert listed[name]["size_bytes"] >= 5_000_000
    assert listed[name]["users"] == [] and listed[name]["in_use"] is False
    # The table fits COLUMNS (80 off a terminal), cutting long cells; this one
    # is wide enough for every volume on a shared engine.
    table = holdfast.run("volumes", "ls", env={"COLUMNS": "1000"})
    assert table.returncode == 0 and name in table.stdout and "team=data" in table.stdout

    assert holdfast.json("volumes", "rm", name)["name"] == name
    assert not volume_exists(docker_client, name)
    _, line = holdfast.fail("volumes", "rm", name, code=3)
    assert "holdfast volumes ls" in line


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_rm_is_refused_while_a_container_uses_the_volume(
    holdfast: Holdfast, docker_client: docker.DockerClient, volume_names: list[str],
    running: bool,
) -> None:
    name = fresh(volume_names)
    docker_client.volumes.create(name=name, labels={TEST_LABEL: "1"})
    seed_tree(docker_client, name)
    before = read_tree(docker_client, name)
    user = holder(docker_client, name, running)
    try:
        listed = {v["name"]: v for v in holdfast.json("volumes", "ls", "--no-size")}
        assert listed[name]["users"] == [{"name": user.name, "id": user.id, "running": running}]
        assert listed[name]["size_bytes"] is None

        _, line = holdfast.fail("volumes", "rm", name, code=4)
        state = "running" if running else "stopped"
        assert f"{user.name} ({state})" in line and "remove those containers first" in line
        assert read_tree(docker_client, name) == before
    finally:
        user.remove(force=True)
    holdfast.json("volumes", "rm", name)
    assert not volume_exists(docker_client, name)


def test_clone_copies_the_whole_tree_and_keeps_owners_modes_links_and_holes(
    holdfast: Holdfast, docker_client: docker.DockerClient, volume_names: list[str],
) -> None:
    source = fresh(volume_names, "hf-it-src")
    docker_client.volumes.create(name=source, labels={TEST_LABEL: "1"})
    seed_tree(docker_client, source)
    original = read_tree(docker_client, source)
    assert original["entries"]["./uploads/2026/11/blob.bin"][1:3] == ("4242:77", "4755")
    # The source may be mounted by a running app while it is cloned.
    user = holder(docker_client, source, running=True)
    try:
        target = fresh(volume_names, "hf-it-copy")
        result = holdfast.json("volumes", "clone", source, target)
    finally:
        user.remove(force=True)
    assert result["source"] == source and result["target"] == target and result["created"]
    copied = read_tree(docker_client, target)
    assert copied["entries"] == original["entries"]
    # 64 MiB apparent, a few bytes of data: the hole must survive the copy.
    assert copied["allocated_kib"]["./sparse.img"] < 1024
    assert docker_client.volumes.get(target).attrs["Labels"] == {"holdfast.cloned-from": source}
    assert read_tree(docker_client, source) == original


def test_clone_never_writes_into_an_existing_volume_without_force(
    holdfast: Holdfast, docker_client: docker.DockerClient, volume_names: list[str],
) -> None:
    source = fresh(volume_names, "hf-it-src")
    target = fresh(volume_names, "hf-it-copy")
    for name in (source, target):
        docker_client.volumes.create(name=name, labels={TEST_LABEL: "1"})
    seed_tree(docker_client, source)
    docker_client.containers.run(
        HELPER_IMAGE, ["sh", "-c", "echo keep > /v/precious && mkdir /v/extra"], remove=True,
        network_mode="none", labels={TEST_LABEL: "1"},
        volumes={target: {"bind": "/v", "mode": "rw"}})
    untouched = read_tree(docker_client, target)

    _, line = holdfast.fail("volumes", "clone", source, target, code=4)
    assert "--force" in line
    assert read_tree(docker_client, target) == untouched

    user = holder(docker_client, target, running=False)
    try:
        _, line = holdfast.fail("volumes", "clone", source, target, "--force", code=4)
        assert user.name in line
        assert read_tree(docker_client, target) == untouched
    finally:
        user.remove(force=True)

    _, line = holdfast.fail("volumes", "clone", fresh(volume_names, "hf-it-gone"), target,
                            code=3)
    result = holdfast.json("volumes", "clone", source, target, "--force")
    assert result["created"] is False
    # --force makes the target an exact copy: its own files are gone.
    assert read_tree(docker_client, target)["entries"] == \
        read_tree(docker_client, source)["entries"]
