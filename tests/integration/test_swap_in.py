"""Swap-in rollback on a real engine, through the CLI: a PostgreSQL ``prod-db`` that
an application container reaches by name and by alias on a user network.

The test makes its own networks: an ``--internal`` one where the app reaches
the database by name and alias ``db``, and a bridge one without a route off the
machine that the database was created on, with a port published on 127.0.0.1
(Docker publishes none from an internal network). Then the database (with a
restart policy too) and an "app" container of the same image used as a psql
client: the assertions are what the app sees by the same names, and what a
client here sees through the same port. In order: a snapshot, then a change;
``restore --replace``: both read the snapshot's rows, and the old container is
kept stopped with its volume; ``restore --undo-replace``: both read the changed
rows again; a swap whose new container cannot start (the real adapter, wrapped
to refuse that one start as when its port is taken) puts the old container back
under its name, running, with its restart policy; then a replace whose snapshot
is corrupted in its target fails while loading the staging copy, and the old
container is the same one, still running, with its data, and nothing of the
attempt is left. Everything the test creates is removed at the end.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import docker
import psycopg
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from backup.errors import DockerRefused
from backup.pipeline import data_key
from service.bootstrap import bootstrap
from service.ports import DockerEngine
from service.settings import Settings
from service.usecases import restores
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    DEFAULT_POSTGRES_LABELS,
    PGDATA,
    TEST_LABEL,
    psql,
    wait_for_postgres,
)
from tests.integration.conftest import KNOWN_SECRETS, Holdfast

pytestmark = pytest.mark.docker

SEED = ("CREATE TABLE items (id int PRIMARY KEY); "
        "INSERT INTO items SELECT generate_series(1, 7);")
CHANGE = "INSERT INTO items SELECT generate_series(100, 104);"
COUNT = "SELECT count(*) || ':' || sum(id) FROM items"
AT_SNAPSHOT, CHANGED = "7:28", "12:538"
READY = {"HOLDFAST_READY_TIMEOUT": "90"}


@dataclass
class Stage:
    name: str
    password: str
    network: str
    """The ``--internal`` network the app reaches the database on."""
    lan: str
    """The network the database was created on, whose port binding is live."""
    host_port: int
    app: Container


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def stage(docker_client: docker.DockerClient, postgres_image: str) -> Iterator[Stage]:
    tag = secrets.token_hex(3)
    name, password = f"hf-swap-db-{tag}", f"hf-swap-pw-{secrets.token_hex(8)}"
    KNOWN_SECRETS.add(password)
    network = docker_client.networks.create(f"hf-swap-a-int-{tag}", driver="bridge",
                                            internal=True, labels={TEST_LABEL: "1"})
    # Docker publishes no port of a container created on an internal network
    # (moby/moby#36174); this one has no route off the machine either. Its name
    # sorts after the internal one's, as the engine lists a container's networks:
    # the new container must be created on the network the old one was.
    lan = docker_client.networks.create(
        f"hf-swap-z-lan-{tag}", driver="bridge", labels={TEST_LABEL: "1"},
        options={"com.docker.network.bridge.enable_ip_masquerade": "false"})
    try:
        docker_client.volumes.create(f"{name}-data", labels={TEST_LABEL: "1"})
        port = _free_port()
        db = docker_client.containers.create(
            postgres_image, name=name, environment={**DEFAULT_POSTGRES_ENV,
                                                    "POSTGRES_PASSWORD": password},
            labels=dict(DEFAULT_POSTGRES_LABELS), network=lan.name,
            volumes={f"{name}-data": {"bind": PGDATA, "mode": "rw"}},
            ports={"5432/tcp": ("127.0.0.1", port)},
            restart_policy={"Name": "unless-stopped"})
        network.connect(db, aliases=["db"])
        db.start()
        wait_for_postgres(db)
        psql(db, SEED)
        app = docker_client.containers.run(
            postgres_image, ["sleep", "600"], name=f"hf-swap-app-{tag}", detach=True,
            network=network.name, labels={TEST_LABEL: "1"},
            environment={"PGPASSWORD": password, "PGUSER": "app", "PGDATABASE": "appdb"})
        yield Stage(name=name, password=password, network=network.name, lan=lan.name,
                    host_port=port, app=app)
    finally:
        for container in docker_client.containers.list(all=True, filters={"name": "hf-swap-"}):
            if container.name.startswith((name, f"hf-swap-app-{tag}")):
                container.remove(force=True, v=True)
        for volume in docker_client.volumes.list(filters={"name": name}):
            if volume.name.startswith(name):
                volume.remove(force=True)
        for made in (network, lan):
            with contextlib.suppress(NotFound):
                made.remove()


def app_reads(stage: Stage, host: str) -> str:
    """What the app container reads from ``host`` (a container name or alias)."""
    code, output = stage.app.exec_run(["psql", "-h", host, "-X", "-At", "-c", COUNT])
    text = bytes(output).decode().strip()
    assert code == 0, text
    return text


def host_reads(stage: Stage) -> str:
    """What a client on this machine reads through the published port."""
    url = f"postgresql://app:{quote(stage.password, safe='')}@127.0.0.1:{stage.host_port}/appdb"
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute(COUNT).fetchone()
    assert row is not None
    return str(row[0])


def inspect(client: docker.DockerClient, name: str) -> dict[str, Any]:
    attrs: dict[str, Any] = client.api.inspect_container(name)
    return attrs


class RefusingStart:
    """The real adapter, refusing to start any container called ``name`` but
    ``keep`` (the new one of a swap), as an engine that cannot bind its port."""

    def __init__(self, docker: DockerEngine, name: str, keep: str) -> None:
        self._docker, self._name, self._keep = docker, name, keep

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._docker, attribute)

    def start(self, container_id: str) -> Any:
        seen = self._docker.inspect(container_id)
        if seen.name == self._name and seen.id != self._keep:
            raise DockerRefused("Bind for 127.0.0.1 failed: port is already allocated")
        return self._docker.start(container_id)


def failed_swap(stage: Stage, client: docker.DockerClient, holdfast: Holdfast,
                snapshot_id: str, old_id: str) -> None:
    services = bootstrap(Settings.load(holdfast.env(READY)))
    try:
        refusing = replace(services, docker=RefusingStart(services.docker, stage.name,
                                                          old_id))
        request = restores.prepare_restore(refusing, snapshot_id, None, replace=stage.name)
        with pytest.raises(DockerRefused, match="everything was put back"):
            restores.execute_restore(refusing, request)
    finally:
        services.close()
    wait_for_postgres(client.containers.get(stage.name), password=stage.password)
    back = inspect(client, stage.name)
    assert back["Id"] == old_id and back["State"]["Running"]
    assert back["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert app_reads(stage, stage.name) == app_reads(stage, "db") == CHANGED
    leftovers = [c.name for c in client.containers.list(all=True, filters={"name": stage.name})
                 if "-restoring-" in c.name or c.name.startswith(f"{stage.name}-replaced-")]
    assert leftovers == []


def test_replace_then_undo_then_a_failed_replace(
        stage: Stage, docker_client: docker.DockerClient, tmp_path: Any) -> None:
    holdfast, name = Holdfast(data_dir=tmp_path / "data"), stage.name
    old = inspect(docker_client, name)
    snapshot = holdfast.json("backup", name)
    psql(docker_client.containers.get(name), CHANGE)
    assert app_reads(stage, name) == app_reads(stage, "db") == host_reads(stage) == CHANGED

    # --- replace: the app, by the same names, reads the snapshot's rows ----------------
    result = holdfast.json("restore", str(snapshot["id"]), "--replace", name, env=READY)
    assert app_reads(stage, name) == app_reads(stage, "db") == AT_SNAPSHOT
    assert host_reads(stage) == AT_SNAPSHOT  # the same published port
    new = inspect(docker_client, name)
    assert result["container_id"] == new["Id"] != old["Id"]
    assert "db" in new["NetworkSettings"]["Networks"][stage.network]["Aliases"]
    assert set(new["NetworkSettings"]["Networks"]) == {stage.network, stage.lan}
    assert new["HostConfig"]["NetworkMode"] == stage.lan
    assert new["HostConfig"]["PortBindings"] == {
        "5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(stage.host_port)}]}
    assert new["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert new["Config"]["Labels"]["holdfast.enable"] == "true"
    assert new["Config"]["Labels"]["holdfast.restored-from"] == snapshot["id"]
    assert stage.password not in str(result)
    # the old one: the same container, aside, stopped, not restarting, with its volume
    aside = result["replaced"]["container"]
    assert aside.startswith(f"{name}-replaced-") and result["replaced"]["container_id"] == \
        old["Id"]
    kept = inspect(docker_client, aside)
    assert kept["Id"] == old["Id"] and not kept["State"]["Running"]
    assert kept["HostConfig"]["RestartPolicy"]["Name"] in ("no", "")
    assert [m["Name"] for m in kept["Mounts"]] == [f"{name}-data"]
    listed = [i for i in holdfast.json("instances") if name in str(i["container"])]
    assert [i["container"] for i in listed] == [name], listed
    assert not [c for c in docker_client.containers.list(all=True, filters={"name": name})
                if "-restoring-" in c.name]

    # --- undo: the changed rows are back, the restored one is kept aside --------------
    undone = holdfast.json("restore", "--undo-replace", name, env=READY)
    wait_for_postgres(docker_client.containers.get(name), password=stage.password)
    assert inspect(docker_client, name)["Id"] == old["Id"]
    assert app_reads(stage, name) == app_reads(stage, "db") == host_reads(stage) == CHANGED
    assert undone["set_aside"]["container_id"] == new["Id"]
    assert not inspect(docker_client, undone["set_aside"]["container"])["State"]["Running"]
    assert inspect(docker_client, name)["HostConfig"]["RestartPolicy"]["Name"] == \
        "unless-stopped"

    # --- a swap that fails (the new container's start) puts the old one back ---------
    failed_swap(stage, docker_client, holdfast, str(snapshot["id"]), old["Id"])

    # --- a replace that fails before the swap leaves the old one untouched ------------
    stored = holdfast.data_dir / "snapshots" / data_key(name, str(snapshot["id"]))
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    before = {c.name for c in docker_client.containers.list(all=True, filters={"name": name})}
    volumes = {v.name for v in docker_client.volumes.list(filters={"name": name})}
    proc = holdfast.run("restore", str(snapshot["id"]), "--replace", name, env=READY)
    # stderr: progress lines, then the one failure line
    assert proc.returncode != 0 and "is corrupt in target local" in \
        proc.stderr.strip().splitlines()[-1], proc.stderr
    now = inspect(docker_client, name)
    assert now["Id"] == old["Id"] and now["State"]["Running"]
    assert app_reads(stage, name) == app_reads(stage, "db") == CHANGED
    assert {c.name for c in docker_client.containers.list(
        all=True, filters={"name": name})} == before
    assert {v.name for v in docker_client.volumes.list(filters={"name": name})} == volumes
