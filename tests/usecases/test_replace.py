"""Swap-in rollback on the fakes: a restore with ``replace`` swaps a loaded copy in
under the old name with the old settings, a failure before the swap leaves the old
container as it was, a failure during the swap puts it back, and undo swaps back."""

from __future__ import annotations

import os

import pytest

from backup.errors import (
    Conflict,
    DockerRefused,
    InvalidInput,
    NotFound,
    PortTaken,
    RestoreFailed,
    SnapshotNotRestorable,
    UnsupportedEngine,
)
from backup.ports import PublishedPort
from backup.types import Snapshot, SnapshotStatus
from restore.copies import RestoreOptions
from restore.swap import RestartPolicy, is_set_aside
from service.entrypoints.daemon.discovery import Discovery
from service.records import JobStatus
from service.usecases import instances, replace, restores
from service.usecases.jobs import JobRunner
from tests.fakes.docker import FakeContainer
from tests.fakes.services import FakeWorld
from tests.usecases.support import add_db, make_snapshot, take_backup

SNAPSHOT_DATA = os.urandom(60_000)
CHANGED = b"written after the snapshot"
LAN = "app-net"


@pytest.fixture
def prod(world: FakeWorld) -> FakeContainer:
    """``prod-db`` on a user network under an alias, publishing 7777 on host
    port 15432, restarting unless stopped, with a setting of its own."""
    world.docker.networks.add(LAN)
    container = add_db(world, "prod-db", content=SNAPSHOT_DATA, volume="prod-db-data",
                       env={"FAKE_PASSWORD": "s3cret", "TZ": "Europe/Paris"},
                       labels={"com.example.team": "payments"})
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


def _replace(world: FakeWorld, snapshot: Snapshot, **kwargs: object) -> restores.RestoreResult:
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db",
                                       **kwargs)  # type: ignore[arg-type]
    return restores.execute_restore(world.services, request)


def _state(world: FakeWorld) -> object:
    """Every container (name, id, running, networks, aliases, restart policy,
    volumes) and every volume's content."""
    return (sorted((c.name, c.id, c.running, c.networks, tuple(c.aliases.items()), c.restart,
                    tuple(c.volumes)) for c in world.docker.containers.values()),
            {name: v.content for name, v in world.docker.volumes.items()})


# --- the swap -------------------------------------------------------------------------


