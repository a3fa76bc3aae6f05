"""A fleet of two real daemons, end to end: two private Docker engines (edge-a, edge-b), each
with one labelled Postgres container of its own, both daemons on one PostgreSQL catalog and one
moto S3 bucket as their shared target; each registers and beats as its host and discovers only
its own engine, a backup asked of edge-a for edge-b's instance is queued, claimed and run by
edge-b, its snapshot is restored onto edge-a's engine through edge-b's API with the same rows,
a SIGKILLed edge-b's running job is marked interrupted by edge-a once its lease runs out (the
restarted edge-b runs its schedule again), a schedule two daemons see runs once per slot, and a
catalog cut off for longer than a lease queues nothing twice and runs no slot twice."""

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
from tests.harness.tcp_proxy import TcpProxy

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


def test_verifications_asked_of_one_daemon_run_on_the_instances_host(
        fleet: Fleet, b_backup: tuple[dict[str, Any], list[tuple[str, Any]], dict[str, Any]],
) -> None:
    snapshot_id = b_backup[2]["snapshot_id"]
    networks_before = {n.id for n in fleet.a.client.networks.list()}
    events_since = int(time.time())
    jobs = {}
    for kind in ("verify", "verify-restore"):
        response = fleet.a.daemon.post(f"/v1/snapshots/{snapshot_id}/{kind}",
                                       params={"wait": "true", "timeout": "150"}, timeout=180)
        assert response.status_code == 200, response.text
        jobs[kind] = response.json()
    for kind, job in jobs.items():
        assert (job["kind"], job["host"], job["status"]) == (kind, "edge-b", "succeeded"), \
            (job, fleet.b.daemon.log_tail())
        assert job["result"]["snapshot_id"] == snapshot_id, job
    assert jobs["verify"]["result"]["whole"] is True, jobs["verify"]
    verdict = jobs["verify-restore"]["result"]
    assert (verdict["result"], verdict["job_id"]) == ("passed", jobs["verify-restore"]["id"]), \
        verdict
    # The rows it counted are edge-b's 500, and the verdict is on the snapshot for both.
    assert verdict["figures"].get("appdb.public.edge") == 500, verdict["figures"]
    for daemon in (fleet.a.daemon, fleet.b.daemon):
        shown = daemon.get(f"/v1/snapshots/{snapshot_id}").json()
        assert shown["verification"]["result"] == "passed", shown
    # edge-a's engine made no throwaway copy: no container was created there.
    created = [e for e in fleet.a.client.events(since=events_since, until=int(time.time()) + 1,
                                                 decode=True, filters={"event": "create"})]
    assert created == [], created
    assert {n.id for n in fleet.a.client.networks.list()} == networks_before


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
        # A schedule set through edge-b's API (kept in the catalog) before it dies.
        scheduled = b.daemon.client.put(f"/v1/instances/{b.instance}/policy",
                                        json={"schedule": f"@every {SLOT_SECONDS}s"})
        assert scheduled.status_code == 200, scheduled.text
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
    restarted_at = time.time()
    b.daemon.start()
    b.daemon.wait_ready()
    a.daemon.wait_for(lambda: _hosts(a.daemon) == {"edge-a": "alive", "edge-b": "alive"},
                      30, "edge-b alive again")
    assert _job(b.daemon, job["id"])["status"] == "interrupted"
    after = {j["id"]: j["status"] for j in a.daemon.get("/v1/jobs").json()
             if j["id"] in before}
    assert after == before, (before, after)
    _check_schedule_resumed(b, restarted_at)
    print(f"lost job interrupted {took:.1f}s after the kill")


def _check_schedule_resumed(b: Edge, restarted_at: float) -> None:
    """The restarted edge-b runs its instance's schedule again; then it is dropped."""
    try:
        def resumed() -> list[dict[str, Any]]:
            listed = b.daemon.get("/v1/snapshots", params={"instance": b.instance}).json()
            return [s for s in listed if s["status"] == "complete"
                    and _started_at(s) > restarted_at]
        taken = b.daemon.wait_for(resumed, 3 * SLOT_SECONDS + 60,
                                  "a scheduled snapshot after the restart")
        assert all(s["instance"] == b.instance for s in taken), taken
    finally:
        dropped = b.daemon.client.delete(f"/v1/instances/{b.instance}/policy")
        assert dropped.status_code == 200, dropped.text


