"""Benchmark: a dev copy of a Postgres database from a warm copy, beside the ways without one.

A private dockerd (in a network namespace of its own) runs with its data root
on a loop-mounted XFS made with ``reflink=1``, as a team would give the
engine that hosts its dev copies. On it, one pgbench database (``pgbench -i
-s SCALE``; 70 is about 1.1 GB, 350 about 5.5 GB) is backed up once with
``holdfast backup`` (``holdfast.mode=physical``), and ``holdfast warm
refresh`` keeps a warm copy of that snapshot. Then, each timed from the
command to a container answering queries with the data:

- **hand**: ``docker run`` a fresh container, poll it until it answers, then
  ``docker exec SOURCE pg_dump -Fc | docker exec -i NEW pg_restore``;
- **stream**: ``holdfast restore INSTANCE --latest --no-warm``: the snapshot
  streamed from disk into a fresh container (the physical restore);
- **warm**: ``holdfast restore INSTANCE --latest``: the warm copy's volume
  cloned with reflinks, the container started on it (``--rounds`` times).

With ``--fallback``, the same database is also set up on the shared engine
(whose data root has no reflinks) and its warm restore timed: the plain copy
Holdfast falls back to. Every copy is compared with the source (row count and
an order-independent checksum of every pgbench table) before it counts.

    python bench/dev_copy.py --scale 70 --rounds 3 --fallback
    python bench/dev_copy.py --scale 350 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.restore_postgres import (  # noqa: E402  (the repository root, just added)
    HELPER_IMAGE,
    IMAGE,
    NETWORK,
    PASSWORD,
    Bench,
    breakdown_restore,
    check_same,
    commit,
    fingerprint,
    hand_restore,
    print_breakdown,
    psql,
)
from tests.harness.private_dockerd import PrivateDockerd  # noqa: E402

PHYSICAL = {"holdfast.mode": "physical"}


def set_up(bench: Bench, scale: int) -> tuple[Any, dict[str, str], str]:
    """The source, filled and settled, with its fingerprint; then a snapshot
    and a warm copy of it."""
    source = bench.run_postgres(bench.name("source"), labels=PHYSICAL)
    started = time.monotonic()
    # docker reads DOCKER_HOST from the environment: the private engine, when set.
    subprocess.run(["docker", "exec", "-e", "PGUSER=app", "-e", "PGPASSWORD", source.name,
                    "pgbench", "-i", "-q", "-s", str(scale), "appdb"],
                   env={**os.environ, "PGPASSWORD": PASSWORD}, check=True, capture_output=True)
    psql(source, "VACUUM (FREEZE, ANALYZE)")
    psql(source, "CHECKPOINT")
    size = int(psql(source, "SELECT pg_database_size('appdb')"))
    print(f"  pgbench scale {scale}: {size / 1e9:.2f} GB, filled in "
          f"{time.monotonic() - started:.0f} s")
    started = time.monotonic()
    snapshot = json.loads(bench.holdfast("backup", source.name, "--json"))["id"]
    backed = time.monotonic() - started
    started = time.monotonic()
    warm = json.loads(bench.holdfast("warm", "refresh", source.name, "--json"))
    print(f"  holdfast backup {backed:.1f} s; warm refresh {time.monotonic() - started:.1f} s "
          f"({warm['warm']['name']})")
    return source, fingerprint(source), snapshot


def timed_restore(bench: Bench, instance: str, label: str, *extra: str) -> tuple[float, Any]:
    name = bench.name(label)
    started = time.monotonic()
    result = json.loads(bench.holdfast("restore", instance, "--latest", "--name", name,
                                       "--json", *extra))
    seconds = time.monotonic() - started
    note = f" ({result['note']})" if result.get("note") else ""
    print(f"  {label:8} {seconds:6.2f} s  method {result['method']}{note}")
    return seconds, bench.client.containers.get(name)


def measure(bench: Bench, scale: int, rounds: int, hand: bool) -> dict[str, list[float]]:
    source, expected, snapshot = set_up(bench, scale)
    results: dict[str, list[float]] = {"hand": [], "stream": [], "warm": []}
    if hand:
        seconds, copy = hand_restore(bench, source, 0.5)
        check_same(bench, expected, copy, "hand")
        results["hand"].append(seconds)
        seconds, copy = timed_restore(bench, source.name, "stream", "--no-warm")
        check_same(bench, expected, copy, "stream")
        results["stream"].append(seconds)
    for _ in range(rounds):
        seconds, copy = timed_restore(bench, source.name, "warm")
        check_same(bench, expected, copy, "warm")
        results["warm"].append(seconds)
    print("  breakdown of one warm restore (in this process):")
    timings, copy = breakdown_restore(bench, snapshot)
    check_same(bench, expected, copy, "breakdown")
    print_breakdown(timings)
    bench.holdfast("warm", "rm", source.name)
    return results


def report(where: str, results: dict[str, list[float]]) -> None:
    for label, values in results.items():
        if values:
            print(f"{where:10} {label:8} median {statistics.median(values):6.2f} s  "
                  f"best {min(values):6.2f} s  ({len(values)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: ~1.1 GB)")
    parser.add_argument("--rounds", type=int, default=3, help="warm restores timed")
    parser.add_argument("--fallback", action="store_true",
                        help="also time the plain-copy fallback on the shared engine")
    parser.add_argument("--xfs-size", default="40G", help="the loop file's (sparse) size")
    options = parser.parse_args()
    engine = PrivateDockerd(reflink_size=options.xfs_size)
    print(f"{os.cpu_count()} CPUs; commit {commit()}")
    try:
        engine.start()
        for image in (IMAGE, HELPER_IMAGE):
            engine.load_image(image)
        os.environ["DOCKER_HOST"] = engine.host
        print("private engine, XFS reflink=1:")
        results = run_on(engine.client(), options, hand=True)
        del os.environ["DOCKER_HOST"]
        fallback = None
        if options.fallback:
            import docker

            print("shared engine, no reflinks:")
            fallback = run_on(docker.from_env(), options, hand=False)
        print()
        report("reflinks", results)
        if fallback:
            report("no reflink", fallback)
    finally:
        engine.close()


def run_on(client: Any, options: argparse.Namespace, hand: bool) -> dict[str, list[float]]:
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, internal=True, labels={"holdfast.bench": "1"})
    bench = Bench(client, Path(tempfile.mkdtemp(prefix="holdfast-bench-devcopy-")))
    try:
        return measure(bench, options.scale, options.rounds, hand)
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
