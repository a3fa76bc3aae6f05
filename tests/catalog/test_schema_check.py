"""Opening a catalog that is already at the newest revision skips Alembic, and
only then: the revisions read from the migration files agree with Alembic's,
an older schema is still migrated, and one Holdfast does not know still fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text

import migrations
from service.adapters.catalog import CatalogUnavailable, db, open_catalog, schema_version
from service.adapters.catalog.db import alembic_config, make_engine, schema_is_current


def test_heads_read_from_the_files_are_alembics_heads() -> None:
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        heads = ScriptDirectory.from_config(alembic_config(connection)).get_heads()
    engine.dispose()
    assert schema_version.script_heads() == frozenset(heads)
    assert len(heads) == 1


def _refuse_alembic(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(db, "upgrade_to_head", lambda engine: calls.append(str(engine.url)))
    return calls


def test_a_current_catalog_opens_without_migrating(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    open_catalog(url).close()  # creates and migrates
    calls = _refuse_alembic(monkeypatch)
    catalog = open_catalog(url)
    try:
        assert catalog.list_snapshots() == []
    finally:
        catalog.close()
    assert calls == []


@pytest.mark.parametrize("recorded", ["0001", "9999"])
def test_any_other_recorded_revision_goes_to_alembic(
        recorded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    open_catalog(url).close()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": recorded})
        assert not schema_is_current(connection)
    engine.dispose()
    calls = _refuse_alembic(monkeypatch)
    open_catalog(url).close()
    assert len(calls) == 1


def test_an_unknown_revision_still_fails_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    open_catalog(url).close()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(CatalogUnavailable, match="cannot be migrated") as failure:
        open_catalog(url)
    assert "\n" not in str(failure.value)


def test_a_fresh_database_is_not_current() -> None:
    engine = make_engine("sqlite://")
    with engine.connect() as connection:
        assert not schema_is_current(connection)
    engine.dispose()


def test_a_migration_file_that_is_not_plain_literals_sends_everyone_to_alembic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "migrations"
    (package / "versions").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "versions" / "0001_a.py").write_text(
        'revision: str = "0001"\ndown_revision = None\n')
    (package / "versions" / "0002_b.py").write_text(
        'revision = "0002"\ndown_revision = "0001"\n')
    monkeypatch.setattr(migrations, "__file__", str(package / "__init__.py"))
    schema_version.script_heads.cache_clear()
    try:
        assert schema_version.script_heads() == {"0002"}
        (package / "versions" / "0003_c.py").write_text(
            'revision = "0003"\ndown_revision = compute()\n')
        schema_version.script_heads.cache_clear()
        assert schema_version.script_heads() == frozenset()
    finally:
        schema_version.script_heads.cache_clear()
