"""A real uvicorn on 127.0.0.1 (on the fakes, in a thread) against 50 MB request bodies:
refused without reading them, so the process's memory barely moves.

The issue's probe: one unauthenticated 50 MB request raised the daemon's RSS from
137 to 292 MiB. Here the same request, and one with the token but over the body
cap, must each grow this process's RSS by less than :data:`GROWTH_LIMIT`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import uvicorn

from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.services import fake_world
from tests.usecases.entrypoints.helpers import wait_until

TOKEN = "open-sesame"
BODY_BYTES = 50 * 1024 * 1024
GROWTH_LIMIT = 20 * 1024 * 1024


@pytest.fixture
def port(tmp_path: Path) -> Iterator[int]:
    world = fake_world(tmp_path, env={"HOLDFAST_API_TOKEN": TOKEN})
    runner = JobRunner(world.services, 1)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(world.services, runner), log_config=None,
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started)
        yield listener.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        runner.shutdown(grace=5)
        listener.close()


def post_50mb(port: int, headers: str = "") -> bytes:
    """POST a 50 MB JSON list of integers to ``/v1/volumes``, sending while the
    server reads and reading its answer as it comes; the answer's bytes."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)  # a hang guard only
    head = (f"POST /v1/volumes HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
            f"\r\nContent-Length: {BODY_BYTES}\r\n{headers}\r\n").encode()
    chunk = b"1," * 32_768

    def send_all() -> None:
        try:
            conn.sendall(head + b"[")
            for _ in range(BODY_BYTES // len(chunk)):
                conn.sendall(chunk)
        except OSError:
            pass  # the server answered and closed without reading the rest: the point

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    answer = b""
    try:
        while part := conn.recv(65_536):
            answer += part
    except ConnectionResetError:
        pass
    finally:
        conn.close()
        sender.join(timeout=60)
    return answer


def rss() -> int:
    return int(psutil.Process().memory_info().rss)


@pytest.mark.parametrize(("headers", "status"), [
    ("", b"401"),
    ("Authorization: Bearer wrong\r\n", b"401"),
    (f"Authorization: Bearer {TOKEN}\r\n", b"413"),
], ids=["no-token", "wrong-token", "over-the-cap"])
def test_a_50mb_body_is_refused_unread_and_memory_stays_flat(port: int, headers: str,
                                                             status: bytes) -> None:
    post_50mb(port, f"Authorization: Bearer {TOKEN}\r\n")  # warm up: the path's first use
    before = rss()
    answer = post_50mb(port, headers)
    grown = rss() - before
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]
    assert b'"type":' in answer
    assert grown < GROWTH_LIMIT, f"RSS grew {grown / 2**20:.1f} MiB"
