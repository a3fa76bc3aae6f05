"""Target checks: each target proves it can store, return and delete an object."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from service.usecases import targets
from tests.fakes.services import FakeWorld, fake_world
from tests.usecases.support import objects


def test_every_configured_target_checks_ok_and_keeps_no_probe(world: FakeWorld) -> None:
    checks = targets.check_targets(world.services)
    assert [(c.name, c.url, c.ok, c.error) for c in checks] == [
        ("local", "memory://local", True, None), ("offsite", "memory://offsite", True, None)]
    assert objects(world) == {} and objects(world, "offsite") == {}


def test_only_the_named_targets_are_checked(world: FakeWorld) -> None:
    assert [c.name for c in targets.check_targets(world.services, ["offsite"])] == ["offsite"]


def test_a_broken_target_is_reported_and_the_others_still_checked(tmp_path: Path) -> None:
    world = fake_world(tmp_path, env={"HOLDFAST_TARGET_BAD": "nope://x"})
    checks = {c.name: c for c in targets.check_targets(world.services)}
    assert sorted(checks) == ["bad", "local", "offsite"]
    bad = checks["bad"]
    assert not bad.ok and bad.url == "nope://x"
    assert bad.error is not None
    assert "target 'bad': unsupported URL scheme in 'nope://x'" in bad.error
    assert bad.to_json()["ok"] is False
    assert checks["local"].ok and checks["offsite"].ok


def test_an_unknown_target_name_is_reported_not_raised(world: FakeWorld) -> None:
    check = targets.check_target(world.services, "nowhere")
    assert not check.ok and check.url == ""
    assert check.error is not None and "no storage target named 'nowhere'" in check.error


def test_a_target_that_returns_other_bytes_fails_and_the_probe_is_deleted(
        world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = world.storage("local")

    @contextmanager
    def garbled(key: str) -> Iterator[Iterator[bytes]]:
        yield iter([b"not what was written"])

    def open_garbled(key: str) -> AbstractContextManager[Iterator[bytes]]:
        return garbled(key)

    monkeypatch.setattr(storage, "open", open_garbled)
    check = targets.check_target(world.services, "local")
    assert not check.ok
    assert check.error == "target 'local': the probe read back differs from what was written"
    assert list(storage.list()) == []
