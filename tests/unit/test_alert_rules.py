"""The shipped Prometheus alert rules name only metrics the daemon exports, and
``holdfast_snapshot_age_seconds`` is the age of each instance's newest complete snapshot."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from importlib.resources import files

import yaml
from prometheus_client import generate_latest

from backup.types import Snapshot, SnapshotStatus
from service.observability.metrics import ALERT_RULES, Metrics
from service.records import Delivery, DeliveryStatus, Message

FINISHED = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
NOW = FINISHED + timedelta(hours=30)


def _snapshot(instance: str, status: SnapshotStatus, hours: float) -> Snapshot:
    end = FINISHED + timedelta(hours=hours)
    return Snapshot(id=f"{instance}-{hours}", instance=instance, engine="postgres",
                    target="local", status=status, created_at=end - timedelta(minutes=2),
                    data_key="k", finished_at=end, size_bytes=10)


def _exported(metrics: Metrics) -> str:
    return generate_latest(metrics.registry).decode()


def test_the_age_gauge_follows_the_newest_complete_snapshot() -> None:
    metrics = Metrics(clock=NOW.timestamp)
    metrics.seed([_snapshot("pg", SnapshotStatus.COMPLETE, 0),
                  _snapshot("pg", SnapshotStatus.COMPLETE, -5),
                  _snapshot("redis", SnapshotStatus.FAILED, 1)])
    assert 'holdfast_snapshot_age_seconds{instance="pg"} 108000.0' in _exported(metrics)
    ages = [line for line in _exported(metrics).splitlines()
            if line.startswith("holdfast_snapshot_age")]
    assert not any('instance="redis"' in line for line in ages)  # never complete: no age
    metrics.observe(_snapshot("pg", SnapshotStatus.COMPLETE, 29))
    metrics.observe(_snapshot("pg", SnapshotStatus.FAILED, 29.5))  # a failure resets nothing
    assert 'holdfast_snapshot_age_seconds{instance="pg"} 3600.0' in _exported(metrics)


def test_every_rule_is_well_formed_and_names_exported_metrics() -> None:
    text = files("service.observability").joinpath(ALERT_RULES).read_text()
    rules = [rule for group in yaml.safe_load(text)["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {"HoldfastBackupStale", "HoldfastBackupFailing"}
    metrics = Metrics(clock=NOW.timestamp)
    metrics.seed([_snapshot("pg", SnapshotStatus.COMPLETE, 0)])
    metrics.observe(_snapshot("pg", SnapshotStatus.FAILED, 1))
    metrics.observe_verification("pg", None)
    metrics.observe_delivery(Delivery(
        id="ntf-1", destination="ops", status=DeliveryStatus.FAILED, created_at=NOW,
        message=Message(event="backup.failed", title="t", body="b", payload={})))
    exported = set(re.findall(r"^(holdfast_[a-z_]+)", _exported(metrics), re.MULTILINE))
    for rule in rules:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule["alert"]
        named = set(re.findall(r"\b(holdfast_[a-z_]+)", rule["expr"]))
        assert named <= exported, f"{rule['alert']} names {named - exported}, not exported"
        assert rule["labels"]["severity"] in ("warning", "critical")
