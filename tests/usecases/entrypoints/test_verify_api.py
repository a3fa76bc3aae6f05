"""``POST /v1/snapshots/{id}/verify`` and ``POST /v1/targets/{name}/verify`` on the
fakes: 202 + a job of kind ``verify`` / ``verify-target``, ``?wait=true`` answers its
final state with the report as its result (``whole: false`` on damage, the job
still succeeded), 404 for an unknown snapshot or target, 400 for an encrypted
snapshot the daemon holds no identity for, a replayed Idempotency-Key, the
``read`` scope enough to verify, and a snapshot of another host's instance
(verify and verify-restore) queued for that host, 503 while it is down."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backup.encryption import new_identity
from backup.types import utcnow
from service.entrypoints.api import create_app
from service.hosts import HostRecord
from service.records import InstanceRecord
from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld, fake_world
from tests.harness.api import api_client, bearer
from tests.usecases.entrypoints.test_api import assert_error, finished
from tests.usecases.entrypoints.test_tokens_api import make_token
from tests.usecases.support import add_db, make_snapshot, objects, replace_object, take_backup

Json = dict[str, Any]


@pytest.fixture
def client(world: FakeWorld, jobs: JobRunner) -> TestClient:
    return api_client(create_app(world.services, jobs))


def _damage(world: FakeWorld, key: str) -> None:
    data = bytearray(objects(world)[key])
    data[len(data) // 3] ^= 0x10
    replace_object(world, key, bytes(data))


def test_verify_answers_202_with_a_verify_job_whose_result_is_the_report(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    started = client.post(f"/v1/snapshots/{snapshot.id}/verify")
    assert started.status_code == 202, started.text
    job = started.json()
    assert (job["kind"], job["snapshot_id"], job["instance"]) == ("verify", snapshot.id, "shop")
    done = finished(client, job)
    assert done["status"] == "succeeded", done
    report = done["result"]
    assert report["whole"] is True and report["snapshot_id"] == snapshot.id
    assert report["stored_size"] == snapshot.size_bytes
    assert {c["check"]: c["outcome"] for c in report["checks"]}["sha256"] == "ok"


def test_wait_answers_200_and_damage_is_whole_false_naming_the_check(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    _damage(world, snapshot.data_key)
    answer = client.post(f"/v1/snapshots/{snapshot.id[:12]}/verify?wait=true&timeout=30")
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["status"] == "succeeded" and job["result"]["whole"] is False
    assert job["result"]["problem"] == "corrupt"
    assert job["result"]["error"].startswith("sha256: ")


def test_unknown_snapshot_and_target_are_404(client: TestClient) -> None:
    assert_error(client.post("/v1/snapshots/20260101T000000Z-abcdef/verify"), 404,
                 "SnapshotNotFound")
    body = assert_error(client.post("/v1/targets/nowhere/verify"), 404, "TargetNotFound")
    assert "local" in body["error"]


def test_an_encrypted_snapshot_without_the_daemons_identity_is_400_before_a_job(
        tmp_path: Path) -> None:
    text, recipient = new_identity()
    world = fake_world(tmp_path, {"HOLDFAST_AGE_RECIPIENTS": recipient})
    runner = JobRunner(world.services, 1)
    try:
        client = api_client(create_app(world.services, runner))
        add_db(world, "shop")
        snapshot = take_backup(world, "shop")
        body = assert_error(client.post(f"/v1/snapshots/{snapshot.id}/verify"), 400,
                            "IdentityRequired")
        assert "HOLDFAST_IDENTITY_FILE" in body["error"]
        assert world.catalog.list_jobs(10, None, kind="verify") == []
        whole = client.post("/v1/targets/local/verify?wait=true&timeout=30").json()
        assert whole["status"] == "succeeded", whole
        assert whole["result"]["summary"].endswith(
            "1 encrypted objects checked for size and sha256 only: no identity")
        (path := tmp_path / "id.txt").write_text(text)
        world.services.settings.identity_file = path
        done = client.post(f"/v1/snapshots/{snapshot.id}/verify?wait=true&timeout=30").json()
        assert done["result"]["whole"] and done["result"]["fully_checked"], done
    finally:
        runner.shutdown(grace=5)


def test_target_verify_reports_an_orphan_and_a_short_object(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    replace_object(world, snapshot.data_key, objects(world)[snapshot.data_key][:-5])
    world.storage().put("shop/stray.bin", [b"left behind"])
    answer = client.post("/v1/targets/local/verify?wait=true&timeout=30")
    assert answer.status_code == 200, answer.text
    job = answer.json()
    assert job["kind"] == "verify-target" and job["status"] == "succeeded"
    found = {(p["kind"], p["key"]) for p in job["result"]["problems"]}
    assert found == {("short", snapshot.data_key), ("orphan", "shop/stray.bin")}
    assert job["result"]["whole"] is False


def test_a_replayed_idempotency_key_returns_the_same_job(
        world: FakeWorld, client: TestClient) -> None:
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    headers = {"Idempotency-Key": "verify-once"}
    first = client.post(f"/v1/snapshots/{snapshot.id}/verify", headers=headers).json()
    again = client.post(f"/v1/snapshots/{snapshot.id}/verify", headers=headers)
    assert again.json()["id"] == first["id"]
    assert again.headers.get("idempotent-replayed") == "true"


def test_a_read_token_may_verify_and_no_token_may_not(
        world: FakeWorld, jobs: JobRunner) -> None:
    anonymous = api_client(create_app(world.services, jobs), token=None)
    add_db(world, "shop")
    snapshot = take_backup(world, "shop")
    reader = make_token(anonymous, "dashboards", "read")
    for path in (f"/v1/snapshots/{snapshot.id}/verify", "/v1/targets/local/verify"):
        assert anonymous.post(path).status_code == 401
        allowed = anonymous.post(path, headers=bearer(reader))
        assert allowed.status_code == 202, allowed.text


def _lives_on(world: FakeWorld, instance: str, host: str, beat_ago: timedelta) -> None:
    """Catalog rows saying ``instance`` was discovered on ``host``, which beat
    ``beat_ago`` ago."""
    now = utcnow()
    world.catalog.upsert_instance(InstanceRecord(
        name=instance, engine="fake", container_id="c-1", container_name=instance,
        image="fake/db:1", labels={}, error=None, first_seen=now, last_seen=now, host=host))
    world.catalog.save_host(HostRecord(
        name=host, engine_version="27.0", instances=1, started_at=now - beat_ago,
        last_heartbeat=now - beat_ago, holdfast_version="test", runner=f"{host}:1:1"))


def test_a_snapshot_of_another_host_s_instance_is_queued_for_that_host_or_503(
        world: FakeWorld, client: TestClient) -> None:
    snapshot = make_snapshot(world, "shop-db")
    _lives_on(world, "shop-db", "beta", timedelta(0))
    for path, kind in (("verify", "verify"), ("verify-restore", "verify-restore")):
        answer = client.post(f"/v1/snapshots/{snapshot.id[:14]}/{path}")
        assert answer.status_code == 202, answer.text
        job = answer.json()
        assert (job["kind"], job["host"], job["status"], job["snapshot_id"]) == (
            kind, "beta", "queued", snapshot.id)
        row = world.catalog.get_job(job["id"])
        assert row is not None and row.request == {"kind": kind, "snapshot": snapshot.id}
    _lives_on(world, "shop-db", "beta", timedelta(minutes=10))
    for path in ("verify", "verify-restore"):
        body = assert_error(client.post(f"/v1/snapshots/{snapshot.id}/{path}"), 503,
                            "HostDown")
        assert "host beta has sent no heartbeat" in body["error"]
    assert len(world.catalog.list_jobs()) == 2  # the two queued above, nothing more
