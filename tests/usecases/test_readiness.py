"""Readiness asks the daemon's discovery and scheduler too, not only the catalog
and Docker: ``/readyz`` is 503 with the reason while discovery has not listed
the containers yet, has stopped, or has been failing for longer than its
back-off, and while the scheduler is not running."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from backup.errors import DockerUnavailable
from service.entrypoints.api import create_app
from service.entrypoints.daemon.discovery import Discovery
from service.entrypoints.daemon.scheduler import Scheduler
from service.status import DaemonStatus, LoopStatus
from service.usecases import health
from service.usecases.instances import Instance
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.support import add_db, wait_until


@pytest.fixture
def jobs(world: FakeWorld) -> Iterator[JobRunner]:
    runner = JobRunner(world.services, 1)
    yield runner
    runner.shutdown(grace=5, cancel_wait=5)


class Breakable:
    """The scheduler's sync as discovery calls it, made to fail on demand."""

    def __init__(self) -> None:
        self.broken = threading.Event()

    def __call__(self, instances: list[Instance], catch_up: bool) -> None:
        if self.broken.is_set():
            raise RuntimeError("sync failed: the scheduler's store is gone")


@pytest.fixture
def sync() -> Breakable:
    return Breakable()


@pytest.fixture
def parts(world: FakeWorld, jobs: JobRunner,
          sync: Breakable) -> Iterator[tuple[Discovery, Scheduler]]:
    """Discovery and the scheduler, registered for readiness as ``holdfast serve`` does."""
    discovery = Discovery(world.services, sync, max_backoff=0.05)
    scheduler = Scheduler(world.services, jobs)
    world.services.status.watch("discovery", discovery.health)
    world.services.status.watch("scheduler", scheduler.health)
    yield discovery, scheduler
    if discovery._thread.ident is not None:
        discovery.stop()
    scheduler.shutdown()


def checks(world: FakeWorld) -> dict[str, str]:
    return health.readiness(world.services).checks


def test_ready_only_once_discovery_has_listed_and_the_scheduler_runs(
        world: FakeWorld, parts: tuple[Discovery, Scheduler]) -> None:
    discovery, scheduler = parts
    add_db(world, "shop-db")
    assert checks(world) == {"catalog": "ok", "docker": "ok",
                             "discovery": "discovery is not running",
                             "scheduler": "the scheduler is not running"}
    scheduler.start()
    discovery.start()
    wait_until(lambda: health.readiness(world.services).ready, what="ready")
    assert checks(world) == {"catalog": "ok", "docker": "ok", "discovery": "ok",
                             "scheduler": "ok"}

    scheduler.shutdown()
    assert checks(world)["scheduler"] == "the scheduler is not running"
    discovery.stop()
    assert checks(world)["discovery"] == "discovery is not running; its loop stopped"


def test_discovery_failing_for_longer_than_its_back_off_is_not_ready(
        world: FakeWorld, parts: tuple[Discovery, Scheduler], sync: Breakable) -> None:
    discovery, scheduler = parts
    scheduler.start()
    discovery.start()
    wait_until(lambda: health.readiness(world.services).ready, what="ready")
    sync.broken.set()
    world.docker.events[0].break_stream()  # discovery re-lists, and now fails every time
    wait_until(lambda: checks(world)["discovery"].endswith("the scheduler's store is gone"),
               what="discovery reported failing")
    assert checks(world)["discovery"].startswith("discovery has been failing for ")
    assert (checks(world)["docker"], checks(world)["catalog"]) == ("ok", "ok")

    sync.broken.clear()  # it recovers at its next retry
    wait_until(lambda: checks(world)["discovery"] == "ok", what="discovery recovered")


def test_readyz_answers_503_with_the_reason(
        world: FakeWorld, jobs: JobRunner, parts: tuple[Discovery, Scheduler]) -> None:
    discovery, scheduler = parts
    client = api_client(create_app(world.services, jobs))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["discovery"] == "discovery is not running"
    assert response.json()["checks"]["scheduler"] == "the scheduler is not running"
    scheduler.start()
    discovery.start()
    wait_until(lambda: client.get("/readyz").status_code == 200, what="/readyz 200")
    scheduler.shutdown()
    response = client.get("/readyz")
    assert (response.status_code, response.json()["ready"]) == (503, False)
    assert response.json()["checks"]["scheduler"] == "the scheduler is not running"


def test_without_a_daemon_only_the_catalog_and_docker_are_checked(world: FakeWorld) -> None:
    assert checks(world) == {"catalog": "ok", "docker": "ok"}


# --- LoopStatus, on a clock the test moves ----------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_is_not_ready_before_its_first_pass() -> None:
    status = LoopStatus("discovery", grace=30, clock=Clock())
    assert status.problem() == "discovery has not completed its first pass yet"
    status.failing(str(DockerUnavailable("cannot reach the Docker engine")))
    assert status.problem() == ("discovery has not completed its first pass yet (last error: "
                                "cannot reach the Docker engine)")
    status.ok()
    assert status.problem() is None


def test_a_loop_failing_within_its_back_off_is_still_ready_and_past_it_is_not() -> None:
    clock = Clock()
    status = LoopStatus("discovery", grace=30, clock=clock)
    status.ok()
    status.failing("the Docker event stream broke:\nconnection reset")
    clock.now += 30
    assert status.problem() is None  # one retry at the longest back-off is not yet a failure
    status.failing("the Docker event stream broke: connection reset")
    clock.now += 1
    assert status.problem() == ("discovery has been failing for 31s: the Docker event stream "
                                "broke: connection reset")
    status.ok()
    assert status.problem() is None


def test_a_probe_that_raises_is_reported_not_raised() -> None:
    status = DaemonStatus()

    def broken() -> str | None:
        raise RuntimeError("no idea")

    status.watch("discovery", broken)
    status.watch("scheduler", lambda: None)
    assert status.checks() == {"discovery": "discovery cannot say how it is: no idea",
                               "scheduler": "ok"}
