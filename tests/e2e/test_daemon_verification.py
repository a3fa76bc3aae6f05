"""Verified restores in the running daemon, end to end: the real ``holdfast serve``
process, real Postgres sources and the throwaway copies it makes on the engine.

Checked: ``holdfast.verify=after-backup`` queues a ``verify-restore`` job after an
API backup, which passes with the table's row count among its figures, records
the verdict on the snapshot and in ``/metrics``; an API policy ``verify: @every
5s`` runs scheduled verifications that never overlap; a flipped byte in a stored
object fails saying corrupt; a verification SIGKILLed with its copy on the engine
leaves it there, and the next start removes it and records the job failed; a
cancelled one leaves nothing and records nothing; ``holdfast verify --restore
--server`` answers the verdict the API records. After each, no container, volume
or network of the snapshot's verifications is left on the engine.

The module shares one daemon, scoped (``holdfast.scope``) to two Postgres sources
of its own on the internal test network, so it never adopts, verifies or cleans
up another session's containers on the shared engine: ``after`` (labelled
``holdfast.verify=after-backup``, a small table) and ``plain`` (no verify label, a
table large enough that a copy's load can be caught while it runs).
"""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from tests.e2e.conftest import Daemon, remove_prefixed
from tests.e2e.test_daemon_scheduling import metric
from tests.e2e.test_remote_cli import cli
from tests.harness.api import TEST_TOKEN
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    PGDATA,
    POSTGRES_IMAGE,
    TEST_LABEL,
    psql,
    require_image,
    wait_for_postgres,
)
from tests.integration.test_verified_restores import made_for, remove_made_for

pytestmark = pytest.mark.docker

ORDERS = 1234
"""Rows of ``orders`` in both sources."""
BULK = 300_000
"""Rows of ``bulk`` in ``plain``: seconds of load in a copy, to catch it running."""
VERIFIED = "holdfast_verifications_total"
LAST_VERIFIED = "holdfast_last_verified_timestamp_seconds"


@dataclass
class World:
    """The module's daemon, its two sources and every snapshot verified here."""

    client: docker.DockerClient
    daemon: Daemon
    prefix: str
    after: str
    """The instance labelled ``holdfast.verify=after-backup``."""
    plain: str
    """The instance with no verify label and a large table."""
    good: str = ""
    """A complete snapshot of ``plain`` no test damages (SIGKILL, cancel, the CLI)."""
    snapshots: list[str] = field(default_factory=list)

    def backup(self, instance: str) -> dict[str, Any]:
        """A backup through the API, waited for: the job."""
        job = self.daemon.wait_job(self.daemon.start_backup(instance)["id"])
        assert job["status"] == "succeeded", job
        self.snapshots.append(job["result"]["id"])
        return job

    def snapshot(self, snapshot_id: str) -> dict[str, Any]:
        answer = self.daemon.get(f"/v1/snapshots/{snapshot_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def complete(self, instance: str) -> list[str]:
        listed = self.daemon.get("/v1/snapshots", params={"instance": instance}).json()
        return [s["id"] for s in listed if s["status"] == "complete"]

    def verify_restore(self, snapshot_id: str) -> dict[str, Any]:
        """``POST /v1/snapshots/{id}/verify-restore`` without waiting: the job (202)."""
        answer = self.daemon.post(f"/v1/snapshots/{snapshot_id}/verify-restore")
        assert answer.status_code == 202, answer.text
        return dict(answer.json())

    def verify_jobs(self, instance: str) -> list[dict[str, Any]]:
        answer = self.daemon.get("/v1/jobs", params={"kind": "verify-restore",
                                                     "instance": instance})
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    def copy_on_engine(self, snapshot_id: str) -> list[str]:
        """What a verification of ``snapshot_id`` has on the engine, once its
        container exists (else an empty list, to poll on)."""
        found = made_for(self.client, snapshot_id)
        return found if any(entry.startswith("container ") for entry in found) else []

    def counted(self, instance: str, result: str) -> float:
        return metric(self.daemon, VERIFIED, instance=instance, result=result) or 0.0


def _start_source(client: docker.DockerClient, network: str, name: str,
                  labels: dict[str, str]) -> Container:
    client.volumes.create(f"{name}-data", labels={TEST_LABEL: "1"})
    return client.containers.run(
        require_image(client, POSTGRES_IMAGE), name=name, detach=True, network=network,
        environment=dict(DEFAULT_POSTGRES_ENV), labels=labels,
        volumes={f"{name}-data": {"bind": PGDATA, "mode": "rw"}})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
          test_network: str) -> Iterator[World]:
    prefix = f"hf-dv-{secrets.token_hex(3)}"
    scope = f"{prefix}-scope"
    labels = {"holdfast.enable": "true", "holdfast.scope": scope, TEST_LABEL: "1"}
    daemon = Daemon(tmp_path_factory.mktemp("daemon-verification"),
                    {"HOLDFAST_SCOPE": scope, "HOLDFAST_READY_TIMEOUT": "120"})
    world = World(client=docker_client, daemon=daemon, prefix=prefix,
                  after=f"{prefix}-after", plain=f"{prefix}-plain")
    try:
        after = _start_source(docker_client, test_network, world.after,
                              {**labels, "holdfast.verify": "after-backup"})
        plain = _start_source(docker_client, test_network, world.plain, labels)
        orders = ("CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS ref "
                  f"FROM generate_series(1, {ORDERS}) g;")
        for source, extra in ((after, ""), (plain, (
                "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v "
                f"FROM generate_series(1, {BULK}) g"))):
            wait_for_postgres(source)
            psql(source, orders + extra)
        daemon.start()
        daemon.wait_ready(timeout=60)
        daemon.wait_for(lambda: {world.after, world.plain} <= daemon.instance_names(), 30,
                        "the daemon discovering both sources")
        world.good = world.backup(world.plain)["result"]["id"]
        yield world
    finally:
        daemon.close()
        for snapshot_id in world.snapshots:
            remove_made_for(docker_client, snapshot_id)
        remove_prefixed(docker_client, prefix)


