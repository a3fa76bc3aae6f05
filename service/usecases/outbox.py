"""The outbox: notifications and dead-man pings delivered without ever holding up a run.

:meth:`Outbox.put` only appends to a bounded queue and returns; a dispatcher
thread hands each destination's oldest message to a small pool of senders, one
at a time per destination, so a channel's messages (a ping's start, then its
success) arrive in order while an unreachable channel, retried with back-off
(:func:`backup.alerts.retry_delays`, bounded by ``HOLDFAST_NOTIFY_RETRY_FOR``),
delays no other. Every state a delivery reaches (queued, retrying, delivered,
failed, dropped when its queue is full) is handed to ``record``, which the
daemon writes to the catalog (``GET /v1/notifications``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from backup.alerts import retry_delays
from backup.types import utcnow
from service.ports import Sender
from service.records import Delivery, DeliveryStatus, Message

logger = logging.getLogger(__name__)

QUEUE_LIMIT = 1000
"""Messages one destination may have waiting; a newer one past this is dropped."""
ERROR_LIMIT = 300
"""Characters of a delivery's last error that are kept."""


SenderFor = Callable[[str], Sender]
"""Destination -> its sender."""


@dataclass
class _Waiting:
    delivery: Delivery
    delays: list[float]
    due: float


class Outbox:
    def __init__(self, senders: SenderFor, record: Callable[[Delivery], None], *,
                 retry_for: float, first_retry: float = 2.0, workers: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._senders = senders
        self._record = record
        self._retry_for, self._first_retry = retry_for, first_retry
        self._clock = clock
        self._queues: dict[str, deque[_Waiting]] = {}
        self._busy: set[str] = set()
        self._changed = threading.Condition()
        self._closing = False
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="holdfast-notify")
        self._thread = threading.Thread(target=self._dispatch, name="holdfast-outbox",
                                        daemon=True)
        self._thread.start()

    def put(self, destination: str, message: Message) -> Delivery:
        """Queue ``message`` for ``destination`` and return at once (its record:
        ``queued``, or ``dropped`` when that destination already has
        :data:`QUEUE_LIMIT` waiting or the outbox is closed)."""
        delivery = Delivery(id=f"ntf-{secrets.token_hex(6)}", destination=destination,
                            message=message, status=DeliveryStatus.QUEUED, created_at=utcnow())
        with self._changed:
            queue = self._queues.setdefault(destination, deque())
            if self._closing or len(queue) >= QUEUE_LIMIT:
                delivery = replace(delivery, status=DeliveryStatus.DROPPED, finished_at=utcnow(),
                                   error="dropped: Holdfast is stopping" if self._closing else
                                   f"dropped: {QUEUE_LIMIT} messages already wait for "
                                   f"{destination}")
            else:
                delays = retry_delays(self._retry_for, first=self._first_retry)
                queue.append(_Waiting(delivery, delays, self._clock()))
                self._changed.notify()
        self._safe_record(delivery)
        return delivery

    def pending(self) -> int:
        with self._changed:
            return sum(len(queue) for queue in self._queues.values())

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for every queued message to end; True if they did."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while any(self._queues.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.5))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Give waiting messages up to ``timeout`` seconds, then stop: what is
        still waiting is recorded ``failed``, never left ``queued``."""
        self.drain(timeout)
        with self._changed:
            self._closing = True
            left = [waiting for queue in self._queues.values() for waiting in queue]
            self._queues.clear()
            self._changed.notify_all()
        for waiting in left:
            self._safe_record(replace(waiting.delivery, status=DeliveryStatus.FAILED,
                                      finished_at=utcnow(),
                                      error="not delivered: Holdfast stopped first"))
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- the dispatcher -------------------------------------------------------------

    def _dispatch(self) -> None:
        with self._changed:
            while not self._closing:
                now = self._clock()
                ready = [(name, queue[0]) for name, queue in self._queues.items()
                         if queue and name not in self._busy and queue[0].due <= now]
                for name, waiting in ready:
                    self._busy.add(name)
                    self._pool.submit(self._attempt, name, waiting)
                dues = [queue[0].due for name, queue in self._queues.items()
                        if queue and name not in self._busy]
                self._changed.wait(None if not dues else max(0.01, min(dues) - now))

    def _attempt(self, destination: str, waiting: _Waiting) -> None:
        attempt = replace(waiting.delivery, attempts=waiting.delivery.attempts + 1)
        error = None
        try:
            self._senders(destination).send(attempt.message)
        except Exception as exc:  # any sender failure is a failed attempt, never lost
            error = (str(exc) or type(exc).__name__)[:ERROR_LIMIT]
        with self._changed:
            if error is None:
                outcome = replace(attempt, status=DeliveryStatus.DELIVERED, error=None,
                                  finished_at=utcnow())
            elif waiting.delays:
                outcome = replace(attempt, status=DeliveryStatus.RETRYING, error=error)
                waiting.delivery, waiting.due = outcome, self._clock() + waiting.delays.pop(0)
            else:
                outcome = replace(attempt, status=DeliveryStatus.FAILED, error=error,
                                  finished_at=utcnow())
            if outcome.status != DeliveryStatus.RETRYING:
                queue = self._queues.get(destination)
                if queue and queue[0] is waiting:
                    queue.popleft()
            self._busy.discard(destination)
            self._changed.notify_all()
        if error is not None:
            logger.warning("notification %s to %s: attempt %d failed: %s", attempt.id,
                           destination, attempt.attempts, error)
        self._safe_record(outcome)

    def _safe_record(self, delivery: Delivery) -> None:
        try:
            self._record(delivery)
        except Exception as exc:  # a catalog hiccup must not stop deliveries
            logger.error("cannot record notification %s: %s", delivery.id, exc)
