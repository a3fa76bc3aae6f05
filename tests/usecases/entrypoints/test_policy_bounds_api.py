"""``PUT /v1/instances/{name}/policy`` with a schedule out of bounds: 400 with
the allowed range, nothing stored, the scheduler untouched; and the instance
listing shows a bad stored schedule as that instance's error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.entrypoints.api import create_app
from service.entrypoints.daemon.discovery import Discovery
from service.entrypoints.daemon.scheduler import Scheduler
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.entrypoints.helpers import add_db, wait_until


@pytest.fixture
def daemon(world: FakeWorld, jobs: JobRunner) -> Iterator[tuple[TestClient, Scheduler]]:
    """The API wired to a running scheduler and discovery, as ``holdfast serve`` does,
    started over the containers the test adds first."""
    scheduler = Scheduler(world.services, jobs)
    discovery = Discovery(world.services, lambda found, catch_up: scheduler.sync(
        found, catch_up=catch_up), max_backoff=0.05)
    app = create_app(world.services, jobs, next_run=lambda name, _: scheduler.next_run(name),
                     refresh=discovery.refresh)
    add_db(world, "a-old", labels={"holdfast.schedule": "@every 1h"})
    add_db(world, "b-new", labels={"holdfast.schedule": "@every 1h"})
    scheduler.start()
    discovery.start()
    wait_until(lambda: scheduler.next_run("b-new") is not None)
    yield api_client(app, raise_server_exceptions=False), scheduler
    discovery.stop()
    scheduler.shutdown()


@pytest.mark.parametrize(("schedule", "fragment"), [
    ("@every 999999999d", "use 1s to 366d"),
    ("@every 99999999999999999999999d", "use 1s to 366d"),
    ("*/99999999999999999999 * * * *", "must be a whole number from 1 to 59"),
    ("0 0 31 2 *", "never fires"),
    ("\u0663 * * * *", "is not a number from 0 to 59"),
])
def test_an_out_of_range_schedule_is_400_and_not_stored(
        world: FakeWorld, daemon: tuple[TestClient, Scheduler], schedule: str,
        fragment: str) -> None:
    client, scheduler = daemon
    response = client.put("/v1/instances/b-new/policy", json={"schedule": schedule})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["kind"] == "InvalidLabels" and fragment in body["error"]
    assert "\n" not in body["error"] and len(body["error"]) < 300
    record = world.catalog.get_instance("b-new")
    assert record is not None and record.policy_override is None
    listed = client.get("/v1/instances").json()
    assert [(v["name"], v["schedule"], v["errors"]) for v in listed] == [
        ("a-old", "@every 1h", []), ("b-new", "@every 1h", [])]
    assert all(view["next_run"] is not None for view in listed)
    assert scheduler.scheduled() == {"a-old": "@every 1h", "b-new": "@every 1h"}


def test_a_bad_schedule_stored_by_an_older_version_is_that_instances_error(
        world: FakeWorld, daemon: tuple[TestClient, Scheduler]) -> None:
    client, scheduler = daemon
    world.catalog.set_policy_override("a-old", {"schedule": "@every 999999999d"})
    client.put("/v1/instances/b-new/policy", json={"schedule": "@every 2h"})  # re-lists
    listed = {view["name"]: view for view in client.get("/v1/instances").json()}
    assert listed["a-old"]["errors"] == [
        "holdfast.schedule: interval '999999999d' is longer than 366d; use 1s to 366d"]
    assert listed["a-old"]["next_run"] is None
    assert (listed["b-new"]["schedule"], listed["b-new"]["errors"]) == ("@every 2h", [])
    assert listed["b-new"]["next_run"] is not None
    assert scheduler.scheduled() == {"b-new": "@every 2h"}
