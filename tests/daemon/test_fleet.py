"""A fleet of two real daemons, end to end: two private Docker engines (edge-a, edge-b), each
with one labelled Postgres container of its own, both daemons on one PostgreSQL catalog and one
moto S3 bucket as their shared target; each registers and beats as its host and discovers only
its own engine, a backup asked of edge-a for edge-b's instance is queued, claimed and run by
edge-b, its snapshot is restored onto edge-a's engine through edge-b's API with the same rows,
and a SIGKILLed edge-b's running job is marked interrupted by edge-a once its lease runs out."""

from __future__ import annotations

import contextlib
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from tests.catalog.conftest import PostgresServer, pg_server  # noqa: F401
from tests.daemon.conftest import (
    BASE_IMAGE,
    dump_in_flight,
    fill_big_table,
    terminate_dumps,
    throttled,
)
from tests.harness.daemon import Daemon, wait_for
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    DEFAULT_POSTGRES_LABELS,
    POSTGRES_IMAGE,
    psql,
    wait_for_postgres,
)
from tests.harness.private_dockerd import PrivateDockerd
from tests.harness.s3_fixtures import (
    FAKE_ACCESS_KEY,
    FAKE_SECRET_KEY,
    REGION,
    MotoEndpoint,
    empty_bucket,
    s3_client,
)

pytestmark = [pytest.mark.docker, pytest.mark.postgres_catalog]

HEARTBEAT = 2.0
"""HOLDFAST_HEARTBEAT_INTERVAL: a lease (and being stale) is three of these."""
LEASE = 3 * HEARTBEAT
PREFIX = "fleet"
TARGET = "shared"
ENDED = ("succeeded", "failed", "cancelled", "interrupted")
BIG_ROWS = 150_000
"""Rows of edge-b's table ``big``: its dump, throttled, outlasts the kill."""
CHECKSUM = "SELECT count(*) || ':' || md5(string_agg(id || '=' || who, ',' ORDER BY id)) FROM edge"


@dataclass
class Edge:
    """One host of the fleet: its engine, its labelled container, its daemon."""

    name: str
    engine: PrivateDockerd
    client: docker.DockerClient
    container: Container
    password: str
    daemon: Daemon

    @property
    def instance(self) -> str:
        return str(self.container.name)


@dataclass
class Fleet:
    a: Edge
    b: Edge
    bucket: str
    s3: Any


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fleet_catalog(pg_server: PostgresServer) -> Iterator[str]:  # noqa: F811
    """One catalog database for the module's daemons (pg_database is per test)."""
    name = f"fleet_{uuid.uuid4().hex[:12]}"
    with pg_server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.url(name)
    finally:
        with pg_server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def fleet_bucket(moto_server: MotoEndpoint) -> Iterator[tuple[str, Any]]:
    bucket = f"holdfast-fleet-{secrets.token_hex(6)}"
    client = s3_client(moto_server.endpoint)
    client.create_bucket(Bucket=bucket)
    try:
        yield bucket, client
    finally:
        if not moto_server.running:
            moto_server.start()
        empty_bucket(client, bucket)


def _start_engine(engine: PrivateDockerd) -> None:
    engine.start()
    engine.load_image(POSTGRES_IMAGE)
    engine.load_image(BASE_IMAGE)


@pytest.fixture(scope="module")
def engines() -> Iterator[tuple[PrivateDockerd, PrivateDockerd]]:
    """Two private engines, started and loaded in parallel; closed (with all that
    was created on them) at the end of the module."""
    shared_bridge = Path("/sys/class/net/docker0")
    had_bridge = shared_bridge.exists()
    pair = (PrivateDockerd(), PrivateDockerd())
    try:
        with ThreadPoolExecutor(2) as pool:
            for started in [pool.submit(_start_engine, engine) for engine in pair]:
                started.result()
        yield pair
    finally:
        problems = []
        for engine in pair:
            try:
                engine.close()
            except AssertionError as exc:
                problems.append(str(exc))
        assert not problems, problems
        assert shared_bridge.exists() or not had_bridge, \
            "the shared engine's docker0 disappeared while the private engines ran"


def _source(client: docker.DockerClient, name: str, password: str, rows: int) -> Container:
    container = client.containers.run(
        POSTGRES_IMAGE, name=name, detach=True,
        environment={**DEFAULT_POSTGRES_ENV, "POSTGRES_PASSWORD": password},
        labels={**DEFAULT_POSTGRES_LABELS, "holdfast.target": TARGET})
    wait_for_postgres(container)
    psql(container, "CREATE TABLE edge (id int PRIMARY KEY, who text NOT NULL); "
                    f"INSERT INTO edge SELECT g, '{name}:' || md5(g::text) "
                    f"FROM generate_series(1, {rows}) g")
    container.reload()
    return container


