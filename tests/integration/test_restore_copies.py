"""Restored copies on a real engine: network, alias, published port, labels, TTL, expiry.

One small seeded PostgreSQL source is backed up once per module (through the
CLI); each test restores it as a copy and judges the copy on what the engine
and the database say: ``docker inspect`` for networks, aliases, addresses,
port bindings and labels; a query through the result's URL (password filled
in by the test) for reachability, once from this process via the published
port on 127.0.0.1 and once from a second container via the alias; the catalog
for the copy's row. Expiry runs the reaper use case with a later "now" instead
of waiting out a TTL.

The module makes two networks of its own and removes them at the end: an
``--internal`` one and a bridge one without IP masquerading (no route off the
machine either). The second exists because Docker publishes no port of a
container created on an internal network (moby/moby#36174): a copy that is
published has to live on a network that is not internal, and a restore asked to
publish onto an internal one is refused before anything is created.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import secrets
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import docker
import psycopg
import pytest
from docker.errors import NotFound

from backup.errors import InvalidInput, NetworkNotFound, PortTaken
from backup.types import isoformat, parse_iso
from restore.copies import RestoreOptions
from service.bootstrap import Services, bootstrap
from service.entrypoints.error_table import exit_code_for, http_status_for
from service.records import JobRecord, JobStatus
from service.settings import Settings
from service.usecases.copies import reap_expired_copies
from service.usecases.jobs import JobRunner
from service.usecases.restores import RestoreRequest, execute_restore, prepare_restore
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    HELPER_IMAGE,
    TEST_LABEL,
    create_test_network,
    psql,
)
from tests.harness.waiting import wait_for
from tests.integration.conftest import (
    KNOWN_SECRETS,
    DockerCleanup,
    Holdfast,
    container_exists,
    describe,
    one_line,
    start_postgres,
    volume_exists,
)

pytestmark = pytest.mark.docker

ROWS = 7
SEED = (f"CREATE TABLE items (id int PRIMARY KEY, note text NOT NULL); "
        f"INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {ROWS}) g;")
COUNT = "SELECT count(*) || ':' || sum(id) FROM items"
EXPECTED = f"{ROWS}:{ROWS * (ROWS + 1) // 2}"
JOB_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class World:
    """What every test of the module shares: the backed-up source and the networks."""

    holdfast: Holdfast
    services: Services
    snapshot_id: str
    password: str
    lan: str
    """A bridge network without IP masquerading: ports published from it work."""
    lan_subnet: ipaddress.IPv4Network | ipaddress.IPv6Network
    internal: str
    """An ``--internal`` network: aliases work, published ports do not."""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
          test_network: str, postgres_image: str) -> Iterator[World]:
    tag = secrets.token_hex(3)
    name, password = f"hf-cp-src-{tag}", f"hf-cp-pw-{secrets.token_hex(8)}"
    KNOWN_SECRETS.add(password)
    volume = f"{name}-data"
    holdfast = Holdfast(data_dir=tmp_path_factory.mktemp("copies") / "data")
    networks: list[Any] = []
    services: Services | None = None
    try:
        networks.append(create_test_network(docker_client, f"hf-cp-lan-{tag}", internal=False))
        networks.append(create_test_network(docker_client, f"hf-cp-int-{tag}", internal=True))
        source = start_postgres(docker_client, postgres_image, test_network, name,
                                {**DEFAULT_POSTGRES_ENV, "POSTGRES_PASSWORD": password}, volume)
        psql(source, SEED)
        snapshot = holdfast.json("backup", name)
        services = bootstrap(Settings.load(holdfast.env({"HOLDFAST_READY_TIMEOUT": "90"})))
        lan = networks[0]
        lan.reload()
        subnet = ipaddress.ip_network(lan.attrs["IPAM"]["Config"][0]["Subnet"])
        yield World(holdfast=holdfast, services=services, snapshot_id=str(snapshot["id"]),
                    password=password, lan=lan.name, lan_subnet=subnet,
                    internal=networks[1].name)
    finally:
        if services is not None:
            services.close()
        with contextlib.suppress(NotFound):
            docker_client.containers.get(name).remove(force=True, v=True)
        with contextlib.suppress(NotFound):
            docker_client.volumes.get(volume).remove(force=True)
        for network in networks:
            with contextlib.suppress(NotFound):
                network.remove()


def copy_name(prefix: str = "hf-cp") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


def when(text: str | None) -> datetime:
    moment = parse_iso(text)
    assert moment is not None
    return moment


def filled(url: str, password: str) -> str:
    assert "{POSTGRES_PASSWORD}" in url, url
    return url.replace("{POSTGRES_PASSWORD}", quote(password, safe=""))


def query_published(url: str) -> str:
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute(COUNT).fetchone()
    assert row is not None
    return str(row[0])


def query_from_network(client: docker.DockerClient, image: str, network: str, url: str,
                       cleanup: DockerCleanup) -> str:
    """Run psql in a second container on ``network``; the URL (password and
    all) travels in the container's environment, not on its command line."""
    name = cleanup.restored(copy_name("hf-cp-client"))
    output = client.containers.run(
        image, ["sh", "-c", f'psql "$URL" -X -At -v ON_ERROR_STOP=1 -c "{COUNT}"'],
        name=name, network=network, environment={"URL": url}, labels={TEST_LABEL: "1"},
        remove=True)
    return bytes(output).decode().strip()


