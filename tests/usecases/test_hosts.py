"""Registering this daemon's host, its heartbeats, and the list of hosts, on the fakes."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import timedelta

import pytest

from backup.errors import Conflict
from backup.types import utcnow
from service.hosts import host_name_from_engine
from service.runs import current_runner
from service.usecases import hosts
from tests.fakes.services import FakeWorld


def test_a_daemon_registers_under_its_engine_name_then_beats(world: FakeWorld) -> None:
    started = utcnow()
    record = hosts.register_host(world.services, started, now=started)
    assert (record.name, record.engine_version, record.runner) == \
        ("fake-engine", "24.0.0-fake", current_runner())
    later = started + timedelta(seconds=15)
    beat = hosts.heartbeat(world.services, record.name, started, instances=4, now=later)
    assert beat is not None and world.catalog.list_hosts() == [beat]
    assert (beat.instances, beat.last_heartbeat, beat.started_at) == (4, later, started)
    shown = hosts.list_hosts(world.services, now=later + timedelta(seconds=60))
    assert [(h["name"], h["status"], h["instances"]) for h in shown] == \
        [("fake-engine", "stale", 4)]


def test_host_name_setting_wins_over_the_engine_name(world: FakeWorld) -> None:
    world.services.settings.host_name = "edge-7"
    assert hosts.register_host(world.services, utcnow()).name == "edge-7"


def test_a_name_another_live_daemon_beats_under_is_refused(world: FakeWorld) -> None:
    now = utcnow()
    other = replace(hosts.register_host(world.services, now, now=now),
                    runner="elsewhere.example:99:1")  # another machine: may be running
    world.catalog.save_host(other)
    with pytest.raises(Conflict, match="host name fake-engine is in use by another daemon"):
        hosts.register_host(world.services, now, now=now + timedelta(seconds=5))
    assert hosts.heartbeat(world.services, other.name, now, 1,
                           now=now + timedelta(seconds=5)) is None
    assert world.catalog.list_hosts() == [other], "the other daemon's row was overwritten"
    # Once it has missed three beats, the name is this daemon's.
    late = now + timedelta(seconds=world.services.settings.heartbeat_interval * 3 + 1)
    assert hosts.register_host(world.services, now, now=late).runner == current_runner()


def test_a_dead_daemon_of_this_machine_gives_its_name_back_at_once(world: FakeWorld) -> None:
    now = utcnow()
    dead = replace(hosts.register_host(world.services, now, now=now),
                   runner=current_runner().rsplit(":", 2)[0] + ":999999999:1")
    world.catalog.save_host(dead)
    assert hosts.register_host(world.services, now, now=now).runner == current_runner()


def test_a_daemon_starts_while_docker_is_down_under_this_machine_name(world: FakeWorld) -> None:
    world.docker.unreachable = True
    record = hosts.register_host(world.services, utcnow())
    assert (record.name, record.engine_version) == \
        (host_name_from_engine(socket.gethostname()), "unknown")
