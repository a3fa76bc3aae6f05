"""Notification deliveries and open alarms, on every catalog backend."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from backup.alerts import Alarm, Condition
from service.ports import CatalogPort
from service.records import Delivery, DeliveryStatus, Message
from tests.catalog.test_catalog import T0


def _delivery(n: int, *, destination: str = "ops", instance: str = "pg-main",
              event: str = "backup.failed") -> Delivery:
    payload = {"event": event, "instance": instance, "reason": f"run {n} failed",
               "snapshot": None, "job": f"job-{n}", "time": "2026-12-03T12:00:00Z"}
    return Delivery(id=f"ntf-{n:03d}", destination=destination,
                    message=Message(event, f"[holdfast] {event}: {instance}", "body", payload),
                    status=DeliveryStatus.QUEUED, created_at=T0 + timedelta(seconds=n))


def test_a_delivery_keeps_its_first_time_and_its_latest_state(catalog: CatalogPort) -> None:
    queued = _delivery(1)
    catalog.save_delivery(queued)
    failed = replace(queued, status=DeliveryStatus.FAILED, attempts=4, error="refused",
                     created_at=T0 + timedelta(hours=1), finished_at=T0 + timedelta(minutes=9))
    catalog.save_delivery(failed)
    (stored,) = catalog.list_deliveries()
    assert stored == replace(failed, created_at=queued.created_at)
    assert stored.message.payload["job"] == "job-1" and stored.instance == "pg-main"


def test_deliveries_list_newest_first_with_filters_and_a_limit(catalog: CatalogPort) -> None:
    for n in range(6):
        catalog.save_delivery(_delivery(n, destination="ops" if n % 2 else "ping:pg-main",
                                        instance="redis" if n == 5 else "pg-main",
                                        event="recovered" if n == 4 else "backup.failed"))
    catalog.save_delivery(replace(_delivery(3), status=DeliveryStatus.DELIVERED, attempts=1))
    assert [d.id for d in catalog.list_deliveries()] == [f"ntf-00{n}" for n in (5, 4, 3, 2, 1, 0)]
    assert [d.id for d in catalog.list_deliveries(2)] == ["ntf-005", "ntf-004"]
    assert [d.id for d in catalog.list_deliveries(destination="ops")] == [
        "ntf-005", "ntf-003", "ntf-001"]
    assert [d.id for d in catalog.list_deliveries(instance="redis")] == ["ntf-005"]
    assert [d.id for d in catalog.list_deliveries(event="recovered")] == ["ntf-004"]
    assert [d.id for d in catalog.list_deliveries(status=DeliveryStatus.DELIVERED)] == [
        "ntf-003"]


def test_pruning_keeps_the_newest(catalog: CatalogPort) -> None:
    for n in range(10):
        catalog.save_delivery(_delivery(n))
    assert catalog.prune_deliveries(keep=20) == 0
    assert catalog.prune_deliveries(keep=4) == 6
    assert [d.id for d in catalog.list_deliveries()] == ["ntf-009", "ntf-008", "ntf-007",
                                                         "ntf-006"]


def test_an_alarm_opens_updates_and_clears(catalog: CatalogPort) -> None:
    alarm = Alarm(Condition.BACKUP, "pg-main", T0, "dump failed: password authentication")
    assert catalog.get_alarm(Condition.BACKUP, "pg-main") is None
    catalog.save_alarm(alarm)
    catalog.save_alarm(Alarm(Condition.TARGET, "offsite", T0, "unreachable"))
    catalog.save_alarm(replace(alarm, failures=3))
    assert catalog.get_alarm(Condition.BACKUP, "pg-main") == replace(alarm, failures=3)
    assert catalog.get_alarm(Condition.FRESHNESS, "pg-main") is None  # another condition
    assert [(a.condition, a.subject) for a in catalog.list_alarms()] == [
        (Condition.BACKUP, "pg-main"), (Condition.TARGET, "offsite")]
    assert catalog.clear_alarm(Condition.BACKUP, "pg-main")
    assert not catalog.clear_alarm(Condition.BACKUP, "pg-main")
    assert [a.subject for a in catalog.list_alarms()] == ["offsite"]
