"""The OpenAPI document's links (service/entrypoints/api/openapi_links.py): each
one names an operation of the document by ``operationRef`` and fills one of its
path parameters; the flows a client (and the stateful schemathesis run) follows
are there."""

from __future__ import annotations

from typing import Any

import pytest

from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld


@pytest.fixture
def document(world: FakeWorld, jobs: JobRunner) -> dict[str, Any]:
    return create_app(world.services, jobs).openapi()


def _resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/paths/"), ref
    escaped, method = ref[len("#/paths/"):].rsplit("/", 1)
    path = escaped.replace("~1", "/").replace("~0", "~")
    return dict(document["paths"][path][method])


def _links(document: dict[str, Any]) -> list[tuple[str, str, str, str, dict[str, Any]]]:
    found = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                for name, link in response.get("links", {}).items():
                    found.append((path, method, status, name, link))
    return found


def test_every_link_targets_an_operation_and_one_of_its_path_parameters(
        document: dict[str, Any]) -> None:
    links = _links(document)
    assert len(links) >= 40
    for path, method, status, name, link in links:
        target = _resolve(document, link["operationRef"])
        params = {p["name"] for p in target.get("parameters", []) if p["in"] == "path"}
        assert set(link["parameters"]) <= params, (path, method, status, name)
        for expression in link["parameters"].values():
            assert expression.startswith(("$response.body#/", "$request.body#/")), expression


def _targets(document: dict[str, Any], path: str, method: str, status: str) -> set[str]:
    links = document["paths"][path][method]["responses"][status].get("links", {})
    return {f"{link['operationRef']} {next(iter(link['parameters'].values()))}"
            for link in links.values()}


def test_the_flows_a_script_follows_are_linked(document: dict[str, Any]) -> None:
    backup = _targets(document, "/v1/instances/{name}/backups", "post", "202")
    assert "#/paths/~1v1~1jobs~1{job_id}/get $response.body#/id" in backup
    assert "#/paths/~1v1~1jobs~1{job_id}~1events/get $response.body#/id" in backup
    assert "#/paths/~1v1~1snapshots~1{snapshot_id}~1pin/put $response.body#/snapshot_id" \
        in backup
    restored = _targets(document, "/v1/snapshots/{snapshot_id}/restore", "post", "200")
    assert "#/paths/~1v1~1copies~1{name}/patch $response.body#/result/container" in restored
    token = _targets(document, "/v1/tokens", "post", "201")
    assert token == {"#/paths/~1v1~1tokens~1{name}/delete $response.body#/name"}
    volume = _targets(document, "/v1/volumes", "post", "201")
    assert "#/paths/~1v1~1volumes~1{name}~1clone/post $response.body#/name" in volume
    assert "#/paths/~1v1~1jobs~1{job_id}/delete $response.body#/id" in _targets(
        document, "/v1/volumes/{name}/clone", "post", "202")
