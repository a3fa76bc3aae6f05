"""Benchmark: dump throughput of every engine on a data set of at least 500 MB,
side by side with the plain baseline a user would script by hand.

For each engine (``postgres``, ``mariadb``, ``redis``, ``volume``) it starts a
container on the internal bench network, loads ``--size-mb`` of data (random
hex text, so it compresses about 2:1 like real rows), then times:

- the baseline: the engine's own dump tool through ``docker exec`` (for
  ``volume``, GNU tar in a ``docker run --volumes-from`` helper) piped into
  ``zstd -3`` writing a file;
- ``holdfast backup`` of the same container, through ``bench/maxrss.py`` so
  the kernel's peak RSS of the Holdfast process is printed too.

It runs the two paths alternately (``--rounds``, default 2) and prints the
best of each: data size, stored size, seconds and MiB/s (of data) for both,
and the ratio holdfast/baseline. Containers and volumes it made are removed, also
on Ctrl-C. Needs the test harness and the ``zstd`` CLI:

    bash tests/harness/ensure_docker.sh && bash tests/harness/build_images.sh
    python bench/dump_throughput.py --size-mb 520 [--engines postgres,redis]
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

HERE = Path(__file__).resolve().parent
NETWORK = "holdfast-bench-net"
BASE_IMAGE = "holdfast-test/base:bookworm"
PASSWORD = "bench-" + secrets.token_hex(8)
MIB = 1024 * 1024


def exec_ok(container: Container, argv: list[str], env: dict[str, str] | None = None) -> str:
    result = container.exec_run(argv, environment=env or {})
    if result.exit_code != 0:
        raise SystemExit(f"{argv[0]} in {container.name} failed: {result.output.decode()[-500:]}")
    return bytes(result.output).decode().strip()


def wait(check: Callable[[], bool], what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not come up")
        time.sleep(0.5)


@dataclass
class Bench:
    """One engine's container, loader and baseline command."""

    name: str
    container: Container
    baseline_argv: list[str]
    """Argv whose stdout is the baseline's dump stream."""
    measure: Callable[[], int]
    """Bytes of data the engine holds (its own measure)."""


def _probe(container: Container, argv: list[str], env: dict[str, str]) -> bool:
    return container.exec_run(argv, environment=env).exit_code == 0


