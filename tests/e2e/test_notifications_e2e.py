"""Notifications end to end: a real ``holdfast serve`` (scoped to this test's own
Postgres containers) sends to an HTTP receiver on 127.0.0.1 run by the test.
A backup that cannot authenticate (the role's password was changed under the
container) fires one signed ``backup.failed`` webhook, an apprise ``json://``
message and a delivery to an unreachable channel that is retried within
``HOLDFAST_NOTIFY_RETRY_FOR`` and then recorded failed; a second failure fires
nothing more, the first success after them fires ``recovered``, and every run
pings its ``holdfast.ping`` URL in order (start, fail, start, fail, start,
success). No secret (the database's passwords, the webhook secret, the ping
URL's key) reaches a receiver, a ``/v1/notifications`` answer or the daemon's
log, and ``holdfast --server ... notify test`` exits 0 for a live channel and 5
for a dead one. An instance with ``holdfast.stale_after`` and no run due fires
``backup.stale`` once, however many watchdog sweeps follow, and its next
complete snapshot fires ``recovered``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Daemon
from tests.harness.api import TEST_TOKEN
from tests.harness.daemon import REPO_ROOT, free_port, holdfast_env
from tests.harness.docker_fixtures import PostgresFactory, container_env, psql
from tests.harness.receiver import Receiver

pytestmark = pytest.mark.docker

PAYLOAD_KEYS = {"event", "instance", "target", "reason", "snapshot", "job", "cleared", "time",
                "link"}
"""The keys of :meth:`backup.alerts.Event.payload`: the webhook's JSON body."""
LOCAL_SCRAM = "--auth-local=scram-sha-256 --auth-host=scram-sha-256"
"""initdb arguments that make the unix socket (which Holdfast uses) ask for the password."""


def unique(name: str) -> str:
    """A name of its own: other test sessions may share the engine."""
    return f"{name}-{os.urandom(3).hex()}"


# --- the receiver ------------------------------------------------------------------------


def events(receiver: Receiver, path: str, instance: str | None = None) -> list[dict[str, Any]]:
    """The webhook payloads POSTed to ``path``, oldest first (of ``instance`` only, if given)."""
    return [payload for r in receiver.at(path) if r.method == "POST"
            and (payload := r.json()) and (instance is None or payload["instance"] == instance)]


# --- the daemon and its CLI ---------------------------------------------------------------


