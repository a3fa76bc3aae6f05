"""Jobs a script can rely on, through the HTTP API on the fakes: ``Idempotency-Key``
(bounds, the same job again, 409 for another request), ``?wait=true&timeout=``,
``GET /v1/jobs`` with its filters and bounds, and ``GET /v1/jobs/{id}/events``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service.entrypoints.api import create_app
from service.entrypoints.api.job_waits import StreamSlots
from service.usecases.jobs import JobRunner
from tests.fakes.docker import DUMP
from tests.fakes.services import FakeWorld
from tests.harness.api import api_client
from tests.usecases.entrypoints.helpers import add_db, wait_until

Json = dict[str, Any]
BACKUP = "/v1/instances/shop-db/backups"


@pytest.fixture
def app(world: FakeWorld, jobs: JobRunner) -> FastAPI:
    return create_app(world.services, jobs)


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return api_client(app)


@pytest.fixture
def released(jobs: JobRunner) -> Iterator[threading.Event]:
    """An event the test's blocking jobs wait on; set at teardown so none hangs."""
    release = threading.Event()
    yield release
    release.set()


def dumps(world: FakeWorld) -> int:
    return sum(1 for _, argv, _ in world.docker.execs if argv[0] == DUMP)


def ended(client: TestClient, job_id: str) -> Json:
    wait_until(lambda: client.get(f"/v1/jobs/{job_id}").json()["finished_at"] is not None)
    body: Json = client.get(f"/v1/jobs/{job_id}").json()
    return body


# --- Idempotency-Key ------------------------------------------------------------------


