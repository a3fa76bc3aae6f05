"""The outbox (:mod:`service.usecases.outbox`): put never waits, each destination
is served in order, a failing one retries within its budget and delays no other."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from backup.errors import DeliveryFailed
from service.records import Delivery, DeliveryStatus, Message
from service.usecases.outbox import QUEUE_LIMIT, Outbox


def _message(n: int) -> Message:
    return Message(event="backup.failed", title=f"t{n}", body=f"b{n}", payload={"n": n})


class Receivers:
    """Senders per destination: ``down`` ones fail, ``held`` ones wait for ``release``."""

    def __init__(self) -> None:
        self.got: dict[str, list[int]] = defaultdict(list)
        self.down: set[str] = set()
        self.release = threading.Event()
        self.held: set[str] = set()
        self.attempts: dict[str, int] = defaultdict(int)

    def __call__(self, destination: str) -> Receivers._Sender:
        return Receivers._Sender(self, destination)

    class _Sender:
        def __init__(self, owner: Receivers, destination: str) -> None:
            self.owner, self.destination = owner, destination

        def send(self, message: Message) -> None:
            self.owner.attempts[self.destination] += 1
            if self.destination in self.owner.held:
                self.owner.release.wait(10)
            if self.destination in self.owner.down:
                raise DeliveryFailed(f"{self.destination}: connection refused")
            self.owner.got[self.destination].append(int(message.payload["n"]))


class Records:
    def __init__(self) -> None:
        self.seen: list[Delivery] = []
        self.lock = threading.Lock()

    def __call__(self, delivery: Delivery) -> None:
        with self.lock:
            self.seen.append(delivery)

    def final(self, delivery_id: str) -> Delivery:
        with self.lock:
            return [d for d in self.seen if d.id == delivery_id][-1]


def _until(check: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def receivers() -> Receivers:
    return Receivers()


def test_put_returns_at_once_while_the_receiver_hangs_and_order_is_kept(
        receivers: Receivers) -> None:
    records = Records()
    outbox = Outbox(receivers, records, retry_for=0)
    receivers.held.add("ping:pg")
    try:
        # The receiver hangs until released: a put that waited would never get past here.
        queued = [outbox.put("ping:pg", _message(n)) for n in range(5)]
        assert {d.status for d in queued} == {DeliveryStatus.QUEUED}
        _until(lambda: receivers.attempts["ping:pg"] == 1)
        assert outbox.pending() == 5  # the first is in flight, none skipped ahead
        receivers.release.set()
        assert outbox.drain(10)
        assert receivers.got["ping:pg"] == [0, 1, 2, 3, 4]
        assert all(records.final(d.id).status == DeliveryStatus.DELIVERED for d in queued)
    finally:
        outbox.close(0)


def test_a_down_channel_retries_within_its_budget_and_delays_no_other(
        receivers: Receivers) -> None:
    records = Records()
    receivers.down.add("pager")
    receivers.held.add("pager")
    outbox = Outbox(receivers, records, retry_for=0.4, first_retry=0.05)
    try:
        failing = outbox.put("pager", _message(1))
        _until(lambda: receivers.attempts["pager"] == 1)
        delivered = outbox.put("ops", _message(2))
        # Delivered while the pager's first attempt still hangs: not queued behind it.
        _until(lambda: records.final(delivered.id).status == DeliveryStatus.DELIVERED)
        assert receivers.attempts["pager"] == 1
        receivers.release.set()
        _until(lambda: records.final(failing.id).status == DeliveryStatus.FAILED)
        final = records.final(failing.id)
        # Retries after 0.05, 0.1 and 0.2 s; a fourth (0.4 s more) would pass the budget.
        assert final.attempts == 1 + 3
        assert final.error == "pager: connection refused"
        states = [d.status for d in records.seen if d.id == failing.id]
        assert states == [DeliveryStatus.QUEUED, *[DeliveryStatus.RETRYING] * 3,
                          DeliveryStatus.FAILED]
    finally:
        outbox.close(0)


def test_a_full_queue_drops_the_newest_and_closing_fails_what_waits(receivers: Receivers) -> None:
    records = Records()
    receivers.held.add("slow")
    outbox = Outbox(receivers, records, retry_for=0)
    queued = [outbox.put("slow", _message(n)) for n in range(QUEUE_LIMIT)]
    dropped = outbox.put("slow", _message(QUEUE_LIMIT))
    assert dropped.status == DeliveryStatus.DROPPED and "1000 messages already wait" in (
        dropped.error or "")
    _until(lambda: receivers.attempts["slow"] == 1)
    outbox.close(0)
    receivers.release.set()
    assert records.final(queued[-1].id).status == DeliveryStatus.FAILED
    assert outbox.put("slow", _message(0)).status == DeliveryStatus.DROPPED
