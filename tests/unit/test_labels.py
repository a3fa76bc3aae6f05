"""Label parsing: every contract label, and bad values reported, never raised."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.engines import engine_names
from backup.labels import (
    instance_name,
    parse_duration,
    parse_jobs,
    parse_labels,
    parse_retention,
    validate_schedule,
)


def test_full_label_set_parses() -> None:
    policy = parse_labels(
        {
            "holdfast.enable": "true",
            "holdfast.name": "billing-db",
            "holdfast.engine": "postgres",
            "holdfast.schedule": "0 3 * * *",
            "holdfast.retention": "last=3,daily=7,weekly=4",
            "holdfast.target": "OFFSITE",
            "holdfast.databases": "billing, audit",
            "holdfast.stop-during-backup": "false",
        },
        "ignored", known_engines=engine_names(),
    )
    assert policy.ok, policy.errors
    assert policy.enabled
    assert policy.name == "billing-db"
    assert policy.engine == "postgres"
    assert policy.schedule == "0 3 * * *"
    assert dict(policy.retention) == {"last": 3, "daily": 7, "weekly": 4}
    assert policy.target == "offsite"
    assert policy.databases == ("billing", "audit")
    assert policy.stop_during_backup is False


@pytest.mark.parametrize(("raw", "jobs"), [(None, 1), ("", 1), ("1", 1), (" 4 ", 4), ("16", 16)])
def test_jobs_are_one_unless_a_label_says(raw: str | None, jobs: int) -> None:
    assert parse_jobs(raw) == jobs
    labels = {"holdfast.enable": "true"} | ({} if raw is None else {"holdfast.jobs": raw})
    assert parse_labels(labels, "c", known_engines=engine_names()).ok


def test_defaults_without_labels() -> None:
    policy = parse_labels({}, "/plain", known_engines=engine_names())
    assert not policy.enabled
    assert policy.name == "plain"
    assert policy.engine is None and policy.schedule is None
    assert policy.target == "local" and not policy.retention and policy.ok


def test_name_prefers_label_then_compose_then_container() -> None:
    compose = {"com.docker.compose.project": "shop", "com.docker.compose.service": "db"}
    assert instance_name(compose, "shop-db-1") == "shop-db"
    assert instance_name({**compose, "holdfast.name": "main"}, "shop-db-1") == "main"
    assert instance_name({}, "/lonely") == "lonely"


@pytest.mark.parametrize(
    ("labels", "fragment"),
    [
        ({"holdfast.schedule": "61 * * * *"}, "holdfast.schedule"),
        ({"holdfast.schedule": "* * *"}, "5 fields"),
        ({"holdfast.schedule": "@every 0s"}, "longer than zero"),
        ({"holdfast.schedule": "@fortnightly"}, "unknown schedule"),
        ({"holdfast.engine": "oracle"}, "holdfast.engine 'oracle' is unknown"),
        ({"holdfast.retention": "daily=-1"}, "positive whole number"),
        ({"holdfast.retention": "forever=1"}, "retention item"),
        ({"holdfast.retention": "last=1,last=2"}, "twice"),
        ({"holdfast.stop-during-backup": "maybe"}, "true or false"),
        ({"holdfast.name": "bad name!"}, "holdfast.name"),
        ({"holdfast.jobs": "0"}, "holdfast.jobs '0': give a whole number from 1 to 16"),
        ({"holdfast.jobs": "17"}, "from 1 to 16"),
        ({"holdfast.jobs": "\u0663"}, "from 1 to 16"),  # an Arabic-Indic three
        ({"holdfast.jobs": "two"}, "holdfast.jobs"),
    ],
)
def test_bad_labels_become_errors(labels: dict[str, str], fragment: str) -> None:
    policy = parse_labels({"holdfast.enable": "true", **labels}, "c", known_engines=engine_names())
    assert not policy.ok
    assert any(fragment in error for error in policy.errors), policy.errors


@pytest.mark.parametrize(
    "schedule",
    ["0 3 * * *", "*/15 * * * *", "0 0 1 jan,jul *", "30 2 * * mon-fri", "@daily", "@hourly",
     "@weekly", "@monthly", "@every 90s", "@every 6h", "@every 15m"],
)
def test_valid_schedules(schedule: str) -> None:
    assert validate_schedule(schedule) == schedule


@pytest.mark.parametrize("schedule", ["0 24 * * *", "0 0 0 * *", "0 0 * 13 *", "5-1 * * * *",
                                      "*/0 * * * *", "@every", "@every 5x", "a b c d e"])
def test_invalid_schedules(schedule: str) -> None:
    with pytest.raises(ValueError):
        validate_schedule(schedule)


def test_durations() -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("15m") == 900
    assert parse_duration("6h") == 21600
    assert parse_duration("1d") == 86400


@given(st.dictionaries(st.sampled_from(["last", "hourly", "daily", "weekly", "monthly",
                                        "yearly"]), st.integers(1, 10_000), min_size=1))
def test_retention_round_trips(policy: dict[str, int]) -> None:
    text = ",".join(f"{key}={value}" for key, value in policy.items())
    assert parse_retention(text) == policy


@given(st.dictionaries(st.text(max_size=30), st.text(max_size=30), max_size=8),
       st.text(min_size=1, max_size=30))
def test_parse_labels_never_raises(labels: dict[str, str], container: str) -> None:
    prefixed = {f"holdfast.{key}": value for key, value in labels.items()}
    policy = parse_labels(prefixed, container, known_engines=engine_names())
    assert isinstance(policy.errors, tuple)


def test_alerting_labels_name_channels_a_ping_url_and_a_stale_window() -> None:
    policy = parse_labels({"holdfast.enable": "true", "holdfast.notify": " Pager, ops,ops ",
                           "holdfast.ping": "https://hc-ping.com/5d1c-uuid",
                           "holdfast.stale_after": "26h"}, "db", known_engines={"postgres"})
    assert policy.ok, policy.errors
    assert policy.notify == ("ops", "pager")
    assert policy.ping == "https://hc-ping.com/5d1c-uuid"
    assert policy.stale_after == 26 * 3600
    plain = parse_labels({"holdfast.enable": "true"}, "db", known_engines={"postgres"})
    assert (plain.notify, plain.ping, plain.stale_after) == (None, None, None)


@pytest.mark.parametrize(("label", "value", "message"), [
    ("holdfast.notify", "ops;pager", "holdfast.notify 'ops;pager': list channel names"),
    ("holdfast.notify", " , ", "list channel names"),
    ("holdfast.ping", "ftp://hc/SECRET-UUID", "holdfast.ping: use an http:// or https:// URL"),
    ("holdfast.ping", "https:///SECRET-UUID", "with a host"),
    ("holdfast.ping", "https://hc/" + "SECRET-UUID" * 200, "at most 2048"),
    ("holdfast.stale_after", "0s", "holdfast.stale_after: interval '0s' must be longer"),
    ("holdfast.stale_after", "soon", "is not a duration"),
])
def test_bad_alerting_labels_are_the_instance_s_errors(label: str, value: str,
                                                       message: str) -> None:
    policy = parse_labels({"holdfast.enable": "true", label: value}, "db",
                          known_engines={"postgres"})
    assert len(policy.errors) == 1 and message in policy.errors[0], policy.errors
    assert "SECRET-UUID" not in policy.errors[0]
