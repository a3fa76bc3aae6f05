"""Notifications: what happened to runs, turned into events for the configured channels.

The job runner, the scheduler and the daemon's watchdog tell a
:class:`Notifier` what they saw (the :class:`RunAlerts` calls). It asks
:func:`backup.alerts.decide` which events that fires given the alarm the
catalog holds for the condition, keeps or clears the alarm, and puts one
message per channel that wants the event (``HOLDFAST_NOTIFY_<NAME>_EVENTS``,
narrowed by the instance's ``holdfast.notify``) into the outbox, which never
blocks the caller. A run of an instance with ``holdfast.ping`` also pings it
on start, success and failure. Nothing here raises into a run: a catalog
hiccup while deciding is logged and the run goes on. :class:`Silent` is the
notifier of a process without the daemon (the CLI).
"""

from __future__ import annotations

import logging
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from backup.alerts import Condition, Event, EventName, Observation, PingKind, channels_for, decide
from backup.errors import DeliveryFailed, InvalidInput, NotFound
from backup.labels import InstancePolicy
from backup.types import Snapshot, utcnow
from service.ports import NotificationLog, PingRoutes, Postbox, Sender
from service.records import Delivery, DeliveryStatus, Message

if TYPE_CHECKING:
    from service.bootstrap import Services
    from service.settings import ChannelSetting

logger = logging.getLogger(__name__)

PolicyOf = Callable[[str], InstancePolicy | None]
"""Instance name -> its policy as last discovered (None: not known)."""

MAX_DELIVERY_LIST = 1000
"""The most deliveries one listing returns."""


class RunAlerts(Protocol):
    """What the runner, scheduler and watchdog report. None of these raises."""

    def run_started(self, instance: str, *, job: str) -> None: ...

    def backup_finished(self, instance: str, *, job: str | None, snapshot: Snapshot | None,
                        error: str | None) -> None:
        """A backup ended: ``error`` None means ``snapshot`` is complete;
        otherwise the one-line reason it failed (or could not start, ``job`` None)."""
        ...

    def backup_cancelled(self, instance: str, *, job: str, reason: str) -> None:
        """A backup stopped on request or at shutdown: no event, but its ping ends."""
        ...

    def verification_finished(self, instance: str, *, job: str | None,
                              snapshot: str | None, error: str | None) -> None:
        """A verified restore passed (``error`` None) or failed, or could not run."""
        ...

    def restore_failed(self, instance: str, *, job: str, snapshot: str, error: str) -> None: ...

    def retention_finished(self, instance: str, *, failures: Sequence[str]) -> None:
        """Retention after a backup ran: ``failures`` are its targets' errors (none: ok)."""
        ...

    def observe(self, seen: Observation) -> tuple[Event, ...]:
        """Decide and send what ``seen`` fires (the watchdog's freshness and targets)."""
        ...


class Silent:
    """The notifier of a process with no channels and no pings to call."""

    def run_started(self, instance: str, *, job: str) -> None:
        return None

    def backup_finished(self, instance: str, *, job: str | None, snapshot: Snapshot | None,
                        error: str | None) -> None:
        return None

    def backup_cancelled(self, instance: str, *, job: str, reason: str) -> None:
        return None

    def verification_finished(self, instance: str, *, job: str | None,
                              snapshot: str | None, error: str | None) -> None:
        return None

    def restore_failed(self, instance: str, *, job: str, snapshot: str, error: str) -> None:
        return None

    def retention_finished(self, instance: str, *, failures: Sequence[str]) -> None:
        return None

    def observe(self, seen: Observation) -> tuple[Event, ...]:
        return ()


