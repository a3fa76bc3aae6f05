"""Alerts: the events ops are told about, when each one fires, and how a message is signed.

Pure decisions, no I/O ("decide, then apply"): :func:`decide` takes the alarm
open for one condition (an instance's backups, its freshness, its verified
restores, its retention, a target) and what was just observed, and returns the
events to send and the alarm to keep. A condition that stays failing fires
once; the first success after it fires ``recovered`` and clears it.
:func:`stale_deadline` says when an instance with no newer complete snapshot
becomes stale; :func:`retry_delays` bounds a delivery's retries; :func:`sign`
is the ``X-Holdfast-Signature`` of Holdfast's own JSON webhook.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

SIGNATURE_HEADER = "X-Holdfast-Signature"


class EventName(StrEnum):
    BACKUP_FAILED = "backup.failed"
    BACKUP_SUCCEEDED = "backup.succeeded"
    BACKUP_STALE = "backup.stale"
    VERIFY_FAILED = "verify.failed"
    RESTORE_FAILED = "restore.failed"
    RETENTION_FAILED = "retention.failed"
    TARGET_UNREACHABLE = "target.unreachable"
    RECOVERED = "recovered"


class PingKind(StrEnum):
    """The dead-man pings a run sends to its instance's ``holdfast.ping`` URL."""

    START = "ping.start"
    SUCCESS = "ping.success"
    FAIL = "ping.fail"


DEFAULT_EVENTS = frozenset(EventName) - {EventName.BACKUP_SUCCEEDED}
"""What a channel gets unless ``HOLDFAST_NOTIFY_<NAME>_EVENTS`` lists its own."""


class Condition(StrEnum):
    """A state that can be failing, and the event that says it went wrong."""

    BACKUP = "backup"
    FRESHNESS = "freshness"
    VERIFICATION = "verification"
    RETENTION = "retention"
    TARGET = "target"

    @property
    def event(self) -> EventName:
        return _CONDITION_EVENTS[self]


_CONDITION_EVENTS = {
    Condition.BACKUP: EventName.BACKUP_FAILED,
    Condition.FRESHNESS: EventName.BACKUP_STALE,
    Condition.VERIFICATION: EventName.VERIFY_FAILED,
    Condition.RETENTION: EventName.RETENTION_FAILED,
    Condition.TARGET: EventName.TARGET_UNREACHABLE,
}


def parse_events(text: str, *, source: str) -> frozenset[EventName]:
    """A comma list of event names (``all`` for every one) -> the set.
    Raises ValueError naming ``source`` (the setting) and the known names."""
    wanted: set[EventName] = set()
    for part in (piece.strip().lower() for piece in text.split(",")):
        if not part:
            continue
        if part == "all":
            wanted.update(EventName)
            continue
        try:
            wanted.add(EventName(part))
        except ValueError:
            known = ", ".join(sorted(EventName))
            raise ValueError(f"{source}: unknown event {part[:40]!r}; use all or any of "
                             f"{known}") from None
    if not wanted:
        raise ValueError(f"{source}: list at least one event, or unset it for the default")
    return frozenset(wanted)


@dataclass(frozen=True)
class Event:
    """One thing to tell ops. ``subject`` is the instance, or the target for
    ``target.unreachable``; ``cleared`` is the event a ``recovered`` ends."""

    name: EventName
    subject: str
    reason: str
    time: datetime
    instance: str | None = None
    snapshot: str | None = None
    job: str | None = None
    target: str | None = None
    cleared: EventName | None = None

    def payload(self, link: str | None) -> dict[str, Any]:
        """The JSON body of Holdfast's own webhook (documented in the README)."""
        return {
            "event": str(self.name),
            "instance": self.instance,
            "target": self.target,
            "reason": self.reason,
            "snapshot": self.snapshot,
            "job": self.job,
            "cleared": None if self.cleared is None else str(self.cleared),
            "time": self.time.isoformat().replace("+00:00", "Z"),
            "link": link,
        }

    def title(self) -> str:
        """One line for chat services: ``[holdfast] backup.failed: pg-main``."""
        return f"[holdfast] {self.name}: {self.subject}"


