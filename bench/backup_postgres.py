"""Benchmark: backing up a Postgres of about 1 GB (or --size-gb) with Holdfast,
side by side with the plain baseline ``docker exec pg_dump -Fc -Z0 | zstd -3 > file``.

It prints, for a small database and for the large one: the database size, the
dump size, wall time and throughput of both paths, their ratio, and the peak RSS
of the ``holdfast backup`` process (measured by the kernel through
``bench/maxrss.py``), so the growth of peak RSS with dump size is visible.
It then restores the large snapshot into a fresh container and checks the row
count and a checksum against the source.

Needs the test harness: ``bash tests/harness/ensure_docker.sh &&
bash tests/harness/build_images.sh``. Everything runs on an internal Docker
network and is removed at the end.

    python bench/backup_postgres.py --size-gb 1.0
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker

IMAGE = "holdfast-test/postgres:15"
NETWORK = "holdfast-bench-net"
PASSWORD = "bench-" + secrets.token_hex(8)
ENV = {"POSTGRES_PASSWORD": PASSWORD, "POSTGRES_USER": "app", "POSTGRES_DB": "appdb"}
ROW_BYTES = 250  # approximate on-disk bytes per generated row, tuple overhead included
HERE = Path(__file__).resolve().parent


def psql(container, sql: str) -> str:
    result = container.exec_run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", "appdb",
                                 "-c", sql], environment={"PGUSER": "app",
                                                         "PGPASSWORD": PASSWORD})
    if result.exit_code != 0:
        raise SystemExit(f"psql failed: {result.output.decode()}")
    return result.output.decode().strip()


def start_postgres(client, name: str):
    container = client.containers.run(
        IMAGE, name=name, detach=True, environment=ENV, network=NETWORK,
        labels={"holdfast.enable": "true", "holdfast.bench": "1"},
        volumes={f"{name}-data": {"bind": "/var/lib/postgresql/data", "mode": "rw"}},
        command=["postgres", "-c", "shared_buffers=256MB", "-c", "max_wal_size=4GB",
                 "-c", "synchronous_commit=off"],
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        probe = container.exec_run(["psql", "-h", "127.0.0.1", "-At", "-d", "appdb", "-c",
                                    "SELECT 1"], environment={"PGUSER": "app",
                                                              "PGPASSWORD": PASSWORD})
        if probe.exit_code == 0:
            return container
        time.sleep(0.5)
    raise SystemExit(f"{name} did not start: {container.logs(tail=20).decode()}")


def load(container, size_gb: float) -> None:
    rows = int(size_gb * 1024**3 / ROW_BYTES)
    # Random hex payload: realistic compressibility (about 2:1), unlike repeat().
    psql(container, "CREATE TABLE IF NOT EXISTS events (id bigint PRIMARY KEY, kind text, "
                    "payload text, at timestamptz)")
    batch = 1_000_000
    for start in range(1, rows + 1, batch):
        stop = min(start + batch - 1, rows)
        psql(container, f"INSERT INTO events SELECT g, 'kind-' || (g % 17), "
                        f"md5(random()::text) || md5(random()::text) || md5(random()::text) || "
                        f"md5(random()::text) || md5(random()::text), "
                        f"now() - (g || ' seconds')::interval "
                        f"FROM generate_series({start}, {stop}) g")
    psql(container, "VACUUM ANALYZE events")


def fingerprint(container) -> str:
    return psql(container, "SELECT count(*) || ':' || md5(string_agg(md5(payload), '' "
                           "ORDER BY id)) FROM events")


def baseline(container, out: Path) -> dict[str, float]:
    started = time.monotonic()
    with open(out, "wb") as sink:
        dump = subprocess.Popen(
            ["docker", "exec", "-e", "PGUSER=app", "-e", f"PGPASSWORD={PASSWORD}",
             container.name, "pg_dump", "--format=custom", "--compress=0", "-d", "appdb"],
            stdout=subprocess.PIPE)
        compress = subprocess.run(["zstd", "-3", "-q", "-c"], stdin=dump.stdout, stdout=sink,
                                  check=True)
        assert dump.stdout is not None
        dump.stdout.close()
        if dump.wait() != 0 or compress.returncode != 0:
            raise SystemExit("baseline dump failed")
    return {"seconds": time.monotonic() - started, "bytes": out.stat().st_size}


def holdfast(args: list[str], env: dict[str, str]) -> dict[str, float]:
    output = subprocess.run([sys.executable, str(HERE / "maxrss.py"), "holdfast", *args],
                            env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(client, name: str, size_gb: float, data_dir: Path, scratch: Path) -> dict:
    container = start_postgres(client, name)
    load(container, size_gb)
    db_bytes = int(psql(container, "SELECT pg_database_size('appdb')"))
    env = {**os.environ, "HOLDFAST_DATA_DIR": str(data_dir)}
    base = baseline(container, scratch / f"{name}.dump.zst")
    (scratch / f"{name}.dump.zst").unlink()
    run = holdfast(["backup", name], env)
    snapshots = json.loads(subprocess.run(["holdfast", "snapshots", "--json"], env=env,
                                          check=True, capture_output=True, text=True).stdout)
    snap = next(s for s in snapshots if s["instance"] == name and s["status"] == "complete")
    return {"container": container, "db_bytes": db_bytes, "baseline": base, "holdfast": run,
            "snapshot": snap}


def report(label: str, m: dict) -> None:
    mib = 1024 * 1024
    base, hf, snap = m["baseline"], m["holdfast"], m["snapshot"]
    print(f"\n== {label}: database {m['db_bytes'] / mib:,.0f} MiB")
    print(f"  baseline pg_dump|zstd : {base['seconds']:7.1f} s  {base['bytes'] / mib:9.1f} MiB"
          f"  {m['db_bytes'] / mib / base['seconds']:7.1f} MiB/s of database")
    print(f"  holdfast backup       : {hf['seconds']:7.1f} s  {snap['size_bytes'] / mib:9.1f} MiB"
          f"  {m['db_bytes'] / mib / hf['seconds']:7.1f} MiB/s of database"
          f"  (raw dump {snap['raw_bytes'] / mib:,.1f} MiB)")
    print(f"  ratio holdfast/baseline: time {hf['seconds'] / base['seconds']:.2f}x, "
          f"size {snap['size_bytes'] / base['bytes']:.2f}x")
    print(f"  holdfast peak RSS     : {hf['max_rss_kib'] / 1024:.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--small-gb", type=float, default=0.01)
    parser.add_argument("--keep", action="store_true", help="leave containers for inspection")
    options = parser.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("the baseline needs the zstd CLI: apt-get install -y zstd")
    client = docker.from_env()
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, internal=True, labels={"holdfast.bench": "1"})
    scratch = Path(tempfile.mkdtemp(prefix="holdfast-bench-"))
    data_dir = scratch / "data"
    suffix = secrets.token_hex(3)
    created = []
    try:
        idle = holdfast(["snapshots"], {**os.environ, "HOLDFAST_DATA_DIR": str(data_dir)})
        small = measure(client, f"holdfast-bench-small-{suffix}", options.small_gb, data_dir,
                        scratch)
        created.append(small["container"])
        big = measure(client, f"holdfast-bench-big-{suffix}", options.size_gb, data_dir, scratch)
        created.append(big["container"])
        print(f"\nholdfast CLI idle peak RSS (holdfast snapshots): "
              f"{idle['max_rss_kib'] / 1024:.1f} MiB")
        report("small", small)
        report("large", big)
        growth = (big["holdfast"]["max_rss_kib"] - small["holdfast"]["max_rss_kib"]) / 1024
        print(f"\npeak RSS growth from small to large dump: {growth:+.1f} MiB "
              f"for {(big['snapshot']['raw_bytes'] - small['snapshot']['raw_bytes']) / 1024**3:.2f}"
              " GiB more dump data")

        env = {**os.environ, "HOLDFAST_DATA_DIR": str(data_dir)}
        target_name = f"holdfast-bench-restored-{suffix}"
        restored_run = holdfast(["restore", big["snapshot"]["id"], "--name", target_name], env)
        restored = client.containers.get(target_name)
        created.append(restored)
        source_print, restored_print = fingerprint(big["container"]), fingerprint(restored)
        print(f"\n== restore of the large snapshot: {restored_run['seconds']:.1f} s, "
              f"peak RSS {restored_run['max_rss_kib'] / 1024:.1f} MiB")
        print(f"  source   rows:checksum {source_print}")
        print(f"  restored rows:checksum {restored_print}")
        if source_print != restored_print:
            raise SystemExit("restored data differs from the source")
        print("  identical")
    finally:
        if not options.keep:
            for container in created:
                volumes = [m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Name")]
                container.remove(force=True)
                for volume in volumes:
                    client.volumes.get(volume).remove(force=True)
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
