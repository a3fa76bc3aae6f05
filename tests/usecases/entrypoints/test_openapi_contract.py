"""The OpenAPI document as a contract, on the fakes.

- No schema anywhere in it is untyped: each has a ``type`` or a ``$ref`` (or is a
  union of typed ones), and an object is either described field by field or a
  documented map of typed values (tags, labels: ``additionalProperties: {type: string}``).
- Every operation has a typed success body (but 204s) with an example, every
  request body has one, and every ``/v1`` operation keeps the bearer scheme and its scope.
- Every error kind of the error table (and the app's own: unknown path, wrong method,
  bad body, internal error) answers an RFC 9457 problem: ``application/problem+json``,
  ``type`` the kind's URI, ``title``, ``status``, ``detail``, ``kind`` the class name,
  ``error`` kept; a 401 carries ``WWW-Authenticate: Bearer``.
- The response models never drop or rename a field: each body the API gives in a
  flow through every route equals the use case's ``to_json()``, and goes through the
  route's documented model unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from backup import errors
from backup.types import utcnow
from service.entrypoints.api import create_app
from service.entrypoints.api.problems import (
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_PREFIX,
    install_error_handlers,
    problem_title,
)
from service.entrypoints.api.routes import ROUTERS
from service.entrypoints.error_table import ERROR_TABLE, http_status_for
from service.runs import AlreadyRunning
from service.settings import notify_channels
from service.usecases import (
    copies,
    hosts,
    instances,
    integrity,
    notifications,
    snapshots,
    tokens,
    verification,
    volumes,
    warm_copies,
)
from service.usecases import job_queries as job_usecases
from service.usecases.jobs import JobRunner
from tests.fakes.docker import DUMP
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import api_client
from tests.usecases.entrypoints.helpers import add_db, wait_until
from tests.usecases.entrypoints.test_api import finished

Json = dict[str, Any]
COMPOSITES = ("anyOf", "oneOf", "allOf")
SCOPES = {"read", "backup", "restore", "admin"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Json]:
    world = fake_world(Path(tmp_path_factory.mktemp("contract")))
    runner = JobRunner(world.services, 1)
    try:
        yield create_app(world.services, runner).openapi()
    finally:
        runner.shutdown(grace=5)


def operations(document: Json) -> Iterator[tuple[str, str, Json]]:
    for path, item in document["paths"].items():
        for method, op in item.items():
            yield method, path, op


# --- no untyped schema -------------------------------------------------------------------


def untyped(schema: Any, where: str) -> Iterator[str]:
    """Where, in ``schema`` and every schema inside it, one says nothing of its type."""
    if not isinstance(schema, dict):
        yield f"{where}: not a schema ({schema!r})"
        return
    if not ({"type", "$ref"} & set(schema)) and not any(schema.get(c) for c in COMPOSITES):
        yield f"{where}: no type, $ref or union: {schema}"
    extra = schema.get("additionalProperties")
    if extra is not None and not (isinstance(extra, dict) and extra):
        yield f"{where}: additionalProperties {extra!r} (free-form)"
    if schema.get("type") == "object" and not schema.get("properties") and extra is None:
        yield f"{where}: an object without properties or typed values"
    if schema.get("type") == "array":
        yield from untyped(schema.get("items"), f"{where}[]")
    if isinstance(extra, dict):
        yield from untyped(extra, f"{where}{{*}}")
    for name, prop in schema.get("properties", {}).items():
        yield from untyped(prop, f"{where}.{name}")
    for composite in COMPOSITES:
        for index, member in enumerate(schema.get(composite, ())):
            yield from untyped(member, f"{where}/{composite}[{index}]")


def every_schema(document: Json) -> Iterator[tuple[str, Any]]:
    for name, schema in document["components"]["schemas"].items():
        yield f"components.{name}", schema
    for method, path, op in operations(document):
        for param in op.get("parameters", ()):
            yield f"{method} {path} ?{param['name']}", param.get("schema")
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            yield f"{method} {path} body {media}", content.get("schema")
        for status, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                yield f"{method} {path} {status} {media}", content.get("schema")
            for header, spec in response.get("headers", {}).items():
                yield f"{method} {path} {status} header {header}", spec.get("schema")


def test_no_schema_in_the_document_is_untyped(document: Json) -> None:
    problems = [line for where, schema in every_schema(document)
                for line in untyped(schema, where)]
    assert problems == []


def test_the_walk_finds_a_free_form_object() -> None:
    """The walk above can fail: what a route returning ``dict[str, Any]`` documents."""
    loose = {"type": "array", "items": {"type": "object", "additionalProperties": True}}
    assert list(untyped(loose, "x")) == ["x[]: additionalProperties True (free-form)"]
    assert list(untyped({"title": "Result"}, "y")) == ["y: no type, $ref or union: "
                                                       "{'title': 'Result'}"]


def test_free_form_maps_are_of_strings(document: Json) -> None:
    schemas = document["components"]["schemas"]
    for model, field in (("Snapshot", "tags"), ("Volume", "labels"), ("BackupBody", "tags"),
                         ("RestoreBody", "labels"), ("Ready", "checks")):
        assert schemas[model]["properties"][field]["additionalProperties"] == \
            {"type": "string"}, (model, field)


# --- success bodies, examples, security ---------------------------------------------------


def resolve(document: Json, schema: Json) -> Json:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: Json = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return resolved


def has_example(document: Json, media: Json) -> bool:
    if "example" in media or "examples" in media:
        return True
    schema = resolve(document, media["schema"])
    if "anyOf" in schema:  # an optional body: the model or null
        [schema] = [resolve(document, m) for m in schema["anyOf"] if m.get("type") != "null"]
    if schema.get("type") == "array":
        schema = resolve(document, schema["items"])
    return bool(schema.get("examples"))


def test_every_operation_has_a_typed_success_body_with_an_example(document: Json) -> None:
    for method, path, op in operations(document):
        successes = {status: response for status, response in op["responses"].items()
                     if int(status) < 400}
        assert successes, (method, path)
        for status, response in successes.items():
            if status == "204":
                assert "content" not in response, (method, path)
                continue
            assert response.get("content"), (method, path, status)
            for media_type, media in response["content"].items():
                assert has_example(document, media), (method, path, status, media_type)


def test_every_request_body_has_an_example(document: Json) -> None:
    bodies = [(method, path, op["requestBody"]) for method, path, op in operations(document)
              if "requestBody" in op]
    assert len(bodies) >= 8
    for method, path, body in bodies:
        for media in body["content"].values():
            assert has_example(document, media), (method, path)


def test_every_model_in_the_document_has_an_example(document: Json) -> None:
    schemas = document["components"]["schemas"]
    missing = [name for name, schema in schemas.items()
               if "enum" not in schema and not schema.get("examples")]
    assert missing == []


def test_examples_fit_their_own_schema(document: Json) -> None:
    """Each model's example names exactly its fields, the required ones at least."""
    for name, schema in document["components"]["schemas"].items():
        for example in schema.get("examples", ()):
            if "properties" not in schema:
                continue
            assert set(example) <= set(schema["properties"]), name
            assert set(schema.get("required", ())) <= set(example), name