@dataclass(frozen=True)
class Alarm:
    """A condition that is failing now, since when, and the event that said so."""

    condition: Condition
    subject: str
    since: datetime
    reason: str
    failures: int = 1


@dataclass(frozen=True)
class Observation:
    """What was just seen of ``condition`` for ``subject``: failing or not."""

    condition: Condition
    subject: str
    failing: bool
    reason: str
    time: datetime
    instance: str | None = None
    snapshot: str | None = None
    job: str | None = None
    target: str | None = None


@dataclass(frozen=True)
class Decision:
    events: tuple[Event, ...]
    alarm: Alarm | None
    """The alarm to keep for the condition (None: it is clear)."""


def decide(open_alarm: Alarm | None, seen: Observation) -> Decision:
    """The events ``seen`` fires, given the alarm open for its condition: the
    condition's event on the first failure only; ``recovered`` on the first
    success after a failure; nothing while the state does not change."""
    if seen.failing:
        if open_alarm is not None:
            return Decision((), replace(open_alarm, failures=open_alarm.failures + 1))
        alarm = Alarm(seen.condition, seen.subject, seen.time, seen.reason)
        return Decision((_event(seen, seen.condition.event, seen.reason),), alarm)
    if open_alarm is None:
        return Decision((), None)
    reason = (f"{seen.reason}; clears {seen.condition.event} of "
              f"{open_alarm.since.isoformat(timespec='seconds').replace('+00:00', 'Z')} "
              f"({open_alarm.failures} failure(s))")
    recovered = replace(_event(seen, EventName.RECOVERED, reason),
                        cleared=seen.condition.event)
    return Decision((recovered,), None)


def _event(seen: Observation, name: EventName, reason: str) -> Event:
    return Event(name=name, subject=seen.subject, reason=reason, time=seen.time,
                 instance=seen.instance, snapshot=seen.snapshot, job=seen.job,
                 target=seen.target)


def stale_deadline(reference: datetime, fires_after: Callable[[datetime], datetime | None], *,
                   allowance: timedelta, explicit: timedelta | None = None) -> datetime | None:
    """When an instance whose newest complete snapshot (or, without one, the
    moment it was first watched) is ``reference`` becomes stale. ``explicit``
    (``holdfast.stale_after``) is a window from ``reference``; otherwise the
    schedule's second fire after ``reference`` plus ``allowance`` (what its
    last run took): two scheduled runs passed without a complete snapshot,
    whatever the schedule's gaps (a weekday cron's weekend). None: never (no
    schedule, or one that does not fire again)."""
    if explicit is not None:
        return reference + explicit
    first = fires_after(reference)
    second = None if first is None else fires_after(first)
    return None if second is None else second + allowance


def retry_delays(budget: float, *, first: float = 2.0, factor: float = 2.0,
                 longest: float = 300.0) -> list[float]:
    """Seconds to wait before each retry of a failed delivery: doubling from
    ``first`` up to ``longest`` each, stopping before their sum passes
    ``budget`` (``HOLDFAST_NOTIFY_RETRY_FOR``)."""
    delays: list[float] = []
    delay, spent = first, 0.0
    while delay > 0 and spent + delay <= budget + 1e-9:  # 0.05 + 0.1 + 0.2 is 0.35
        delays.append(delay)
        spent += delay
        delay = min(delay * factor, longest)
    return delays


def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex>``: the HMAC-SHA256 of ``body`` keyed by ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, secret: str, header: str) -> bool:
    """What a receiver checks: ``header`` is :func:`sign` of ``body`` (constant time)."""
    return hmac.compare_digest(sign(body, secret), header.strip())


def channels_for(channels: Iterable[tuple[str, frozenset[EventName]]], event: EventName,
                 narrowed: Iterable[str] | None) -> list[str]:
    """The channels that get ``event``: those that want it, and of those only
    the ones an instance's ``holdfast.notify`` lists, when it lists any."""
    allowed = None if narrowed is None else set(narrowed)
    return sorted(name for name, wanted in channels
                  if event in wanted and (allowed is None or name in allowed))
