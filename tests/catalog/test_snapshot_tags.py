"""Snapshot tags and pins in the catalog, on SQLite (full and quick reader),
PostgreSQL and the in-memory fake: tags round trip, every wanted tag must match
(key and value exactly), and the filter combines with instance and status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from backup.types import SnapshotStatus
from service.ports import CatalogPort
from tests.catalog.test_catalog import T0, make_snapshot


def _add(catalog: CatalogPort, id: str, at: int, tags: dict[str, str],
         instance: str = "shop-db", status: SnapshotStatus = SnapshotStatus.COMPLETE,
         pinned: bool = False) -> None:
    catalog.add_snapshot(make_snapshot(id, instance=instance, tags=tags, status=status,
                                       pinned=pinned, created_at=T0 + timedelta(minutes=at)))


def test_tags_and_pin_round_trip(catalog: CatalogPort) -> None:
    tags = {"release": "v1.4.2", "ci.run/id": "a:b=c d", "empty": ""}
    _add(catalog, "s1", 0, tags, pinned=True)
    got = catalog.get_snapshot("s1")
    assert got is not None
    assert dict(got.tags) == tags
    assert got.pinned is True
    assert [dict(s.tags) for s in catalog.list_snapshots()] == [tags]


def test_a_snapshot_without_tags_reads_back_empty(catalog: CatalogPort) -> None:
    _add(catalog, "s1", 0, {})
    got = catalog.get_snapshot("s1")
    assert got is not None and dict(got.tags) == {}
    assert got.to_json()["tags"] == {}


def test_saving_changes_the_tags_and_pin(catalog: CatalogPort) -> None:
    _add(catalog, "s1", 0, {"release": "v1"})
    first = catalog.get_snapshot("s1")
    assert first is not None
    catalog.save_snapshot(first.with_changes(tags={"release": "v2"}, pinned=True))
    got = catalog.get_snapshot("s1")
    assert got is not None and dict(got.tags) == {"release": "v2"} and got.pinned


def test_filter_by_tags_needs_every_tag(catalog: CatalogPort) -> None:
    _add(catalog, "old", 0, {"release": "v1.4.2", "env": "prod"})
    _add(catalog, "new", 2, {"release": "v1.4.2"})
    _add(catalog, "other", 1, {"release": "v1.4.3", "env": "prod"})
    _add(catalog, "none", 3, {})

    def ids(**filters: Any) -> list[str]:
        return [s.id for s in catalog.list_snapshots(**filters)]

    assert ids(tags={"release": "v1.4.2"}) == ["new", "old"]
    assert ids(tags={"release": "v1.4.2", "env": "prod"}) == ["old"]
    assert ids(tags={"env": "prod"}) == ["other", "old"]
    assert ids(tags={"release": "v1.4"}) == []  # values compare exactly, no prefix
    assert ids(tags={"Release": "v1.4.2"}) == []  # keys too: case counts
    assert ids(tags={"missing": ""}) == []  # an absent key is not an empty value
    assert ids(tags={}) == ["none", "new", "other", "old"]


def test_an_empty_value_matches_only_an_empty_value(catalog: CatalogPort) -> None:
    _add(catalog, "blank", 0, {"note": ""})
    _add(catalog, "full", 1, {"note": "x"})
    assert [s.id for s in catalog.list_snapshots(tags={"note": ""})] == ["blank"]


def test_keys_with_dots_and_slashes_match_whole(catalog: CatalogPort) -> None:
    # A JSON path must quote such keys: unquoted, "a.b" would mean {"a": {"b": ...}}.
    _add(catalog, "dotted", 0, {"a.b": "1", "ci/run": "7"})
    _add(catalog, "nested", 1, {"a": "1"})
    assert [s.id for s in catalog.list_snapshots(tags={"a.b": "1"})] == ["dotted"]
    assert [s.id for s in catalog.list_snapshots(tags={"ci/run": "7"})] == ["dotted"]


def test_tag_filter_combines_with_instance_and_status(catalog: CatalogPort) -> None:
    _add(catalog, "shop-ok", 0, {"release": "v2"})
    _add(catalog, "shop-failed", 1, {"release": "v2"}, status=SnapshotStatus.FAILED)
    _add(catalog, "blog-ok", 2, {"release": "v2"}, instance="blog-db")
    found = catalog.list_snapshots(instance="shop-db", status=SnapshotStatus.COMPLETE,
                                   tags={"release": "v2"})
    assert [s.id for s in found] == ["shop-ok"]
    assert [s.id for s in catalog.list_snapshots(tags={"release": "v2"})] == \
        ["blog-ok", "shop-failed", "shop-ok"]
