"""``holdfast --server URL``: what a remote command loads, and what only runs locally.

A remote command talks HTTP and must not open anything local: no catalog
(SQLAlchemy, Alembic), no Docker, no S3 client, no settings object of the
daemon; ``--help`` with ``--server`` stays as light as without.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from service.entrypoints.cli import main
from tests.unit.test_cli_imports import HEAVY, loaded_by

LOCAL_ONLY = ("sqlalchemy", "alembic", "boto3", "botocore", "docker", "fastapi", "starlette",
              "uvicorn", "pydantic_settings")
DAEMON_ONLY = (*LOCAL_ONLY, "apscheduler", "prometheus_client", "sse_starlette")
"""Also what a command that succeeds never needs: the daemon's scheduler and
metrics, the error table's imports (built only when an error is mapped)."""


class _Snapshots(BaseHTTPRequestHandler):
    """A stand-in daemon: every GET answers an empty JSON list."""

    def do_GET(self) -> None:
        body = json.dumps([]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Snapshots)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_a_remote_command_that_succeeds_loads_none_of_the_daemon_s_libraries(
        stand_in: str, tmp_path: Path) -> None:
    modules, code, out = loaded_by(["--server", stand_in, "snapshots", "--json"], tmp_path)
    assert (code, out) in ((0, "[]\n"), (None, "[]\n"))
    assert sorted(modules.intersection(DAEMON_ONLY)) == []


def test_a_remote_command_loads_nothing_of_local_mode_and_exits_5_when_the_server_is_down(
        tmp_path: Path) -> None:
    modules, code, _ = loaded_by(["--server", "http://127.0.0.1:9", "snapshots"], tmp_path)
    assert code == 5
    assert "httpx" in modules
    assert sorted(modules.intersection(LOCAL_ONLY)) == []
    assert not (tmp_path / "data").exists()  # nothing was made in the local data dir


def test_help_with_a_server_loads_no_heavy_library_nor_httpx(tmp_path: Path) -> None:
    modules, code, out = loaded_by(["--server", "http://127.0.0.1:9", "--help"], tmp_path)
    assert code in (0, None) and "--token-file" in out
    assert sorted(modules.intersection((*HEAVY, "httpx"))) == []


@pytest.mark.parametrize("args", [["--server", "http://h:1", "--install-completion", "bash"],
                                  ["--show-completion=bash", "--server=http://h:1"]])
def test_completion_with_a_server_is_refused_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        args: list[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["holdfast", *args])
    with pytest.raises(SystemExit) as stopped:
        main()
    assert stopped.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("holdfast: shell completion") and "without --server" in line