def backup(daemon: Daemon, instance: str) -> dict[str, Any]:
    """One backup through the API, waited for; its job once ended."""
    answer = daemon.post(f"/v1/instances/{instance}/backups",
                         params={"wait": "true", "timeout": "60"}, json={}, timeout=90)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def deliveries(daemon: Daemon, **params: str) -> list[dict[str, Any]]:
    answer = daemon.get("/v1/notifications", params={"limit": "1000", **params})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def remote_cli(daemon: Daemon, workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``holdfast --server URL --token T ARGS`` from a process with no engine of its own."""
    env = holdfast_env(workdir / "client-data")
    env["DOCKER_HOST"] = "unix:///nonexistent"
    return subprocess.run([sys.executable, "-m", "service.entrypoints.cli",
                           "--server", daemon.url, "--token", TEST_TOKEN, *args],
                          env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def scoped_source(factory: PostgresFactory, prefix: str, name: str,
                  env: dict[str, str | None] | None = None,
                  labels: dict[str, str | None] | None = None) -> Any:
    """A labelled Postgres that only the daemon of scope ``prefix`` manages."""
    return factory(name=f"{prefix}-{name}", env=env,
                   labels={"holdfast.name": f"{prefix}-{name}", "holdfast.scope": prefix,
                           **(labels or {})})


# --- the tests ---------------------------------------------------------------------------


def test_failed_backups_notify_once_signed_retry_a_dead_channel_ping_and_recover(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: PostgresFactory,
    receiver: Receiver, tmp_path: Path,
) -> None:
    prefix = unique("ntf")
    instance = f"{prefix}-pg"
    password, wrong = f"pw-{secrets.token_hex(10)}", f"wrong-{secrets.token_hex(10)}"
    secret = f"whsec-{secrets.token_hex(16)}"
    ping_key = str(uuid.uuid4())
    ping = f"/ping/{ping_key}"
    source = scoped_source(postgres_container_factory, prefix, "pg",
                           env={"POSTGRES_PASSWORD": password, "POSTGRES_INITDB_ARGS": LOCAL_SCRAM},
                           labels={"holdfast.ping": receiver.base + ping})
    user = container_env(source)["POSTGRES_USER"]
    daemon = daemon_factory(HOLDFAST_SCOPE=prefix,
                            HOLDFAST_NOTIFY_OPS=receiver.base + "/hook",
                            HOLDFAST_NOTIFY_OPS_SECRET=secret,
                            HOLDFAST_NOTIFY_CHAT=f"json://127.0.0.1:{receiver.server_address[1]}/apprise",
                            HOLDFAST_NOTIFY_DEAD=f"http://127.0.0.1:{free_port()}/x",
                            HOLDFAST_NOTIFY_RETRY_FOR="3").start()
    daemon.wait_for(lambda: daemon.instance(instance), 30, "discovery of the database")
    channels = daemon.get("/v1/notifications/channels").json()
    assert {(c["name"], c["kind"], c["signed"]) for c in channels} == \
        {("ops", "webhook", True), ("chat", "apprise", False), ("dead", "webhook", False)}

    # The role's password changes under the container: its POSTGRES_PASSWORD no
    # longer opens the socket, so every backup fails until it is set back.
    psql(source, f"ALTER ROLE {user} PASSWORD '{wrong}'")
    first = backup(daemon, instance)
    assert first["status"] == "failed" and first["error"], first
    second = backup(daemon, instance)  # the dead channel is still being retried meanwhile
    assert second["status"] == "failed" and second["error"], second
    # Deliveries are recorded when queued, before the job ends: the second
    # failure queued no second event on any channel.
    failures = deliveries(daemon, event="backup.failed")
    assert sorted((d["channel"], d["instance"]) for d in failures) == \
        [("chat", instance), ("dead", instance), ("ops", instance)]

    (hook,) = daemon.wait_for(lambda: receiver.at("/hook"), 30, "the backup.failed webhook")
    payload = hook.json()
    assert hook.method == "POST" and set(payload) == PAYLOAD_KEYS, payload
    assert (payload["event"], payload["instance"], payload["job"], payload["cleared"]) == \
        ("backup.failed", instance, first["id"], None)
    assert payload["reason"] and payload["time"].endswith("Z")
    assert payload["link"] == f"{daemon.url}/v1/jobs/{first['id']}"
    assert hook.headers["Content-Type"] == "application/json"
    assert hook.headers["X-Holdfast-Event"] == "backup.failed"
    expected = hmac.new(secret.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Holdfast-Signature"] == f"sha256={expected}"

    chat = daemon.wait_for(lambda: receiver.at("/apprise"), 30, "the apprise message")[0]
    assert chat.method == "POST" and chat.headers["Content-Type"].startswith("application/json")
    said = json.dumps(chat.json())
    assert "backup.failed" in said and instance in said

    dead = daemon.wait_for(lambda: [d for d in deliveries(daemon, channel="dead")
                                    if d["status"] == "failed"], 30,
                           "the dead channel's delivery to be given up")
    assert [(d["event"], d["attempts"] > 1) for d in dead] == [("backup.failed", True)], dead
    assert dead[0]["error"] and "/x" not in dead[0]["error"]

    # Set back: the next backup succeeds and clears the alarm, once.
    psql(source, f"ALTER ROLE {user} PASSWORD '{password}'", password=wrong)
    third = backup(daemon, instance)
    assert third["status"] == "succeeded", third
    daemon.wait_for(lambda: len(receiver.at("/hook")) >= 2, 30, "the recovered webhook")
    recovered = events(receiver, "/hook")[1]
    assert (recovered["event"], recovered["instance"], recovered["cleared"],
            recovered["job"]) == ("recovered", instance, "backup.failed", third["id"])
    assert [e["event"] for e in events(receiver, "/hook")] == ["backup.failed", "recovered"]

    pings = daemon.wait_for(lambda: (p := [r.path for r in receiver.requests
                                           if r.path.startswith(ping)]) and len(p) >= 6 and p,
                            30, "six pings")
    assert pings == [f"{ping}/start", f"{ping}/fail", f"{ping}/start", f"{ping}/fail",
                     f"{ping}/start", ping]

    sent = remote_cli(daemon, tmp_path, "notify", "test", "ops")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    daemon.wait_for(lambda: len(receiver.at("/hook")) >= 3, 30, "the test webhook")
    assert [e["event"] for e in events(receiver, "/hook")] == \
        ["backup.failed", "recovered", "test"]
    refused = remote_cli(daemon, tmp_path, "notify", "test", "dead")
    assert refused.returncode == 5, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("holdfast: ") and "dead" in line, line

    # No secret went anywhere but where it belongs (the ping key: the ping paths).
    secrets_ = {"the database password": password, "the changed password": wrong,
                "the webhook secret": secret, "the ping key": ping_key}
    sent_out = [(f"{r.method} {r.path}", json.dumps(r.headers) + r.body.decode(errors="replace")
                 + ("" if r.path.startswith(ping) else r.path)) for r in receiver.requests]
    answers = [("GET /v1/notifications", json.dumps(deliveries(daemon))),
               ("GET /v1/notifications/channels", json.dumps(channels)),
               (f"GET /v1/instances/{instance}", json.dumps(daemon.instance(instance))),
               ("notify test", sent.stdout + sent.stderr + refused.stdout + refused.stderr)]
    logged = [(f"daemon log line {n}", line)
              for n, line in enumerate(daemon.log_text().splitlines(), 1)]
    leaks = [(what, where) for where, text in sent_out + answers + logged
             for what, value in secrets_.items() if value in text]
    assert not leaks, leaks


def test_a_stale_instance_fires_backup_stale_once_and_a_fresh_snapshot_recovers_it(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: PostgresFactory,
    receiver: Receiver,
) -> None:
    prefix = unique("stale")
    instance = f"{prefix}-pg"
    scoped_source(postgres_container_factory, prefix, "pg",
                  labels={"holdfast.schedule": "@yearly", "holdfast.stale_after": "4s"})
    daemon = daemon_factory(HOLDFAST_SCOPE=prefix, HOLDFAST_WATCH_INTERVAL="1",
                            HOLDFAST_NOTIFY_OPS=receiver.base + "/hook").start()

    def stale() -> list[dict[str, Any]]:
        return [e for e in events(receiver, "/hook", instance) if e["event"] == "backup.stale"]
    (fired,) = daemon.wait_for(stale, 30, "backup.stale")
    assert "holdfast.stale_after=4s" in fired["reason"], fired
    time.sleep(6)  # six more watchdog sweeps, each of which still finds it stale
    assert len(stale()) == 1, stale()

    assert backup(daemon, instance)["status"] == "succeeded"
    daemon.wait_for(lambda: any(e["event"] == "recovered"
                                for e in events(receiver, "/hook", instance)),
                    30, "recovered")
    # A new backup.stale may follow (4s after this snapshot), never before recovered.
    said = events(receiver, "/hook", instance)
    assert [e["event"] for e in said[:2]] == ["backup.stale", "recovered"], said
    assert said[1]["cleared"] == "backup.stale"
