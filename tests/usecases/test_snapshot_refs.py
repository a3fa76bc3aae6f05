"""Snapshot references: an exact id wins, an unambiguous prefix of at least six
characters resolves (for look-up, delete and restore), an ambiguous one is refused
listing candidates, and a reference that cannot be an id is never looked up."""

from __future__ import annotations

import pytest

from backup.errors import InvalidInput, SnapshotNotFound
from backup.types import Snapshot
from service.usecases import restores, snapshots
from service.usecases.snapshots import MIN_PREFIX, resolve_snapshot
from tests.fakes.services import FakeWorld
from tests.usecases.support import add_db, make_snapshot, take_backup


def _with_id(world: FakeWorld, snapshot_id: str) -> Snapshot:
    """A catalog row with a chosen id (the objects of another, unused here)."""
    row = make_snapshot(world, "shop")
    world.catalog.delete_snapshot(row.id)
    renamed = row.with_changes(id=snapshot_id)
    world.catalog.add_snapshot(renamed)
    return renamed


def test_an_exact_id_and_a_unique_prefix_resolve(world: FakeWorld) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    assert resolve_snapshot(world.services, snapshot.id) == snapshot
    assert resolve_snapshot(world.services, snapshot.id[:-2]) == snapshot
    assert snapshots.get_snapshot(world.services, snapshot.id[:MIN_PREFIX]) == snapshot


def test_an_exact_id_wins_over_the_longer_ids_it_prefixes(world: FakeWorld) -> None:
    exact = _with_id(world, "20260101T000000Z-abc")
    _with_id(world, "20260101T000000Z-abcdef")
    assert resolve_snapshot(world.services, "20260101T000000Z-abc") == exact


def test_an_ambiguous_prefix_lists_a_few_candidates(world: FakeWorld) -> None:
    ids = [f"20260101T00000{n}Z-aaaaaa" for n in range(7)]
    for snapshot_id in ids:
        _with_id(world, snapshot_id)
    _with_id(world, "20260101T000001Z-bbbbbb")
    with pytest.raises(InvalidInput, match=r"prefix '20260101T000001Z' is ambiguous") as two:
        resolve_snapshot(world.services, "20260101T000001Z")
    assert "matches 20260101T000001Z-aaaaaa, 20260101T000001Z-bbbbbb; give more" in str(
        two.value)
    with pytest.raises(InvalidInput) as many:
        resolve_snapshot(world.services, "20260101")
    message = str(many.value)
    listed = sorted([*ids, "20260101T000001Z-bbbbbb"])
    assert f"it matches {', '.join(listed[:5])}, ...; give more" in message
    assert listed[5] not in message


def test_no_match_is_not_found_and_a_short_prefix_says_the_minimum(world: FakeWorld) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    with pytest.raises(SnapshotNotFound, match=r"no snapshot '19990101'; 'holdfast snapshots'"):
        resolve_snapshot(world.services, "19990101")
    with pytest.raises(SnapshotNotFound, match=f"at least {MIN_PREFIX} characters"):
        resolve_snapshot(world.services, snapshot.id[:MIN_PREFIX - 1])


@pytest.mark.parametrize("ref", ["", "a b", "x\n", "20260101T000000Z-abc\n", "a/../b",
                                 "a%", "\x00", "é" * 6, "a" * 129])
def test_a_reference_that_cannot_be_an_id_is_bad_input(world: FakeWorld, ref: str) -> None:
    world.catalog.down = True  # never sent to the catalog
    with pytest.raises(InvalidInput, match="is not a snapshot id") as caught:
        resolve_snapshot(world.services, ref)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200


def test_delete_and_restore_take_a_prefix(world: FakeWorld) -> None:
    add_db(world, "shop")
    doomed, kept = take_backup(world, "shop"), take_backup(world, "shop")
    assert snapshots.delete_snapshot(world.services, doomed.id[:-1]) == doomed
    assert world.catalog.list_snapshots() == [kept]
    result = restores.run_restore(world.services, kept.id[:-1], "copy")
    assert result.snapshot_id == kept.id
    assert world.docker.data_of("copy") == world.docker.data_of("shop")
