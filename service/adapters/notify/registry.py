"""The one registry of notification senders: channel kind -> how to build its sender.

``webhook`` is Holdfast's own signed JSON POST (any ``http(s)://`` URL) and
``apprise`` every other scheme. :class:`Destinations` is what the outbox asks
for a destination's sender: a configured channel by name, or an instance's
dead-man ping URL under ``ping:<instance>``, so no URL is ever stored or
logged, only the name it is filed under.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from backup.errors import DeliveryFailed, InvalidInput
from service.adapters.notify.apprise_sender import AppriseSender, validate
from service.adapters.notify.ping import PingSender
from service.adapters.notify.webhook import WebhookSender
from service.ports import Sender
from service.settings import ChannelSetting

PING_PREFIX = "ping:"


def _webhook(channel: ChannelSetting) -> Sender:
    secret = channel.secret.get_secret_value() if channel.secret else None
    return WebhookSender(channel.url.get_secret_value(), secret)


def _apprise(channel: ChannelSetting) -> Sender:
    return AppriseSender(channel.url.get_secret_value())


SENDER_KINDS: Mapping[str, Callable[[ChannelSetting], Sender]] = {
    "webhook": _webhook,
    "apprise": _apprise,
}


def sender_for(channel: ChannelSetting) -> Sender:
    """The sender for ``channel``'s kind (see :attr:`ChannelSetting.kind`)."""
    return SENDER_KINDS[channel.kind](channel)


def check_channels(channels: Mapping[str, ChannelSetting]) -> None:
    """Raise InvalidInput, naming the setting, for an apprise URL apprise cannot
    use: the daemon says so at start rather than at the first failed delivery."""
    for name, channel in sorted(channels.items()):
        if channel.kind == "apprise":
            try:
                validate(channel.url.get_secret_value())
            except InvalidInput as exc:
                raise InvalidInput(f"HOLDFAST_NOTIFY_{name.upper()}: {exc}") from None


class Destinations:
    """Destination name -> sender (:class:`service.ports.SenderRoutes`)."""

    def __init__(self, channels: Mapping[str, ChannelSetting]) -> None:
        self._senders = {name: sender_for(channel) for name, channel in channels.items()}
        self._pings: dict[str, str] = {}
        self._lock = threading.Lock()

    def ping_destination(self, instance: str, url: str) -> str:
        """File ``url`` as ``instance``'s ping URL; returns ``ping:<instance>``."""
        with self._lock:
            self._pings[instance] = url
        return PING_PREFIX + instance

    def __call__(self, destination: str) -> Sender:
        """The sender for a channel name or ``ping:<instance>``; raises DeliveryFailed."""
        if destination.startswith(PING_PREFIX):
            with self._lock:
                url = self._pings.get(destination.removeprefix(PING_PREFIX))
            if url is None:
                raise DeliveryFailed(f"no ping URL is known for {destination!r}")
            return PingSender(url)
        sender = self._senders.get(destination)
        if sender is None:
            known = ", ".join(sorted(self._senders)) or "none"
            raise DeliveryFailed(f"no notification channel named {destination!r};"
                                 f" configured: {known}")
        return sender
