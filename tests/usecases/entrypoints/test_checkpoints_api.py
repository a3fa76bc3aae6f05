"""Checkpoints through the HTTP API on the fakes: a backup body with tags and a
pin, its 400s, ``GET /v1/snapshots?tag=``, ``PUT/DELETE /v1/snapshots/{id}/pin``,
restore by tag through ``POST /v1/instances/{name}/restore``, and delete of a
pinned snapshot (409)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backup.pipeline import manifest_key
from backup.types import Manifest
from service.entrypoints.api import create_app
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld
from tests.usecases.entrypoints.helpers import add_db
from tests.usecases.support import objects

Json = dict[str, Any]


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    # The world's bootstrap token, where it has one: these tests are not about auth.
    token = world.services.settings.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else None
    return TestClient(create_app(world.services, jobs), headers=headers)


def _finished(client: TestClient, job: Json, timeout: float = 10.0) -> Json:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current: Json = client.get(f"/v1/jobs/{job['id']}").json()
        if current["status"] in ("succeeded", "failed", "cancelled"):
            return current
        time.sleep(0.02)
    raise AssertionError(f"job {job['id']} still {current['status']} after {timeout}s")


def _backup(client: TestClient, body: Json | None = None, name: str = "shop-db") -> Json:
    answer = client.post(f"/v1/instances/{name}/backups", json=body)
    assert answer.status_code == 202, answer.text
    job = _finished(client, answer.json())
    assert job["status"] == "succeeded", job
    result: Json = job["result"]
    return result


def _manifest(world: FakeWorld, snapshot: Json) -> Manifest:
    return Manifest.from_bytes(objects(world)[manifest_key(snapshot["instance"],
                                                           snapshot["id"])])


@pytest.fixture
def shop(world: FakeWorld) -> FakeWorld:
    add_db(world, "shop-db")
    return world


def test_a_backup_with_tags_and_pin_records_both(shop: FakeWorld, client: TestClient) -> None:
    made = _backup(client, {"tags": {"release": "v1.4.2"}, "pin": True})
    assert made["tags"] == {"release": "v1.4.2"} and made["pinned"] is True
    got = client.get(f"/v1/snapshots/{made['id']}").json()
    assert got["tags"] == {"release": "v1.4.2"} and got["pinned"] is True
    manifest = _manifest(shop, made)
    assert dict(manifest.tags) == {"release": "v1.4.2"} and manifest.pinned


def test_a_backup_without_a_body_still_works_and_has_no_tags(shop: FakeWorld,
                                                            client: TestClient) -> None:
    made = _backup(client)
    assert made["tags"] == {} and made["pinned"] is False


@pytest.mark.parametrize(("body", "says"), [
    ({"tags": {"bad key": "x"}}, "tag key"),
    ({"tags": {"k": "a\nb"}}, "printable"),
    ({"tags": {f"k{i}": "v" for i in range(33)}}, "at most 32"),
    ({"tags": {"k": 1}}, "tags"),
    ({"tags": ["release"]}, "tags"),
    ({"pin": "yes"}, "pin"),
])
def test_bad_backup_bodies_are_400_with_one_line_and_start_nothing(
        shop: FakeWorld, client: TestClient, body: Json, says: str) -> None:
    answer = client.post("/v1/instances/shop-db/backups", json=body)
    assert answer.status_code == 400, answer.text
    assert says in answer.json()["error"] and "\n" not in answer.json()["error"]
    assert shop.catalog.list_snapshots() == [] and shop.catalog.list_jobs() == []


def test_snapshots_filter_by_tag(shop: FakeWorld, client: TestClient) -> None:
    add_db(shop, "blog-db")
    v1 = _backup(client, {"tags": {"release": "v1.4.2", "env": "prod"}})
    v2 = _backup(client, {"tags": {"release": "v1.4.3"}})
    blog = _backup(client, {"tags": {"release": "v1.4.2"}}, name="blog-db")

    def ids(query: str) -> list[str]:
        answer = client.get(f"/v1/snapshots{query}")
        assert answer.status_code == 200, answer.text
        return [s["id"] for s in answer.json()]

    assert ids("?tag=release:v1.4.2") == [blog["id"], v1["id"]]
    assert ids("?instance=shop-db&tag=release:v1.4.2") == [v1["id"]]
    assert ids("?tag=release:v1.4.2&tag=env:prod") == [v1["id"]]
    assert ids("?tag=release:v1.4.3") == [v2["id"]]
    assert ids("?tag=release:v9") == []
    assert len(ids("")) == 3


def test_a_tag_filter_splits_at_the_first_colon(shop: FakeWorld, client: TestClient) -> None:
    made = _backup(client, {"tags": {"url": "http://x:8080/a"}})
    answer = client.get("/v1/snapshots", params={"tag": "url:http://x:8080/a"})
    assert [s["id"] for s in answer.json()] == [made["id"]]


@pytest.mark.parametrize("tag", ["release", "bad key:x", ":v"])
def test_a_malformed_tag_filter_is_400(client: TestClient, tag: str) -> None:
    answer = client.get("/v1/snapshots", params={"tag": tag})
    assert answer.status_code == 400, answer.text
    assert "tag" in answer.json()["error"]


def test_pin_and_unpin_answer_the_snapshot_and_rewrite_the_manifest(
        shop: FakeWorld, client: TestClient) -> None:
    made = _backup(client)
    answer = client.put(f"/v1/snapshots/{made['id'][:12]}/pin")  # a prefix will do
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == made["id"] and answer.json()["pinned"] is True
    assert _manifest(shop, made).pinned
    assert client.get(f"/v1/snapshots/{made['id']}").json()["pinned"] is True
    answer = client.delete(f"/v1/snapshots/{made['id']}/pin")
    assert answer.status_code == 200 and answer.json()["pinned"] is False
    assert not _manifest(shop, made).pinned


def test_pin_of_an_unknown_snapshot_is_404(client: TestClient) -> None:
    assert client.put("/v1/snapshots/20990101T000000Z-abcdef/pin").status_code == 404
    assert client.delete("/v1/snapshots/20990101T000000Z-abcdef/pin").status_code == 404
    assert client.put("/v1/snapshots/not%20an%20id/pin").status_code == 400


def test_a_pinned_snapshot_cannot_be_deleted(shop: FakeWorld, client: TestClient) -> None:
    made = _backup(client, {"pin": True})
    answer = client.delete(f"/v1/snapshots/{made['id']}")
    assert answer.status_code == 409
    assert "unpin it first" in answer.json()["error"]
    assert client.get(f"/v1/snapshots/{made['id']}").status_code == 200
    client.delete(f"/v1/snapshots/{made['id']}/pin")
    assert client.delete(f"/v1/snapshots/{made['id']}").status_code == 204


def test_restore_by_tag_uses_the_newest_complete_snapshot_with_it(
        shop: FakeWorld, client: TestClient) -> None:
    tagged = _backup(client, {"tags": {"release": "v1.4.2"}})
    _backup(client)  # newer, untagged: --latest would take it
    answer = client.post("/v1/instances/shop-db/restore",
                         json={"name": "copy", "tag": "release:v1.4.2"})
    assert answer.status_code == 202, answer.text
    job = _finished(client, answer.json())
    assert job["status"] == "succeeded", job
    assert job["result"]["snapshot_id"] == tagged["id"]
    assert shop.docker.data_of("copy") == shop.docker.data_of("shop-db")


def test_restore_by_a_tag_nothing_carries_is_404_naming_it(shop: FakeWorld,
                                                          client: TestClient) -> None:
    _backup(client, {"tags": {"release": "v1"}})
    answer = client.post("/v1/instances/shop-db/restore",
                         json={"name": "copy", "tag": "release:v9"})
    assert answer.status_code == 404
    assert "release=v9" in answer.json()["error"]
    assert "copy" not in {c.name for c in shop.docker.containers.values()}


def test_restore_with_a_malformed_tag_is_400(shop: FakeWorld, client: TestClient) -> None:
    _backup(client)
    answer = client.post("/v1/instances/shop-db/restore", json={"name": "copy", "tag": "v1"})
    assert answer.status_code == 400 and "KEY:VALUE" in answer.json()["error"]


def test_the_openapi_document_has_the_checkpoint_fields_and_routes(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert {"put", "delete"} <= set(doc["paths"]["/v1/snapshots/{snapshot_id}/pin"])
    params = doc["paths"]["/v1/snapshots"]["get"]["parameters"]
    assert "tag" in {p["name"] for p in params}
    schemas = doc["components"]["schemas"]
    assert {"tags", "pin"} <= set(schemas["BackupBody"]["properties"])
    assert "tag" in schemas["InstanceRestoreBody"]["properties"]
