"""One instance's bad schedule never stops the others from being scheduled.

A policy an older Holdfast stored without bounds (put in the catalog here
directly, as it could have been) is that instance's error, in the listing;
every other instance is still scheduled and gets its next run, also after a
restart. A trigger that raises in the scheduler itself is logged and skipped.
A policy set over the API that fails validation is refused and not stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from functools import partial

import pytest

from backup.errors import InvalidInput, StorageMisconfigured
from service.entrypoints.daemon import scheduler as scheduler_module
from service.entrypoints.daemon.discovery import Discovery
from service.entrypoints.daemon.scheduler import Scheduler
from service.usecases import backups, instances, schedules
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.usecases.support import T0, add_db, make_snapshot, wait_until

GOOD = {"holdfast.schedule": "@every 1h"}


@pytest.fixture
def jobs(world: FakeWorld) -> Iterator[JobRunner]:
    runner = JobRunner(world.services, 2)
    yield runner
    runner.shutdown(grace=5, cancel_wait=5)


class Daemon:
    """The daemon's scheduling parts over the fakes, as ``holdfast serve`` wires them."""

    def __init__(self, world: FakeWorld, jobs: JobRunner) -> None:
        self.scheduler = Scheduler(world.services, jobs)
        self.discovery = Discovery(world.services, lambda found, catch_up: self.scheduler.sync(
            found, catch_up=catch_up), max_backoff=0.05)

    def start(self) -> Daemon:
        self.scheduler.start()
        self.discovery.start()
        return self

    def stop(self) -> None:
        self.discovery.stop()
        self.scheduler.shutdown()


@pytest.fixture
def daemons(world: FakeWorld, jobs: JobRunner) -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


def store_unchecked(world: FakeWorld, name: str, policy: dict[str, str]) -> None:
    """What an older Holdfast could have stored: a policy no validation saw."""
    instances.refresh_instances(world.services)
    world.catalog.set_policy_override(name, policy)


def scheduled(scheduler: Scheduler, name: str) -> bool:
    return scheduler.next_run(name) is not None


def views(world: FakeWorld, daemon: Daemon) -> dict[str, instances.InstanceView]:
    listed = instances.list_instances(world.services,
                                      lambda name, _: daemon.scheduler.next_run(name),
                                      daemon.discovery.instances())
    return {view.name: view for view in listed}


@pytest.mark.parametrize("bad", ["@every 999999999d", "*/99999999999999999999 * * * *",
                                 "@every 99999999999999999999999d", "0 0 31 2 *"])
def test_a_bad_stored_policy_does_not_stop_a_good_instance_being_scheduled(
        world: FakeWorld, jobs: JobRunner, daemons: list[Daemon], bad: str) -> None:
    add_db(world, "a-bad", labels=GOOD)  # sorted first: today's code stops at it
    add_db(world, "b-good", labels=GOOD)
    store_unchecked(world, "a-bad", {"schedule": bad})

    for _ in range(2):  # and again after a restart
        daemon = Daemon(world, jobs).start()
        daemons.append(daemon)
        wait_until(partial(scheduled, daemon.scheduler, "b-good"), 5, "b-good never scheduled")
        listed = views(world, daemon)
        assert listed["b-good"].errors == [] and listed["b-good"].next_run is not None
        assert listed["a-bad"].next_run is None
        [error] = listed["a-bad"].errors
        assert error.startswith("holdfast.schedule: ") and "\n" not in error
        assert daemon.scheduler.scheduled() == {"b-good": "@every 1h"}
        assert daemon.discovery.health() is None  # discovery is not stuck retrying
        record = world.catalog.get_instance("a-bad")
        assert record is not None and record.error == error
        daemon.stop()


class BrokenTrigger:
    """A trigger that fails as APScheduler's did on a far-off date."""

    def get_next_fire_time(self, previous: datetime | None, now: datetime) -> datetime:
        raise OverflowError("date value out of range")


