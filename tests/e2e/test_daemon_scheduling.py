"""The daemon as ops leave it running: discovery over Docker events, schedules,
retention, policy overrides, one run per instance, catch-up after downtime,
metrics and structured logs. Real daemon process, real containers."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.conftest import Daemon
from tests.harness.docker_fixtures import DEFAULT_POSTGRES_ENV, psql

pytestmark = pytest.mark.docker

PASSWORD = DEFAULT_POSTGRES_ENV["POSTGRES_PASSWORD"]


def unique(name: str) -> str:
    """An instance name of its own: the daemon adopts every labelled container on
    the engine, other test sessions' too, and two of one name would meet."""
    return f"{name}-{os.urandom(3).hex()}"


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
    began = time.time()
    daemon = daemon_factory().start()
    ticker = unique("ticker")
    # Labelled after the daemon started: it must arrive through the event stream.
    source = postgres_container_factory(labels={"holdfast.name": ticker,
                                                "holdfast.schedule": "@every 10s",
                                                "holdfast.retention": "last=2"})
    psql(source, "CREATE TABLE ticks AS SELECT g FROM generate_series(1, 1000) g")
    daemon.wait_for(lambda: (daemon.instance(ticker) or {}).get("next_run"),
                    30, "ticker to be scheduled from its start event")

    seen: set[str] = set()

    def three_runs() -> bool:
        seen.update(complete_ids(daemon, ticker))
        return len(seen) >= 3
    daemon.wait_for(three_runs, 120, "3 scheduled snapshots", interval=1)

    def pruned_to_two() -> set[str] | None:
        # Runs go on every 10 s: judge a moment when no run or prune is half-done,
        # that is when the complete snapshots and the target's directories agree.
        ids = complete_ids(daemon, ticker)
        seen.update(ids)
        settled = len(ids) == 2 and snapshot_dirs(daemon.data_dir, ticker) == sorted(ids) \
            and complete_ids(daemon, ticker) == ids
        return ids if settled else None
    kept = daemon.wait_for(pruned_to_two, 60, "retention to prune to 2")
    assert sorted(kept) == sorted(seen)[-2:]  # the newest ones stay (ids sort by time)

    view = daemon.wait_for(lambda: (v := daemon.instance(ticker)) and v["last_snapshot"]
                           and v["last_snapshot"]["status"] == "complete" and v,
                           30, "a view whose last snapshot is complete (not one in progress)")
    assert view["schedule"] == "@every 10s"
    assert view["retention"] == {"last": 2}
    # The metrics follow each run's catalog rows a moment later.
    daemon.wait_for(lambda: (metric(daemon, "holdfast_snapshots_total", instance=ticker,
                                    status="complete") or 0) >= 3,
                    30, "holdfast_snapshots_total to count 3 complete snapshots")
    assert (metric(daemon, "holdfast_last_success_timestamp_seconds", instance=ticker)
            or 0) >= began

    assert daemon.stop() == 0
    events = [json.loads(line) for line in daemon.log_text().splitlines() if line.startswith("{")]
    assert any(e.get("instance") == ticker and e.get("job") for e in events)
    assert all(PASSWORD not in json.dumps(e) for e in events)


def test_bad_labels_are_listed_and_removed_containers_unscheduled(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any, docker_client: Any,
) -> None:
    daemon = daemon_factory().start()
    badcron, daily = unique("badcron"), unique("daily")
    postgres_container_factory(labels={"holdfast.name": badcron,
                                       "holdfast.schedule": "61 * * * *"})
    good = postgres_container_factory(labels={"holdfast.name": daily,
                                              "holdfast.schedule": "@daily",
                                              "holdfast.retention": "daily=-1"})
    bad = daemon.wait_for(lambda: daemon.instance(badcron), 30, "discovery of badcron")
    assert bad["next_run"] is None
    assert any("holdfast.schedule" in error for error in bad["errors"])
    broken = daemon.wait_for(lambda: daemon.instance(daily), 30, "discovery of daily")
    assert any("holdfast.retention" in error for error in broken["errors"])
    assert broken["next_run"] is None
    daemon.wait_ready()  # bad labels do not make the daemon unready

    good.remove(force=True)
    gone = daemon.wait_for(lambda: (v := daemon.instance(daily)) and v["status"] == "missing"
                           and v, 30, "the removed container to be listed as missing")
    assert gone["next_run"] is None and gone["container"] is None


