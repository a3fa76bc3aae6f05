"""Dead-man pings in the healthchecks.io style: ``<url>/start``, ``<url>``, ``<url>/fail``.

``holdfast.ping=<url>`` on an instance: each run calls the start URL when it
begins and the plain URL or the fail URL when it ends, so the outside service
alerts when a success stops arriving, even with the daemon itself dead. The
body is the run's one-line reason (healthchecks.io shows it).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from backup.alerts import PingKind
from service.adapters.notify.http import request
from service.records import Message

__all__ = ["PingKind", "PingSender", "ping_url"]

_SUFFIXES = {PingKind.START: "/start", PingKind.SUCCESS: "", PingKind.FAIL: "/fail"}


def ping_url(url: str, kind: PingKind) -> str:
    """``url`` with the suffix for ``kind`` added to its path (a query stays last)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + _SUFFIXES[kind]))


class PingSender:
    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self._url, self._timeout = url, timeout

    def send(self, message: Message) -> None:
        """POST ``message.body`` to the URL for its kind (``message.event`` is a
        :class:`PingKind`); raises DeliveryFailed unless 2xx."""
        request("POST", ping_url(self._url, PingKind(message.event)),
                content=message.body.encode()[:10_000],
                headers={"Content-Type": "text/plain; charset=utf-8"}, timeout=self._timeout)
