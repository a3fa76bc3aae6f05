"""Jobs a script can rely on, on the fakes: an Idempotency-Key makes a retry return the
same job (one dump, also under concurrent retries), another request with the key is
refused, phases and bytes are recorded in order without a write per chunk, a status
write never loses the progress, and waiting is woken by the job itself."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.phases import Phase
from backup.types import utcnow
from service.rates import eta_seconds, transfer_rate
from service.records import JobRecord, JobStatus
from service.usecases import backups, restores
from service.usecases.idempotency import (
    Idempotency,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    fingerprint,
    idempotency_for,
)
from service.usecases.job_progress import JobWatchers, LiveJob
from service.usecases.jobs import JobRunner
from tests.fakes.catalog import InMemoryCatalog
from tests.fakes.docker import DUMP
from tests.fakes.services import FakeWorld
from tests.usecases.support import T0, add_db, take_backup, wait_until


@pytest.fixture
def runner(world: FakeWorld) -> Iterator[JobRunner]:
    job_runner = JobRunner(world.services, workers=2)
    yield job_runner
    job_runner.cancel.set()
    job_runner.shutdown(grace=5)


def dumps(world: FakeWorld) -> int:
    return sum(1 for _, argv, _ in world.docker.execs if argv[0] == DUMP)


def backup_once(world: FakeWorld, runner: JobRunner,
                idem: Idempotency | None) -> tuple[JobRecord, bool]:
    def start(given: Idempotency | None) -> JobRecord:
        return runner.submit_backup(backups.prepare_backup(world.services, "shop"),
                                    idempotency=given)

    return runner.submit_once(idem, start)


def key(value: str = "deploy-42", body: dict[str, Any] | None = None) -> Idempotency:
    found = idempotency_for(value, "backup", "instances/shop/backups", body or {})
    assert found is not None
    return found


# --- idempotency ------------------------------------------------------------------


def test_a_retry_with_the_key_returns_the_same_job_and_dumps_once(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    first, replayed = backup_once(world, runner, key())
    assert not replayed
    done = runner.wait(first.id, timeout=10)
    assert done.status == JobStatus.SUCCEEDED
    again, replayed = backup_once(world, runner, key())
    assert replayed and again.id == first.id and again.status == JobStatus.SUCCEEDED
    assert dumps(world) == 1
    assert len(world.catalog.list_snapshots(instance="shop")) == 1
    assert [j.id for j in world.catalog.list_jobs()] == [first.id]


def test_a_retry_while_the_job_runs_returns_it_and_starts_nothing(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    world.docker.stall.add(DUMP)
    first, _ = backup_once(world, runner, key())
    wait_until(lambda: dumps(world) == 1, what="the dump to start")
    # Without the key this would be refused 409 (a backup of shop is running).
    again, replayed = backup_once(world, runner, key())
    assert replayed and again.id == first.id
    assert again.status == JobStatus.RUNNING
    assert dumps(world) == 1
    runner.cancel_job(first.id)
    assert runner.wait(first.id, timeout=10).ended


def test_the_key_with_another_request_is_refused_naming_it(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    first, _ = backup_once(world, runner, key())
    runner.wait(first.id, timeout=10)
    with pytest.raises(IdempotencyKeyReused, match=f"'deploy-42'.*{first.id}"):
        backup_once(world, runner, key(body={"target": "offsite"}))
    assert dumps(world) == 1


def test_concurrent_retries_with_one_key_make_one_job(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    barrier = threading.Barrier(8)

    def retry(_: int) -> tuple[JobRecord, bool]:
        barrier.wait()
        return backup_once(world, runner, key())

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(retry, range(8)))
    assert len({job.id for job, _ in answers}) == 1
    assert sorted(replayed for _, replayed in answers) == [False] + [True] * 7
    runner.wait(answers[0][0].id, timeout=10)
    assert len(world.catalog.list_jobs()) == 1
    assert dumps(world) == 1


def test_a_key_another_process_inserted_first_returns_its_job(
        world: FakeWorld, runner: JobRunner) -> None:
    """The catalog's unique key decides a race between two daemons' runners: the
    loser's insert is refused and it answers the winner's job."""
    add_db(world, "shop")
    other = JobRunner(world.services, workers=1)
    try:
        winner: list[JobRecord] = []

        def start(given: Idempotency | None) -> JobRecord:
            # The other process inserts between this one's look-up and its insert.
            winner.append(other.submit("backup", lambda: {"by": "other"}, instance="shop",
                                       idempotency=given))
            return runner.submit("backup", lambda: {"by": "this"}, instance="shop",
                                 idempotency=given)

        job, replayed = runner.submit_once(key(), start)
        assert replayed and job.id == winner[0].id
        assert other.wait(job.id, timeout=10).result == {"by": "other"}
        assert [j.id for j in world.catalog.list_jobs()] == [job.id]
    finally:
        other.shutdown(grace=5)


@pytest.mark.parametrize("value", ["", " ", "x" * 256, "naïve", "tab\there", "line\nbreak"])
def test_a_key_out_of_bounds_is_refused(value: str) -> None:
    with pytest.raises(InvalidIdempotencyKey, match="1 to 255 printable ASCII"):
        idempotency_for(value, "backup", "instances/shop/backups", {})


def test_keys_at_the_bounds_are_taken() -> None:
    assert idempotency_for("k", "backup", "t", {}) is not None
    assert idempotency_for("~" * 255, "backup", "t", {}) is not None
    assert idempotency_for(None, "backup", "t", {}) is None


def test_the_fingerprint_is_of_kind_target_and_canonical_body() -> None:
    assert fingerprint("backup", "a", {"x": 1, "y": [1, 2]}) == \
        fingerprint("backup", "a", {"y": [1, 2], "x": 1})
    assert fingerprint("backup", "a", None) == fingerprint("backup", "a", {})
    assert len({fingerprint("backup", "a", {}), fingerprint("restore", "a", {}),
                fingerprint("backup", "b", {}), fingerprint("backup", "a", {"x": 1})}) == 4


# --- phases and progress ----------------------------------------------------------


def record_writes(world: FakeWorld) -> list[JobRecord]:
    """Every job the catalog is asked to save, in order."""
    seen: list[JobRecord] = []
    original = world.catalog.save_job

    def save_job(j: JobRecord) -> None:
        original(j)
        seen.append(j)

    world.catalog.save_job = save_job  # type: ignore[method-assign]
    return seen


def changes(writes: list[JobRecord], job_id: str) -> list[tuple[str, str | None]]:
    """(status, phase) of each write of ``job_id`` that changed either."""
    mine = [(str(j.status), j.phase) for j in writes if j.id == job_id]
    return [w for i, w in enumerate(mine) if i == 0 or mine[i - 1] != w]


def test_a_backup_records_its_phases_in_order_and_its_bytes(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop", content=b"x" * 300_000)
    previous = take_backup(world, "shop")
    writes = record_writes(world)
    job = runner.submit_backup(backups.prepare_backup(world.services, "shop"))
    assert (job.phase, job.bytes_total) == ("queued", previous.size_bytes)
    done = runner.wait(job.id, timeout=10)
    assert changes(writes, job.id) == [("running", "queued"), ("running", "dumping"),
                                       ("running", "uploading"), ("succeeded", "uploading")]
    snapshot = world.catalog.get_snapshot(done.snapshot_id or "")
    assert snapshot is not None
    # The status write kept the count the progress callback made.
    assert done.bytes_done == snapshot.size_bytes
    assert done.rate() is not None and done.rate() > 0  # type: ignore[operator]
    assert done.to_json()["eta_seconds"] is None  # ended


def test_a_restore_records_creating_then_ready_then_loading(
        world: FakeWorld, runner: JobRunner) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    writes = record_writes(world)
    job = runner.submit_restore(restores.prepare_restore(world.services, snapshot.id, "copy"))
    assert job.bytes_total == snapshot.size_bytes
    done = runner.wait(job.id, timeout=10)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert changes(writes, job.id) == [("running", "queued"), ("running", "creating"),
                               ("running", "waiting-for-ready"), ("running", "loading"),
                               ("succeeded", "loading")]
    assert done.bytes_done == snapshot.size_bytes


class CountingCatalog(InMemoryCatalog):
    def __init__(self) -> None:
        super().__init__()
        self.saves: list[JobRecord] = []

    def save_job(self, j: JobRecord) -> None:
        super().save_job(j)
        self.saves.append(j)


def test_bytes_are_written_at_most_once_an_interval_and_phases_at_once() -> None:
    catalog, watchers, now = CountingCatalog(), JobWatchers(), [0.0]
    record = JobRecord(id="j", kind="backup", status=JobStatus.RUNNING, created_at=T0)
    catalog.add_job(record)
    heard: list[str] = []
    watchers.subscribe("j", lambda: heard.append("j"))
    live = LiveJob(record, catalog, watchers, interval=1.0, clock=lambda: now[0])
    live.phase(Phase.DUMPING)
    for chunk in range(1, 101):  # 100 chunks within 0.99 s: no write
        now[0] = chunk * 0.0099
        live.progress(chunk * 1000, now[0])
    assert [(s.phase, s.bytes_done) for s in catalog.saves] == [("dumping", None)]
    now[0] = 1.0
    live.progress(101_000, 1.0)
    assert [s.bytes_done for s in catalog.saves] == [None, 101_000]
    live.progress(102_000, 1.001)
    live.phase(Phase.UPLOADING)  # written at once, with the count not yet written
    live.phase(Phase.UPLOADING)  # no change: no write
    assert [(s.phase, s.bytes_done) for s in catalog.saves][-1] == ("uploading", 102_000)
    assert len(catalog.saves) == 3 and len(heard) == 3


def test_progress_that_cannot_be_written_does_not_fail_the_job() -> None:
    catalog = InMemoryCatalog()
    record = JobRecord(id="j", kind="backup", status=JobStatus.RUNNING, created_at=T0)
    catalog.add_job(record)
    live = LiveJob(record, catalog, JobWatchers(), interval=0.0)
    catalog.down = True
    live.phase(Phase.DUMPING)
    live.progress(10, 1.0)
    catalog.down = False
    live.store(replace(record, status=JobStatus.SUCCEEDED, finished_at=utcnow()))
    stored = catalog.get_job("j")
    assert stored is not None
    assert (stored.status, stored.phase, stored.bytes_done) == (JobStatus.SUCCEEDED,
                                                                "dumping", 10)


# --- waiting ----------------------------------------------------------------------


def test_wait_returns_the_final_state_once_the_job_ends(
        world: FakeWorld, runner: JobRunner) -> None:
    release = threading.Event()
    job = runner.submit("test", lambda: {"ok": release.wait(10)})
    threading.Timer(0.2, release.set).start()
    done = runner.wait(job.id, timeout=30)
    assert (done.status, done.result) == (JobStatus.SUCCEEDED, {"ok": True})


def test_wait_returns_the_job_as_it_stands_at_the_timeout(
        world: FakeWorld, runner: JobRunner) -> None:
    release = threading.Event()
    job = runner.submit("test", lambda: {"ok": release.wait(10)})
    wait_until(lambda: runner.get(job.id).status == JobStatus.RUNNING)
    assert runner.wait(job.id, timeout=0.1).status == JobStatus.RUNNING
    release.set()


# --- rate and ETA -----------------------------------------------------------------


@given(done=st.integers(0, 1 << 50), seconds=st.floats(0.001, 1e6),
       total=st.integers(0, 1 << 50))
def test_rate_and_eta_agree(done: int, seconds: float, total: int) -> None:
    rate = transfer_rate(done, T0, T0 + timedelta(seconds=seconds))
    assert rate is not None and rate >= 0
    eta = eta_seconds(done, total, rate)
    if done > total or rate == 0:
        assert eta is None
    else:
        assert eta is not None and eta >= 0
        # bytes left at that rate take that long
        assert abs(eta * rate - (total - done)) <= 1e-6 * max(total, 1)


def test_no_rate_before_data_flows_and_no_eta_without_a_total() -> None:
    assert transfer_rate(None, None, None) is None
    assert transfer_rate(100, T0, T0) is None  # no time has passed
    assert eta_seconds(100, None, 10.0) is None
    assert eta_seconds(100, 200, None) is None
    assert eta_seconds(100, 200, 10.0) == 10.0
