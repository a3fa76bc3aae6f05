"""Swap-in rollback beside other runs, on the fakes: a replace holds its instance's gate
(no backup of the instance replaced runs while it does, and it waits for none), a cancel
before or during the swap puts everything back, and start-up recovery removes the staging
containers (and their volumes) of replaces that did not finish, and nothing else."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace as replaced
from typing import Any

import pytest

from backup.cancel import CancelSignal
from backup.errors import Cancelled, Conflict
from backup.phases import Phase
from backup.ports import PublishedPort
from backup.types import Snapshot, SnapshotStatus
from restore.swap import (
    STAGING_FOR_LABEL,
    STAGING_JOB_LABEL,
    STAGING_RUNNER_LABEL,
    RestartPolicy,
    StagingMark,
    is_set_aside,
)
from service.records import JobRecord, JobStatus
from service.runs import AlreadyRunning, current_runner
from service.usecases import backups, instances, recovery, replace, restores
from service.usecases.jobs import JobRunner
from service.usecases.scheduled import start_scheduled_backup
from tests.fakes.docker import DATA_PATH, FakeContainer, FakeVolume
from tests.fakes.services import FakeWorld
from tests.usecases.support import (
    DEAD_RUNNER,
    OTHER_HOST_RUNNER,
    T0,
    add_db,
    make_snapshot,
    take_backup,
)
from tests.usecases.test_replace import CHANGED, LAN, SNAPSHOT_DATA, _state

AT = "20260101T000000Z"


@pytest.fixture
def prod(world: FakeWorld) -> FakeContainer:
    """``prod-db`` as in test_replace: on a user network, publishing host port
    15432, restarting unless stopped."""
    world.docker.networks.add(LAN)
    container = add_db(world, "prod-db", content=SNAPSHOT_DATA, volume="prod-db-data")
    container.networks, container.aliases = (LAN,), {LAN: ("db",)}
    container.published = (PublishedPort(container_port=7777, host_port=15432, host_ip=""),)
    container.restart = RestartPolicy("unless-stopped")
    world.docker.stop_container(container.id)
    world.docker.start(container.id)  # binds the port
    return container


@pytest.fixture
def snapshot(world: FakeWorld, prod: FakeContainer) -> Snapshot:
    snap = take_backup(world, "prod-db")
    world.docker.volumes["prod-db-data"].content = CHANGED
    return snap


@pytest.fixture
def runner(world: FakeWorld) -> Iterator[JobRunner]:
    jobs = JobRunner(world.services, workers=2)
    yield jobs
    jobs.shutdown(grace=5, cancel_wait=5)


class Pause:
    """Holds the first call of ``world.docker.<method>`` whose arguments ``match``
    until :meth:`go`; :attr:`reached` is set once it is held."""

    def __init__(self, world: FakeWorld, method: str, match: Callable[..., bool]) -> None:
        self.reached, self._go = threading.Event(), threading.Event()
        original = getattr(world.docker, method)

        def held(*args: Any, **kwargs: Any) -> Any:
            if not self.reached.is_set() and match(*args):
                self.reached.set()
                self._go.wait(10)
            return original(*args, **kwargs)
        setattr(world.docker, method, held)

    def wait(self) -> None:
        assert self.reached.wait(10), "the run never got there"

    def go(self) -> None:
        self._go.set()


def _in_load(world: FakeWorld) -> Pause:
    """Pause a replace as its staging container is created (the load's start)."""
    return Pause(world, "create_container", lambda spec: "-restoring-" in spec.name)


def _mid_swap(world: FakeWorld, old: FakeContainer) -> Pause:
    """Pause a replace once the old container is stopped, before it is renamed aside."""
    return Pause(world, "rename_container",
                 lambda container_id, name: container_id == old.id and is_set_aside(name))


def _replace_job(world: FakeWorld, runner: JobRunner, snapshot: Snapshot,
                 name: str = "prod-db") -> JobRecord:
    return runner.submit_restore(restores.prepare_restore(world.services, snapshot.id, None,
                                                          replace=name))


# --- 1. the instance's gate -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["load", "swap"])
def test_no_backup_of_the_instance_starts_while_a_replace_job_runs(
        world: FakeWorld, runner: JobRunner, prod: FakeContainer, snapshot: Snapshot,
        where: str, caplog: pytest.LogCaptureFixture) -> None:
    pause = _in_load(world) if where == "load" else _mid_swap(world, prod)
    job = _replace_job(world, runner, snapshot)
    pause.wait()
    try:
        with pytest.raises(AlreadyRunning, match=f"a replace of prod-db is already running "
                                                 rf"\({job.id}\); wait for it") as refused:
            runner.submit_backup(backups.prepare_backup(world.services, "prod-db"))
        assert refused.value.holder == job.id
        [found] = [i for i in instances.live_instances(world.services) if i.name == "prod-db"]
        # as the scheduler holds it: with a schedule, whose slot the fire claims
        instance = replaced(found, policy=replaced(found.policy, schedule="@hourly"))
        with caplog.at_level(logging.INFO, logger="service.usecases.scheduled"):
            assert start_scheduled_backup(world.services, runner, instance) is None
        assert f"scheduled backup of prod-db skipped: a replace of prod-db is already " \
               f"running ({job.id})" in caplog.text
    finally:
        pause.go()
    done = runner.wait(job.id, timeout=10)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert [j.kind for j in world.catalog.list_jobs()] == ["restore"]
    assert world.services.gate.holder("prod-db") is None  # released: the next backup runs
    backup = runner.wait(runner.submit_backup(
        backups.prepare_backup(world.services, "prod-db")).id, timeout=10)
    assert backup.status == JobStatus.SUCCEEDED, backup.error


def test_a_replace_while_a_backup_of_the_instance_runs_is_refused_and_changes_nothing(
        world: FakeWorld, runner: JobRunner, prod: FakeContainer, snapshot: Snapshot) -> None:
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    world.services.gate.claim("prod-db", "job-backing-up")
    before = _state(world)
    with pytest.raises(AlreadyRunning, match=r"a backup of prod-db is already running "
                                             r"\(job-backing-up\)") as refused:
        runner.submit_restore(request)
    assert refused.value.holder == "job-backing-up"
    assert world.catalog.list_jobs() == [] and _state(world) == before
    assert world.services.gate.holder("prod-db") == "job-backing-up"


def test_a_replace_while_another_process_backs_the_instance_up_is_refused(
        world: FakeWorld, runner: JobRunner, prod: FakeContainer, snapshot: Snapshot) -> None:
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    other = make_snapshot(world, "prod-db", status=SnapshotStatus.RUNNING,
                          runner=OTHER_HOST_RUNNER)
    with pytest.raises(AlreadyRunning, match=f"already running \\(snapshot {other.id}\\)"):
        runner.submit_restore(request)
    assert world.catalog.list_jobs() == []
    assert world.services.gate.holder("prod-db") is None


def test_two_replaces_of_one_container_never_run_at_once(
        world: FakeWorld, runner: JobRunner, prod: FakeContainer, snapshot: Snapshot) -> None:
    # Both pass the checks before either has a staging container: the gate decides.
    first = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    second = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    pause = _in_load(world)
    job = runner.submit_restore(first)
    pause.wait()
    try:
        with pytest.raises(AlreadyRunning, match=f"a replace of prod-db .*{job.id}"):
            runner.submit_restore(second)
    finally:
        pause.go()
    assert runner.wait(job.id, timeout=10).status == JobStatus.SUCCEEDED


def test_the_gate_is_the_instance_of_the_container_replaced(
        world: FakeWorld, runner: JobRunner) -> None:
    """``db-1`` is instance ``orders`` (its holdfast.name); the snapshot is another's."""
    add_db(world, "db-1", labels={"holdfast.name": "orders"})
    add_db(world, "shop")
    snap = take_backup(world, "shop")
    pause = _in_load(world)
    job = runner.submit_restore(restores.prepare_restore(world.services, snap.id, None,
                                                         replace="db-1"))
    pause.wait()
    try:
        assert world.services.gate.running() == {"orders": job.id}
        with pytest.raises(AlreadyRunning, match="a replace of orders"):
            runner.submit_backup(backups.prepare_backup(world.services, "orders"))
        runner.wait(runner.submit_backup(backups.prepare_backup(world.services, "shop")).id,
                    timeout=10)  # the snapshot's source is not held
    finally:
        pause.go()
    assert runner.wait(job.id, timeout=10).status == JobStatus.SUCCEEDED
    assert world.services.gate.running() == {}


def test_a_queued_replace_cancelled_releases_the_instance_replaced(
        world: FakeWorld) -> None:
    add_db(world, "db-1", labels={"holdfast.name": "orders"})
    add_db(world, "shop")
    snap = take_backup(world, "shop")
    one = JobRunner(world.services, workers=1)
    try:
        pause = Pause(world, "create_container", lambda spec: spec.name == "copy-1")
        busy = one.submit_restore(restores.prepare_restore(world.services, snap.id, "copy-1"))
        pause.wait()
        queued = one.submit_restore(restores.prepare_restore(world.services, snap.id, None,
                                                             replace="db-1"))
        assert world.services.gate.holder("orders") == queued.id
        assert one.cancel_job(queued.id)
        assert world.services.gate.holder("orders") is None
        pause.go()
        assert one.wait(busy.id, timeout=10).status == JobStatus.SUCCEEDED
    finally:
        one.shutdown(grace=5)
    record = world.catalog.get_job(queued.id)
    assert record is not None and record.status == JobStatus.CANCELLED


def test_a_replace_run_in_process_holds_the_gate_through_the_swap(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    """As ``holdfast restore --replace`` runs it: no job, the use case claims the gate."""
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    seen: list[str | None] = []
    rename = world.docker.rename_container

    def look(container_id: str, name: str) -> None:
        seen.append(world.services.gate.holder("prod-db"))
        rename(container_id, name)
    world.docker.rename_container = look  # type: ignore[method-assign,assignment]
    restores.execute_restore(world.services, request)
    assert seen and all(holder is not None and holder.startswith("restore-")
                        for holder in seen)
    assert world.services.gate.holder("prod-db") is None


def test_a_replace_run_in_process_while_a_backup_runs_is_refused_before_anything(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    world.services.gate.claim("prod-db", "snap-being-taken")
    before = _state(world)
    with pytest.raises(AlreadyRunning, match="a backup of prod-db is already running"):
        restores.execute_restore(world.services, request)
    assert _state(world) == before


def test_undo_holds_the_gate_and_waits_for_no_backup(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    restores.execute_restore(world.services, restores.prepare_restore(
        world.services, snapshot.id, None, replace="prod-db"))
    world.services.gate.claim("prod-db", "job-backing-up")
    before = _state(world)
    with pytest.raises(AlreadyRunning, match=r"backup of prod-db .*\(job-backing-up\)"):
        replace.undo_replace(world.services, "prod-db")
    assert _state(world) == before
    world.services.gate.release("prod-db", "job-backing-up")
    seen: list[str | None] = []
    start = world.docker.start

    def look(container_id: str) -> object:
        seen.append(world.services.gate.holder("prod-db"))
        return start(container_id)
    world.docker.start = look  # type: ignore[method-assign,assignment]
    replace.undo_replace(world.services, "prod-db")
    assert seen and all(h is not None and h.startswith("undo-replace-") for h in seen)
    assert world.services.gate.holder("prod-db") is None and prod.running


# --- 2. cancellation ------------------------------------------------------------------------


def test_a_cancel_as_the_swap_begins_leaves_the_old_container_untouched(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    before = _state(world)
    signal = CancelSignal()
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")

    def phase(now: Phase) -> None:
        if now == Phase.SWAPPING:  # the load is done: the next thing is the swap
            signal.request()
    with pytest.raises(Cancelled, match=r"replace of prod-db cancelled before .*; the old "
                                        "container was not touched"):
        restores.execute_restore(world.services, request, cancelled=signal, phase=phase)
    assert _state(world) == before  # staging container and its volumes gone
    assert world.docker.by_name("prod-db").id == prod.id and prod.running
    assert world.docker.data_of("prod-db") == CHANGED
    assert world.services.gate.holder("prod-db") is None


def _cancel_after(world: FakeWorld, signal: CancelSignal, method: str,
                  match: Callable[..., bool]) -> None:
    original = getattr(world.docker, method)

    def then_cancel(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if match(*args):
            signal.request()
        return result
    setattr(world.docker, method, then_cancel)


def _the_new_one(world: FakeWorld, old: FakeContainer) -> Callable[..., bool]:
    return lambda cid, *_: cid != old.id and world.docker.containers[cid].name == "prod-db"


MID_SWAP: dict[str, tuple[str, Callable[[FakeWorld, FakeContainer], Callable[..., bool]]]] = {
    "the old one stopped": ("stop_container", lambda _, old: lambda cid, *_: cid == old.id),
    "its restart policy cleared": ("set_restart_policy",
                                   lambda _, old: lambda cid, *_: cid == old.id),
    "renamed aside": ("rename_container", lambda _, old: lambda cid, *_: cid == old.id),
    "the new one created": ("create_container",
                            lambda _, old: lambda spec: spec.name == "prod-db"),
    "the new one's restart policy set": ("set_restart_policy", _the_new_one),
    "the new one started": ("start", _the_new_one),
}


@pytest.mark.parametrize("after", sorted(MID_SWAP))
def test_a_cancel_during_the_swap_puts_everything_back(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot, after: str) -> None:
    before = _state(world)
    signal = CancelSignal()
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    method, matcher = MID_SWAP[after]
    _cancel_after(world, signal, method, matcher(world, prod))
    with pytest.raises(Cancelled, match=r"replace of prod-db cancelled before .*; everything "
                                        "was put back"):
        restores.execute_restore(world.services, request, cancelled=signal)
    assert _state(world) == before
    assert world.docker.by_name("prod-db").id == prod.id and prod.running
    assert world.docker.published_host_ports() == {("", 15432)}


def test_a_replace_job_cancelled_mid_swap_is_cancelled_with_the_old_container_back(
        world: FakeWorld, runner: JobRunner, prod: FakeContainer, snapshot: Snapshot) -> None:
    before = _state(world)
    pause = _mid_swap(world, prod)  # the old container is stopped by now
    job = _replace_job(world, runner, snapshot)
    pause.wait()
    assert not prod.running
    assert runner.cancel_job(job.id)
    pause.go()
    done = runner.wait(job.id, timeout=10)
    assert done.status == JobStatus.CANCELLED, done.error
    assert _state(world) == before
    assert world.docker.by_name("prod-db").id == prod.id and prod.running
    assert world.services.gate.holder("prod-db") is None


# --- 3. leftovers after a crash ------------------------------------------------------------------


def _leftover(world: FakeWorld, *, labels: dict[str, str] | None = None,
              name: str = f"prod-db-restoring-{AT}", volume: str = f"prod-db-{AT}-data",
              **mark: str | None) -> FakeContainer:
    """A staging container as a crashed replace leaves it: running, holding a
    half-loaded volume, both labelled as a replace labels them (``mark``:
    target, job, runner) unless ``labels`` say otherwise."""
    chosen = {"target": "prod-db", "job": None, "runner": DEAD_RUNNER, **mark}
    labels = StagingMark(**chosen).labels() if labels is None else labels  # type: ignore[arg-type]
    world.docker.volumes[volume] = FakeVolume(volume, labels=dict(labels), content=b"half")
    container = world.docker.add_container(name, labels=labels)
    container.volumes = {volume: DATA_PATH}
    return container


def _job(world: FakeWorld, job_id: str, status: JobStatus = JobStatus.RUNNING) -> None:
    world.catalog.add_job(JobRecord(id=job_id, kind="restore", status=status, created_at=T0,
                                    instance="prod-db"))


def test_a_replace_labels_its_staging_container_and_volumes_and_the_new_one_not(
        world: FakeWorld, runner: JobRunner, prod: FakeContainer, snapshot: Snapshot) -> None:
    pause = Pause(world, "stop_container",
                  lambda cid, *_: world.docker.containers[cid].name.startswith(
                      "prod-db-restoring-"))
    job = _replace_job(world, runner, snapshot)
    pause.wait()
    try:
        [staging] = [c for c in world.docker.containers.values() if "-restoring-" in c.name]
        mark = {STAGING_FOR_LABEL: "prod-db", STAGING_JOB_LABEL: job.id,
                STAGING_RUNNER_LABEL: current_runner()}
        assert staging.labels.items() >= mark.items()
        [volume] = staging.volumes
        assert world.docker.volumes[volume].labels.items() >= mark.items()
    finally:
        pause.go()
    assert runner.wait(job.id, timeout=10).status == JobStatus.SUCCEEDED
    new = world.docker.by_name("prod-db")
    assert not set(new.labels) & set(mark)
    assert new.volumes == {volume: DATA_PATH}  # the volume is the new one's


def test_recovery_removes_the_staging_container_of_a_job_it_fails_and_its_volume(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot,
        caplog: pytest.LogCaptureFixture) -> None:
    _job(world, "job-crashed")
    _leftover(world, job="job-crashed")
    with pytest.raises(Conflict, match="a replace of prod-db is in progress"):
        restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    before = sorted(world.docker.volumes)
    with caplog.at_level(logging.WARNING, logger="service.usecases.replace"):
        report = recovery.recover(world.services)
    assert report.jobs == ["job-crashed"] and report.staging == [f"prod-db-restoring-{AT}"]
    assert f"removed staging container prod-db-restoring-{AT} of a replace of prod-db that " \
           f"did not finish (job job-crashed failed), and its volume(s) prod-db-{AT}-data" \
           in caplog.text
    assert sorted(c.name for c in world.docker.containers.values()) == ["prod-db"]
    assert sorted(world.docker.volumes) == sorted(set(before) - {f"prod-db-{AT}-data"})
    assert prod.running and world.docker.data_of("prod-db") == CHANGED
    # and the next replace is not refused
    restores.execute_restore(world.services, restores.prepare_restore(
        world.services, snapshot.id, None, replace="prod-db"))
    assert world.docker.data_of("prod-db") == SNAPSHOT_DATA


def test_recovery_removes_the_leftover_of_a_dead_cli_process(
        world: FakeWorld, prod: FakeContainer) -> None:
    _leftover(world, runner=DEAD_RUNNER)
    assert recovery.recover(world.services).staging == [f"prod-db-restoring-{AT}"]
    assert f"prod-db-{AT}-data" not in world.docker.volumes


KEPT = {
    "no staging labels": {"labels": {"holdfast.restored-from": "x"}},
    "labelled for another container": {"target": "other-db"},
    "a job this catalog does not know": {"job": "job-of-another-holdfast"},
    "a job of a live process": {"job": "job-crashed", "runner": current_runner()},
    "a live CLI process": {"runner": current_runner()},
    "a process on another host": {"runner": OTHER_HOST_RUNNER},
    "no job or process named": {"labels": {STAGING_FOR_LABEL: "prod-db"}},
    "another scope's": {"labels": {**StagingMark("prod-db", "job-crashed", DEAD_RUNNER)
                                   .labels(), "holdfast.scope": "elsewhere"}},
}


@pytest.mark.parametrize("case", sorted(KEPT))
def test_recovery_keeps_a_staging_container_it_cannot_tell_is_a_dead_replaces(
        world: FakeWorld, prod: FakeContainer, case: str) -> None:
    _job(world, "job-crashed")
    kept = _leftover(world, **KEPT[case])  # type: ignore[arg-type]
    report = recovery.recover(world.services)
    assert report.staging == []
    assert world.docker.by_name(kept.name).id == kept.id
    assert f"prod-db-{AT}-data" in world.docker.volumes


def test_recovery_never_removes_a_container_a_swap_set_aside(
        world: FakeWorld, prod: FakeContainer) -> None:
    """Even one carrying staging labels: only ``-restoring-`` names are staging."""
    _job(world, "job-crashed")
    mark = StagingMark("prod-db", "job-crashed", DEAD_RUNNER).labels()
    names = [f"prod-db-replaced-{AT}", "prod-db-undone-20260102T000000Z"]
    for name in names:
        world.docker.add_container(name, labels=mark, running=False)
    assert recovery.recover(world.services).staging == []
    assert set(names) <= {c.name for c in world.docker.containers.values()}


def test_recovery_keeps_a_volume_the_swap_gave_to_the_new_container(
        world: FakeWorld, prod: FakeContainer) -> None:
    """The crash came after the swap, before the staging container was removed."""
    _job(world, "job-crashed")
    staging = _leftover(world, job="job-crashed")
    staging.running = False
    prod.volumes = {f"prod-db-{AT}-data": DATA_PATH}  # as the new prod-db mounts it
    assert recovery.recover(world.services).staging == [staging.name]
    assert f"prod-db-{AT}-data" in world.docker.volumes
    assert world.docker.by_name("prod-db").id == prod.id


def test_recovery_keeps_a_volume_another_replace_made(
        world: FakeWorld, prod: FakeContainer) -> None:
    _job(world, "job-crashed")
    staging = _leftover(world, job="job-crashed")
    other = StagingMark("prod-db", "job-other", DEAD_RUNNER).labels()
    world.docker.volumes["shared-vol"] = FakeVolume("shared-vol", labels=other)
    staging.volumes["shared-vol"] = "/other"
    recovery.recover(world.services)
    assert "shared-vol" in world.docker.volumes
    assert f"prod-db-{AT}-data" not in world.docker.volumes


# --- 4. the refusal while a staging container exists --------------------------------------------


def test_a_replace_refused_by_a_staging_container_says_what_to_do(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    _job(world, "job-live")
    _leftover(world, job="job-live", runner=current_runner())
    with pytest.raises(Conflict) as refused:
        restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    assert str(refused.value) == (
        f"a replace of prod-db is in progress (container prod-db-restoring-{AT}); wait for "
        f"its job to end, or, if none runs, docker rm -fv prod-db-restoring-{AT}")
    assert recovery.recover(world.services).staging == []  # a live run's: kept
