"""Every schedule is bounded: ``@every`` from 1s to 366d, each cron field and
step within its field's range, ASCII digits only, and no cron that can never
fire; retention counts likewise. Bad values are refused with one line naming
the allowed range, never by any other exception."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.engines import engine_names
from backup.labels import (
    MAX_INTERVAL,
    NAME_PATTERN,
    parse_duration,
    parse_labels,
    parse_retention,
    validate_schedule,
)
from service.usecases.schedules import estimate_next_run, is_overdue, trigger_for

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CRON_HORIZON = timedelta(days=41 * 366)
"""The longest a valid cron waits: Feb 29 on a given weekday, across 2100 (not a leap year)."""


@pytest.mark.parametrize(("schedule", "fragment"), [
    ("@every 999999999d", "longer than 366d; use 1s to 366d"),
    ("@every 99999999999999999999999d", "longer than 366d; use 1s to 366d"),
    ("@every 367d", "longer than 366d; use 1s to 366d"),
    ("@every 527041m", "longer than 366d"),
    ("@every 0s", "longer than zero; use 1s to 366d"),
    ("@every " + "9" * 5000 + "s", "longer than 366d"),  # int() of it would raise
    ("*/99999999999999999999 * * * *", "minute step in '*/99999999999999999999' must be a "
                                       "whole number from 1 to 59"),
    ("*/60 * * * *", "from 1 to 59"),
    ("0 */24 * * *", "hour step in '*/24' must be a whole number from 1 to 23"),
    ("0 0 */31 * *", "from 1 to 30"),
    ("0 0 1 */12 *", "from 1 to 11"),
    ("0 0 * * */8", "from 1 to 7"),
    ("0 0 * * 1-5/5", "from 1 to 4"),
    ("0 0 * * 7/3", "steps over a single value"),
    ("99999999999999999999 * * * *", "minute '99999999999999999999' is not a number from 0 "
                                     "to 59"),
    ("0 0 31 2 *", "never fires: month 2 has at most 29 days; use a day from 1 to 29"),
    ("0 0 30 2 *", "never fires"),
    ("0 0 31 4,6,9,11 *", "never fires: months 4,6,9,11 have at most 30 days"),
    ("0 0 31 apr *", "never fires"),
])
def test_out_of_range_schedules_are_refused_naming_the_range(schedule: str,
                                                             fragment: str) -> None:
    with pytest.raises(ValueError) as refused:
        validate_schedule(schedule)
    assert fragment in str(refused.value)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200


@pytest.mark.parametrize("schedule", [
    "\u0663 * * * *",  # ARABIC-INDIC DIGIT THREE
    "0 \uff13 * * *",  # FULLWIDTH DIGIT THREE
    "0 0 \u0663 * *", "0 0 1 \uff11 *", "0 0 * * \u0661", "*/\uff15 * * * *",
    "0-\u0665 * * * *", "@every \uff13s", "@every \u0663\u0660m", "@every 1\u0660s",
])
def test_unicode_digits_are_refused(schedule: str) -> None:
    assert not str.isascii(schedule) and any(c.isdigit() for c in schedule if not c.isascii())
    with pytest.raises(ValueError):
        validate_schedule(schedule)


@pytest.mark.parametrize("text", ["last=\u0663", "daily=\uff17", "last=1\u0660",
                                  "last=1000001", "last=" + "9" * 5000, "\u212aeekly=1"])
def test_retention_takes_ascii_counts_within_range(text: str) -> None:
    with pytest.raises(ValueError):
        parse_retention(text)


def test_retention_bounds_are_inclusive() -> None:
    assert parse_retention("last=1,daily=1000000") == {"last": 1, "daily": 1_000_000}


@pytest.mark.parametrize("schedule", ["@every 1s", "@every 366d", "@every 527040m",
                                      "0 0 29 2 *", "0 0 31 1-12/2 *", "*/59 * * * *",
                                      "5/10 * * * *", "0 0 * * 1/2", "0 0 * jan-mar/2 *"])
def test_the_bounds_themselves_are_accepted(schedule: str) -> None:
    assert validate_schedule(schedule) == schedule
    assert trigger_for(schedule).get_next_fire_time(None, NOW) is not None


@pytest.mark.parametrize(("schedule", "expected"), [
    # "N/S" runs from N to the field's end, for every field alike.
    ("5/20 * * * *", [NOW + timedelta(minutes=5), NOW + timedelta(minutes=25)]),
    ("0 0 * * 1/2", [datetime(2026, 12, 4, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC)]),
])
def test_a_step_after_one_value_runs_to_the_fields_end(schedule: str,
                                                       expected: list[datetime]) -> None:
    trigger = trigger_for(schedule)
    first = trigger.get_next_fire_time(None, NOW)
    assert first is not None
    assert [first, trigger.get_next_fire_time(first, first + timedelta(seconds=1))] == expected


def test_a_name_with_a_trailing_newline_does_not_pass() -> None:
    assert NAME_PATTERN.match("shop-db") and not NAME_PATTERN.match("shop-db\n")
    policy = parse_labels({"holdfast.enable": "true"}, "shop-db\n", known_engines=engine_names())
    assert any(error.startswith("holdfast.name") for error in policy.errors), policy.errors


# --- properties -------------------------------------------------------------------------


def _number(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(str)


def _part(low: int, high: int) -> st.SearchStrategy[str]:
    single = _number(low, high)
    ranged = st.tuples(st.integers(low, high), st.integers(low, high)).map(
        lambda pair: f"{min(pair)}-{max(pair)}")
    stepped = st.tuples(st.one_of(st.just("*"), ranged, single),
                        st.integers(1, high - low)).map(lambda pair: f"{pair[0]}/{pair[1]}")
    return st.one_of(st.just("*"), single, ranged, stepped)


def _field(low: int, high: int) -> st.SearchStrategy[str]:
    return st.lists(_part(low, high), min_size=1, max_size=3).map(",".join)


CRONS = st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12),
                  _field(0, 7)).map(" ".join)
EVERY = st.tuples(st.integers(0, 10**12), st.sampled_from("smhd")).map(
    lambda pair: f"@every {pair[0]}{pair[1]}")


@settings(max_examples=300, deadline=None)
@given(st.one_of(CRONS, EVERY))
def test_any_accepted_schedule_fires_within_its_bound(schedule: str) -> None:
    try:
        accepted = validate_schedule(schedule)
    except ValueError as refused:
        assert "\n" not in str(refused)
        return
    trigger = trigger_for(accepted)
    due = trigger.get_next_fire_time(None, NOW)
    assert due is not None
    if accepted.startswith("@every"):
        interval = timedelta(seconds=parse_duration(accepted[len("@every"):]))
        assert interval <= timedelta(seconds=MAX_INTERVAL)
        assert due - datetime.now(UTC) <= interval
        assert estimate_next_run(accepted, NOW, NOW) == due  # aligned: the trigger decides
    else:
        assert NOW <= due <= NOW + CRON_HORIZON
        # and the fire after that one is computable too (APScheduler's loop needs it)
        assert trigger.get_next_fire_time(due, due + timedelta(seconds=1)) is not None
    is_overdue(accepted, NOW - timedelta(days=400), NOW)  # never raises


DIGITS = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=30)


@settings(max_examples=300)
@given(DIGITS, st.integers(0, 5), st.sampled_from(["", "*/", "1-"]))
def test_any_digit_string_anywhere_is_accepted_only_if_ascii_and_in_range(
        digits: str, position: int, prefix: str) -> None:
    fields = ["0", "0", "1", "1", "*"]
    if position == 5:
        schedule = f"@every {digits}m"
    else:
        fields[position] = prefix + digits
        schedule = " ".join(fields)
    try:
        validate_schedule(schedule)
    except ValueError:
        return
    assert digits.isascii(), f"{schedule!r} was accepted"
    policy = parse_labels({"holdfast.enable": "true", "holdfast.schedule": schedule}, "db",
                          known_engines=engine_names())
    assert policy.ok and trigger_for(schedule).get_next_fire_time(None, NOW) is not None


@given(DIGITS)
def test_any_digit_string_as_a_retention_count_is_ascii_or_refused(digits: str) -> None:
    try:
        parsed = parse_retention(f"last={digits}")
    except ValueError as refused:
        assert "1 to 1,000,000" in str(refused)
        return
    assert digits.isascii() and 1 <= parsed["last"] <= 1_000_000
