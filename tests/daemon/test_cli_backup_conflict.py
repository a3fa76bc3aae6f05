"""A backup requested over the API while a CLI backup (another process) holds the
instance is refused at once, 409 naming the CLI's snapshot, and no job is made;
the CLI's backup completes undisturbed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from docker.models.containers import Container

from backup.types import SnapshotStatus
from service.adapters.catalog import open_catalog
from tests.daemon.conftest import CatalogReader, dump_in_flight, terminate_dumps, throttled
from tests.harness.daemon import REPO_ROOT, Daemon, holdfast_env, wait_for

pytestmark = pytest.mark.docker


def test_an_api_backup_while_a_cli_backup_runs_is_409_naming_its_snapshot(
        daemon: Daemon, big_source: Container) -> None:
    name = big_source.name
    terminate_dumps(big_source)
    catalog = CatalogReader(daemon.data_dir)
    daemon.start()
    daemon.wait_ready()
    cli = subprocess.Popen(
        [sys.executable, "-m", "service.entrypoints.cli", "backup", name, "--json"],
        env=holdfast_env(daemon.data_dir), cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        dump_in_flight(big_source)
        with throttled(big_source, 0.2):  # keeps the CLI's dump going while the API is asked
            [running] = wait_for(
                lambda: [s for s in catalog.snapshots(name) if s.status == SnapshotStatus.RUNNING],
                30, "the CLI's running snapshot")
            refused = daemon.post(f"/v1/instances/{name}/backups", json={})
            assert refused.status_code == 409, refused.text
            assert refused.json()["running"] == running.id
            assert refused.json()["kind"] == "AlreadyRunning"
        out, err = cli.communicate(timeout=300)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(timeout=30)
            terminate_dumps(big_source)
    assert cli.returncode == 0, err
    assert json.loads(out)["id"] == running.id
    assert catalog.snapshot(running.id).status == SnapshotStatus.COMPLETE
    reader = open_catalog(catalog.url)
    try:
        assert [job for job in reader.list_jobs() if job.kind == "backup"] == []
    finally:
        reader.close()
