"""Token use cases on the fakes: create (secret once, hash kept), list, revoke, and
authenticate (bootstrap token, catalog tokens, expiry, last use once a minute,
the insecure opt-out), with nothing of a refused token in the log."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest

from backup.errors import Forbidden, InvalidInput, NameTaken, TokenNotFound, Unauthorised
from service.tokens import hash_secret
from service.usecases import tokens
from tests.fakes.services import FakeWorld
from tests.harness.api import TEST_TOKEN
from tests.usecases.support import T0


def bearer(secret: str) -> bytes:
    return f"Bearer {secret}".encode()


def test_create_keeps_only_the_hash_and_shows_the_secret_once(world: FakeWorld) -> None:
    made = tokens.create_token(world.services, "ci", ["read", "backup"], "90d", "cli:me", T0)
    assert made.to_json() == {"name": "ci", "scopes": ["read", "backup"],
                              "expires_at": "2026-04-01T00:00:00Z", "token": made.secret}
    [stored] = world.catalog.list_tokens()
    assert stored.token_hash == hash_secret(made.secret.encode())
    assert made.secret not in repr(stored) and made.secret not in str(stored.to_json())
    assert (stored.created_by, stored.created_at, stored.last_used_at) == ("cli:me", T0, None)


@pytest.mark.parametrize(("name", "scopes", "expires", "fragment"), [
    ("bad name", ["read"], None, "token name"),
    ("ci", [], None, "at least one scope"),
    ("ci", ["write"], None, "unknown scope"),
    ("ci", ["read"], "0m", "1m to 3650d"),
    ("ci", ["read"], "3651d", "1m to 3650d"),
    ("HOLDFAST_API_TOKEN", ["read"], None, "reserved"),
])
def test_create_refuses_bad_input_and_stores_nothing(
        world: FakeWorld, name: str, scopes: list[str], expires: str | None,
        fragment: str) -> None:
    with pytest.raises(InvalidInput, match=fragment):
        tokens.create_token(world.services, name, scopes, expires, None, T0)
    assert world.catalog.list_tokens() == []


def test_a_name_in_use_is_refused(world: FakeWorld) -> None:
    tokens.create_token(world.services, "ci", ["read"], None, None, T0)
    with pytest.raises(NameTaken):
        tokens.create_token(world.services, "ci", ["admin"], None, None, T0)


def test_revoke_refuses_the_token_at_once_and_an_unknown_name_is_not_found(
        world: FakeWorld) -> None:
    made = tokens.create_token(world.services, "ci", ["read"], None, None, T0)
    assert tokens.authenticate(world.services, bearer(made.secret), T0).name == "ci"
    tokens.revoke_token(world.services, "ci")
    with pytest.raises(Unauthorised):
        tokens.authenticate(world.services, bearer(made.secret), T0)
    with pytest.raises(TokenNotFound, match="'ci'"):
        tokens.revoke_token(world.services, "ci")


def test_a_catalog_token_authenticates_with_its_scopes(world: FakeWorld) -> None:
    made = tokens.create_token(world.services, "ci", ["backup", "read"], None, None, T0)
    who = tokens.authenticate(world.services, bearer(made.secret), T0)
    assert (who.name, who.scopes) == ("ci", ("read", "backup"))
    who.require("read")
    who.require("backup")
    with pytest.raises(Forbidden) as refused:
        who.require("restore")
    assert refused.value.needed == "restore"
    assert "'restore' scope" in str(refused.value) and "'ci'" in str(refused.value)


def test_the_bootstrap_token_is_admin_without_asking_the_catalog(world: FakeWorld) -> None:
    world.catalog.down = True
    who = tokens.authenticate(world.services, bearer(TEST_TOKEN), T0)
    assert (who.name, who.scopes) == ("HOLDFAST_API_TOKEN", ("admin",))
    who.require("restore")


@pytest.mark.parametrize("header", [None, b"", b"Bearer", b"Basic abc", b"Bearer hf_wrong",
                                    b"Bearer " + TEST_TOKEN.encode() + b"x", "Bearer ö".encode()])
def test_no_token_or_an_unknown_one_is_unauthorised_and_says_how_to_get_one(
        world: FakeWorld, header: bytes | None) -> None:
    with pytest.raises(Unauthorised) as refused:
        tokens.authenticate(world.services, header, T0)
    assert "holdfast tokens create --name NAME --scope admin" in str(refused.value)
    assert "HOLDFAST_API_TOKEN" in str(refused.value)


def test_without_any_bootstrap_token_a_catalog_token_still_works(world: FakeWorld) -> None:
    world.services.settings = world.services.settings.model_copy(update={"api_token": None})
    made = tokens.create_token(world.services, "ci", ["read"], None, None, T0)
    assert tokens.authenticate(world.services, bearer(made.secret), T0).name == "ci"
    with pytest.raises(Unauthorised):
        tokens.authenticate(world.services, None, T0)


def test_insecure_no_auth_makes_every_request_admin(world: FakeWorld) -> None:
    world.services.settings = world.services.settings.model_copy(
        update={"api_insecure_no_auth": True})
    who = tokens.authenticate(world.services, None, T0)
    assert who.scopes == ("admin",)


def test_an_expired_token_is_refused_and_logged_by_name_only(
        world: FakeWorld, caplog: pytest.LogCaptureFixture) -> None:
    made = tokens.create_token(world.services, "ci", ["read"], "1h", None, T0)
    assert tokens.authenticate(world.services, bearer(made.secret),
                               T0 + timedelta(minutes=59)).name == "ci"
    caplog.set_level(logging.INFO)
    with pytest.raises(Unauthorised, match="'ci' expired at 2026-01-01T01:00:00Z"):
        tokens.authenticate(world.services, bearer(made.secret), T0 + timedelta(hours=1))
    assert any("'ci' expired" in r.getMessage() for r in caplog.records)
    assert made.secret not in caplog.text
    assert hash_secret(made.secret.encode()) not in caplog.text


def test_an_unknown_token_leaves_nothing_of_it_in_the_log(
        world: FakeWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "hf_guessed-secret-value"
    with pytest.raises(Unauthorised):
        tokens.authenticate(world.services, bearer(secret), T0)
    assert "not known" in caplog.text
    assert "guessed" not in caplog.text and hash_secret(secret.encode()) not in caplog.text


def test_a_secret_never_reaches_the_log_when_made_or_used(
        world: FakeWorld, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    made = tokens.create_token(world.services, "ci", ["read"], None, None, T0)
    tokens.authenticate(world.services, bearer(made.secret), T0)
    tokens.revoke_token(world.services, "ci")
    assert "'ci'" in caplog.text
    assert made.secret not in caplog.text and made.secret[3:] not in caplog.text


class CountingTouches:
    """Wraps the fake catalog's touch_token to count the writes."""

    def __init__(self, world: FakeWorld) -> None:
        self.calls: list[object] = []
        original = world.catalog.touch_token

        def touch(name: str, at: object) -> None:
            self.calls.append(at)
            original(name, at)  # type: ignore[arg-type]

        world.catalog.touch_token = touch  # type: ignore[method-assign]


def test_last_use_is_written_at_most_once_a_minute(world: FakeWorld) -> None:
    made = tokens.create_token(world.services, "ci", ["read"], None, None, T0)
    touches = CountingTouches(world)
    for second in range(0, 120, 5):  # 24 requests over two minutes
        tokens.authenticate(world.services, bearer(made.secret), T0 + timedelta(seconds=second))
    assert touches.calls == [T0, T0 + timedelta(seconds=60)]
    [stored] = world.catalog.list_tokens()
    assert stored.last_used_at == T0 + timedelta(seconds=60)


def test_a_token_with_a_record_changed_under_it_uses_the_stored_scopes(
        world: FakeWorld) -> None:
    made = tokens.create_token(world.services, "ci", ["admin"], None, None, T0)
    [stored] = world.catalog.list_tokens()
    world.catalog.delete_token("ci")
    world.catalog.add_token(replace(stored, scopes=("read",)))
    assert tokens.authenticate(world.services, bearer(made.secret), T0).scopes == ("read",)
