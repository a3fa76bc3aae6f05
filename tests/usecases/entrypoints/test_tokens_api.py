"""Tokens and scopes through the HTTP API on the fakes: /v1/tokens (201 body, 409, 400,
listing without secrets, revoke at once), 401 for a missing, unknown or expired token,
403 naming the scope, every operation enforcing the scope the OpenAPI document states,
last use recorded, /metrics guarded on request, the insecure opt-out, no secret in logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from backup.types import utcnow
from service.entrypoints.api import create_app
from service.tokens import SCOPE_NAMES, hash_secret
from service.usecases import tokens
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import AUTH, api_client, bearer
from tests.usecases.entrypoints.test_api import assert_error

Json = dict[str, Any]


@pytest.fixture
def app(world: FakeWorld, jobs: JobRunner) -> FastAPI:
    return create_app(world.services, jobs)


@pytest.fixture
def anonymous(app: FastAPI) -> TestClient:
    """A client that sends no token unless a test gives one."""
    return api_client(app, token=None)


def make_token(client: TestClient, name: str, *scopes: str, expires: str | None = None) -> str:
    """A catalog token made through the API with the bootstrap admin token; its secret."""
    response = client.post("/v1/tokens", headers=AUTH,
                           json={"name": name, "scopes": list(scopes), "expires": expires})
    assert response.status_code == 201, response.text
    secret: str = response.json()["token"]
    return secret


# --- /v1/tokens ----------------------------------------------------------------------------


def test_create_answers_201_with_exactly_the_contract_fields(anonymous: TestClient) -> None:
    response = anonymous.post("/v1/tokens", headers=AUTH,
                              json={"name": "ci", "scopes": ["backup", "read"], "expires": "90d"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"name", "scopes", "expires_at", "token"}
    assert (body["name"], body["scopes"]) == ("ci", ["read", "backup"])
    assert re.fullmatch(r"hf_[A-Za-z0-9_-]{43}", body["token"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["expires_at"])


def test_a_token_without_expiry_has_expires_at_null(anonymous: TestClient) -> None:
    response = anonymous.post("/v1/tokens", headers=AUTH, json={"name": "ci", "scopes": ["read"]})
    assert (response.status_code, response.json()["expires_at"]) == (201, None)


def test_the_secret_is_shown_once_and_never_listed(
        world: FakeWorld, anonymous: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = make_token(anonymous, "ci", "read")
    assert anonymous.get("/v1/snapshots", headers=bearer(secret)).status_code == 200
    listed = anonymous.get("/v1/tokens", headers=AUTH)
    assert listed.status_code == 200
    [shown] = listed.json()
    assert set(shown) == {"name", "scopes", "created_by", "created_at", "last_used_at",
                          "expires_at"}
    assert shown["created_by"] == "token:HOLDFAST_API_TOKEN"
    digest = hash_secret(secret.encode())
    assert secret not in listed.text and digest not in listed.text
    assert secret not in caplog.text and digest not in caplog.text
    assert "'ci' created" in caplog.text


def test_a_name_in_use_is_409(anonymous: TestClient) -> None:
    make_token(anonymous, "ci", "read")
    response = anonymous.post("/v1/tokens", headers=AUTH, json={"name": "ci", "scopes": ["admin"]})
    assert "exists already" in assert_error(response, 409, "NameTaken")["error"]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"name": "ci", "scopes": ["root"]}, "scopes.0"),
    ({"name": "ci", "scopes": []}, "scopes"),
    ({"name": "ci"}, "scopes"),
    ({"name": "ci", "scopes": ["read"], "expires": "5y"}, "1m to 3650d"),
    ({"name": "ci", "scopes": ["read"], "expires": "0m"}, "1m to 3650d"),
    ({"name": "no spaces", "scopes": ["read"]}, "token name"),
    ({"name": "x" * 65, "scopes": ["read"]}, "name"),
])
def test_bad_requests_are_400_and_make_nothing(
        world: FakeWorld, anonymous: TestClient, body: Json, fragment: str) -> None:
    response = anonymous.post("/v1/tokens", headers=AUTH, json=body)
    assert fragment in assert_error(response, 400, "InvalidInput")["error"]
    assert world.catalog.list_tokens() == []


def test_revoke_is_204_then_the_token_is_refused_at_once_then_404(
        anonymous: TestClient) -> None:
    secret = make_token(anonymous, "ci", "read")
    assert anonymous.get("/v1/snapshots", headers=bearer(secret)).status_code == 200
    assert anonymous.delete("/v1/tokens/ci", headers=AUTH).status_code == 204
    assert_error(anonymous.get("/v1/snapshots", headers=bearer(secret)), 401, "Unauthorised")
    assert_error(anonymous.delete("/v1/tokens/ci", headers=AUTH), 404, "TokenNotFound")


def test_only_admin_manages_tokens(anonymous: TestClient) -> None:
    secret = make_token(anonymous, "ops", "read", "backup", "restore")
    for response in (anonymous.get("/v1/tokens", headers=bearer(secret)),
                     anonymous.post("/v1/tokens", headers=bearer(secret),
                                    json={"name": "x", "scopes": ["admin"]}),
                     anonymous.delete("/v1/tokens/ops", headers=bearer(secret))):
        assert "'admin' scope" in assert_error(response, 403, "Forbidden")["error"]
    admin = make_token(anonymous, "root", "admin")
    made = anonymous.post("/v1/tokens", headers=bearer(admin),
                          json={"name": "x", "scopes": ["read"]})
    assert made.status_code == 201
    listed = anonymous.get("/v1/tokens", headers=bearer(admin)).json()
    assert {t["name"]: t["created_by"] for t in listed}["x"] == "token:root"


def test_last_use_is_recorded(world: FakeWorld, anonymous: TestClient) -> None:
    secret = make_token(anonymous, "ci", "read")
    before = utcnow()
    [fresh] = world.catalog.list_tokens()
    assert fresh.last_used_at is None
    anonymous.get("/v1/snapshots", headers=bearer(secret))
    [used] = world.catalog.list_tokens()
    assert used.last_used_at is not None and used.last_used_at >= before
    listed = anonymous.get("/v1/tokens", headers=AUTH).json()
    assert listed[0]["last_used_at"] is not None


# --- 401 -----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer hf_not-a-token", "hf_x",
                                    "Basic dXNlcjpwYXNz"])
def test_a_missing_or_unknown_token_is_401_saying_how_to_get_one(
        anonymous: TestClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = anonymous.get("/v1/instances", headers=headers)
    body = assert_error(response, 401, "Unauthorised")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "holdfast tokens create --name NAME --scope admin" in body["error"]


def test_an_expired_token_is_401_naming_it_and_logged_by_name(
        world: FakeWorld, anonymous: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    made = tokens.create_token(world.services, "old", ["read"], "1m", None,
                               utcnow() - timedelta(minutes=2))
    caplog.set_level(logging.INFO)
    response = anonymous.get("/v1/snapshots", headers=bearer(made.secret))
    assert "token 'old' expired at" in assert_error(response, 401, "Unauthorised")["error"]
    assert "'old' expired" in caplog.text and made.secret not in caplog.text


def test_without_any_token_configured_v1_is_401_and_health_is_open(tmp_path: Path) -> None:
    world = fake_world(tmp_path, env={"HOLDFAST_API_TOKEN": ""})
    assert world.services.settings.api_token is None
    client = api_client(create_app(world.services, JobRunner(world.services, 1)), token=None)
    body = assert_error(client.get("/v1/snapshots"), 401, "Unauthorised")
    assert "holdfast tokens create" in body["error"] and "HOLDFAST_API_TOKEN" in body["error"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_a_catalog_token_while_the_catalog_is_down_is_503_not_401(
        world: FakeWorld, anonymous: TestClient) -> None:
    secret = make_token(anonymous, "ci", "read")
    world.catalog.down = True
    assert_error(anonymous.get("/v1/snapshots", headers=bearer(secret)), 503,
                 "CatalogUnavailable")


# --- 403 and each operation's scope -------------------------------------------------------


@pytest.mark.parametrize(("scopes", "method", "path", "needed"), [
    (["read"], "delete", "/v1/snapshots/20260101T000000Z-abcdef", "admin"),
    (["read"], "post", "/v1/instances/shop-db/backups", "backup"),
    (["backup", "read"], "post", "/v1/snapshots/20260101T000000Z-abcdef/restore", "restore"),
    (["restore"], "get", "/v1/snapshots", "read"),
    (["backup"], "delete", "/v1/volumes/data", "admin"),
])
def test_a_token_without_the_scope_is_403_naming_it(
        anonymous: TestClient, scopes: list[str], method: str, path: str, needed: str) -> None:
    secret = make_token(anonymous, "ci", *scopes)
    response = anonymous.request(method, path, headers=bearer(secret), json={"name": "x"})
    body = assert_error(response, 403, "Forbidden")
    assert f"needs the '{needed}' scope" in body["error"]
    assert "'ci'" in body["error"]


def _operations(app: FastAPI) -> Iterator[tuple[str, str, str]]:
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            if path.startswith("/v1/"):
                yield method, path, op["x-holdfast-scope"]


def _concrete(path: str) -> str:
    """A path template with each parameter given a value no fake has."""
    return re.sub(r"\{[^}]+\}", "zz-no-such-thing", path)


def test_every_operation_enforces_the_scope_its_document_states(
        app: FastAPI, anonymous: TestClient) -> None:
    """For each /v1 operation: a token with every other scope but admin is 403 naming
    the documented one; a token with just the documented one gets past the check."""
    secrets = {scope: make_token(anonymous, f"only-{scope}", scope) for scope in SCOPE_NAMES}
    others = {scope: make_token(anonymous, f"all-but-{scope}",
                                *(s for s in SCOPE_NAMES if s not in (scope, "admin")))
              for scope in SCOPE_NAMES}
    checked = 0
    for method, path, scope in _operations(app):
        url = _concrete(path)
        refused = anonymous.request(method, url, headers=bearer(others[scope]), json={})
        assert refused.status_code == 403, (method, path, refused.text)
        assert refused.json()["error"].startswith(f"this needs the '{scope}' scope"), path
        allowed = anonymous.request(method, url, headers=bearer(secrets[scope]), json={})
        assert allowed.status_code not in (401, 403), (method, path, allowed.text)
        checked += 1
    assert checked >= 20


def test_the_document_states_each_operations_scope_and_the_bearer_scheme(app: FastAPI) -> None:
    document = app.openapi()
    found = {(method, path): scope for method, path, scope in _operations(app)}
    expected = {
        ("get", "/v1/instances"): "read",
        ("delete", "/v1/instances/{name}"): "admin",
        ("put", "/v1/instances/{name}/policy"): "backup",
        ("post", "/v1/instances/{name}/backups"): "backup",
        ("post", "/v1/instances/{name}/restore"): "restore",
        ("get", "/v1/snapshots"): "read",
        ("delete", "/v1/snapshots/{snapshot_id}"): "admin",
        ("post", "/v1/snapshots/{snapshot_id}/restore"): "restore",
        ("post", "/v1/volumes"): "admin",
        ("delete", "/v1/volumes/{name}"): "admin",
        ("post", "/v1/volumes/{name}/clone"): "restore",
        ("get", "/v1/jobs/{job_id}"): "read",
        ("post", "/v1/tokens"): "admin",
        ("get", "/v1/tokens"): "admin",
        ("delete", "/v1/tokens/{name}"): "admin",
    }
    assert {key: found.get(key) for key in expected} == expected
    for (method, path), scope in found.items():
        op = document["paths"][path][method]
        assert op["security"] == [{"HTTPBearer": [scope]}], path
        assert f"`{scope}` scope" in op["description"], path
        assert {"401", "403"} <= set(op["responses"]), path


# --- /metrics, the insecure opt-out --------------------------------------------------------


def test_metrics_are_open_by_default_and_need_read_when_required(tmp_path: Path) -> None:
    world = fake_world(tmp_path, env={"HOLDFAST_METRICS_TOKEN_REQUIRED": "true"})
    client = api_client(create_app(world.services, JobRunner(world.services, 1)), token=None)
    assert_error(client.get("/metrics"), 401, "Unauthorised")
    backup_only = make_token(client, "b", "backup")
    assert "'read' scope" in assert_error(
        client.get("/metrics", headers=bearer(backup_only)), 403, "Forbidden")["error"]
    reader = make_token(client, "r", "read")
    assert client.get("/metrics", headers=bearer(reader)).status_code == 200
    assert client.get("/healthz").status_code == 200


def test_insecure_no_auth_treats_every_request_as_admin(tmp_path: Path) -> None:
    world = fake_world(tmp_path, env={"HOLDFAST_API_INSECURE_NO_AUTH": "true",
                                      "HOLDFAST_API_TOKEN": ""})
    client = api_client(create_app(world.services, JobRunner(world.services, 1)), token=None)
    assert client.get("/v1/snapshots").status_code == 200
    assert client.post("/v1/tokens", json={"name": "ci", "scopes": ["read"]}).status_code == 201
    assert client.get("/v1/tokens").json()[0]["created_by"] == "token:insecure-no-auth"


def test_a_route_that_names_no_scope_needs_admin(world: FakeWorld, jobs: JobRunner) -> None:
    """Deny by default: a /v1 route added without ``requires`` is admin-only, and the
    document says so."""
    from fastapi import APIRouter

    from service.entrypoints.api.deps import AUTHORISED

    extra = APIRouter(prefix="/v1/extra", dependencies=AUTHORISED)

    @extra.get("")
    def unscoped() -> dict[str, str]:
        return {"ok": "yes"}

    app = create_app(world.services, jobs)
    app.include_router(extra)
    client = api_client(app, token=None)
    reader = make_token(client, "r", "read", "backup", "restore")
    admin = make_token(client, "a", "admin")
    refused = client.get("/v1/extra", headers=bearer(reader))
    assert "needs the 'admin' scope" in assert_error(refused, 403, "Forbidden")["error"]
    assert client.get("/v1/extra", headers=bearer(admin)).json() == {"ok": "yes"}
    app.openapi_schema = None
    assert app.openapi()["paths"]["/v1/extra"]["get"]["x-holdfast-scope"] == "admin"


def test_the_guard_before_the_body_takes_catalog_tokens(anonymous: TestClient) -> None:
    """A catalog token passes the check made before the body is read (so an oversized
    body is then 413); an unknown one is 401 there."""
    secret = make_token(anonymous, "ci", "admin")
    big = b"[" + b"1," * 200_000 + b"1]"
    passed = anonymous.post("/v1/volumes", headers={**bearer(secret),
                                                    "Content-Type": "application/json"},
                            content=big)
    assert_error(passed, 413, "BodyTooLarge")
    refused = anonymous.post("/v1/volumes", headers={**bearer(secret + "x"),
                                                     "Content-Type": "application/json"},
                             content=big)
    assert_error(refused, 401, "Unauthorised")