def start_postgres(client: docker.DockerClient, name: str, size_mb: int) -> Bench:
    env = {"POSTGRES_PASSWORD": PASSWORD, "POSTGRES_USER": "app", "POSTGRES_DB": "appdb"}
    container = client.containers.run(
        "holdfast-test/postgres:15", name=name, detach=True, environment=env, network=NETWORK,
        labels={"holdfast.enable": "true", "holdfast.bench": "1"},
        volumes={f"{name}-data": {"bind": "/var/lib/postgresql/data", "mode": "rw"}},
        command=["postgres", "-c", "max_wal_size=4GB", "-c", "synchronous_commit=off"])
    pg = {"PGUSER": "app", "PGPASSWORD": PASSWORD, "PGDATABASE": "appdb"}
    wait(lambda: _probe(container, ["psql", "-h", "127.0.0.1", "-c", "SELECT 1"], pg), name)

    def sql(text: str) -> str:
        return exec_ok(container, ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", text], pg)

    sql("CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text)")
    rows = size_mb * MIB // 220
    for start in range(1, rows + 1, 500_000):
        stop = min(start + 499_999, rows)
        sql(f"INSERT INTO events SELECT g, 'kind-' || (g % 17), md5(random()::text) || "
            f"md5(random()::text) || md5(random()::text) || md5(random()::text) || "
            f"md5(random()::text) FROM generate_series({start}, {stop}) g")
    sql("VACUUM ANALYZE events")
    return Bench("postgres", container,
                 ["docker", "exec", "-e", "PGUSER=app", "-e", f"PGPASSWORD={PASSWORD}",
                  name, "pg_dump", "--format=custom", "--compress=0", "-d", "appdb"],
                 lambda: int(sql("SELECT pg_database_size('appdb')")))


def start_mariadb(client: docker.DockerClient, name: str, size_mb: int) -> Bench:
    env = {"MARIADB_ROOT_PASSWORD": PASSWORD, "MARIADB_DATABASE": "appdb"}
    container = client.containers.run(
        "holdfast-test/mariadb:10.11", name=name, detach=True, environment=env,
        network=NETWORK, labels={"holdfast.enable": "true", "holdfast.bench": "1"},
        volumes={f"{name}-data": {"bind": "/var/lib/mysql", "mode": "rw"}},
        command=["mariadbd", "--innodb-buffer-pool-size=512M",
                 "--innodb-flush-log-at-trx-commit=2"])
    auth = {"MYSQL_PWD": PASSWORD}
    wait(lambda: _probe(container, ["mariadb", "-uroot", "-h127.0.0.1", "--protocol=tcp",
                                    "-e", "SELECT 1"], auth), name)

    def sql(text: str) -> str:
        return exec_ok(container, ["mariadb", "-uroot", "-N", "-B", "appdb", "-e", text], auth)

    sql("CREATE TABLE events (id BIGINT PRIMARY KEY, kind VARCHAR(16), payload TEXT)")
    rows = size_mb * MIB // 220
    for start in range(1, rows + 1, 500_000):
        stop = min(start + 499_999, rows)
        sql(f"INSERT INTO events SELECT seq, CONCAT('kind-', seq % 17), CONCAT(MD5(RAND()), "
            f"MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND())) FROM seq_{start}_to_{stop}")
    sql("ANALYZE TABLE events")  # InnoDB's size statistics lag a bulk load
    return Bench("mariadb", container,
                 ["docker", "exec", "-e", f"MYSQL_PWD={PASSWORD}", name, "mariadb-dump",
                  "-uroot", "--single-transaction", "--routines", "--triggers", "--events",
                  "--databases", "appdb"],
                 lambda: int(sql("SELECT SUM(data_length + index_length) FROM "
                                 "information_schema.tables WHERE table_schema = 'appdb'")))


def start_redis(client: docker.DockerClient, name: str, size_mb: int) -> Bench:
    container = client.containers.run(
        "holdfast-test/redis:7", ["redis-server", "--requirepass", PASSWORD,
                                  "--save", ""], name=name,
        detach=True, network=NETWORK, labels={"holdfast.enable": "true", "holdfast.bench": "1"},
        volumes={f"{name}-data": {"bind": "/data", "mode": "rw"}})
    auth = {"REDISCLI_AUTH": PASSWORD}
    wait(lambda: container.exec_run(["redis-cli", "PING"], environment=auth).output.strip()
         == b"PONG", name)
    # Lua inside the server generates the values: nothing large crosses exec.
    script = ("for i = tonumber(ARGV[1]), tonumber(ARGV[2]) do local parts = {} "
              "for j = 1, 25 do parts[j] = redis.sha1hex(i .. ':' .. j) end "
              "redis.call('SET', 'key:' .. i, table.concat(parts)) end return 1")
    keys = size_mb * MIB // 1000
    for start in range(0, keys, 50_000):
        exec_ok(container, ["redis-cli", "EVAL", script, "0", str(start),
                            str(min(start + 49_999, keys - 1))], auth)

    def used() -> int:
        info = exec_ok(container, ["redis-cli", "INFO", "memory"], auth)
        return next(int(line.split(":")[1]) for line in info.splitlines()
                    if line.startswith("used_memory_dataset:"))
    return Bench("redis", container,
                 ["docker", "exec", "-e", f"REDISCLI_AUTH={PASSWORD}", name,
                  "redis-cli", "--rdb", "-"], used)


def start_volume(client: docker.DockerClient, name: str, size_mb: int) -> Bench:
    container = client.containers.run(
        "holdfast-test/app:1", name=name, detach=True, network=NETWORK,
        labels={"holdfast.enable": "true", "holdfast.bench": "1", "holdfast.engine": "volume"},
        volumes={f"{name}-data": {"bind": "/var/lib/app", "mode": "rw"},
                 f"{name}-uploads": {"bind": "/srv/uploads", "mode": "rw"}})
    # Hex of random bytes (compresses about 2:1) in 8 MiB files, plus some
    # small ones, written by root through a helper with the same volumes.
    files = max(1, size_mb // 8)
    client.containers.run(
        BASE_IMAGE, ["sh", "-c",
                     f'for i in $(seq 1 {files}); do head -c 4194304 /dev/urandom | od -An -tx1 -v '
                     f'| tr -d " \\n" > /var/lib/app/blob-$i.hex; done; '
                     'for i in $(seq 1 2000); do echo "row $i" > /srv/uploads/small-$i.txt; done'],
        remove=True, network_mode="none", volumes_from=[container.id])

    def total() -> int:
        out = client.containers.run(BASE_IMAGE, ["du", "-sb", "/var/lib/app", "/srv/uploads"],
                                    remove=True, network_mode="none",
                                    volumes_from=[f"{container.id}:ro"])
        return sum(int(line.split()[0]) for line in bytes(out).decode().splitlines())
    return Bench("volume", container,
                 ["docker", "run", "--rm", "--network", "none", "--volumes-from",
                  f"{name}:ro", BASE_IMAGE, "tar", "-C", "/", "--sparse", "--numeric-owner",
                  "-cf", "-", "var/lib/app", "srv/uploads"], total)


ENGINES: dict[str, Callable[[docker.DockerClient, str, int], Bench]] = {
    "postgres": start_postgres, "mariadb": start_mariadb, "redis": start_redis,
    "volume": start_volume,
}


def baseline(argv: list[str], out: Path) -> dict[str, float]:
    started = time.monotonic()
    with open(out, "wb") as sink:
        dump = subprocess.Popen(argv, stdout=subprocess.PIPE)
        compress = subprocess.run(["zstd", "-3", "-q", "-c"], stdin=dump.stdout, stdout=sink,
                                  check=False)
        assert dump.stdout is not None
        dump.stdout.close()
        if dump.wait() != 0 or compress.returncode != 0:
            raise SystemExit(f"baseline {' '.join(argv[:6])} failed")
    seconds = time.monotonic() - started
    size = out.stat().st_size
    out.unlink()
    return {"seconds": seconds, "bytes": size}


def holdfast_backup(name: str, env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    run = json.loads(subprocess.run(
        [sys.executable, str(HERE / "maxrss.py"), sys.executable, "-m", "service.entrypoints.cli",
         "backup", name], env=env, check=True, capture_output=True, text=True,
        cwd=HERE.parent).stdout.strip().splitlines()[-1])
    if run["exit"] != 0:
        raise SystemExit(f"holdfast backup {name} exited {run['exit']}")
    snapshots = json.loads(subprocess.run(
        [sys.executable, "-m", "service.entrypoints.cli", "snapshots", name, "--json"], env=env,
        check=True, capture_output=True, text=True, cwd=HERE.parent).stdout)
    newest = snapshots[0]
    if newest["status"] != "complete":
        raise SystemExit(f"holdfast snapshot {newest['id']} is {newest['status']}")
    return run, newest


def report(bench: Bench, data: int, base: dict[str, float], run: dict[str, Any],
           snap: dict[str, Any]) -> None:
    print(f"\n== {bench.name}: {data / MIB:,.0f} MiB of data "
          f"(raw dump {snap['raw_bytes'] / MIB:,.0f} MiB)")
    print(f"  baseline  : {base['seconds']:7.1f} s  {base['bytes'] / MIB:8.1f} MiB stored"
          f"  {data / MIB / base['seconds']:7.1f} MiB/s")
    print(f"  holdfast  : {run['seconds']:7.1f} s  {snap['size_bytes'] / MIB:8.1f} MiB stored"
          f"  {data / MIB / run['seconds']:7.1f} MiB/s  peak RSS {run['max_rss_kib'] / 1024:.0f}"
          " MiB")
    print(f"  dump stream through holdfast: {snap['raw_bytes'] / MIB / run['seconds']:.1f} MiB/s")
    print(f"  ratio holdfast/baseline: time {run['seconds'] / base['seconds']:.2f}x, "
          f"size {snap['size_bytes'] / base['bytes']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=520)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating runs of each path; the best of each is reported")
    options = parser.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("the baseline needs the zstd CLI: apt-get install -y zstd")
    client = docker.from_env(timeout=600)
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, internal=True, labels={"holdfast.bench": "1"})
    scratch = Path(tempfile.mkdtemp(prefix="holdfast-bench-"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")},
           "HOLDFAST_DATA_DIR": str(scratch / "data"), "HOLDFAST_HELPER_IMAGE": BASE_IMAGE}
    try:
        for engine in options.engines.split(","):
            name = f"holdfast-bench-{engine}-{secrets.token_hex(3)}"
            bench = None
            try:
                started = time.monotonic()
                bench = ENGINES[engine](client, name, options.size_mb)
                data = bench.measure()
                print(f"[{engine}: loaded {data / MIB:,.0f} MiB in "
                      f"{time.monotonic() - started:.0f} s]", flush=True)
                # Alternate the two paths and keep each one's best, so neither
                # pays alone for a cold cache or a noisy neighbour.
                bases, runs = [], []
                for _ in range(options.rounds):
                    bases.append(baseline(bench.baseline_argv, scratch / f"{name}.zst"))
                    runs.append(holdfast_backup(name, env))
                base = min(bases, key=lambda b: b["seconds"])
                run, snap = min(runs, key=lambda r: r[0]["seconds"])
                report(bench, data, base, run, snap)
            finally:
                if bench is not None:
                    bench.container.remove(force=True)
                for volume in client.volumes.list(filters={"name": name}):
                    volume.remove(force=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
