"""The API against hostile requests, driven as raw ASGI calls on the fakes.

A ``receive`` that counts the body chunks it is asked for proves what was read:
a request without the token is refused before any of its body, a declared
length over the cap before any, a chunked body over the cap a few chunks past
it, and a body within the cap reaches the route whole.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request

from backup.errors import Unauthorised
from service.entrypoints.api import create_app
from service.entrypoints.api.deps import authorised
from service.entrypoints.api.limits import MAX_BODY_BYTES
from service.entrypoints.api.problems import MESSAGE_MAX
from service.tokens import bearer_secret
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import api_client

Json = dict[str, Any]
TOKEN = "open-sesame"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHUNK = 64 * 1024


@dataclass
class Exchange:
    """One ASGI request's outcome, and how many body chunks the app asked for."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunks_read: int = 0

    def json(self) -> Json:
        parsed: Json = json.loads(self.body)
        return parsed


def call(app: FastAPI, method: str, path: str, *, headers: dict[str, str] | None = None,
         chunks: Iterable[bytes] = (b"",), root_path: str = "") -> Exchange:
    """Send one request to ``app`` as a server would, body in ``chunks``; then a
    disconnect if the app asks for more."""
    out = Exchange()
    pending = list(chunks)

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        out.chunks_read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out.status = message["status"]
            out.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                           for k, v in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            out.body += message.get("body", b"")

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": root_path + path,
             "raw_path": (root_path + path).encode(), "root_path": root_path,
             "query_string": b"", "server": ("127.0.0.1", 8420), "client": ("127.0.0.1", 5000),
             "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                         for k, v in (headers or {}).items()]}
    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    return out


def huge(count: int = 1000) -> list[bytes]:
    """``count`` chunks of 64 KiB (the same bytes object: the list costs nothing)."""
    piece = b"[" + b"1," * (CHUNK // 2 - 1) + b"1"
    return [piece] * count


def assert_shape(body: Json, kind: str) -> None:
    assert set(body) == {"type", "title", "status", "detail", "error", "kind"}, body
    assert body["kind"] == kind
    assert body["type"].endswith("/" + kind) and body["detail"] == body["error"]
    assert body["error"] and "\n" not in body["error"]


@pytest.fixture
def world(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path, env={"HOLDFAST_API_TOKEN": TOKEN})


@pytest.fixture
def app(world: FakeWorld) -> FastAPI:
    return create_app(world.services, JobRunner(world.services, 1))


# --- the token before the body (item 3) ----------------------------------------------------


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_huge_body_without_the_token_is_401_and_not_read(app: FastAPI, declared: bool) -> None:
    chunks = huge()
    headers = {"Content-Type": "application/json"}
    headers |= ({"Content-Length": str(CHUNK * len(chunks))} if declared
                else {"Transfer-Encoding": "chunked"})
    out = call(app, "POST", "/v1/volumes", headers=headers, chunks=chunks)
    assert out.status == 401
    assert out.chunks_read == 0
    assert out.headers["www-authenticate"] == "Bearer"
    assert out.headers["connection"] == "close"
    assert_shape(out.json(), "Unauthorised")


def test_a_wrong_token_is_refused_before_the_body_too(app: FastAPI) -> None:
    out = call(app, "PUT", "/v1/instances/shop-db/policy",
               headers={"Authorization": "Bearer nope"}, chunks=huge(10))
    assert (out.status, out.chunks_read) == (401, 0)


def test_the_token_is_checked_under_a_root_path(app: FastAPI) -> None:
    out = call(app, "POST", "/v1/volumes", chunks=huge(10), root_path="/holdfast")
    assert (out.status, out.chunks_read) == (401, 0)


def test_open_routes_need_no_token(app: FastAPI) -> None:
    out = call(app, "GET", "/healthz")
    assert out.status == 200
    assert out.json()["status"] == "ok"


# --- the body cap (item 3) -----------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_413_unread(app: FastAPI) -> None:
    out = call(app, "POST", "/v1/volumes", chunks=huge(),
               headers={**AUTH, "Content-Length": str(MAX_BODY_BYTES + 1),
                        "Content-Type": "application/json"})
    assert (out.status, out.chunks_read) == (413, 0)
    assert_shape(out.json(), "BodyTooLarge")
    assert "262144 bytes" in out.json()["error"]


def test_a_chunked_body_is_413_as_soon_as_it_passes_the_cap(app: FastAPI) -> None:
    out = call(app, "POST", "/v1/volumes", chunks=huge(),
               headers={**AUTH, "Transfer-Encoding": "chunked",
                        "Content-Type": "application/json"})
    assert out.status == 413
    assert_shape(out.json(), "BodyTooLarge")
    # 4 chunks of 64 KiB fill the cap exactly; the 5th passes it, and nothing after is read.
    assert out.chunks_read == MAX_BODY_BYTES // CHUNK + 1


def test_a_body_over_a_smaller_configured_cap_is_413(world: FakeWorld) -> None:
    app = create_app(world.services, JobRunner(world.services, 1), max_body=1024)
    body = json.dumps({"name": "data-1", "labels": {"note": "x" * 2000}}).encode()
    out = call(app, "POST", "/v1/volumes", headers={**AUTH, "Content-Type": "application/json"},
               chunks=[body])
    assert out.status == 413
    assert "data-1" not in world.docker.volumes


def test_a_normal_body_in_chunks_reaches_the_route(world: FakeWorld, app: FastAPI) -> None:
    body = json.dumps({"name": "data-1", "labels": {"team": "shop"}}).encode()
    out = call(app, "POST", "/v1/volumes", headers={**AUTH, "Content-Type": "application/json"},
               chunks=[body[:5], body[5:20], body[20:]])
    assert out.status == 201, out.body
    assert out.json()["name"] == "data-1"
    assert world.docker.volumes["data-1"].labels == {"team": "shop"}


def test_a_body_exactly_at_the_cap_is_taken(world: FakeWorld, app: FastAPI) -> None:
    body = json.dumps({"name": "data-2"}).encode()
    padded = body + b" " * (MAX_BODY_BYTES - len(body))
    out = call(app, "POST", "/v1/volumes", chunks=[padded],
               headers={**AUTH, "Content-Type": "application/json",
                        "Content-Length": str(len(padded))})
    assert out.status == 201, out.body
    assert "data-2" in world.docker.volumes


def test_a_client_that_leaves_part_way_starts_nothing(world: FakeWorld, app: FastAPI) -> None:
    body = json.dumps({"name": "data-3"}).encode()
    pending = [body[:4]]  # more_body=False never comes: the client disconnects instead

    async def run() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if pending:
                return {"type": "http.request", "body": pending.pop(), "more_body": True}
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/v1/volumes", "root_path": "",
                 "query_string": b"", "headers": [(b"authorization", AUTH["Authorization"]
                                                   .encode())]}
        await app(scope, receive, send)  # type: ignore[arg-type]
        return sent

    assert asyncio.run(run()) == []
    assert "data-3" not in world.docker.volumes