def test_every_v1_operation_keeps_the_bearer_scheme_and_one_scope(document: Json) -> None:
    for method, path, op in operations(document):
        if not path.startswith("/v1/"):
            assert "security" not in op, (method, path)
            continue
        [requirement] = op["security"]
        assert list(requirement) == ["HTTPBearer"], (method, path)
        [scope] = requirement["HTTPBearer"]
        assert scope in SCOPES and op["x-holdfast-scope"] == scope, (method, path)
        assert f"`{scope}` scope" in op["description"], (method, path)


def test_operation_ids_are_the_route_names_and_unique(document: Json) -> None:
    """A generated client's functions are named by these (start_backup, list_snapshots)."""
    ids = {(method, path): op["operationId"] for method, path, op in operations(document)}
    assert len(set(ids.values())) == len(ids)
    assert ids[("post", "/v1/instances/{name}/backups")] == "start_backup"
    assert ids[("get", "/v1/snapshots")] == "list_snapshots"
    assert all(op_id.isidentifier() and "_v1_" not in op_id for op_id in ids.values())


# --- problems ----------------------------------------------------------------------------


def _raising(exc: errors.HoldfastError) -> TestClient:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def _instance(kind: type[errors.HoldfastError], message: str) -> errors.HoldfastError:
    if issubclass(kind, AlreadyRunning):
        return kind(message, "job_0b6c2f8e4d1a")
    if issubclass(kind, errors.Forbidden):
        return kind(message, "restore")
    return kind(message)


