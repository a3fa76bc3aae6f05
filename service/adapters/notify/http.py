"""One HTTP request for a sender, with its failures as :class:`DeliveryFailed` lines.

Shared by the webhook and ping senders: a bounded timeout, no redirects
(a redirect could carry the body to another host), and a message that names
only ``scheme://host`` of the URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from backup.errors import DeliveryFailed

TIMEOUT = 10.0
"""Seconds one attempt may take, connect and answer together."""


def shown(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what a message may say of it."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port}"


def request(method: str, url: str, *, content: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = TIMEOUT) -> None:
    """Send one request; return if the answer is 2xx. Raises DeliveryFailed."""
    where = shown(url)
    try:
        answer = httpx.request(method, url, content=content, headers=headers,
                               timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException:
        raise DeliveryFailed(f"{where} did not answer within {timeout:g}s") from None
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{where} cannot be reached: {type(exc).__name__}") from None
    if not answer.is_success:
        raise DeliveryFailed(f"{where} answered HTTP {answer.status_code}")
