"""A fleet runs each scheduled time once: two daemons sharing one catalog, each
seeing the same instance, fire the same slot and only the one that claims it
queues a run; a catalog that cannot be reached runs nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup.storage import storage_from_url
from service.bootstrap import Services
from service.entrypoints.daemon.scheduler import PRUNE_JOB, Scheduler
from service.records import JobStatus
from service.settings import Settings
from service.usecases import instances, scheduled, schedules
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import TEST_TOKEN
from tests.usecases.support import add_db, make_snapshot, take_backup

HOURLY = {"holdfast.schedule": "@hourly"}
SLOT = datetime(2026, 3, 4, 5, 0, tzinfo=UTC)
"""A fire of ``@hourly``: the daemons fire a little after it."""


@dataclass
class Daemon:
    """One daemon of the fleet: its own services (host name, gate) and runner."""

    services: Services
    runner: JobRunner

    @property
    def host(self) -> str:
        return self.services.host_name()


def _daemon(world: FakeWorld, tmp_path: Path, host: str) -> Daemon:
    """A second daemon over ``world``'s catalog and engine, under ``host``."""
    settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path / host),
                              "HOLDFAST_API_TOKEN": TEST_TOKEN,
                              "HOLDFAST_TARGET_LOCAL": "memory://local",
                              "HOLDFAST_TARGET_OFFSITE": "memory://offsite",
                              "HOLDFAST_READY_TIMEOUT": "5", "HOLDFAST_HOST_NAME": host})
    services = Services(settings=settings, catalog=world.catalog, docker=world.docker,
                        storage_factory=storage_from_url, senders=world.senders)
    return Daemon(services, JobRunner(services, workers=1))


@pytest.fixture
def world(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path / "alpha", {"HOLDFAST_HOST_NAME": "alpha"})


@pytest.fixture
def fleet(world: FakeWorld, tmp_path: Path) -> Iterator[tuple[Daemon, Daemon]]:
    alpha = Daemon(world.services, JobRunner(world.services, workers=1))
    beta = _daemon(world, tmp_path, "beta")
    yield alpha, beta
    for daemon in (alpha, beta):
        daemon.runner.shutdown(grace=5, cancel_wait=5)


def _at(monkeypatch: pytest.MonkeyPatch, moment: datetime) -> None:
    """Both daemons' clocks read ``moment`` where the scheduled runs look."""
    monkeypatch.setattr(scheduled, "utcnow", lambda: moment)
    monkeypatch.setattr(schedules, "utcnow", lambda: moment)


def _fire_both(fleet: tuple[Daemon, Daemon], name: str) -> list[str]:
    """Fire the scheduled backup of ``name`` on both daemons; the hosts that
    queued one, each run waited for."""
    queued = []
    for daemon in fleet:
        instance = instances.find_instance(daemon.services, name)
        job = scheduled.start_scheduled_backup(daemon.services, daemon.runner, instance)
        if job is not None:
            done = daemon.runner.wait(job.id, timeout=10)
            assert done.status == JobStatus.SUCCEEDED, done.error
            queued.append(daemon.host)
    return queued


