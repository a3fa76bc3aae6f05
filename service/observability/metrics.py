"""Prometheus metrics for the daemon, on a registry of its own (no globals).

The job runner reports each backup's outcome here; ``GET /metrics`` renders the
registry with prometheus-client's exposition format.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from backup.types import Snapshot, SnapshotStatus


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def seed(self, snapshots: list[Snapshot]) -> None:
        """Set the last-success gauges from the catalog at start-up."""
        newest: dict[str, float] = {}
        for snapshot in snapshots:
            if snapshot.status == SnapshotStatus.COMPLETE and snapshot.finished_at:
                stamp = snapshot.finished_at.timestamp()
                newest[snapshot.instance] = max(newest.get(snapshot.instance, stamp), stamp)
        for instance, stamp in newest.items():
            self.last_success.labels(instance).set(stamp)

    def observe(self, snapshot: Snapshot) -> None:
        self.snapshots.labels(snapshot.instance, str(snapshot.status)).inc()
        if snapshot.finished_at is not None:
            self.duration.labels(snapshot.instance).observe(
                (snapshot.finished_at - snapshot.created_at).total_seconds())
        if snapshot.status == SnapshotStatus.COMPLETE and snapshot.finished_at is not None:
            self.last_success.labels(snapshot.instance).set(snapshot.finished_at.timestamp())
            self.bytes_written.labels(snapshot.instance).inc(snapshot.size_bytes or 0)
