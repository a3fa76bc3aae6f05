"""Cancelling jobs of a running ``holdfast serve`` (``DELETE /v1/jobs/{id}``) on real
postgres containers: mid-dump, while pg_dump waits on a table another session holds
locked, and mid-restore, while pg_restore loads. Each leaves nothing behind: no object
in the target, no pg_dump in the container, no helper container, no restored container
or volume; the source's data is untouched and the next backup succeeds.

The daemon is scoped (``HOLDFAST_SCOPE``) to this module's containers, so it never
touches another test's or session's containers on the shared engine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
from collections.abc import Iterator
from typing import Any

import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from backup.types import SnapshotStatus
from service.adapters.docker.helpers import HELPER_LABEL
from tests.daemon.conftest import CatalogReader, assert_nothing_stored_for, throttled
from tests.harness.daemon import Daemon, wait_for
from tests.harness.docker_fixtures import DEFAULT_POSTGRES_ENV, PostgresFactory, psql

pytestmark = pytest.mark.docker

_WAITING_DUMPS = ("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' "
                  "AND wait_event_type = 'Lock'")
_DUMP_SESSIONS = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump'"
_CHECKSUM = "SELECT count(*) || ':' || md5(string_agg(payload, '' ORDER BY id)) FROM rows"


@pytest.fixture
def scope() -> str:
    return f"cancel-{secrets.token_hex(3)}"


@pytest.fixture
def scoped_daemon(daemon: Daemon, scope: str) -> Daemon:
    daemon.start(env={"HOLDFAST_SCOPE": scope})
    daemon.wait_ready()
    return daemon


def _source(factory: PostgresFactory, scope: str, prefix: str) -> tuple[str, Container]:
    name = f"{prefix}-{secrets.token_hex(3)}"
    return name, factory(labels={"holdfast.name": name, "holdfast.scope": scope})


@contextlib.contextmanager
def _table_locked(container: Container, table: str) -> Iterator[subprocess.Popen[bytes]]:
    """Hold ``LOCK TABLE table IN ACCESS EXCLUSIVE MODE`` in an open transaction of
    a psql session (``docker exec`` in the background) until the block ends."""
    env = {**os.environ, "PGPASSWORD": DEFAULT_POSTGRES_ENV["POSTGRES_PASSWORD"]}
    holder = subprocess.Popen(
        ["docker", "exec", "-i", "-e", "PGPASSWORD", container.name, "psql", "-X", "-q",
         "-h", "127.0.0.1", "-U", DEFAULT_POSTGRES_ENV["POSTGRES_USER"],
         "-d", DEFAULT_POSTGRES_ENV["POSTGRES_DB"], "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    assert holder.stdin is not None
    try:
        holder.stdin.write(f"BEGIN;\nLOCK TABLE {table} IN ACCESS EXCLUSIVE MODE;\n".encode())
        holder.stdin.flush()
        wait_for(lambda: psql(container, "SELECT count(*) FROM pg_locks l JOIN pg_class c ON "
                                         f"c.oid = l.relation WHERE c.relname = '{table}' AND "
                                         "l.mode = 'AccessExclusiveLock' AND l.granted"
                              ).strip() == "1", 30, f"the lock on {table}")
        yield holder
    finally:
        with contextlib.suppress(BrokenPipeError, OSError):
            holder.stdin.write(b"COMMIT;\n")
            holder.stdin.close()
        try:
            holder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(timeout=10)


def _commands(container: Container) -> list[str]:
    top: dict[str, Any] = container.top(ps_args="-eo pid,args")
    return [" ".join(row[1:]) for row in top["Processes"]]


def _cancel(daemon: Daemon, job_id: str) -> dict[str, Any]:
    """DELETE the job; wait (bounded) until it is recorded cancelled; the final job."""
    response = daemon.client.delete(f"/v1/jobs/{job_id}")
    assert response.status_code in (200, 202), response.text

    def ended() -> dict[str, Any] | None:
        job = dict(daemon.get(f"/v1/jobs/{job_id}").json())
        return job if job["status"] not in ("queued", "running") else None

    job = daemon.wait_for(ended, 30, f"job {job_id} to end")
    assert (job["status"], job["error"]) == ("cancelled", "cancelled by request"), job
    assert job["finished_at"] is not None
    return job


def _helpers_of(client: docker.DockerClient, daemon: Daemon) -> list[str]:
    return [c.name for c in client.containers.list(all=True, filters={"label": HELPER_LABEL})
            if f":{daemon.pid}:" in c.labels.get(HELPER_LABEL, "")]


def test_cancel_mid_dump_while_pg_dump_waits_on_a_lock_leaves_nothing_behind(
        scoped_daemon: Daemon, scope: str, postgres_container_factory: PostgresFactory,
        docker_client: docker.DockerClient) -> None:
    daemon = scoped_daemon
    name, source = _source(postgres_container_factory, scope, "cancel-dump")
    psql(source, "CREATE TABLE locked (id int); INSERT INTO locked VALUES (1)")
    daemon.wait_for(lambda: name in daemon.instance_names(), 30, f"{name} to be discovered")

    with _table_locked(source, "locked"):
        job = daemon.start_backup(name)
        wait_for(lambda: psql(source, _WAITING_DUMPS, db="postgres").strip() == "1", 30,
                 "pg_dump to wait on the lock")

        _cancel(daemon, job["id"])

        (snapshot,) = CatalogReader(daemon.data_dir).snapshots(name)
        assert (snapshot.status, snapshot.error) == (SnapshotStatus.FAILED, "cancelled")
        assert_nothing_stored_for(daemon.data_dir, snapshot)
        assert not [line for line in _commands(source) if "pg_dump" in line]
        assert _helpers_of(docker_client, daemon) == []

    # The killed pg_dump's server session was queued on the lock; once it is
    # released, nothing of the cancelled dump is left in the database either.
    wait_for(lambda: psql(source, _DUMP_SESSIONS, db="postgres").strip() == "0", 30,
             "the cancelled dump's session to end")
    again = daemon.wait_job(daemon.start_backup(name)["id"], timeout=60)
    assert again["status"] == "succeeded", again


def test_cancel_mid_restore_removes_the_container_and_its_volumes_never_the_source(
        scoped_daemon: Daemon, scope: str, postgres_container_factory: PostgresFactory,
        docker_client: docker.DockerClient) -> None:
    daemon = scoped_daemon
    name, source = _source(postgres_container_factory, scope, "cancel-restore")
    psql(source, "CREATE TABLE rows AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) "
                 "AS payload FROM generate_series(1, 300000) g")
    checksum = psql(source, _CHECKSUM)
    source_volumes = {m["Name"] for m in source.attrs["Mounts"] if m["Type"] == "volume"}
    daemon.wait_for(lambda: name in daemon.instance_names(), 30, f"{name} to be discovered")
    backup = daemon.wait_job(daemon.start_backup(name)["id"], timeout=60)
    assert backup["status"] == "succeeded", backup

    restored = f"{name}-copy"
    try:
        response = daemon.post(f"/v1/snapshots/{backup['result']['id']}/restore",
                               json={"name": restored})
        assert response.status_code == 202, response.text
        copy = daemon.wait_for(lambda: _container(docker_client, restored), 60,
                               f"{restored} to be created")
        daemon.wait_for(lambda: any("pg_restore" in line for line in _commands(copy)), 60,
                        "pg_restore to load")
        with throttled(copy, 0.05):  # keeps the load going while the cancel arrives
            _cancel(daemon, response.json()["id"])

        assert _container(docker_client, restored) is None
        assert [v.name for v in docker_client.volumes.list(filters={"name": restored})] == []
        assert daemon.get("/v1/copies").json() == []
        source.reload()
        assert source.status == "running"
        assert {m["Name"] for m in source.attrs["Mounts"] if m["Type"] == "volume"} \
            == source_volumes
        assert psql(source, _CHECKSUM) == checksum
        assert CatalogReader(daemon.data_dir).snapshot(backup["result"]["id"]).status \
            == SnapshotStatus.COMPLETE
    finally:  # a failed test must not leave the restored container behind
        leftover = _container(docker_client, restored)
        if leftover is not None:
            leftover.remove(force=True, v=True)
        for volume in docker_client.volumes.list(filters={"name": restored}):
            volume.remove(force=True)


def _container(client: docker.DockerClient, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except NotFound:
        return None
