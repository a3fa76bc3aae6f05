"""Retention: what pruning forgets and deletes, what it never touches, and how it
behaves when a target or the Docker engine fails."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.errors import InstanceNotFound, StorageUnavailable
from backup.types import Snapshot, SnapshotStatus
from service.records import InstanceRecord
from service.usecases import retention
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import (
    OTHER_HOST_RUNNER,
    T0,
    add_db,
    make_snapshot,
    objects,
    snapshot_keys,
)


def _record(world: FakeWorld, name: str, labels: dict[str, str]) -> None:
    world.catalog.upsert_instance(InstanceRecord(
        name=name, engine="fake", container_id=None, container_name=name, image="fake/db:1",
        labels=labels, error=None, first_seen=T0, last_seen=T0))


def _history(world: FakeWorld, name: str, count: int) -> list[Snapshot]:
    """``count`` complete snapshots an hour apart, oldest first."""
    return [make_snapshot(world, name, at=T0 + timedelta(hours=n)) for n in range(count)]


def _keys(snapshots: Iterable[Snapshot]) -> set[str]:
    return {key for snapshot in snapshots for key in snapshot_keys(snapshot)}


def test_last_n_keeps_the_n_newest_and_deletes_the_rest(world: FakeWorld) -> None:
    _record(world, "db", {"holdfast.retention": "last=2"})
    old1, old2, new1, new2 = _history(world, "db", 4)
    result = retention.prune_instance(world.services, "db")
    assert result.to_json() == {"instance": "db", "policy": {"last": 2},
                                "kept": [new2.id, new1.id], "forgotten": [old2.id, old1.id],
                                "dry_run": False, "failures": []}
    assert world.catalog.list_snapshots() == [new2, new1]
    assert set(objects(world)) == _keys([new1, new2])


def test_a_dry_run_deletes_nothing(world: FakeWorld) -> None:
    _record(world, "db", {"holdfast.retention": "last=1"})
    history = _history(world, "db", 3)
    stored = objects(world)
    result = retention.prune_instance(world.services, "db", dry_run=True)
    assert result.dry_run and result.forgotten == [history[1].id, history[0].id]
    assert len(world.catalog.list_snapshots()) == 3 and objects(world) == stored


def test_failed_snapshots_are_forgotten_even_pinned_and_without_a_policy(
        world: FakeWorld) -> None:
    complete = make_snapshot(world, "db", at=T0)
    failed = make_snapshot(world, "db", at=T0 + timedelta(hours=1), status=SnapshotStatus.FAILED)
    pinned_failed = make_snapshot(world, "db", at=T0 + timedelta(hours=2), pinned=True,
                                  status=SnapshotStatus.FAILED)
    result = retention.prune_instance(world.services, "db")
    assert result.forgotten == [pinned_failed.id, failed.id]
    assert world.catalog.list_snapshots() == [complete]
    assert set(objects(world)) == _keys([complete])


def test_pinned_and_the_newest_complete_are_never_forgotten(world: FakeWorld) -> None:
    _record(world, "db", {"holdfast.retention": "last=1"})
    pinned = make_snapshot(world, "db", at=T0, pinned=True)
    middle = make_snapshot(world, "db", at=T0 + timedelta(hours=1))
    newest = make_snapshot(world, "db", at=T0 + timedelta(hours=2))
    make_snapshot(world, "db", at=T0 + timedelta(hours=3), status=SnapshotStatus.FAILED)
    result = retention.prune_instance(world.services, "db")
    assert result.kept == [newest.id, pinned.id] and result.forgotten[1:] == [middle.id]
    assert world.catalog.list_snapshots() == [newest, pinned]


def test_a_running_snapshot_is_never_touched(world: FakeWorld) -> None:
    _record(world, "db", {"holdfast.retention": "last=1"})
    running = make_snapshot(world, "db", at=T0, status=SnapshotStatus.RUNNING,
                            runner=OTHER_HOST_RUNNER)
    _history(world, "db", 2)
    result = retention.prune_instance(world.services, "db")
    assert running.id not in result.kept + result.forgotten
    assert running in world.catalog.list_snapshots()
    assert running.data_key in objects(world)


def test_a_target_that_cannot_delete_keeps_its_rows_and_the_others_prune(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    _record(world, "db", {"holdfast.retention": "last=1"})
    local = [make_snapshot(world, "db", at=T0 + timedelta(hours=n)) for n in (0, 1)]
    offsite = [make_snapshot(world, "db", at=T0 + timedelta(hours=n), target="offsite")
               for n in (2, 3)]
    newest = make_snapshot(world, "db", at=T0 + timedelta(hours=4), target="offsite")

    def unavailable(keys: Iterable[str]) -> None:
        raise StorageUnavailable("target 'local' cannot be reached: timed out")

    monkeypatch.setattr(world.storage("local"), "delete_many", unavailable)
    result = retention.prune_instance(world.services, "db")
    assert sorted(result.forgotten) == sorted(s.id for s in offsite)
    assert sorted(world.catalog.list_snapshots(), key=lambda s: s.id) == sorted(
        [*local, newest], key=lambda s: s.id)
    assert set(objects(world)) == _keys(local)
    assert set(objects(world, "offsite")) == _keys([newest])


def test_prune_of_an_unknown_instance_is_refused(world: FakeWorld) -> None:
    with pytest.raises(InstanceNotFound, match="no instance named 'ghost'"):
        retention.prune(world.services, "ghost")


def test_prune_of_an_instance_known_only_by_its_snapshots_works(world: FakeWorld) -> None:
    kept = make_snapshot(world, "gone", at=T0)
    failed = make_snapshot(world, "gone", at=T0 + timedelta(hours=1),
                           status=SnapshotStatus.FAILED)
    (result,) = retention.prune(world.services, "gone")
    assert (result.policy, result.forgotten) == ({}, [failed.id])
    assert world.catalog.list_snapshots() == [kept]


def test_prune_reads_the_labels_of_the_current_container(world: FakeWorld) -> None:
    _record(world, "db", {"holdfast.retention": "last=5"})
    add_db(world, "db", labels={"holdfast.retention": "last=1"})
    history = _history(world, "db", 3)
    (result,) = retention.prune(world.services, "db")
    assert result.policy == {"last": 1}
    assert world.catalog.list_snapshots() == [history[-1]]


def test_with_docker_unreachable_prune_uses_the_last_labels_seen(world: FakeWorld) -> None:
    _record(world, "db", {"holdfast.retention": "last=1"})
    add_db(world, "db", labels={"holdfast.retention": "last=3"})
    world.docker.unreachable = True
    history = _history(world, "db", 3)
    (result,) = retention.prune(world.services)
    assert result.policy == {"last": 1}
    assert world.catalog.list_snapshots() == [history[-1]]


def test_an_api_override_decides_retention(world: FakeWorld) -> None:
    _record(world, "db", {"holdfast.retention": "last=5"})
    world.catalog.set_policy_override("db", {"retention": "last=1"})
    history = _history(world, "db", 3)
    result = retention.prune_instance(world.services, "db")
    assert result.policy == {"last": 1} and result.kept == [history[-1].id]


def test_prune_of_everything_covers_every_instance(world: FakeWorld) -> None:
    _record(world, "a", {"holdfast.retention": "last=1"})
    _history(world, "a", 2)
    make_snapshot(world, "b", status=SnapshotStatus.FAILED)
    results = retention.prune(world.services)
    assert [(r.instance, len(r.forgotten)) for r in results] == [("a", 1), ("b", 1)]
    assert [s.instance for s in world.catalog.list_snapshots()] == ["a"]


SNAPSHOTS = st.lists(st.tuples(st.sampled_from(list(SnapshotStatus)), st.booleans()),
                     max_size=10)


@settings(max_examples=40, deadline=None)
@given(SNAPSHOTS, st.integers(min_value=1, max_value=4))
def test_last_n_keeps_exactly_what_it_promises(
        tmp_path_factory: pytest.TempPathFactory,
        specs: list[tuple[SnapshotStatus, bool]], last: int) -> None:
    world = fake_world(tmp_path_factory.getbasetemp())
    _record(world, "db", {"holdfast.retention": f"last={last}"})
    made = [make_snapshot(world, "db", at=T0 + timedelta(hours=n), status=status, pinned=pinned,
                          runner=OTHER_HOST_RUNNER if status == SnapshotStatus.RUNNING else None)
            for n, (status, pinned) in enumerate(specs)]
    retention.prune_instance(world.services, "db")

    newest_first = made[::-1]
    complete = [s for s in newest_first if s.status == SnapshotStatus.COMPLETE]
    expected = ({s.id for s in newest_first if s.status == SnapshotStatus.RUNNING}
                | {s.id for s in complete if s.pinned}
                | {s.id for s in [s for s in complete if not s.pinned][:last]})
    assert {s.id for s in world.catalog.list_snapshots()} == expected
    if complete:
        assert complete[0].id in expected  # the newest complete survives
    stored = set(objects(world))
    for snapshot in made:
        assert (snapshot.data_key in stored) == (snapshot.id in expected)