def test_a_content_length_that_is_not_a_number_is_400(app: FastAPI) -> None:
    out = call(app, "POST", "/v1/volumes", headers={**AUTH, "Content-Length": "lots"})
    assert (out.status, out.chunks_read) == (400, 0)
    assert_shape(out.json(), "InvalidInput")


# --- a non-ASCII Authorization header (item 4) ---------------------------------------------


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


@pytest.mark.parametrize("header", ["Bearer öffne-dich".encode(), b"Bearer \xff\xfe",
                                    "Bearer open-sesamé".encode("latin-1")])
def test_a_non_ascii_authorization_header_is_401(client: TestClient, header: bytes) -> None:
    response = client.get("/v1/snapshots", headers={"Authorization": header})
    assert response.status_code == 401
    assert_shape(response.json(), "Unauthorised")


def test_a_non_ascii_token_matches_its_utf8_header(tmp_path: Path) -> None:
    world = fake_world(tmp_path, env={"HOLDFAST_API_TOKEN": "sésame"})
    client = api_client(create_app(world.services, JobRunner(world.services, 1)))
    ok = client.get("/v1/snapshots", headers={"Authorization": "Bearer sésame".encode()})
    assert (ok.status_code, ok.json()) == (200, [])
    wrong = client.get("/v1/snapshots", headers={"Authorization": "Bearer sesame"})
    assert wrong.status_code == 401


def test_the_routes_dependency_refuses_a_non_ascii_header_too(world: FakeWorld) -> None:
    """The dependency (the guard of a route mounted without the middleware) uses the
    same bytes comparison: a non-ASCII header is Unauthorised, not a TypeError."""
    request = Request({"type": "http", "headers": [(b"authorization", b"Bearer \xc3\xb6")]})
    with pytest.raises(Unauthorised):
        authorised(request, world.services, None)
    good = Request({"type": "http", "headers": [(b"authorization", f"Bearer {TOKEN}".encode())]})
    authorised(good, world.services, None)