def assert_problem(response: Any, status: int, kind: str, line: str | None = None) -> Json:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: Json = response.json()
    assert {"type", "title", "status", "detail", "error", "kind"} <= set(body)
    assert body["type"] == PROBLEM_TYPE_PREFIX + kind
    assert body["title"] == problem_title(kind) and body["title"]
    assert body["status"] == status and body["kind"] == kind
    assert body["detail"] == body["error"] and "\n" not in body["detail"]
    if line is not None:
        assert body["detail"] == line
    return body


@pytest.mark.parametrize("kind", [kind for kind, _ in ERROR_TABLE],
                         ids=lambda kind: kind.__name__)
def test_each_error_kind_is_a_problem(kind: type[errors.HoldfastError]) -> None:
    exc = _instance(kind, "it went wrong;\n do this instead")
    response = _raising(exc).get("/boom")
    body = assert_problem(response, http_status_for(exc), kind.__name__,
                          "it went wrong; do this instead")
    if issubclass(kind, errors.Unauthorised):
        assert response.headers["www-authenticate"] == "Bearer"
    if issubclass(kind, AlreadyRunning):
        assert body["running"] == "job_0b6c2f8e4d1a"
    else:
        assert "running" not in body


def test_problem_types_are_one_per_kind() -> None:
    kinds = {kind.__name__ for kind, _ in ERROR_TABLE}
    bodies = [_raising(_instance(kind, "x")).get("/boom").json() for kind, _ in ERROR_TABLE]
    assert len({body["type"] for body in bodies}) == len(kinds)
    assert {body["type"].rsplit("/", 1)[-1] for body in bodies} == kinds


def test_titles_are_the_kind_in_words() -> None:
    assert problem_title("InstanceNotFound") == "Instance not found"
    assert problem_title("IdempotencyKeyReused") == "Idempotency key reused"
    assert problem_title("HTTPError") == "HTTP error"


def test_an_error_outside_the_tree_is_a_problem_too() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    body = assert_problem(response, 500, "InternalError")
    assert "secret" not in response.text and "log" in body["detail"]


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


def test_the_app_answers_problems_for_its_own_refusals(client: TestClient) -> None:
    assert_problem(client.get("/v1/nowhere"), 404, "NotFound")
    assert_problem(client.put("/v1/instances"), 405, "MethodNotAllowed")
    assert_problem(client.post("/v1/volumes", json={"labels": {}}), 400, "InvalidInput")
    assert_problem(client.get("/v1/snapshots/abcdef123456"), 404, "SnapshotNotFound")
    refused = client.get("/v1/instances", headers={"Authorization": "Bearer nope"})
    assert_problem(refused, 401, "Unauthorised")
    assert refused.headers["www-authenticate"] == "Bearer"


# --- the models mirror to_json() ---------------------------------------------------------


