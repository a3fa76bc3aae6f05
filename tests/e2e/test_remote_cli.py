"""The CLI as a client, end to end: ``holdfast serve`` (scoped to this test's own
Postgres container) on a free port, and ``holdfast`` commands from other
processes with ``HOLDFAST_SERVER``/``HOLDFAST_TOKEN``, another data directory and
no Docker engine of their own, so nothing local can be used.

Checked: ``instances``; ``backup NAME --tag k=v`` (progress on stderr while the
dump waits on a lock, exit 0, the snapshot's tags); ``snapshots --json``;
``restore ID --name X --ttl 1h --json`` (the container exists, the row and the
copy match); an unknown snapshot exits 3 in one line; a token without the
``restore`` scope exits 7 naming it; and with the daemon stopped, exit 5.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.conftest import Daemon
from tests.harness.daemon import REPO_ROOT, holdfast_env
from tests.harness.docker_fixtures import container_env, psql
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.docker

LOCK_SECONDS = 7
"""How long a session holds a lock pg_dump waits on: longer than the CLI's 5 s
between progress lines when stderr is not a terminal."""


def cli(daemon: Daemon, workdir: Path, *args: str, token: str) -> subprocess.CompletedProcess[str]:
    """``holdfast ARGS`` in a process of its own pointed at ``daemon``."""
    env = holdfast_env(workdir / "client-data", {
        "HOLDFAST_SERVER": daemon.url, "HOLDFAST_TOKEN": token})
    env["DOCKER_HOST"] = "unix:///nonexistent"  # the client has no engine
    return subprocess.run([sys.executable, "-m", "service.entrypoints.cli", *args], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    line = proc.stderr.splitlines()[-1]
    assert line.startswith("holdfast: ") and proc.stderr.count("holdfast: ") == 1, proc.stderr
    return line


def catalog_token(daemon: Daemon, name: str, scopes: list[str]) -> str:
    made = daemon.client.post("/v1/tokens", json={"name": name, "scopes": scopes})
    assert made.status_code == 201, made.text
    secret: str = made.json()["token"]
    return secret


def test_the_cli_runs_against_a_remote_daemon_with_its_output_progress_and_exit_codes(
        daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
        docker_client: docker.DockerClient, tmp_path: Path) -> None:
    scope = f"h7-remote-{os.urandom(3).hex()}"
    instance = f"remote-{os.urandom(3).hex()}"
    source = postgres_container_factory(labels={"holdfast.name": instance,
                                                "holdfast.scope": scope})
    psql(source, "CREATE TABLE items (id int PRIMARY KEY, label text);"
                 "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 5000) g")
    daemon = daemon_factory(HOLDFAST_SCOPE=scope).start()
    daemon.wait_ready()
    wait_for(lambda: instance in daemon.instance_names(), 60, f"discovery to list {instance}")
    operator = catalog_token(daemon, "operator", ["read", "backup", "restore"])
    reader = catalog_token(daemon, "reader", ["read", "backup"])
    copy_name = f"{instance}-copy"
    try:
        listed = cli(daemon, tmp_path, "instances", token=operator)
        assert listed.returncode == 0, listed.stderr
        assert instance in listed.stdout.splitlines()[1]

        # A lock keeps pg_dump waiting, so the CLI follows the job for a while.
        env = container_env(source)
        source.exec_run(["psql", "-X", "-h", "127.0.0.1", "-U", env["POSTGRES_USER"],
                         "-d", env["POSTGRES_DB"], "-c",
                         "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; "
                         f"SELECT pg_sleep({LOCK_SECONDS}); COMMIT;"],
                        environment={"PGPASSWORD": env["POSTGRES_PASSWORD"]}, detach=True)
        backed_up = cli(daemon, tmp_path, "backup", instance, "--tag", "release=v7",
                        token=operator)
        assert backed_up.returncode == 0, backed_up.stderr
        assert backed_up.stdout.startswith("snapshot ") and " complete: " in backed_up.stdout
        assert any(line.startswith(f"backup {instance}: ")
                   for line in backed_up.stderr.splitlines()), backed_up.stderr

        [snapshot] = json.loads(cli(daemon, tmp_path, "snapshots", "--json",
                                    token=operator).stdout)
        assert (snapshot["instance"], snapshot["status"], snapshot["tags"]) == \
            (instance, "complete", {"release": "v7"})

        restored = cli(daemon, tmp_path, "restore", snapshot["id"], "--name", copy_name,
                       "--ttl", "1h", "--json", token=operator)
        assert restored.returncode == 0, restored.stderr
        result = json.loads(restored.stdout)
        assert (result["snapshot_id"], result["container"]) == (snapshot["id"], copy_name)
        container = docker_client.containers.get(copy_name)
        assert container.id == result["container_id"] and container.status == "running"
        [copy] = daemon.get("/v1/copies").json()
        assert (copy["name"], copy["snapshot_id"], copy["expires_at"]) == \
            (copy_name, snapshot["id"], result["expires_at"])

        missing = one_line(cli(daemon, tmp_path, "restore", "20000101T000000Z-000000",
                               "--name", "never", token=operator), 3)
        assert "20000101T000000Z-000000" in missing

        refused = cli(daemon, tmp_path, "restore", snapshot["id"], "--name", "never",
                      token=reader)
        assert "'restore'" in one_line(refused, 7) and reader not in refused.stderr

        daemon.stop()
        down = cli(daemon, tmp_path, "snapshots", token=operator)
        assert daemon.url in one_line(down, 5) and operator not in down.stderr
        assert not (tmp_path / "client-data").exists()  # nothing local was opened
    finally:
        for name in (copy_name,):
            try:
                leftover = docker_client.containers.get(name)
            except docker.errors.NotFound:
                continue
            mounts = [m["Name"] for m in leftover.attrs.get("Mounts", []) if m.get("Name")]
            leftover.remove(force=True, v=True)
            for volume in mounts:
                with contextlib.suppress(docker.errors.NotFound):
                    docker_client.volumes.get(volume).remove(force=True)
