"""A real ``holdfast serve`` process for end-to-end tests, on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.docker_fixtures import HELPER_IMAGE


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Daemon:
    """One daemon process; restartable on the same data directory."""

    def __init__(self, data_dir: Path, log_path: Path, env: dict[str, str]) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
        self.env.update(HOLDFAST_DATA_DIR=str(data_dir), HOLDFAST_LOG_FORMAT="json",
                        HOLDFAST_HELPER_IMAGE=HELPER_IMAGE, **env)
        self.process: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        token = env.get("HOLDFAST_API_TOKEN")
        self.client = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=30,
            headers={"Authorization": f"Bearer {token}"} if token else {})

    def start(self, timeout: float = 30) -> Daemon:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it open
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, "holdfast serve did not come up"
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def wait_for(self, what: Callable[[], Any], timeout: float, message: str,
                 interval: float = 0.25) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = what()
            if value:
                return value
            assert time.monotonic() < deadline, f"{message} (log tail: {self.log()[-2000:]})"
            time.sleep(interval)

    def job(self, job_id: str, timeout: float = 180) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            current: dict[str, Any] = self.client.get(f"/v1/jobs/{job_id}").json()
            return current if current["status"] in ("succeeded", "failed") else None
        result: dict[str, Any] = self.wait_for(finished, timeout, f"job {job_id} unfinished")
        return result

    def instance(self, name: str) -> dict[str, Any] | None:
        for item in self.client.get("/v1/instances").json():
            if item["name"] == name:
                return dict(item)
        return None


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    made: list[Daemon] = []

    def make(**env: str) -> Daemon:
        daemon = Daemon(tmp_path / "data", tmp_path / f"serve-{len(made)}.log", env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.process is not None and daemon.process.poll() is None:
            daemon.process.kill()
            daemon.process.wait(timeout=30)
        daemon.client.close()
