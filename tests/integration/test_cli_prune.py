"""``holdfast prune``: retention from the labels, applied after each backup and on
demand, with ``--dry-run`` listing what would go and deleting nothing."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from tests.integration.conftest import Holdfast

pytestmark = pytest.mark.docker


def test_retention_after_backup_and_prune_with_dry_run(
    holdfast: Holdfast, postgres_container_factory: Any,
) -> None:
    name = f"prune-{secrets.token_hex(3)}"
    first = postgres_container_factory(labels={"holdfast.name": name})
    taken = [holdfast.json("backup", name)["id"] for _ in range(3)]
    assert {s["id"] for s in holdfast.json("snapshots", name)} == set(taken)  # keep all

    # Re-created with a retention label: the history follows the name.
    first.remove(force=True)
    postgres_container_factory(labels={"holdfast.name": name, "holdfast.retention": "last=1"})

    # Newest first, by when each was taken (ids taken within one second sort
    # by their random suffix, not by time).
    planned = holdfast.json("prune", name, "--dry-run")
    assert planned == [{"instance": name, "policy": {"last": 1}, "kept": [taken[-1]],
                        "forgotten": taken[-2::-1], "dry_run": True,
                        "failures": []}]
    assert sorted(p.name for p in (holdfast.snapshots_dir / name).iterdir()) == sorted(taken)

    applied = holdfast.json("prune", name)
    assert applied[0]["forgotten"] == planned[0]["forgotten"] and not applied[0]["dry_run"]
    assert applied[0]["failures"] == []
    assert [s["id"] for s in holdfast.json("snapshots", name)] == [taken[-1]]
    assert [p.name for p in (holdfast.snapshots_dir / name).iterdir()] == [taken[-1]]

    # From now on retention runs after every backup.
    newest = holdfast.json("backup", name)["id"]
    assert [s["id"] for s in holdfast.json("snapshots", name)] == [newest]

    _, line = holdfast.fail("prune", "no-such-instance", code=3)
    assert "no-such-instance" in line
