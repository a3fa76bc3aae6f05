"""``holdfast.verify`` in the daemon's parts, on the fakes: ``after-backup``
queues a verified restore of each new snapshot, a schedule runs one of the
newest complete snapshot, a bad value is the instance's error, the metrics
count each outcome, and start-up recovery removes what a killed verification
left."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator

import pytest

from backup.labels import validate_verify
from restore.verification import NAME_PREFIX, RUNNER_LABEL, VERIFICATION_LABEL
from service.observability.metrics import Metrics
from service.usecases import backups, instances, recovery
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.usecases.support import DEAD_RUNNER, add_db, take_backup, wait_until
from tests.usecases.test_schedule_isolation import Daemon


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def jobs(world: FakeWorld, metrics: Metrics) -> Iterator[JobRunner]:
    runner = JobRunner(world.services, 2, metrics)
    yield runner
    runner.shutdown(grace=5, cancel_wait=5)


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _verifications(world: FakeWorld) -> list[dict[str, object]]:
    return [job.to_json() for job in world.catalog.list_jobs(kind="verify-restore")]


def test_after_backup_queues_a_verified_restore_of_the_new_snapshot(
        world: FakeWorld, jobs: JobRunner, metrics: Metrics) -> None:
    add_db(world, "shop", labels={"holdfast.verify": "after-backup"})
    request = backups.prepare_backup(world.services, "shop")
    job = jobs.submit_backup(request)
    done = jobs.wait(job.id, 10)
    assert done.result is not None and done.result["verification_job"]
    verified = jobs.wait(str(done.result["verification_job"]), 10)
    assert verified.kind == "verify-restore" and verified.status == "succeeded"
    assert verified.result is not None and verified.result["result"] == "passed"
    assert verified.snapshot_id == done.snapshot_id
    snapshot = world.catalog.get_snapshot(str(done.snapshot_id))
    assert snapshot is not None and snapshot.verification is not None
    assert _sample(metrics, "holdfast_verifications_total", instance="shop",
                   result="passed") == 1
    assert snapshot.verified_at is not None and _sample(
        metrics, "holdfast_last_verified_timestamp_seconds",
        instance="shop") == snapshot.verified_at.timestamp()


def test_a_backup_without_the_policy_queues_none(world: FakeWorld, jobs: JobRunner) -> None:
    add_db(world, "shop")
    job = jobs.submit_backup(backups.prepare_backup(world.services, "shop"))
    done = jobs.wait(job.id, 10)
    assert done.result is not None and done.result["verification_job"] is None
    assert _verifications(world) == []


def test_a_schedule_verifies_the_newest_complete_snapshot(
        world: FakeWorld, jobs: JobRunner, metrics: Metrics) -> None:
    add_db(world, "shop", labels={"holdfast.verify": "@every 1s"})
    take_backup(world, "shop")
    newest = take_backup(world, "shop")
    daemon = Daemon(world, jobs).start()
    try:
        wait_until(lambda: len(_verifications(world)) >= 2, 10, "no scheduled verification")
    finally:
        daemon.stop()
    jobs.shutdown(grace=5, cancel_wait=5)
    ran = world.catalog.list_jobs(kind="verify-restore")
    assert {job.snapshot_id for job in ran} == {newest.id}
    assert all(job.status == "succeeded" for job in ran if job.finished_at)
    spans = sorted((job.started_at, job.finished_at) for job in ran
                   if job.started_at and job.finished_at)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(spans))


def test_a_scheduled_verification_without_a_snapshot_is_skipped(
        world: FakeWorld, jobs: JobRunner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="service.usecases.scheduled")
    add_db(world, "shop", labels={"holdfast.verify": "@every 1s"})
    daemon = Daemon(world, jobs).start()
    try:
        wait_until(lambda: "has no complete snapshot yet" in caplog.text, 10,
                   "the skip was not logged")
    finally:
        daemon.stop()
    assert _verifications(world) == []


@pytest.mark.parametrize("value", ["sometimes", "@every 0s", "0 0 31 2 *"])
def test_a_bad_value_is_the_instance_s_error(world: FakeWorld, value: str) -> None:
    add_db(world, "shop", labels={"holdfast.verify": value})
    [view] = instances.list_instances(world.services)
    [error] = view.errors
    assert error.startswith("holdfast.verify: ") and "after-backup" in error
    assert view.verify is None


def test_values_normalise() -> None:
    assert validate_verify(" After-Backup ") == "after-backup"
    assert validate_verify("@weekly") == "@weekly"
    assert validate_verify("0  3 * * 1") == "0 3 * * 1"


def test_recovery_removes_what_a_killed_verification_left(world: FakeWorld) -> None:
    labels = {VERIFICATION_LABEL: "20260101T000000Z-abcdef", RUNNER_LABEL: DEAD_RUNNER}
    name = f"{NAME_PREFIX}20260101T000000Z-abcdef-0a0b0c"
    world.docker.create_network(name, internal=True, labels=labels)
    world.docker.add_container(name, labels=labels, volume=f"{name}-data")
    world.docker.volumes[f"{name}-data"].labels = dict(labels)
    report = recovery.recover(world.services)
    assert sorted(report.verifications) == sorted([name, f"{name}-data", name])
    assert name not in world.docker.networks and f"{name}-data" not in world.docker.volumes
    assert name not in {c.name for c in world.docker.containers.values()}
