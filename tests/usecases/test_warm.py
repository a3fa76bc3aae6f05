"""Warm copies through the use cases, on the fakes: a refresh restores the newest snapshot
(one that passed a verified restore first) into a stopped ``NAME-warm-<time>`` and then removes
the copies it supersedes; a restore of that snapshot clones the warm volumes (reflink, or a
plain copy with a note) instead of loading the stored object, gets the warm copy's bytes, and
what it writes never reaches the warm copy; ``--no-warm``, a warm copy of another snapshot, a
running one or another image stream instead and say why; removals, the ``holdfast.warm`` label,
the refresh after a verified restore, and failures that leave nothing behind."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from backup.errors import DockerRefused, ExecFailed, InvalidInput, VolumeInUse
from backup.types import Snapshot
from restore.copies import RestoreOptions
from restore.planner import RESTORED_FROM_LABEL
from restore.swap import stamp
from restore.warm import WARM_OF_LABEL, WARM_STAMP_LABEL, WarmCopy, warm_name
from service.usecases import restores, verification, warm
from service.usecases.warm_copies import list_warm_copies, remove_warm_copies, remove_warm_copy
from tests.fakes.docker import LOAD
from tests.fakes.services import FakeWorld
from tests.usecases.support import T0, add_db, take_backup

OLD, NEW = os.urandom(60_000), os.urandom(70_000)
WARM = {"holdfast.warm": "true"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """Each refresh begins a minute after the last (stamps have whole seconds)."""
    ticks: list[datetime] = []

    def now() -> datetime:
        ticks.append(T0 + timedelta(minutes=len(ticks)))
        return ticks[-1]

    monkeypatch.setattr(warm, "utcnow", now)
    yield ticks


def _next_name(clock: list[datetime], instance: str = "shop") -> str:
    return warm_name(instance, stamp(T0 + timedelta(minutes=len(clock))))


def _two_snapshots(world: FakeWorld, labels: dict[str, str] | None = None
                   ) -> tuple[Snapshot, Snapshot]:
    """``shop`` backed up holding OLD, then holding NEW."""
    add_db(world, "shop", content=OLD, volume="shop-data",
           labels=WARM if labels is None else labels)
    old = take_backup(world, "shop")
    world.docker.volumes["shop-data"].content = NEW
    return old, take_backup(world, "shop")


def _passed(world: FakeWorld, snapshot: Snapshot) -> Snapshot:
    passed = replace(snapshot, verification={"result": "passed", "reason": None})
    world.catalog.save_snapshot(passed)
    return passed


def _warm_data(world: FakeWorld, copy: WarmCopy) -> bytes:
    return world.docker.volumes[copy.volumes["/data"]].content


def _loads_into(world: FakeWorld, name: str) -> int:
    return sum(1 for container, argv, _ in world.docker.execs
               if container == name and argv[:1] == [LOAD])


def _restore(world: FakeWorld, snapshot: Snapshot, name: str, *, image: str | None = None,
             warm_wanted: bool = True) -> restores.RestoreResult:
    request = restores.prepare_restore(world.services, snapshot.id, name, image,
                                       options=RestoreOptions(warm=warm_wanted))
    return restores.execute_restore(world.services, request)


# --- refresh ------------------------------------------------------------------------------


def test_a_refresh_makes_a_stopped_warm_copy_of_the_newest_snapshot(
        world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    name = _next_name(clock)
    result = warm.refresh_warm(world.services, "shop")
    assert (result.refreshed, result.removed, result.warm.name) == (True, [], name)
    assert result.warm.snapshot_id == new.id and result.warm.instance == "shop"
    container = world.docker.by_name(name)
    assert not container.running and container.published == ()
    assert container.labels == {RESTORED_FROM_LABEL: new.id, "holdfast.source-instance": "shop",
                                WARM_OF_LABEL: "shop", WARM_STAMP_LABEL: stamp(clock[0])}
    assert container.volumes == {f"{name}-data": "/data"}
    assert _warm_data(world, result.warm) == NEW
    assert result.to_json()["warm"]["status"] == "stopped"
    assert world.docker.data_of("shop") == NEW and world.docker.by_name("shop").running


def test_a_refresh_prefers_the_newest_snapshot_that_passed_a_verified_restore(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, _ = _two_snapshots(world)
    _passed(world, old)
    result = warm.refresh_warm(world.services, "shop")
    assert result.warm.snapshot_id == old.id and _warm_data(world, result.warm) == OLD


def test_a_refresh_of_the_snapshot_a_warm_copy_holds_does_nothing(
        world: FakeWorld, clock: list[datetime]) -> None:
    _two_snapshots(world)
    first = warm.refresh_warm(world.services, "shop")
    before = sorted(world.docker.volumes)
    again = warm.refresh_warm(world.services, "shop")
    assert (again.refreshed, again.warm) == (False, first.warm)
    assert sorted(world.docker.volumes) == before and len(list_warm_copies(world.services)) == 1


def test_a_newer_refresh_removes_the_warm_copies_it_supersedes(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, new = _two_snapshots(world)
    first = warm.refresh_warm(world.services, "shop", old.id)
    second = warm.refresh_warm(world.services, "shop", new.id)
    assert second.refreshed and second.removed == [first.warm.name]
    assert [w.name for w in list_warm_copies(world.services, "shop")] == [second.warm.name]
    assert first.warm.container_id not in world.docker.containers
    assert first.warm.volumes["/data"] not in world.docker.volumes
    assert _warm_data(world, second.warm) == NEW


def test_a_refresh_whose_stop_fails_leaves_nothing_and_keeps_the_old_copy(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, new = _two_snapshots(world)
    first = warm.refresh_warm(world.services, "shop", old.id)
    doomed = _next_name(clock)
    world.docker.faults.append(("stop", doomed, "container is marked for removal"))
    with pytest.raises(DockerRefused, match="marked for removal"):
        warm.refresh_warm(world.services, "shop", new.id)
    assert doomed not in world.docker.container_names()
    assert not [v for v in world.docker.volumes if v.startswith(doomed)]
    assert list_warm_copies(world.services, "shop") == [first.warm]
    assert _warm_data(world, first.warm) == OLD


def test_a_refresh_of_another_instance_s_snapshot_is_refused(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, _ = _two_snapshots(world)
    add_db(world, "blog")
    with pytest.raises(InvalidInput, match=f"snapshot {old.id} is of shop, not blog"):
        warm.refresh_warm(world.services, "blog", old.id)
    assert list_warm_copies(world.services) == []


# --- restores that clone --------------------------------------------------------------------


def test_a_restore_clones_the_warm_copy_with_reflinks_and_writes_stay_in_the_copy(
        world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop").warm
    result = _restore(world, new, "copy")
    assert (result.method, result.warm, result.note) == ("reflink", held.name, None)
    assert result.to_json()["method"] == "reflink"
    assert world.docker.data_of("copy") == NEW and world.docker.by_name("copy").running
    assert _loads_into(world, "copy") == 0, "the snapshot was streamed, not cloned"
    copy = world.docker.by_name("copy")
    world.docker.run(copy.id, [LOAD], stdin=[b"written in the copy"])
    assert world.docker.data_of("copy") == b"written in the copy"
    assert _warm_data(world, held) == NEW and not world.docker.by_name(held.name).running
    assert world.docker.data_of(_restore(world, new, "copy2").container) == NEW


def test_without_reflinks_a_restore_copies_the_warm_volumes_and_says_why(
        world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop").warm
    world.docker.reflinks = False
    result = _restore(world, new, "copy")
    assert (result.method, result.warm, result.note) == ("copy", held.name,
                                                          "no reflinks in the fake")
    assert world.docker.data_of("copy") == NEW and _loads_into(world, "copy") == 0
    assert world.catalog.live_copies("copy")[0].volumes == ("copy-data",)


def test_no_warm_streams_the_snapshot_past_a_warm_copy(
        world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    warm.refresh_warm(world.services, "shop")
    result = _restore(world, new, "copy", warm_wanted=False)
    assert (result.method, result.warm) == ("stream", None)
    assert world.docker.data_of("copy") == NEW and _loads_into(world, "copy") == 1


def test_no_warm_says_the_warm_copy_was_not_used(world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    warm.refresh_warm(world.services, "shop")
    assert _restore(world, new, "copy", warm_wanted=False).note == \
        "warm copies not used (asked not to)"


def test_a_warm_copy_of_another_snapshot_is_not_used_and_the_result_says_so(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop", old.id).warm
    result = _restore(world, new, "copy")
    assert (result.method, result.warm) == ("stream", None)
    assert result.note == f"no warm copy of snapshot {new.id} (the newest is of {old.id})"
    assert world.docker.data_of("copy") == NEW and _warm_data(world, held) == OLD


def test_a_running_warm_copy_is_not_cloned(world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop").warm
    world.docker.start(held.container_id)
    result = _restore(world, new, "copy")
    assert (result.method, result.warm) == ("stream", None)
    assert result.note is not None and result.note.startswith(f"warm copy {held.name} is running")
    assert world.docker.data_of("copy") == NEW


def test_a_restore_onto_another_image_streams_and_says_so(
        world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop").warm
    world.docker.images.add("fake/db:2")
    result = _restore(world, new, "copy", image="fake/db:2")
    assert (result.method, result.warm) == ("stream", None)
    assert result.note == (f"warm copy {held.name} runs fake/db:1, not fake/db:2: "
                           "the snapshot streamed")
    assert world.docker.data_of("copy") == NEW


def test_a_failing_copy_is_undone_and_the_warm_copy_kept(
        world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop").warm
    world.docker.copy_error = "cp: write error: No space left on device"
    request = restores.prepare_restore(world.services, new.id, "copy")
    assert request.warm.warm == held
    with pytest.raises(ExecFailed, match="No space left"):
        restores.execute_restore(world.services, request)
    assert "copy" not in world.docker.container_names()
    assert not [v for v in world.docker.volumes if v.startswith("copy")]
    assert world.catalog.live_copies("copy") == []
    assert _warm_data(world, held) == NEW and list_warm_copies(world.services) == [held]


# --- removal ----------------------------------------------------------------------------


def test_removing_a_warm_copy_removes_its_container_and_volumes_only(
        world: FakeWorld, clock: list[datetime]) -> None:
    _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop").warm
    remove_warm_copy(world.services, held)
    assert held.container_id not in world.docker.containers
    assert sorted(world.docker.volumes) == ["shop-data"] and world.docker.data_of("shop") == NEW
    assert list_warm_copies(world.services) == []


def test_removing_the_warm_copies_of_an_instance_leaves_the_others(
        world: FakeWorld, clock: list[datetime]) -> None:
    _two_snapshots(world)
    add_db(world, "blog", labels=WARM)
    take_backup(world, "blog")
    shop = warm.refresh_warm(world.services, "shop").warm
    blog = warm.refresh_warm(world.services, "blog").warm
    assert remove_warm_copies(world.services, "shop") == [shop]
    assert list_warm_copies(world.services) == [blog]
    assert remove_warm_copies(world.services, "shop") == []
    with pytest.raises(InvalidInput):
        remove_warm_copies(world.services, "")


def test_a_warm_copy_that_cannot_be_removed_does_not_stop_the_others(
        world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop").warm
    world.docker.add_container(  # one left by a killed refresh, older
        "shop-warm-20250101T000000Z", running=False, volume="leftover-data",
        labels={WARM_OF_LABEL: "shop", RESTORED_FROM_LABEL: new.id,
                WARM_STAMP_LABEL: "20250101T000000Z"})
    world.docker.add_container("bystander", running=False)
    world.docker.by_name("bystander").volumes[held.volumes["/data"]] = "/peek"
    with pytest.raises(VolumeInUse):
        remove_warm_copies(world.services, "shop")
    assert "shop-warm-20250101T000000Z" not in world.docker.container_names()
    assert "leftover-data" not in world.docker.volumes
    assert held.volumes["/data"] in world.docker.volumes, "the volume in use is kept"


# --- the holdfast.warm label and verified restores -------------------------------------------


@pytest.mark.parametrize(("labels", "wanted"), [(WARM, True), ({"holdfast.warm": "false"}, False),
                                                ({}, False)])
def test_the_warm_label_says_whether_an_instance_wants_a_warm_copy(
        world: FakeWorld, labels: dict[str, str], wanted: bool) -> None:
    add_db(world, "shop", labels=labels)
    take_backup(world, "shop")  # the catalog learns the labels
    assert warm.wants_warm(world.services, "shop") is wanted
    assert warm.wants_warm(world.services, "nobody") is False


def test_a_passing_verified_restore_refreshes_the_warm_copy(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, new = _two_snapshots(world)
    first = warm.refresh_warm(world.services, "shop", old.id).warm
    verified = verification.execute_verified_restore(
        world.services, verification.prepare_verified_restore(world.services, new.id))
    assert (verified.verification or {})["result"] == "passed"
    [held] = list_warm_copies(world.services, "shop")
    assert held.snapshot_id == new.id and held.name != first.name
    assert _warm_data(world, held) == NEW


def test_no_refresh_when_the_warm_copy_holds_the_snapshot_or_a_newer_one(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, new = _two_snapshots(world)
    held = warm.refresh_warm(world.services, "shop", new.id).warm
    assert warm.refresh_after_verification(world.services, _passed(world, new)) is None
    assert warm.refresh_after_verification(world.services, _passed(world, old)) is None
    assert list_warm_copies(world.services, "shop") == [held]


def test_a_refresh_after_verification_replaces_an_older_warm_copy(
        world: FakeWorld, clock: list[datetime]) -> None:
    old, new = _two_snapshots(world)
    first = warm.refresh_warm(world.services, "shop", old.id).warm
    name = warm.refresh_after_verification(world.services, _passed(world, new))
    assert name is not None and name != first.name
    assert [(w.name, w.snapshot_id) for w in list_warm_copies(world.services)] == [(name, new.id)]


def test_no_refresh_unless_passed_and_wanted(world: FakeWorld, clock: list[datetime]) -> None:
    _, new = _two_snapshots(world, labels={})
    assert warm.refresh_after_verification(world.services, _passed(world, new)) is None
    add_db(world, "blog", labels=WARM)
    failed = replace(take_backup(world, "blog"), verification={"result": "failed"})
    assert warm.refresh_after_verification(world.services, failed) is None
    assert warm.refresh_after_verification(world.services, take_backup(world, "blog")) is None
    assert list_warm_copies(world.services) == []


def test_a_refresh_after_verification_that_fails_is_logged_and_leaves_nothing(
        world: FakeWorld, clock: list[datetime], caplog: pytest.LogCaptureFixture) -> None:
    _, new = _two_snapshots(world)
    doomed = _next_name(clock)
    world.docker.faults.append(("stop", doomed, "the engine is shutting down"))
    assert warm.refresh_after_verification(world.services, _passed(world, new)) is None
    assert "could not refresh the warm copy of shop" in caplog.text
    assert doomed not in world.docker.container_names()
    assert sorted(world.docker.volumes) == ["shop-data"]