def test_replace_swaps_the_restored_data_in_under_the_old_name_and_settings(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    result = _replace(world, snapshot)

    new = world.docker.by_name("prod-db")
    assert new.id != prod.id and new.running
    assert world.docker.data_of("prod-db") == SNAPSHOT_DATA
    assert (new.networks, new.aliases) == ((LAN,), {LAN: ("db",)})
    assert new.published == prod.published and new.ports == {"7777/tcp": (("", 15432),)}
    assert new.restart == RestartPolicy("unless-stopped")
    assert new.labels.items() >= {"holdfast.enable": "true", "com.example.team": "payments",
                                  "holdfast.restored-from": snapshot.id}.items()
    assert new.env["TZ"] == "Europe/Paris" and new.env["FAKE_PASSWORD"] == "s3cret"
    # the old one: aside, stopped, never restarted by the engine, data and volume kept
    assert is_set_aside(prod.name) and prod.name.startswith("prod-db-replaced-")
    assert not prod.running and prod.restart == RestartPolicy("no")
    assert world.docker.data_of(prod.name) == CHANGED
    # nothing of the staging container is left; its volumes are the new one's
    assert sorted(c.name for c in world.docker.containers.values()) == sorted(
        ["prod-db", prod.name])
    assert list(new.volumes) == [result.volumes[0]] and "restoring" not in result.volumes[0]
    body = result.to_json()
    assert (body["container"], body["container_id"]) == ("prod-db", new.id)
    assert body["replaced"] == {"container": prod.name, "container_id": prod.id,
                                "status": "stopped"}
    assert body["networks"][LAN]["aliases"] == ["db"]
    assert body["expires_at"] is None
    assert world.catalog.live_copies() == []  # the new container is no copy to reap


def test_the_staging_container_is_on_no_network_and_publishes_nothing(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    spec = request.plan.container
    assert spec.name.startswith("prod-db-restoring-")
    assert (spec.networks, spec.aliases, spec.published) == ((), {}, ())
    assert "holdfast.enable" not in spec.labels


def test_a_replaced_container_is_no_second_backup_source(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    _replace(world, snapshot)
    found = instances.live_instances(world.services)
    assert [(i.name, i.container.name if i.container else None) for i in found] == [
        ("prod-db", "prod-db")]


def test_a_replaced_container_named_by_label_is_no_source_either(
        world: FakeWorld) -> None:
    add_db(world, "db-1", labels={"holdfast.name": "orders"})
    take_backup(world, "orders")
    snap = world.catalog.list_snapshots(instance="orders")[0]
    request = restores.prepare_restore(world.services, snap.id, None, replace="db-1")
    restores.execute_restore(world.services, request)
    world.docker.by_name("db-1").running = False  # even with both stopped
    found = instances.live_instances(world.services)
    assert [(i.name, i.container.name if i.container else None) for i in found] == [
        ("orders", "db-1")]


# --- refusals: nothing written ------------------------------------------------------------


def test_an_unknown_container_is_not_found_and_nothing_changes(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    before = _state(world)
    with pytest.raises(NotFound, match="no container named 'nope' to replace"):
        restores.prepare_restore(world.services, snapshot.id, None, replace="nope")
    assert _state(world) == before


@pytest.mark.parametrize(("name", "options", "force", "words"), [
    ("other", None, False, "leave out name"),
    (None, RestoreOptions(network=LAN), False, "leave out network"),
    (None, RestoreOptions(publish=0, ttl="4h"), False, "leave out publish, ttl"),
    (None, None, True, "leave out force"),
])
def test_what_contradicts_a_replace_is_refused(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot, name: str | None,
        options: RestoreOptions | None, force: bool, words: str) -> None:
    before = _state(world)
    with pytest.raises(InvalidInput, match=words):
        restores.prepare_restore(world.services, snapshot.id, name, force=force,
                                 options=options, replace="prod-db")
    assert _state(world) == before


def test_the_same_name_as_replace_is_accepted(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    request = restores.prepare_restore(world.services, snapshot.id, "prod-db",
                                       replace="prod-db")
    assert request.replace is not None and request.replace.target.id == prod.id


def test_no_name_and_no_replace_is_refused(world: FakeWorld, snapshot: Snapshot) -> None:
    with pytest.raises(InvalidInput, match="name the fresh container"):
        restores.prepare_restore(world.services, snapshot.id, None)


def test_a_snapshot_of_another_engine_is_refused(
        world: FakeWorld, prod: FakeContainer) -> None:
    world.docker.add_container("cache", labels={"holdfast.enable": "true",
                                                "holdfast.engine": "redis"})
    snap = take_backup(world, "prod-db")
    with pytest.raises(UnsupportedEngine, match="is a fake snapshot and container 'cache' "
                                                "runs redis"):
        restores.prepare_restore(world.services, snap.id, None, replace="cache")


def test_a_container_whose_engine_cannot_be_told_is_refused(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    world.docker.add_container("mystery", image="acme/thing:1")
    with pytest.raises(InvalidInput, match=r"label it holdfast\.engine=fake"):
        restores.prepare_restore(world.services, snapshot.id, None, replace="mystery")


def test_a_set_aside_container_cannot_be_replaced(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    _replace(world, snapshot)
    with pytest.raises(InvalidInput, match="a replace set aside"):
        restores.prepare_restore(world.services, snapshot.id, None, replace=prod.name)


def test_a_replace_in_progress_is_a_conflict(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    world.docker.add_container("prod-db-restoring-20260101T000000Z")
    with pytest.raises(Conflict, match="a replace of prod-db is in progress"):
        restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")


def test_an_unrestorable_snapshot_is_refused_before_anything(
        world: FakeWorld, prod: FakeContainer) -> None:
    bad = make_snapshot(world, "prod-db", status=SnapshotStatus.FAILED)
    before = _state(world)
    with pytest.raises(SnapshotNotRestorable):
        restores.prepare_restore(world.services, bad.id, None, replace="prod-db")
    assert _state(world) == before


# --- failures ------------------------------------------------------------------------------


def test_a_failure_before_the_swap_leaves_the_old_container_untouched(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    before = _state(world)
    world.docker.load_error = "pg_restore: error: could not read input file"
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    with pytest.raises(RestoreFailed, match="could not read input file"):
        restores.execute_restore(world.services, request)
    assert _state(world) == before
    assert world.docker.by_name("prod-db").id == prod.id and prod.running
    assert world.docker.data_of("prod-db") == CHANGED


def _fail_the_new_one(world: FakeWorld, old: FakeContainer, action: str, reason: str) -> None:
    """Refuse ``action`` once on the container called prod-db that is not ``old``."""
    world.docker.faults.append((action, "prod-db", reason))
    refuse = world.docker._fault

    def only_the_new_one(act: str, name: str) -> None:
        if next((c.id for c in world.docker.containers.values() if c.name == name),
                None) != old.id:
            refuse(act, name)
    world.docker._fault = only_the_new_one  # type: ignore[method-assign,assignment]


SWAP_FAULTS = [("stop", "<staging>"), ("stop", "prod-db"), ("restart", "prod-db"),
               ("rename", "prod-db"), ("create", "<new>"), ("restart", "<new>"),
               ("start", "<new>")]


@pytest.mark.parametrize(("action", "who"), SWAP_FAULTS)
def test_a_failure_during_the_swap_puts_the_old_container_back(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot, action: str,
        who: str) -> None:
    before = _state(world)
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    if who == "<staging>":
        world.docker.faults.append((action, request.plan.container.name, "it is stuck"))
    elif who == "<new>":
        _fail_the_new_one(world, prod, action, "the new container is refused")
    else:
        world.docker.faults.append((action, "prod-db", "the old container is stuck"))
    with pytest.raises(DockerRefused, match="everything was put back"):
        restores.execute_restore(world.services, request)
    assert _state(world) == before
    assert world.docker.by_name("prod-db").id == prod.id and prod.running
    assert world.docker.published_host_ports() == {("", 15432)}


def test_a_swap_that_cannot_be_put_back_says_so(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    # A host process takes the port once the old container frees it: neither
    # the new container nor the old one can bind it.
    original_stop = world.docker.stop_container

    def stop_and_lose_the_port(container_id: str, timeout: float = 30) -> None:
        original_stop(container_id, timeout)
        if container_id == prod.id:
            world.docker.host_ports.add(("", 15432))
    world.docker.stop_container = stop_and_lose_the_port  # type: ignore[method-assign]
    with pytest.raises(PortTaken, match="putting it back failed: starting container"):
        restores.execute_restore(world.services, request)
    assert world.docker.by_name("prod-db").id == prod.id and not prod.running
    assert prod.restart == RestartPolicy("unless-stopped")
    assert sorted(c.name for c in world.docker.containers.values()) == ["prod-db"]


# --- undo ----------------------------------------------------------------------------------


def test_undo_swaps_the_replaced_container_back(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    _replace(world, snapshot)
    new = world.docker.by_name("prod-db")
    world.docker.volumes[next(iter(new.volumes))].content = b"written to the restored one"

    undone = replace.undo_replace(world.services, "prod-db")

    assert world.docker.by_name("prod-db").id == prod.id and prod.running
    assert world.docker.data_of("prod-db") == CHANGED
    assert prod.restart == RestartPolicy("unless-stopped")
    assert prod.ports == {"7777/tcp": (("", 15432),)}
    # the restored one is kept, stopped, with what was written to it
    assert new.name.startswith("prod-db-undone-") and not new.running
    assert new.restart == RestartPolicy("no")
    assert world.docker.data_of(new.name) == b"written to the restored one"
    assert undone.to_json() == {
        "container": "prod-db", "container_id": prod.id, "restored_from": undone.was,
        "set_aside": {"container": new.name, "container_id": new.id, "status": "stopped"}}
    assert undone.was.startswith("prod-db-replaced-")
    assert [i.container.id for i in instances.live_instances(world.services)
            if i.container] == [prod.id]


def test_undo_with_nothing_replaced_is_not_found(world: FakeWorld,
                                                 prod: FakeContainer) -> None:
    with pytest.raises(NotFound, match="no container prod-db-replaced-"):
        replace.undo_replace(world.services, "prod-db")


def test_undo_takes_the_newest_replaced_container(
        world: FakeWorld, prod: FakeContainer) -> None:
    older = world.docker.add_container("prod-db-replaced-20250101T000000Z", running=False)
    newer = world.docker.add_container("prod-db-replaced-20260101T000000Z", running=False)
    replace.undo_replace(world.services, "prod-db")
    assert world.docker.by_name("prod-db").id == newer.id and newer.running
    assert older.name == "prod-db-replaced-20250101T000000Z" and not prod.running


def test_undo_without_a_current_container_renames_back_and_starts(
        world: FakeWorld) -> None:
    old = world.docker.add_container("prod-db-replaced-20260101T000000Z", running=False)
    result = replace.undo_replace(world.services, "prod-db")
    assert old.name == "prod-db" and old.running and result.set_aside is None


def test_a_failed_undo_puts_the_current_container_back(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    _replace(world, snapshot)
    before = _state(world)
    # the first start of a container called prod-db in an undo is the old one's
    world.docker.faults.append(("start", "prod-db", "the old container will not start"))
    with pytest.raises(DockerRefused, match="everything was put back"):
        replace.undo_replace(world.services, "prod-db")
    assert _state(world) == before
    assert world.docker.by_name("prod-db").running


# --- as a job ----------------------------------------------------------------------------


def test_a_replace_job_reports_swapping_last_and_records_the_swap(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    runner = JobRunner(world.services, workers=1)
    try:
        job = runner.submit_restore(restores.prepare_restore(
            world.services, snapshot.id, None, replace="prod-db"))
        done = runner.wait(job.id, timeout=10)
    finally:
        runner.shutdown(grace=5)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.phase == "swapping"
    result = done.result or {}
    new = world.docker.by_name("prod-db")
    assert (result["container"], result["container_id"]) == ("prod-db", new.id)
    assert result["replaced"] == {"container": prod.name, "container_id": prod.id,
                                  "status": "stopped"}
    assert result["url_template"] == "fake://:{FAKE_PASSWORD}@HOST:PORT/main"
    assert "s3cret" not in str(result)


def test_a_container_replaced_meanwhile_is_not_swapped_out(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    request = restores.prepare_restore(world.services, snapshot.id, None, replace="prod-db")
    world.docker.remove_container(prod.id)  # someone re-created it while it loaded
    other = add_db(world, "prod-db", volume="other-vol")
    before = _state(world)
    with pytest.raises(Conflict, match="removed or replaced while the restore loaded"):
        restores.execute_restore(world.services, request)
    assert _state(world) == before and other.running


def test_discovery_follows_the_swap_and_schedules_one_instance(
        world: FakeWorld, prod: FakeContainer, snapshot: Snapshot) -> None:
    seen: list[list[tuple[str, str]]] = []
    discovery = Discovery(world.services, lambda found, _catch_up: seen.append(
        [(i.name, i.container.name if i.container else "") for i in found]))
    discovery.refresh()
    _replace(world, snapshot)
    new = world.docker.by_name("prod-db")
    for action, container_id in (("die", prod.id), ("rename", prod.id), ("start", new.id)):
        discovery._on_event(action, container_id)
    assert seen[-1] == [("prod-db", "prod-db")]
    assert [i.container.id for i in discovery.instances() if i.container] == [new.id]
    assert [(i.name, i.container.id if i.container else None)
            for i in discovery.refresh()] == [("prod-db", new.id)]
