"""Work across a fleet in the Docker-free tier: two daemons with their own engines
share one catalog and one target. A backup asked of one for the other's instance
is queued for its host, claimed there once and run there; a restore asked for
another host runs there; a host that stops beating has its jobs interrupted by
the other, and recovery at start touches only its own host's jobs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import pytest

from backup.errors import Conflict, HostDown, NameTaken
from backup.types import utcnow
from service.bootstrap import Services
from service.entrypoints.cli.local import LocalBackend
from service.entrypoints.daemon.claims import Claims
from service.hosts import HostRecord, lease_seconds, may_interrupt_others
from service.records import JobRecord, JobStatus
from service.settings import Settings
from service.usecases import backups, fleet, instances, recovery
from service.usecases.jobs import JobRunner
from tests.fakes.docker import FakeDocker
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import TEST_TOKEN
from tests.usecases.support import PASSWORD, add_db, take_backup

BODY: dict[str, object] = {"target": None, "tags": {}, "pin": False}


@dataclass
class Daemon:
    services: Services
    docker: FakeDocker
    runner: JobRunner
    claims: Claims


def _host(services: Services) -> None:
    now = utcnow()
    services.catalog.save_host(HostRecord(
        name=services.host_name(), engine_version="27.0", instances=0, started_at=now,
        last_heartbeat=now, holdfast_version="test", runner=f"{services.host_name()}:1:1"))


@pytest.fixture
def world(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path / "alpha", {"HOLDFAST_HOST_NAME": "alpha"})


@pytest.fixture
def pair(world: FakeWorld, tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    """alpha (the world's engine) and beta (an engine of its own), one catalog
    and one set of targets, both registered and beating."""
    settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path / "beta"),
                              "HOLDFAST_API_TOKEN": TEST_TOKEN,
                              "HOLDFAST_TARGET_LOCAL": "memory://local",
                              "HOLDFAST_TARGET_OFFSITE": "memory://offsite",
                              "HOLDFAST_READY_TIMEOUT": "5", "HOLDFAST_HOST_NAME": "beta"})
    beta_docker = FakeDocker()
    beta = Services(settings=settings, catalog=world.catalog, docker=beta_docker,
                    storage_factory=lambda name, _url: world.storage(name),
                    senders=world.senders)
    daemons = []
    for services, docker in ((world.services, world.docker), (beta, beta_docker)):
        _host(services)
        runner = JobRunner(services, workers=1, lease_seconds=45)
        daemons.append(Daemon(services, docker, runner, Claims(services, runner)))
    yield daemons[0], daemons[1]
    for daemon in daemons:
        daemon.runner.shutdown(grace=5, cancel_wait=5)


def _discover(daemon: Daemon) -> None:
    instances.refresh_instances(daemon.services)


def test_a_backup_asked_of_one_daemon_runs_on_the_instance_s_host(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    add_db(beta, "shop-db")  # type: ignore[arg-type]
    _discover(beta)
    record = alpha.services.catalog.get_instance("shop-db")
    assert record is not None and record.host == "beta"

    queued = fleet.start_backup(alpha.services, alpha.runner, "shop-db", {},
                                request={"name": "shop-db", "body": BODY})
    assert (queued.host, queued.status, queued.lease_expires_at) == ("beta",
                                                                    JobStatus.QUEUED, None)
    assert alpha.claims.poll() == 0  # not alpha's to run
    assert beta.claims.poll() == 1
    assert beta.claims.poll() == 0  # claimed once
    done = beta.runner.wait(queued.id, timeout=30)
    assert done.status == JobStatus.SUCCEEDED, done.error
    seen_from_alpha = alpha.runner.get(queued.id)
    assert seen_from_alpha.status == JobStatus.SUCCEEDED
    assert seen_from_alpha.snapshot_id is not None
    snapshot = alpha.services.catalog.get_snapshot(seen_from_alpha.snapshot_id)
    assert snapshot is not None and snapshot.instance == "shop-db"


def test_a_restore_asked_for_another_host_is_made_on_that_host(
        world: FakeWorld, pair: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = pair
    # The source container is on alpha's engine: beta's daemon has the password
    # in its environment, as the README asks of a host restoring another's snapshot.
    monkeypatch.setenv("FAKE_PASSWORD", PASSWORD)
    beta.docker.images.add("fake/db:1")  # the image the snapshot records, on beta too
    add_db(world, "crm-db", content=b"alpha's rows" * 1000)
    _discover(alpha)
    snapshot = take_backup(world, "crm-db")
    asked = fleet.RestoreAsked(snapshot=snapshot.id[:14], name="crm-copy", host="beta")
    queued = fleet.start_restore(alpha.services, alpha.runner, asked,
                                 request={"body": {"name": "crm-copy"}})
    assert (queued.host, queued.snapshot_id) == ("beta", snapshot.id)
    assert queued.request is not None and queued.request["snapshot"] == snapshot.id
    assert beta.claims.poll() == 1
    done = beta.runner.wait(queued.id, timeout=30)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert beta.docker.data_of("crm-copy") == b"alpha's rows" * 1000
    assert beta.docker.by_name("crm-copy").running
    # Made on beta's engine only.
    assert "crm-copy" not in {c.name for c in world.docker.containers.values()}


def test_work_for_a_host_that_stopped_beating_is_refused_at_once(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    add_db(beta, "shop-db")  # type: ignore[arg-type]
    _discover(beta)
    gone = utcnow() - timedelta(minutes=10)
    beta.services.catalog.save_host(HostRecord(
        name="beta", engine_version="27.0", instances=1, started_at=gone,
        last_heartbeat=gone, holdfast_version="test", runner="beta:1:1"))
    with pytest.raises(HostDown, match=r"host beta has sent no heartbeat for \d+s"):
        fleet.start_backup(alpha.services, alpha.runner, "shop-db", {},
                           request={"name": "shop-db", "body": BODY})
    assert alpha.services.catalog.list_jobs() == []


def test_a_request_that_cannot_start_on_its_host_fails_with_the_reason(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    bad = fleet.queue_request(alpha.services, "beta", "backup", instance="nowhere-db",
                              request={"name": "nowhere-db", "body": BODY})
    unknown = fleet.queue_request(alpha.services, "beta", "teleport", instance=None,
                                  request={})
    assert beta.claims.poll() == 2
    for job_id, says in ((bad.id, "nowhere-db"), (unknown.id, "'teleport'")):
        failed = alpha.services.catalog.get_job(job_id)
        assert failed is not None and failed.status == JobStatus.FAILED
        assert failed.error is not None and says in failed.error and "\n" not in failed.error


def _leased(host: str, n: int, expires_in: float) -> JobRecord:
    now = utcnow()
    return JobRecord(id=f"job-{host}-{n}", kind="backup", status=JobStatus.RUNNING,
                     created_at=now, started_at=now, instance=f"db-{n}", host=host,
                     lease_expires_at=now + timedelta(seconds=expires_in))


def test_jobs_of_a_host_whose_lease_ran_out_are_interrupted_by_another(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    catalog = alpha.services.catalog
    catalog.add_job(_leased("beta", 1, expires_in=-1))   # beta stopped beating
    catalog.add_job(_leased("alpha", 2, expires_in=-1))  # alpha's own: it is alive
    catalog.add_job(_leased("beta", 3, expires_in=60))   # still vouched for
    lost = fleet.interrupt_lost_jobs(alpha.services)
    assert [j.id for j in lost] == ["job-beta-1"]
    interrupted = catalog.get_job("job-beta-1")
    assert interrupted is not None and interrupted.status == JobStatus.INTERRUPTED
    assert interrupted.error == fleet.LOST_HOST
    for untouched in ("job-alpha-2", "job-beta-3"):
        job = catalog.get_job(untouched)
        assert job is not None and job.status == JobStatus.RUNNING
    # beta's heartbeats renew its own leases only.
    assert fleet.keep_leases(beta.services) == 1
    renewed = catalog.get_job("job-beta-3")
    assert renewed is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at > utcnow() + timedelta(seconds=lease_seconds(15) - 5)


def test_a_daemon_back_from_an_outage_waits_a_lease_before_interrupting_others() -> None:
    now = utcnow()
    assert not may_interrupt_others(None, now, 15)
    assert not may_interrupt_others(now - timedelta(seconds=44), now, 15)
    assert may_interrupt_others(now - timedelta(seconds=45), now, 15)


def test_recovery_at_start_fails_only_this_host_s_jobs(pair: tuple[Daemon, Daemon]) -> None:
    alpha, _ = pair
    catalog = alpha.services.catalog
    catalog.add_job(_leased("alpha", 1, expires_in=60))
    catalog.add_job(_leased("beta", 2, expires_in=60))
    request = fleet.queue_request(alpha.services, "alpha", "backup", instance="db",
                                  request={"name": "db", "body": BODY})
    legacy = replace(_leased("alpha", 3, 60), id="job-legacy", host=None)
    catalog.add_job(legacy)
    report = recovery.recover(alpha.services)
    assert sorted(report.jobs) == ["job-alpha-1", "job-legacy"]
    for job_id, status in (("job-beta-2", JobStatus.RUNNING), (request.id, JobStatus.QUEUED)):
        job = catalog.get_job(job_id)
        assert job is not None and job.status == status


def test_another_host_s_instances_are_listed_as_remote_with_that_host_s_status(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    add_db(beta, "shop-db")  # type: ignore[arg-type]
    _discover(beta)
    views = {v.name: v for v in instances.list_instances(alpha.services)}
    remote = views["shop-db"].to_json()
    assert (remote["status"], remote["host"], remote["host_status"]) == ("remote", "beta",
                                                                         "alive")
    assert remote["container"] == "shop-db"
    mine = {v.name: v for v in instances.list_instances(beta.services)}["shop-db"]
    assert (mine.status, mine.host, mine.host_status) == ("running", "beta", "alive")
    gone = utcnow() - timedelta(minutes=10)
    beta.services.catalog.save_host(HostRecord(
        name="beta", engine_version="27.0", instances=1, started_at=gone,
        last_heartbeat=gone, holdfast_version="test", runner="beta:1:1"))
    down = {v.name: v for v in instances.list_instances(alpha.services)}["shop-db"]
    assert (down.status, down.host_status) == ("remote", "stale")


def test_one_name_on_two_hosts_is_reported_on_both_and_never_merged(
        world: FakeWorld, pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    add_db(world, "shop-db")
    _discover(alpha)
    beta.docker.add_container("unlabelled")  # the fake engines number ids alike
    theirs = add_db(beta, "shop-db")  # type: ignore[arg-type]
    _discover(beta)
    record = alpha.services.catalog.get_instance("shop-db")
    assert record is not None and record.host == "alpha"  # alpha's record is kept
    assert record.container_id == world.docker.by_name("shop-db").id != theirs.id
    clash = ("instance name shop-db is on two hosts: alpha (container shop-db, backed up "
             "there) and beta (container shop-db, not backed up); rename one with the "
             "holdfast.name label")
    assert record.clash == clash
    on_beta = {v.name: v for v in instances.list_instances(beta.services)}["shop-db"]
    on_alpha = {v.name: v for v in instances.list_instances(alpha.services)}["shop-db"]
    assert clash in on_beta.errors and clash in on_alpha.errors
    assert on_beta.next_run is None  # beta never schedules it
    with pytest.raises(Conflict, match="on two hosts"):
        backups.prepare_backup(beta.services, "shop-db")
    backups.prepare_backup(alpha.services, "shop-db")  # alpha still backs it up
    _discover(alpha)  # alpha's own refresh keeps the clash beta found
    assert alpha.services.catalog.get_instance("shop-db").clash == clash  # type: ignore[union-attr]
    beta.docker.remove_container(theirs.id)
    _discover(beta)  # gone from beta: beta clears what it reported
    cleared = alpha.services.catalog.get_instance("shop-db")
    assert cleared is not None and cleared.clash is None and cleared.host == "alpha"


def test_the_cli_restores_on_another_host_by_queueing_and_waiting(
        world: FakeWorld, pair: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = pair
    monkeypatch.setenv("FAKE_PASSWORD", PASSWORD)
    beta.docker.images.add("fake/db:1")
    add_db(world, "crm-db", content=b"rows" * 500)
    _discover(alpha)
    snapshot = take_backup(world, "crm-db")
    stop = threading.Event()

    def beta_claims() -> None:  # beta's daemon, polling as Claims does
        while not stop.wait(0.05):
            beta.claims.poll()

    thread = threading.Thread(target=beta_claims)
    thread.start()
    try:
        result = LocalBackend(alpha.services).restore(
            "crm-db", {"name": "crm-copy", "host": "beta", "warm": True}, nullcontext(),
            latest=True)
        with pytest.raises(NameTaken, match="crm-copy"):  # the second one is refused there
            LocalBackend(alpha.services).restore(
                snapshot.id, {"name": "crm-copy", "host": "beta"}, nullcontext())
    finally:
        stop.set()
        thread.join(timeout=30)
    assert (result["snapshot_id"], result["container"]) == (snapshot.id, "crm-copy")
    assert beta.docker.data_of("crm-copy") == b"rows" * 500