def test_two_daemons_firing_one_slot_queue_one_backup(
        world: FakeWorld, fleet: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    add_db(world, "shop", labels=HOURLY)
    _at(monkeypatch, SLOT + timedelta(seconds=2))
    with caplog.at_level(logging.INFO, logger="service.usecases.scheduled"):
        assert _fire_both(fleet, "shop") == ["alpha"]
    assert len(world.catalog.list_jobs(kind="backup")) == 1
    assert "scheduled backup of shop for 2026-03-04T05:00:00Z already taken by another " \
           "daemon; skipped" in caplog.text


def test_a_late_fire_of_the_same_slot_is_skipped_and_the_next_slot_runs_again(
        world: FakeWorld, fleet: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    alpha, beta = fleet
    add_db(world, "shop", labels=HOURLY)
    _at(monkeypatch, SLOT + timedelta(seconds=1))
    assert _fire_both((beta, alpha), "shop") == ["beta"]
    _at(monkeypatch, SLOT + timedelta(minutes=59, seconds=59))  # very late: still that slot
    assert _fire_both(fleet, "shop") == []
    _at(monkeypatch, SLOT + timedelta(hours=1))
    assert _fire_both(fleet, "shop") == ["alpha"]
    assert len(world.catalog.list_jobs(kind="backup")) == 2


def test_the_slot_key_is_the_instance_and_kind(
        world: FakeWorld, fleet: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, "shop", labels=HOURLY)
    add_db(world, "blog", labels=HOURLY)
    _at(monkeypatch, SLOT)
    assert _fire_both(fleet, "shop") == ["alpha"]
    assert _fire_both(fleet, "blog") == ["alpha"]
    # a verification of the same slot is another run: the backup's claim leaves it be
    assert world.catalog.claim_slot("shop", "verify", SLOT, "beta", SLOT)


def test_a_catalog_outage_runs_nothing_and_logs_an_error(
        world: FakeWorld, fleet: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    add_db(world, "shop", labels=HOURLY)
    _at(monkeypatch, SLOT + timedelta(seconds=3))
    found = [instances.find_instance(daemon.services, "shop") for daemon in fleet]
    world.catalog.down = True
    with caplog.at_level(logging.INFO, logger="service.usecases.scheduled"):
        for daemon, instance in zip(fleet, found, strict=True):
            assert scheduled.start_scheduled_backup(daemon.services, daemon.runner,
                                                    instance) is None
    world.catalog.down = False
    assert world.catalog.list_jobs() == []
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert all("scheduled backup of shop for 2026-03-04T05:00:00Z skipped: its slot cannot "
               "be claimed" in r.getMessage() and "down" in r.getMessage() for r in errors)
    # the slot is still free: once the catalog is back, a fire in it runs
    assert _fire_both(fleet, "shop") == ["alpha"]


def test_a_scheduled_backup_without_a_schedule_claims_nothing_and_runs_nothing(
        world: FakeWorld, fleet: tuple[Daemon, Daemon],
        caplog: pytest.LogCaptureFixture) -> None:
    add_db(world, "shop")
    with caplog.at_level(logging.ERROR, logger="service.usecases.scheduled"):
        assert _fire_both(fleet, "shop") == []
    assert world.catalog.list_jobs() == []
    assert "names no slot to claim" in caplog.text


def test_two_daemons_verify_one_slot_once(
        world: FakeWorld, fleet: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    add_db(world, "shop", labels={"holdfast.verify": "@daily"})
    take_backup(world, "shop")
    _at(monkeypatch, datetime(2026, 3, 4, 0, 0, 5, tzinfo=UTC))
    with caplog.at_level(logging.INFO, logger="service.usecases.scheduled"):
        for daemon in fleet:
            instance = instances.find_instance(daemon.services, "shop")
            scheduled.start_scheduled_verification(daemon.services, daemon.runner, instance)
    [job] = world.catalog.list_jobs(kind="verify-restore")
    assert fleet[0].runner.wait(job.id, timeout=10).status == JobStatus.SUCCEEDED
    assert "scheduled verified restore of shop for 2026-03-04T00:00:00Z already taken by " \
           "another daemon; skipped" in caplog.text


def test_two_daemons_catching_up_after_a_downtime_run_the_missed_slot_once(
        world: FakeWorld, fleet: tuple[Daemon, Daemon], monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, "shop", labels=HOURLY)
    make_snapshot(world, "shop", at=SLOT - timedelta(hours=3))  # then both were down
    _at(monkeypatch, SLOT + timedelta(minutes=20))
    for daemon in fleet:
        Scheduler(daemon.services, daemon.runner).sync(
            instances.live_instances(daemon.services), catch_up=True)
    [job] = world.catalog.list_jobs(kind="backup")
    assert fleet[0].runner.wait(job.id, timeout=10).status == JobStatus.SUCCEEDED
    # the missed slot it ran is the latest one, taken: a third daemon skips it too
    assert not world.catalog.claim_slot("shop", "backup", SLOT, "gamma", SLOT)


def test_old_slots_are_pruned(world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    assert world.catalog.claim_slot("shop", "backup", SLOT, "alpha", SLOT)
    assert world.catalog.claim_slot("shop", "backup", SLOT + timedelta(days=7), "alpha",
                                    SLOT + timedelta(days=7))
    _at(monkeypatch, SLOT + timedelta(days=8))
    assert scheduled.prune_slots(world.services) == 1
    assert world.catalog.claim_slot("shop", "backup", SLOT, "beta", SLOT)  # forgotten
    assert not world.catalog.claim_slot("shop", "backup", SLOT + timedelta(days=7), "beta",
                                        SLOT)
    world.catalog.down = True
    assert scheduled.prune_slots(world.services) == 0  # logged; the next prune tries again


def test_a_started_scheduler_prunes_hourly_apart_from_the_instances_jobs(
        world: FakeWorld, fleet: tuple[Daemon, Daemon]) -> None:
    add_db(world, "shop", labels=HOURLY)
    scheduler = Scheduler(world.services, fleet[0].runner)
    scheduler.start()
    try:
        scheduler.sync(instances.live_instances(world.services))
        scheduler.sync([])  # every instance gone: the pruning stays
        job = scheduler._scheduler.get_job(PRUNE_JOB)
        assert job is not None and job.trigger.interval == timedelta(hours=1)
        assert scheduler.scheduled() == {}
    finally:
        scheduler.shutdown()
