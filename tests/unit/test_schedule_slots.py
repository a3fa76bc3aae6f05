"""The slot a scheduled fire belongs to (:func:`slot_of`): the latest fire time at
or before now, the same for every moment until the next fire, and the same on
every daemon (``@every`` counts from a fixed epoch)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.usecases.schedules import INTERVAL_EPOCH, slot_of, trigger_for

NOW = datetime(2026, 12, 2, 12, 0, 41, 250_000, tzinfo=UTC)  # a Wednesday

SCHEDULES = st.sampled_from([
    "30 3 * * *", "*/15 * * * *", "0 0 * * 0", "15 4 * * mon-fri", "0 0 31 * *",
    "0 0 29 2 *", "* * * 1 *", "@hourly", "@daily", "@weekly", "@monthly",
    "@every 1s", "@every 90s", "@every 7m", "@every 6h", "@every 13d", "@every 366d",
])
MOMENTS = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2098, 12, 31),
                       timezones=st.just(UTC))


def _next_after(schedule: str, slot: datetime) -> datetime | None:
    """The trigger's first fire strictly after ``slot`` (fires are whole seconds)."""
    due: datetime | None = trigger_for(schedule).get_next_fire_time(
        slot, slot + timedelta(seconds=1))
    return due


@settings(max_examples=200, deadline=None)
@given(SCHEDULES, MOMENTS)
def test_the_slot_is_the_latest_fire_at_or_before_now(schedule: str, now: datetime) -> None:
    slot = slot_of(schedule, now)
    assert slot is not None and slot.tzinfo is not None and slot.microsecond == 0
    assert slot <= now
    following = _next_after(schedule, slot)
    assert following is not None and following > now
    # and the slot is itself a fire: the trigger, asked from it, names it
    assert trigger_for(schedule).get_next_fire_time(None, slot) == slot


@settings(max_examples=200, deadline=None)
@given(SCHEDULES, MOMENTS, st.floats(0, 1))
def test_every_moment_within_one_slot_names_that_slot(schedule: str, now: datetime,
                                                      fraction: float) -> None:
    slot = slot_of(schedule, now)
    assert slot is not None
    following = _next_after(schedule, slot)
    assert following is not None
    later = slot + (following - slot - timedelta(microseconds=1)) * fraction
    assert slot_of(schedule, later) == slot
    assert slot_of(schedule, following) == following


@pytest.mark.parametrize(("schedule", "expected"), [
    ("30 3 * * *", datetime(2026, 12, 2, 3, 30, tzinfo=UTC)),
    ("*/15 * * * *", datetime(2026, 12, 2, 12, 0, tzinfo=UTC)),
    ("0 0 * * 0", datetime(2026, 11, 29, tzinfo=UTC)),  # weekly, on Sundays
    ("@weekly", datetime(2026, 11, 29, tzinfo=UTC)),
    ("0 0 31 * *", datetime(2026, 10, 31, tzinfo=UTC)),  # November has no 31st
    ("@monthly", datetime(2026, 12, 1, tzinfo=UTC)),
    ("0 0 29 2 *", datetime(2024, 2, 29, tzinfo=UTC)),
    ("0 0 29 2 1", datetime(2016, 2, 29, tzinfo=UTC)),  # Feb 29 on a Monday
    ("* * * 1 *", datetime(2026, 1, 31, 23, 59, tzinfo=UTC)),
    ("@every 90s", datetime(2026, 12, 2, 12, 0, tzinfo=UTC)),
    ("@every 6h", datetime(2026, 12, 2, 12, tzinfo=UTC)),
    ("@every 7m", datetime(2026, 12, 2, 11, 55, tzinfo=UTC)),  # 2000-01-01 + k * 7m
    ("@every 1s", datetime(2026, 12, 2, 12, 0, 41, tzinfo=UTC)),
])
def test_slots_of_examples(schedule: str, expected: datetime) -> None:
    assert slot_of(schedule, NOW) == expected


def test_a_fire_exactly_on_time_is_its_own_slot() -> None:
    assert slot_of("30 3 * * *", datetime(2026, 12, 2, 3, 30, tzinfo=UTC)) == \
        datetime(2026, 12, 2, 3, 30, tzinfo=UTC)
    assert slot_of("30 3 * * *", datetime(2026, 12, 2, 3, 29, 59, 999_999, tzinfo=UTC)) == \
        datetime(2026, 12, 1, 3, 30, tzinfo=UTC)


@given(st.integers(1, 366 * 86400), MOMENTS)
def test_every_slots_are_anchored_at_the_epoch(seconds: int, now: datetime) -> None:
    slot = slot_of(f"@every {seconds}s", now)
    assert slot is not None
    assert (slot - INTERVAL_EPOCH) % timedelta(seconds=seconds) == timedelta()
    assert slot <= now < slot + timedelta(seconds=seconds)


def test_every_trigger_fires_on_its_slots_whenever_it_is_built() -> None:
    """Two daemons that built the trigger at different times fire together."""
    trigger = trigger_for("@every 7m")
    due = trigger.get_next_fire_time(None, NOW)
    assert due is not None and slot_of("@every 7m", due) == due
    assert (due - INTERVAL_EPOCH) % timedelta(minutes=7) == timedelta()


def test_a_slot_is_the_same_in_any_timezone() -> None:
    from zoneinfo import ZoneInfo
    local = NOW.astimezone(ZoneInfo("Pacific/Chatham"))  # +13:45 in December
    assert slot_of("30 3 * * *", local) == slot_of("30 3 * * *", NOW)
    assert slot_of("@every 7m", local) == slot_of("@every 7m", NOW)


def test_a_schedule_that_does_not_validate_raises_value_error() -> None:
    with pytest.raises(ValueError):
        slot_of("61 * * * *", NOW)
    with pytest.raises(ValueError):
        slot_of("@every 0s", NOW)