def _daemon_env(host: str, engine: PrivateDockerd, catalog: str, bucket: str,
                endpoint: str) -> dict[str, str]:
    return {"HOLDFAST_HOST_NAME": host, "DOCKER_HOST": engine.host,
            "HOLDFAST_DATABASE_URL": catalog, "HOLDFAST_HEARTBEAT_INTERVAL": str(HEARTBEAT),
            "HOLDFAST_CLAIM_INTERVAL": "0.2",
            f"HOLDFAST_TARGET_{TARGET.upper()}": f"s3://{bucket}/{PREFIX}",
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION, "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_CONFIG_FILE": "/nonexistent/holdfast-test/config",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/holdfast-test/credentials",
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.fixture(scope="module")
def fleet(engines: tuple[PrivateDockerd, PrivateDockerd], fleet_catalog: str,
          fleet_bucket: tuple[str, Any], moto_server: MotoEndpoint,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """edge-a and edge-b, each a daemon on its own engine with one source container
    (different rows, different passwords); edge-a's environment carries edge-b's
    database password, as a restore of edge-b's snapshot onto edge-a needs."""
    bucket, s3 = fleet_bucket
    suffix = secrets.token_hex(3)
    clients = [engine.client() for engine in engines]
    daemons: list[Daemon] = []
    try:
        edges = []
        for (host, rows), engine, client in zip((("edge-a", 300), ("edge-b", 500)), engines,
                                                 clients, strict=True):
            password = f"{host}-pw-{secrets.token_hex(4)}"
            container = _source(client, f"hf-fleet-{host}-{suffix}", password, rows)
            daemon = Daemon(tmp_path_factory.mktemp(host),
                            _daemon_env(host, engine, fleet_catalog, bucket,
                                        moto_server.endpoint))
            daemons.append(daemon)
            edges.append(Edge(host, engine, client, container, password, daemon))
        a, b = edges
        a.daemon.env["POSTGRES_PASSWORD"] = b.password
        for edge in edges:
            edge.daemon.start()
            edge.daemon.wait_ready()
        yield Fleet(a, b, bucket, s3)
    finally:
        for daemon in daemons:
            daemon.close()
        for client in clients:
            client.close()


# --- helpers -------------------------------------------------------------------------------


def _hosts(daemon: Daemon) -> dict[str, str]:
    response = daemon.get("/v1/hosts")
    assert response.status_code == 200, response.text
    return {host["name"]: host["status"] for host in response.json()}


def _job(daemon: Daemon, job_id: str) -> dict[str, Any]:
    response = daemon.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _wait_ended(daemon: Daemon, job_id: str, timeout: float = 120) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job = _job(daemon, job_id)
        return job if job["status"] in ENDED else None
    return daemon.wait_for(ended, timeout, f"job {job_id} to end", interval=0.2)


def _checksum(container: Container) -> str:
    return psql(container, CHECKSUM).strip()


def _bucket_keys(fleet: Fleet) -> list[str]:
    pages = fleet.s3.get_paginator("list_objects_v2").paginate(Bucket=fleet.bucket,
                                                                Prefix=f"{PREFIX}/")
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def _events(daemon: Daemon, job_id: str, timeout: float = 120) -> list[tuple[str, Any]]:
    """The job's Server-Sent Events, as ``(event, data)``, up to its ``end``."""
    deadline = time.monotonic() + timeout
    events: list[tuple[str, Any]] = []
    kind = ""
    with daemon.client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"no end event within {timeout:.0f}s: {events}"
            field, _, value = line.partition(":")
            if field == "event":
                kind = value.strip()
            elif field == "data" and kind:
                events.append((kind, json.loads(value)))
                if kind == "end":
                    break
    return events


@pytest.fixture(scope="module")
def b_backup(fleet: Fleet) -> tuple[dict[str, Any], list[tuple[str, Any]], dict[str, Any]]:
    """A backup of edge-b's instance asked of edge-a's API: the job as queued, its
    event stream from edge-a, and the job as edge-a shows it once ended."""
    wait_for(lambda: _hosts(fleet.a.daemon).get("edge-b") == "alive", 30, "edge-b alive")
    response = fleet.a.daemon.post(f"/v1/instances/{fleet.b.instance}/backups", json={})
    assert response.status_code == 202, response.text
    queued = dict(response.json())
    events = _events(fleet.a.daemon, queued["id"])
    return queued, events, _wait_ended(fleet.a.daemon, queued["id"])


# --- the tests -----------------------------------------------------------------------------


def _instance_counts(daemon: Daemon) -> dict[str, int]:
    return {host["name"]: host["instances"] for host in daemon.get("/v1/hosts").json()}


def _check_discovery(edge: Edge, other: Edge) -> None:
    own = edge.daemon.wait_for(lambda: edge.daemon.instance(edge.instance), 30,
                               f"{edge.name} to discover {edge.instance}")
    assert own["host"] == edge.name, own
    assert own["status"] == "running", own
    listing = {view["name"]: view for view in edge.daemon.get("/v1/instances").json()}
    on_engine = {str(c.name) for c in edge.client.containers.list(all=True)}
    # Whatever the shared catalog shows of the other host's instance, it is never
    # shown as this host's: a daemon claims only what its own engine runs.
    mine = {name for name, view in listing.items() if view["host"] == edge.name}
    assert mine == on_engine == {edge.instance}, (mine, on_engine)
    if other.instance in listing:
        assert listing[other.instance]["host"] == other.name, listing[other.instance]


def test_each_daemon_registers_its_host_and_discovers_only_its_engine(fleet: Fleet) -> None:
    both_alive = {"edge-a": "alive", "edge-b": "alive"}
    for edge in (fleet.a, fleet.b):
        daemon = edge.daemon
        daemon.wait_for(lambda: _hosts(daemon) == both_alive,  # noqa: B023
                        30, f"{edge.name} to list both hosts alive")
    _check_discovery(fleet.a, fleet.b)
    _check_discovery(fleet.b, fleet.a)
    fleet.a.daemon.wait_for(lambda: _instance_counts(fleet.a.daemon) == {"edge-a": 1, "edge-b": 1},
                            3 * HEARTBEAT + 5, "each host to count its one instance")


def test_a_backup_asked_of_one_daemon_runs_on_the_instances_host(
        fleet: Fleet, b_backup: tuple[dict[str, Any], list[tuple[str, Any]], dict[str, Any]],
) -> None:
    queued, events, ended = b_backup
    assert queued["host"] == "edge-b", queued
    assert queued["status"] == "queued", queued
    assert ended["status"] == "succeeded", (ended, fleet.b.daemon.log_tail())
    assert ended["host"] == "edge-b", ended
    snapshot_id = ended["snapshot_id"]
    assert snapshot_id, ended
    # edge-a's event stream followed the job edge-b ran, to its end.
    assert events[-1][0] == "end", events
    assert events[-1][1]["status"] == "succeeded", events[-1]
    assert {data["id"] for _, data in events} == {queued["id"]}, events
    assert all(data["host"] == "edge-b" for _, data in events), events
    # The same job, as edge-b (which ran it) sees it.
    assert _job(fleet.b.daemon, queued["id"])["status"] == "succeeded"
    listed = fleet.a.daemon.get("/v1/snapshots", params={"instance": fleet.b.instance})
    assert listed.status_code == 200, listed.text
    snapshots = {s["id"]: s for s in listed.json()}
    assert snapshot_id in snapshots, snapshots
    assert snapshots[snapshot_id]["status"] == "complete", snapshots[snapshot_id]
    assert snapshots[snapshot_id]["target"] == TARGET, snapshots[snapshot_id]
    keys = _bucket_keys(fleet)
    assert any(snapshot_id in key for key in keys), keys
    # edge-a's engine never ran a dump of it: no container there but its own source.
    assert {str(c.name) for c in fleet.a.client.containers.list(all=True)} == {fleet.a.instance}


def test_a_request_its_host_cannot_start_fails_with_the_reason(fleet: Fleet) -> None:
    response = fleet.a.daemon.post(f"/v1/instances/{fleet.b.instance}/backups",
                                   params={"wait": "true", "timeout": "60"},
                                   json={"target": "no-such-target"}, timeout=90)
    assert response.status_code == 200, response.text
    job = response.json()
    assert (job["host"], job["status"]) == ("edge-b", "failed"), job
    assert "no-such-target" in job["error"], job
    assert fleet.b.daemon.alive(), fleet.b.daemon.log_tail()


def test_a_snapshot_restores_onto_another_hosts_engine(
        fleet: Fleet, b_backup: tuple[dict[str, Any], list[tuple[str, Any]], dict[str, Any]],
) -> None:
    snapshot_id = b_backup[2]["snapshot_id"]
    name = f"hf-fleet-copy-{secrets.token_hex(3)}"
    response = fleet.b.daemon.post(f"/v1/snapshots/{snapshot_id}/restore",
                                   params={"wait": "true", "timeout": "150"},
                                   json={"name": name, "host": "edge-a"}, timeout=180)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["host"] == "edge-a", job
    assert job["status"] == "succeeded", (job, fleet.a.daemon.log_tail())
    with pytest.raises(NotFound):
        fleet.b.client.containers.get(name)
    copy = fleet.a.client.containers.get(name)
    wait_for_postgres(copy, password=fleet.b.password)
    expected = _checksum(fleet.b.container)
    assert expected.startswith("500:"), expected
    assert psql(copy, CHECKSUM, password=fleet.b.password).strip() == expected
    assert _checksum(fleet.a.container) != expected


def test_a_killed_daemons_running_job_is_interrupted_by_the_other(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    fill_big_table(b.container, rows=BIG_ROWS)
    before = {j["id"]: j["status"] for j in a.daemon.get("/v1/jobs").json()
              if j.get("host") == "edge-a"}
    with throttled(b.container, 0.05):
        job = b.daemon.start_backup(b.instance)
        assert job["host"] == "edge-b", job
        dump_in_flight(b.container)
        assert _job(a.daemon, job["id"])["status"] == "running"
        b.daemon.kill()
    killed_at = time.monotonic()
    interrupted = a.daemon.wait_for(
        lambda: (j := _job(a.daemon, job["id"]))["status"] != "running" and j,
        LEASE + 2 * HEARTBEAT + 5, "edge-a to mark the lost job interrupted")
    took = time.monotonic() - killed_at
    assert interrupted["status"] == "interrupted", interrupted
    assert "stopped heartbeating" in interrupted["error"], interrupted
    assert _hosts(a.daemon)["edge-b"] == "stale"
    # While edge-b is stale, work asked for it is refused at once.
    refused = a.daemon.post(f"/v1/instances/{b.instance}/backups", json={})
    assert refused.status_code == 503, refused.text
    assert "host edge-b has sent no heartbeat" in refused.text, refused.text
    terminate_dumps(b.container)  # the orphan of the killed daemon's dump
    b.daemon.start()
    b.daemon.wait_ready()
    a.daemon.wait_for(lambda: _hosts(a.daemon) == {"edge-a": "alive", "edge-b": "alive"},
                      30, "edge-b alive again")
    assert _job(b.daemon, job["id"])["status"] == "interrupted"
    after = {j["id"]: j["status"] for j in a.daemon.get("/v1/jobs").json()
             if j["id"] in before}
    assert after == before, (before, after)
    print(f"lost job interrupted {took:.1f}s after the kill")


SLOT_SECONDS = 10
"""The twin instance's ``@every`` schedule: slots aligned to 2000-01-01T00:00Z."""


def _slot(created_at: str) -> int:
    """The slot a snapshot's run belongs to: it starts a moment after its fire time."""
    moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return int(moment.timestamp()) // SLOT_SECONDS


def _twin(client: docker.DockerClient, name: str, scope: str) -> Container:
    container = client.containers.run(
        POSTGRES_IMAGE, name=name, detach=True,
        environment={**DEFAULT_POSTGRES_ENV, "POSTGRES_PASSWORD": "twin-pw"},
        labels={**DEFAULT_POSTGRES_LABELS, "holdfast.target": TARGET, "holdfast.scope": scope,
                "holdfast.schedule": f"@every {SLOT_SECONDS}s"})
    wait_for_postgres(container)
    return container


def test_a_schedule_seen_by_two_daemons_runs_once_per_slot(
        engines: tuple[PrivateDockerd, PrivateDockerd], fleet_catalog: str,
        fleet_bucket: tuple[str, Any], moto_server: MotoEndpoint,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # One engine managed twice by mistake: edge-c and edge-d both see the twin
    # container (their own scope keeps edge-a's daemon out of it).
    engine, scope = engines[0], f"twin{secrets.token_hex(2)}"
    client = engine.client()
    name = f"hf-fleet-twin-{secrets.token_hex(3)}"
    twins: list[Daemon] = []
    try:
        _twin(client, name, scope)
        for host in ("edge-c", "edge-d"):
            env = {**_daemon_env(host, engine, fleet_catalog, fleet_bucket[0],
                                 moto_server.endpoint), "HOLDFAST_SCOPE": scope}
            twins.append(Daemon(tmp_path_factory.mktemp(host), env).start())
        c = twins[0]

        def listed() -> list[dict[str, Any]]:
            return list(c.get("/v1/snapshots", params={"instance": name}).json())

        wait_for(lambda: len([s for s in listed() if s["status"] == "complete"]) >= 3,
                 120, "three scheduled snapshots of the twin instance")
        snapshots = listed()
        lost = [m for daemon in twins for m in _messages(daemon) if "already taken" in m]
    finally:
        for daemon in twins:
            daemon.close()
        with contextlib.suppress(NotFound):
            client.containers.get(name).remove(force=True, v=True)
        client.close()
    slots = [_slot(s["created_at"]) for s in snapshots]
    assert len(set(slots)) == len(slots), f"a slot ran twice: {sorted(slots)}"
    # Both daemons fired the schedule; for each slot one of them lost the claim.
    assert len(lost) >= len(slots) - 1, lost


def _messages(daemon: Daemon) -> list[str]:
    return [str(record.get("message", "")) for record in daemon.log_records()]
