"""The alert decisions (:mod:`backup.alerts`): once per state, a recovery clears it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.alerts import (
    DEFAULT_EVENTS,
    Alarm,
    Condition,
    EventName,
    Observation,
    channels_for,
    decide,
    parse_events,
    retry_delays,
    sign,
    signature_matches,
    stale_deadline,
)

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _seen(failing: bool, minute: int = 0, condition: Condition = Condition.BACKUP) -> Observation:
    return Observation(condition, "pg-main", failing, "dump failed" if failing else "complete",
                       T0 + timedelta(minutes=minute), instance="pg-main", job=f"job-{minute}")


@given(st.lists(st.booleans(), max_size=60), st.sampled_from(list(Condition)))
def test_each_failing_stretch_fires_once_and_each_recovery_once(outcomes: list[bool],
                                                                condition: Condition) -> None:
    alarm: Alarm | None = None
    fired: list[EventName] = []
    for minute, failing in enumerate(outcomes):
        decision = decide(alarm, _seen(failing, minute, condition))
        alarm = decision.alarm
        fired.extend(event.name for event in decision.events)
    stretches = sum(1 for i, failing in enumerate(outcomes)
                    if failing and (i == 0 or not outcomes[i - 1]))
    recoveries = sum(1 for i, failing in enumerate(outcomes)
                     if not failing and i > 0 and outcomes[i - 1])
    assert fired.count(condition.event) == stretches
    assert fired.count(EventName.RECOVERED) == recoveries
    # Strictly alternating: never two failures or two recoveries in a row.
    assert all(a != b for a, b in itertools.pairwise(fired))
    assert (alarm is not None) == bool(outcomes and outcomes[-1])


def test_a_recovery_names_what_it_clears_and_how_long_it_failed() -> None:
    first = decide(None, _seen(True, 0))
    second = decide(first.alarm, _seen(True, 5))
    assert second.events == () and second.alarm is not None and second.alarm.failures == 2
    assert second.alarm.since == T0  # the stretch began at its first failure
    recovered = decide(second.alarm, _seen(False, 9)).events[0]
    assert recovered.name == EventName.RECOVERED
    assert recovered.cleared == EventName.BACKUP_FAILED
    assert "2026-12-03T12:00:00Z" in recovered.reason and "2 failure(s)" in recovered.reason
    body = recovered.payload("http://127.0.0.1:8420/v1/jobs/job-9")
    assert body["event"] == "recovered" and body["cleared"] == "backup.failed"
    assert body["job"] == "job-9" and body["time"] == "2026-12-03T12:09:00Z"
    assert set(body) >= {"event", "instance", "reason", "snapshot", "job", "time"}


def test_the_event_list_setting_is_checked_and_defaults_leave_out_successes() -> None:
    assert EventName.BACKUP_SUCCEEDED not in DEFAULT_EVENTS
    assert parse_events("backup.failed, Recovered", source="X") == {
        EventName.BACKUP_FAILED, EventName.RECOVERED}
    assert parse_events("all", source="X") == frozenset(EventName)
    refused = r"HOLDFAST_NOTIFY_OPS_EVENTS: unknown event 'backup\.done'"
    with pytest.raises(ValueError, match=refused):
        parse_events("backup.done", source="HOLDFAST_NOTIFY_OPS_EVENTS")
    with pytest.raises(ValueError, match="at least one"):
        parse_events(" , ", source="X")


def test_an_instance_label_narrows_the_channels_that_want_an_event() -> None:
    channels = [("ops", DEFAULT_EVENTS), ("chat", frozenset({EventName.BACKUP_SUCCEEDED})),
                ("pager", frozenset({EventName.BACKUP_FAILED}))]
    assert channels_for(channels, EventName.BACKUP_FAILED, None) == ["ops", "pager"]
    assert channels_for(channels, EventName.BACKUP_FAILED, ["pager", "chat"]) == ["pager"]
    assert channels_for(channels, EventName.BACKUP_SUCCEEDED, None) == ["chat"]


def _every(minutes: int) -> Callable[[datetime], datetime | None]:
    return lambda after: after + timedelta(minutes=minutes)


def test_stale_is_two_missed_runs_after_the_newest_snapshot_plus_its_run_time() -> None:
    hourly = _every(60)
    deadline = stale_deadline(T0, hourly, allowance=timedelta(minutes=3))
    assert deadline == T0 + timedelta(hours=2, minutes=3)
    explicit = stale_deadline(T0, hourly, allowance=timedelta(minutes=3),
                              explicit=timedelta(seconds=4))
    assert explicit == T0 + timedelta(seconds=4)
    assert stale_deadline(T0, lambda _: None, allowance=timedelta()) is None


def test_a_weekday_schedule_is_not_stale_over_the_weekend() -> None:
    friday = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)

    def weekdays_at_two(after: datetime) -> datetime:
        day = (after + timedelta(days=1)).replace(hour=2, minute=0)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    deadline = stale_deadline(friday, weekdays_at_two, allowance=timedelta(minutes=1))
    assert deadline == datetime(2026, 12, 8, 2, 1, tzinfo=UTC)  # Tuesday: Monday's run missed too


@given(st.floats(min_value=0, max_value=86_400))
def test_retries_stay_within_their_budget_and_back_off(budget: float) -> None:
    delays = retry_delays(budget)
    assert sum(delays) <= budget + 1e-6
    assert all(0 < delay <= 300 for delay in delays)
    assert delays == sorted(delays)
    if budget >= 2:
        assert delays and delays[0] == 2


def test_the_signature_is_the_hmac_of_the_exact_body() -> None:
    body = b'{"event":"backup.failed"}'
    header = sign(body, "s3cret")
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert signature_matches(body, "s3cret", header)
    assert not signature_matches(body + b" ", "s3cret", header)
    assert not signature_matches(body, "other", header)
