"""The catalog's copies, on SQLite, PostgreSQL and the in-memory fake: recorded once per
container id, listed live and newest first (by name too), updated in place, and gone
from the live list once removed."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from backup.errors import Conflict
from restore.copies import CopyRecord
from service.ports import CatalogPort
from tests.catalog.test_catalog import T0


def make_copy(container_id: str, name: str = "dev", at: int = 0) -> CopyRecord:
    return CopyRecord(name=name, container_id=container_id, snapshot_id="snap-1",
                      instance="shop", created_at=T0 + timedelta(minutes=at),
                      volumes=("dev-data", "dev-wal"), job_id="job-1",
                      expires_at=T0 + timedelta(hours=4))


def test_a_copy_round_trips(catalog: CatalogPort) -> None:
    copy = make_copy("c1")
    catalog.add_copy(copy)
    assert catalog.live_copies() == [copy]


def test_a_container_id_is_recorded_once(catalog: CatalogPort) -> None:
    catalog.add_copy(make_copy("c1"))
    with pytest.raises(Conflict):
        catalog.add_copy(make_copy("c1", name="other"))


def test_live_copies_are_newest_first_and_filter_by_name(catalog: CatalogPort) -> None:
    catalog.add_copy(make_copy("c1", "dev", at=0))
    catalog.add_copy(make_copy("c2", "ci", at=2))
    catalog.add_copy(make_copy("c3", "dev", at=1))
    assert [c.container_id for c in catalog.live_copies()] == ["c2", "c3", "c1"]
    assert [c.container_id for c in catalog.live_copies("dev")] == ["c3", "c1"]
    assert catalog.live_copies("nope") == []


def test_save_replaces_the_copy_and_removed_ones_are_not_live(catalog: CatalogPort) -> None:
    catalog.add_copy(make_copy("c1"))
    catalog.add_copy(make_copy("c2", "ci"))
    extended = replace(make_copy("c1"), expires_at=T0 + timedelta(days=1),
                       removal_error="removal failed once")
    catalog.save_copy(extended)
    assert catalog.live_copies("dev") == [extended]
    catalog.save_copy(replace(extended, removed_at=T0 + timedelta(days=1), removal_error=None))
    assert [c.container_id for c in catalog.live_copies()] == ["c2"]


def test_saving_an_unrecorded_copy_records_nothing(catalog: CatalogPort) -> None:
    catalog.save_copy(make_copy("ghost"))
    assert catalog.live_copies() == []
