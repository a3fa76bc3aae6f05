"""Discovery logs a container whose labels fail to parse: one warning naming
the container and the error when it first appears or its error changes, not
again on every re-list or event."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.entrypoints.daemon.discovery import Discovery
from service.usecases.instances import Instance
from tests.fakes.services import FakeWorld
from tests.usecases.support import add_db, wait_until

LOGGER = "service.entrypoints.daemon.discovery"


def ignore(instances: list[Instance], catch_up: bool) -> None:
    """Stands in for the scheduler's sync."""


@pytest.fixture
def discovery(world: FakeWorld) -> Iterator[Discovery]:
    found = Discovery(world.services, ignore, max_backoff=0.05)
    yield found
    if found._thread.ident is not None:
        found.stop()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == LOGGER and r.levelno == logging.WARNING]


def test_bad_labels_are_logged_once_per_change_with_the_container_name(
        world: FakeWorld, discovery: Discovery, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    bad = add_db(world, "shop-db-1", labels={"holdfast.name": "shop",
                                             "holdfast.schedule": "@every 999999999d"})
    add_db(world, "fine-db")
    discovery.refresh()
    discovery.refresh()  # a re-list (as after every reconnect) says nothing new
    [first] = warnings(caplog)
    assert "container shop-db-1 (instance shop)" in first
    assert "holdfast.schedule: interval '999999999d' is longer than 366d; use 1s to 366d" \
        in first
    assert "fine-db" not in " ".join(warnings(caplog))

    discovery.start()  # following events: a restart of the same container is not news
    wait_until(discovery.connected.is_set)
    world.docker.emit("start", bad.id)
    bad.labels["holdfast.retention"] = "forever"  # its error changes: logged again
    world.docker.emit("start", bad.id)
    wait_until(lambda: len(warnings(caplog)) == 2, what="the changed error logged")
    assert "holdfast.retention" in warnings(caplog)[1]
    assert "shop-db-1" in warnings(caplog)[1]

    del bad.labels["holdfast.retention"], bad.labels["holdfast.schedule"]  # fixed
    world.docker.emit("start", bad.id)
    wait_until(lambda: any("labels are fixed" in r.getMessage() for r in caplog.records),
               what="the fix logged")
    discovery.refresh()
    assert len(warnings(caplog)) == 2


def test_a_container_removed_and_added_again_with_the_same_error_is_logged_again(
        world: FakeWorld, discovery: Discovery, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    first = add_db(world, "db", labels={"holdfast.target": "nowhere"})
    discovery.refresh()
    world.docker.remove_container(first.id)
    discovery.refresh()
    add_db(world, "db", labels={"holdfast.target": "nowhere"}, volume="db-vol-2")
    discovery.refresh()
    logged = warnings(caplog)
    assert len(logged) == 2
    assert all("container db" in line and "no storage target named 'nowhere'" in line
               for line in logged)
