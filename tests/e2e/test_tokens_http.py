"""Catalog tokens against a real ``holdfast serve`` over real HTTP (no Docker engine
needed: the daemon serves while discovery retries): a token made with the CLI before
the daemon starts is accepted with its scopes, refused beyond them (403 naming the
scope), tokens made and revoked over the API take effect at once, the last use shows
in ``holdfast tokens ls``, and no secret reaches the daemon's log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Daemon
from tests.harness.api import TEST_TOKEN, bearer
from tests.harness.daemon import holdfast_json

NO_DOCKER = {"DOCKER_HOST": "unix:///nonexistent"}


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Iterator[Daemon]:
    running = daemon_factory(**NO_DOCKER)
    yield running
    if running.alive():
        assert running.stop() == 0


def as_token(daemon: Daemon, secret: str | None) -> httpx.Client:
    return httpx.Client(base_url=daemon.url, timeout=30,
                        headers=bearer(secret) if secret is not None else {})


def test_catalog_tokens_over_real_http(daemon: Daemon) -> None:
    made = holdfast_json(daemon.data_dir, "tokens", "create", "--name", "ci", "--scope",
                         "backup", "--scope", "read", extra=NO_DOCKER)
    secret = made["token"]
    daemon.start()
    with as_token(daemon, secret) as ci, as_token(daemon, None) as anonymous:
        assert ci.get("/v1/snapshots").json() == []
        refused = ci.delete("/v1/snapshots/20260101T000000Z-abcdef")
        assert refused.status_code == 403
        assert refused.json()["kind"] == "Forbidden"
        assert "needs the 'admin' scope" in refused.json()["error"]
        assert anonymous.get("/v1/snapshots").status_code == 401
        assert as_token(daemon, secret + "x").get("/v1/snapshots").status_code == 401
        assert anonymous.get("/healthz").status_code == 200

        # The bootstrap admin token makes and revokes tokens over the API.
        created = daemon.client.post("/v1/tokens", json={"name": "deploy",
                                                         "scopes": ["restore"]})
        assert created.status_code == 201, created.text
        deploy = created.json()["token"]
        with as_token(daemon, deploy) as restorer:
            assert restorer.get("/v1/snapshots").status_code == 403  # restore lacks read
            assert daemon.client.delete("/v1/tokens/ci").status_code == 204
            assert ci.get("/v1/snapshots").status_code == 401  # revoked: refused at once
            listed = daemon.client.get("/v1/tokens").json()
        assert [t["name"] for t in listed] == ["deploy"]
        assert listed[0]["last_used_at"] is not None

    shown = holdfast_json(daemon.data_dir, "tokens", "ls", extra=NO_DOCKER)
    assert [(t["name"], t["created_by"]) for t in shown] == [
        ("deploy", "token:HOLDFAST_API_TOKEN")]
    assert daemon.stop() == 0
    log = daemon.log_text()
    for token in (secret, deploy, TEST_TOKEN):
        assert token not in log
