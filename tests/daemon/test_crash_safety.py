"""Crash safety of ``holdfast serve``: what the catalog and the local target hold
after the daemon is killed, stopped or cut off in the middle of its work.

Every test runs real daemon processes against real postgres containers, catches
a pg_dump in flight (``pg_stat_activity``), does something unfriendly to it, and
then checks state, not exit codes alone: snapshot and job records, the files
(and ``.partial`` files) of the ``local`` target, and that the daemon still
serves and can take a good snapshot afterwards.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from backup.types import Snapshot, SnapshotStatus
from service.adapters.catalog import JobStatus
from tests.daemon.conftest import (
    BASE_IMAGE,
    CatalogReader,
    assert_complete_snapshots_intact,
    assert_nothing_stored_for,
    assert_snapshot_intact,
    data_file,
    dump_in_flight,
    files_of,
    fill_big_table,
    partial_files,
    sha256_of,
    terminate_dumps,
    throttled,
)
from tests.harness.daemon import Daemon, holdfast_json, wait_for
from tests.harness.docker_fixtures import TEST_LABEL, PostgresFactory, psql
from tests.harness.private_dockerd import PrivateDockerd

pytestmark = pytest.mark.docker


def _unique(prefix: str) -> str:
    """Instance names of their own, so that two sessions on one engine never meet."""
    return f"{prefix}-{secrets.token_hex(3)}"


def _aware(moment: datetime | None) -> datetime:
    assert moment is not None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _only_snapshot(catalog: CatalogReader, instance: str) -> Snapshot:
    snapshots = catalog.snapshots(instance)
    assert len(snapshots) == 1, snapshots
    return snapshots[0]


def _messages(daemon: Daemon, run: int | None = None) -> list[str]:
    return [str(record.get("message", "")) for record in daemon.log_records(run)]


def _assert_good_backup(daemon: Daemon, instance: str) -> Snapshot:
    """A backup through the API succeeds and leaves a whole, verifiable file."""
    job = daemon.wait_job(daemon.start_backup(instance)["id"])
    assert job["status"] == "succeeded", job
    snapshot = CatalogReader(daemon.data_dir).snapshot(job["result"]["id"])
    assert snapshot.status == SnapshotStatus.COMPLETE
    assert_snapshot_intact(daemon.data_dir, snapshot)
    assert job["result"]["sha256"] == sha256_of(data_file(daemon.data_dir, snapshot))
    assert job["result"]["size_bytes"] == data_file(daemon.data_dir, snapshot).stat().st_size
    return snapshot


@pytest.fixture
def quiet_big_source(big_source: Container) -> Iterator[Container]:
    """The module's big source, with no pg_dump left over from an earlier test
    (the pg_dump of a killed or cancelled daemon can outlive it for a moment)."""
    terminate_dumps(big_source)
    yield big_source
    terminate_dumps(big_source)


# --- 1. SIGKILL in the middle of a dump ------------------------------------------------


def test_sigkill_mid_dump_is_recovered_at_the_next_start(
    daemon: Daemon, quiet_big_source: Container, postgres_container_factory: PostgresFactory,
) -> None:
    source = quiet_big_source
    name = source.name
    catalog = CatalogReader(daemon.data_dir)
    small = _unique("crash-small")
    postgres_container_factory(labels={"holdfast.name": small})
    daemon.start()
    daemon.wait_ready()

    # Complete snapshots from before the crash: one recovery must leave alone, and
    # one whose file the test truncates while the daemon is down.
    earlier = daemon.wait_job(daemon.start_backup(small)["id"])
    assert earlier["status"] == "succeeded", earlier
    torn = daemon.wait_job(daemon.start_backup(small)["id"])
    assert torn["status"] == "succeeded", torn

    job = daemon.start_backup(name)
    dump_in_flight(source)
    with throttled(source, 0.2):  # keeps the dump going while the test looks around
        wait_for(lambda: partial_files(daemon.data_dir, name), 10, "the dump's .partial file")
        refused = daemon.post(f"/v1/instances/{name}/backups", json={})
        assert refused.status_code == 409, refused.text
        assert refused.json()["running"] == job["id"]
        killed_pid = daemon.pid
        assert daemon.kill() == -signal.SIGKILL

    # What the crash left: a snapshot the catalog still calls running, written by
    # a process that is gone, and its temporary file.
    listed = holdfast_json(daemon.data_dir, "snapshots", name)
    assert [s["status"] for s in listed] == ["running"], listed
    crashed = catalog.snapshot(listed[0]["id"])
    assert crashed.runner is not None and f":{killed_pid}:" in crashed.runner, crashed.runner
    assert partial_files(daemon.data_dir, name), "the crash should have left a .partial file"
    assert not data_file(daemon.data_dir, crashed).exists()
    terminate_dumps(source)
    torn_file = data_file(daemon.data_dir, catalog.snapshot(torn["result"]["id"]))
    with torn_file.open("r+b") as handle:
        handle.truncate(torn_file.stat().st_size // 2)

    daemon.start()
    daemon.wait_ready()

    recovered = catalog.snapshot(crashed.id)
    assert recovered.status == SnapshotStatus.FAILED
    assert recovered.error is not None and recovered.error.startswith("interrupted"), \
        recovered.error
    assert recovered.runner is None
    assert recovered.finished_at is not None
    assert recovered.sha256 is None
    assert daemon.get(f"/v1/snapshots/{crashed.id}").json()["status"] == "failed"
    assert_nothing_stored_for(daemon.data_dir, recovered)
    intact = assert_complete_snapshots_intact(daemon.data_dir)
    assert earlier["result"]["id"] in {s.id for s in intact}
    broken = catalog.snapshot(torn["result"]["id"])
    assert broken.status == SnapshotStatus.FAILED, broken
    assert broken.error is not None and "at start-up" in broken.error, broken.error
    assert files_of(daemon.data_dir, broken.id) == []
    assert any(m.startswith("recovered at start-up: ") and "interrupted run(s)" in m
               for m in _messages(daemon, run=2)), daemon.log_tail()

    fresh = _assert_good_backup(daemon, name)
    assert fresh.id != crashed.id
    mine = {s.id for s in assert_complete_snapshots_intact(daemon.data_dir)
            if s.instance in (name, small)}
    assert mine == {earlier["result"]["id"], fresh.id}


def test_sigkill_mid_dump_does_not_leave_the_job_running_forever(
    daemon: Daemon, quiet_big_source: Container,
) -> None:
    daemon.start()
    daemon.wait_ready()
    job = daemon.start_backup(quiet_big_source.name)
    dump_in_flight(quiet_big_source)
    daemon.kill()
    terminate_dumps(quiet_big_source)

    daemon.start()
    daemon.wait_ready()
    after = daemon.get(f"/v1/jobs/{job['id']}").json()
    assert after["status"] == "failed", after


# --- 2. SIGTERM in the middle of a dump ------------------------------------------------


def test_sigterm_with_a_short_grace_cancels_the_dump_cleanly(
    daemon: Daemon, quiet_big_source: Container,
) -> None:
    source = quiet_big_source
    catalog = CatalogReader(daemon.data_dir)
    daemon.start({"HOLDFAST_SHUTDOWN_GRACE": "1"})
    daemon.wait_ready()

    job = daemon.start_backup(source.name)
    dump_in_flight(source)
    # Throttled hard, the dump cannot finish within the 1 s grace.
    with throttled(source, 0.1):
        started = time.monotonic()
        code = daemon.stop(signal.SIGTERM, timeout=15)
        took = time.monotonic() - started
    assert code == 0, f"exit status {code} after SIGTERM:\n{daemon.log_tail()}"
    assert took >= 1.0, f"exited after {took:.1f}s, before the 1 s grace was over"

    snapshot = _only_snapshot(catalog, source.name)
    assert snapshot.status == SnapshotStatus.FAILED, snapshot
    assert snapshot.error is not None and "cancel" in snapshot.error.lower(), snapshot.error
    assert snapshot.runner is None and snapshot.finished_at is not None
    record = catalog.job(job["id"])
    assert record.status == JobStatus.FAILED, record
    assert record.error is not None and "cancel" in record.error.lower(), record.error
    assert_nothing_stored_for(daemon.data_dir, snapshot)
    messages = _messages(daemon)
    assert any(m.startswith("shutting down") for m in messages), daemon.log_tail()
    assert any("cancelling them" in m for m in messages), daemon.log_tail()
    assert messages[-1] == "stopped", daemon.log_tail()


def test_sigterm_cancels_a_dump_stalled_on_a_lock(
    daemon: Daemon, quiet_big_source: Container,
) -> None:
    """A dump waiting on a lock sends no data, so cancelling between chunks
    cannot see it; shutdown must still end within its bounds."""
    source = quiet_big_source
    catalog = CatalogReader(daemon.data_dir)
    locker = source.exec_run(
        ["psql", "-X", "-d", "appdb", "-c",
         "BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);"],
        environment={"PGUSER": "app"}, detach=True)
    assert locker is not None
    wait_for(lambda: psql(source, "SELECT count(*) FROM pg_locks WHERE mode = "
                                  "'AccessExclusiveLock' AND relation = 'big'::regclass",
                          db="appdb").strip() == "1", 15, "the table lock")
    try:
        daemon.start({"HOLDFAST_SHUTDOWN_GRACE": "1"})
        daemon.wait_ready()
        job = daemon.start_backup(source.name)
        wait_for(lambda: psql(source, "SELECT count(*) FROM pg_stat_activity WHERE "
                                      "application_name = 'pg_dump' AND wait_event_type = 'Lock'",
                              db="postgres").strip() == "1", 30, "pg_dump waiting on the lock")
        started = time.monotonic()
        code = daemon.stop(signal.SIGTERM, timeout=40)
        took = time.monotonic() - started
        assert code == 0, daemon.log_tail()
        assert took < 30, f"shutdown took {took:.0f}s with a stalled dump"
        snapshot = _only_snapshot(catalog, source.name)
        assert snapshot.status == SnapshotStatus.FAILED, snapshot
        assert snapshot.error is not None and "cancel" in snapshot.error.lower(), snapshot.error
        assert catalog.job(job["id"]).status == JobStatus.FAILED
        assert_nothing_stored_for(daemon.data_dir, snapshot)
    finally:
        psql(source, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                     "query LIKE '%pg_sleep(120)%' AND pid <> pg_backend_pid()", db="postgres")


def test_sigterm_with_the_default_grace_lets_the_dump_finish(
    daemon: Daemon, quiet_big_source: Container,
) -> None:
    source = quiet_big_source
    catalog = CatalogReader(daemon.data_dir)
    daemon.start()
    daemon.wait_ready()

    job = daemon.start_backup(source.name)
    dump_in_flight(source)
    with throttled(source, 0.2):  # the dump then lasts several seconds past the SIGTERM
        signalled_at = datetime.now(UTC)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait_exit(timeout=120)
        exited_at = datetime.now(UTC)
    assert code == 0, f"exit status {code} after SIGTERM:\n{daemon.log_tail()}"

    snapshot = _only_snapshot(catalog, source.name)
    assert snapshot.status == SnapshotStatus.COMPLETE, snapshot
    assert _aware(snapshot.created_at) < signalled_at < _aware(snapshot.finished_at) <= exited_at
    assert_snapshot_intact(daemon.data_dir, snapshot)
    record = catalog.job(job["id"])
    assert record.status == JobStatus.SUCCEEDED, record
    assert record.result is not None and record.result["id"] == snapshot.id
    assert partial_files(daemon.data_dir, source.name) == []
    messages = _messages(daemon)
    assert not any("cancelling them" in m for m in messages), daemon.log_tail()
    assert messages[-1] == "stopped", daemon.log_tail()


# --- 3. the database container dies in the middle of a dump ------------------------------


def test_database_container_killed_mid_dump(
    daemon: Daemon, postgres_container_factory: PostgresFactory,
) -> None:
    doomed, survivor = _unique("doomed"), _unique("survivor")
    victim = postgres_container_factory(labels={"holdfast.name": doomed})
    fill_big_table(victim, 400_000)
    postgres_container_factory(labels={"holdfast.name": survivor})
    catalog = CatalogReader(daemon.data_dir)
    daemon.start()
    daemon.wait_ready()

    job = daemon.start_backup(doomed)
    dump_in_flight(victim)
    victim.kill()

    failed = daemon.wait_job(job["id"], timeout=60)
    assert failed["status"] == "failed", failed
    assert failed["error"] and "\n" not in failed["error"], failed["error"]
    snapshot = _only_snapshot(catalog, doomed)
    assert snapshot.status == SnapshotStatus.FAILED, snapshot
    assert snapshot.error and "\n" not in snapshot.error.strip(), snapshot.error
    assert "pg_dump" in snapshot.error, snapshot.error
    assert_nothing_stored_for(daemon.data_dir, snapshot)

    assert daemon.get("/healthz").status_code == 200
    ready = daemon.get("/readyz")
    assert ready.status_code == 200, ready.text
    again = daemon.post(f"/v1/instances/{doomed}/backups", json={})
    assert again.status_code == 409 and "not running" in again.json()["error"], again.text
    assert daemon.alive()

    _assert_good_backup(daemon, survivor)


# --- 4. the Docker engine goes away and comes back -----------------------------------------


def _run_labelled(client: docker.DockerClient, name: str) -> Any:
    return client.containers.run(
        BASE_IMAGE, ["sleep", "infinity"], name=name, detach=True, stop_signal="SIGKILL",
        labels={"holdfast.enable": "true", "holdfast.engine": "postgres", TEST_LABEL: "1"},
    )


def _event_seen(daemon: Daemon, container_id: str) -> bool:
    prefix = f"container {container_id[:12]} start;"
    return any(record.get("logger") == "service.entrypoints.daemon.discovery"
               and str(record.get("message", "")).startswith(prefix)
               for record in daemon.log_records())


def test_docker_engine_lost_and_back(daemon: Daemon, private_dockerd: PrivateDockerd) -> None:
    engine = private_dockerd
    engine.start()
    engine.load_image(BASE_IMAGE)
    client = engine.client()
    try:
        _run_labelled(client, "hf-priv-first")
    finally:
        client.close()

    daemon.start({"DOCKER_HOST": engine.host})
    daemon.wait_ready()
    assert "hf-priv-first" in daemon.instance_names()

    engine.stop()
    # Discovery notices the loss when its event stream ends, a moment after the
    # engine has gone; until then it still answers the listing from what it knew.
    daemon.wait_for(lambda: any(m.startswith("lost the Docker engine")
                                for m in _messages(daemon)), 30, "discovery to notice the loss")
    # It keeps serving what needs no engine, and keeps saying it has none, over
    # several seconds (a count of checks, so a slow machine does not make it fail).
    for _ in range(8):
        assert daemon.get("/healthz").status_code == 200
        ready = daemon.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert ready.json()["checks"]["catalog"] == "ok"
        assert ready.json()["checks"]["docker"] != "ok"
        assert daemon.get("/v1/snapshots").status_code == 200
        listing = daemon.get("/v1/instances")
        assert listing.status_code == 503, listing.text
        time.sleep(0.5)
    assert daemon.alive(), daemon.log_tail()

    engine.start()
    client = engine.client()
    try:
        client.containers.get("hf-priv-first").start()
        daemon.wait_ready(timeout=40)
        second = _run_labelled(client, "hf-priv-second")
        # Discovery may still be in its back-off when the container starts (then
        # its re-listing finds it without an event); restarting the container
        # makes fresh events until one is seen being followed.
        deadline = time.monotonic() + 40
        poke_at = time.monotonic() + 4
        while not _event_seen(daemon, second.id):
            assert time.monotonic() < deadline, \
                f"discovery never followed an event after the engine came back:\n" \
                f"{daemon.log_tail()}"
            if time.monotonic() >= poke_at:
                second.restart(timeout=0)
                poke_at = time.monotonic() + 4
            time.sleep(0.25)
        names = daemon.instance_names()
        assert {"hf-priv-first", "hf-priv-second"} <= names, names
        first = next(v for v in daemon.get("/v1/instances").json()
                     if v["name"] == "hf-priv-first")
        assert first["status"] == "running"
    finally:
        client.close()
    assert daemon.alive()
    assert daemon.stop() == 0


# --- 7. SIGKILL while a stop-during-backup volume snapshot has the app stopped ---------


def test_sigkill_while_an_app_is_stopped_for_a_volume_snapshot_restarts_it_at_next_start(
    daemon: Daemon, docker_client: docker.DockerClient, test_network: str,
) -> None:
    from service.adapters.docker.adapter import HELPER_LABEL

    name = _unique("crash-vol")
    volume = f"{name}-data"
    docker_client.volumes.create(name=volume, labels={TEST_LABEL: "1"})
    app = None
    try:
        # Enough incompressible data that the archive is still streaming when
        # the test sees the app stopped and kills the daemon.
        docker_client.containers.run(
            BASE_IMAGE, ["sh", "-c", "head -c 700000000 /dev/urandom > /v/blob"], remove=True,
            network_mode="none", volumes={volume: {"bind": "/v", "mode": "rw"}},
            labels={TEST_LABEL: "1"})
        app = docker_client.containers.run(
            BASE_IMAGE, ["sleep", "infinity"], name=name, detach=True, network=test_network,
            stop_signal="SIGKILL", volumes={volume: {"bind": "/data", "mode": "rw"}},
            labels={TEST_LABEL: "1", "holdfast.enable": "true", "holdfast.engine": "volume",
                    "holdfast.stop-during-backup": "true"})
        daemon.start()
        daemon.wait_ready()
        wait_for(lambda: name in daemon.instance_names(), 30, "discovery of the app")

        job = daemon.start_backup(name)

        def stopped() -> bool:
            assert app is not None
            app.reload()
            status: str = app.status
            return status == "exited"
        wait_for(stopped, 60, "the app stopped for its snapshot")
        killed = daemon.pid

        def orphans() -> list[Any]:
            return [c for c in docker_client.containers.list(
                all=True, filters={"label": HELPER_LABEL})
                if f":{killed}:" in c.labels[HELPER_LABEL]]

        def archiving() -> list[Any]:
            return [c for c in orphans() if c.status == "running"]
        # The daemon creates the helper only after the app has stopped: wait for it.
        daemon.wait_for(archiving, 60, "the archive running in a helper container")
        assert daemon.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
        assert daemon.kill() == -signal.SIGKILL
        # Not a wait for state: a window in which a wrongly started app would show.
        time.sleep(1)
        app.reload()
        assert app.status == "exited", "nothing but recovery may start it again"

        daemon.start()
        daemon.wait_ready()
        app.reload()
        assert app.status == "running"
        snapshot = CatalogReader(daemon.data_dir).snapshots(name)[0]
        assert snapshot.status == SnapshotStatus.FAILED
        assert snapshot.error is not None and snapshot.error.startswith("interrupted")
        assert_nothing_stored_for(daemon.data_dir, snapshot)
        assert orphans() == []
        messages = " ".join(str(r.get("message", "")) for r in daemon.log_records(run=2))
        assert f"started container {name} again" in messages
        assert "1 leftover helper container(s) removed" in messages

        # A later snapshot stops and starts it again and completes.
        done = daemon.wait_job(daemon.start_backup(name)["id"])
        assert done["status"] == "succeeded", done
        app.reload()
        assert app.status == "running"
    finally:
        if app is not None:
            app.remove(force=True)
        docker_client.volumes.get(volume).remove(force=True)
