"""What the schemathesis run against the live daemon found, each case reproduced
in process on the fakes with the same checks (tests/harness/contract_checks.py):
the request that failed, sent again, now keeps the document's contract."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
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
