"""API tokens' pure part: scopes and what they grant, names, expiry bounds, secrets,
hashes, the bearer header, and when a use is written."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.errors import InvalidInput
from service.tokens import (
    EXPIRY_MAX,
    EXPIRY_MIN,
    SCOPE_NAMES,
    TOKEN_PREFIX,
    TokenRecord,
    bearer_secret,
    check_name,
    expiry_time,
    grants,
    hash_secret,
    new_secret,
    parse_expiry,
    parse_scopes,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("held", "needed", "granted"), [
    (("read",), "read", True),
    (("read",), "backup", False),
    (("read",), "admin", False),
    (("backup", "read"), "backup", True),
    (("backup", "read"), "restore", False),
    (("restore",), "read", False),
    (("admin",), "read", True),
    (("admin",), "backup", True),
    (("admin",), "restore", True),
    (("admin",), "admin", True),
    ((), "read", False),
])
def test_a_scope_grants_itself_and_admin_grants_everything(
        held: tuple[str, ...], needed: str, granted: bool) -> None:
    assert grants(held, needed) is granted


def test_scopes_are_checked_deduplicated_and_put_in_order() -> None:
    assert parse_scopes(["read", "backup", "read"]) == ("read", "backup")
    assert parse_scopes([" Admin "]) == ("admin",)
    assert parse_scopes(list(reversed(SCOPE_NAMES))) == SCOPE_NAMES


@pytest.mark.parametrize("scopes", [[], ["root"], ["read", "write"], [""]])
def test_no_scope_or_an_unknown_one_is_refused_in_one_line(scopes: list[str]) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_scopes(scopes)
    message = str(refused.value)
    assert "\n" not in message and "read, backup, restore, admin" in message


@pytest.mark.parametrize(("text", "seconds"), [
    ("1m", 60), ("30m", 1800), ("12h", 43200), ("90d", 90 * 86400), ("3650d", EXPIRY_MAX),
    (" 2h ", 7200), ("87600h", EXPIRY_MAX),
])
def test_expiry_parses_minutes_hours_and_days(text: str, seconds: int) -> None:
    assert parse_expiry(text) == seconds


@pytest.mark.parametrize("text", ["0m", "59s", "30s", "3651d", "87601h", "1y", "90", "d",
                                  "-1d", "1.5h", "9" * 40 + "d", "", "90 d",
                                  "\uff11d"])  # a full-width digit
def test_expiry_outside_1m_to_3650d_or_not_a_duration_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match="1m to 3650d") as refused:
        parse_expiry(text)
    assert "\n" not in str(refused.value)


@given(st.integers(0, 10_000_000), st.sampled_from(["m", "h", "d"]))
def test_expiry_is_accepted_exactly_within_its_bounds(amount: int, unit: str) -> None:
    seconds = amount * {"m": 60, "h": 3600, "d": 86400}[unit]
    if EXPIRY_MIN <= seconds <= EXPIRY_MAX:
        assert parse_expiry(f"{amount}{unit}") == seconds
    else:
        with pytest.raises(InvalidInput):
            parse_expiry(f"{amount}{unit}")


def test_expiry_time_counts_from_now_and_none_never_expires() -> None:
    assert expiry_time("90d", T0) == T0 + timedelta(days=90)
    assert expiry_time(None, T0) is None


@pytest.mark.parametrize("name", ["ci", "a", "ci-deploy.2026_01", "A" * 64, "0day"])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "-ci", ".ci", "ci deploy", "ci/deploy", "A" * 65,
                                  "ci\n", "tö", "ci:1"])
def test_bad_names_are_refused_in_one_line(name: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_name(name)
    assert "\n" not in str(refused.value)


def test_secrets_are_prefixed_random_and_url_safe() -> None:
    made = {new_secret() for _ in range(50)}
    assert len(made) == 50
    for secret in made:
        assert secret.startswith(TOKEN_PREFIX)
        assert re.fullmatch(r"hf_[A-Za-z0-9_-]{43}", secret), secret


def test_the_hash_is_sha256_hex_of_the_secret_bytes() -> None:
    assert hash_secret(b"hf_abc") == hashlib.sha256(b"hf_abc").hexdigest()
    assert len(hash_secret(b"x")) == 64
    assert hash_secret(b"a") != hash_secret(b"b")


@pytest.mark.parametrize(("header", "secret"), [
    (None, None), (b"", None), (b"Bearer", None), (b"Bearer   ", None),
    (b"Basic dXNlcjpwdw==", None), (b"hf_abc", None),
    (b"Bearer hf_abc", b"hf_abc"), (b"BEARER hf_abc", b"hf_abc"),
    (b"Bearer  hf_abc ", b"hf_abc"), (b"Bearer \xff\xfe", b"\xff\xfe"),
])
def test_the_bearer_secret_of_a_header(header: bytes | None, secret: bytes | None) -> None:
    assert bearer_secret(header) == secret


def record(**changes: object) -> TokenRecord:
    values: dict[str, object] = {"name": "ci", "token_hash": "0" * 64, "scopes": ("read",),
                                 "created_by": "cli:me", "created_at": T0}
    return TokenRecord(**{**values, **changes})  # type: ignore[arg-type]


def test_expiry_is_at_its_instant() -> None:
    expiring = record(expires_at=T0 + timedelta(hours=1))
    assert not expiring.is_expired(T0 + timedelta(minutes=59))
    assert expiring.is_expired(T0 + timedelta(hours=1))
    assert not record().is_expired(T0 + timedelta(days=10_000))


def test_a_use_is_written_at_most_once_a_minute() -> None:
    assert record().needs_touch(T0)  # never used
    used = record(last_used_at=T0)
    assert not used.needs_touch(T0 + timedelta(seconds=59))
    assert used.needs_touch(T0 + timedelta(seconds=60))


def test_the_listing_json_never_has_the_hash() -> None:
    shown = record(last_used_at=T0, expires_at=T0 + timedelta(days=1)).to_json()
    assert shown == {"name": "ci", "scopes": ["read"], "created_by": "cli:me",
                     "created_at": "2026-01-01T00:00:00Z", "last_used_at": "2026-01-01T00:00:00Z",
                     "expires_at": "2026-01-02T00:00:00Z"}
