"""The HTTP API through FastAPI's TestClient, on the fakes: every route of the README's table."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backup import errors
from backup.pipeline import manifest_key
from backup.types import SnapshotStatus
from service.adapters.api_client.errors import ServerUnreachable
from service.adapters.catalog.urls import CatalogUnavailable
from service.entrypoints.api import create_app
from service.entrypoints.error_table import (
    ERROR_TABLE,
    exit_code_for,
    http_status_for,
)
from service.observability.metrics import Metrics
from service.runs import AlreadyRunning
from service.usecases import backups
from service.usecases.instances import live_instances, refresh_instances
from service.usecases.jobs import JobRunner, ShuttingDown
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import api_client
from tests.usecases.entrypoints.helpers import add_db, denying_factory
from tests.usecases.support import OTHER_HOST_RUNNER, make_snapshot

Json = dict[str, Any]


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


def finished(client: TestClient, job: Json, timeout: float = 10.0) -> Json:
    """Poll ``/v1/jobs/{id}`` until the job has finished (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current: Json = client.get(f"/v1/jobs/{job['id']}").json()
        if current["status"] in ("succeeded", "failed"):
            return current
        time.sleep(0.02)
    raise AssertionError(f"job {job['id']} still {current['status']} after {timeout}s")


def assert_error(response: Any, status: int, kind: str) -> Json:
    """The response is ``status`` with the one error shape: a one-line message and its class."""
    assert response.status_code == status, response.text
    body: Json = response.json()
    assert set(body) >= {"error", "type"}
    assert body["kind"] == kind
    assert body["error"] and "\n" not in body["error"]
    return body


def snapshot_of(world: FakeWorld, name: str = "shop-db") -> str:
    """A complete snapshot of ``name`` taken through the use case; its id."""
    return backups.execute_backup(world.services, backups.prepare_backup(world.services, name)).id


# --- instances ---------------------------------------------------------------------


def test_instances_lists_a_labelled_container(world: FakeWorld, client: TestClient) -> None:
    add_db(world, labels={"holdfast.schedule": "@every 6h"})
    response = client.get("/v1/instances")
    assert response.status_code == 200
    [shop] = response.json()
    assert (shop["name"], shop["status"], shop["engine"]) == ("shop-db", "running", "fake")
    assert (shop["schedule"], shop["policy_source"]) == ("@every 6h", "labels")


def test_instances_use_discoverys_view_and_the_schedulers_next_run(
        world: FakeWorld, jobs: JobRunner) -> None:
    add_db(world, labels={"holdfast.schedule": "@every 6h"})
    known = live_instances(world.services)
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    client = api_client(create_app(world.services, jobs, known_instances=lambda: known,
                                   next_run=lambda name, schedule: when))
    world.docker.unreachable = True  # the listing must not need Docker
    [shop] = client.get("/v1/instances").json()
    assert shop["name"] == "shop-db"
    assert shop["next_run"].startswith("2030-01-02T03:04:05")


def test_instances_fall_back_to_docker_while_discovery_is_disconnected(
        world: FakeWorld, jobs: JobRunner) -> None:
    add_db(world)
    client = api_client(create_app(world.services, jobs, known_instances=lambda: None))
    assert [i["name"] for i in client.get("/v1/instances").json()] == ["shop-db"]
    world.docker.unreachable = True
    assert_error(client.get("/v1/instances"), 503, "DockerUnavailable")


# --- policy --------------------------------------------------------------------------


def test_put_policy_overrides_the_labels_and_delete_drops_it(
        world: FakeWorld, jobs: JobRunner) -> None:
    add_db(world, labels={"holdfast.schedule": "@every 6h"})
    refresh_instances(world.services)
    refreshed: list[int] = []
    client = api_client(create_app(world.services, jobs, refresh=lambda: refreshed.append(1)))

    put = client.put("/v1/instances/shop-db/policy",
                     json={"schedule": "@every 1h", "retention": "last=3"})
    assert put.status_code == 200
    assert (put.json()["schedule"], put.json()["policy_source"]) == ("@every 1h", "api")
    assert put.json()["retention"] == {"last": 3}
    assert refreshed == [1]
    [listed] = client.get("/v1/instances").json()
    assert (listed["schedule"], listed["policy_source"]) == ("@every 1h", "api")

    dropped = client.delete("/v1/instances/shop-db/policy")
    assert dropped.status_code == 200
    assert (dropped.json()["schedule"], dropped.json()["policy_source"]) == ("@every 6h", "labels")
    assert refreshed == [1, 1]
    record = world.catalog.get_instance("shop-db")
    assert record is not None and record.policy_override is None


def test_put_policy_refuses_a_bad_value_and_changes_nothing(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    refresh_instances(world.services)
    assert_error(client.put("/v1/instances/shop-db/policy", json={"schedule": "tuesdays"}),
                 400, "InvalidLabels")
    record = world.catalog.get_instance("shop-db")
    assert record is not None and record.policy_override is None


def test_policy_of_an_unknown_instance_is_404(client: TestClient) -> None:
    assert_error(client.put("/v1/instances/nope/policy", json={"schedule": "@daily"}),
                 404, "InstanceNotFound")
    assert_error(client.delete("/v1/instances/nope/policy"), 404, "InstanceNotFound")


# --- prune -----------------------------------------------------------------------------


def test_prune_dry_run_lists_what_would_go_and_deletes_nothing(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, labels={"holdfast.retention": "last=1"})
    older, newer = snapshot_of(world), snapshot_of(world)

    dry = client.post("/v1/instances/shop-db/prune", params={"dry_run": "true"})
    assert dry.status_code == 200
    assert (dry.json()["forgotten"], dry.json()["kept"], dry.json()["dry_run"]) == (
        [older], [newer], True)
    assert {s.id for s in world.catalog.list_snapshots()} == {older, newer}

    real = client.post("/v1/instances/shop-db/prune")
    assert real.json()["forgotten"] == [older]
    assert [s.id for s in world.catalog.list_snapshots()] == [newer]


def test_prune_of_an_unknown_instance_is_404(client: TestClient) -> None:
    assert_error(client.post("/v1/instances/nope/prune"), 404, "InstanceNotFound")


# --- backups ---------------------------------------------------------------------------


def test_post_backup_answers_202_with_a_job_that_yields_a_listed_snapshot(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    response = client.post("/v1/instances/shop-db/backups")
    assert response.status_code == 202
    assert (response.json()["kind"], response.json()["instance"]) == ("backup", "shop-db")

    job = finished(client, response.json())
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["status"] == "complete"
    listed = {s["id"]: s for s in client.get("/v1/snapshots").json()}
    assert listed[job["result"]["id"]]["status"] == "complete"
    assert job["snapshot_id"] == job["result"]["id"]


def test_post_backup_writes_to_the_target_in_the_body(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    job = finished(client, client.post("/v1/instances/shop-db/backups",
                                       json={"target": "offsite"}).json())
    assert job["result"]["target"] == "offsite"
    assert list(world.storage("offsite").list(f"shop-db/{job['result']['id']}/"))


def test_post_backup_while_one_runs_is_409_naming_the_running_job(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    world.services.gate.claim("shop-db", "job-already-going")
    body = assert_error(client.post("/v1/instances/shop-db/backups"), 409, "AlreadyRunning")
    assert body["running"] == "job-already-going"
    assert world.catalog.list_jobs() == []


def test_post_backup_while_another_process_backs_up_is_409_naming_its_snapshot(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    running = make_snapshot(world, "shop-db", status=SnapshotStatus.RUNNING,
                            runner=OTHER_HOST_RUNNER)
    body = assert_error(client.post("/v1/instances/shop-db/backups"), 409, "AlreadyRunning")
    assert body["running"] == running.id
    assert world.catalog.list_jobs() == []
    assert world.catalog.list_snapshots() == [running]


def test_post_backup_is_refused_at_once_for_bad_requests(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, "stopped-db", running=False)
    assert_error(client.post("/v1/instances/nope/backups"), 404, "InstanceNotFound")
    assert_error(client.post("/v1/instances/stopped-db/backups"), 409, "ContainerNotRunning")
    add_db(world)
    assert_error(client.post("/v1/instances/shop-db/backups", json={"target": "mars"}),
                 400, "StorageMisconfigured")
    assert world.catalog.list_jobs() == []


def test_a_target_refusing_credentials_is_400(tmp_path: Path) -> None:
    world = fake_world(tmp_path)
    world.services.storage_factory = denying_factory
    add_db(world)
    runner = JobRunner(world.services, 1)
    try:
        client = api_client(create_app(world.services, runner))
        assert_error(client.post("/v1/instances/shop-db/backups"), 400,
                     "StoragePermissionDenied")
    finally:
        runner.shutdown(grace=1)


# --- snapshots -------------------------------------------------------------------------


def test_snapshots_list_filters_by_instance(world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    add_db(world, "other-db")
    shop, other = snapshot_of(world), snapshot_of(world, "other-db")
    assert {s["id"] for s in client.get("/v1/snapshots").json()} == {shop, other}
    assert [s["id"] for s in client.get("/v1/snapshots",
                                        params={"instance": "shop-db"}).json()] == [shop]


def test_snapshot_get_then_delete_then_404(world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_id = snapshot_of(world)
    got = client.get(f"/v1/snapshots/{snapshot_id}")
    assert got.status_code == 200
    assert (got.json()["id"], got.json()["instance"]) == (snapshot_id, "shop-db")

    deleted = client.delete(f"/v1/snapshots/{snapshot_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert not list(world.storage().list(f"shop-db/{snapshot_id}/"))
    assert_error(client.get(f"/v1/snapshots/{snapshot_id}"), 404, "SnapshotNotFound")
    assert_error(client.delete(f"/v1/snapshots/{snapshot_id}"), 404, "SnapshotNotFound")


# --- restores --------------------------------------------------------------------------


def test_restore_builds_a_container_holding_the_sources_bytes(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_id = snapshot_of(world)
    response = client.post(f"/v1/snapshots/{snapshot_id}/restore", json={"name": "shop-copy"})
    assert response.status_code == 202
    assert (response.json()["kind"], response.json()["snapshot_id"]) == ("restore", snapshot_id)

    job = finished(client, response.json())
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["container"] == "shop-copy"
    assert world.docker.data_of("shop-copy") == world.docker.data_of("shop-db")


def test_restore_onto_a_taken_name_is_409_at_once(world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_id = snapshot_of(world)
    assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore", json={"name": "shop-db"}),
                 409, "NameTaken")
    assert world.catalog.list_jobs() == []


def test_restore_of_an_unknown_snapshot_is_404(client: TestClient) -> None:
    assert_error(client.post("/v1/snapshots/20200101T000000Z-000000/restore",
                             json={"name": "x"}), 404, "SnapshotNotFound")


def test_restore_of_a_snapshot_whose_manifest_is_gone_is_404(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_id = snapshot_of(world)
    world.storage().delete(manifest_key("shop-db", snapshot_id))
    assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore", json={"name": "copy"}),
                 404, "ObjectNotFound")


def test_a_malformed_body_is_400_with_the_error_shape(client: TestClient) -> None:
    response = client.post("/v1/snapshots/20200101T000000Z-000000/restore", json={})
    assert_error(response, 400, "InvalidInput")


def test_restore_of_an_instances_latest_is_a_job_naming_the_snapshot_used(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_of(world)
    newest = snapshot_of(world)
    response = client.post("/v1/instances/shop-db/restore", json={"name": "shop-copy"})
    assert response.status_code == 202, response.text
    assert (response.json()["kind"], response.json()["snapshot_id"]) == ("restore", newest)
    job = finished(client, response.json())
    assert job["status"] == "succeeded", job["error"]
    assert (job["result"]["snapshot_id"], job["result"]["container"]) == (newest, "shop-copy")
    assert world.docker.data_of("shop-copy") == world.docker.data_of("shop-db")


def test_restore_latest_without_a_complete_snapshot_is_404_at_once(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    body = assert_error(client.post("/v1/instances/shop-db/restore", json={"name": "copy"}),
                        404, "SnapshotNotFound")
    assert "shop-db" in body["error"]
    assert_error(client.post("/v1/instances/ghost/restore", json={"name": "copy"}),
                 404, "InstanceNotFound")
    assert world.catalog.list_jobs() == []


def test_a_snapshot_id_prefix_works_on_every_snapshot_route(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_id = snapshot_of(world)
    prefix = snapshot_id[:-2]
    assert client.get(f"/v1/snapshots/{prefix}").json()["id"] == snapshot_id
    restored = client.post(f"/v1/snapshots/{prefix}/restore", json={"name": "copy"})
    assert (restored.status_code, restored.json()["snapshot_id"]) == (202, snapshot_id)
    assert finished(client, restored.json())["status"] == "succeeded"
    assert client.delete(f"/v1/snapshots/{prefix}").status_code == 204
    assert world.catalog.get_snapshot(snapshot_id) is None


def test_an_ambiguous_or_impossible_snapshot_reference_is_400(
        world: FakeWorld, client: TestClient) -> None:
    first, second = (make_snapshot(world, "shop-db").id for _ in range(2))
    body = assert_error(client.get(f"/v1/snapshots/{first[:16]}"), 400, "InvalidInput")
    assert first in body["error"] and second in body["error"]
    assert_error(client.get("/v1/snapshots/a%20b"), 400, "InvalidInput")
    assert_error(client.delete("/v1/snapshots/2026%25"), 400, "InvalidInput")
    assert {s.id for s in world.catalog.list_snapshots()} == {first, second}


@pytest.mark.parametrize("image", ["Nope:1", "../x", "", "a b"])
def test_restore_with_a_malformed_image_is_400_at_once(
        world: FakeWorld, client: TestClient, image: str) -> None:
    add_db(world)
    snapshot_id = snapshot_of(world)
    for url in (f"/v1/snapshots/{snapshot_id}/restore", "/v1/instances/shop-db/restore"):
        body = assert_error(client.post(url, json={"name": "copy", "image": image}),
                            400, "InvalidInput")
        assert "is not a valid image reference" in body["error"]
    assert world.catalog.list_jobs() == [] and "copy" not in world.docker.container_names()


def test_restore_with_a_missing_image_is_404_at_once(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_id = snapshot_of(world)
    assert_error(client.post(f"/v1/snapshots/{snapshot_id}/restore",
                             json={"name": "copy", "image": "fake/db:404"}), 404, "ImageNotFound")
    assert world.catalog.list_jobs() == []


# --- volumes ---------------------------------------------------------------------------


def test_volumes_list_and_get_show_size_and_users(world: FakeWorld, client: TestClient) -> None:
    add_db(world, size=1234)
    listed = {v["name"]: v for v in client.get("/v1/volumes").json()}
    assert listed["shop-db-vol"]["size_bytes"] == 1234
    assert [u["name"] for u in listed["shop-db-vol"]["users"]] == ["shop-db"]
    assert client.get("/v1/volumes", params={"sizes": "false"}).json()[0]["size_bytes"] is None

    one = client.get("/v1/volumes/shop-db-vol")
    assert (one.status_code, one.json()["in_use"]) == (200, True)
    assert_error(client.get("/v1/volumes/nope"), 404, "VolumeNotFound")


def test_create_volume_is_201_then_409(world: FakeWorld, client: TestClient) -> None:
    created = client.post("/v1/volumes", json={"name": "scratch", "labels": {"team": "shop"}})
    assert created.status_code == 201
    assert (created.json()["name"], created.json()["labels"]) == ("scratch", {"team": "shop"})
    assert world.docker.volumes["scratch"].labels == {"team": "shop"}
    assert_error(client.post("/v1/volumes", json={"name": "scratch"}), 409, "NameTaken")


def test_create_volume_with_a_bad_name_is_400(world: FakeWorld, client: TestClient) -> None:
    assert_error(client.post("/v1/volumes", json={"name": "no/slashes"}), 400, "InvalidName")
    assert world.docker.volumes == {}


def test_delete_volume_in_use_is_409_naming_the_container(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, running=False)
    body = assert_error(client.delete("/v1/volumes/shop-db-vol"), 409, "VolumeInUse")
    assert "shop-db" in body["error"]
    assert "shop-db-vol" in world.docker.volumes


def test_delete_unused_volume_returns_it_and_removes_it(
        world: FakeWorld, client: TestClient) -> None:
    client.post("/v1/volumes", json={"name": "scratch"})
    removed = client.delete("/v1/volumes/scratch")
    assert (removed.status_code, removed.json()["name"]) == (200, "scratch")
    assert "scratch" not in world.docker.volumes
    assert_error(client.delete("/v1/volumes/scratch"), 404, "VolumeNotFound")


def test_clone_volume_is_a_job_whose_result_is_the_copy(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    response = client.post("/v1/volumes/shop-db-vol/clone", json={"target": "shop-copy"})
    assert (response.status_code, response.json()["kind"]) == (202, "clone")
    job = finished(client, response.json())
    assert job["status"] == "succeeded", job["error"]
    assert (job["result"]["source"], job["result"]["target"]) == ("shop-db-vol", "shop-copy")
    assert world.docker.volumes["shop-copy"].content == world.docker.data_of("shop-db")


def test_clone_is_refused_at_once_for_bad_requests(world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    client.post("/v1/volumes", json={"name": "taken"})
    assert_error(client.post("/v1/volumes/nope/clone", json={"target": "x"}),
                 404, "VolumeNotFound")
    assert_error(client.post("/v1/volumes/shop-db-vol/clone", json={"target": "taken"}),
                 409, "NameTaken")
    assert_error(client.post("/v1/volumes/shop-db-vol/clone", json={"target": "shop-db-vol"}),
                 400, "InvalidName")
    assert world.catalog.list_jobs() == []


# --- targets, jobs, health, metrics ------------------------------------------------------


def test_targets_check_probes_every_target(client: TestClient) -> None:
    response = client.get("/v1/targets/check")
    assert response.status_code == 200
    assert {(t["name"], t["ok"]) for t in response.json()} == {("local", True),
                                                               ("offsite", True)}


def test_an_unknown_job_is_404(client: TestClient) -> None:
    assert_error(client.get("/v1/jobs/job-nope"), 404, "JobNotFound")


def test_healthz_is_ok_and_names_the_installed_version(client: TestClient) -> None:
    response = client.get("/healthz")
    assert (response.status_code, response.json()) == (
        200, {"status": "ok", "version": metadata.version("holdfast")})


def test_readyz_is_200_while_everything_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "checks": {"catalog": "ok", "docker": "ok"}}


def test_readyz_is_503_naming_docker_when_it_is_unreachable(
        world: FakeWorld, client: TestClient) -> None:
    world.docker.unreachable = True
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["catalog"] == "ok"
    assert "Docker" in checks["docker"]


def test_readyz_is_503_naming_the_catalog_when_it_is_down(
        world: FakeWorld, client: TestClient) -> None:
    world.catalog.down = True
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "catalog" in response.json()["checks"]["catalog"]
    assert response.json()["checks"]["docker"] == "ok"


def test_metrics_expose_job_gauges_and_count_snapshots(world: FakeWorld) -> None:
    metrics = Metrics()
    runner = JobRunner(world.services, 1, metrics)
    try:
        client = api_client(create_app(world.services, runner, metrics=metrics))
        add_db(world)
        finished(client, client.post("/v1/instances/shop-db/backups").json())
        response = client.get("/metrics")
    finally:
        runner.shutdown(grace=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "holdfast_running_jobs 0.0" in text
    assert 'holdfast_snapshots_total{instance="shop-db",status="complete"} 1.0' in text


# --- the bearer token --------------------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path) -> TestClient:
    world = fake_world(tmp_path, env={"HOLDFAST_API_TOKEN": "open-sesame"})
    return api_client(create_app(world.services, JobRunner(world.services, 1)), token=None)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "open-sesame", "Basic open-sesame"])
def test_v1_without_the_right_token_is_401(guarded: TestClient, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = guarded.get("/v1/snapshots", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]


def test_the_401_body_has_the_error_shape(guarded: TestClient) -> None:
    assert_error(guarded.get("/v1/snapshots"), 401, "Unauthorised")


def test_v1_with_the_right_token_is_200(guarded: TestClient) -> None:
    response = guarded.get("/v1/snapshots", headers={"Authorization": "Bearer open-sesame"})
    assert (response.status_code, response.json()) == (200, [])


def test_health_routes_need_no_token(guarded: TestClient) -> None:
    assert guarded.get("/healthz").status_code == 200
    assert guarded.get("/readyz").status_code == 200
    assert guarded.get("/metrics").status_code == 200


# --- the error table ---------------------------------------------------------------------

EXPECTED: dict[type[errors.HoldfastError], tuple[int, int]] = {
    errors.NotFound: (404, 3),
    errors.Conflict: (409, 4),
    errors.ContainerError: (409, 4),
    errors.DockerRejectedInput: (400, 2),
    errors.DockerRefused: (409, 4),
    errors.InvalidInput: (400, 2),
    errors.DockerUnavailable: (503, 5),
    errors.StorageUnavailable: (503, 5),
    errors.DeliveryFailed: (503, 5),
    errors.StoragePermissionDenied: (400, 2),
    CatalogUnavailable: (503, 5),
    ShuttingDown: (503, 5),
    errors.Busy: (503, 5),
    errors.HostDown: (503, 5),
    errors.Unauthorised: (401, 6),
    errors.Forbidden: (403, 7),
    ServerUnreachable: (503, 5),
}
"""The README's exit codes and statuses, written out independently of the table."""


def test_every_class_in_the_table_has_an_expected_outcome() -> None:
    assert {kind for kind, _ in ERROR_TABLE} == set(EXPECTED)


@pytest.mark.parametrize("kind", list(EXPECTED), ids=lambda kind: kind.__name__)
def test_a_listed_class_maps_to_its_status_and_exit_code(
        kind: type[errors.HoldfastError]) -> None:
    exc = kind("one line")
    assert (http_status_for(exc), exit_code_for(exc)) == EXPECTED[kind]


@pytest.mark.parametrize(("exc", "expected"), [
    (errors.InstanceNotFound("x"), (404, 3)),
    (errors.ImageNotFound("x"), (404, 3)),
    (errors.ObjectNotFound("x"), (404, 3)),
    (errors.ObjectExists("x"), (409, 4)),
    (errors.VolumeInUse("x"), (409, 4)),
    (errors.ContainerNotRunning("x"), (409, 4)),
    (AlreadyRunning("shop-db", "job-1"), (409, 4)),
    (errors.StorageMisconfigured("x"), (400, 2)),
    (errors.MissingCredentials("x"), (400, 2)),
    (errors.UnsupportedEngine("x"), (400, 2)),
    (errors.EventStreamEnded("x"), (503, 5)),
], ids=lambda value: type(value).__name__ if isinstance(value, Exception) else "")
def test_subclasses_take_the_outcome_of_their_row(
        exc: errors.HoldfastError, expected: tuple[int, int]) -> None:
    assert (http_status_for(exc), exit_code_for(exc)) == expected


@pytest.mark.parametrize("exc", [
    errors.HoldfastError("x"), errors.DumpFailed("x"), errors.CloneFailed("x"),
    errors.CorruptSnapshot("x"), errors.ExecFailed("pg_dump", 1, "boom"),
], ids=lambda exc: type(exc).__name__)
def test_an_unlisted_error_is_internal(exc: errors.HoldfastError) -> None:
    assert (http_status_for(exc), exit_code_for(exc)) == (500, 1)


def test_storage_permission_denied_is_configuration_on_both_sides() -> None:
    # Once exit 2 on the CLI and 503 on the API; now one row: a target refusing
    # Holdfast is the operator's configuration to fix, like a misconfigured one.
    exc = errors.StoragePermissionDenied("access denied")
    assert (http_status_for(exc), exit_code_for(exc)) == (400, 2)
    assert (http_status_for(exc), exit_code_for(exc)) == (
        http_status_for(errors.StorageMisconfigured("bad")),
        exit_code_for(errors.StorageMisconfigured("bad")))
