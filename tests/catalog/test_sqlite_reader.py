"""The CLI's quick catalog: stdlib reads of a current SQLite file, the full catalog otherwise.

The contract itself (every CatalogPort test) runs on it through the ``catalog``
fixture's ``sqlite-quick`` case; these tests check what is particular to it:
that its column conversions follow the models, that reads never open the full
catalog (so never import SQLAlchemy), that a write does, and that anything it
cannot read quickly goes to :func:`open_catalog`, which migrates.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import JSON, Boolean

from backup.types import Snapshot, SnapshotStatus
from service.adapters.catalog import CatalogUnavailable, open_catalog
from service.adapters.catalog import sqlite_reader as reader_module
from service.adapters.catalog.db import downgrade_to_base, make_engine, upgrade_to_head
from service.adapters.catalog.models import Base, UTCDateTime
from service.adapters.catalog.repository import Catalog
from service.adapters.catalog.schema_version import script_heads, sqlite_file_of
from service.adapters.catalog.sqlite_reader import QuickReadCatalog, open_quick_catalog
from service.records import JobRecord, JobStatus

T0 = datetime(2026, 12, 3, 4, 5, 6, 789012, tzinfo=UTC)


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"


def snapshot(id: str, **changes: object) -> Snapshot:
    base = Snapshot(id=id, instance="shop-db", engine="postgres", target="local",
                    status=SnapshotStatus.COMPLETE, created_at=T0, data_key=f"k/{id}",
                    finished_at=T0, size_bytes=2**40, pinned=True, image="postgres:16")
    return base.with_changes(**changes)


def test_column_kinds_follow_the_models() -> None:
    times, json_columns, flags = set(), set(), set()
    for name in ("instances", "snapshots", "jobs", "api_tokens", "hosts"):  # the reader reads
        for column in Base.metadata.tables[name].columns:
            if isinstance(column.type, UTCDateTime):
                times.add(column.name)
            elif isinstance(column.type, JSON):
                json_columns.add(column.name)
            elif isinstance(column.type, Boolean):
                flags.add(column.name)
    # Every converted column is one of its kind, and every column of a kind is
    # converted (a record field reading a column left as text would be wrong).
    assert times == reader_module._TIMES
    assert json_columns == reader_module._JSON
    assert flags == reader_module._FLAGS


def test_reads_never_open_the_full_catalog_and_a_write_does(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    full = open_catalog(url)
    full.add_snapshot(snapshot("snap-1"))
    full.add_job(JobRecord(id="job-1", kind="backup", status=JobStatus.SUCCEEDED,
                           created_at=T0, result={"size": 1}))
    full.close()

    quick = open_quick_catalog(url)
    assert isinstance(quick, QuickReadCatalog)
    try:
        assert quick.list_snapshots() == [snapshot("snap-1")]
        assert quick.get_snapshot("snap-1") == snapshot("snap-1")
        assert quick.latest_snapshot("shop-db") == snapshot("snap-1")
        assert quick.snapshots_with_prefix("snap-", 5) == [snapshot("snap-1")]
        assert [job.result for job in quick.list_jobs()] == [{"size": 1}]
        assert quick.list_instances() == []
        assert quick.list_hosts() == []
        assert quick._full is None

        quick.add_snapshot(snapshot("snap-2", created_at=T0.replace(year=2027)))
        assert isinstance(quick._full, Catalog)
        # The stdlib connection sees the full catalog's commit at once.
        assert [s.id for s in quick.list_snapshots()] == ["snap-2", "snap-1"]
    finally:
        quick.close()


def test_a_listing_in_a_fresh_interpreter_loads_no_sqlalchemy(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    full = open_catalog(url)
    full.add_snapshot(snapshot("snap-1"))
    full.close()
    code = ("import json, sys\n"
            "from service.adapters.catalog.sqlite_reader import open_quick_catalog\n"
            "found = open_quick_catalog(sys.argv[1]).list_snapshots()\n"
            "print(json.dumps([[s.id for s in found], 'sqlalchemy' in sys.modules]))\n")
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True,
                          check=True, timeout=60, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert json.loads(done.stdout) == [["snap-1"], False]


def test_a_missing_file_is_created_and_migrated_by_the_full_catalog(tmp_path: Path) -> None:
    opened = open_quick_catalog(sqlite_url(tmp_path))
    try:
        assert isinstance(opened, Catalog)
        assert opened.list_snapshots() == []
    finally:
        opened.close()
    assert (tmp_path / "catalog.sqlite3").is_file()


def test_an_older_schema_goes_to_the_full_catalog_which_migrates(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    engine = make_engine(url)
    upgrade_to_head(engine)
    downgrade_to_base(engine)
    engine.dispose()
    opened = open_quick_catalog(url)
    try:
        assert isinstance(opened, Catalog)
        with opened.engine.connect() as connection:
            recorded = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert [row[0] for row in recorded] == sorted(script_heads())
    finally:
        opened.close()


def test_a_file_that_is_not_a_database_fails_as_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    path.write_bytes(b"not a database, " * 100)
    with pytest.raises(CatalogUnavailable) as caught:
        open_quick_catalog(sqlite_url(tmp_path))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:////var/lib/holdfast/catalog.sqlite3", Path("/var/lib/holdfast/catalog.sqlite3")),
    ("sqlite:///relative/catalog.db", Path("relative/catalog.db")),
    ("SQLite:////x.db", Path("/x.db")),
    ("sqlite://", None),
    ("sqlite:///:memory:", None),
    ("sqlite:///file:x.db?mode=ro&uri=true", None),
    ("sqlite:////x.db?timeout=5", None),
    ("sqlite:////with%20space.db", None),
    ("postgresql://holdfast@db/holdfast", None),
])
def test_only_plain_sqlite_file_urls_are_read_quickly(url: str, expected: Path | None) -> None:
    assert sqlite_file_of(url) == expected
