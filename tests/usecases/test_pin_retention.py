"""Retention never removes a pinned snapshot, through the use cases: whatever
mix of complete and failed snapshots, pins and unpins (by id, through the
checkpoint use cases, so only complete snapshots end up pinned) and whatever
retention policy, pruning deletes no pinned row and no object of one."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backup.errors import Conflict
from backup.pipeline import manifest_key
from backup.retention import KINDS
from backup.types import Manifest, SnapshotStatus
from service.records import InstanceRecord
from service.usecases import checkpoints, retention
from tests.fakes.services import fake_world
from tests.usecases.support import T0, make_snapshot, objects, snapshot_keys

steps = st.lists(st.tuples(st.integers(0, 24 * 40),  # minutes after T0, in 40-minute steps
                           st.sampled_from([SnapshotStatus.COMPLETE, SnapshotStatus.COMPLETE,
                                            SnapshotStatus.FAILED]),
                           st.sampled_from(["none", "pin", "pin-unpin", "pin-unpin-pin"])),
                 max_size=14)
policies = st.dictionaries(st.sampled_from(KINDS), st.integers(1, 3), max_size=3)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, policies)
def test_pruning_never_removes_a_pinned_snapshot(
        history: list[tuple[int, SnapshotStatus, str]], policy: dict[str, int]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        world = fake_world(Path(scratch))
        label = ",".join(f"{k}={v}" for k, v in policy.items())
        world.catalog.upsert_instance(InstanceRecord(
            name="db", engine="fake", container_id=None, container_name="db",
            image="fake/db:1", labels={"holdfast.retention": label} if label else {},
            error=None, first_seen=T0, last_seen=T0))
        for at, status, pins in history:
            snapshot = make_snapshot(world, "db", at=T0 + timedelta(minutes=40 * at),
                                     status=status)
            for step in pins.split("-"):
                try:
                    if step == "pin":
                        checkpoints.pin_snapshot(world.services, snapshot.id)
                    elif step == "unpin":
                        checkpoints.unpin_snapshot(world.services, snapshot.id)
                except Conflict:
                    assert status is SnapshotStatus.FAILED  # only complete ones pin
        pinned = [s for s in world.catalog.list_snapshots() if s.pinned]
        assert all(s.status is SnapshotStatus.COMPLETE for s in pinned)
        for snapshot in pinned:  # the manifest says so too, for a rebuild
            raw = objects(world)[manifest_key("db", snapshot.id)]
            assert Manifest.from_bytes(raw).pinned

        result = retention.prune(world.services, "db")[0]

        assert not {s.id for s in pinned} & set(result.forgotten)
        remaining = {s.id for s in world.catalog.list_snapshots()}
        assert {s.id for s in pinned} <= remaining
        stored = set(objects(world))
        for snapshot in pinned:
            assert snapshot_keys(snapshot) <= stored
