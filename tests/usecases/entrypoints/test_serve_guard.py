"""``run_daemon`` checks where it will listen before it opens anything: a refused
address leaves the services unopened, an accepted risk is a WARNING in the log."""

from __future__ import annotations

import logging
import signal
import socket

import pytest
import uvicorn
from fastapi import FastAPI

from service.entrypoints.daemon import main
from tests.fakes.services import FakeWorld


@pytest.fixture
def daemon_parts(world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """run_daemon over the fakes; uvicorn.run records where it would listen."""
    served: list[tuple[str, int]] = []

    def serve(app: FastAPI, *, host: str, port: int, **_: object) -> None:
        served.append((host, port))

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])  # run_daemon configures logging
    monkeypatch.setattr(root, "level", root.level)
    monkeypatch.setattr(main, "bootstrap", lambda settings: world.services)
    monkeypatch.setattr(uvicorn, "run", serve)
    monkeypatch.setattr(signal, "signal", lambda *args: None)
    return served


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_network_without_a_bootstrap_token_is_served_and_warns_of_nothing(
        world: FakeWorld, daemon_parts: list[tuple[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    # Every /v1 request needs a token (catalog tokens need no HOLDFAST_API_TOKEN).
    settings = world.services.settings.model_copy(update={"api_token": None})
    port = free_port()
    main.run_daemon(settings, host="0.0.0.0", port=port)
    assert daemon_parts == [("0.0.0.0", port)]
    assert warnings_logged(capsys.readouterr().err) == []


def warnings_logged(stderr: str) -> list[str]:
    """run_daemon logs to stderr (configure_logging replaces the root's handlers)."""
    return [line for line in stderr.splitlines() if " WARNING " in line]


def test_the_accepted_risk_is_served_with_a_warning(
        world: FakeWorld, daemon_parts: list[tuple[str, int]],
        capsys: pytest.CaptureFixture[str]) -> None:
    settings = world.services.settings.model_copy(update={"api_insecure_no_auth": True})
    port = free_port()
    main.run_daemon(settings, host="0.0.0.0", port=port)
    assert daemon_parts == [("0.0.0.0", port)]
    [warning] = warnings_logged(capsys.readouterr().err)
    assert f"serving on 0.0.0.0:{port} WITHOUT authentication" in warning


def test_loopback_logs_no_warning(world: FakeWorld, daemon_parts: list[tuple[str, int]],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    main.run_daemon(world.services.settings, host="127.0.0.1", port=port)
    assert daemon_parts == [("127.0.0.1", port)]
    stderr = capsys.readouterr().err
    assert f"serving on http://127.0.0.1:{port}" in stderr
    assert warnings_logged(stderr) == []
