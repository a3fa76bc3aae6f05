"""Checkpoints against a real PostgreSQL container: the manifest on disk carries
a backup's tags and pin, pin and unpin rewrite it, and a catalog rebuilt from
the manifests alone (the catalog file deleted) has the tags and pins back."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from tests.harness.docker_fixtures import PostgresFactory
from tests.integration.conftest import Holdfast

pytestmark = pytest.mark.docker


def _manifest(holdfast: Holdfast, name: str, snapshot_id: str) -> dict[str, Any]:
    path = holdfast.snapshots_dir / name / snapshot_id / "manifest.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_tags_and_pins_survive_a_catalog_rebuild(
    holdfast: Holdfast, postgres_container_factory: PostgresFactory,
) -> None:
    name = f"ckpt-{secrets.token_hex(3)}"
    postgres_container_factory(labels={"holdfast.name": name})
    first = holdfast.json("backup", name, "--tag", "release=v1.4.2", "--tag", "env=prod",
                          "--pin")
    second = holdfast.json("backup", name, "--tag", "release=v1.4.3")
    assert first["tags"] == {"env": "prod", "release": "v1.4.2"} and first["pinned"] is True
    manifest = _manifest(holdfast, name, first["id"])
    assert manifest["tags"] == {"env": "prod", "release": "v1.4.2"} and manifest["pinned"]

    # Pin and unpin rewrite the manifests in place.
    assert holdfast.json("pin", second["id"])["pinned"] is True
    assert holdfast.json("unpin", first["id"])["pinned"] is False
    assert _manifest(holdfast, name, second["id"])["pinned"] is True
    assert _manifest(holdfast, name, first["id"])["pinned"] is False

    # A fresh catalog: nothing but the manifests in the target to go on.
    files = holdfast.catalog_files()
    assert files, f"no catalog file in {holdfast.data_dir}"
    for path in files:
        path.unlink()
    assert holdfast.json("snapshots", name) == []
    report = holdfast.json("catalog", "rebuild")
    assert report["added"] == 2

    rebuilt = {s["id"]: s for s in holdfast.json("snapshots", name)}
    assert (rebuilt[first["id"]]["tags"], rebuilt[first["id"]]["pinned"]) == (
        {"env": "prod", "release": "v1.4.2"}, False)
    assert (rebuilt[second["id"]]["tags"], rebuilt[second["id"]]["pinned"]) == (
        {"release": "v1.4.3"}, True)
    by_tag = holdfast.json("snapshots", name, "--tag", "release=v1.4.3")
    assert [s["id"] for s in by_tag] == [second["id"]]
    # The rebuilt pin holds: a pinned snapshot is not deleted.
    _, line = holdfast.fail("delete", second["id"], code=4)
    assert "unpin it first" in line