def test_a_retry_with_the_key_answers_the_same_job_and_dumps_once(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    headers = {"Idempotency-Key": "release-1.4.2"}
    first = client.post(BACKUP, headers=headers, json={"target": "local"})
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    done = ended(client, first.json()["id"])
    retry = client.post(BACKUP, headers=headers, json={"target": "local"})
    assert retry.status_code == 200, retry.text  # the job it names has ended
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json() == done
    assert dumps(world) == 1 and len(world.catalog.list_snapshots()) == 1


def test_the_key_with_another_body_is_409_naming_it(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    headers = {"Idempotency-Key": "release-1.4.2"}
    first = client.post(BACKUP, headers=headers).json()
    ended(client, first["id"])
    refused = client.post(BACKUP, headers=headers, json={"target": "offsite"})
    assert refused.status_code == 409, refused.text
    assert refused.json()["kind"] == "IdempotencyKeyReused"
    assert "'release-1.4.2'" in refused.json()["error"]
    assert "\n" not in refused.json()["error"]
    # The same key on another route is another request too.
    snapshot_id = ended(client, first["id"])["snapshot_id"]
    other = client.post(f"/v1/snapshots/{snapshot_id}/restore", headers=headers,
                        json={"name": "copy"})
    assert other.status_code == 409, other.text
    assert dumps(world) == 1 and "copy" not in world.docker.container_names()


def test_no_body_and_the_default_body_are_one_request(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    first = client.post(BACKUP, headers={"Idempotency-Key": "k"}).json()
    ended(client, first["id"])
    again = client.post(BACKUP, headers={"Idempotency-Key": "k"}, json={"target": None})
    assert again.status_code == 200 and again.json()["id"] == first["id"]


def test_a_restore_retried_with_its_key_restores_once(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    snapshot_id = ended(client, client.post(BACKUP).json()["id"])["snapshot_id"]
    url, headers = f"/v1/snapshots/{snapshot_id}/restore", {"Idempotency-Key": "dev-copy"}
    first = client.post(url, headers=headers, json={"name": "copy"})
    assert first.status_code == 202, first.text
    assert ended(client, first.json()["id"])["status"] == "succeeded"
    # Without the key the name would now be taken (409): the retry is the same job.
    retry = client.post(url, headers=headers, json={"name": "copy"})
    assert (retry.status_code, retry.json()["id"]) == (200, first.json()["id"])
    assert len(client.get("/v1/jobs?kind=restore").json()) == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "clé"])
def test_a_key_out_of_bounds_is_400_and_starts_nothing(
        world: FakeWorld, client: TestClient, value: str) -> None:
    add_db(world)
    response = client.post(BACKUP, headers={"Idempotency-Key": value.encode()})
    assert response.status_code == 400, response.text
    assert response.json()["kind"] == "InvalidIdempotencyKey"
    assert "1 to 255 printable ASCII" in response.json()["error"]
    assert client.get("/v1/jobs").json() == []


def test_a_key_of_255_characters_is_taken(world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    response = client.post(BACKUP, headers={"Idempotency-Key": "k" * 255})
    assert response.status_code == 202, response.text


# --- ?wait=true --------------------------------------------------------------------------


def test_wait_answers_the_final_state(world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    response = client.post(f"{BACKUP}?wait=true&timeout=30")
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "succeeded" and job["result"]["status"] == "complete"
    assert job["phase"] == "uploading" and job["bytes_done"] == job["result"]["size_bytes"]
    assert "request_fingerprint" not in job and "idempotency_key" not in job


def test_wait_answers_202_with_the_job_as_it_stands_at_the_timeout(
        world: FakeWorld, client: TestClient, jobs: JobRunner) -> None:
    add_db(world)
    world.docker.stall.add(DUMP)
    response = client.post(f"{BACKUP}?wait=true&timeout=1")
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["status"], job["phase"]) == ("running", "dumping")
    jobs.cancel_job(job["id"])


def test_waiting_requests_hold_no_worker_thread(
        world: FakeWorld, app: FastAPI, jobs: JobRunner) -> None:
    """Forty-one requests wait on one event loop at once (anyio's thread limit for
    sync routes is 40) and a plain request still answers: a wait holds no thread."""
    add_db(world)
    world.docker.stall.add(DUMP)
    answers: list[Json] = []
    with api_client(app) as client:  # one event loop for every request
        def wait_for_backup() -> None:
            answers.append(client.post(f"{BACKUP}?wait=true&timeout=60",
                                       headers={"Idempotency-Key": "one-backup"}).json())

        waiters = [threading.Thread(target=wait_for_backup) for _ in range(41)]
        for waiter in waiters:
            waiter.start()
        wait_until(lambda: len(client.get("/v1/jobs").json()) == 1)
        (backup,) = client.get("/v1/jobs").json()
        wait_until(lambda: jobs.watchers.watching(backup["id"]) == 41, timeout=30)
        assert client.get(f"/v1/jobs/{backup['id']}").json()["status"] == "running"
        assert answers == []
        jobs.cancel_job(backup["id"])
        for waiter in waiters:
            waiter.join(30)
    assert [(a["id"], a["status"]) for a in answers] == [(backup["id"], "cancelled")] * 41
    assert dumps(world) == 1


@pytest.mark.parametrize("query", ["wait=true&timeout=0", "wait=true&timeout=3601",
                                   "wait=maybe", "wait=true&timeout=soon"])
def test_wait_and_timeout_out_of_bounds_are_400(
        world: FakeWorld, client: TestClient, query: str) -> None:
    add_db(world)
    response = client.post(f"{BACKUP}?{query}")
    assert response.status_code == 400, response.text
    assert client.get("/v1/jobs").json() == []


# --- GET /v1/jobs ----------------------------------------------------------------------


def test_jobs_list_newest_first_with_filters(
        world: FakeWorld, client: TestClient, jobs: JobRunner) -> None:
    add_db(world)
    add_db(world, "blog-db")
    first = ended(client, client.post(BACKUP).json()["id"])
    blog = ended(client, client.post("/v1/instances/blog-db/backups").json()["id"])
    restore = ended(client, client.post(f"/v1/snapshots/{first['snapshot_id']}/restore",
                                        json={"name": "copy"}).json()["id"])
    world.docker.refuse_start = "no memory"
    failed = ended(client, client.post(f"/v1/snapshots/{first['snapshot_id']}/restore",
                                       json={"name": "copy2"}).json()["id"])
    assert failed["status"] == "failed"

    def ids(query: str) -> list[str]:
        response = client.get(f"/v1/jobs{query}")
        assert response.status_code == 200, response.text
        return [job["id"] for job in response.json()]

    assert ids("") == [failed["id"], restore["id"], blog["id"], first["id"]]
    assert ids("?kind=backup") == [blog["id"], first["id"]]
    assert ids("?instance=shop-db") == [failed["id"], restore["id"], first["id"]]
    assert ids("?kind=restore&status=succeeded") == [restore["id"]]
    assert ids("?status=failed&status=succeeded&instance=shop-db&kind=restore") == \
        [failed["id"], restore["id"]]
    assert ids("?limit=1") == [failed["id"]]
    listed = client.get("/v1/jobs?limit=1").json()[0]
    assert set(listed) >= {"id", "kind", "status", "result", "error", "phase", "bytes_done",
                           "rate", "eta_seconds"}


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=many", "status=done",
                                   "kind=vacuum"])
def test_jobs_list_bounds_are_400(client: TestClient, query: str) -> None:
    response = client.get(f"/v1/jobs?{query}")
    assert response.status_code == 400, response.text
    assert response.json()["kind"] == "InvalidInput"


def test_jobs_list_takes_limit_1000(client: TestClient) -> None:
    assert client.get("/v1/jobs?limit=1000").status_code == 200


# --- GET /v1/jobs/{id}/events ---------------------------------------------------------------


def events(lines: Iterator[str]) -> Iterator[tuple[str, Json]]:
    """(event, data) of each Server-Sent Event (comments, i.e. pings, skipped)."""
    kind, data = "", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2].strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "", ""


