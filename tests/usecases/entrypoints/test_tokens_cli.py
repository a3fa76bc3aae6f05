"""``holdfast tokens`` on the fakes: create (the secret once; ``--json`` exactly the API's
201 body), ls (table and JSON, never a secret or hash), revoke, and the exit codes of
bad input (2), a name taken (4) and an unknown token (3). A token made here is one the
API accepts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner, Result

from service.entrypoints.api import create_app
from service.entrypoints.cli.app import app
from service.tokens import hash_secret
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.entrypoints.test_cli import (  # noqa: F401  (_keep_logging: a fixture)
    CLI_MODULE,
    Cli,
    _keep_logging,
    failed,
    ok_json,
)


@pytest.fixture
def run(world: FakeWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Cli:
    """``holdfast ARGS`` over the fakes (as test_cli's ``cli`` fixture)."""
    monkeypatch.setattr(CLI_MODULE, "bootstrap", lambda settings: world.services)
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"HOLDFAST_DATA_DIR": str(tmp_path / "cli")})
    return invoke


def test_create_json_is_exactly_the_api_body_and_the_token_works(
        world: FakeWorld, run: Cli, jobs: JobRunner) -> None:
    made = ok_json(run("tokens", "create", "--name", "ci", "--scope", "backup",
                       "--scope", "read", "--expires", "90d", "--json"))
    assert set(made) == {"name", "scopes", "expires_at", "token"}
    assert (made["name"], made["scopes"]) == ("ci", ["read", "backup"])
    assert made["expires_at"].endswith("Z") and made["token"].startswith("hf_")
    client: TestClient = api_client(create_app(world.services, jobs), token=made["token"])
    assert client.get("/v1/snapshots").status_code == 200
    assert client.delete("/v1/snapshots/20260101T000000Z-abcdef").status_code == 403


def test_create_prints_the_secret_once_with_what_to_do(world: FakeWorld, run: Cli) -> None:
    result = run("tokens", "create", "--name", "ops", "--scope", "admin")
    assert result.exit_code == 0, result.output
    [stored] = world.catalog.list_tokens()
    [secret] = re.findall(r"hf_[A-Za-z0-9_-]{43}", result.stdout)
    assert stored.token_hash == hash_secret(secret.encode())
    assert "not shown again" in result.stdout and "never expires" in result.stdout
    assert stored.created_by is not None and stored.created_by.startswith("cli")


def test_ls_never_shows_a_secret_or_hash(world: FakeWorld, run: Cli) -> None:
    secret = ok_json(run("tokens", "create", "--name", "ci", "--scope", "read", "--json"))["token"]
    digest = hash_secret(secret.encode())
    table = run("tokens", "ls")
    listed = ok_json(run("tokens", "ls", "--json"))
    assert table.exit_code == 0
    assert "ci" in table.stdout and "read" in table.stdout and "never" in table.stdout
    assert [entry["name"] for entry in listed] == ["ci"]
    assert set(listed[0]) == {"name", "scopes", "created_by", "created_at", "last_used_at",
                              "expires_at"}
    for text in (table.stdout, json.dumps(listed)):
        assert secret not in text and digest not in text


def test_ls_with_no_tokens_says_how_to_make_one(run: Cli) -> None:
    result = run("tokens", "ls")
    assert result.exit_code == 0 and "holdfast tokens create" in result.stdout
    assert ok_json(run("tokens", "ls", "--json")) == []


def test_revoke_removes_it_and_an_unknown_name_exits_3(world: FakeWorld, run: Cli) -> None:
    ok_json(run("tokens", "create", "--name", "ci", "--scope", "read", "--json"))
    result = run("tokens", "revoke", "ci")
    assert result.exit_code == 0 and "revoked" in result.stdout
    assert world.catalog.list_tokens() == []
    assert "no API token named 'ci'" in failed(run("tokens", "revoke", "ci"), 3)


def test_bad_input_exits_2_and_a_name_taken_exits_4(world: FakeWorld, run: Cli) -> None:
    assert "unknown scope 'root'" in failed(
        run("tokens", "create", "--name", "ci", "--scope", "root"), 2)
    assert "1m to 3650d" in failed(
        run("tokens", "create", "--name", "ci", "--scope", "read", "--expires", "10y"), 2)
    assert "token name" in failed(run("tokens", "create", "--name", "c i", "--scope", "read"), 2)
    assert world.catalog.list_tokens() == []
    ok_json(run("tokens", "create", "--name", "ci", "--scope", "read", "--json"))
    assert "exists already" in failed(
        run("tokens", "create", "--name", "ci", "--scope", "admin"), 4)