def run_restore_job(svc: Services, request: RestoreRequest) -> JobRecord:
    """The restore as the API runs it: a job, whose result is the restore's JSON."""
    runner = JobRunner(svc, workers=1)
    try:
        job = runner.submit_restore(request)

        def finished() -> JobRecord | None:
            current = svc.catalog.get_job(job.id)
            return current if current is not None and current.finished_at else None

        done = wait_for(finished, JOB_TIMEOUT_S, f"restore job {job.id} to finish")
    finally:
        runner.shutdown(grace=30)
    assert done.status == JobStatus.SUCCEEDED, done.error
    return done


def names_of(client: docker.DockerClient, prefix: str) -> tuple[set[str], set[str]]:
    """Containers and volumes whose names start with ``prefix``."""
    containers = {c.name for c in client.containers.list(all=True, filters={"name": prefix})
                  if c.name.startswith(prefix)}
    volumes = {v.name for v in client.volumes.list(filters={"name": prefix})
               if v.name.startswith(prefix)}
    return containers, volumes


# --- 1-3. a copy's life: restored where asked, reachable, reaped -----------------------


def test_copy_on_network_with_alias_port_labels_and_ttl_is_reachable_then_reaped(
    world: World, docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
    postgres_image: str,
) -> None:
    svc, name = world.services, docker_cleanup.restored(copy_name())
    labels = {"team": "qa", "purpose": "copies test"}
    # Look-alikes made before the restore, which expiry must leave alone.
    decoy_container = docker_cleanup.restored(f"{name}-2")
    docker_client.containers.create(HELPER_IMAGE, ["sleep", "600"], name=decoy_container,
                                    labels={TEST_LABEL: "1"})
    decoy_volume = f"{name}-data-old"
    docker_cleanup.volumes.append(decoy_volume)
    docker_client.volumes.create(decoy_volume, labels={TEST_LABEL: "1"})
    request = prepare_restore(svc, world.snapshot_id, name, options=RestoreOptions(
        network=world.lan, alias="db", publish=0, labels=labels, ttl="1h"))
    job = run_restore_job(svc, request)
    result = job.result or {}

    container = docker_client.containers.get(name)
    assert result["container_id"] == container.id
    endpoint = container.attrs["NetworkSettings"]["Networks"]
    assert set(endpoint) == {world.lan}, endpoint
    assert "db" in endpoint[world.lan]["Aliases"]
    address = endpoint[world.lan]["IPAddress"]
    assert ipaddress.ip_address(address) in world.lan_subnet
    assert result["networks"] == {world.lan: {"ip_address": address, "aliases": ["db"]}}
    bindings = container.attrs["NetworkSettings"]["Ports"]["5432/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"], bindings
    host_port = int(bindings[0]["HostPort"])
    assert result["ports"] == {"5432/tcp": [{"host_ip": "127.0.0.1", "host_port": host_port}]}
    assert {k: container.labels.get(k) for k in labels} == labels
    assert not any(key.startswith("holdfast.enable") for key in container.labels)

    live = svc.catalog.live_copies(name)
    assert [(c.container_id, c.volumes, c.job_id, c.snapshot_id) for c in live] == \
        [(container.id, (f"{name}-data",), job.id, world.snapshot_id)]
    copy = live[0]
    assert copy.expires_at is not None
    assert copy.expires_at - copy.created_at == timedelta(hours=1)
    assert result["expires_at"] == isoformat(copy.expires_at)
    assert world.password not in repr(result)

    # 2. the URLs, with the password filled in, reach the restored rows.
    assert result["url_template"] == "postgresql://app:{POSTGRES_PASSWORD}@HOST:PORT/appdb"
    assert result["urls"]["published"] == \
        f"postgresql://app:{{POSTGRES_PASSWORD}}@127.0.0.1:{host_port}/appdb"
    assert query_published(filled(result["urls"]["published"], world.password)) == EXPECTED
    by_alias = result["urls"]["networks"][world.lan]
    assert by_alias == "postgresql://app:{POSTGRES_PASSWORD}@db:5432/appdb"
    assert query_from_network(docker_client, postgres_image, world.lan,
                              filled(by_alias, world.password), docker_cleanup) == EXPECTED

    # 3. expiry: the copy's container and exactly its volumes go; look-alikes stay.
    early = reap_expired_copies(svc, now=copy.expires_at - timedelta(seconds=1))
    assert all(r.copy.name != name for r in early), early
    assert container_exists(docker_client, name)

    reaped = [r for r in reap_expired_copies(svc, now=copy.expires_at + timedelta(seconds=1))
              if r.copy.name == name]
    assert [(r.container_removed, r.volumes_removed, r.error) for r in reaped] == \
        [(True, (f"{name}-data",), None)]
    assert not container_exists(docker_client, name)
    assert not volume_exists(docker_client, f"{name}-data")
    assert container_exists(docker_client, decoy_container)
    assert volume_exists(docker_client, decoy_volume)
    assert svc.catalog.live_copies(name) == []
    after = svc.catalog.get_job(job.id)
    assert after is not None and after.result is not None
    expired = after.result["expired"]
    assert (expired["name"], expired["container_id"], expired["container_removed"],
            expired["volumes_removed"], expired["error"]) == \
        (name, container.id, True, [f"{name}-data"], None)
    assert expired["removed_at"] is not None
    assert after.result["container"] == name  # the restore's own result is kept