@pytest.fixture
def daemon(world: World) -> Daemon:
    """The module's daemon, running (a test that failed mid-restart left it down)."""
    if not world.daemon.alive():
        world.daemon.start()
        world.daemon.wait_ready(timeout=60)
    return world.daemon


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_after_backup_a_verify_restore_job_passes_and_is_recorded(
        world: World, daemon: Daemon) -> None:
    backup = world.backup(world.after)
    snapshot_id = backup["result"]["id"]
    verifying = backup["result"]["verification_job"]
    assert verifying, backup["result"]

    job = daemon.wait_job(verifying)
    assert (job["kind"], job["status"], job["snapshot_id"], job["instance"]) == \
        ("verify-restore", "succeeded", snapshot_id, world.after), job
    verdict = job["result"]
    assert verdict["result"] == "passed" and verdict["reason"] is None, verdict
    assert verdict["job_id"] == verifying and verdict["differences"] == []

    snapshot = world.snapshot(snapshot_id)
    verification = snapshot["verification"]
    assert verification["result"] == "passed" and verification["exact"] is True
    assert verification["figures"]["appdb.public.orders"] == ORDERS
    assert verification["figures"]["role:app"] == 1
    assert {"snapshot_id": snapshot_id, "instance": world.after,
            "verified_at": snapshot["verified_at"], **verification} == verdict

    assert world.counted(world.after, "passed") == 1
    assert world.counted(world.after, "failed") == 0
    last = metric(daemon, LAST_VERIFIED, instance=world.after)
    assert last is not None and abs(last - _stamp(snapshot["verified_at"])) < 1
    assert made_for(world.client, snapshot_id) == []
    assert DEFAULT_POSTGRES_ENV["POSTGRES_PASSWORD"] not in json.dumps(job)


