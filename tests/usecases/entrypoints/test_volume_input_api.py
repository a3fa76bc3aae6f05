"""Bad volume names and labels over the API and the CLI: one 400 (exit 2) line
that does not echo the input whole, and nothing created; a helper image that
cannot be pulled is one line naming HOLDFAST_HELPER_IMAGE."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

import service.entrypoints.cli  # noqa: F401  (registers every command on the app)
from service.entrypoints.api import create_app
from service.entrypoints.cli.app import app
from service.usecases.jobs import JobRunner
from tests.fakes.docker import HELPER_IMAGE
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client

CLI_MODULE = importlib.import_module("service.entrypoints.cli.app")


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


def refused(response: Any, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["kind"] == kind
    assert "\n" not in body["error"]
    return str(body["error"])


def test_a_300_character_volume_name_is_400_with_a_short_message(
    world: FakeWorld, client: TestClient,
) -> None:
    message = refused(client.post("/v1/volumes", json={"name": "v" * 300}), 400, "InvalidName")
    assert "names are at most 255 characters" in message
    assert "v" * 100 not in message
    assert world.docker.volumes == {}


@pytest.mark.parametrize(("labels", "kind"), [
    ({"": "x"}, "InvalidInput"),
    ({"te\u0000am": "x"}, "InvalidInput"),
    ({"team": "sh\u0000op"}, "InvalidInput"),
    ({"k" * 200: "x"}, "InvalidInput"),
    ({f"k{i}": "v" for i in range(100)}, "InvalidInput"),
])
def test_bad_volume_labels_are_400(world: FakeWorld, client: TestClient,
                                   labels: dict[str, str], kind: str) -> None:
    message = refused(client.post("/v1/volumes", json={"name": "scratch", "labels": labels}),
                      400, kind)
    assert "label" in message
    assert world.docker.volumes == {}


def test_a_name_with_a_trailing_newline_is_400(world: FakeWorld, client: TestClient) -> None:
    refused(client.post("/v1/volumes", json={"name": "scratch\n"}), 400, "InvalidName")
    assert world.docker.volumes == {}


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def cli(world: FakeWorld, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Iterator[Any]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    monkeypatch.setattr(CLI_MODULE, "bootstrap", lambda settings: world.services)
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args),
                                      env={"HOLDFAST_DATA_DIR": str(tmp_path / "cli")})
    root.handlers[:], root.level = handlers, level


def test_the_cli_refuses_a_300_character_name_with_exit_2(world: FakeWorld, cli: Any) -> None:
    result = cli("volumes", "create", "v" * 300)
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith("holdfast: cannot name a volume 'vvv")
    assert line.endswith("names are at most 255 characters")


def test_the_cli_says_how_to_get_a_helper_image_it_cannot_pull(world: FakeWorld,
                                                               cli: Any) -> None:
    world.docker.add_container("db", volume="db-data", content=b"x")
    world.docker.pullable = set()
    result = cli("volumes", "clone", "db-data", "db-copy")
    assert result.exit_code == 3, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"holdfast: cannot pull helper image {HELPER_IMAGE}: ")
    assert line.endswith("load it with `docker load` or set HOLDFAST_HELPER_IMAGE to a local "
                         "image that has sh and GNU tar")
    assert "db-copy" not in world.docker.volumes