def test_events_stream_progress_then_end(
        world: FakeWorld, client: TestClient, jobs: JobRunner,
        released: threading.Event) -> None:
    job = jobs.submit("test", lambda: {"ok": released.wait(30)})
    seen: list[tuple[str, str]] = []
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        for kind, data in events(stream.iter_lines()):
            seen.append((kind, data["status"]))
            if kind == "progress" and data["status"] == "running":
                released.set()
            assert data["id"] == job.id
    assert seen[-1] == ("end", "succeeded")
    assert ("progress", "running") in seen
    assert all(kind == "progress" for kind, _ in seen[:-1])


def test_an_ended_job_gets_one_end_event(world: FakeWorld, client: TestClient) -> None:
    add_db(world)
    done = ended(client, client.post(BACKUP).json()["id"])
    with client.stream("GET", f"/v1/jobs/{done['id']}/events") as stream:
        assert list(events(stream.iter_lines())) == [("end", done)]


def test_events_of_an_unknown_job_are_404(client: TestClient) -> None:
    response = client.get("/v1/jobs/job-nope/events")
    assert response.status_code == 404
    assert response.json()["kind"] == "JobNotFound"


def test_a_client_that_goes_away_stops_its_stream(
        app: FastAPI, client: TestClient, jobs: JobRunner, released: threading.Event) -> None:
    job = jobs.submit("test", lambda: {"ok": released.wait(30)})
    with client.stream("GET", f"/v1/jobs/{job.id}/events") as stream:
        for kind, _ in events(stream.iter_lines()):
            assert kind == "progress"
            assert jobs.watchers.watching(job.id) == 1
            break
    wait_until(lambda: jobs.watchers.watching(job.id) == 0)
    assert app.state.job_streams.open == 0


def test_streams_beyond_the_limit_are_503(
        app: FastAPI, client: TestClient, jobs: JobRunner) -> None:
    app.state.job_streams = StreamSlots(limit=0)
    job = jobs.submit("test", lambda: {})
    response = client.get(f"/v1/jobs/{job.id}/events")
    assert response.status_code == 503, response.text
    assert response.json()["kind"] == "TooManyStreams"


# --- the OpenAPI document ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/instances/{name}/backups", "/v1/instances/{name}/restore",
                                  "/v1/snapshots/{snapshot_id}/restore"])
def test_openapi_documents_the_key_wait_and_both_success_statuses(app: FastAPI,
                                                                   path: str) -> None:
    operation = app.openapi()["paths"][path]["post"]
    parameters = {(p["in"], p["name"]): p for p in operation["parameters"]}
    assert {("header", "Idempotency-Key"), ("query", "wait"), ("query", "timeout")} <= \
        set(parameters)
    timeout = parameters[("query", "timeout")]["schema"]["anyOf"][0]
    assert (timeout["minimum"], timeout["maximum"]) == (1, 3600)
    assert {"200", "202"} <= set(operation["responses"])


def test_openapi_documents_the_event_stream(app: FastAPI) -> None:
    operation = app.openapi()["paths"]["/v1/jobs/{job_id}/events"]["get"]
    assert "text/event-stream" in operation["responses"]["200"]["content"]
    listing = app.openapi()["paths"]["/v1/jobs"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"kind", "status", "instance",
                                                          "limit"}
