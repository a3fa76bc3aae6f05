"""Notification senders for the Docker-free tier (:class:`service.ports.SenderRoutes`).

Each destination gets a recording sender; one named in ``refusing`` fails
every send with the one-line reason a real webhook answering 500 would give.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from backup.errors import DeliveryFailed
from service.records import Message


@dataclass
class RecordingSender:
    destination: str
    routes: FakeSenders

    def send(self, message: Message) -> None:
        with self.routes.lock:
            self.routes.sent.append((self.destination, message))
        if self.destination in self.routes.refusing:
            raise DeliveryFailed("https://hooks.example answered HTTP 500")


@dataclass
class FakeSenders:
    sent: list[tuple[str, Message]] = field(default_factory=list)
    refusing: set[str] = field(default_factory=set)
    pings: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ping_destination(self, instance: str, url: str) -> str:
        self.pings[instance] = url
        return f"ping:{instance}"

    def __call__(self, destination: str) -> RecordingSender:
        return RecordingSender(destination, self)

    def events(self, destination: str) -> list[str]:
        with self.lock:
            return [m.event for d, m in self.sent if d == destination]