@pytest.mark.parametrize(("header", "secret"), [
    (None, None),
    (b"anything", None),
    (b"Bearer", None),
    (b"Bearer ", None),
    (b"Basic dXNlcjpwdw==", None),
    (b"Bearer t", b"t"),
    (b"bearer t", b"t"),  # the scheme is case-insensitive (RFC 7235)
    (b"Bearer t ", b"t"),
    ("Bearer ü".encode(), "ü".encode()),
    (b"Bearer \xfc", b"\xfc"),
])
def test_bearer_secret(header: bytes | None, secret: bytes | None) -> None:
    assert bearer_secret(header) == secret


# --- one error shape for every failure (item 11) -------------------------------------------


def test_an_unknown_path_is_404_in_the_error_shape(client: TestClient) -> None:
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert_shape(response.json(), "NotFound")
    assert "/nowhere" in response.json()["error"]


def test_a_wrong_method_is_405_in_the_error_shape(client: TestClient) -> None:
    response = client.put("/healthz")
    assert response.status_code == 405
    assert_shape(response.json(), "MethodNotAllowed")
    assert "GET" in response.json()["error"]
    assert response.headers["allow"] == "GET"


def test_a_body_that_does_not_fit_is_400_naming_the_field(client: TestClient) -> None:
    missing = client.post("/v1/volumes", headers=AUTH, json={"labels": {}})
    assert missing.status_code == 400
    assert_shape(missing.json(), "InvalidInput")
    assert missing.json()["error"].startswith("body.name: Field required")
    wrong = client.post("/v1/volumes", headers=AUTH, json={"name": 5})
    assert wrong.status_code == 400
    assert "body.name" in wrong.json()["error"] and "(got 5)" in wrong.json()["error"]


def test_json_that_does_not_parse_is_400(client: TestClient) -> None:
    response = client.post("/v1/volumes", content=b'{"name": ',
                           headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert_shape(response.json(), "InvalidInput")
    assert "not valid JSON" in response.json()["error"]


def test_a_bad_query_value_is_400(client: TestClient) -> None:
    response = client.get("/v1/volumes?sizes=perhaps", headers=AUTH)
    assert response.status_code == 400
    assert_shape(response.json(), "InvalidInput")
    assert "query.sizes" in response.json()["error"]


def test_validation_errors_quote_only_an_excerpt_of_the_input(client: TestClient) -> None:
    key, value = "k" * 50_000, "v" * 50_000
    response = client.post("/v1/volumes", headers=AUTH,
                           json={"name": "data-1", "labels": {key: 5}, "x": value})
    assert response.status_code == 400
    error = response.json()["error"]
    assert len(error) <= MESSAGE_MAX
    assert "k" * 100 not in error


def test_a_use_case_error_never_echoes_a_long_input_whole(client: TestClient) -> None:
    """The use case quotes the name it was given; the API cuts the line, keeping
    its start and the advice at its end."""
    name = "n" * 5_000
    response = client.put(f"/v1/instances/{name}/policy", headers=AUTH,
                          json={"schedule": "@daily"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert len(error) <= MESSAGE_MAX
    assert "n" * 1000 not in error
    assert error.startswith("no instance named 'nnn")
    assert error.endswith("'holdfast instances' lists them")


def test_an_unexpected_failure_is_500_in_the_error_shape(
        client: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.usecases import job_queries

    def broken(*_: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(job_queries, "get_job", broken)
    response = TestClient(app, raise_server_exceptions=False).get("/v1/jobs/job-1",
                                                                 headers=AUTH)
    assert response.status_code == 500
    assert_shape(response.json(), "InternalError")
    assert "secret internals" not in response.text


# --- /docs offline, and the version --------------------------------------------------------

_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_pages_load_every_asset_from_the_daemon(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200
    html = response.text
    assert re.search(r"https?://", html) is None, "the page would need a network"
    assets = [a or b for a, b in _REFERENCE.findall(html)]
    assert any(asset.endswith(".js") for asset in assets), assets
    for asset in assets:
        fetched = client.get(asset)
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 100, asset


def test_the_openapi_document_and_healthz_name_the_installed_version(client: TestClient) -> None:
    version = metadata.version("holdfast")
    assert client.get("/openapi.json").json()["info"]["version"] == version
    assert client.get("/healthz").json()["version"] == version
