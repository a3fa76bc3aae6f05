"""The daemon as ops leave it running: discovery over Docker events, schedules,
retention, policy overrides, one run per instance, catch-up after downtime,
metrics and structured logs. Real daemon process, real containers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Daemon
from tests.harness.docker_fixtures import DEFAULT_POSTGRES_ENV, psql

pytestmark = pytest.mark.docker

PASSWORD = DEFAULT_POSTGRES_ENV["POSTGRES_PASSWORD"]


def complete_ids(daemon: Daemon, instance: str) -> set[str]:
    snapshots = daemon.client.get("/v1/snapshots", params={"instance": instance}).json()
    return {s["id"] for s in snapshots if s["status"] == "complete"}


def snapshot_dirs(data_dir: Path, instance: str) -> list[str]:
    root = data_dir / "snapshots" / instance
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def metric(daemon: Daemon, name: str, **labels: str) -> float | None:
    text = daemon.client.get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_every_10s_with_last_2_really_snapshots_and_prunes_to_2(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    daemon = daemon_factory().start()
    # Labelled after the daemon started: it must arrive through the event stream.
    source = postgres_container_factory(labels={"holdfast.name": "ticker",
                                                "holdfast.schedule": "@every 10s",
                                                "holdfast.retention": "last=2"})
    psql(source, "CREATE TABLE ticks AS SELECT g FROM generate_series(1, 1000) g")
    scheduled = daemon.wait_for(lambda: (daemon.instance("ticker") or {}).get("next_run"),
                                10, "ticker was not scheduled from its start event")
    assert scheduled

    seen: set[str] = set()

    def three_runs() -> bool:
        seen.update(complete_ids(daemon, "ticker"))
        return len(seen) >= 3
    daemon.wait_for(three_runs, 60, "fewer than 3 scheduled snapshots in 60 s", interval=1)

    kept = daemon.wait_for(lambda: (ids := complete_ids(daemon, "ticker")) and len(ids) == 2
                           and ids, 15, "retention did not prune to 2")
    assert kept <= seen and max(seen) in kept  # the newest ones stay
    assert snapshot_dirs(daemon.data_dir, "ticker") == sorted(kept)

    view = daemon.instance("ticker")
    assert view is not None and view["schedule"] == "@every 10s"
    assert view["retention"] == {"last": 2}
    assert view["last_snapshot"]["status"] == "complete"
    completed = metric(daemon, "holdfast_snapshots_total", instance="ticker", status="complete")
    assert completed is not None and completed >= 3
    assert (metric(daemon, "holdfast_last_success_timestamp_seconds", instance="ticker")
            or 0) > time.time() - 60

    assert daemon.stop() == 0
    events = [json.loads(line) for line in daemon.log_text().splitlines() if line.startswith("{")]
    assert any(e.get("instance") == "ticker" and e.get("job") for e in events)
    assert all(PASSWORD not in json.dumps(e) for e in events)


def test_bad_labels_are_listed_and_removed_containers_unscheduled(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any, docker_client: Any,
) -> None:
    daemon = daemon_factory().start()
    postgres_container_factory(labels={"holdfast.name": "badcron",
                                       "holdfast.schedule": "61 * * * *"})
    good = postgres_container_factory(labels={"holdfast.name": "daily",
                                              "holdfast.schedule": "@daily",
                                              "holdfast.retention": "daily=-1"})
    bad = daemon.wait_for(lambda: daemon.instance("badcron"), 10, "badcron not discovered")
    assert bad["next_run"] is None
    assert any("holdfast.schedule" in error for error in bad["errors"])
    broken = daemon.wait_for(lambda: daemon.instance("daily"), 10, "daily not discovered")
    assert any("holdfast.retention" in error for error in broken["errors"])
    assert broken["next_run"] is None
    assert daemon.client.get("/readyz").status_code == 200

    good.remove(force=True)
    gone = daemon.wait_for(lambda: (v := daemon.instance("daily")) and v["status"] == "missing"
                           and v, 10, "removed container still listed as present")
    assert gone["next_run"] is None and gone["container"] is None


def test_policy_set_through_the_api_overrides_labels_and_survives_restart(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    daemon = daemon_factory().start()
    postgres_container_factory(labels={"holdfast.name": "tuned"})
    daemon.wait_for(lambda: daemon.instance("tuned"), 10, "tuned not discovered")

    refused = daemon.client.put("/v1/instances/tuned/policy", json={"schedule": "@every 0s"})
    assert refused.status_code == 400 and "longer than zero" in refused.json()["error"]
    assert daemon.client.put("/v1/instances/nope/policy", json={}).status_code == 404

    answer = daemon.client.put("/v1/instances/tuned/policy",
                               json={"schedule": "@every 1h", "retention": "last=5"})
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert (view["schedule"], view["retention"], view["policy_source"]) == \
        ("@every 1h", {"last": 5}, "api")
    assert view["next_run"] is not None

    assert daemon.stop() == 0
    daemon.start()
    after = daemon.wait_for(lambda: (v := daemon.instance("tuned")) and v["next_run"] and v,
                            15, "override lost across a restart")
    assert (after["schedule"], after["policy_source"]) == ("@every 1h", "api")

    cleared = daemon.client.delete("/v1/instances/tuned/policy").json()
    assert (cleared["schedule"], cleared["next_run"], cleared["policy_source"]) == \
        (None, None, "labels")


def test_second_request_for_a_running_instance_gets_409_with_the_job(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    daemon = daemon_factory().start()
    source = postgres_container_factory(labels={"holdfast.name": "busy"})
    psql(source, "CREATE TABLE bulk AS SELECT g, md5(g::text) || md5((g + 1)::text) AS v "
                 "FROM generate_series(1, 400000) g")
    daemon.wait_for(lambda: daemon.instance("busy"), 10, "busy not discovered")

    first = daemon.client.post("/v1/instances/busy/backups")
    assert first.status_code == 202
    second = daemon.client.post("/v1/instances/busy/backups")
    assert second.status_code == 409, second.text
    assert second.json()["running"] == first.json()["id"]
    assert daemon.wait_job(first.json()["id"])["status"] == "succeeded"
    assert daemon.client.post("/v1/instances/busy/backups").status_code == 202


def test_schedule_missed_while_down_runs_once_at_start(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    postgres_container_factory(labels={"holdfast.name": "sleepy",
                                       "holdfast.schedule": "@every 6s"})
    daemon = daemon_factory()
    daemon.start()
    first = daemon.wait_for(lambda: complete_ids(daemon, "sleepy"), 20, "no first run")
    assert daemon.stop() == 0
    time.sleep(20)  # three slots pass while the daemon is down

    started = time.time()
    daemon.start()
    new = daemon.wait_for(lambda: complete_ids(daemon, "sleepy") - first, 5,
                          "missed schedule did not run at start")
    assert len(new) == 1  # coalesced: one run, not one per missed slot
    created = [datetime.fromisoformat(s["created_at"]).timestamp() for s in
               daemon.client.get("/v1/snapshots", params={"instance": "sleepy"}).json()
               if s["id"] in new]
    assert created and all(moment < started + 4 for moment in created)
