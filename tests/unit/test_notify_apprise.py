"""The apprise sender and the notification registry against a real HTTP receiver on
127.0.0.1 (the shared one in ``tests.harness.receiver``, with no mock of apprise): a
``json://`` and an ``ntfy://`` channel deliver the message's title and body, a refusing
or unreachable service is a bounded :class:`DeliveryFailed` whose reason names apprise
but none of the URL's secret parts, a scheme apprise does not know is an
:class:`InvalidInput` naming only the scheme (and, from ``check_channels``, the
setting), ``redacted`` cuts URLs to ``scheme://host`` and blanks the channel URL's
tokens, and :class:`Destinations` routes channel names and ``ping:<instance>`` names to
senders that reach the receiver.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from backup.errors import DeliveryFailed, InvalidInput
from service.adapters.notify.apprise_sender import AppriseSender, redacted, validate
from service.adapters.notify.ping import PingSender
from service.adapters.notify.registry import Destinations, check_channels
from service.adapters.notify.webhook import WebhookSender
from service.records import Message
from service.settings import ChannelSetting
from tests.harness.receiver import Receiver, closed_port

TOKEN = "S3cr3tT0ken123"
MESSAGE = Message("backup.failed", "Backup of pg-main failed",
                  "pg-main: pg_dump exited with status 1", {"event": "backup.failed"})


def port_of(receiver: Receiver) -> int:
    return int(receiver.server_address[1])


def channel(name: str, url: str) -> ChannelSetting:
    return ChannelSetting(name=name, url=SecretStr(url))


def test_a_json_channel_posts_the_title_and_body_to_its_path(receiver: Receiver) -> None:
    AppriseSender(f"json://127.0.0.1:{port_of(receiver)}/hook").send(MESSAGE)
    (method, path, headers, _), = receiver.requests
    assert (method, path) == ("POST", "/hook")
    assert headers["Content-Type"] == "application/json"
    body = receiver.requests[0].json()
    assert body["title"] == MESSAGE.title
    assert body["message"] == MESSAGE.body


def test_an_ntfy_channel_on_a_host_posts_the_topic_and_text_to_that_host(
        receiver: Receiver) -> None:
    # With a host and a topic apprise's ntfy plugin is in "private" mode: it POSTs
    # JSON naming the topic to the host's root over plain http (ntfys:// for https).
    AppriseSender(f"ntfy://127.0.0.1:{port_of(receiver)}/holdfast-topic").send(MESSAGE)
    (method, path, _, _), = receiver.requests
    assert (method, path) == ("POST", "/")
    assert receiver.requests[0].json() == {
        "topic": "holdfast-topic", "title": MESSAGE.title, "message": MESSAGE.body}


def test_a_refusing_service_is_a_delivery_failure_without_the_urls_token(
        receiver: Receiver) -> None:
    receiver.status = 500
    url = f"json://127.0.0.1:{port_of(receiver)}/hook/{TOKEN}?token={TOKEN}"
    with pytest.raises(DeliveryFailed) as refused:
        AppriseSender(url).send(MESSAGE)
    reason = str(refused.value)
    assert reason.startswith("apprise json:// did not deliver:")
    assert "500" in reason
    assert TOKEN not in reason and url not in reason
    assert [r.path for r in receiver.requests] == [f"/hook/{TOKEN}"]  # it was tried once


def test_an_unreachable_service_fails_within_the_timeout() -> None:
    timeout = 3.0
    sender = AppriseSender(f"json://127.0.0.1:{closed_port()}/hook/{TOKEN}", timeout=timeout)
    started = time.monotonic()
    with pytest.raises(DeliveryFailed) as unreachable:
        sender.send(MESSAGE)
    assert time.monotonic() - started < timeout + 2.0
    assert "apprise json://" in str(unreachable.value)
    assert TOKEN not in str(unreachable.value)


def test_an_unknown_scheme_is_invalid_input_naming_only_the_scheme() -> None:
    with pytest.raises(InvalidInput) as short:
        validate("nosuchscheme://x")
    assert "nosuchscheme://" in str(short.value)
    assert "nosuchscheme://x" not in str(short.value)
    with pytest.raises(InvalidInput) as longer:
        validate("nosuchscheme://hid-den-host/tok3n-path?key=tok3n-query")
    assert "nosuchscheme://" in str(longer.value)
    assert "hid-den-host" not in str(longer.value) and "tok3n" not in str(longer.value)


def test_an_unknown_scheme_at_start_names_the_setting_and_no_token() -> None:
    with pytest.raises(InvalidInput) as bad:
        check_channels({"ok": channel("ok", "https://hooks.example/x"),
                        "chat": channel("chat", "nosuchscheme://tok3n")})
    assert str(bad.value).startswith("HOLDFAST_NOTIFY_CHAT: ")
    assert "nosuchscheme://" in str(bad.value) and "tok3n" not in str(bad.value)


def test_usable_channels_pass_the_start_check() -> None:
    check_channels({"hook": channel("hook", "https://hooks.example/x"),
                    "chat": channel("chat", "json://127.0.0.1:9/hook"),
                    "push": channel("push", "ntfy://127.0.0.1:9/topic")})


def test_redacted_cuts_urls_in_text_to_scheme_and_host() -> None:
    text = "Failed at https://api.example.com/v1/hooks/abc?x=1 then http://other.example:8080/p"
    assert redacted(text, "json://unrelated/z") == \
        "Failed at https://api.example.com then http://other.example:8080"


def test_redacted_blanks_the_channel_urls_path_token_password_and_query_token() -> None:
    url = "json://alice:pa55word@hooks.example/hook/AbCd1234?token=qu3ryT0k&mode=on"
    text = "alice with pa55word got 401 for AbCd1234 (token qu3ryT0k), mode on"
    assert redacted(text, url) == "*** with *** got 401 for *** (token ***), mode on"


def test_redacted_makes_one_short_line() -> None:
    assert redacted("one\n  two\tthree ", "json://h/p") == "one two three"
    assert len(redacted("y" * 1000, "json://h/p")) == 300


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token=st.from_regex(r"[A-Za-z0-9]{4,40}", fullmatch=True),
       port=st.integers(min_value=1, max_value=65535))
def test_a_token_in_the_channel_path_never_survives_redaction(token: str, port: int) -> None:
    url = f"json://127.0.0.1:{port}/hook/{token}"
    assert token not in redacted(f"failed at {url} with {token}", url)


def test_an_unknown_destination_names_the_configured_channels(receiver: Receiver) -> None:
    destinations = Destinations({"ops": channel("ops", f"{receiver.base}/hook"),
                                 "chat": channel("chat", "json://127.0.0.1:9/hook")})
    with pytest.raises(DeliveryFailed) as unknown:
        destinations("nope")
    assert str(unknown.value) == "no notification channel named 'nope'; configured: chat, ops"
    with pytest.raises(DeliveryFailed, match="no ping URL is known for 'ping:shop'"):
        destinations("ping:shop")


def test_channel_names_route_to_the_sender_for_their_scheme(receiver: Receiver) -> None:
    destinations = Destinations({
        "ops": channel("ops", f"{receiver.base}/ops"),
        "chat": channel("chat", f"json://127.0.0.1:{port_of(receiver)}/chat")})
    assert isinstance(destinations("ops"), WebhookSender)
    assert isinstance(destinations("chat"), AppriseSender)
    destinations("ops").send(MESSAGE)
    destinations("chat").send(MESSAGE)
    assert receiver.at("/ops")[0].json() == MESSAGE.payload
    assert receiver.at("/chat")[0].json()["message"] == MESSAGE.body


def test_a_ping_destination_routes_to_a_ping_sender_for_that_url(receiver: Receiver) -> None:
    destinations = Destinations({})
    name = destinations.ping_destination("shop", f"{receiver.base}/ping/{TOKEN}")
    assert name == "ping:shop"
    sender = destinations(name)
    assert isinstance(sender, PingSender)
    sender.send(Message("ping.start", "t", "backup of shop started", {}))
    (method, path, _, body), = receiver.requests
    assert (method, path, body) == ("POST", f"/ping/{TOKEN}/start", b"backup of shop started")


@pytest.mark.parametrize(("text", "url", "expected"), [
    # A Telegram bot token sits where a host would, with a colon in it.
    ("bad token AAHdqTcvCH1vGWJxfSeofSAs0K5PAL for bot 123456789",
     "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PAL/-100123", "bad token *** for bot ***"),
    # Letter case: the URL's host is lower-cased by parsers, apprise's text is not.
    ("Gotify at Gotify.Example refused AbCdEf12", "gotify://Gotify.Example/abcdef12",
     "Gotify at Gotify.Example refused ***"),
    # A percent-encoded password is blanked as apprise would print it.
    ("login as me with p@ssw0rd failed", "mailtos://mebob:p%40ssw0rd@mail.example.com",
     "login as me with *** failed"),
    # A URL in the text that does not parse is shown as none of it, punctuation kept.
    ("see http://h:port/x.", "json://hooks.example/p", "see <url>."),
    ("posted to https://hooks.example/p/AbCd1234.", "json://hooks.example/p/AbCd1234",
     "posted to https://hooks.example."),
])
def test_redacted_cases_a_token_could_hide_in(text: str, url: str, expected: str) -> None:
    assert redacted(text, url) == expected
