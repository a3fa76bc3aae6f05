"""Verifications across a fleet in the Docker-free tier: two daemons with their own
engines share one catalog and one target. A verification (an integrity re-read or
a verified restore) asked of one for a snapshot of the other's instance is queued
for the instance's host, claimed there and run there as the same job, its result
read back through the row; a host that stopped beating is refused at once, and a
snapshot of this host's instance is verified here as before."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from backup.encryption import new_identity
from backup.errors import HostDown, IdentityRequired
from backup.types import utcnow
from restore.verification import NAME_PREFIX
from service.bootstrap import Services
from service.entrypoints.daemon.claims import Claims
from service.hosts import HostRecord
from service.records import JobStatus
from service.settings import Settings
from service.usecases import fleet, instances, integrity
from service.usecases.jobs import JobRunner
from tests.fakes.docker import FakeDocker
from tests.fakes.services import fake_world
from tests.harness.api import TEST_TOKEN
from tests.usecases.support import add_db, take_backup

CONTENT = b"beta's rows " * 4000


@dataclass
class Daemon:
    services: Services
    docker: FakeDocker
    runner: JobRunner
    claims: Claims
    networks: list[str]
    """The networks made on its engine, in order (a verified restore makes one),
    each without the random token that ends its name."""


def _beat(services: Services, at: timedelta = timedelta(0)) -> None:
    when = utcnow() - at
    services.catalog.save_host(HostRecord(
        name=services.host_name(), engine_version="27.0", instances=0, started_at=when,
        last_heartbeat=when, holdfast_version="test", runner=f"{services.host_name()}:1:1"))


def _daemon(services: Services, docker: FakeDocker, monkeypatch: pytest.MonkeyPatch) -> Daemon:
    _beat(services)
    runner = JobRunner(services, workers=1, lease_seconds=45)
    networks: list[str] = []
    create = docker.create_network

    def recording(name: str, **options: object) -> None:
        networks.append(name.rsplit("-", 1)[0])
        create(name, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(docker, "create_network", recording)
    return Daemon(services, docker, runner, Claims(services, runner), networks)


@pytest.fixture
def pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Daemon, Daemon]]:
    """alpha (no identity file) and beta (which encrypts its backups and holds the
    identity that opens them), one catalog and one set of targets, both beating."""
    text, recipient = new_identity()
    (identity := tmp_path / "beta-identity.txt").write_text(text)
    world = fake_world(tmp_path / "alpha", {"HOLDFAST_HOST_NAME": "alpha"})
    settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path / "beta"),
                              "HOLDFAST_API_TOKEN": TEST_TOKEN,
                              "HOLDFAST_TARGET_LOCAL": "memory://local",
                              "HOLDFAST_TARGET_OFFSITE": "memory://offsite",
                              "HOLDFAST_READY_TIMEOUT": "5", "HOLDFAST_HOST_NAME": "beta",
                              "HOLDFAST_AGE_RECIPIENTS": recipient,
                              "HOLDFAST_IDENTITY_FILE": str(identity)})
    beta_docker = FakeDocker()
    beta = Services(settings=settings, catalog=world.catalog, docker=beta_docker,
                    storage_factory=lambda name, _url: world.storage(name),
                    senders=world.senders)
    daemons = (_daemon(world.services, world.docker, monkeypatch),
               _daemon(beta, beta_docker, monkeypatch))
    yield daemons
    for daemon in daemons:
        daemon.runner.shutdown(grace=5, cancel_wait=5)


def _beta_snapshot(beta: Daemon) -> str:
    """An encrypted backup of beta's instance shop-db, discovered there; its id."""
    add_db(beta, "shop-db", content=CONTENT)  # type: ignore[arg-type]
    instances.refresh_instances(beta.services)
    snapshot = take_backup(beta, "shop-db")  # type: ignore[arg-type]
    assert snapshot.encryption == "age-v1"
    return snapshot.id


