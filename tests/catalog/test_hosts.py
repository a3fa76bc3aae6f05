"""The catalog's hosts, on SQLite, PostgreSQL, the CLI's quick reader and the fake:
one row per name, replaced whole by each heartbeat, listed by name."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from service.hosts import HostRecord
from service.ports import CatalogPort
from tests.catalog.test_catalog import T0


def make_host(name: str = "edge-1", **changes: object) -> HostRecord:
    host = HostRecord(name=name, engine_version="24.0.7", instances=3, started_at=T0,
                      last_heartbeat=T0 + timedelta(seconds=15), holdfast_version="0.1.0",
                      runner="edge-1:4242:99")
    return replace(host, **changes)  # type: ignore[arg-type]


def test_a_host_round_trips_and_hosts_are_listed_by_name(catalog: CatalogPort) -> None:
    assert catalog.list_hosts() == []
    second, first = make_host("edge-2", instances=0), make_host("edge-1")
    catalog.save_host(second)
    catalog.save_host(first)
    assert catalog.list_hosts() == [first, second]


def test_a_heartbeat_replaces_the_row_of_its_name(catalog: CatalogPort) -> None:
    catalog.save_host(make_host())
    beat = make_host(instances=7, last_heartbeat=T0 + timedelta(minutes=5),
                     engine_version="25.0.1", runner="edge-1:5151:100")
    catalog.save_host(beat)
    assert catalog.list_hosts() == [beat]
