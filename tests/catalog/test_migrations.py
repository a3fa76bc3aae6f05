"""Migrations on SQLite and PostgreSQL: up, down and up again, the migrated schema
equal to the models, and concurrent upgrades that do not trip over each other."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, Table, inspect

from backup.types import Snapshot, SnapshotStatus
from service.adapters.catalog import open_catalog
from service.adapters.catalog.db import (
    alembic_config,
    downgrade_to_base,
    make_engine,
    upgrade_to_head,
)
from service.adapters.catalog.models import Base
from service.adapters.catalog.repository import Catalog

TABLES = {"instances", "snapshots", "jobs", "api_tokens", "copies", "notifications", "alarms",
          "hosts", "schedule_slots"}


def table_names(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return ScriptDirectory.from_config(alembic_config(conn)).get_current_head()


def schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


@pytest.fixture
def engine(db_url: str):
    made = make_engine(db_url)
    yield made
    made.dispose()


def test_up_down_up(engine: Engine) -> None:
    assert table_names(engine) == set()
    assert current_revision(engine) is None

    upgrade_to_head(engine)
    assert table_names(engine) == TABLES
    assert current_revision(engine) == head_revision(engine) == "0013"

    downgrade_to_base(engine)
    assert table_names(engine) == set()
    assert current_revision(engine) is None

    upgrade_to_head(engine)
    assert table_names(engine) == TABLES
    assert schema_diff(engine) == []
    # And the tables work after the round trip.
    catalog = Catalog(engine)
    snap = Snapshot(
        id="s",
        instance="i",
        engine="volume",
        target="local",
        status=SnapshotStatus.COMPLETE,
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        data_key="i/s.tar.zst",
    )
    catalog.add_snapshot(snap)
    assert catalog.get_snapshot("s") == snap


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade_to_head(engine)
    upgrade_to_head(engine)
    assert current_revision(engine) == "0013"


def test_models_match_migrations(engine: Engine) -> None:
    upgrade_to_head(engine)
    assert schema_diff(engine) == []


def test_compare_metadata_does_see_differences(engine: Engine) -> None:
    # Guards the test above against comparing nothing with nothing.
    upgrade_to_head(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_jobs_created_at")
    diff = schema_diff(engine)
    assert [d[0] for d in diff if isinstance(d, tuple)] == ["add_index"]


def test_fresh_database_every_table_indexed_by_name(engine: Engine) -> None:
    upgrade_to_head(engine)
    inspector = inspect(engine)
    assert {ix["name"] for ix in inspector.get_indexes("snapshots")} == {
        "ix_snapshots_instance",
        "ix_snapshots_created_at",
    }
    assert {ix["name"] for ix in inspector.get_indexes("jobs")} == {
        "ix_jobs_created_at", "ix_jobs_idempotency_key", "ix_jobs_host",
        "ix_jobs_lease_expires_at"}
    assert inspector.get_pk_constraint("schedule_slots")["constrained_columns"] == [
        "instance", "kind", "slot"]
    assert {ix["name"] for ix in inspector.get_indexes("copies")} == {
        "ix_copies_expires_at", "ix_copies_name"}
    assert inspector.get_pk_constraint("copies")["constrained_columns"] == ["container_id"]
    assert inspector.get_pk_constraint("api_tokens")["constrained_columns"] == ["name"]
    assert inspector.get_pk_constraint("snapshots")["constrained_columns"] == ["id"]
    assert inspector.get_pk_constraint("instances")["constrained_columns"] == ["name"]


def test_concurrent_open_catalog_on_fresh_database(db_url: str) -> None:
    # The daemon and a CLI command may both start against an empty database.
    errors: list[BaseException] = []
    opened: list[Catalog] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        try:
            barrier.wait()
            opened.append(open_catalog(db_url))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert len(opened) == 4
        assert current_revision(opened[0].engine) == "0013"
    finally:
        for catalog in opened:
            catalog.close()


OPEN_IN_CHILD = """
import sys, time
from pathlib import Path
from service.adapters.catalog import open_catalog
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
open_catalog(sys.argv[1]).close()
"""


def test_concurrent_open_catalog_from_processes(db_url: str, tmp_path: Path) -> None:
    # Separate processes share no Python lock: only the database lock keeps them
    # from creating the same tables at once.
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_IN_CHILD, db_url, str(go)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    time.sleep(1.5)  # let every child finish its imports and wait for the signal
    go.touch()
    failures = []
    for child in children:
        try:
            _, stderr = child.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            _, stderr = child.communicate()
            failures.append("timed out")
            continue
        if child.returncode != 0:
            failures.append(stderr.strip().splitlines()[-1])
    assert failures == []
    engine = make_engine(db_url)
    try:
        assert current_revision(engine) == "0013"
        assert table_names(engine) == TABLES
    finally:
        engine.dispose()


def test_upgrade_from_0001_keeps_existing_snapshots(engine: Engine) -> None:
    from alembic import command

    from service.adapters.catalog.models import SnapshotRow

    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        # Written through the model's column types (minus the new column), as
        # a 0001-era Holdfast would have stored it.
        table = cast(Table, SnapshotRow.__table__)  # a declarative model's table
        connection.execute(table.insert().values(
            id="old", instance="i", engine="postgres", target="local", status="complete",
            created_at=datetime(2024, 1, 1, tzinfo=UTC), data_key="i/old/data.hfa.zst",
            image="postgres:15", image_id="sha256:1", pinned=False,
        ))
    upgrade_to_head(engine)
    kept = Catalog(engine).get_snapshot("old")
    assert kept is not None
    assert (kept.status, kept.data_key, kept.runner) == (SnapshotStatus.COMPLETE,
                                                         "i/old/data.hfa.zst", None)
    assert kept.created_at == datetime(2024, 1, 1, tzinfo=UTC)