def test_a_verified_restore_of_another_host_s_snapshot_is_run_on_that_host(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    snapshot_id = _beta_snapshot(beta)
    queued = fleet.start_verified_restore(alpha.services, alpha.runner, snapshot_id[:14])
    assert (queued.kind, queued.host, queued.status, queued.instance, queued.snapshot_id) == (
        "verify-restore", "beta", JobStatus.QUEUED, "shop-db", snapshot_id)
    assert queued.request == {"kind": "verify-restore", "snapshot": snapshot_id}
    assert alpha.claims.poll() == 0  # not alpha's to run
    row = alpha.services.catalog.get_job(queued.id)
    assert row is not None and (row.status, row.started_at) == (JobStatus.QUEUED, None)
    assert beta.claims.poll() == 1
    assert beta.claims.poll() == 0  # claimed once
    done = beta.runner.wait(queued.id, timeout=30)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.result is not None
    assert (done.result["result"], done.result["job_id"]) == ("passed", queued.id)
    assert done.result["snapshot_id"] == snapshot_id
    # The throwaway copy was made on beta's engine, none on alpha's.
    assert (alpha.networks, beta.networks) == ([], [f"{NAME_PREFIX}{snapshot_id}"])
    seen_from_alpha = alpha.runner.get(queued.id)
    assert (seen_from_alpha.status, seen_from_alpha.result) == (JobStatus.SUCCEEDED,
                                                                done.result)
    verified = alpha.services.catalog.get_snapshot(snapshot_id)
    assert verified is not None and verified.verification is not None
    assert (verified.verification["result"], verified.verification["job_id"]) == ("passed",
                                                                                 queued.id)


def test_an_integrity_verify_of_another_host_s_snapshot_runs_there_with_its_identity(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    snapshot_id = _beta_snapshot(beta)
    with pytest.raises(IdentityRequired):  # why it cannot run on alpha
        integrity.prepare_verify(alpha.services, snapshot_id)
    queued = fleet.start_verify(alpha.services, alpha.runner, snapshot_id)
    assert (queued.kind, queued.host, queued.status, queued.instance, queued.snapshot_id) == (
        "verify", "beta", JobStatus.QUEUED, "shop-db", snapshot_id)
    assert queued.request == {"kind": "verify", "snapshot": snapshot_id}
    assert alpha.claims.poll() == 0
    assert beta.claims.poll() == 1
    done = beta.runner.wait(queued.id, timeout=30)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.result is not None
    assert (done.result["snapshot_id"], done.result["whole"],
            done.result["fully_checked"]) == (snapshot_id, True, True)
    seen_from_alpha = alpha.runner.get(queued.id)
    assert (seen_from_alpha.status, seen_from_alpha.host) == (JobStatus.SUCCEEDED, "beta")
    assert seen_from_alpha.result == done.result
    assert [j.id for j in alpha.services.catalog.list_jobs(10, None, kind="verify")] == [
        queued.id]


def test_verifications_for_a_host_that_stopped_beating_are_refused_at_once(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    snapshot_id = _beta_snapshot(beta)
    _beat(beta.services, at=timedelta(minutes=10))
    for start in (fleet.start_verify, fleet.start_verified_restore):
        with pytest.raises(HostDown, match=r"host beta has sent no heartbeat for \d+s"):
            start(alpha.services, alpha.runner, snapshot_id)
    assert alpha.services.catalog.list_jobs() == []


def test_a_snapshot_of_this_host_s_instance_is_verified_here(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    _beta_snapshot(beta)  # beta has an instance too: not the one asked about
    add_db(alpha, "crm-db", content=b"alpha's rows" * 1000)  # type: ignore[arg-type]
    instances.refresh_instances(alpha.services)
    snapshot = take_backup(alpha, "crm-db")  # type: ignore[arg-type]
    checked = fleet.start_verify(alpha.services, alpha.runner, snapshot.id)
    restored = fleet.start_verified_restore(alpha.services, alpha.runner, snapshot.id)
    for job, kind in ((checked, "verify"), (restored, "verify-restore")):
        assert (job.kind, job.host, job.request) == (kind, "alpha", None)
        assert job.lease_expires_at is not None  # leased to alpha's runner as it runs
    assert beta.claims.poll() == 0  # nothing was queued for beta
    check_done = alpha.runner.wait(checked.id, timeout=30)
    restore_done = alpha.runner.wait(restored.id, timeout=30)
    assert (check_done.status, restore_done.status) == (JobStatus.SUCCEEDED,
                                                        JobStatus.SUCCEEDED)
    assert check_done.result is not None and check_done.result["whole"] is True
    assert restore_done.result is not None and restore_done.result["result"] == "passed"
    assert (alpha.networks, beta.networks) == ([f"{NAME_PREFIX}{snapshot.id}"], [])


def test_a_local_encrypted_snapshot_without_an_identity_is_refused_before_a_job(
        tmp_path: Path) -> None:
    _, recipient = new_identity()
    world = fake_world(tmp_path, {"HOLDFAST_HOST_NAME": "gamma",
                                  "HOLDFAST_AGE_RECIPIENTS": recipient})
    _beat(world.services)
    runner = JobRunner(world.services, 1, lease_seconds=45)
    try:
        add_db(world, "shop-db")
        instances.refresh_instances(world.services)
        snapshot = take_backup(world, "shop-db")
        for start in (fleet.start_verify, fleet.start_verified_restore):
            with pytest.raises(IdentityRequired, match="HOLDFAST_IDENTITY_FILE"):
                start(world.services, runner, snapshot.id)
        assert world.catalog.list_jobs() == []
    finally:
        runner.shutdown(grace=5)


def test_a_claimed_verification_whose_snapshot_is_gone_fails_with_the_reason(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    gone = "20260101T000000Z-abcdef"
    queued = [fleet.queue_request(alpha.services, "beta", kind, instance="shop-db",
                                  snapshot_id=gone, request={"snapshot": gone})
              for kind in ("verify", "verify-restore")]
    assert beta.claims.poll() == 2
    for job in queued:
        failed = alpha.services.catalog.get_job(job.id)
        assert failed is not None and failed.status == JobStatus.FAILED
        assert failed.error is not None and gone in failed.error and "\n" not in failed.error
