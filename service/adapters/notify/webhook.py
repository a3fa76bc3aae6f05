"""Holdfast's own webhook: a POST of the event's JSON, signed with HMAC-SHA256.

The body is :meth:`backup.alerts.Event.payload` (documented in the README),
serialised once, and ``X-Holdfast-Signature: sha256=<hex>`` is the HMAC of
exactly those bytes keyed by ``HOLDFAST_NOTIFY_<NAME>_SECRET``; without a
secret the header is left out.
"""

from __future__ import annotations

import json

from backup.alerts import SIGNATURE_HEADER, sign
from service.adapters.notify.http import request
from service.records import Message
from service.version import holdfast_version


class WebhookSender:
    def __init__(self, url: str, secret: str | None, *, timeout: float = 10.0) -> None:
        self._url, self._secret, self._timeout = url, secret, timeout

    def send(self, message: Message) -> None:
        """POST ``message.payload`` as JSON; raises DeliveryFailed unless 2xx."""
        body = json.dumps(message.payload, separators=(",", ":"), sort_keys=True).encode()
        headers = {"Content-Type": "application/json",
                   "User-Agent": f"holdfast/{holdfast_version()}",
                   "X-Holdfast-Event": message.event}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(body, self._secret)
        request("POST", self._url, content=body, headers=headers, timeout=self._timeout)