def _overlaps(jobs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Pairs of ended jobs whose started..finished spans intersect."""
    spans = [(_stamp(j["started_at"]), _stamp(j["finished_at"]), j["id"]) for j in jobs]
    return [(a[2], b[2]) for a, b in itertools.combinations(spans, 2)
            if a[0] < b[1] and b[0] < a[1]]


def test_a_scheduled_verification_runs_and_never_overlaps_another(
        world: World, daemon: Daemon) -> None:
    if not world.complete(world.after):
        world.backup(world.after)  # run alone: the one backup a schedule verifies
    newest = world.complete(world.after)[0]
    daemon.wait_for(lambda: not any(j["status"] in ("queued", "running")
                                    for j in world.verify_jobs(world.after)),
                    120, "the after-backup verification to end")
    before = {job["id"] for job in world.verify_jobs(world.after)}

    def scheduled_jobs() -> list[dict[str, Any]]:
        return [j for j in world.verify_jobs(world.after) if j["id"] not in before]

    policy = daemon.client.put(f"/v1/instances/{world.after}/policy",
                               json={"verify": "@every 5s"})
    assert policy.status_code == 200, policy.text
    assert policy.json()["verify"] == "@every 5s"
    try:
        def one_loading() -> dict[str, Any] | None:
            if not world.copy_on_engine(newest):
                return None
            return next((j for j in scheduled_jobs() if j["status"] == "running"), None)
        running = daemon.wait_for(one_loading, 30, "a scheduled verification with its copy "
                                  "on the engine", interval=0.1)
        # While it runs, the instance takes no second one: not from the API either.
        refused = daemon.post(f"/v1/snapshots/{newest}/verify-restore")
        assert refused.status_code == 409, refused.text
        assert refused.json()["running"] == running["id"]

        def two_succeeded() -> list[dict[str, Any]] | None:
            jobs = scheduled_jobs()
            assert not [j for j in jobs if j["status"] in ("failed", "cancelled")], jobs
            return jobs if sum(j["status"] == "succeeded" for j in jobs) >= 2 else None
        daemon.wait_for(two_succeeded, 60, "two scheduled verifications to succeed")
    finally:
        cleared = daemon.client.delete(f"/v1/instances/{world.after}/policy")
        assert cleared.status_code == 200, cleared.text
    ended = daemon.wait_for(
        lambda: (jobs := scheduled_jobs()) and all(
            j["status"] in ("succeeded", "failed", "cancelled") for j in jobs) and jobs,
        120, "the last scheduled verification to end")
    assert {(j["status"], j["snapshot_id"], j["result"]["result"]) for j in ended} == \
        {("succeeded", newest, "passed")}, ended
    queued_by_schedule = {r.get("job") for r in daemon.log_records()
                          if str(r.get("message", "")).endswith(" (schedule)")}
    assert {j["id"] for j in ended} <= queued_by_schedule
    assert _overlaps(world.verify_jobs(world.after)) == []
    assert made_for(world.client, newest) == []


def test_a_corrupted_object_fails_saying_corrupt_and_leaves_nothing(
        world: World, daemon: Daemon) -> None:
    snapshot = world.backup(world.plain)["result"]
    path = daemon.data_dir / "snapshots" / snapshot["data_key"]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    failed_before = world.counted(world.plain, "failed")

    answer = daemon.post(f"/v1/snapshots/{snapshot['id']}/verify-restore",
                         params={"wait": "true", "timeout": 150}, timeout=180)
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["status"] == "succeeded", job
    verdict = job["result"]
    assert verdict["result"] == "failed", verdict
    assert "is corrupt" in verdict["reason"] and "sha256" in verdict["reason"], verdict
    assert world.snapshot(snapshot["id"])["verification"]["result"] == "failed"
    assert world.counted(world.plain, "failed") == failed_before + 1
    assert made_for(world.client, snapshot["id"]) == []


def test_a_verification_sigkilled_mid_restore_is_cleaned_up_at_the_next_start(
        world: World, daemon: Daemon) -> None:
    job = world.verify_restore(world.good)
    killed = daemon.wait_for(lambda: world.copy_on_engine(world.good), 120,
                             "the verification's container on the engine", interval=0.1)
    daemon.kill()
    left = made_for(world.client, world.good)
    assert sorted({entry.split(" ")[0] for entry in left}) == [
        "container", "network", "volume"], left
    assert set(killed) <= set(left)

    daemon.start()
    daemon.wait_ready(timeout=60)
    assert made_for(world.client, world.good) == []
    removed = {str(r.get("message")) for r in daemon.log_records(run=len(daemon.logs))}
    for entry in left:
        name = entry.split(" ", 1)[1]
        assert f"removed {name}, left by a verified restore whose process is gone" in removed
    after = daemon.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "failed" and "interrupted" in after["error"], after
    assert world.snapshot(world.good)["verification"] is None


def test_a_cancelled_verification_leaves_nothing_and_records_nothing(
        world: World, daemon: Daemon) -> None:
    errors_before = world.counted(world.plain, "error")
    job = world.verify_restore(world.good)
    daemon.wait_for(lambda: world.copy_on_engine(world.good), 120,
                    "the verification's container on the engine", interval=0.1)
    answer = daemon.client.delete(f"/v1/jobs/{job['id']}")
    assert answer.status_code in (200, 202), answer.text

    ended = daemon.wait_job(job["id"])
    assert ended["status"] == "cancelled", ended
    assert made_for(world.client, world.good) == []
    now = world.snapshot(world.good)
    assert (now["verification"], now["verified_at"]) == (None, None)
    assert world.counted(world.plain, "error") == errors_before


def test_the_cli_with_server_runs_one_verified_restore_and_prints_the_verdict(
        world: World, daemon: Daemon, tmp_path: Path) -> None:
    proc = cli(daemon, tmp_path, "verify", "--restore", world.good, "--json", token=TEST_TOKEN)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verdict = json.loads(proc.stdout)
    snapshot = world.snapshot(world.good)
    verification = snapshot["verification"]
    assert verification["result"] == "passed", verification
    assert verification["figures"]["appdb.public.bulk"] == BULK
    assert verification["figures"]["appdb.public.orders"] == ORDERS
    assert verdict == {"snapshot_id": world.good, "instance": world.plain,
                       "verified_at": snapshot["verified_at"], **verification}
    job = daemon.get(f"/v1/jobs/{verification['job_id']}").json()
    assert (job["kind"], job["result"]) == ("verify-restore", verdict)
    assert made_for(world.client, world.good) == []
    assert not (tmp_path / "client-data").exists()  # the CLI used nothing local
