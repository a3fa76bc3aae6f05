"""The ``holdfast`` CLI against real PostgreSQL containers: back up, list, restore,
and every way that can go wrong that a user will meet.

Round trips are judged on the data (row counts and checksums per table,
sequences, schema objects, roles), never on exit codes alone. Failures are
judged on their exit code, their single stderr line, and on what they leave
behind: no snapshot row, no data object, no half-made container or volume.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from pathlib import Path
from typing import Any

import docker
import pytest
import zstandard
from docker.models.containers import Container

from tests.harness.docker_fixtures import PGDATA, PostgresFactory, container_env, psql
from tests.harness.waiting import wait_for
from tests.integration.conftest import (
    KNOWN_SECRETS,
    READER_PASSWORD,
    DockerCleanup,
    Holdfast,
    Source,
    container_exists,
    fingerprint,
    last_line,
    one_line,
    volume_exists,
)

pytestmark = pytest.mark.docker

DATABASES = ("appdb", "reports")



def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def data_file(holdfast: Holdfast, snapshot: dict[str, Any]) -> Path:
    return holdfast.snapshots_dir / str(snapshot["instance"]) / str(snapshot["id"]) / "data.hfa.zst"


def postgres_env(container: Container) -> dict[str, str]:
    return {k: v for k, v in container_env(container).items() if k.startswith("POSTGRES_")}


def network_address(container: Container) -> str:
    """The container's address on its (first) network: connections from it are
    not loopback, so pg_hba's password rule applies rather than loopback trust."""
    container.reload()
    networks = container.attrs["NetworkSettings"]["Networks"]
    return str(next(iter(networks.values()))["IPAddress"])


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


# --- 1. the round trip --------------------------------------------------------------


