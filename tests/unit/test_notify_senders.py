"""The webhook and ping senders against a real HTTP receiver on 127.0.0.1:
what they send, how they sign it, and failures that never name the URL's secret parts."""

from __future__ import annotations

import json

import pytest

from backup.alerts import SIGNATURE_HEADER, signature_matches
from backup.errors import DeliveryFailed
from service.adapters.notify.ping import PingKind, PingSender, ping_url
from service.adapters.notify.webhook import WebhookSender
from service.records import Message
from tests.harness.receiver import Receiver

SECRET = "wh-s3cret"
TOKEN = "T0K3N-in-path"


PAYLOAD = {"event": "backup.failed", "instance": "pg-main", "reason": "dump failed",
           "snapshot": None, "job": "job-1", "time": "2026-12-03T12:00:00Z"}


def test_the_webhook_posts_the_payload_signed_with_the_channel_secret(receiver: Receiver) -> None:
    WebhookSender(f"{receiver.base}/hooks/{TOKEN}", SECRET).send(
        Message("backup.failed", "title", "body", PAYLOAD))
    (method, path, headers, body), = receiver.requests
    assert (method, path) == ("POST", f"/hooks/{TOKEN}")
    assert json.loads(body) == PAYLOAD
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Holdfast-Event"] == "backup.failed"
    assert signature_matches(body, SECRET, headers[SIGNATURE_HEADER])


def test_without_a_secret_there_is_no_signature(receiver: Receiver) -> None:
    WebhookSender(receiver.base, None).send(Message("recovered", "t", "b", PAYLOAD))
    assert SIGNATURE_HEADER not in receiver.requests[0][2]


def test_a_refusing_receiver_is_a_delivery_failure_naming_only_scheme_and_host(
        receiver: Receiver) -> None:
    receiver.status = 500
    with pytest.raises(DeliveryFailed) as refused:
        WebhookSender(f"http://user:pw@127.0.0.1:{receiver.server_address[1]}/{TOKEN}",
                      SECRET).send(Message("backup.failed", "t", "b", PAYLOAD))
    assert str(refused.value) == f"{receiver.base} answered HTTP 500"
    receiver.server_close()
    with pytest.raises(DeliveryFailed, match="cannot be reached") as unreachable:
        WebhookSender(f"{receiver.base}/{TOKEN}?key={TOKEN}", SECRET).send(
            Message("backup.failed", "t", "b", PAYLOAD))
    assert TOKEN not in str(unreachable.value) and "pw" not in str(refused.value)


def test_pings_go_to_start_success_and_fail_urls_in_the_healthchecks_style(
        receiver: Receiver) -> None:
    sender = PingSender(f"{receiver.base}/ping/{TOKEN}")
    for kind in (PingKind.START, PingKind.SUCCESS, PingKind.FAIL):
        sender.send(Message(str(kind), "t", f"{kind} of pg-main", {}))
    assert [(path, body.decode()) for _, path, _, body in receiver.requests] == [
        (f"/ping/{TOKEN}/start", "ping.start of pg-main"),
        (f"/ping/{TOKEN}", "ping.success of pg-main"),
        (f"/ping/{TOKEN}/fail", "ping.fail of pg-main"),
    ]
    assert ping_url("https://hc.example/p/uuid/?rid=1", PingKind.FAIL) == \
        "https://hc.example/p/uuid/fail?rid=1"
