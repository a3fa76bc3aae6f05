"""Notifications from runs (:mod:`service.usecases.notifications`, :mod:`service.usecases.watch`):
each state fires once, a recovery clears it, pings bracket each run, nothing blocks a backup."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest

from backup.alerts import Condition, EventName
from backup.errors import DeliveryFailed
from backup.types import utcnow
from service.records import Delivery, DeliveryStatus, JobStatus, Message
from service.usecases import backups, scheduled, watch
from service.usecases.instances import live_instances, refresh_instances
from service.usecases.jobs import JobRunner
from service.usecases.notifications import (
    DeliveryRecorder,
    Notifier,
    link_for,
    send_test,
)
from tests.fakes.services import FakeWorld
from tests.usecases.support import PASSWORD, add_db, wait_until

PING_URL = "https://hc.example/ping/0f1e2d3c-secret-uuid"
ALL = frozenset(EventName)
DEFAULTS = ALL - {EventName.BACKUP_SUCCEEDED}


@dataclass
class Postbox:
    """Records what was put, per destination, in order (the outbox's contract)."""

    put_messages: list[tuple[str, Message]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, destination: str, message: Message) -> Delivery:
        with self.lock:
            self.put_messages.append((destination, message))
        return Delivery(id=f"ntf-{len(self.put_messages)}", destination=destination,
                        message=message, status=DeliveryStatus.QUEUED, created_at=utcnow())

    def events(self, destination: str) -> list[str]:
        with self.lock:
            return [m.event for d, m in self.put_messages if d == destination]


class Pings:
    def __init__(self) -> None:
        self.urls: dict[str, str] = {}

    def ping_destination(self, instance: str, url: str) -> str:
        self.urls[instance] = url
        return f"ping:{instance}"


@dataclass
class Setup:
    world: FakeWorld
    postbox: Postbox
    pings: Pings
    notifier: Notifier
    runner: JobRunner


@pytest.fixture
def setup(world: FakeWorld) -> Iterator[Setup]:
    postbox, pings = Postbox(), Pings()

    def policy_of(name: str) -> object:
        return next((i.policy for i in live_instances(world.services) if i.name == name), None)

    notifier = Notifier(world.catalog, {"ops": DEFAULTS, "audit": ALL}, postbox, pings,
                        policy_of=policy_of,  # type: ignore[arg-type]
                        link_base="https://holdfast.example")
    runner = JobRunner(world.services, workers=1, alerts=notifier)
    yield Setup(world, postbox, pings, notifier, runner)
    runner.shutdown(grace=5)


def _backup(s: Setup, name: str) -> JobStatus:
    job = s.runner.submit_backup(backups.prepare_backup(s.world.services, name))
    wait_until(lambda: s.runner.get(job.id).status in (JobStatus.SUCCEEDED, JobStatus.FAILED),
               what=f"{job.id} ended")
    return s.runner.get(job.id).status


def test_a_failing_backup_fires_once_and_its_first_success_fires_recovered(s: Setup) -> None:
    add_db(s.world, "shop")
    s.world.docker.dump_error, s.world.docker.dump_error_after = "disk on fire", 0
    assert _backup(s, "shop") == JobStatus.FAILED
    assert _backup(s, "shop") == JobStatus.FAILED
    assert s.postbox.events("ops") == ["backup.failed"]
    alarm = s.world.catalog.get_alarm(Condition.BACKUP, "shop")
    assert alarm is not None and alarm.failures == 2
    s.world.docker.dump_error = None
    assert _backup(s, "shop") == JobStatus.SUCCEEDED
    assert _backup(s, "shop") == JobStatus.SUCCEEDED
    assert s.postbox.events("ops") == ["backup.failed", "recovered"]
    assert s.postbox.events("audit") == ["backup.failed", "recovered", "backup.succeeded",
                                         "backup.succeeded"]
    assert s.world.catalog.get_alarm(Condition.BACKUP, "shop") is None
    failed, recovered = [m for d, m in s.postbox.put_messages if d == "ops"]
    assert "disk on fire" in failed.payload["reason"]
    assert failed.payload["instance"] == "shop"
    assert failed.payload["link"] == f"https://holdfast.example/v1/jobs/{failed.payload['job']}"
    assert recovered.payload["cleared"] == "backup.failed"
    assert "2 failure(s)" in recovered.payload["reason"]


@pytest.fixture
def s(setup: Setup) -> Setup:
    return setup


def test_holdfast_notify_narrows_the_channels(s: Setup) -> None:
    add_db(s.world, "shop", labels={"holdfast.notify": "audit"})
    s.world.docker.dump_error, s.world.docker.dump_error_after = "disk on fire", 0
    _backup(s, "shop")
    assert s.postbox.events("ops") == []
    assert s.postbox.events("audit") == ["backup.failed"]


def test_an_unknown_channel_in_holdfast_notify_is_warned_of_and_never_stops_a_backup(
        s: Setup, caplog: pytest.LogCaptureFixture) -> None:
    add_db(s.world, "shop", labels={"holdfast.notify": "pager,audit"})
    shop = next(i for i in live_instances(s.world.services) if i.name == "shop")
    assert not shop.errors
    s.world.docker.dump_error, s.world.docker.dump_error_after = "disk on fire", 0
    assert _backup(s, "shop") == JobStatus.FAILED
    assert _backup(s, "shop") == JobStatus.FAILED
    assert s.postbox.events("audit") == ["backup.failed"]
    warned = [r.getMessage() for r in caplog.records if "'pager'" in r.getMessage()]
    assert len(warned) == 1 and "HOLDFAST_NOTIFY_PAGER=<url>" in warned[0]


def test_pings_bracket_every_run_in_order_and_carry_no_secret(s: Setup) -> None:
    add_db(s.world, "shop", labels={"holdfast.ping": PING_URL})
    assert _backup(s, "shop") == JobStatus.SUCCEEDED
    s.world.docker.dump_error, s.world.docker.dump_error_after = "disk on fire", 0
    assert _backup(s, "shop") == JobStatus.FAILED
    assert s.postbox.events("ping:shop") == ["ping.start", "ping.success", "ping.start",
                                             "ping.fail"]
    assert s.pings.urls == {"shop": PING_URL}
    for destination, message in s.postbox.put_messages:
        text = repr((destination, message))
        assert "secret-uuid" not in text and PASSWORD not in text


def test_the_ping_url_is_never_stored_in_the_catalog(s: Setup) -> None:
    add_db(s.world, "shop", labels={"holdfast.ping": PING_URL})
    refresh_instances(s.world.services)
    record = s.world.catalog.get_instance("shop")
    assert record is not None and "holdfast.ping" not in record.labels
    assert PING_URL not in repr(record)


def test_a_scheduled_backup_that_cannot_start_fires_backup_failed(s: Setup) -> None:
    add_db(s.world, "shop", env={}, labels={"holdfast.ping": PING_URL,
                                            "holdfast.schedule": "@hourly"})
    shop = next(i for i in live_instances(s.world.services) if i.name == "shop")
    assert scheduled.start_scheduled_backup(s.world.services, s.runner, shop) is None
    assert s.postbox.events("ops") == ["backup.failed"]
    assert "cannot start" in s.postbox.put_messages[0][1].payload["reason"]
    assert s.postbox.events("ping:shop") == ["ping.fail"]


def test_a_stale_instance_fires_once_and_a_backup_clears_it(s: Setup) -> None:
    add_db(s.world, "shop", labels={"holdfast.schedule": "@yearly",
                                    "holdfast.stale_after": "1h"})
    refresh_instances(s.world.services)
    shop = live_instances(s.world.services)
    now = utcnow()
    assert watch.check_freshness(s.world.services, s.notifier, shop, now) == []
    later = now + timedelta(hours=1, seconds=1)
    fired = watch.check_freshness(s.world.services, s.notifier, shop, later)
    assert [e.name for e in fired] == [EventName.BACKUP_STALE]
    assert "stale_after=3600s" in fired[0].reason
    assert link_for("https://h.example", fired[0]) == "https://h.example/v1/snapshots?instance=shop"
    assert watch.check_freshness(s.world.services, s.notifier, shop,
                                 later + timedelta(minutes=5)) == []
    assert _backup(s, "shop") == JobStatus.SUCCEEDED
    assert s.postbox.events("ops") == ["backup.stale", "recovered"]
    assert watch.check_freshness(s.world.services, s.notifier, shop, utcnow()) == []


def test_stale_by_default_after_two_scheduled_runs(world: FakeWorld) -> None:
    add_db(world, "shop", labels={"holdfast.schedule": "0 3 * * *"})
    shop = next(i for i in live_instances(world.services) if i.name == "shop")
    seen = utcnow().replace(hour=12, minute=0, second=0, microsecond=0)
    day = timedelta(days=1)
    due = (seen + 2 * day).replace(hour=3)  # tomorrow's 03:00 and the day after's
    before = watch.freshness(shop, None, seen, due - timedelta(seconds=1))
    after = watch.freshness(shop, None, seen, due)
    assert before is not None and not before.failing
    assert after is not None and after.failing and "two runs of 0 3 * * *" in after.reason


def test_an_instance_without_schedule_or_window_is_never_stale(world: FakeWorld) -> None:
    add_db(world, "shop")
    shop = next(i for i in live_instances(world.services) if i.name == "shop")
    assert watch.freshness(shop, None, utcnow() - timedelta(days=400), utcnow()) is None


def test_a_target_that_fails_its_probe_fires_once_then_recovers(s: Setup) -> None:
    storage = s.world.services.target("offsite")
    original = storage.put

    def refuse(*_: object, **__: object) -> None:
        from backup.errors import StorageUnavailable
        raise StorageUnavailable("offsite: connection refused")

    storage.put = refuse  # type: ignore[method-assign,assignment]
    now = utcnow()
    first = watch.check_targets_health(s.world.services, s.notifier, now)
    again = watch.check_targets_health(s.world.services, s.notifier, now)
    storage.put = original  # type: ignore[method-assign]
    back = watch.check_targets_health(s.world.services, s.notifier, now)
    assert [(e.name, e.subject) for e in first] == [(EventName.TARGET_UNREACHABLE, "offsite")]
    assert again == []
    assert [(e.name, e.cleared) for e in back] == [(EventName.RECOVERED,
                                                    EventName.TARGET_UNREACHABLE)]
    assert link_for("https://h.example", first[0]) == "https://h.example/v1/targets/check"


def test_a_catalog_failure_while_deciding_never_fails_the_backup(s: Setup) -> None:
    add_db(s.world, "shop")

    def down(*_: object) -> None:
        raise RuntimeError("catalog is down")

    s.world.catalog.get_alarm = down  # type: ignore[method-assign,assignment]
    assert _backup(s, "shop") == JobStatus.SUCCEEDED


def test_a_failed_restore_fires_every_time(s: Setup) -> None:
    add_db(s.world, "shop")
    _backup(s, "shop")
    s.notifier.restore_failed("shop", job="job-1", snapshot="snap-1", error="no space")
    s.notifier.restore_failed("shop", job="job-2", snapshot="snap-1", error="no space")
    assert s.postbox.events("ops") == ["restore.failed", "restore.failed"]


def test_retention_failures_fire_retention_failed_once(s: Setup) -> None:
    s.notifier.retention_finished("shop", failures=["cannot prune 1 snapshot(s)"])
    s.notifier.retention_finished("shop", failures=["cannot prune 2 snapshot(s)"])
    s.notifier.retention_finished("shop", failures=[])
    assert s.postbox.events("ops") == ["retention.failed", "recovered"]


class _Sender:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.got: list[Message] = []

    def send(self, message: Message) -> None:
        self.got.append(message)
        if self.fail:
            raise DeliveryFailed("hooks.example answered HTTP 500")


def test_send_test_records_delivered_and_failed(world: FakeWorld) -> None:
    good, bad = _Sender(False), _Sender(True)
    routes = {"ops": good, "pager": bad}
    ok = send_test(world.catalog, routes.__getitem__, routes, "OPS")
    with pytest.raises(DeliveryFailed, match=r"channel pager was not delivered .*: "
                       r"hooks.example answered HTTP 500$"):
        send_test(world.catalog, routes.__getitem__, routes, "pager")
    assert ok.status == DeliveryStatus.DELIVERED
    assert good.got[0].payload["event"] == "test"
    listed = {d.destination: d.status for d in world.catalog.list_deliveries()}
    assert listed == {"ops": DeliveryStatus.DELIVERED, "pager": DeliveryStatus.FAILED}


def test_the_recorder_counts_ended_deliveries_and_prunes(world: FakeWorld) -> None:
    counted: list[Delivery] = []
    recorder = DeliveryRecorder(world.catalog, counted.append, keep=50)
    message = Message(event="backup.failed", title="t", body="b", payload={})
    for n in range(400):
        for status in (DeliveryStatus.QUEUED, DeliveryStatus.DELIVERED):
            recorder(Delivery(id=f"ntf-{n:04d}", destination="ops", message=message,
                              status=status, created_at=utcnow()))
    assert len(counted) == 400
    assert len(world.catalog.list_deliveries(limit=1000)) < 400