def test_a_job_running_on_one_host_is_cancelled_through_another(fleet: Fleet) -> None:
    a, b = fleet.a, fleet.b
    b.daemon.wait_for(lambda: not [j for j in b.daemon.get("/v1/jobs", params={
        "instance": b.instance, "status": ["queued", "running"]}).json()],
        60, "edge-b's instance to have no job in flight")
    with throttled(b.container, 0.05):
        asked = a.daemon.post(f"/v1/instances/{b.instance}/backups", json={})
        assert asked.status_code == 202, asked.text
        job_id = asked.json()["id"]
        dump_in_flight(b.container)
        cancelled = a.daemon.client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code in (200, 202), cancelled.text
        ended = _wait_ended(a.daemon, job_id, timeout=60)
    assert (ended["status"], ended["host"]) == ("cancelled", "edge-b"), ended
    assert ended["error"] == "cancelled by request", ended
    # Its host stopped the dump and kept no snapshot of it as complete.
    wait_for(lambda: psql(b.container, "SELECT count(*) FROM pg_stat_activity WHERE "
                          "application_name = 'pg_dump'", db="postgres").strip() == "0",
             30, "the cancelled dump to end")
    snapshot = ended.get("snapshot_id")
    if snapshot is not None:
        assert b.daemon.get(f"/v1/snapshots/{snapshot}").json()["status"] != "complete"
    assert b.daemon.alive(), b.daemon.log_tail()


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


# --- a catalog outage ----------------------------------------------------------------------

OUTAGE = LEASE + HEARTBEAT
"""How long the catalog is cut off: longer than a lease, so every lease in the
fleet has run out by the time it is back."""


def _through(proxy: TcpProxy, url: str) -> str:
    """``url`` (postgresql://user@host:port/db) with the proxy's port instead."""
    head, _, tail = url.rpartition("@")
    database = tail.split("/", 1)[1]
    return f"{head}@127.0.0.1:{proxy.port}/{database}"


def _statuses(daemon: Daemon, *names: str) -> list[str | None]:
    """The status of each of ``names`` among the hosts ``daemon`` lists (the
    module's catalog holds the other tests' hosts too)."""
    hosts = _hosts(daemon)
    return [hosts.get(name) for name in names]


def _started_at(job: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(job["created_at"]).replace("Z", "+00:00")).timestamp()


def test_a_catalog_outage_queues_nothing_twice_and_runs_each_slot_once(
        engines: tuple[PrivateDockerd, PrivateDockerd], fleet_catalog: str,
        fleet_bucket: tuple[str, Any], moto_server: MotoEndpoint,
        tmp_path_factory: pytest.TempPathFactory) -> None:
    # edge-e and edge-f (a scope of their own) reach the catalog through a proxy
    # the test cuts for longer than a lease; edge-f's instance is scheduled.
    scope = f"out{secrets.token_hex(2)}"
    client = engines[1].client()
    name = f"hf-fleet-out-{secrets.token_hex(3)}"
    daemons: list[Daemon] = []
    with TcpProxy("127.0.0.1", int(fleet_catalog.rsplit(":", 1)[1].split("/")[0])) as proxy:
        try:
            _twin(client, name, scope)
            catalog = _through(proxy, fleet_catalog)
            for host, engine in (("edge-e", engines[0]), ("edge-f", engines[1])):
                env = {**_daemon_env(host, engine, catalog, fleet_bucket[0],
                                     moto_server.endpoint), "HOLDFAST_SCOPE": scope}
                daemons.append(Daemon(tmp_path_factory.mktemp(host), env).start())
            e, f = daemons
            outcome = _ride_out_an_outage(proxy, e, f, name)
        finally:
            for daemon in daemons:
                daemon.close()
            with contextlib.suppress(NotFound):
                client.containers.get(name).remove(force=True, v=True)
            client.close()
    _check_outage(outcome, name)


