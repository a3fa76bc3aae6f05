"""``holdfast serve`` as a real process, for the end-to-end and crash tests.

The daemon runs as a user runs it: ``python -m service.entrypoints.cli serve`` in its own
process, on a free port, with an environment from which every ``HOLDFAST_*``
variable of the test process is dropped, a data directory of its own, and
JSON logs in files beside it (one per start). A :class:`Daemon` can be
stopped, killed and started again on the same data directory. Its bootstrap
``HOLDFAST_API_TOKEN`` is :data:`~tests.harness.api.TEST_TOKEN` unless the test
gives another, and its client sends it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx

from tests.harness.api import TEST_TOKEN
from tests.harness.docker_fixtures import HELPER_IMAGE
from tests.harness.waiting import wait_for

__all__ = ["Daemon", "free_port", "holdfast_env", "holdfast_json", "wait_for"]

REPO_ROOT = Path(__file__).resolve().parents[2]

_T = TypeVar("_T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def holdfast_env(data_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HOLDFAST_")}
    env.update(HOLDFAST_DATA_DIR=str(data_dir), HOLDFAST_LOG_FORMAT="json",
               HOLDFAST_HELPER_IMAGE=HELPER_IMAGE)
    env.update(extra or {})
    return env


def holdfast_json(data_dir: Path, *args: str, extra: Mapping[str, str] | None = None) -> Any:
    """Run ``holdfast ARGS --json`` against ``data_dir``; require success, return the JSON."""
    proc = subprocess.run([sys.executable, "-m", "service.entrypoints.cli", *args, "--json"],
                          env=holdfast_env(data_dir, extra), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"holdfast {' '.join(args)} exited {proc.returncode}:\n" \
                                 f"{proc.stdout}{proc.stderr}"
    return json.loads(proc.stdout)



# --- the daemon ----------------------------------------------------------------------


class Daemon:
    """``holdfast serve`` in a subprocess; can be started again on the same data dir."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = dict(env or {})
        """Extra environment for every start; ``start(env=...)`` adds to it."""
        self.data_dir = workdir / "data"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self._client: httpx.Client | None = None
        self._log: Any = None
        self.logs: list[Path] = []

    # -- life cycle --

    def start(self, env: Mapping[str, str] | None = None, *, wait: bool = True) -> Daemon:
        assert not self.alive(), "the daemon is already running"
        environment = {"HOLDFAST_API_TOKEN": TEST_TOKEN, **self.env, **(env or {})}
        self._close_client()
        self.port = free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        log_path = self.workdir / f"daemon-{len(self.logs) + 1}.log"
        self.logs.append(log_path)
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()/close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.entrypoints.cli", "serve", "--port", str(self.port)],
            env=holdfast_env(self.data_dir, environment), cwd=REPO_ROOT,
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        token = environment.get("HOLDFAST_API_TOKEN")
        self._client = httpx.Client(base_url=self.url, timeout=30, headers={
            "Authorization": f"Bearer {token}"} if token else {})
        if wait:
            self.wait_healthy()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def client(self) -> httpx.Client:
        assert self._client is not None, "the daemon was never started"
        return self._client

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _probe(self, path: str) -> int | None:
        try:
            return self.client.get(path, timeout=5).status_code
        except httpx.TransportError:
            return None

    def _wait_status(self, path: str, timeout: float) -> None:
        def answered() -> bool:
            assert self.alive(), f"the daemon exited ({self.returncode})"
            return self._probe(path) == 200
        self.wait_for(answered, timeout, f"{path} to answer 200", interval=0.2)

    def wait_healthy(self, timeout: float = 30) -> None:
        self._wait_status("/healthz", timeout)

    def wait_ready(self, timeout: float = 30) -> None:
        self._wait_status("/readyz", timeout)

    def send_signal(self, sig: int) -> None:
        assert self.alive(), "the daemon is not running"
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the daemon did not exit within {timeout:.0f}s; killed it:\n"
                                 f"{self.log_tail()}") from None
        self._close_log()
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 90) -> int:
        """Send ``sig`` and wait for the process to exit; returns its exit status."""
        self.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self) -> int:
        """SIGKILL (a crash); returns the exit status (-9)."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait(timeout=30)
        self._close_log()
        return code

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def close(self) -> None:
        """Teardown: never leave a daemon running."""
        if self.alive():
            self.kill()
        self._close_client()
        self._close_log()

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- logs --

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in self.logs if path.exists())

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def log_records(self, run: int | None = None) -> list[dict[str, Any]]:
        """The JSON log records of every run (or of run number ``run``, from 1)."""
        paths = self.logs if run is None else [self.logs[run - 1]]
        records = []
        for path in paths:
            for line in path.read_text(errors="replace").splitlines():
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if isinstance(record, dict):
                        records.append(record)
        return records

    # -- API --

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def start_backup(self, instance: str) -> dict[str, Any]:
        response = self.post(f"/v1/instances/{instance}/backups", json={})
        assert response.status_code == 202, response.text
        return dict(response.json())

    def wait_job(self, job_id: str, timeout: float = 180) -> dict[str, Any]:
        """The job once it has ended (succeeded, failed or cancelled), polled over the API."""
        def finished() -> dict[str, Any] | None:
            response = self.get(f"/v1/jobs/{job_id}")
            assert response.status_code == 200, response.text
            job = dict(response.json())
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
            assert self.alive(), f"the daemon exited ({self.returncode})"
            return None
        return self.wait_for(finished, timeout, f"job {job_id} to finish", interval=0.2)

    def instance_names(self) -> set[str]:
        response = self.get("/v1/instances")
        assert response.status_code == 200, response.text
        return {view["name"] for view in response.json()}

    def instance(self, name: str) -> dict[str, Any] | None:
        """The instance's view in ``GET /v1/instances``, or None."""
        for view in self.get("/v1/instances").json():
            if view["name"] == name:
                return dict(view)
        return None

    def wait_for(self, condition: Callable[[], _T | Literal[False] | None], timeout: float,
                 message: str, interval: float = 0.25) -> _T:
        """:func:`wait_for`, with the daemon's log tail when it times out."""
        try:
            return wait_for(condition, timeout, message, interval)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.log_tail()}") from None
