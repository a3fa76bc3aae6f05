"""Schedule arithmetic: triggers, missed runs after downtime, next-run estimates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.usecases.schedules import estimate_next_run, is_overdue, trigger_for, weekdays_as_names

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        ("0 3 * * *", NOON, datetime(2026, 11, 30, 3, 0, tzinfo=UTC)),
        ("*/15 * * * *", NOON + timedelta(minutes=1), NOON + timedelta(minutes=15)),
        ("@hourly", NOON + timedelta(seconds=1), NOON + timedelta(hours=1)),
        ("@daily", NOON, datetime(2026, 11, 30, tzinfo=UTC)),
        ("@weekly", NOON, datetime(2026, 12, 6, tzinfo=UTC)),  # Sunday; 2026-11-29 is one
        ("@monthly", NOON, datetime(2026, 12, 1, tzinfo=UTC)),
        ("30 2 * * mon-fri", NOON, datetime(2026, 11, 30, 2, 30, tzinfo=UTC)),
    ],
)
def test_cron_triggers_fire_when_cron_would(schedule: str, after: datetime,
                                            expected: datetime) -> None:
    assert trigger_for(schedule).get_next_fire_time(None, after) == expected


@pytest.mark.parametrize(
    ("field", "names"),
    [("*", "*"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"),
     ("mon-fri", "mon,tue,wed,thu,fri"), ("0,6", "sun,sat"), ("*/2", "sun,tue,thu,sat"),
     ("5-7", "sun,fri,sat"), ("sun", "sun"), ("1-5/2", "mon,wed,fri")],
)
def test_cron_weekdays_become_names(field: str, names: str) -> None:
    assert weekdays_as_names(field) == names


@given(st.integers(0, 7), st.integers(0, 23))
def test_numeric_weekday_fires_on_that_day(weekday: int, hour: int) -> None:
    fire = trigger_for(f"0 {hour} * * {weekday}").get_next_fire_time(None, NOON)
    assert fire is not None
    assert fire.isoweekday() % 7 == weekday % 7  # cron: 0 and 7 are Sunday


def test_missed_daily_run_is_overdue_once() -> None:
    last = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)  # three slots missed since
    assert is_overdue("@daily", last, NOON)
    assert not is_overdue("@daily", datetime(2026, 11, 29, 0, 0, tzinfo=UTC), NOON)


def test_never_run_is_not_overdue() -> None:
    assert not is_overdue("@every 10s", None, NOON)
    assert not is_overdue("0 3 * * *", None, NOON)


def test_every_is_overdue_once_an_aligned_slot_passed() -> None:
    # NOON is a 90s slot (counted from 2000-01-01): a run before it missed it.
    assert is_overdue("@every 90s", NOON - timedelta(seconds=1), NOON)
    assert not is_overdue("@every 90s", NOON, NOON + timedelta(seconds=89))
    assert is_overdue("@every 90s", NOON, NOON + timedelta(seconds=90))


@given(st.integers(1, 3600), st.integers(0, 7200))
def test_every_overdue_matches_the_trigger(interval: int, elapsed: int) -> None:
    """Overdue exactly when the (aligned) trigger fired after the last run, by NOON."""
    last = NOON - timedelta(seconds=elapsed)
    due = trigger_for(f"@every {interval}s").get_next_fire_time(None, last + timedelta(seconds=1))
    assert due is not None
    assert is_overdue(f"@every {interval}s", last, NOON) == (due <= NOON)


def test_next_run_estimates() -> None:
    assert estimate_next_run(None, None, NOON) is None
    # @every fires on slots counted from 2000-01-01, whenever it last ran
    assert estimate_next_run("@every 10s", None, NOON) == NOON
    assert estimate_next_run("@every 10s", None, NOON + timedelta(seconds=4)) == \
        NOON + timedelta(seconds=10)
    assert estimate_next_run("@every 10s", NOON - timedelta(hours=1),
                             NOON + timedelta(seconds=4)) == NOON + timedelta(seconds=10)
    assert estimate_next_run("0 3 * * *", None, NOON) == datetime(2026, 11, 30, 3, tzinfo=UTC)