@dataclass
class _Outage:
    asked_before: str
    refused: list[int]
    reads: dict[str, tuple[int, float, str]]
    cut_at: float
    back_at: float
    jobs: list[dict[str, Any]]
    snapshots: list[dict[str, Any]]
    alive: tuple[bool, bool]


def _ride_out_an_outage(proxy: TcpProxy, e: Daemon, f: Daemon, name: str) -> _Outage:
    wait_for(lambda: _hosts(e).get("edge-f") == "alive" and e.instance(name), 60,
             "edge-e to see edge-f alive with its instance")
    wait_for(lambda: any(s["status"] == "complete" for s in
                         e.get("/v1/snapshots", params={"instance": name}).json()),
             90, "a first scheduled snapshot")
    asked = e.post(f"/v1/instances/{name}/backups",
                   json={"tags": {"asked": "before"}, "pin": True})
    assert asked.status_code == 202, asked.text
    proxy.cut()
    cut_at = time.time()
    refused, reads = [], {}
    deadline = time.monotonic() + OUTAGE
    while time.monotonic() < deadline:
        # Work asked while the catalog is away is refused, never queued for later.
        refused.append(e.post(f"/v1/instances/{name}/backups", json={"tags": {"asked": "during"}},
                              timeout=30).status_code)
        for path in ("/healthz", "/readyz", "/v1/volumes", "/v1/instances"):
            began = time.monotonic()
            answer = e.get(path, timeout=30)
            reads[path] = (answer.status_code, round(time.monotonic() - began, 1), answer.text)
        time.sleep(1)
    proxy.restore()
    back_at = time.time()
    for daemon in (e, f):
        wait_for(lambda: _statuses(daemon, "edge-e", "edge-f") == ["alive", "alive"],  # noqa: B023
                 60, "both hosts alive again")
    # Two more slots after the catalog came back: the schedule goes on.
    wait_for(lambda: sum(1 for s in e.get("/v1/snapshots", params={"instance": name}).json()
                         if s["status"] == "complete" and _started_at(s) > back_at) >= 2,
             90, "two scheduled snapshots after the outage")
    _wait_ended(e, asked.json()["id"])
    jobs = list(e.get("/v1/jobs", params={"instance": name, "limit": 200}).json())
    snapshots = list(e.get("/v1/snapshots", params={"instance": name}).json())
    return _Outage(asked.json()["id"], refused, reads, cut_at, back_at, jobs, snapshots,
                   (e.alive(), f.alive()))


def _check_outage(outcome: _Outage, name: str) -> None:
    assert outcome.alive == (True, True), outcome.alive
    assert outcome.refused and set(outcome.refused) <= {503}, outcome.refused
    # What needs only the engine is served; what needs the catalog says so at once.
    statuses = {path: status for path, (status, _, _) in outcome.reads.items()}
    assert statuses == {"/healthz": 200, "/readyz": 503, "/v1/volumes": 200,
                        "/v1/instances": 503}, outcome.reads
    assert all(took < 10 for _, took, _ in outcome.reads.values()), outcome.reads
    assert "catalog" in outcome.reads["/v1/instances"][2], outcome.reads
    by_id = {j["id"]: j for j in outcome.jobs}
    asked = by_id[outcome.asked_before]
    # The request queued just before the outage ran once, on its host.
    assert (asked["host"], asked["status"]) == ("edge-f", "succeeded"), asked
    asked_for = [s["tags"]["asked"] for s in outcome.snapshots if "asked" in s["tags"]]
    assert asked_for == ["before"], outcome.snapshots
    # Nothing was interrupted or failed for the outage, and no slot ran twice.
    assert all(j["status"] == "succeeded" for j in outcome.jobs), outcome.jobs
    complete = [s for s in outcome.snapshots if s["status"] == "complete"]
    slots = [_slot(s["created_at"]) for s in complete if not s["tags"]]
    assert len(set(slots)) == len(slots), f"a slot ran twice: {sorted(slots)}"
    print(f"outage {outcome.back_at - outcome.cut_at:.1f}s; {len(outcome.refused)} requests "
          f"refused with 503; reads {statuses}; {len(complete)} snapshots of {name}")