def test_round_trip_restores_data_roles_and_objects_and_leaks_no_secret(
    holdfast: Holdfast, pg_source: Source, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    src = pg_source
    assert src.password in KNOWN_SECRETS  # so every CLI output is checked for it
    before = {db: fingerprint(src.container, db) for db in DATABASES}
    assert before["appdb"]["tables"]["public.orders"].startswith("50000:")
    assert before["appdb"]["tables"]["public.audit_log"].startswith("100:")
    assert before["reports"]["tables"]["public.monthly"].startswith("12:")
    assert before["appdb"]["views"] == ["public.customer_totals"]
    assert any(role.startswith("reader:true:") for role in before["appdb"]["roles"])
    assert before["appdb"]["sequences"][0].startswith("public.audit_log_id_seq=")
    assert "public.invoice_no=1028" in before["appdb"]["sequences"]
    assert before["appdb"]["triggers"] == ["orders.orders_audit"]

    # instances: the source is discovered as a postgres instance, with no environment.
    instances = holdfast.json("instances")
    raw_instances = holdfast.calls[-1].stdout
    mine = [view for view in instances if view["name"] == src.name]
    assert len(mine) == 1, raw_instances
    view = mine[0]
    assert view["engine"] == "postgres"
    assert view["container"] == src.name
    assert view["container_id"] == src.container.id
    assert view["status"] == "running"
    assert view["last_snapshot"] is None
    assert not {"env", "environment"} & set(view), view
    assert "POSTGRES_PASSWORD" not in raw_instances
    assert src.password not in raw_instances

    # backup: complete, and the stored object is what the snapshot says it is.
    first = holdfast.json("backup", src.name)
    assert first["status"] == "complete", first
    assert first["instance"] == src.name
    assert first["engine"] == "postgres"
    assert first["target"] == "local"
    assert first["size_bytes"] > 0
    stored = data_file(holdfast, first)
    assert stored.is_file()
    assert stored.stat().st_size == first["size_bytes"]
    assert sha256_of(stored) == first["sha256"]
    manifest_path = stored.parent / "manifest.json"
    assert manifest_path.is_file()
    manifest_bytes = manifest_path.read_bytes()
    manifest = json.loads(manifest_bytes)
    assert manifest["engine"] == "postgres"
    assert manifest["instance"] == src.name
    assert manifest["image"] == src.container.attrs["Config"]["Image"]
    assert manifest["image_id"] == src.container.image.id
    assert manifest["sha256"] == first["sha256"]
    assert src.password.encode() not in manifest_bytes

    # snapshots: newest first.
    second = holdfast.json("backup", src.name)
    assert second["status"] == "complete", second
    listed = holdfast.json("snapshots", src.name)
    assert [s["id"] for s in listed] == [second["id"], first["id"]]
    assert listed[0]["created_at"] >= listed[1]["created_at"]
    assert all(s["status"] == "complete" for s in listed)

    # restore the older one into a fresh container.
    new = docker_cleanup.restored(unique("hf-it-restored"))
    result = holdfast.json("restore", first["id"], "--name", new)
    assert result["snapshot_id"] == first["id"]
    assert result["container"] == new
    assert result["volumes"] == [f"{new}-data"]
    assert result["image"] == manifest["image"]

    restored = docker_client.containers.get(new)
    assert restored.id == result["container_id"]
    assert restored.status == "running"
    assert restored.attrs["Config"]["Image"] == manifest["image"]
    assert restored.image.id == manifest["image_id"]
    mounts = {mount["Destination"]: mount for mount in restored.attrs["Mounts"]}
    assert mounts[PGDATA]["Type"] == "volume"
    assert mounts[PGDATA]["Name"] == f"{new}-data"
    assert docker_client.volumes.get(f"{new}-data").attrs["Labels"].get(
        "holdfast.restored-from") == first["id"]
    assert postgres_env(restored) == postgres_env(src.container)

    for db in DATABASES:
        assert fingerprint(restored, db) == before[db], f"database {db} differs after restore"

    # The role came back with its password, checked over TCP (not loopback trust).
    address = network_address(restored)
    assert psql(restored, "SELECT current_user", user="reader", db="appdb",
                password=READER_PASSWORD, host=address) == "reader\n"
    with pytest.raises(AssertionError, match="password authentication failed"):
        psql(restored, "SELECT 1", user="reader", db="appdb", password="not-the-password",
             host=address)
    assert psql(restored, "SELECT count(*) FROM monthly", user="reader", db="reports",
                password=READER_PASSWORD, host=address) == "12\n"
    # The trigger and its function work, not just exist.
    psql(restored, "UPDATE orders SET amount = amount WHERE id <= 3")
    assert psql(restored, "SELECT count(*) FROM audit_log") == "103\n"

    # The source is untouched.
    current = docker_client.containers.get(src.name)
    assert current.id == src.container.id
    assert current.status == "running"
    for db in DATABASES:
        assert fingerprint(src.container, db) == before[db]

    # No secret in the catalog or any manifest (CLI outputs are checked on every call).
    catalog_files = holdfast.catalog_files()
    assert catalog_files
    for path in [*catalog_files, *holdfast.snapshots_dir.rglob("manifest.json")]:
        content = path.read_bytes()
        for secret in KNOWN_SECRETS:
            assert secret.encode() not in content, f"a password is stored in {path}"


# --- 2. restore conflicts -------------------------------------------------------------


def test_restore_into_a_taken_name_is_a_conflict_and_creates_no_volume(
    holdfast: Holdfast, pg_source: Source, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    snapshot = holdfast.json("backup", pg_source.name)
    volumes_before = {volume.name for volume in docker_client.volumes.list()}

    _, line = holdfast.fail("restore", snapshot["id"], "--name", pg_source.name, code=4)
    assert pg_source.name in line

    # A free container name whose volume name is taken is a conflict too.
    free = docker_cleanup.restored(unique("hf-it-volclash"))
    docker_client.volumes.create(name=f"{free}-data", labels={"holdfast.test": "1"})
    volumes_before.add(f"{free}-data")
    _, line = holdfast.fail("restore", snapshot["id"], "--name", free, code=4)
    assert f"{free}-data" in line
    assert not container_exists(docker_client, free)

    volumes_after = {volume.name for volume in docker_client.volumes.list()}
    # The engine may be shared with other test sessions, so only volumes this
    # restore could have made count: named after it, or labelled with the snapshot.
    new = volumes_after - volumes_before
    made_here = {v for v in new if v.startswith((pg_source.name, free))} | {
        volume.name for volume in docker_client.volumes.list(
            filters={"label": f"holdfast.restored-from={snapshot['id']}"})
    }
    assert made_here == set(), f"volumes created by a refused restore: {made_here}"
    assert docker_client.containers.get(pg_source.name).id == pg_source.container.id


def test_restore_force_replaces_an_unused_leftover_volume_but_never_one_in_use(
    holdfast: Holdfast, pg_source: Source, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    snapshot = holdfast.json("backup", pg_source.name)
    name = docker_cleanup.restored(unique("hf-it-force"))
    # A leftover volume from an earlier container, holding stale files.
    docker_client.volumes.create(name=f"{name}-data", labels={"holdfast.test": "1"})
    docker_client.containers.run(
        "holdfast-test/base:bookworm", ["sh", "-c", "echo stale > /v/STALE"], remove=True,
        network_mode="none", volumes={f"{name}-data": {"bind": "/v", "mode": "rw"}},
        labels={"holdfast.test": "1"})

    _, line = holdfast.fail("restore", snapshot["id"], "--name", name, code=4)
    assert "--force" in line

    # Used by a (stopped) container: --force still refuses and changes nothing.
    holder = docker_client.containers.create(
        "holdfast-test/base:bookworm", ["true"], name=unique("hf-it-holder"),
        labels={"holdfast.test": "1"}, volumes={f"{name}-data": {"bind": "/v", "mode": "rw"}})
    try:
        _, line = holdfast.fail("restore", snapshot["id"], "--name", name, "--force", code=4)
        assert holder.name in line
    finally:
        holder.remove(force=True)
    assert not container_exists(docker_client, name)

    restored = holdfast.json("restore", snapshot["id"], "--name", name, "--force")
    assert restored["volumes"] == [f"{name}-data"]
    new = docker_client.containers.get(name)
    for db in DATABASES:
        assert fingerprint(new, db) == fingerprint(pg_source.container, db)
    listing = new.exec_run(["ls", "-A", PGDATA]).output.decode()
    assert "STALE" not in listing


# --- 3. stopped container -------------------------------------------------------------


def test_backup_of_a_stopped_container_is_refused(
    holdfast: Holdfast, postgres_container_factory: PostgresFactory,
) -> None:
    container = postgres_container_factory()
    container.stop(timeout=30)

    _, line = holdfast.fail("backup", container.name, code=4)
    assert "not running" in line
    assert holdfast.json("snapshots") == []
    assert not [p for p in holdfast.snapshots_dir.rglob("*") if p.is_file()]


# --- 4. missing credentials ---------------------------------------------------------


def test_backup_without_postgres_password_names_the_variable(
    holdfast: Holdfast, postgres_container_factory: PostgresFactory,
) -> None:
    instance = unique("hf-it-nopw")
    labels = {"holdfast.name": instance}
    original = postgres_container_factory(labels=labels)
    volume = f"{original.name}-data"
    original.stop(timeout=30)
    original.remove()

    # The entrypoint only demands POSTGRES_PASSWORD for an empty data directory.
    again = postgres_container_factory(env={"POSTGRES_PASSWORD": None}, labels=labels,
                                       volume=volume)
    assert "POSTGRES_PASSWORD" not in container_env(again)

    _, line = holdfast.fail("backup", instance, code=2)
    assert "POSTGRES_PASSWORD" in line
    assert holdfast.json("snapshots") == []


# --- 5. identity across re-creation ---------------------------------------------------


def test_instance_name_survives_container_recreation(
    holdfast: Holdfast, postgres_container_factory: PostgresFactory,
) -> None:
    name = unique("keep-me")  # another session's keep-me would be listed too
    labels = {"holdfast.name": name}
    old = postgres_container_factory(labels=labels)
    snapshot = holdfast.json("backup", name)
    assert snapshot["status"] == "complete"
    old.remove(force=True, v=True)

    gone = [v for v in holdfast.json("instances") if v["name"] == name]
    assert len(gone) == 1
    assert gone[0]["status"] == "missing"
    assert gone[0]["last_snapshot"]["id"] == snapshot["id"]

    new = postgres_container_factory(labels=labels)
    assert new.name != old.name
    views = [v for v in holdfast.json("instances") if v["name"] == name]
    assert len(views) == 1, views
    assert views[0]["container_id"] == new.id
    assert views[0]["container"] == new.name
    assert views[0]["status"] == "running"
    assert views[0]["last_snapshot"]["id"] == snapshot["id"]


# --- 6. a dump that dies halfway -------------------------------------------------------

BIG_ROWS = 600_000  # ~95 MB on disk: its COPY lasts well over the 300 ms the killer waits
TERMINATE_DUMP_IN_COPY = """
DO $$
DECLARE
    killed int := 0;
BEGIN
    FOR i IN 1..6000 LOOP
        PERFORM pg_stat_clear_snapshot();
        SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) INTO killed
        FROM pg_stat_activity
        WHERE application_name = 'pg_dump' AND state = 'active' AND query LIKE 'COPY %'
            AND clock_timestamp() - query_start > interval '300 milliseconds';
        EXIT WHEN killed > 0;
        PERFORM pg_sleep(0.01);
    END LOOP;
    IF killed = 0 THEN
        RAISE EXCEPTION 'no pg_dump backend was copying data within 60 s';
    END IF;
END
$$;
"""


class TopWatcher(threading.Thread):
    """Polls ``docker top`` of a container until stopped, keeping every listing."""

    def __init__(self, container_id: str) -> None:
        super().__init__(daemon=True)
        self.container_id = container_id
        self.listings: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        client = docker.from_env()  # docker-py clients are not shared across threads
        try:
            container = client.containers.get(self.container_id)
            while not self.stopping.is_set():
                top = container.top(ps_args="-eo pid,args")
                self.listings.append("\n".join(" ".join(p) for p in top["Processes"] or []))
                self.stopping.wait(0.05)
        finally:
            client.close()


def test_dump_killed_halfway_records_a_failed_snapshot_and_stores_nothing(
    holdfast: Holdfast, postgres_container_factory: PostgresFactory,
) -> None:
    container = postgres_container_factory()
    password = container_env(container)["POSTGRES_PASSWORD"]
    psql(container, "CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) || "
                    f"md5((g + 2)::text) || md5((g + 3)::text) AS payload "
                    f"FROM generate_series(1, {BIG_ROWS}) g")

    watcher = TopWatcher(container.id)
    watcher.start()
    try:
        with holdfast.popen("backup", container.name, "--json") as process:
            # Killed only once the watcher has seen it: on a busy machine one
            # `docker top` can take longer than the dump lives.
            wait_for(lambda: any("pg_dump" in listing for listing in watcher.listings), 60,
                     "docker top to show the pg_dump")
            psql(container, TERMINATE_DUMP_IN_COPY, db="postgres")
            proc = holdfast.finish(process)
    finally:
        watcher.stopping.set()
        watcher.join(timeout=30)

    assert proc.returncode != 0, proc.stdout
    assert proc.stdout == ""
    assert last_line(proc).startswith("holdfast: ")
    assert "pg_dump" in last_line(proc)

    # While the dump ran, its processes were visible, and no password with them.
    assert any("pg_dump" in listing for listing in watcher.listings), watcher.listings[-3:]
    assert not [listing for listing in watcher.listings if password in listing]

    snapshots = holdfast.json("snapshots", container.name)
    assert len(snapshots) == 1, snapshots
    assert snapshots[0]["status"] == "failed"
    assert snapshots[0]["error"]
    assert snapshots[0]["sha256"] is None
    leftovers = [p for p in holdfast.snapshots_dir.rglob("*") if p.is_file()]
    assert leftovers == [], "a failed dump left files in the target"

    one_line(proc)


# --- 7. a corrupt object ---------------------------------------------------------------

FLIP_BYTES = 16


def flip_near_the_middle(path: Path, *, zstd_notices: bool) -> int:
    """Invert FLIP_BYTES bytes at the first offset from the middle of ``path``
    that zstd rejects as soon as it decodes that block (or, with
    ``zstd_notices=False``, decodes silently to wrong bytes, so the damage
    reaches the database tools and only the frame checksum at the very end or
    the manifest's sha256 can tell); returns the offset.

    Which kind a flip is depends on what that part of the object holds, so each
    test chooses its kind explicitly to stay deterministic.
    """
    original = path.read_bytes()
    for offset in range(len(original) // 2, len(original) - FLIP_BYTES, 31):
        blob = bytearray(original)
        for index in range(offset, offset + FLIP_BYTES):
            blob[index] ^= 0xFF
        # Decode only up to a little past the flip (zstd blocks are at most
        # 128 KiB), so the frame checksum at the end does not count as noticing.
        decompressor = zstandard.ZstdDecompressor().decompressobj()
        try:
            decompressor.decompress(bytes(blob[: offset + FLIP_BYTES + 256 * 1024]))
            rejected = False
        except zstandard.ZstdError:
            rejected = True
        if rejected == zstd_notices:
            path.write_bytes(bytes(blob))
            return offset
    raise AssertionError(f"no offset in the second half of {path} suits zstd_notices="
                         f"{zstd_notices}")


def test_restore_of_a_corrupt_object_fails_and_leaves_nothing(
    holdfast: Holdfast, pg_source: Source, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    snapshot = holdfast.json("backup", pg_source.name)
    flip_near_the_middle(data_file(holdfast, snapshot), zstd_notices=True)

    name = docker_cleanup.restored(unique("hf-it-flipped"))
    proc = holdfast.run("restore", snapshot["id"], "--name", name)
    assert proc.returncode != 0, proc.stdout
    assert last_line(proc).startswith("holdfast: ")
    reason = last_line(proc).replace(name, "NEW").replace(snapshot["id"], "ID")
    assert re.search(r"corrupt|sha256|zstd", reason, re.IGNORECASE), proc.stderr
    assert not container_exists(docker_client, name)
    assert not volume_exists(docker_client, f"{name}-data")

    one_line(proc)


class CorruptionNotReported(AssertionError):
    """A restore of a corrupt object failed without saying that the object is corrupt."""


def test_restore_of_an_object_corrupt_past_zstd_reports_the_corruption(
    holdfast: Holdfast, pg_source: Source, docker_client: docker.DockerClient,
    docker_cleanup: DockerCleanup,
) -> None:
    snapshot = holdfast.json("backup", pg_source.name)
    flip_near_the_middle(data_file(holdfast, snapshot), zstd_notices=False)

    name = docker_cleanup.restored(unique("hf-it-flipped2"))
    proc = holdfast.run("restore", snapshot["id"], "--name", name)
    assert proc.returncode != 0, proc.stdout
    # Whatever tripped first, nothing of the restore is left behind.
    assert not container_exists(docker_client, name)
    assert not volume_exists(docker_client, f"{name}-data")
    reason = last_line(proc).replace(name, "NEW").replace(snapshot["id"], "ID")
    if not re.search(r"corrupt|sha256", reason, re.IGNORECASE):
        raise CorruptionNotReported(f"the failure does not name the corruption:\n{proc.stderr}")
    one_line(proc)


# --- 8. no Docker engine -----------------------------------------------------------------


def test_unreachable_docker_engine_fails_discovery_but_not_the_catalog(
    holdfast: Holdfast,
) -> None:
    env = {"DOCKER_HOST": "unix:///tmp/holdfast-no-such.sock"}
    _, line = holdfast.fail("instances", code=5, env=env)
    assert "cannot reach the Docker engine" in line

    proc = holdfast.run("snapshots", env=env)
    assert proc.returncode == 0, proc.stderr
    assert holdfast.json("snapshots", env=env) == []


# --- 9. a target that cannot be written ------------------------------------------------


def test_unwritable_target_refuses_the_backup_and_names_the_path(
    holdfast: Holdfast, pg_source: Source, tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-regular-file"
    blocker.write_text("not a directory\n")
    env = {"HOLDFAST_TARGET_LOCAL": (blocker / "snapshots").as_uri()}

    _, line = holdfast.fail("backup", pg_source.name, code=2, env=env)
    assert str(blocker) in line
    assert holdfast.json("snapshots", env=env) == []


# --- 10. unknown names -------------------------------------------------------------------


def test_unknown_instance_and_unknown_snapshot_are_not_found(
    holdfast: Holdfast, docker_client: docker.DockerClient,
) -> None:
    missing = unique("hf-it-no-such-instance")
    _, line = holdfast.fail("backup", missing, code=3)
    assert missing in line

    _, line = holdfast.fail("restore", "20000101T000000Z-000000", "--name",
                            unique("hf-it-never"), code=3)
    assert "20000101T000000Z-000000" in line


# --- 11. catalog rebuild -----------------------------------------------------------------


def test_catalog_rebuild_recovers_snapshots_from_manifests(
    holdfast: Holdfast, pg_source: Source,
) -> None:
    snapshot = holdfast.json("backup", pg_source.name)
    catalog_files = holdfast.catalog_files()
    assert catalog_files
    for path in catalog_files:
        path.unlink()

    assert holdfast.json("snapshots") == []
    report = holdfast.json("catalog", "rebuild")
    assert report["added"] >= 1, report

    listed = {s["id"]: s for s in holdfast.json("snapshots")}
    assert snapshot["id"] in listed, listed
    again = listed[snapshot["id"]]
    assert again["status"] == "complete"
    assert again["sha256"] == snapshot["sha256"]
    assert again["size_bytes"] == snapshot["size_bytes"]
    assert again["instance"] == pg_source.name
