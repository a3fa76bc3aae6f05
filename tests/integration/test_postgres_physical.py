"""Physical Postgres snapshots (``holdfast.mode=physical``) through the CLI, on
real containers.

A round trip is judged on the data (row counts and checksums per table,
sequences, objects, roles and a role's password over TCP), a snapshot taken
under a pgbench write load on pgbench's invariant, and refusals on their one
line and on what they leave behind (no snapshot object, no container, no volume).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from backup.engines.pgphysical import PHYSICAL_FORMAT
from tests.harness.docker_fixtures import PostgresFactory, container_env, psql
from tests.integration.conftest import (
    READER_PASSWORD,
    SEED_APPDB,
    SEED_REPORTS,
    DockerCleanup,
    Holdfast,
    container_exists,
    fingerprint,
    last_line,
    volume_exists,
)
from tests.integration.test_cli_postgres import data_file, flip_near_the_middle, network_address
from tests.integration.test_postgres_parallel import INVARIANT

pytestmark = pytest.mark.docker

PHYSICAL = {"holdfast.mode": "physical"}
DATABASES = ("appdb", "reports")


def _seeded(factory: PostgresFactory, **kwargs: Any) -> Container:
    source = factory(labels=PHYSICAL, **kwargs)
    psql(source, SEED_APPDB)
    psql(source, "CREATE DATABASE reports")
    psql(source, SEED_REPORTS, db="reports")
    return source


def _restored(cleanup: DockerCleanup) -> str:
    return cleanup.restored(f"hf-it-phys-{secrets.token_hex(3)}")


def test_a_physical_snapshot_restores_the_whole_server_and_verifies(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory,
        docker_client: docker.DockerClient, docker_cleanup: DockerCleanup) -> None:
    source = _seeded(postgres_container_factory)
    before = {db: fingerprint(source, db) for db in DATABASES}

    snapshot = holdfast.json("backup", str(source.name))
    assert snapshot["status"] == "complete", snapshot
    manifest = json.loads((data_file(holdfast, snapshot).parent / "manifest.json").read_bytes())
    assert manifest["data_format"] == PHYSICAL_FORMAT
    assert sorted(manifest["databases"]) == ["appdb", "postgres", "reports"]

    new = _restored(docker_cleanup)
    result = holdfast.json("restore", snapshot["id"], "--name", new)
    assert result["container"] == new
    restored = docker_client.containers.get(new)
    assert restored.status == "running"
    for db in DATABASES:
        assert fingerprint(restored, db) == before[db], f"database {db} differs after restore"
    # The role and its password are the server's own files, checked over TCP.
    assert psql(restored, "SELECT current_user", user="reader", db="appdb",
                password=READER_PASSWORD, host=network_address(restored)) == "reader\n"
    # A writable server, not a standby replaying forever.
    assert psql(restored, "SELECT pg_is_in_recovery()") == "f\n"
    psql(restored, "CREATE TABLE written_after (n int); INSERT INTO written_after VALUES (1)")
    assert "written_after" not in psql(source, "SELECT string_agg(tablename, ',') FROM pg_tables")
    for db in DATABASES:
        assert fingerprint(source, db) == before[db], "the source changed"

    report = holdfast.json("verify", snapshot["id"], "--restore")
    assert report["result"] == "passed", report


def test_a_physical_snapshot_under_write_load_is_consistent(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory,
        docker_client: docker.DockerClient, docker_cleanup: DockerCleanup) -> None:
    source = postgres_container_factory(labels=PHYSICAL)
    env = container_env(source)
    pg = {"PGUSER": env["POSTGRES_USER"], "PGPASSWORD": env["POSTGRES_PASSWORD"]}
    init = source.exec_run(["pgbench", "-i", "-q", "-s", "4", env["POSTGRES_DB"]], environment=pg)
    assert init.exit_code == 0, init.output.decode()[-500:]
    source.exec_run(["pgbench", "-c", "3", "-T", "120", "-n", env["POSTGRES_DB"]],
                    environment=pg, detach=True)
    time.sleep(3)
    before = int(psql(source, "SELECT count(*) FROM pgbench_history"))
    snapshot = holdfast.json("backup", str(source.name))
    after = int(psql(source, "SELECT count(*) FROM pgbench_history"))
    source.exec_run(["pkill", "pgbench"])
    assert snapshot["status"] == "complete", snapshot
    assert after > before, "the load did not write during the backup"

    new = _restored(docker_cleanup)
    holdfast.json("restore", snapshot["id"], "--name", new)
    sums = psql(docker_client.containers.get(new), INVARIANT).split()
    assert sums[0] == sums[1] == sums[2] == sums[3], sums
    assert int(sums[4]) >= before


def _refused(holdfast: Holdfast, source: Container) -> str:
    proc = holdfast.run("backup", str(source.name))
    assert proc.returncode != 0, proc.stdout
    assert not list(holdfast.snapshots_dir.rglob("data.*")), "a refused backup stored data"
    return last_line(proc)


def test_a_server_with_another_tablespace_is_refused(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory) -> None:
    source = postgres_container_factory(labels=PHYSICAL)
    made = source.exec_run(["sh", "-c", "mkdir -p /tmp/ts && chown postgres /tmp/ts"])
    assert made.exit_code == 0
    psql(source, "CREATE TABLESPACE elsewhere LOCATION '/tmp/ts'")
    assert re.search(r"1 tablespace\(s\).*holdfast\.mode=logical", _refused(holdfast, source))


def test_a_server_without_wal_senders_is_refused(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory) -> None:
    source = postgres_container_factory(
        labels=PHYSICAL, command=["postgres", "-c", "wal_level=minimal",
                                  "-c", "max_wal_senders=0"])
    assert "max_wal_senders=0" in _refused(holdfast, source)


def test_a_server_refusing_replication_connections_is_refused(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory) -> None:
    source = postgres_container_factory(labels=PHYSICAL)
    cut = source.exec_run(["sh", "-c", 'sed -i "/replication/d" "$PGDATA/pg_hba.conf"'])
    assert cut.exit_code == 0
    psql(source, "SELECT pg_reload_conf()")
    assert re.search(r"pg_basebackup.*replication", _refused(holdfast, source))


def test_selected_databases_are_refused(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory) -> None:
    source = postgres_container_factory(labels={**PHYSICAL, "holdfast.databases": "appdb"})
    assert "copies the whole server" in _refused(holdfast, source)


def test_a_corrupt_physical_snapshot_is_refused_and_leaves_nothing(
        holdfast: Holdfast, postgres_container_factory: PostgresFactory,
        docker_client: docker.DockerClient, docker_cleanup: DockerCleanup) -> None:
    source = _seeded(postgres_container_factory)
    snapshot = holdfast.json("backup", str(source.name))
    flip_near_the_middle(data_file(holdfast, snapshot), zstd_notices=False)
    new = _restored(docker_cleanup)
    proc = holdfast.run("restore", snapshot["id"], "--name", new)
    assert proc.returncode != 0, proc.stdout
    assert re.search(r"corrupt|sha256", last_line(proc), re.IGNORECASE), proc.stderr
    assert not container_exists(docker_client, new)
    assert not volume_exists(docker_client, f"{new}-data")
