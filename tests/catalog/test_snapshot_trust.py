"""A snapshot's encryption and last verification in the catalog, on SQLite (full
and quick reader), PostgreSQL and the in-memory fake: they round trip as
written, and a plain, unverified snapshot reads back with none."""

from __future__ import annotations

from datetime import timedelta

from service.ports import CatalogPort
from tests.catalog.test_catalog import T0, make_snapshot

VERIFICATION = {"result": "failed", "reason": "table shop.public.orders: 3 rows recorded, 2 "
                "restored", "exact": True, "figures": {"shop.public.orders": 2},
                "differences": [{"name": "shop.public.orders", "recorded": 3, "measured": 2}]}


def test_encryption_and_verification_round_trip(catalog: CatalogPort) -> None:
    catalog.add_snapshot(make_snapshot("s1", encryption="age-v1",
                                       recipients=("age:4e5102c425db2503", "SHA256:abc")))
    added = catalog.get_snapshot("s1")
    assert added is not None and added.encryption == "age-v1"
    assert added.recipients == ("age:4e5102c425db2503", "SHA256:abc")
    assert added.verified_at is None and added.verification is None
    catalog.save_snapshot(added.with_changes(verified_at=T0 + timedelta(hours=1),
                                             verification=VERIFICATION))
    got = catalog.get_snapshot("s1")
    assert got is not None and got.verified_at == T0 + timedelta(hours=1)
    assert got.verification == VERIFICATION
    assert catalog.list_snapshots(instance=got.instance) == [got]


def test_a_plain_snapshot_has_no_recipients(catalog: CatalogPort) -> None:
    catalog.add_snapshot(make_snapshot("s2"))
    got = catalog.get_snapshot("s2")
    assert got is not None and got.encryption is None and got.recipients == ()
    assert got.to_json()["recipients"] == [] and got.to_json()["verification"] is None
