"""The catalog's prefix query, on SQLite, PostgreSQL and the in-memory fake: an id
prefix matches exactly (case and LIKE wildcards included) and the answer is bounded."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.ports import CatalogPort
from tests.catalog.test_catalog import T0, make_snapshot


def _add(catalog: CatalogPort, *ids: str) -> None:
    for n, snapshot_id in enumerate(ids):
        catalog.add_snapshot(make_snapshot(snapshot_id, created_at=T0 + timedelta(minutes=n)))


def test_a_prefix_finds_the_snapshots_it_starts_by_id(catalog: CatalogPort) -> None:
    _add(catalog, "20260102T000000Z-bbbbbb", "20260101T000000Z-aaaaaa",
         "20260101T000000Z-aaaabb", "20270101T000000Z-cccccc")
    found = catalog.snapshots_with_prefix("20260101", 10)
    assert [s.id for s in found] == ["20260101T000000Z-aaaaaa", "20260101T000000Z-aaaabb"]
    assert found[0] == catalog.get_snapshot("20260101T000000Z-aaaaaa")
    assert [s.id for s in catalog.snapshots_with_prefix("20260101T000000Z-aaaaaa", 10)] == [
        "20260101T000000Z-aaaaaa"]
    assert catalog.snapshots_with_prefix("20280101", 10) == []


def test_the_answer_is_bounded_by_limit(catalog: CatalogPort) -> None:
    _add(catalog, *(f"20260101T00000{n}Z-aaaaaa" for n in range(5)))
    assert [s.id for s in catalog.snapshots_with_prefix("2026", 3)] == [
        f"20260101T00000{n}Z-aaaaaa" for n in range(3)]
    assert catalog.snapshots_with_prefix("2026", 0) == []


@pytest.mark.parametrize("prefix", ["snap%", "snap_", "snap/", "%", "_", "SNAP-A"])
def test_wildcards_and_case_match_only_themselves(catalog: CatalogPort, prefix: str) -> None:
    _add(catalog, "snap-a", "snapxa", "snap/a")
    expected = [s for s in ("snap-a", "snapxa", "snap/a") if s.startswith(prefix)]
    assert [s.id for s in catalog.snapshots_with_prefix(prefix, 10)] == sorted(expected)


def test_literal_wildcards_in_ids_are_found(catalog: CatalogPort) -> None:
    _add(catalog, "a%b_c-1", "axbyc-2")
    assert [s.id for s in catalog.snapshots_with_prefix("a%b_", 10)] == ["a%b_c-1"]