def test_reaper_refuses_a_copy_whose_name_another_container_took(
    world: World, docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
) -> None:
    svc, name = world.services, docker_cleanup.restored(copy_name())
    request = prepare_restore(svc, world.snapshot_id, name,
                              options=RestoreOptions(network=world.internal, ttl="1m"))
    result = execute_restore(svc, request)
    (copy,) = svc.catalog.live_copies(name)
    assert copy.container_id == result.container_id
    docker_client.containers.get(name).remove(force=True, v=False)
    impostor = docker_client.containers.create(HELPER_IMAGE, ["sleep", "600"], name=name,
                                               labels={TEST_LABEL: "1"})
    assert copy.expires_at is not None

    reaped = [r for r in reap_expired_copies(svc, now=copy.expires_at + timedelta(seconds=1))
              if r.copy.name == name]

    assert len(reaped) == 1, reaped
    assert (reaped[0].container_removed, reaped[0].volumes_removed) == (False, ())
    assert reaped[0].error is not None
    assert f"is now {impostor.id[:12]}" in reaped[0].error
    assert docker_client.containers.get(name).id == impostor.id
    assert volume_exists(docker_client, f"{name}-data")  # refused whole: the volume stays too
    assert svc.catalog.live_copies(name) == []  # refused for good: not retried
    assert copy_rows(world, name) == [(True, reaped[0].error)]


def copy_rows(world: World, name: str) -> list[tuple[bool, str | None]]:
    """(removed?, removal_error) of every row of copy ``name``, removed ones included
    (the port lists live ones only), read from the catalog's SQLite file."""
    with contextlib.closing(sqlite3.connect(world.holdfast.data_dir / "catalog.sqlite3")) as db:
        return [(removed is not None, error) for removed, error in db.execute(
            "SELECT removed_at, removal_error FROM copies WHERE name = ?", (name,))]


# --- 4. bad input on the real engine ------------------------------------------------------


def test_unknown_network_is_refused_before_anything_is_created(
    world: World, docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
) -> None:
    name = docker_cleanup.restored(copy_name())
    with pytest.raises(NetworkNotFound) as refused:
        prepare_restore(world.services, world.snapshot_id, name, options=RestoreOptions(
            network=f"hf-cp-none-{secrets.token_hex(3)}", alias="db"))
    assert (http_status_for(refused.value), exit_code_for(refused.value)) == (404, 3)
    assert names_of(docker_client, name) == (set(), set())
    assert world.services.catalog.live_copies(name) == []


