"""Benchmark: the fleet's work queue on one PostgreSQL catalog.

Starts a throwaway PostgreSQL 15 cluster (Debian's binaries, run as the
``postgres`` user, default durability: fsync and synchronous commit on),
migrates a Holdfast catalog into it, and measures through the real
:class:`~service.adapters.catalog.repository.Catalog`:

- **claim latency**: ``--hosts`` daemons (default 3), each polling
  ``claim_requests`` (and ``cancel_requests``) every ``--claim-interval`` seconds as
  :class:`service.entrypoints.daemon.claims.Claims` does, while requests for
  ``--instances`` instances (default 300, spread over the hosts) are queued at
  random moments over ``--spread`` seconds. Latency is from the request's
  insert returning to the claim that hands it out returning, p50/p99/max. The
  baseline is the same request on one host, started in-process with no
  catalog round trip: zero, so the figure is the whole cost of going through
  the catalog;
- **scheduled runs per minute**: ``W`` threads, each standing for a daemon,
  do the catalog work of one scheduled backup as fast as they can: claim the
  slot, insert the job, mark it running, ``--progress-writes`` progress
  writes, mark it succeeded, renew the host's leases. For W in ``--workers``
  it prints runs per minute and the p99 of one run's catalog time, so where
  it stops growing is where one PostgreSQL saturates (on this machine's cores,
  which the benchmark shares with the server).

It ends with the load of 100 hosts and 10,000 hourly instances in the same
units, for the extrapolation.

    python bench/fleet_claims.py
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from service.adapters.catalog import open_catalog  # noqa: E402  (the repository root, just added)
from service.ports import CatalogPort  # noqa: E402
from service.records import JobRecord, JobStatus  # noqa: E402

PG_BIN = Path(os.environ.get("HOLDFAST_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres() -> Iterator[str]:
    """A fresh cluster on 127.0.0.1 with default durability; yields a catalog URL."""
    root = Path(tempfile.mkdtemp(prefix="hf-bench-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
    data, port = root / "data", _free_port()
    subprocess.run(_as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                                 "-A", "trust", "-E", "UTF8", "--locale=C"]),
                   check=True, capture_output=True)
    subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l",
                                 str(root / "log"), "-o", f"-h 127.0.0.1 -p {port} -k {root} "
                                 "-c max_connections=200", "-w", "start"]),
                   check=True, capture_output=True)
    try:
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        "-c", "CREATE DATABASE holdfast"], check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/holdfast"
    finally:
        subprocess.run(_as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast",
                                     "-w", "stop"]), check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _request(host: str, instance: str, n: int) -> JobRecord:
    return JobRecord(id=f"job-bench-{n:06d}-{os.urandom(3).hex()}", kind="backup",
                     status=JobStatus.QUEUED, created_at=datetime.now(UTC), instance=instance,
                     host=host, request={"kind": "backup", "name": instance, "body": {}})


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def claim_latency(url: str, hosts: int, instances: int, interval: float,
                  spread: float) -> list[float]:
    """Seconds from each request's insert to its claim (one per instance)."""
    catalog = open_catalog(url)
    names = [f"edge-{h}" for h in range(hosts)]
    queued: dict[str, float] = {}
    latencies: list[float] = []
    lock, stop = threading.Lock(), threading.Event()

    def claimer(host: str) -> None:
        while not stop.wait(interval):
            lease = datetime.now(UTC) + timedelta(seconds=45)
            for job in catalog.claim_requests(host, 16, lease):
                now = time.monotonic()
                with lock:
                    latencies.append(now - queued[job.id])
            catalog.cancel_requests(host)  # each poll also looks for cancels, as Claims does

    threads = [threading.Thread(target=claimer, args=(h,), daemon=True) for h in names]
    for thread in threads:
        thread.start()
    moments = sorted(random.uniform(0, spread) for _ in range(instances))
    started = time.monotonic()
    for n, moment in enumerate(moments):
        time.sleep(max(0.0, started + moment - time.monotonic()))
        job = _request(names[n % hosts], f"db-{n:04d}", n)
        catalog.add_job(job)
        with lock:
            queued[job.id] = time.monotonic()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with lock:
            if len(latencies) == instances:
                break
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join()
    catalog.close()
    return latencies