def test_policy_set_through_the_api_overrides_labels_and_survives_restart(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    daemon = daemon_factory().start()
    tuned = unique("tuned")
    postgres_container_factory(labels={"holdfast.name": tuned})
    daemon.wait_for(lambda: daemon.instance(tuned), 30, "discovery of tuned")

    refused = daemon.client.put(f"/v1/instances/{tuned}/policy", json={"schedule": "@every 0s"})
    assert refused.status_code == 400 and "longer than zero" in refused.json()["error"]
    assert daemon.client.put("/v1/instances/nope/policy", json={}).status_code == 404

    answer = daemon.client.put(f"/v1/instances/{tuned}/policy",
                               json={"schedule": "@every 1h", "retention": "last=5"})
    assert answer.status_code == 200, answer.text
    view = answer.json()
    assert (view["schedule"], view["retention"], view["policy_source"]) == \
        ("@every 1h", {"last": 5}, "api")
    assert view["next_run"] is not None

    assert daemon.stop() == 0
    daemon.start()
    after = daemon.wait_for(lambda: (v := daemon.instance(tuned)) and v["next_run"] and v,
                            30, "the override to be scheduled again after a restart")
    assert (after["schedule"], after["policy_source"]) == ("@every 1h", "api")

    cleared = daemon.client.delete(f"/v1/instances/{tuned}/policy").json()
    assert (cleared["schedule"], cleared["next_run"], cleared["policy_source"]) == \
        (None, None, "labels")


def test_second_request_for_a_running_instance_gets_409_with_the_job(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    daemon = daemon_factory().start()
    busy = unique("busy")
    source = postgres_container_factory(labels={"holdfast.name": busy})
    psql(source, "CREATE TABLE bulk AS SELECT g, md5(g::text) || md5((g + 1)::text) AS v "
                 "FROM generate_series(1, 400000) g")
    daemon.wait_for(lambda: daemon.instance(busy), 30, "discovery of busy")

    first = daemon.client.post(f"/v1/instances/{busy}/backups")
    assert first.status_code == 202
    second = daemon.client.post(f"/v1/instances/{busy}/backups")
    assert second.status_code == 409, second.text
    assert second.json()["running"] == first.json()["id"]
    assert daemon.wait_job(first.json()["id"])["status"] == "succeeded"
    # Once the job is seen finished, the instance is free again at once.
    assert daemon.client.post(f"/v1/instances/{busy}/backups").status_code == 202


def test_schedule_missed_while_down_runs_once_at_start(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    sleepy = unique("sleepy")
    postgres_container_factory(labels={"holdfast.name": sleepy,
                                       "holdfast.schedule": "@every 6s"})
    daemon = daemon_factory()
    daemon.start()
    first = daemon.wait_for(lambda: complete_ids(daemon, sleepy), 60, "a first run")
    assert daemon.stop() == 0
    time.sleep(20)  # three slots pass while the daemon is down

    daemon.start()

    def catch_up_job() -> str | None:
        # The catch-up is the run queued right after discovery's first listing
        # found the slot missed; judged by the daemon's log, not the clock.
        records = [r for r in daemon.log_records(run=2) if r.get("instance") == sleepy]
        missed = [i for i, r in enumerate(records)
                  if "missed its schedule" in str(r.get("message", ""))]
        queued = [r["job"] for r in records[missed[0]:] if r.get("job")
                  and str(r.get("message", "")).startswith("scheduled backup")] if missed else []
        return queued[0] if queued else None
    job = daemon.wait_job(daemon.wait_for(catch_up_job, 60, "the missed run to be queued"))
    assert job["status"] == "succeeded", job
    missed = [r for r in daemon.log_records(run=2) if r.get("instance") == sleepy
              and "missed its schedule" in str(r.get("message", ""))]
    assert len(missed) == 1, missed  # coalesced: one run, not one per missed slot
    assert job["result"]["id"] in complete_ids(daemon, sleepy) - first


def test_the_daemon_registers_its_host_beats_and_takes_its_name_back_after_a_restart(
    daemon_factory: Callable[..., Daemon], postgres_container_factory: Any,
) -> None:
    host = unique("hf-e2e-host")
    daemon = daemon_factory(HOLDFAST_HOST_NAME=host, HOLDFAST_HEARTBEAT_INTERVAL="1").start()
    postgres_container_factory(labels={"holdfast.name": unique("counted")})

    def shown() -> dict[str, Any] | None:
        listed = daemon.client.get("/v1/hosts").json()
        return next((h for h in listed if h["name"] == host and h["instances"] >= 1), None)

    first = daemon.wait_for(shown, 30, "a heartbeat counting the discovered instance")
    assert first["status"] == "alive"
    assert first["engine_version"] == docker.from_env().version()["Version"]
    beat = first["last_heartbeat"]
    daemon.wait_for(lambda: (h := shown()) and h["last_heartbeat"] != beat, 10, "a later beat")

    assert daemon.stop() == 0
    daemon.start()  # the same machine, its old process gone: the name is its own again
    again = daemon.wait_for(shown, 30, "the host after a restart")
    assert again["started_at"] != first["started_at"] and again["status"] == "alive"
