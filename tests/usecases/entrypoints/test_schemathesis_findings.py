"""What the schemathesis run against the live daemon found, each case reproduced
in process on the fakes with the same checks (tests/harness/contract_checks.py):
the request that failed, sent again, now keeps the document's contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis
import pytest
from fastapi import FastAPI

from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import AUTH, api_client
from tests.harness.contract_checks import check_call
from tests.usecases.entrypoints.helpers import add_db, wait_until


@pytest.fixture
def app(world: FakeWorld, jobs: JobRunner) -> FastAPI:
    add_db(world)
    return create_app(world.services, jobs)


def _ended_backup(app: FastAPI) -> str:
    client = api_client(app)
    job_id = str(client.post("/v1/instances/shop-db/backups", json={}).json()["id"])
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["finished_at"] is not None)
    return job_id


def test_the_event_stream_of_a_job_matches_its_documented_event_schema(app: FastAPI) -> None:
    # Found: each event ({"event": "end", "data": "<job JSON>"}) was checked against
    # the stream's schema {"type": "string"}, which OpenAPI 3.1 reads as one event's.
    job_id = _ended_backup(app)
    response = check_call(app, "GET", "/v1/jobs/{job_id}/events",
                          path_parameters={"job_id": job_id})
    assert response.status_code == 200
    assert b"event: end" in response.content


@pytest.mark.parametrize(("path", "methods"), [
    ("/v1/jobs/job-1", {"GET", "DELETE"}),
    ("/v1/snapshots/20261203T064124Z-d15464/pin", {"PUT", "DELETE"}),
    ("/v1/copies/ci-db", {"GET", "PATCH"}),
    ("/v1/tokens", {"GET", "POST"}),
    ("/v1/instances/shop-db/policy", {"PUT", "DELETE"}),
])
def test_a_wrong_method_is_405_naming_every_method_of_the_path(
        app: FastAPI, path: str, methods: set[str]) -> None:
    # Found (with schemathesis' allow_header_conformance): FastAPI makes one route
    # per method, and Starlette's 405 named only the first route's methods.
    response = api_client(app).options(path)
    assert response.status_code == 405, response.text
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == methods
    for method in methods:
        assert method in response.json()["detail"]


def _no_expiry(case: Any) -> Any:
    if isinstance(case.body, dict):
        case.body["expires"] = None
    return case


@pytest.mark.parametrize(("method", "path", "fixed", "adjust"), [
    # a token's name, as the body's pattern documents it (expires left out: a range)
    ("POST", "/v1/tokens", {}, _no_expiry),
    # Idempotency-Key as the header's pattern documents it (no body: tags have rules of their own)
    ("POST", "/v1/instances/{name}/backups",
     {"path_parameters": {"name": "shop-db"}, "body": {}, "query": {}}, None),
    # a container name as the path parameter's pattern documents it
    ("POST", "/v1/containers/{name}/undo-replace", {}, None),
    # volume names, in the path and in bodies
    ("GET", "/v1/volumes/{name}", {}, None),
    ("DELETE", "/v1/volumes/{name}", {}, None),
    ("POST", "/v1/volumes", {}, None),
    ("POST", "/v1/volumes/{name}/clone", {"path_parameters": {"name": "shop-db-vol"}}, None),
])
def test_values_the_document_calls_valid_are_not_refused_as_bad_input(
        app: FastAPI, method: str, path: str, fixed: dict[str, Any],
        adjust: Callable[[Any], Any] | None) -> None:
    # Found (schemathesis' positive_data_acceptance): token names, Idempotency-Key
    # values, container and volume names that fit the document (a bare string) were 400.
    import schemathesis
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]
    strategy = operation.as_strategy(**fixed)
    if adjust is not None:
        strategy = strategy.map(adjust)

    @hypothesis.given(strategy)
    @hypothesis.settings(max_examples=40, derandomize=True, database=None, deadline=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(checks=[positive_data_acceptance], headers=AUTH)

    run()