class Recorder:
    """Calls the API and checks each answer against the route's documented model."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.routes = [route for router in ROUTERS for route in router.routes
                       if isinstance(route, APIRoute)]
        self.checked: set[tuple[str, str]] = set()

    def call(self, method: str, url: str, status: int | tuple[int, ...] = 200,
             **kwargs: Any) -> Any:
        response = self.client.request(method, url, **kwargs)
        expected = status if isinstance(status, tuple) else (status,)
        assert response.status_code in expected, response.text
        body = response.json()
        route = self._route(method, url)
        adapter: TypeAdapter[Any] = TypeAdapter(route.response_model)
        again = adapter.dump_python(adapter.validate_python(body), mode="json",
                                    exclude_unset=True)
        assert again == body, f"{method} {route.path}: the model changes the body"
        self.checked.add((method.lower(), route.path))
        return body

    def _route(self, method: str, url: str) -> APIRoute:
        path = url.split("?", 1)[0]
        for route in self.routes:
            if method.upper() in (route.methods or ()) and route.path_regex.match(path):
                return route
        raise AssertionError(f"no route for {method} {url}")


def test_each_body_is_the_use_case_json_and_fits_its_model(
        world: FakeWorld, client: TestClient, jobs: JobRunner) -> None:
    svc = world.services
    api = Recorder(client)
    add_db(world, "prod-db", labels={"holdfast.retention": "last=5"})
    world.docker.networks.add("ci-net")

    job = api.call("POST", "/v1/instances/prod-db/backups?wait=true&timeout=30",
                   json={"tags": {"release": "v1.4.2"}, "pin": True})
    assert job["status"] == "succeeded", job
    assert job == svc.catalog.get_job(job["id"]).to_json()  # type: ignore[union-attr]
    sid = job["snapshot_id"]
    assert api.call("GET", f"/v1/jobs/{job['id']}") == jobs_json(world, job["id"])
    assert api.call("GET", "/v1/snapshots?tag=release:v1.4.2") == [
        s.to_json() for s in snapshots.list_snapshots(svc, None, {"release": "v1.4.2"})]
    assert api.call("GET", f"/v1/snapshots/{sid}") == snapshots.get_snapshot(svc, sid).to_json()
    assert api.call("DELETE", f"/v1/snapshots/{sid}/pin")["pinned"] is False
    assert api.call("PUT", f"/v1/snapshots/{sid}/pin") == \
        snapshots.get_snapshot(svc, sid).to_json()
    verify = finished(client, api.call("POST", f"/v1/snapshots/{sid}/verify", 202))
    assert verify["result"] == integrity.verify_snapshot(svc, sid).to_json()
    assert api.call("GET", f"/v1/jobs/{verify['id']}") == jobs_json(world, verify["id"])
    target = api.call("POST", "/v1/targets/local/verify?wait=true&timeout=30")
    assert target["result"] == integrity.verify_target(svc, "local").to_json()
    checked = api.call("POST", f"/v1/snapshots/{sid}/verify-restore?wait=true&timeout=30")
    assert checked["kind"] == "verify-restore" and checked["result"]["result"] == "passed"
    assert checked["result"] == verification.verification_result(
        snapshots.get_snapshot(svc, sid))
    assert api.call("GET", f"/v1/snapshots/{sid}")["verification"]["result"] == "passed"
    warmed = finished(client, api.call("POST", "/v1/instances/prod-db/warm", 202, json={}))
    assert warmed["kind"] == "warm" and warmed["result"]["warm"]["snapshot_id"] == sid, warmed
    assert api.call("GET", f"/v1/jobs/{warmed['id']}") == jobs_json(world, warmed["id"])
    assert api.call("GET", "/v1/warm?instance=prod-db") == [
        w.to_json() for w in warm_copies.list_warm_copies(svc, "prod-db")]

    restore = api.call("POST", f"/v1/snapshots/{sid}/restore", (200, 202), json={
        "name": "ci-db", "network": "ci-net", "alias": "db", "publish": 0,
        "labels": {"ci.pipeline": "1234"}, "ttl": "4h"})
    done = finished(client, restore)
    assert done["result"]["urls"]["published"]
    assert (done["result"]["method"], done["result"]["warm"]) == \
        ("reflink", warmed["result"]["warm"]["name"])
    assert api.call("GET", f"/v1/jobs/{done['id']}") == jobs_json(world, done["id"])
    swap = api.call("POST", "/v1/instances/prod-db/restore?wait=true&timeout=30",
                    json={"replace": "prod-db"})
    assert swap["result"]["replaced"]["status"] == "stopped", swap
    assert api.call("GET", f"/v1/jobs/{swap['id']}") == jobs_json(world, swap["id"])
    api.call("POST", "/v1/containers/prod-db/undo-replace")

    now = utcnow()
    listed = api.call("GET", "/v1/copies")
    assert [{**c, "seconds_left": None} for c in listed] == [
        {**c.to_json(now), "seconds_left": None} for c in copies.list_copies(svc)]
    api.call("GET", "/v1/copies/ci-db")
    api.call("PATCH", "/v1/copies/ci-db", json={"ttl": "2h"})

    api.call("POST", "/v1/volumes", 201, json={"name": "scratch", "labels": {"team": "a"}})
    assert api.call("GET", "/v1/volumes") == [
        v.to_json() for v in volumes.list_volumes(svc)]
    assert api.call("GET", "/v1/volumes/scratch") == volumes.get_volume(svc, "scratch").to_json()
    clone = finished(client, api.call("POST", "/v1/volumes/scratch/clone", 202,
                                      json={"target": "scratch-copy"}))
    assert clone["result"]["created"] is True
    assert api.call("GET", f"/v1/jobs/{clone['id']}") == jobs_json(world, clone["id"])
    api.call("DELETE", "/v1/volumes/scratch-copy")

    assert api.call("GET", "/v1/jobs") == [
        j.to_json() for j in job_usecases.list_jobs(svc, kind=None, statuses=None, instance=None,
                                             limit=100)]
    assert api.call("GET", "/v1/instances") == [
        view.to_json() for view in instances.list_instances(svc, None, None)]
    api.call("PUT", "/v1/instances/prod-db/policy", json={"schedule": "@every 6h"})
    api.call("DELETE", "/v1/instances/prod-db/policy")
    pruned = api.call("POST", "/v1/instances/prod-db/prune?dry_run=true")
    assert set(pruned) == {"instance", "policy", "kept", "forgotten", "dry_run", "failures"}
    checks = api.call("GET", "/v1/targets/check")
    assert checks and all(set(check) == {"name", "url", "ok", "seconds", "error"}
                          for check in checks)
    paths = client.app.openapi()["paths"]  # type: ignore[attr-defined]
    if "/v1/prune" in paths:  # holdfast prune and catalog rebuild for the remote CLI
        api.call("POST", "/v1/prune?dry_run=true")
    if "/v1/catalog/rebuild" in paths:
        api.call("POST", "/v1/catalog/rebuild")

    svc.settings.notify_channels = notify_channels(
        {"HOLDFAST_NOTIFY_OPS": "https://hooks.example/T0k3nInPath"}, reserved=set())
    sent = api.call("POST", "/v1/notifications/test", json={"channel": "ops"})
    assert (sent["status"], world.senders.events("ops")) == ("delivered", ["test"])
    assert api.call("GET", "/v1/notifications?channel=ops") == [
        d.to_json() for d in notifications.list_deliveries(svc.catalog, channel="ops")]
    shown = api.call("GET", "/v1/notifications/channels")
    assert shown == notifications.describe_channels(svc.settings.notify_channels)
    assert "T0k3n" not in str(shown)

    made = api.call("POST", "/v1/tokens", 201, json={"name": "ci", "scopes": ["read"]})
    assert set(made) == {"name", "scopes", "expires_at", "token"}
    assert api.call("GET", "/v1/tokens") == [t.to_json() for t in tokens.list_tokens(svc)]
    assert api.call("GET", "/healthz")["status"] == "ok"
    hosts.register_host(svc, utcnow())
    assert api.call("GET", "/v1/hosts") == hosts.list_hosts(svc) != []
    api.call("GET", "/readyz", (200, 503))
    world.docker.stall.add(DUMP)  # the dump waits, as on a lock, until cancelled
    cancel = client.post("/v1/instances/prod-db/backups").json()
    wait_until(lambda: (cancel["id"], DUMP) in world.docker.stalled)
    api.call("DELETE", f"/v1/jobs/{cancel['id']}", (200, 202))
    wait_until(lambda: jobs_json(world, cancel["id"])["finished_at"] is not None)
    assert jobs_json(world, cancel["id"])["status"] == "cancelled"

    assert api.call("DELETE", "/v1/instances/prod-db/warm") == [warmed["result"]["warm"]]
    # The last: forgetting an instance needs its container gone.
    world.docker.remove_container(world.docker.by_name("prod-db").id)
    assert api.call("DELETE", "/v1/instances/prod-db") == {
        "instance": "prod-db", "snapshots": ANY, "objects_kept": True}

    json_routes = {(method, path) for method, path, op in operations({"paths": paths})
                   if any("application/json" in r.get("content", {})
                          for status, r in op["responses"].items() if int(status) < 400)}
    assert json_routes - api.checked == set(), "a route not exercised here"


def jobs_json(world: FakeWorld, job_id: str) -> Json:
    return job_usecases.get_job(world.services, job_id).to_json()
