"""Jobs a script can rely on, end to end: ``holdfast serve`` on a free port backs up a
real Postgres with an ``Idempotency-Key`` and ``?wait=true``; the retry is the same
job and the target holds one snapshot; the job's SSE stream shows its phases before
``end``. The daemon is scoped to this test's own container (``HOLDFAST_SCOPE``)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Daemon
from tests.harness.docker_fixtures import container_env, psql
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.docker

LOCK_SECONDS = 6
"""How long a session holds a lock the dump has to wait for: the job stays in
``dumping`` while the test opens its event stream."""


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind, data = "", ""
    for line in lines:
        if line.startswith("event:"):
            kind = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2].strip()
        elif line == "" and data:
            yield kind, json.loads(data)
            kind, data = "", ""


def test_a_keyed_waited_backup_retries_to_the_same_job_and_streams_its_phases(
        daemon_factory: Callable[..., Daemon], postgres_container_factory: Any) -> None:
    scope = f"h3-jobs-{os.urandom(3).hex()}"
    instance = f"jobs-{os.urandom(3).hex()}"
    source = postgres_container_factory(labels={"holdfast.name": instance,
                                                "holdfast.scope": scope})
    psql(source, "CREATE TABLE items (id int PRIMARY KEY, label text);"
                 "INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, 20000) g")
    daemon = daemon_factory(HOLDFAST_SCOPE=scope).start()
    daemon.wait_ready()
    client = daemon.client
    wait_for(lambda: any(i["name"] == instance for i in client.get("/v1/instances").json()),
             60, f"discovery to list {instance}")

    # A session holds a lock pg_dump must wait for, so the job is seen dumping.
    env = container_env(source)
    source.exec_run(["psql", "-X", "-h", "127.0.0.1", "-U", env["POSTGRES_USER"],
                     "-d", env["POSTGRES_DB"], "-c",
                     "BEGIN; LOCK TABLE items IN ACCESS EXCLUSIVE MODE; "
                     f"SELECT pg_sleep({LOCK_SECONDS}); COMMIT;"],
                    environment={"PGPASSWORD": env["POSTGRES_PASSWORD"]}, detach=True)
    wait_for(lambda: psql(source, "SELECT count(*) FROM pg_locks l JOIN pg_class c "
                                  "ON c.oid = l.relation WHERE c.relname = 'items' "
                                  "AND l.mode = 'AccessExclusiveLock'").strip() == "1",
             30, "the lock to be taken")

    url = f"/v1/instances/{instance}/backups"
    headers = {"Idempotency-Key": f"deploy-{instance}"}
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: answers.append(client.post(
        url, params={"wait": "true", "timeout": "120"}, headers=headers, json={},
        timeout=150)))
    waiter.start()
    job_id = wait_for(lambda: next((j["id"] for j in client.get(
        "/v1/jobs", params={"instance": instance, "kind": "backup"}).json()), None),
        30, "the job to be listed")

    seen: list[tuple[str, str, str | None]] = []
    with httpx.stream("GET", f"{daemon.url}/v1/jobs/{job_id}/events", timeout=60,
                      headers=dict(client.headers)) as stream:
        assert stream.status_code == 200
        for kind, job in sse_events(stream.iter_lines()):
            seen.append((kind, job["status"], job["phase"]))
    waiter.join(150)

    (answer,) = answers
    assert answer.status_code == 200, answer.text
    done = answer.json()
    assert (done["id"], done["status"]) == (job_id, "succeeded"), done
    assert seen[-1] == ("end", "succeeded", done["phase"])
    assert ("progress", "running", "dumping") in seen
    assert done["bytes_done"] == done["result"]["size_bytes"] > 0
    assert done["rate"] > 0

    retry = client.post(url, params={"wait": "true"}, headers=headers, json={})
    assert retry.status_code == 200, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == job_id
    listed = client.get("/v1/snapshots", params={"instance": instance}).json()
    assert [s["id"] for s in listed] == [done["snapshot_id"]]
    assert daemon.stop() == 0