def default_link_base(public_url: str | None, host: str, port: int) -> str:
    """``HOLDFAST_PUBLIC_URL``, else the address the daemon serves on (this
    machine's name when it listens on every interface)."""
    if public_url:
        return public_url.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def link_for(base: str | None, event: Event) -> str | None:
    """Where the daemon shows what ``event`` is about: its job, snapshot,
    instance or the targets, under ``base`` (``HOLDFAST_PUBLIC_URL``)."""
    if not base:
        return None
    root = base.rstrip("/")
    if event.job:
        return f"{root}/v1/jobs/{event.job}"
    if event.snapshot:
        return f"{root}/v1/snapshots/{event.snapshot}"
    if event.instance:  # stale: what the instance has, newest first
        return f"{root}/v1/snapshots?instance={quote(event.instance)}"
    return f"{root}/v1/targets/check"


def message_for(event: Event, link: str | None) -> Message:
    """The message every channel is sent for ``event``: the webhook's JSON
    payload, and a title and body for chat services."""
    body = event.reason if link is None else f"{event.reason}\n{link}"
    return Message(event=str(event.name), title=event.title(), body=body,
                   payload=event.payload(link))


class Notifier:
    def __init__(self, log: NotificationLog, channels: Mapping[str, frozenset[EventName]],
                 outbox: Postbox, pings: PingRoutes, *, policy_of: PolicyOf,
                 link_base: str | None = None,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._log, self._channels, self._outbox, self._pings = log, channels, outbox, pings
        self._policy_of, self._link_base, self._clock = policy_of, link_base, clock
        # One decision at a time: the runner and the watchdog may both see an
        # instance's freshness recover, and only one may fire ``recovered``.
        self._deciding = threading.Lock()
        self._warned: set[tuple[str, str]] = set()

    # --- what the runner, the scheduler and the watchdog report ----------------------

    def run_started(self, instance: str, *, job: str) -> None:
        with _never_raises("ping the start of", instance):
            self._ping(instance, PingKind.START, f"backup of {instance} started as {job}", job)

    def backup_finished(self, instance: str, *, job: str | None, snapshot: Snapshot | None,
                        error: str | None) -> None:
        with _never_raises("report the backup of", instance):
            now = self._clock()
            if error is not None:
                self.observe(Observation(Condition.BACKUP, instance, True, error, now,
                                         instance=instance, job=job,
                                         snapshot=snapshot.id if snapshot else None))
                self._ping(instance, PingKind.FAIL, error, job)
                return
            assert snapshot is not None
            done = f"snapshot {snapshot.id} of {instance} complete ({_size(snapshot)})"
            for condition in (Condition.BACKUP, Condition.FRESHNESS):
                self.observe(Observation(condition, instance, False, done, now,
                                         instance=instance, job=job, snapshot=snapshot.id))
            self.announce(Event(EventName.BACKUP_SUCCEEDED, instance, done, now,
                                instance=instance, snapshot=snapshot.id, job=job))
            self._ping(instance, PingKind.SUCCESS, done, job)

    def backup_cancelled(self, instance: str, *, job: str, reason: str) -> None:
        with _never_raises("ping the end of", instance):
            self._ping(instance, PingKind.FAIL, reason, job)

    def verification_finished(self, instance: str, *, job: str | None,
                              snapshot: str | None, error: str | None) -> None:
        with _never_raises("report the verified restore of", instance):
            reason = error or f"verified restore of {snapshot} passed"
            self.observe(Observation(Condition.VERIFICATION, instance, error is not None,
                                     reason, self._clock(), instance=instance, job=job,
                                     snapshot=snapshot))

    def restore_failed(self, instance: str, *, job: str, snapshot: str, error: str) -> None:
        with _never_raises("report the restore of", instance):
            self.announce(Event(EventName.RESTORE_FAILED, instance, error, self._clock(),
                                instance=instance, snapshot=snapshot, job=job))

    def retention_finished(self, instance: str, *, failures: Sequence[str]) -> None:
        with _never_raises("report the retention of", instance):
            reason = "; ".join(failures) if failures else f"retention of {instance} ran"
            self.observe(Observation(Condition.RETENTION, instance, bool(failures), reason,
                                     self._clock(), instance=instance))

    # --- deciding and sending -----------------------------------------------------

    def observe(self, seen: Observation) -> tuple[Event, ...]:
        """Decide what ``seen`` fires against the open alarm, keep the alarm,
        and send the events. Returns the events sent."""
        with self._deciding:
            open_alarm = self._log.get_alarm(seen.condition, seen.subject)
            decision = decide(open_alarm, seen)
            if decision.alarm is not None:
                self._log.save_alarm(decision.alarm)
            elif open_alarm is not None:
                self._log.clear_alarm(seen.condition, seen.subject)
        for event in decision.events:
            self.announce(event)
        return decision.events

    def announce(self, event: Event) -> list[Delivery]:
        """Put ``event`` in the outbox for every channel that gets it."""
        policy = self._policy_of(event.instance) if event.instance else None
        narrowed = policy.notify if policy is not None else None
        if narrowed and event.instance:
            self._warn_unknown(event.instance, narrowed)
        message = message_for(event, link_for(self._link_base, event))
        deliveries = [self._outbox.put(name, message) for name in
                      channels_for(self._channels.items(), event.name, narrowed)]
        if deliveries:
            logger.info("%s: %s (to %s)", event.name, event.reason,
                        ", ".join(d.destination for d in deliveries),
                        extra={"instance": event.instance, "target": event.target})
        return deliveries

    def _warn_unknown(self, instance: str, narrowed: Sequence[str]) -> None:
        """Warn, once per instance and name, of a ``holdfast.notify`` channel
        this daemon does not have: its events reach the other listed ones."""
        for name in narrowed:
            if name not in self._channels and (instance, name) not in self._warned:
                self._warned.add((instance, name))
                known = ", ".join(sorted(self._channels)) or "none"
                logger.warning("holdfast.notify of %s names channel %r, which is not "
                               "configured (configured: %s; define it with "
                               "HOLDFAST_NOTIFY_%s=<url>)", instance, name, known,
                               name.upper(), extra={"instance": instance})

    def _ping(self, instance: str, kind: PingKind, reason: str, job: str | None) -> None:
        policy = self._policy_of(instance)
        if policy is None or policy.ping is None:
            return
        destination = self._pings.ping_destination(instance, policy.ping)
        payload: dict[str, Any] = {"event": str(kind), "instance": instance, "job": job,
                                   "reason": reason}
        self._outbox.put(destination, Message(event=str(kind), title=f"[holdfast] {kind}: "
                                              f"{instance}", body=reason, payload=payload))


def _size(snapshot: Snapshot) -> str:
    if snapshot.size_bytes is None:
        return "size unknown"
    return f"{snapshot.size_bytes} bytes stored"


@contextmanager
def _never_raises(doing: str, instance: str) -> Iterator[None]:
    # A notification is never a reason for a run to fail: whatever breaks
    # here (the catalog down while the alarm is read) is logged and dropped.
    try:
        yield
    except Exception as exc:
        logger.error("cannot %s %s to the notification channels: %s", doing, instance, exc,
                     extra={"instance": instance})


# --- reading deliveries, and a test message ---------------------------------------------


def list_deliveries(log: NotificationLog, *, limit: int = 100, channel: str | None = None,
                    event: str | None = None, instance: str | None = None,
                    status: DeliveryStatus | None = None) -> list[Delivery]:
    """The newest ``limit`` deliveries (1 to :data:`MAX_DELIVERY_LIST`),
    newest first, optionally to one channel (or ``ping:<instance>``), of one
    event, about one instance, in one status."""
    if not 1 <= limit <= MAX_DELIVERY_LIST:
        raise InvalidInput(f"limit must be 1 to {MAX_DELIVERY_LIST}, not {limit}")
    return log.list_deliveries(limit, destination=channel, event=event, instance=instance,
                               status=status)


class ChannelNotFound(NotFound):
    pass


def test_message(channel: str, now: datetime) -> Message:
    """The message ``holdfast notify test`` sends: a ``test`` event that
    receivers can tell from real ones."""
    reason = f"test message from Holdfast to channel {channel}: delivery works"
    payload = {"event": "test", "instance": None, "target": None, "reason": reason,
               "snapshot": None, "job": None, "cleared": None,
               "time": now.isoformat().replace("+00:00", "Z"), "link": None}
    return Message(event="test", title=f"[holdfast] test: {channel}", body=reason,
                   payload=payload)


def require_channel(channels: Mapping[str, object], name: str) -> str:
    """``name`` (lower-cased) if it is a configured channel; else ChannelNotFound."""
    wanted = name.strip().lower()
    if wanted not in channels:
        known = ", ".join(sorted(channels)) or "none"
        raise ChannelNotFound(f"no notification channel named {name[:40]!r}; configured: "
                              f"{known} (define one with HOLDFAST_NOTIFY_<NAME>=<url>)")
    return wanted


def send_test(log: NotificationLog, senders: Callable[[str], Sender],
              channels: Mapping[str, object], name: str, *,
              clock: Callable[[], datetime] = utcnow) -> Delivery:
    """Send :func:`test_message` to channel ``name`` now, once, and record the
    outcome with the other deliveries. Returns the delivered record; raises
    DeliveryFailed with the one-line reason once the failure is recorded, and
    ChannelNotFound for an unknown name."""
    channel = require_channel(channels, name)
    now = clock()
    delivery = Delivery(id=f"ntf-{secrets.token_hex(6)}", destination=channel,
                        message=test_message(channel, now), status=DeliveryStatus.QUEUED,
                        created_at=now, attempts=1)
    try:
        senders(channel).send(delivery.message)
    except DeliveryFailed as exc:
        delivery = replace(delivery, status=DeliveryStatus.FAILED, error=str(exc)[:300],
                           finished_at=clock())
    else:
        delivery = replace(delivery, status=DeliveryStatus.DELIVERED, finished_at=clock())
    log.save_delivery(delivery)
    if delivery.status is DeliveryStatus.FAILED:
        raise DeliveryFailed(f"the test message to channel {channel} was not delivered"
                             f" ({delivery.id}): {delivery.error}")
    return delivery


def test_channel(svc: Services, name: str) -> Delivery:
    """:func:`send_test` with this process's senders and configured channels."""
    if svc.senders is None:
        raise DeliveryFailed("this process sends no notifications; run the daemon's"
                             " own `holdfast notify test`")
    return send_test(svc.catalog, svc.senders, svc.settings.notify_channels, name)


def describe_channels(channels: Mapping[str, ChannelSetting]) -> list[dict[str, Any]]:
    """The configured channels as ``holdfast notify channels`` and the API show
    them: name, kind, scheme and host (never a path, user or token), their
    events and whether their webhook is signed."""
    return [{"name": name, "kind": channel.kind, "destination": channel.described(),
             "events": sorted(channel.events), "signed": channel.secret is not None}
            for name, channel in sorted(channels.items())]


KEEP_DELIVERIES = 10_000
"""Deliveries the catalog keeps; older ones are pruned as new ones are recorded."""
_PRUNE_EVERY = 200


class DeliveryRecorder:
    """The outbox's ``record``: each state of a delivery into the catalog, the
    ended ones counted in ``holdfast_notifications_total``, and the oldest
    rows past :data:`KEEP_DELIVERIES` pruned now and then."""

    def __init__(self, log: NotificationLog, count: Callable[[Delivery], None], *,
                 keep: int = KEEP_DELIVERIES) -> None:
        self._log, self._count, self._keep = log, count, keep
        self._saved = 0
        self._lock = threading.Lock()

    def __call__(self, delivery: Delivery) -> None:
        if delivery.status in ENDED:
            self._count(delivery)
        self._log.save_delivery(delivery)
        with self._lock:
            self._saved += 1
            due = self._saved % _PRUNE_EVERY == 0
        if due:
            self._log.prune_deliveries(self._keep)


ENDED = frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.DROPPED})
