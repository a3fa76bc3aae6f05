"""Schedules as the daemon uses them: which instances run on a schedule, and
which missed a run while it was down."""

from __future__ import annotations

from datetime import timedelta

from backup.types import SnapshotStatus
from service.usecases import instances, schedules
from tests.fakes.services import FakeWorld
from tests.usecases.support import T0, add_db, make_snapshot


def test_only_running_instances_with_a_valid_schedule_are_scheduled(world: FakeWorld) -> None:
    add_db(world, "hourly", labels={"holdfast.schedule": "@hourly"})
    add_db(world, "cron", labels={"holdfast.schedule": "15 2 * * 1-5"})
    add_db(world, "unscheduled")
    add_db(world, "stopped", labels={"holdfast.schedule": "@hourly"}, running=False)
    add_db(world, "broken", labels={"holdfast.schedule": "@hourly",
                                    "holdfast.retention": "forever"})
    add_db(world, "bad-cron", labels={"holdfast.schedule": "61 * * * *"})
    found = schedules.scheduled_instances(instances.live_instances(world.services))
    assert found == {"cron": "15 2 * * 1-5", "hourly": "@hourly"}


def test_an_instance_whose_run_passed_while_down_is_overdue(world: FakeWorld) -> None:
    now = T0 + timedelta(days=1, minutes=30)  # 00:30 on the 2nd
    make_snapshot(world, "missed", at=T0 + timedelta(hours=1))  # last ran 01:00 on the 1st
    make_snapshot(world, "fresh", at=T0 + timedelta(days=1, minutes=10))
    make_snapshot(world, "every", at=now - timedelta(hours=7))
    make_snapshot(world, "failed", at=T0, status=SnapshotStatus.FAILED)
    overdue = schedules.overdue_instances(world.services, {
        "missed": "@daily", "fresh": "@daily", "never": "@daily", "every": "@every 6h",
        "failed": "@daily"}, now)
    assert overdue == ["every", "failed", "missed"]
