"""The OpenAPI document lists, for every operation, each failure status its route can
answer, all with the one Problem schema as application/problem+json, and never FastAPI's
default 422."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.services import fake_world

V1 = {401, 403, 500, 503}
"""Every /v1 operation: the token, its scope, an internal error, the catalog/Docker/storage
down."""
BODY = {400, 413}
"""An operation taking a body: one that does not fit, one over the cap."""

EXPECTED: dict[tuple[str, str], set[int]] = {
    ("get", "/healthz"): {500},
    ("get", "/readyz"): {500, 503},
    ("get", "/metrics"): {401, 403, 500},  # 401/403 with HOLDFAST_METRICS_TOKEN_REQUIRED
    ("get", "/v1/instances"): V1,
    ("delete", "/v1/instances/{name}"): V1 | {404, 409},
    ("put", "/v1/instances/{name}/policy"): V1 | BODY | {404},
    ("delete", "/v1/instances/{name}/policy"): V1 | {404},
    ("post", "/v1/instances/{name}/prune"): V1 | {400, 404},
    ("post", "/v1/instances/{name}/backups"): V1 | BODY | {404, 409},
    ("post", "/v1/instances/{name}/restore"): V1 | BODY | {404, 409},
    ("get", "/v1/snapshots"): V1 | {400},
    ("get", "/v1/snapshots/{snapshot_id}"): V1 | {400, 404},
    ("delete", "/v1/snapshots/{snapshot_id}"): V1 | {400, 404, 409},
    ("post", "/v1/snapshots/{snapshot_id}/restore"): V1 | BODY | {404, 409},
    ("put", "/v1/snapshots/{snapshot_id}/pin"): V1 | {400, 404, 409},
    ("delete", "/v1/snapshots/{snapshot_id}/pin"): V1 | {400, 404},
    ("post", "/v1/snapshots/{snapshot_id}/verify"): V1 | {400, 404, 409},
    ("post", "/v1/snapshots/{snapshot_id}/verify-restore"): V1 | {400, 404, 409},
    ("get", "/v1/volumes"): V1 | {400, 409},
    ("post", "/v1/volumes"): V1 | BODY | {409},
    ("get", "/v1/volumes/{name}"): V1 | {400, 404},
    ("delete", "/v1/volumes/{name}"): V1 | {400, 404, 409},
    ("post", "/v1/volumes/{name}/clone"): V1 | BODY | {404, 409},
    ("get", "/v1/warm"): V1 | {400},
    ("get", "/v1/hosts"): V1,
    ("post", "/v1/instances/{name}/warm"): V1 | BODY | {404, 409},
    ("delete", "/v1/instances/{name}/warm"): V1 | {400, 409},
    ("get", "/v1/targets/check"): V1,
    ("post", "/v1/targets/{name}/verify"): V1 | {400, 404, 409},
    ("get", "/v1/jobs/{job_id}"): V1 | {404},
    ("delete", "/v1/jobs/{job_id}"): V1 | {404, 409},
    ("get", "/v1/jobs"): V1 | {400},
    ("get", "/v1/jobs/{job_id}/events"): V1 | {404},
    ("get", "/v1/copies"): V1,
    ("get", "/v1/copies/{name}"): V1 | {404},
    ("patch", "/v1/copies/{name}"): V1 | BODY | {404},
    ("post", "/v1/containers/{name}/undo-replace"): V1 | {400, 404, 409},
    ("get", "/v1/tokens"): V1,
    ("post", "/v1/tokens"): V1 | BODY | {409},
    ("delete", "/v1/tokens/{name}"): V1 | {404},
    ("post", "/v1/prune"): V1 | {400},
    ("get", "/v1/notifications"): V1 | {400},
    ("get", "/v1/notifications/channels"): V1,
    ("post", "/v1/notifications/test"): V1 | BODY | {404},
    ("post", "/v1/catalog/rebuild"): V1,
}
"""What each route's use case and the app around it can answer, written out by hand."""

NOT_AN_ERROR_BODY = {("get", "/readyz", "503")}
"""/readyz's 503 is its readiness report (what fails), not an error."""


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    world = fake_world(Path(tmp_path_factory.mktemp("openapi")))
    runner = JobRunner(world.services, 1)
    try:
        return create_app(world.services, runner).openapi()
    finally:
        runner.shutdown(grace=5)


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): op for path, item in document["paths"].items()
            for method, op in item.items()}


def test_every_operation_is_in_the_expected_table(document: dict[str, Any]) -> None:
    found = set(operations(document))
    assert found - set(EXPECTED) == set(), "a new route: add its statuses to EXPECTED"
    assert set(EXPECTED) - found == set()


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda key: f"{key[0]} {key[1]}")
def test_each_operation_lists_its_failure_statuses(document: dict[str, Any],
                                                   key: tuple[str, str]) -> None:
    responses = operations(document)[key]["responses"]
    failures = {int(status) for status in responses if int(status) >= 400}
    assert failures == EXPECTED[key]
    assert "422" not in responses


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda key: f"{key[0]} {key[1]}")
def test_each_failure_has_the_error_schema(document: dict[str, Any],
                                           key: tuple[str, str]) -> None:
    for status, response in operations(document)[key]["responses"].items():
        if int(status) < 400 or (*key, status) in NOT_AN_ERROR_BODY:
            continue
        assert set(response["content"]) == {"application/problem+json"}, (key, status)
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}, (key, status)
        assert response["description"]
        if status == "401":
            assert response["headers"]["WWW-Authenticate"]["schema"]["enum"] == ["Bearer"]


def test_the_error_schema_is_the_one_shape_and_the_422_schemas_are_gone(
        document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail", "error", "kind"}
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "error", "kind",
                                          "running"}
    assert "Error" not in schemas
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert "422" not in str(document["paths"])


def test_v1_operations_declare_the_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    for (_, path), op in operations(document).items():
        assert ("security" in op) == path.startswith("/v1/"), path
