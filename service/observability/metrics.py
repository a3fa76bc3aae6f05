"""Prometheus metrics for the daemon, on a registry of its own (no globals).

The job runner reports each backup's outcome here; ``GET /metrics`` renders the
registry with prometheus-client's exposition format.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from backup.types import Snapshot, SnapshotStatus
from service.records import Delivery

ALERT_RULES = "prometheus-alerts.yml"
"""Prometheus alert rules for these metrics, beside this module (README: Metrics)."""


class SnapshotAges(Collector):
    """``holdfast_snapshot_age_seconds{instance}``: seconds since each
    instance's newest complete snapshot finished, computed at scrape time."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._newest: dict[str, float] = {}
        self._lock = threading.Lock()

    def completed(self, instance: str, stamp: float) -> None:
        with self._lock:
            self._newest[instance] = max(self._newest.get(instance, stamp), stamp)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "holdfast_snapshot_age_seconds",
            "Seconds since the newest complete snapshot of each instance finished.",
            labels=["instance"])
        now = self._clock()
        with self._lock:
            newest = sorted(self._newest.items())
        for instance, stamp in newest:
            family.add_metric([instance], max(0.0, now - stamp))
        yield family


class Metrics:
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.snapshot_ages = SnapshotAges(clock)
        self.registry.register(self.snapshot_ages)
        self.snapshots = Counter(
            "holdfast_snapshots", "Snapshots finished, by instance and status.",
            ["instance", "status"], registry=self.registry)
        self.last_success = Gauge(
            "holdfast_last_success_timestamp_seconds",
            "Unix time of the newest complete snapshot, by instance.",
            ["instance"], registry=self.registry)
        self.bytes_written = Counter(
            "holdfast_bytes_written", "Bytes stored by complete snapshots, by instance.",
            ["instance"], registry=self.registry)
        self.duration = Histogram(
            "holdfast_snapshot_duration_seconds", "Time taken by snapshots, by instance.",
            ["instance"], registry=self.registry,
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600))
        self.running_jobs = Gauge(
            "holdfast_running_jobs", "Backup and restore jobs running now.",
            registry=self.registry)
        self.queued_jobs = Gauge(
            "holdfast_queued_jobs", "Jobs waiting for a free slot.", registry=self.registry)
        self.last_verified = Gauge(
            "holdfast_last_verified_timestamp_seconds",
            "Unix time of the newest verified restore that passed, by instance.",
            ["instance"], registry=self.registry)
        self.verifications = Counter(
            "holdfast_verifications",
            "Verified restores finished, by instance and result: passed, failed (the "
            "snapshot did not restore, or its copy differs), error (it could not run).",
            ["instance", "result"], registry=self.registry)
        self.notifications = Counter(
            "holdfast_notifications",
            "Notifications ended, by channel (ping for dead-man pings) and result: "
            "delivered, failed (after its retries), dropped (its queue was full).",
            ["channel", "result"], registry=self.registry)

    def observe_delivery(self, delivery: Delivery) -> None:
        """A notification or ping ended (delivered, failed or dropped); pings
        count under ``channel="ping"``, one series for every instance's."""
        channel = "ping" if delivery.destination.startswith("ping:") else delivery.destination
        self.notifications.labels(channel, str(delivery.status)).inc()

    def seed(self, snapshots: list[Snapshot]) -> None:
        """Set the last-success gauges from the catalog at start-up."""
        newest: dict[str, float] = {}
        for snapshot in snapshots:
            if snapshot.status == SnapshotStatus.COMPLETE and snapshot.finished_at:
                stamp = snapshot.finished_at.timestamp()
                newest[snapshot.instance] = max(newest.get(snapshot.instance, stamp), stamp)
        for instance, stamp in newest.items():
            self.last_success.labels(instance).set(stamp)
            self.snapshot_ages.completed(instance, stamp)
        verified: dict[str, float] = {}
        for snapshot in snapshots:
            if _passed(snapshot) and snapshot.verified_at is not None:
                stamp = snapshot.verified_at.timestamp()
                verified[snapshot.instance] = max(verified.get(snapshot.instance, stamp), stamp)
        for instance, stamp in verified.items():
            self.last_verified.labels(instance).set(stamp)

    def observe_verification(self, instance: str, snapshot: Snapshot | None) -> None:
        """A verified restore of ``instance`` ended: with the snapshot it
        recorded its verdict on, or None when it could not run (``error``)."""
        if snapshot is None or snapshot.verification is None:
            self.verifications.labels(instance, "error").inc()
            return
        self.verifications.labels(instance, str(snapshot.verification["result"])).inc()
        if _passed(snapshot) and snapshot.verified_at is not None:
            self.last_verified.labels(instance).set(snapshot.verified_at.timestamp())

    def observe(self, snapshot: Snapshot) -> None:
        self.snapshots.labels(snapshot.instance, str(snapshot.status)).inc()
        if snapshot.finished_at is not None:
            self.duration.labels(snapshot.instance).observe(
                (snapshot.finished_at - snapshot.created_at).total_seconds())
        if snapshot.status == SnapshotStatus.COMPLETE and snapshot.finished_at is not None:
            self.last_success.labels(snapshot.instance).set(snapshot.finished_at.timestamp())
            self.snapshot_ages.completed(snapshot.instance, snapshot.finished_at.timestamp())
            self.bytes_written.labels(snapshot.instance).inc(snapshot.size_bytes or 0)


def _passed(snapshot: Snapshot) -> bool:
    return snapshot.verification is not None and snapshot.verification.get("result") == "passed"
