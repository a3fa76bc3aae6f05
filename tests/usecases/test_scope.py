"""``HOLDFAST_SCOPE`` on the fakes: a scoped Holdfast manages only containers
labelled ``holdfast.scope=<its scope>``, an unscoped one only containers with
no scope label, in listings, lookups, discovery and its event stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from backup.errors import InstanceNotFound
from service.entrypoints.daemon.discovery import Discovery
from service.settings import Settings
from service.usecases import backups
from service.usecases.instances import (
    Instance,
    classify,
    forget_instance,
    live_instances,
    refresh_instances,
)
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import add_db, make_snapshot, wait_until


def shared_engine(world: FakeWorld) -> None:
    """One engine, as several teams share it: unscoped, team-a's and team-b's."""
    add_db(world, "plain-db")
    add_db(world, "blank-db", labels={"holdfast.scope": " "})  # empty: no scope
    add_db(world, "a-db", labels={"holdfast.scope": "team-a"})
    add_db(world, "b-db", labels={"holdfast.scope": "team-b"})


def scoped(tmp_path: Path, scope: str) -> FakeWorld:
    return fake_world(tmp_path / scope, {"HOLDFAST_SCOPE": scope})


def test_each_scope_sees_its_own_containers_and_unscoped_sees_the_unlabelled(
        world: FakeWorld, tmp_path: Path) -> None:
    shared_engine(world)
    team_a = scoped(tmp_path, "team-a")
    team_a.services.docker = world.docker  # the same engine
    assert [i.name for i in live_instances(world.services)] == ["blank-db", "plain-db"]
    assert [i.name for i in live_instances(team_a.services)] == ["a-db"]
    assert [c.name for c in world.docker.labelled_containers(scope="team-b")] == ["b-db"]


def test_another_scopes_container_cannot_be_backed_up_even_by_its_catalogued_id(
        tmp_path: Path) -> None:
    world = scoped(tmp_path, "team-a")
    other = add_db(world, "b-db", labels={"holdfast.scope": "team-b"})
    assert classify(world.services, world.docker.inspect(other.id)) is None
    # A record pointing at that container (from before the scope was set) is
    # not a way around it: the lookup by container id checks the scope too.
    world.services.settings.scope = None
    refresh_instances(world.services)
    world.services.settings.scope = "team-a"
    with pytest.raises(InstanceNotFound, match="no running instance named 'b-db'"):
        backups.prepare_backup(world.services, "b-db")


def test_another_scopes_container_does_not_stop_forgetting_the_name(tmp_path: Path) -> None:
    world = scoped(tmp_path, "team-a")
    add_db(world, "shop-db", labels={"holdfast.scope": "team-b"})
    snapshot = make_snapshot(world, "shop-db")
    assert forget_instance(world.services, "shop-db").snapshots == [snapshot.id]


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, instances: list[Instance], catch_up: bool) -> None:
        self.calls.append([i.name for i in instances])


def test_discovery_lists_and_follows_only_its_scope(tmp_path: Path) -> None:
    world = scoped(tmp_path, "team-a")
    shared_engine(world)
    sync = Recorder()
    discovery = Discovery(world.services, sync, max_backoff=0.05)
    discovery.start()
    try:
        wait_until(discovery.connected.is_set, what="discovery connected")
        assert sync.calls == [["a-db"]]
        [stream] = world.docker.events
        assert stream.scope == "team-a"  # asked the engine for its scope only

        theirs = add_db(world, "b-late", labels={"holdfast.scope": "team-b"})
        world.docker.emit("start", theirs.id)
        ours = add_db(world, "a-late", labels={"holdfast.scope": "team-a"})
        world.docker.emit("start", ours.id)
        wait_until(lambda: sync.calls[-1] == ["a-db", "a-late"], what="a-late discovered")
        # Events arrive in order, and team-b's never did: one sync, for a-late.
        assert sync.calls == [["a-db"], ["a-db", "a-late"]]
        assert world.catalog.get_instance("b-late") is None
        assert [r.name for r in world.catalog.list_instances()] == ["a-db", "a-late"]
    finally:
        discovery.stop()


def test_unscoped_discovery_ignores_scoped_containers_events(world: FakeWorld) -> None:
    sync = Recorder()
    discovery = Discovery(world.services, sync, max_backoff=0.05)
    discovery.start()
    try:
        wait_until(discovery.connected.is_set, what="discovery connected")
        scoped_one = add_db(world, "a-db", labels={"holdfast.scope": "team-a"})
        world.docker.emit("start", scoped_one.id)
        mine = add_db(world, "plain-db")
        world.docker.emit("start", mine.id)
        wait_until(lambda: sync.calls[-1] == ["plain-db"], what="plain-db discovered")
        assert sync.calls == [[], ["plain-db"]]
    finally:
        discovery.stop()


@pytest.mark.parametrize("value", ["team a", "-team", "team\n", "x" * 64, "équipe"])
def test_a_bad_scope_is_refused_naming_the_rule(value: str) -> None:
    with pytest.raises(ValidationError, match="a scope is 1-63 letters, digits"):
        Settings.load({"HOLDFAST_SCOPE": value})


def test_a_good_scope_is_kept() -> None:
    assert Settings.load({"HOLDFAST_SCOPE": "team-a.prod_1"}).scope == "team-a.prod_1"
    assert Settings.load({}).scope is None


def test_the_real_adapters_event_stream_keeps_only_its_scopes_events() -> None:
    # The engine cannot be asked for "no scope label", so the unscoped stream
    # sorts events out by the labels each carries in its attributes.
    from service.adapters.docker.events import ContainerEvents

    def event(container_id: str, **labels: str) -> dict[str, object]:
        return {"Type": "container", "Action": "start",
                "Actor": {"ID": container_id, "Attributes": {"holdfast.enable": "true",
                                                             "name": container_id, **labels}}}
    raw = [event("plain"), event("a", **{"holdfast.scope": "team-a"}),
           event("b", **{"holdfast.scope": "team-b"}), event("blank", **{"holdfast.scope": ""})]
    assert [c for _, c in ContainerEvents(iter(raw))] == ["plain", "blank"]
    assert [c for _, c in ContainerEvents(iter(raw), "team-a")] == ["a"]