def one_run(cat: CatalogPort, host: str, instance: str, slot: datetime, writes: int) -> None:
    """The catalog work of one scheduled backup, as the daemon does it."""
    now = datetime.now(UTC)
    if not cat.claim_slot(instance, "backup", slot, host, now):
        return
    job = JobRecord(id=f"job-run-{os.urandom(6).hex()}", kind="backup",
                    status=JobStatus.QUEUED, created_at=now, instance=instance, host=host,
                    lease_expires_at=now + timedelta(seconds=45))
    cat.add_job(job)
    job = replace(job, status=JobStatus.RUNNING, started_at=now)
    cat.save_job(job)
    for n in range(writes):
        cat.save_job(replace(job, bytes_done=(n + 1) << 20, progress_at=datetime.now(UTC)))
    cat.save_job(replace(job, status=JobStatus.SUCCEEDED, finished_at=datetime.now(UTC)))
    cat.renew_leases(host, datetime.now(UTC) + timedelta(seconds=45))


def runs_per_minute(url: str, workers: int, seconds: float, writes: int) -> tuple[float, float]:
    """(scheduled runs per minute, p99 seconds of one run) with ``workers`` daemons."""
    catalog = open_catalog(url)
    stop, lock = threading.Event(), threading.Lock()
    done: list[float] = []
    base = datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=random.randrange(10_000))

    def daemon(w: int) -> None:
        n = 0
        while not stop.is_set():
            begun = time.monotonic()
            one_run(catalog, f"edge-{w}", f"db-{w}-{n % 1000}", base + timedelta(hours=n), writes)
            with lock:
                done.append(time.monotonic() - begun)
            n += 1

    threads = [threading.Thread(target=daemon, args=(w,), daemon=True) for w in range(workers)]
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    catalog.close()
    return len(done) * 60 / seconds, _percentile(done, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--claim-interval", type=float, default=0.5)
    parser.add_argument("--spread", type=float, default=20.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3, 6, 12, 24])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--progress-writes", type=int, default=10)
    args = parser.parse_args()
    with postgres() as url:
        open_catalog(url).close()  # migrate once
        print(f"claim latency: {args.hosts} hosts, {args.instances} requests over "
              f"{args.spread:.0f}s, claims every {args.claim_interval}s")
        for interval in sorted({args.claim_interval, 0.1}):
            lat = claim_latency(url, args.hosts, args.instances, interval, args.spread)
            print(f"  interval {interval:4.2f}s: claimed {len(lat)}/{args.instances}, "
                  f"p50 {statistics.median(lat) * 1000:6.0f} ms, "
                  f"p99 {_percentile(lat, 0.99) * 1000:6.0f} ms, max {max(lat) * 1000:6.0f} ms"
                  "  (baseline in-process start: 0 ms)")
        print(f"scheduled runs: slot claim + insert + running + {args.progress_writes} progress "
              "writes + succeeded + lease renewal, per run")
        for workers in args.workers:
            rate, p99 = runs_per_minute(url, workers, args.seconds, args.progress_writes)
            print(f"  {workers:3d} daemons: {rate:9.0f} runs/min, one run's catalog time "
                  f"p99 {p99 * 1000:6.1f} ms")
    hosts, instances = 100, 10_000
    print(f"load of {hosts} hosts and {instances} hourly instances: "
          f"{instances / 60:.0f} runs/min, {hosts * 60 / 15:.0f} heartbeats/min, "
          f"{hosts * 60 / args.claim_interval:.0f} claim polls/min (two queries each) "
          f"(HOLDFAST_CLAIM_INTERVAL={args.claim_interval})")


if __name__ == "__main__":
    main()
