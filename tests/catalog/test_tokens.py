"""The catalog's API tokens, on SQLite, PostgreSQL, the CLI's quick reader and the
in-memory fake: recorded once per name (and hash), found by hash only, listed by name,
touched in place, and gone at once when deleted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from backup.errors import NameTaken
from service.adapters.catalog import open_catalog
from service.adapters.catalog.sqlite_reader import QuickReadCatalog, open_quick_catalog
from service.ports import CatalogPort
from service.tokens import TokenRecord, hash_secret
from tests.catalog.test_catalog import T0


def make_token(name: str = "ci", secret: bytes = b"hf_one", **changes: object) -> TokenRecord:
    values: dict[str, object] = {
        "name": name, "token_hash": hash_secret(secret), "scopes": ("read", "backup"),
        "created_by": "cli:me", "created_at": T0, "expires_at": T0 + timedelta(days=90)}
    return TokenRecord(**{**values, **changes})  # type: ignore[arg-type]


def test_a_token_round_trips_and_is_found_by_its_hash(catalog: CatalogPort) -> None:
    token = make_token()
    catalog.add_token(token)
    assert catalog.token_by_hash(hash_secret(b"hf_one")) == token
    assert catalog.token_by_hash(hash_secret(b"hf_other")) is None
    assert catalog.list_tokens() == [token]


def test_a_token_without_expiry_or_creator_round_trips(catalog: CatalogPort) -> None:
    token = make_token(expires_at=None, created_by=None, scopes=("admin",))
    catalog.add_token(token)
    assert catalog.list_tokens() == [token]


def test_a_name_is_recorded_once(catalog: CatalogPort) -> None:
    catalog.add_token(make_token("ci", b"hf_one"))
    with pytest.raises(NameTaken, match="'ci'"):
        catalog.add_token(make_token("ci", b"hf_two"))
    assert [t.token_hash for t in catalog.list_tokens()] == [hash_secret(b"hf_one")]


def test_a_hash_is_recorded_once(catalog: CatalogPort) -> None:
    catalog.add_token(make_token("ci", b"hf_one"))
    with pytest.raises(NameTaken):
        catalog.add_token(make_token("other", b"hf_one"))
    assert [t.name for t in catalog.list_tokens()] == ["ci"]


def test_tokens_are_listed_by_name(catalog: CatalogPort) -> None:
    for name in ("deploy", "ci", "metrics"):
        catalog.add_token(make_token(name, name.encode()))
    assert [t.name for t in catalog.list_tokens()] == ["ci", "deploy", "metrics"]


def test_touch_sets_the_last_use_of_that_token_only(catalog: CatalogPort) -> None:
    catalog.add_token(make_token("ci", b"a"))
    catalog.add_token(make_token("deploy", b"b"))
    catalog.touch_token("ci", T0 + timedelta(minutes=5))
    found = {t.name: t.last_used_at for t in catalog.list_tokens()}
    assert found == {"ci": T0 + timedelta(minutes=5), "deploy": None}
    catalog.touch_token("gone", T0)  # no error for a token that is not there


def test_delete_removes_at_once_and_says_whether_there_was_one(catalog: CatalogPort) -> None:
    catalog.add_token(make_token("ci", b"hf_one"))
    assert catalog.delete_token("ci") is True
    assert catalog.token_by_hash(hash_secret(b"hf_one")) is None
    assert catalog.list_tokens() == []
    assert catalog.delete_token("ci") is False
    catalog.add_token(make_token("ci", b"hf_new"))  # the name is free again
    assert [t.name for t in catalog.list_tokens()] == ["ci"]


def test_the_clis_quick_reader_lists_tokens_without_the_full_catalog(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    full = open_catalog(url)
    full.add_token(make_token("ci", b"hf_one"))
    full.touch_token("ci", T0 + timedelta(minutes=1))
    expected = full.list_tokens()
    full.close()
    quick = open_quick_catalog(url)
    assert isinstance(quick, QuickReadCatalog)
    try:
        assert quick.list_tokens() == expected
        assert quick._full is None  # no SQLAlchemy for `holdfast tokens ls`
    finally:
        quick.close()
