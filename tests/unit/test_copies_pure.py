"""The pure parts of restores for scripts: URL templates per engine, TTLs, the options
a restore takes, and which expired copies the reaper removes (and what of them)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.engines import get_engine
from backup.engines.connections import mysql_url, postgres_url, redis_url
from backup.errors import InvalidInput
from backup.ports import ContainerEndpoints, NetworkEndpoint, PublishedPort
from backup.types import Manifest
from restore.copies import (
    TTL_MAX,
    TTL_MIN,
    CopyRecord,
    RestoreOptions,
    check_restore_options,
    connection_urls,
    decide_expiry,
    parse_publish,
    parse_ttl,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


# --- connection URL templates ---------------------------------------------------------


def test_postgres_url_names_user_and_database_and_never_the_password() -> None:
    env = {"POSTGRES_USER": "app", "POSTGRES_DB": "appdb"}
    assert postgres_url(env, {"POSTGRES_PASSWORD"}) == \
        "postgresql://app:{POSTGRES_PASSWORD}@HOST:PORT/appdb"
    assert postgres_url(env, {"POSTGRES_PASSWORD"}, host="db", port=5432) == \
        "postgresql://app:{POSTGRES_PASSWORD}@db:5432/appdb"


def test_postgres_url_defaults_follow_the_official_image() -> None:
    # No user: postgres, whose database is named after it; trust auth: no password.
    assert postgres_url({}, set()) == "postgresql://postgres@HOST:PORT/postgres"
    assert postgres_url({"POSTGRES_USER": "app"}, {"POSTGRES_PASSWORD"}) == \
        "postgresql://app:{POSTGRES_PASSWORD}@HOST:PORT/app"


def test_url_parts_are_percent_encoded() -> None:
    assert postgres_url({"POSTGRES_USER": "a@b", "POSTGRES_DB": "x/y"}, set()) == \
        "postgresql://a%40b@HOST:PORT/x%2Fy"


def test_mysql_url_prefers_the_application_account() -> None:
    env = {"MARIADB_USER": "shop", "MARIADB_DATABASE": "orders"}
    secrets = {"MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD"}
    assert mysql_url(env, secrets) == "mysql://shop:{MARIADB_PASSWORD}@HOST:PORT/orders"


def test_mysql_url_falls_back_to_root_and_follows_the_family_order() -> None:
    assert mysql_url({"MYSQL_DATABASE": "d"}, {"MYSQL_ROOT_PASSWORD"}) == \
        "mysql://root:{MYSQL_ROOT_PASSWORD}@HOST:PORT/d"
    both = {"MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"}
    assert mysql_url({}, both) == "mysql://root:{MARIADB_ROOT_PASSWORD}@HOST:PORT"
    assert mysql_url({}, both, families=("MYSQL", "MARIADB")) == \
        "mysql://root:{MYSQL_ROOT_PASSWORD}@HOST:PORT"
    # A user without a password of its own is not the account to name.
    assert mysql_url({"MARIADB_USER": "shop"}, {"MARIADB_ROOT_PASSWORD"}) == \
        "mysql://root:{MARIADB_ROOT_PASSWORD}@HOST:PORT"


def test_redis_url_with_and_without_a_password() -> None:
    assert redis_url({}, {"REDIS_PASSWORD"}) == "redis://:{REDIS_PASSWORD}@HOST:PORT/0"
    assert redis_url({}, set()) == "redis://HOST:PORT/0"


def test_each_engine_has_its_port_and_template() -> None:
    assert [(get_engine(name).service_port) for name in
            ("postgres", "mariadb", "mysql", "redis", "volume")] == [5432, 3306, 3306, 6379, None]
    assert get_engine("mysql").connection_template(
        {}, {"MARIADB_ROOT_PASSWORD", "MYSQL_ROOT_PASSWORD"}) == \
        "mysql://root:{MYSQL_ROOT_PASSWORD}@HOST:PORT"
    assert get_engine("volume").connection_template({}, {"X"}) is None


def _manifest(engine: str, env: dict[str, str], secret_env: tuple[str, ...]) -> Manifest:
    return Manifest(snapshot_id="s1", instance="shop", engine=engine, image="postgres:15",
                    image_id="", data_format="x", data_key="k", compression="zstd",
                    size_bytes=1, raw_bytes=1, sha256="0", created_at=NOW, finished_at=NOW,
                    env=env, secret_env=secret_env)


def test_connection_urls_fill_in_the_published_port_and_each_network() -> None:
    manifest = _manifest("postgres", {"POSTGRES_USER": "app", "POSTGRES_DB": "appdb"},
                         ("POSTGRES_PASSWORD",))
    endpoints = ContainerEndpoints(
        networks={"ci": NetworkEndpoint("172.20.0.5", ("copy", "db")),
                  "other": NetworkEndpoint("172.21.0.2", ())},
        ports={"5432/tcp": (("127.0.0.1", 49153),)})
    got = connection_urls(get_engine("postgres"), manifest, endpoints, "copy")
    assert got == {
        "url_template": "postgresql://app:{POSTGRES_PASSWORD}@HOST:PORT/appdb",
        "urls": {"published": "postgresql://app:{POSTGRES_PASSWORD}@127.0.0.1:49153/appdb",
                 "networks": {"ci": "postgresql://app:{POSTGRES_PASSWORD}@db:5432/appdb",
                              "other": "postgresql://app:{POSTGRES_PASSWORD}@copy:5432/appdb"}}}


def test_a_wildcard_or_ipv6_binding_gives_a_usable_host() -> None:
    manifest = _manifest("redis", {}, ())
    for bound, host in (("0.0.0.0", "127.0.0.1"), ("::", "[::1]"), ("::1", "[::1]")):
        endpoints = ContainerEndpoints(ports={"6379/tcp": ((bound, 7000),)})
        urls = connection_urls(get_engine("redis"), manifest, endpoints, "c")["urls"]
        assert urls["published"] == f"redis://{host}:7000/0"


def test_a_volume_snapshot_has_no_url() -> None:
    got = connection_urls(get_engine("volume"), _manifest("volume", {}, ()),
                          ContainerEndpoints(), "c")
    assert got == {"url_template": None, "urls": {}}


# --- TTLs and options -------------------------------------------------------------------


@given(st.integers(min_value=0, max_value=10**7), st.sampled_from(sorted(UNITS)))
def test_a_ttl_is_accepted_exactly_within_1m_and_365d(number: int, unit: str) -> None:
    seconds = number * UNITS[unit]
    if TTL_MIN <= seconds <= TTL_MAX:
        assert parse_ttl(f"{number}{unit}") == seconds
    else:
        with pytest.raises(InvalidInput, match="from 1m to 365d"):
            parse_ttl(f"{number}{unit}")


@given(st.text(max_size=20))
def test_any_ttl_text_parses_or_is_one_line_of_bad_input(text: str) -> None:
    try:
        seconds = parse_ttl(text)
    except InvalidInput as exc:
        assert "\n" not in str(exc)
    else:
        assert TTL_MIN <= seconds <= TTL_MAX


@pytest.mark.parametrize("text", ["59s", "0m", "366d", "4 hours", "1.5h", "-1m", "",
                                  "\u0661\u0662h"])
def test_bad_ttls(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_ttl(text)


@pytest.mark.parametrize(("value", "expected"), [
    (0, PublishedPort(5432, 0, "127.0.0.1")),
    ("0", PublishedPort(5432, 0, "127.0.0.1")),
    (5433, PublishedPort(5432, 5433, "127.0.0.1")),
    ("65535", PublishedPort(5432, 65535, "127.0.0.1")),
    ("0.0.0.0:5433", PublishedPort(5432, 5433, "0.0.0.0")),
    ("[::1]:0", PublishedPort(5432, 0, "::1")),
])
def test_publish_forms(value: int | str, expected: PublishedPort) -> None:
    assert parse_publish(value, 5432) == expected


@pytest.mark.parametrize("value", [65536, -1, "port", "1.2.3:5", "localhost:5433", "5433:",
                                   "99999999999999999999", "\u0661\u0662\u0663"])
def test_bad_publish_values(value: int | str) -> None:
    with pytest.raises(InvalidInput, match="publish"):
        parse_publish(value, 5432)


def test_publish_needs_a_server_port() -> None:
    with pytest.raises(InvalidInput, match="no port"):
        parse_publish(0, None)


def test_options_checked_whole() -> None:
    checked = check_restore_options(RestoreOptions(
        network="ci-net", alias="db", publish=0, labels={"ci.job": "7"}, ttl="4h"), 5432)
    assert (checked.network, checked.aliases, checked.published, dict(checked.labels),
            checked.ttl_seconds) == ("ci-net", ("db",), (PublishedPort(5432),),
                                     {"ci.job": "7"}, 4 * 3600)


@pytest.mark.parametrize(("options", "message"), [
    (RestoreOptions(alias="db"), "alias needs a network"),
    (RestoreOptions(network="n", alias="-db"), "alias '-db'"),
    (RestoreOptions(network="bad net"), "network 'bad net'"),
    (RestoreOptions(labels={"holdfast.enable": "true"}), "holdfast. are Holdfast's own"),
    (RestoreOptions(labels={"HoldFast.Name": "x"}), "holdfast. are Holdfast's own"),
    (RestoreOptions(labels={"": "x"}), "label key"),
    (RestoreOptions(labels={"k": "a\nb"}), "control character"),
    (RestoreOptions(labels={f"k{i}": "" for i in range(65)}), "at most 64 labels"),
    (RestoreOptions(labels={"k": "v" * 1025}), "longer than 1024"),
    (RestoreOptions(ttl="30s"), "ttl '30s'"),
])
def test_bad_options_are_refused_with_one_line(options: RestoreOptions, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        check_restore_options(options, 5432)
    assert "\n" not in str(caught.value)


# --- expiry decisions -----------------------------------------------------------------------


def _copy(name: str = "dev", expires: timedelta | None = timedelta(minutes=-1),
          container_id: str = "a" * 64, volumes: tuple[str, ...] = ("dev-data",)) -> CopyRecord:
    return CopyRecord(name=name, container_id=container_id, snapshot_id="snap-1",
                      instance="shop", created_at=NOW - timedelta(hours=1), volumes=volumes,
                      expires_at=None if expires is None else NOW + expires)


def test_an_expired_copy_goes_with_its_recorded_volumes() -> None:
    copy = _copy()
    [expiry] = decide_expiry([copy], NOW, {"dev": copy.container_id}, {"dev-data": "snap-1"})
    assert (expiry.container_id, expiry.volumes, expiry.refused, expiry.foreign) == (
        copy.container_id, ("dev-data",), None, ())


def test_copies_not_expired_or_without_ttl_or_removed_are_not_touched() -> None:
    later = _copy("later", timedelta(seconds=1))
    forever = _copy("forever", None)
    gone = replace(_copy("gone"), removed_at=NOW - timedelta(minutes=1))
    holders = {c.name: c.container_id for c in (later, forever, gone)}
    assert decide_expiry([later, forever, gone], NOW, holders, {"dev-data": "snap-1"}) == []


def test_exactly_at_expiry_is_expired() -> None:
    copy = _copy(expires=timedelta(0))
    assert len(decide_expiry([copy], NOW, {}, {})) == 1


def test_a_reused_name_is_refused_whole() -> None:
    copy = _copy()
    [expiry] = decide_expiry([copy], NOW, {"dev": "b" * 64}, {"dev-data": "snap-1"})
    assert (expiry.container_id, expiry.volumes) == (None, ())
    assert expiry.refused is not None and "bbbbbbbbbbbb" in expiry.refused


def test_a_container_already_gone_leaves_its_volumes_to_remove() -> None:
    [expiry] = decide_expiry([_copy()], NOW, {"dev": None}, {"dev-data": "snap-1"})
    assert (expiry.container_id, expiry.volumes) == (None, ("dev-data",))


def test_volumes_gone_or_re_created_by_someone_else_are_not_removed() -> None:
    copy = _copy(volumes=("dev-data", "dev-wal", "dev-gone"))
    [expiry] = decide_expiry([copy], NOW, {"dev": copy.container_id},
                             {"dev-data": "snap-1", "dev-wal": None})
    assert (expiry.volumes, expiry.foreign) == (("dev-data",), ("dev-wal",))
