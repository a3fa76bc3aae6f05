"""``holdfast notify`` as a user runs it, in a fresh process on a real SQLite
catalog, against a real HTTP receiver: the test message arrives signed, a
refusal is exit 5 with one line, every attempt is listed, and neither the
secret nor the URL's path ever reaches the output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from backup.alerts import SIGNATURE_HEADER, signature_matches
from tests.harness.receiver import Receiver, closed_port

SECRET = "cli-s3cret-value"
PATH_TOKEN = "Tok3nInThePath"


def holdfast(tmp_path: Path, receiver: Receiver, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(HOLDFAST_DATA_DIR=str(tmp_path / "data"), DOCKER_HOST="unix:///nonexistent",
               HOLDFAST_NOTIFY_OPS=f"{receiver.base}/hook/{PATH_TOKEN}",
               HOLDFAST_NOTIFY_OPS_SECRET=SECRET,
               HOLDFAST_NOTIFY_DOWN=f"http://127.0.0.1:{closed_port()}/{PATH_TOKEN}")
    return subprocess.run([sys.executable, "-m", "service.entrypoints.cli", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_notify_test_delivers_a_signed_test_message(tmp_path: Path, receiver: Receiver) -> None:
    done = holdfast(tmp_path, receiver, "notify", "test", "ops")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("test message delivered to ops (ntf-")
    (got,) = receiver.at(f"/hook/{PATH_TOKEN}")
    assert signature_matches(got.body, SECRET, got.headers[SIGNATURE_HEADER])
    assert got.json()["event"] == "test"
    assert got.headers["X-Holdfast-Event"] == "test"


def test_a_refusing_channel_is_exit_5_with_one_line_and_is_listed(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.status = 500
    refused = holdfast(tmp_path, receiver, "notify", "test", "ops")
    down = holdfast(tmp_path, receiver, "notify", "test", "down")
    unknown = holdfast(tmp_path, receiver, "notify", "test", "nosuch")
    assert (refused.returncode, down.returncode, unknown.returncode) == (5, 5, 3)
    assert refused.stderr.count("\n") == 1 and "answered HTTP 500" in refused.stderr
    assert "cannot be reached" in down.stderr
    assert "configured: down, ops" in unknown.stderr
    listed = json.loads(holdfast(tmp_path, receiver, "notify", "ls", "--json").stdout)
    assert [(d["channel"], d["status"]) for d in listed] == [("down", "failed"),
                                                             ("ops", "failed")]
    channels = holdfast(tmp_path, receiver, "notify", "channels", "--json")
    assert [(c["name"], c["signed"]) for c in json.loads(channels.stdout)] == [
        ("down", False), ("ops", True)]
    everything = "".join(p.stdout + p.stderr for p in (refused, down, unknown, channels)) \
        + json.dumps(listed)
    assert SECRET not in everything and PATH_TOKEN not in everything