def test_a_trigger_that_raises_in_the_scheduler_is_logged_and_skipped(
        world: FakeWorld, jobs: JobRunner, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    real = schedules.trigger_for

    def trigger_for(schedule: str) -> object:
        return BrokenTrigger() if schedule == "@every 7h" else real(schedule)

    add_db(world, "a-broken", labels={"holdfast.schedule": "@every 7h"})
    add_db(world, "b-fine", labels=GOOD)
    found = instances.live_instances(world.services)  # classified before the trigger broke
    monkeypatch.setattr(schedules, "trigger_for", trigger_for)
    monkeypatch.setattr(scheduler_module, "trigger_for", trigger_for)
    scheduler = Scheduler(world.services, jobs)
    scheduler.start()
    try:
        with caplog.at_level(logging.ERROR):
            scheduler.sync(found)
            scheduler.sync(found)  # the same failure is not logged twice
        assert scheduler.scheduled() == {"b-fine": "@every 1h"}
        assert scheduler.next_run("b-fine") is not None and scheduler.next_run("a-broken") is None
        [record] = [r for r in caplog.records if "a-broken" in r.getMessage()]
        assert "date value out of range" in record.getMessage()
        assert record.levelno == logging.ERROR
    finally:
        scheduler.shutdown()


def test_a_trigger_that_raises_is_an_error_on_its_instance(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    real = schedules.trigger_for
    monkeypatch.setattr(schedules, "trigger_for", lambda schedule: BrokenTrigger()
                        if schedule == "@every 7h" else real(schedule))
    add_db(world, "a-broken", labels={"holdfast.schedule": "@every 7h"})
    add_db(world, "b-fine", labels=GOOD)
    listed = {view.name: view for view in instances.list_instances(world.services)}
    assert listed["a-broken"].errors == [
        "holdfast.schedule '@every 7h' cannot be scheduled: date value out of range"]
    assert listed["b-fine"].errors == [] and listed["b-fine"].schedule == "@every 1h"
    assert schedules.scheduled_instances(instances.live_instances(world.services)) == {
        "b-fine": "@every 1h"}


def test_catch_up_skips_an_instance_whose_schedule_cannot_be_judged(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    real = schedules.is_overdue

    def is_overdue(schedule: str, last_run: datetime | None, now: datetime) -> bool:
        if schedule == "@every 7h":
            raise OverflowError("date value out of range")
        return real(schedule, last_run, now)

    monkeypatch.setattr(schedules, "is_overdue", is_overdue)
    make_snapshot(world, "a-broken", at=T0)
    make_snapshot(world, "b-due", at=T0)
    assert schedules.overdue_instances(world.services, {
        "a-broken": "@every 7h", "b-due": "@every 1h"}) == ["b-due"]


@pytest.mark.parametrize("bad", ["@every 999999999d", "*/99999999999999999999 * * * *",
                                 "0 0 31 2 *", "0 \uff13 * * *"])
def test_a_policy_that_fails_validation_is_refused_and_not_stored(
        world: FakeWorld, jobs: JobRunner, daemons: list[Daemon], bad: str) -> None:
    add_db(world, "shop-db", labels=GOOD)
    daemon = Daemon(world, jobs).start()
    daemons.append(daemon)
    wait_until(lambda: daemon.scheduler.next_run("shop-db") is not None)
    with pytest.raises(InvalidInput) as refused:
        instances.set_policy(world.services, "shop-db", {"schedule": bad},
                             applied=daemon.discovery.refresh)
    assert str(refused.value).startswith("holdfast.schedule: ")
    record = world.catalog.get_instance("shop-db")
    assert record is not None and record.policy_override is None
    assert daemon.scheduler.scheduled() == {"shop-db": "@every 1h"}


def test_an_unknown_target_is_an_instance_error_and_refuses_backups_alike(
        world: FakeWorld) -> None:
    add_db(world, "shop-db", labels={**GOOD, "holdfast.target": "nowhere"})
    add_db(world, "other-db", labels=GOOD)
    listed = {view.name: view for view in instances.list_instances(world.services)}
    [error] = listed["shop-db"].errors
    assert error.startswith("holdfast.target: no storage target named 'nowhere'; "
                            "configured: local, offsite")
    assert listed["other-db"].errors == []
    with pytest.raises(StorageMisconfigured) as refused:
        backups.prepare_backup(world.services, "shop-db")
    assert error == f"holdfast.target: {refused.value}"
    assert schedules.scheduled_instances(instances.live_instances(world.services)) == {
        "other-db": "@every 1h"}


def test_an_unknown_target_set_over_the_api_is_refused_and_not_stored(
        world: FakeWorld) -> None:
    add_db(world, "shop-db")
    instances.refresh_instances(world.services)
    with pytest.raises(InvalidInput) as refused:
        instances.set_policy(world.services, "shop-db", {"target": "nowhere"})
    assert str(refused.value).startswith("holdfast.target: no storage target named 'nowhere'")
    record = world.catalog.get_instance("shop-db")
    assert record is not None and record.policy_override is None
