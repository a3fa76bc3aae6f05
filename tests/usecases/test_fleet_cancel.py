"""Cancelling across a fleet in the Docker-free tier: two daemons with their own
engines share one catalog. A request alpha queued for beta and beta has not
claimed is cancelled from alpha at once and beta never runs it; a job beta runs
or has queued is marked from alpha and beta's next look cancels it through its
own runner, recorded as any cancel is; beta's progress writes keep the mark; an
ended job is refused as before, and a job of alpha's own host that another
process runs is still JobElsewhere."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from backup.errors import Cancelled
from backup.streams import ProgressCallback
from backup.types import SnapshotStatus, utcnow
from service.bootstrap import Services
from service.entrypoints.daemon.claims import Claims
from service.hosts import HostRecord
from service.records import JobRecord, JobStatus
from service.settings import Settings
from service.usecases import cancellation, fleet, instances
from service.usecases.cancellation import JobElsewhere, JobEnded
from service.usecases.jobs import CANCELLED_BY_REQUEST, JobRunner, new_job_id
from tests.fakes.docker import DUMP, FakeDocker
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import TEST_TOKEN
from tests.usecases.support import add_db, wait_until

BODY: dict[str, object] = {"target": None, "tags": {}, "pin": False}


@dataclass
class Daemon:
    world: FakeWorld
    runner: JobRunner
    claims: Claims


def _daemon(world: FakeWorld) -> Daemon:
    services, now = world.services, utcnow()
    services.catalog.save_host(HostRecord(
        name=services.host_name(), engine_version="27.0", instances=0, started_at=now,
        last_heartbeat=now, holdfast_version="test", runner=f"{services.host_name()}:1:1"))
    runner = JobRunner(services, workers=1, lease_seconds=45)
    return Daemon(world, runner, Claims(services, runner))


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    """alpha and beta, each with its own engine, on one catalog and one set of
    targets; beta has the instance ``shop-db``, discovered."""
    alpha_world = fake_world(tmp_path / "alpha", {"HOLDFAST_HOST_NAME": "alpha"})
    settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path / "beta"),
                              "HOLDFAST_API_TOKEN": TEST_TOKEN,
                              "HOLDFAST_TARGET_LOCAL": "memory://local",
                              "HOLDFAST_TARGET_OFFSITE": "memory://offsite",
                              "HOLDFAST_READY_TIMEOUT": "5", "HOLDFAST_HOST_NAME": "beta",
                              "HOLDFAST_CLAIM_INTERVAL": "0.05"})
    beta_docker = FakeDocker()
    beta_services = Services(
        settings=settings, catalog=alpha_world.catalog, docker=beta_docker,
        storage_factory=lambda name, _url: alpha_world.storage(name),
        senders=alpha_world.senders)
    beta_world = FakeWorld(services=beta_services, docker=beta_docker,
                           catalog=alpha_world.catalog, senders=alpha_world.senders)
    alpha, beta = _daemon(alpha_world), _daemon(beta_world)
    add_db(beta_world, "shop-db")
    instances.refresh_instances(beta_services)
    yield alpha, beta
    for daemon in (alpha, beta):
        daemon.claims.shutdown()
        daemon.runner.cancel.set()
        daemon.world.docker.abort_streams()  # a stalled fake exec a failing test left
        daemon.runner.shutdown(grace=5, cancel_wait=5)


def _queue_backup(alpha: Daemon) -> JobRecord:
    queued = fleet.start_backup(alpha.world.services, alpha.runner, "shop-db", {},
                                request={"name": "shop-db", "body": BODY})
    assert (queued.host, queued.status) == ("beta", JobStatus.QUEUED)
    return queued


def _job(daemon: Daemon, job_id: str) -> JobRecord:
    record = daemon.world.catalog.get_job(job_id)
    assert record is not None
    return record


def _assert_cancelled(record: JobRecord) -> None:
    assert (record.status, record.error, record.result) == (
        JobStatus.CANCELLED, CANCELLED_BY_REQUEST, None)
    assert record.finished_at is not None


def _dumps(daemon: Daemon) -> int:
    return sum(1 for _, argv, _ in daemon.world.docker.execs if argv[0] == DUMP)


def test_an_unclaimed_request_is_cancelled_at_once_and_never_claimed(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    queued = _queue_backup(alpha)
    outcome = cancellation.cancel_job(alpha.world.services, alpha.runner, queued.id, wait=0)
    assert outcome.ended
    _assert_cancelled(outcome.job)
    assert outcome.job.lease_expires_at is None and outcome.job.started_at is None
    assert _job(beta, queued.id) == outcome.job
    assert beta.claims.poll() == 0  # nothing left for beta to claim
    assert _job(beta, queued.id) == outcome.job
    assert _dumps(beta) == 0
    assert beta.world.catalog.list_snapshots() == []
    assert beta.world.services.gate.holder("shop-db") is None
    with pytest.raises(JobEnded, match="already cancelled"):
        cancellation.cancel_job(alpha.world.services, alpha.runner, queued.id, wait=0)


def test_a_backup_running_on_another_host_is_cancelled_by_that_host_s_daemon(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    beta.world.docker.stall.add(DUMP)
    queued = _queue_backup(alpha)
    assert beta.claims.poll() == 1
    wait_until(lambda: (queued.id, DUMP) in beta.world.docker.stalled,
               what="beta's dump to stall")

    outcome = cancellation.cancel_job(alpha.world.services, alpha.runner, queued.id, wait=0)

    assert not outcome.ended  # only asked: beta has not looked yet
    assert outcome.job.status == JobStatus.RUNNING
    assert outcome.job.cancel_requested_at is not None
    assert beta.world.catalog.cancel_requests("beta") == [queued.id]
    assert beta.world.docker.aborted_holders == []
    assert alpha.world.docker.aborted_holders == []

    assert beta.claims.poll() == 0  # nothing claimed, but the mark is honoured
    done = beta.runner.wait(queued.id, timeout=30)
    _assert_cancelled(done)
    assert beta.world.docker.aborted_holders == [queued.id]  # its own streams, on beta
    failed, = beta.world.catalog.list_snapshots(instance="shop-db")
    assert (failed.status, failed.error) == (SnapshotStatus.FAILED, "cancelled")
    assert beta.world.services.gate.holder("shop-db") is None
    assert alpha.runner.get(queued.id) == done  # alpha reads the same end
    assert beta.world.catalog.cancel_requests("beta") == []
    beta.claims.poll()
    assert beta.world.docker.aborted_holders == [queued.id]  # cancelled once


def test_a_request_waiting_in_its_host_s_runner_is_cancelled_before_it_starts(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    release = threading.Event()
    blocker = beta.runner.submit("test", lambda: {"released": release.wait(10)})
    wait_until(lambda: _job(beta, blocker.id).status == JobStatus.RUNNING,
               what="beta's only worker to be busy")
    queued = _queue_backup(alpha)
    assert beta.claims.poll() == 1  # claimed, queued behind the blocker
    assert beta.world.services.gate.holder("shop-db") == queued.id

    outcome = cancellation.cancel_job(alpha.world.services, alpha.runner, queued.id, wait=0)
    assert not outcome.ended and outcome.job.status == JobStatus.QUEUED
    beta.claims.poll()
    _assert_cancelled(_job(beta, queued.id))
    assert beta.world.services.gate.holder("shop-db") is None
    release.set()
    wait_until(lambda: _job(beta, blocker.id).status == JobStatus.SUCCEEDED,
               what="the blocker to end")
    assert _dumps(beta) == 0  # it never ran
    assert _job(beta, queued.id).status == JobStatus.CANCELLED


def test_a_cancel_waits_for_the_host_s_daemon_to_end_the_job(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    beta.world.docker.stall.add(DUMP)
    queued = _queue_backup(alpha)
    beta.claims.start()  # beta's own claims thread, looking every 0.05 s
    wait_until(lambda: (queued.id, DUMP) in beta.world.docker.stalled,
               what="beta's dump to stall")
    started = time.monotonic()
    outcome = cancellation.cancel_job(alpha.world.services, alpha.runner, queued.id, wait=10)
    assert outcome.ended
    _assert_cancelled(outcome.job)
    assert time.monotonic() - started < 5
    assert beta.world.docker.aborted_holders == [queued.id]


def _progressing(started: threading.Event) -> Callable[[ProgressCallback, Callable[[], bool]],
                                                      dict[str, object]]:
    """A job that counts bytes (written through its runner, once a second) until
    it is cancelled."""
    def work(progress: ProgressCallback, cancelled: Callable[[], bool]) -> dict[str, object]:
        done, deadline = 0, time.monotonic() + 30
        while not cancelled():
            if time.monotonic() > deadline:
                raise AssertionError("nobody cancelled the job")
            done += 1000
            progress(done, 0.1)
            started.set()
            time.sleep(0.02)
        raise Cancelled("stopped")

    return work


def test_a_cancel_request_survives_its_host_s_progress_writes(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    started = threading.Event()
    job = beta.runner.submit_watched("verify", _progressing(started))
    assert started.wait(10)
    outcome = cancellation.cancel_job(alpha.world.services, alpha.runner, job.id, wait=0)
    assert not outcome.ended
    asked_at = outcome.job.cancel_requested_at
    assert asked_at is not None
    counted = outcome.job.bytes_done or 0
    # beta's runner goes on writing its progress from the record it holds.
    wait_until(lambda: (_job(beta, job.id).bytes_done or 0) > counted, timeout=10,
               what="beta to write progress after the request")
    kept = _job(beta, job.id)
    assert (kept.status, kept.cancel_requested_at) == (JobStatus.RUNNING, asked_at)
    assert beta.world.catalog.cancel_requests("beta") == [job.id]
    assert beta.claims.poll() == 0
    done = beta.runner.wait(job.id, timeout=30)
    _assert_cancelled(done)
    assert done.cancel_requested_at == asked_at


def test_an_ended_job_on_another_host_is_refused_as_before(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, beta = pair
    queued = _queue_backup(alpha)
    assert beta.claims.poll() == 1
    done = beta.runner.wait(queued.id, timeout=30)
    assert done.status == JobStatus.SUCCEEDED, done.error
    with pytest.raises(JobEnded, match=f"job {queued.id} already succeeded; only a queued "
                                       "or running job can be cancelled"):
        cancellation.cancel_job(alpha.world.services, alpha.runner, queued.id, wait=0)
    assert _job(alpha, queued.id) == done  # no cancel request written


def test_a_job_another_process_of_this_host_runs_is_still_elsewhere(
        pair: tuple[Daemon, Daemon]) -> None:
    alpha, _ = pair
    now = utcnow()
    other = JobRecord(id=new_job_id(), kind="backup", status=JobStatus.RUNNING,
                      created_at=now, started_at=now, instance="crm-db", host="alpha",
                      lease_expires_at=now)
    alpha.world.catalog.add_job(other)
    with pytest.raises(JobElsewhere, match="is running in another Holdfast process on "
                                           "this host"):
        cancellation.cancel_job(alpha.world.services, alpha.runner, other.id, wait=0)
    assert _job(alpha, other.id) == other
    assert alpha.world.catalog.cancel_requests("alpha") == []
