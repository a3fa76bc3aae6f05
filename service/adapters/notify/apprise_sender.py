"""Every channel whose URL is not ``http(s)://`` goes through apprise.

apprise speaks to Slack, Discord, Teams, Telegram, ntfy, Gotify, Matrix,
e-mail over SMTP and many more from one URL each. It is imported when the
first message is sent or a URL is checked, so the CLI does not pay for it.
apprise reports a failure as log lines rather than an exception: the last
warning or error of the call becomes the :class:`DeliveryFailed` reason, with
every URL in it cut to ``scheme://host`` and every part of the channel's own
URL that could be a token blanked out.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from backup.errors import DeliveryFailed, InvalidInput
from service.adapters.notify.http import TIMEOUT, shown
from service.records import Message

if TYPE_CHECKING:
    import apprise

_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_SEPARATORS = re.compile(r"[/:@,;]+")
_MIN_SECRET_PART = 4
"""Shorter URL parts (``on``, ``443``) are too common to be a token worth blanking."""
MAX_REASON = 300


def _secret_parts(url: str) -> list[str]:
    """Pieces of ``url`` that may be a credential, raw and percent-decoded: every
    run between ``/ : @ , ;`` after the scheme and every query value, but for a
    host name with a dot in it (``hooks.example.com``, ``127.0.0.1``): a bot
    token sits where a host would (``tgram://<id>:<token>/<chat>``), a real
    host is worth showing."""
    rest, _, query = url.split("://", 1)[-1].partition("?")
    raws = [*_SEPARATORS.split(rest.split("#")[0]),
            *(value for _, value in parse_qsl(query, keep_blank_values=True))]
    pieces = {piece for raw in raws for piece in (raw, unquote(raw))}
    host = urlsplit(url).hostname or ""
    return sorted((p for p in pieces if len(p) >= _MIN_SECRET_PART
                   and not ("." in p and p.lower() == host)), key=len, reverse=True)


def _cut(match: re.Match[str]) -> str:
    """A URL found in apprise's text as its scheme and host, its trailing punctuation kept."""
    found = match.group(0)
    kept = found.rstrip(".,;:)]'\"")
    try:
        return shown(kept) + found[len(kept):]
    except ValueError:  # not a URL that parses (a bad port): show none of it
        return "<url>" + found[len(kept):]


def redacted(text: str, url: str) -> str:
    """``text`` with URLs cut to their scheme and host and ``url``'s secret parts
    blanked (in any letter case), on one line of at most :data:`MAX_REASON`."""
    text = _URL_IN_TEXT.sub(_cut, text)
    for part in _secret_parts(url):
        text = re.sub(re.escape(part), "***", text, flags=re.IGNORECASE)
    return " ".join(text.split())[:MAX_REASON]


def _load(url: str) -> apprise.Apprise:
    import apprise  # apprise and requests are for the daemon, not every CLI start

    bundle = apprise.Apprise()
    if not bundle.add(url):
        scheme = urlsplit(url).scheme if "://" in url else ""
        what = f"this {scheme}:// URL" if scheme else "a URL without a scheme://"
        raise InvalidInput(f"apprise cannot use {what}; check it against"
                           " https://github.com/caronc/apprise/wiki")
    return bundle


def validate(url: str) -> None:
    """Raise InvalidInput, naming only the scheme, unless apprise can use ``url``."""
    _load(url)


class AppriseSender:
    def __init__(self, url: str, *, timeout: float = TIMEOUT) -> None:
        self._url, self._timeout = url, timeout
        self._bundle: apprise.Apprise | None = None

    def send(self, message: Message) -> None:
        """Notify the service once within the timeout; raises DeliveryFailed
        (with a redacted reason) unless apprise reports success."""
        if self._bundle is None:
            try:
                self._bundle = _load(self._url)
            except InvalidInput as exc:
                raise DeliveryFailed(str(exc)) from None
        result = self._bundle.notify(body=message.body, title=message.title,
                                     timeout=self._timeout)
        if not result:
            raise DeliveryFailed(self._reason(result))

    def _reason(self, result: object) -> str:
        scheme = urlsplit(self._url).scheme
        logs = getattr(result, "logs", None)
        entries = list(logs()) if callable(logs) else []
        said = [e.message for e in entries if e.level in ("WARNING", "ERROR", "CRITICAL")]
        detail = redacted(said[-1], self._url) if said else "it reported a failure"
        return f"apprise {scheme}:// did not deliver: {detail}"