def test_publish_onto_an_internal_network_is_refused_before_anything_is_created(
    world: World, docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
) -> None:
    # Docker would create and start the copy and silently publish nothing.
    name = docker_cleanup.restored(copy_name())
    with pytest.raises(InvalidInput) as refused:
        prepare_restore(world.services, world.snapshot_id, name, options=RestoreOptions(
            network=world.internal, publish=0))
    assert world.internal in str(refused.value) and "internal" in str(refused.value)
    assert (http_status_for(refused.value), exit_code_for(refused.value)) == (400, 2)
    assert names_of(docker_client, name) == (set(), set())


def test_fixed_port_taken_on_the_host_is_409_and_leaves_nothing(
    world: World, docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
) -> None:
    name = docker_cleanup.restored(copy_name())
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        request = prepare_restore(world.services, world.snapshot_id, name,
                                  options=RestoreOptions(network=world.lan, publish=port))
        with pytest.raises(PortTaken) as refused:
            execute_restore(world.services, request)
    assert (http_status_for(refused.value), exit_code_for(refused.value)) == (409, 4)
    assert str(port) in str(refused.value)
    assert "\n" not in str(refused.value)
    assert names_of(docker_client, name) == (set(), set())
    assert world.services.catalog.live_copies(name) == []


# --- 5. the CLI ------------------------------------------------------------------------


def test_cli_restore_copy_then_list_and_extend_it(
    world: World, docker_client: docker.DockerClient, docker_cleanup: DockerCleanup,
) -> None:
    holdfast, name = world.holdfast, docker_cleanup.restored(copy_name())
    result = holdfast.json("restore", world.snapshot_id, "--name", name, "--network", world.lan,
                           "--alias", "db", "--publish", "0", "--label", "team=qa",
                           "--ttl", "4h")
    container = docker_client.containers.get(name)
    assert set(result) >= {"snapshot_id", "container", "container_id", "volumes", "image",
                           "databases", "seconds", "networks", "ports", "url_template",
                           "urls", "expires_at"}, result
    assert (result["container"], result["container_id"], result["volumes"]) == \
        (name, container.id, [f"{name}-data"])
    assert result["networks"][world.lan]["aliases"] == ["db"]
    (binding,) = result["ports"]["5432/tcp"]
    assert binding["host_ip"] == "127.0.0.1"
    assert query_published(filled(result["urls"]["published"], world.password)) == EXPECTED
    assert container.labels["team"] == "qa"

    listed = [c for c in holdfast.json("copies", "ls") if c["name"] == name]
    assert len(listed) == 1, listed
    assert set(listed[0]) == {"name", "container_id", "snapshot_id", "instance", "job_id",
                              "volumes", "created_at", "expires_at", "seconds_left",
                              "removed_at", "removal_error"}
    assert (listed[0]["container_id"], listed[0]["volumes"], listed[0]["job_id"],
            listed[0]["removed_at"]) == (container.id, [f"{name}-data"], None, None)
    assert when(listed[0]["expires_at"]) - when(listed[0]["created_at"]) == timedelta(hours=4)
    assert 0 < listed[0]["seconds_left"] <= 4 * 3600

    extended = holdfast.json("copies", "extend", name, "2h")
    assert extended["name"] == name
    assert extended["seconds_left"] == 2 * 3600  # counted from the moment it was extended
    assert when(extended["expires_at"]) < when(listed[0]["expires_at"])
    (again,) = [c for c in holdfast.json("copies", "ls") if c["name"] == name]
    assert again["expires_at"] == extended["expires_at"]

    text = holdfast.run("copies", "ls")
    assert text.returncode == 0, describe(text)
    assert name in text.stdout and re.search(r"\b1h [1-5]?[0-9]m\b", text.stdout), text.stdout

    proc, line = holdfast.fail("copies", "extend", f"{name}-none", "2h", code=3)
    assert "copies ls" in line, describe(proc)
    proc, line = holdfast.fail("copies", "extend", name, "30s", code=2)
    assert "1m to 365d" in line, describe(proc)
    other = docker_cleanup.restored(copy_name())  # tracked in case a refusal is not
    proc, line = holdfast.fail("restore", world.snapshot_id, "--name", other, "--network",
                               f"hf-cp-none-{secrets.token_hex(3)}", code=3)
    assert "docker network create" in line, describe(proc)
    proc, line = holdfast.fail("restore", world.snapshot_id, "--name", other, "--network",
                               world.internal, "--publish", "0", code=2)
    assert "internal" in line, describe(proc)
    assert names_of(docker_client, other) == (set(), set())
    assert one_line(proc)
