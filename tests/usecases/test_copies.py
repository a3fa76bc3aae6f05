"""Copies on the fakes: a restore with options joins, publishes, labels and records
what it made; copies are listed and extended; the reaper removes only what a
restore created, records it, and one failure never stops the others."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from backup.errors import CopyNotFound, InvalidInput, NetworkNotFound, PortTaken
from backup.types import Snapshot, utcnow
from restore.copies import RestoreOptions
from service.usecases import copies, restores
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.usecases.support import PASSWORD, add_db, take_backup, wait_until


@pytest.fixture
def snapshot(world: FakeWorld) -> Snapshot:
    add_db(world, "shop", volume="shop-data")
    world.docker.networks.add("ci-net")
    return take_backup(world, "shop")


def _restore(world: FakeWorld, snapshot: Snapshot, name: str = "dev", **options: Any
             ) -> restores.RestoreResult:
    return restores.run_restore(world.services, snapshot.id, name,
                                options=RestoreOptions(**options))


def _state(world: FakeWorld) -> object:
    return (sorted(c.name for c in world.docker.containers.values()),
            sorted(world.docker.volumes), world.catalog.live_copies())


# --- a restore with options -------------------------------------------------------------


def test_a_restore_joins_publishes_labels_and_is_recorded(
        world: FakeWorld, snapshot: Snapshot) -> None:
    before = utcnow()
    result = _restore(world, snapshot, network="ci-net", alias="db", publish=0,
                      labels={"ci.job": "42"}, ttl="4h")
    container = world.docker.by_name("dev")
    assert container.networks == ("ci-net",) and container.aliases == {"ci-net": ("db",)}
    assert container.labels["ci.job"] == "42"
    assert container.labels["holdfast.restored-from"] == snapshot.id
    [(ip, port)] = container.ports["7777/tcp"]

    body = result.to_json()
    assert body["networks"]["ci-net"]["aliases"] == ["db"]
    assert body["ports"] == {"7777/tcp": [{"host_ip": "127.0.0.1", "host_port": port}]}
    assert body["url_template"] == "fake://:{FAKE_PASSWORD}@HOST:PORT/main"
    assert body["urls"] == {"published": f"fake://:{{FAKE_PASSWORD}}@{ip}:{port}/main",
                            "networks": {"ci-net": "fake://:{FAKE_PASSWORD}@db:7777/main"}}
    assert PASSWORD not in json.dumps(body)

    [copy] = copies.list_copies(world.services)
    assert (copy.name, copy.container_id, copy.snapshot_id, copy.instance, copy.volumes) == (
        "dev", container.id, snapshot.id, "shop", ("dev-data",))
    assert copy.expires_at is not None
    assert timedelta(hours=4) <= copy.expires_at - before <= timedelta(hours=4, seconds=5)
    assert body["expires_at"] is not None


def test_a_restore_without_options_is_recorded_without_expiry(
        world: FakeWorld, snapshot: Snapshot) -> None:
    result = _restore(world, snapshot)
    [copy] = copies.list_copies(world.services)
    assert (copy.container_id, copy.expires_at) == (result.container_id, None)
    assert result.to_json()["ports"] == {} and result.to_json()["urls"] == {"networks": {}}


def test_volumes_force_reused_are_not_recorded_as_created(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.volumes["dev-data"] = type(world.docker.volumes["shop-data"])("dev-data")
    restores.run_restore(world.services, snapshot.id, "dev", force=True,
                         options=RestoreOptions(ttl="1h"))
    [copy] = copies.list_copies(world.services)
    assert copy.volumes == ()


def test_an_unknown_network_is_refused_before_anything_is_made(
        world: FakeWorld, snapshot: Snapshot) -> None:
    before = _state(world)
    with pytest.raises(NetworkNotFound, match="no Docker network named 'nope'"):
        _restore(world, snapshot, network="nope")
    assert _state(world) == before


@pytest.mark.parametrize("options", [
    {"alias": "db"}, {"publish": 70000}, {"ttl": "10s"}, {"labels": {"holdfast.enable": "1"}}])
def test_bad_options_are_refused_before_anything_is_made(
        world: FakeWorld, snapshot: Snapshot, options: dict[str, Any]) -> None:
    before = _state(world)
    with pytest.raises(InvalidInput):
        _restore(world, snapshot, **options)
    assert _state(world) == before


def test_publish_onto_an_internal_network_is_refused_before_anything_is_made(
        world: FakeWorld, snapshot: Snapshot) -> None:
    # Docker would start the copy and silently publish nothing (moby/moby#36174).
    world.docker.networks.add("sealed")
    world.docker.internal_networks.add("sealed")
    before = _state(world)
    with pytest.raises(InvalidInput) as refused:
        _restore(world, snapshot, network="sealed", publish=0)
    assert str(refused.value).startswith("cannot publish: network sealed is internal")
    assert str(refused.value).endswith("restore without publish, or onto a network that is "
                                       "not internal")
    assert _state(world) == before
    result = _restore(world, snapshot, network="sealed", alias="db")  # without publish: fine
    assert result.endpoints.networks["sealed"].aliases == ("db",)


def test_publish_is_refused_when_the_source_s_network_is_internal(world: FakeWorld) -> None:
    source = add_db(world, "sealed-db")
    world.docker.networks.add("sealed")
    world.docker.internal_networks.add("sealed")
    source.networks = ("sealed",)
    snapshot = take_backup(world, "sealed-db")
    before = _state(world)
    with pytest.raises(InvalidInput, match="network sealed is internal"):
        _restore(world, snapshot, publish=0)
    assert _state(world) == before
    world.docker.networks.add("open")
    result = _restore(world, snapshot, network="open", publish=0)
    assert result.endpoints.ports["7777/tcp"]


def test_a_port_a_container_publishes_is_409_before_anything_is_made(
        world: FakeWorld, snapshot: Snapshot) -> None:
    first = _restore(world, snapshot, "first", publish=0)
    taken = first.endpoints.ports["7777/tcp"][0][1]
    before = _state(world)
    with pytest.raises(PortTaken, match=f"host port {taken} is already published"):
        _restore(world, snapshot, "second", publish=taken)
    assert _state(world) == before


def test_a_port_a_host_process_holds_fails_the_start_and_leaves_nothing(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.host_ports.add(("127.0.0.1", 15432))
    before = _state(world)
    with pytest.raises(PortTaken, match="choose another, or publish 0"):
        _restore(world, snapshot, publish=15432)
    assert _state(world) == before


def test_a_restore_job_records_its_id_on_the_copy(world: FakeWorld, snapshot: Snapshot) -> None:
    jobs = JobRunner(world.services, 1)
    try:
        request = restores.prepare_restore(world.services, snapshot.id, "dev",
                                           options=RestoreOptions(ttl="1h"))
        job = jobs.submit_restore(request)
        wait_until(lambda: bool(world.catalog.live_copies()))
    finally:
        jobs.shutdown(grace=5)
    assert world.catalog.live_copies()[0].job_id == job.id


# --- listing and extending ---------------------------------------------------------------


def test_extend_sets_the_expiry_from_now(world: FakeWorld, snapshot: Snapshot) -> None:
    _restore(world, snapshot, ttl="1m")
    now = utcnow() + timedelta(days=1)
    extended = copies.extend_copy(world.services, "dev", "2h", now)
    assert extended.expires_at == now + timedelta(hours=2)
    assert copies.get_copy(world.services, "dev").expires_at == now + timedelta(hours=2)
    assert extended.to_json(now)["seconds_left"] == 7200


def test_extend_gives_a_ttl_to_a_copy_without_one(world: FakeWorld, snapshot: Snapshot) -> None:
    _restore(world, snapshot)
    assert copies.extend_copy(world.services, "dev", "30m").expires_at is not None


def test_extend_refuses_unknown_copies_and_bad_ttls(
        world: FakeWorld, snapshot: Snapshot) -> None:
    _restore(world, snapshot, ttl="1h")
    with pytest.raises(CopyNotFound, match="no live copy named 'other'"):
        copies.extend_copy(world.services, "other", "2h")
    with pytest.raises(InvalidInput, match="from 1m to 365d"):
        copies.extend_copy(world.services, "dev", "400d")


def test_a_new_copy_of_a_gone_ones_name_supersedes_it(
        world: FakeWorld, snapshot: Snapshot) -> None:
    first = _restore(world, snapshot, ttl="1h")
    world.docker.remove_container(first.container_id)  # removed by hand, volume too
    world.docker.remove_volume("dev-data")
    second = _restore(world, snapshot, ttl="1h")
    [live] = copies.list_copies(world.services)
    assert live.container_id == second.container_id


# --- the reaper -------------------------------------------------------------------------------


def test_the_reaper_removes_an_expired_copy_and_only_what_it_created(
        world: FakeWorld, snapshot: Snapshot) -> None:
    world.docker.add_container("dev-other", volume="dev-data-old")  # similar names survive
    world.docker.volumes["dev-"] = type(world.docker.volumes["shop-data"])("dev-")
    result = _restore(world, snapshot, ttl="1m")
    keep = _restore(world, snapshot, "keep", ttl="2h")

    assert copies.reap_expired_copies(world.services, utcnow()) == []  # not yet
    later = utcnow() + timedelta(minutes=2)
    [reaped] = copies.reap_expired_copies(world.services, later)
    assert (reaped.container_removed, reaped.volumes_removed, reaped.error) == (
        True, ("dev-data",), None)
    assert result.container_id not in world.docker.containers
    assert "dev-data" not in world.docker.volumes
    assert {"shop", "dev-other", "keep"} <= {c.name for c in world.docker.containers.values()}
    assert {"shop-data", "dev-data-old", "dev-", "keep-data"} <= set(world.docker.volumes)
    assert [c.container_id for c in copies.list_copies(world.services)] == [keep.container_id]
    assert copies.reap_expired_copies(world.services, later) == []  # done once


def test_the_reaper_refuses_a_name_reused_by_another_container(
        world: FakeWorld, snapshot: Snapshot) -> None:
    result = _restore(world, snapshot, ttl="1m")
    world.docker.remove_container(result.container_id)
    impostor = world.docker.add_container("dev", volume="dev-data")  # reuses the volume
    [reaped] = copies.reap_expired_copies(world.services, utcnow() + timedelta(minutes=2))
    assert reaped.error is not None and "not the" in reaped.error and reaped.done
    assert impostor.id in world.docker.containers and "dev-data" in world.docker.volumes
    assert copies.list_copies(world.services) == []  # settled: not retried every sweep


def test_a_volume_re_created_by_someone_else_is_left(
        world: FakeWorld, snapshot: Snapshot) -> None:
    result = _restore(world, snapshot, ttl="1m")
    world.docker.remove_container(result.container_id)
    world.docker.remove_volume("dev-data")
    world.docker.volumes["dev-data"] = type(world.docker.volumes["shop-data"])("dev-data")
    [reaped] = copies.reap_expired_copies(world.services, utcnow() + timedelta(minutes=2))
    assert "dev-data" in world.docker.volumes
    assert reaped.error is not None and "no longer says it was restored" in reaped.error


def test_one_failing_removal_does_not_stop_the_others_and_is_retried(
        world: FakeWorld, snapshot: Snapshot) -> None:
    _restore(world, snapshot, "aa", ttl="1m")
    _restore(world, snapshot, "bb", ttl="1m")
    blocker = world.docker.add_container("blocker")
    blocker.volumes["aa-data"] = "/elsewhere"  # a-data is in use: its removal fails
    later = utcnow() + timedelta(minutes=2)
    by_name = {r.copy.name: r for r in copies.reap_expired_copies(world.services, later)}
    assert by_name["bb"].done and by_name["bb"].error is None
    assert not by_name["aa"].done and "retried at the next sweep" in (by_name["aa"].error or "")
    assert [c.removal_error is not None for c in copies.list_copies(world.services)] == [True]

    del blocker.volumes["aa-data"]
    [again] = copies.reap_expired_copies(world.services, later)
    assert (again.copy.name, again.done, again.error) == ("aa", True, None)
    assert "aa-data" not in world.docker.volumes


def test_the_expiry_is_recorded_on_the_restore_job(world: FakeWorld, snapshot: Snapshot) -> None:
    jobs = JobRunner(world.services, 1)
    try:
        request = restores.prepare_restore(world.services, snapshot.id, "dev",
                                           options=RestoreOptions(ttl="1m"))
        job = jobs.submit_restore(request)
        wait_until(lambda: (found := world.catalog.get_job(job.id)) is not None
                 and found.status == "succeeded")
    finally:
        jobs.shutdown(grace=5)
    copies.reap_expired_copies(world.services, utcnow() + timedelta(minutes=2))
    recorded = world.catalog.get_job(job.id)
    assert recorded is not None and recorded.result is not None
    assert recorded.result["container"] == "dev"  # the restore's result is kept
    assert recorded.result["expired"]["container_removed"] is True
    assert recorded.result["expired"]["volumes_removed"] == ["dev-data"]



def test_the_daemons_reaper_sweeps_once_at_start(world: FakeWorld, snapshot: Snapshot) -> None:
    from service.entrypoints.daemon.reaper import CopyReaper

    result = _restore(world, snapshot, ttl="1m")
    copy = world.catalog.live_copies()[0]
    world.catalog.save_copy(replace(copy, expires_at=utcnow() - timedelta(seconds=1)))
    reaper = CopyReaper(world.services, interval=3600)  # only the first sweep can run
    reaper.start()
    try:
        wait_until(lambda: result.container_id not in world.docker.containers)
    finally:
        reaper.shutdown()
    assert world.catalog.live_copies() == [] and "dev-data" not in world.docker.volumes
