"""Verified restores through the use cases, on the fakes: a good snapshot
passes with the figures compared, a corrupt object or figures that disagree
fail with the figure that differs, and nothing the verification made (the
throwaway container, its volumes, its internal network) survives success,
failure, cancellation or a killed process."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from backup.encryption import new_identity
from backup.engines import get_engine
from backup.errors import Cancelled, IdentityRequired, SnapshotNotRestorable
from backup.pipeline import manifest_key
from backup.types import Manifest, Snapshot, SnapshotStatus
from restore.verification import NAME_PREFIX, RUNNER_LABEL, VERIFICATION_LABEL
from service.runs import AlreadyRunning, current_runner
from service.usecases import verification
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import (
    DEAD_RUNNER,
    add_db,
    make_snapshot,
    objects,
    replace_object,
    take_backup,
)

CONTENT = os.urandom(150_000)


@pytest.fixture
def snapshot(world: FakeWorld) -> Snapshot:
    add_db(world, "shop", content=CONTENT, volume="shop-data")
    return take_backup(world, "shop")


def _made_by_verification(world: FakeWorld) -> list[str]:
    """Every container, volume and network on the fake engine a verification made."""
    docker = world.docker
    return sorted([c.name for c in docker.containers.values() if c.name.startswith(NAME_PREFIX)]
                  + [v for v in docker.volumes if v.startswith(NAME_PREFIX)]
                  + [n for n in docker.networks if n.startswith(NAME_PREFIX)])


def _verify(world: FakeWorld, ref: str, **options: object) -> Snapshot:
    request = verification.prepare_verified_restore(world.services, ref)
    return verification.execute_verified_restore(world.services, request, **options)  # type: ignore[arg-type]


def test_a_good_snapshot_passes_with_the_figures_compared(
        world: FakeWorld, snapshot: Snapshot) -> None:
    verified = _verify(world, snapshot.id, job_id="job-1")
    result = verified.verification
    assert result is not None and result["result"] == "passed" and result["reason"] is None
    assert result["figures"]["bytes"] == len(CONTENT) and result["exact"] is True
    assert result["job_id"] == "job-1" and result["differences"] == []
    assert verified.verified_at is not None
    assert world.catalog.get_snapshot(snapshot.id) == verified
    assert _made_by_verification(world) == []


def test_the_copy_runs_on_an_internal_network_of_its_own_with_nothing_published(
        world: FakeWorld, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[tuple[str, ...], bool, int, dict[str, str]]] = []
    engine = get_engine("fake")
    measure = type(engine).measure

    def spy(self: object, container: object, runner: object, databases: object = ()) -> object:
        copy = world.docker.by_name(container.name)  # type: ignore[attr-defined]
        seen.append((tuple(copy.networks), world.docker.network_internal(copy.networks[0]),
                     len(copy.published), dict(copy.labels)))
        return measure(self, container, runner, databases)  # type: ignore[arg-type]

    monkeypatch.setattr(type(engine), "measure", spy)
    _verify(world, snapshot.id)
    [(networks, internal, published, labels)] = seen
    assert len(networks) == 1 and networks[0].startswith(NAME_PREFIX + snapshot.id)
    assert internal and published == 0
    assert labels[VERIFICATION_LABEL] == snapshot.id and labels[RUNNER_LABEL]


def test_a_corrupt_object_fails_and_says_so(world: FakeWorld, snapshot: Snapshot) -> None:
    data = bytearray(objects(world)[snapshot.data_key])
    data[len(data) // 3] ^= 0xFF
    replace_object(world, snapshot.data_key, bytes(data))
    verified = _verify(world, snapshot.id)
    assert verified.verification is not None
    assert verified.verification["result"] == "failed"
    assert "the restore failed" in verified.verification["reason"]
    assert "corrupt" in verified.verification["reason"]
    assert _made_by_verification(world) == []


def _rewrite_figures(world: FakeWorld, snapshot: Snapshot, **values: int | str) -> None:
    key = manifest_key(snapshot.instance, snapshot.id)
    manifest = json.loads(objects(world)[key])
    manifest["figures"]["values"].update(values)
    replace_object(world, key, json.dumps(manifest).encode())


def test_recorded_figures_that_disagree_fail_naming_the_figure(
        world: FakeWorld, snapshot: Snapshot) -> None:
    _rewrite_figures(world, snapshot, bytes=len(CONTENT) + 1)
    verified = _verify(world, snapshot.id)
    result = verified.verification
    assert result is not None and result["result"] == "failed"
    assert result["reason"] == f"bytes: {len(CONTENT) + 1} recorded, {len(CONTENT)} restored"
    assert result["differences"] == [{"name": "bytes", "recorded": len(CONTENT) + 1,
                                      "measured": len(CONTENT)}]
    assert _made_by_verification(world) == []


def test_a_snapshot_from_before_figures_passes_on_restoring_and_says_what_it_checked(
        world: FakeWorld, snapshot: Snapshot) -> None:
    key = manifest_key(snapshot.instance, snapshot.id)
    manifest = json.loads(objects(world)[key])
    manifest.pop("figures")
    replace_object(world, key, json.dumps(manifest).encode())
    result = _verify(world, snapshot.id).verification
    assert result is not None and result["result"] == "passed" and result["exact"] is None
    assert "no figures were recorded" in result["method"]


def test_a_cancelled_verification_leaves_nothing_and_records_nothing(
        world: FakeWorld, snapshot: Snapshot) -> None:
    request = verification.prepare_verified_restore(world.services, snapshot.id)
    stop = threading.Event()

    def cancel_once_created(phase: object) -> None:
        if str(phase) == "loading":
            stop.set()

    with pytest.raises(Cancelled):
        verification.execute_verified_restore(world.services, request, cancelled=stop.is_set,
                                              phase=cancel_once_created)
    assert _made_by_verification(world) == []
    found = world.catalog.get_snapshot(snapshot.id)
    assert found is not None and found.verification is None and found.verified_at is None


def test_only_complete_snapshots_are_verified(world: FakeWorld) -> None:
    failed = make_snapshot(world, "shop", status=SnapshotStatus.FAILED)
    with pytest.raises(SnapshotNotRestorable, match="only complete"):
        verification.prepare_verified_restore(world.services, failed.id)
    assert _made_by_verification(world) == []


def test_two_verifications_of_one_instance_do_not_run_at_once(
        world: FakeWorld, snapshot: Snapshot) -> None:
    request = verification.prepare_verified_restore(world.services, snapshot.id)
    world.services.verify_gate.claim("shop", "job-other", activity="verification")
    with pytest.raises(AlreadyRunning, match="a verification of shop is already running"):
        verification.execute_verified_restore(world.services, request)
    world.services.verify_gate.release("shop", "job-other")
    assert world.services.gate.holder("shop") is None  # backups are not held up by it


def test_an_encrypted_snapshot_needs_the_identity(tmp_path: Path) -> None:
    text, recipient = new_identity()
    identity = tmp_path / "id.txt"
    identity.write_text(text)
    world = fake_world(tmp_path / "w", {"HOLDFAST_AGE_RECIPIENTS": recipient})
    add_db(world, "shop", content=CONTENT)
    snapshot = take_backup(world, "shop")
    with pytest.raises(IdentityRequired):
        verification.prepare_verified_restore(world.services, snapshot.id)
    world.services.settings.identity_file = identity
    result = _verify(world, snapshot.id).verification
    assert result is not None and result["result"] == "passed"


def test_leftovers_of_a_dead_process_are_removed_and_a_live_ones_kept(
        world: FakeWorld, snapshot: Snapshot) -> None:
    docker = world.docker
    dead = {VERIFICATION_LABEL: snapshot.id, RUNNER_LABEL: DEAD_RUNNER}
    live = {VERIFICATION_LABEL: snapshot.id,
            RUNNER_LABEL: current_runner()}
    for name, labels in ((f"{NAME_PREFIX}{snapshot.id}-dead01", dead),
                         (f"{NAME_PREFIX}{snapshot.id}-live01", live)):
        docker.create_network(name, internal=True, labels=labels)
        docker.add_container(name, labels=labels, volume=f"{name}-data", running=True)
        docker.volumes[f"{name}-data"].labels = dict(labels)
    lookalike = f"{NAME_PREFIX}not-ours"
    docker.add_container(lookalike, labels={}, volume="x-data")
    removed = verification.remove_verification_leftovers(world.services)
    dead_name = f"{NAME_PREFIX}{snapshot.id}-dead01"
    assert sorted(removed) == sorted([dead_name, f"{dead_name}-data", dead_name])
    assert f"{NAME_PREFIX}{snapshot.id}-live01" in docker.networks
    assert lookalike in {c.name for c in docker.containers.values()}


def test_the_manifest_figures_come_from_the_backup_itself(
        world: FakeWorld, snapshot: Snapshot) -> None:
    manifest = Manifest.from_bytes(objects(world)[manifest_key("shop", snapshot.id)])
    assert manifest.figures is not None
    assert manifest.figures["values"]["bytes"] == len(CONTENT)


def test_a_cancel_heard_while_measuring_records_no_verdict(
        world: FakeWorld, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    engine = get_engine("fake")
    measure = type(engine).measure

    def measure_then_cancel(self: object, container: object, runner: object,
                            databases: object = ()) -> object:
        figures = measure(self, container, runner, databases)  # type: ignore[arg-type]
        stop.set()  # the cancel arrives as measuring ends
        return figures

    monkeypatch.setattr(type(engine), "measure", measure_then_cancel)
    request = verification.prepare_verified_restore(world.services, snapshot.id)
    with pytest.raises(Cancelled):
        verification.execute_verified_restore(world.services, request, cancelled=stop.is_set)
    found = world.catalog.get_snapshot(snapshot.id)
    assert found is not None and found.verification is None
    assert _made_by_verification(world) == []
