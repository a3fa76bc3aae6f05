"""Benchmark: where a Postgres restore's time goes, beside the restore a user types by hand.

One pgbench database (``pgbench -i -s SCALE``; scale 70 is about 1.1 GB) is
backed up once with ``holdfast backup``. Then, alternating ``--rounds`` times:

- **hand**: ``docker run`` a fresh container of the same image, poll
  ``psql -h 127.0.0.1 -c 'SELECT 1'`` every ``--poll`` seconds until it
  answers, then ``docker exec SOURCE pg_dump -Fc | docker exec -i NEW
  pg_restore -d DB``: what a user runs without Holdfast, timed from the first
  command to the last byte restored;
- **holdfast**: ``holdfast restore SNAPSHOT --name NEW``, from command to the
  container answering queries with the data loaded;
- **breakdown**: the same restore in this process through the use cases over
  the real adapters, timing each phase (creating, waiting-for-ready, loading),
  each command run in the container, and the time the load spent producing
  its stream (read, sha256, decompress) as against writing it to the exec.

Then the parts alone: the read, check and decompression of the stored object
to nowhere; the same stream written to ``cat > /dev/null`` through an exec
(Holdfast's transport); and ``pg_restore`` in a fresh container reading the
archive from a file inside it (no transport at all), in full and section by
section (pre-data, data, post-data: the indexes and constraints).

Every restored copy is compared with the source (row count and an
order-independent checksum of every pgbench table) before it counts.

    python bench/restore_postgres.py --scale 70 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, cast

import docker

IMAGE = "holdfast-test/postgres:15"
HELPER_IMAGE = "holdfast-test/base:bookworm"  # sh and GNU tar, for physical restores
NETWORK = "holdfast-bench-net"
PASSWORD = "bench-" + secrets.token_hex(8)
ENV = {"POSTGRES_PASSWORD": PASSWORD, "POSTGRES_USER": "app", "POSTGRES_DB": "appdb"}
DATA = "/var/lib/postgresql/data"
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_history", "pgbench_tellers")
RUN = secrets.token_hex(3)
HERE = Path(__file__).resolve().parent
LABELS = {"holdfast.bench": "restore", "holdfast.scope": f"bench-restore-{RUN}"}
PSQL_ENV = {"PGUSER": "app", "PGPASSWORD": PASSWORD}


def psql(container: Any, sql: str, host: bool = False) -> str:
    argv = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", "appdb", "-c", sql]
    if host:
        argv[1:1] = ["-h", "127.0.0.1"]
    result = container.exec_run(argv, environment=PSQL_ENV)
    if result.exit_code != 0:
        raise SystemExit(f"psql in {container.name} failed: {result.output.decode()}")
    return str(result.output.decode().strip())


def fingerprint(container: Any) -> dict[str, str]:
    """Per table: rows and the sum of a 32-bit hash of every row (order does not matter)."""
    return {table: psql(container, f"SELECT count(*) || ':' || coalesce(sum(('x' || "
                                   f"substr(md5(t::text), 1, 8))::bit(32)::int::bigint), 0) "
                                   f"FROM {table} t") for table in TABLES}


class Bench:
    """What the run created, removed at the end (also on Ctrl-C)."""

    def __init__(self, client: Any, scratch: Path) -> None:
        self.client = client
        self.scratch = scratch
        self.env = {**os.environ, "HOLDFAST_DATA_DIR": str(scratch / "data"),
                    "HOLDFAST_SCOPE": f"bench-restore-{RUN}",
                    "HOLDFAST_HELPER_IMAGE": HELPER_IMAGE}
        self.names: list[str] = []

    def name(self, role: str) -> str:
        name = f"hf-bench-restore-{role}-{RUN}-{len(self.names)}"
        self.names.append(name)
        return name

    def run_postgres(self, name: str, wait: bool = True, labels: dict[str, str] | None = None,
                     volume: str | None = None) -> Any:
        container = self.client.containers.run(
            IMAGE, name=name, detach=True, environment=ENV, network=NETWORK,
            labels={**LABELS, "holdfast.enable": "true", **(labels or {})},
            volumes={volume or f"{name}-data": {"bind": DATA, "mode": "rw"}})
        if wait:
            wait_ready(container, 0.25)
        return container

    def remove(self, name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            container = self.client.containers.get(name)
            volumes = [m["Name"] for m in container.attrs.get("Mounts", []) if m.get("Name")]
            container.remove(force=True)
            for volume in volumes:  # the sources share one: the second removal takes it
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    self.client.volumes.get(volume).remove(force=True)

    def cleanup(self) -> None:
        for name in self.names:
            self.remove(name)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def holdfast(self, *args: str) -> str:
        result = subprocess.run(["holdfast", *args], env=self.env, capture_output=True,
                                text=True)
        if result.returncode != 0:
            raise SystemExit(f"holdfast {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout


def wait_ready(container: Any, poll: float, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        probe = container.exec_run(["psql", "-X", "-h", "127.0.0.1", "-At", "-d", "appdb",
                                    "-c", "SELECT 1"], environment=PSQL_ENV)
        if probe.exit_code == 0:
            return
        time.sleep(poll)
    raise SystemExit(f"{container.name} did not start: {container.logs(tail=20).decode()}")


def hand_restore(bench: Bench, source: Any, poll: float) -> tuple[float, Any]:
    name = bench.name("hand")
    started = time.monotonic()
    target = bench.run_postgres(name, wait=False)
    wait_ready(target, poll)
    ready = time.monotonic() - started
    dump = subprocess.Popen(["docker", "exec", "-e", "PGUSER=app", "-e", "PGPASSWORD",
                             source.name, "pg_dump", "-Fc", "-d", "appdb"],
                            stdout=subprocess.PIPE, env={**os.environ, "PGPASSWORD": PASSWORD})
    load = subprocess.run(["docker", "exec", "-i", "-e", "PGUSER=app", "-e", "PGPASSWORD",
                           name, "pg_restore", "--exit-on-error", "-d", "appdb"],
                          stdin=dump.stdout, env={**os.environ, "PGPASSWORD": PASSWORD},
                          capture_output=True)
    assert dump.stdout is not None
    dump.stdout.close()
    if dump.wait() != 0 or load.returncode != 0:
        raise SystemExit(f"hand restore failed: {load.stderr.decode()[-500:]}")
    seconds = time.monotonic() - started
    print(f"  {'hand':16} {seconds:6.1f} s  (container ready after {ready:.1f} s)")
    return seconds, target


def holdfast_restore(bench: Bench, snapshot: str, label: str) -> tuple[float, Any]:
    name = bench.name("cli")
    started = time.monotonic()
    bench.holdfast("restore", snapshot, "--name", name)
    seconds = time.monotonic() - started
    print(f"  {label:16} {seconds:6.1f} s")
    return seconds, bench.client.containers.get(name)


def hand_backup(source: Any, physical: bool = False) -> tuple[float, int]:
    """What a user would run to back up, into zstd, to nowhere: pg_dump, or
    for a physical copy pg_basebackup's tar with its WAL."""
    command = (["pg_basebackup", "-D", "-", "-Ft", "-X", "fetch", "-c", "fast"] if physical
               else ["pg_dump", "-Fc", "-Z0", "-d", "appdb"])
    started = time.monotonic()
    dump = subprocess.Popen(["docker", "exec", "-e", "PGUSER=app", "-e", "PGPASSWORD",
                             source.name, *command],
                            stdout=subprocess.PIPE, env={**os.environ, "PGPASSWORD": PASSWORD})
    packed = subprocess.run(["zstd", "-3", "-q", "-c"], stdin=dump.stdout,
                            stdout=subprocess.DEVNULL, check=True)
    assert dump.stdout is not None
    dump.stdout.close()
    if dump.wait() != 0 or packed.returncode != 0:
        raise SystemExit("the hand backup failed")
    return time.monotonic() - started, 0


def holdfast_backup(bench: Bench, instance: str) -> tuple[tuple[float, int], str]:
    """((seconds, peak RSS KiB), snapshot id) of one ``holdfast backup``."""
    output = subprocess.run([sys.executable, str(HERE / "maxrss.py"), "holdfast", "backup",
                             instance], env=bench.env, check=True, capture_output=True,
                            text=True).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    listed = json.loads(bench.holdfast("snapshots", instance, "--json"))
    snapshot = next(s["id"] for s in listed if s["status"] == "complete")
    return (figures["seconds"], figures["max_rss_kib"]), snapshot


# --- the breakdown, in this process over the real adapters ---------------------

@dataclasses.dataclass
class Timings:
    started: float = dataclasses.field(default_factory=time.monotonic)
    phases: list[tuple[str, float]] = dataclasses.field(default_factory=list)
    execs: list[tuple[str, float, float]] = dataclasses.field(default_factory=list)
    """(argv[0], seconds, seconds spent producing its stdin)."""

    def phase(self, name: str) -> None:
        self.phases.append((str(name), time.monotonic()))


def timed_stdin(chunks: Iterable[bytes], spent: list[float]) -> Iterator[bytes]:
    iterator = iter(chunks)
    while True:
        before = time.monotonic()
        try:
            chunk = next(iterator)
        except StopIteration:
            spent[0] += time.monotonic() - before
            return
        spent[0] += time.monotonic() - before
        yield chunk


class TimedDocker:
    """The real Docker adapter, with every exec timed."""

    def __init__(self, inner: Any, timings: Timings) -> None:
        self._inner = inner
        self._timings = timings
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def run(self, container_id: str, argv: list[str], **kwargs: Any) -> Any:
        spent = [0.0]
        if kwargs.get("stdin") is not None:
            kwargs["stdin"] = timed_stdin(kwargs["stdin"], spent)
        before = time.monotonic()
        try:
            return self._inner.run(container_id, argv, **kwargs)
        finally:
            with self._lock:
                self._timings.execs.append((argv[0], time.monotonic() - before, spent[0]))


def breakdown_restore(bench: Bench, snapshot: str) -> tuple[Timings, Any]:
    from service.bootstrap import bootstrap
    from service.settings import Settings
    from service.usecases.restores import execute_restore, prepare_restore

    timings = Timings()
    svc = bootstrap(Settings.load(bench.env))
    svc = dataclasses.replace(svc, docker=cast(Any, TimedDocker(svc.docker, timings)))
    name = bench.name("parts")
    timings.started = time.monotonic()
    request = prepare_restore(svc, snapshot, name)
    timings.phase("prepare")
    execute_restore(svc, request, phase=timings.phase)
    timings.phase("done")
    return timings, bench.client.containers.get(name)


def print_breakdown(timings: Timings) -> None:
    marks = [("start", timings.started), *timings.phases]
    for (name, at), (_, after) in itertools.pairwise(marks):
        print(f"    {name:>18} -> {after - at:6.2f} s")
    readiness = [e for e in timings.execs if e[0] == "psql" and e[2] == 0.0]
    loads = [e for e in timings.execs if e[2] > 0.0 or e[0] == "pg_restore"]
    print(f"    {len(readiness)} psql calls without stdin (readiness, listings): "
          f"{sum(e[1] for e in readiness):.2f} s")
    for argv0, seconds, producing in loads:
        print(f"    {argv0:>18}: {seconds:6.2f} s, of which producing stdin {producing:5.2f} s")
    total = timings.phases[-1][1] - timings.started
    print(f"    {'total':>18}    {total:6.2f} s")


# --- the parts alone ---------------------------------------------------------------

def stored_stream(bench: Bench, snapshot: str) -> tuple[Callable[[], Any], Any]:
    """(a context manager of the decompressed snapshot stream, the services)."""
    from backup.encryption import readable
    from backup.streams import decompress, verify
    from service.bootstrap import bootstrap
    from service.settings import Settings
    from service.usecases.restores import prepare_restore

    svc = bootstrap(Settings.load(bench.env))
    request = prepare_restore(svc, snapshot, "hf-bench-unused-" + RUN)
    manifest = request.manifest

    @contextlib.contextmanager
    def opened() -> Iterator[Iterator[bytes]]:
        with request.storage.open(manifest.data_key) as stored:
            checked = verify(stored, sha256=manifest.sha256, size=manifest.size_bytes)
            yield decompress(readable(checked, encryption=manifest.encryption,
                                      recipients=manifest.recipients, identities=None,
                                      what="bench"))
    return opened, svc


def parts_alone(bench: Bench, snapshot: str) -> dict[str, float]:
    from backup.framing import unpack

    opened, svc = stored_stream(bench, snapshot)
    figures: dict[str, float] = {}
    started = time.monotonic()
    with opened() as chunks:
        raw = sum(len(chunk) for chunk in chunks)
    figures["read+check+decompress"] = time.monotonic() - started
    print(f"  read, sha256, decompress to nowhere: {figures['read+check+decompress']:.2f} s "
          f"({raw / 2**20 / figures['read+check+decompress']:.0f} MiB/s of {raw / 2**20:.0f} MiB)")

    sink = bench.run_postgres(bench.name("parts-alone"))
    started = time.monotonic()
    with opened() as chunks:
        svc.docker.run(sink.id, ["sh", "-c", "cat > /dev/null"], stdin=chunks)
    figures["exec transport"] = time.monotonic() - started
    print(f"  the same, through an exec into cat > /dev/null: {figures['exec transport']:.2f} s")

    with opened() as chunks:
        for member in unpack(chunks):
            if member.name == "db/appdb":
                svc.docker.run(sink.id, ["sh", "-c", "cat > /tmp/appdb.dump"], stdin=member)
            else:
                member.skip()
    steps = [("whole", ["--single-transaction", "--clean", "--if-exists"]),
             ("pre-data", ["--clean", "--if-exists", "--section=pre-data"]),
             ("data", ["--single-transaction", "--section=data"]),
             ("post-data", ["--single-transaction", "--section=post-data"])]
    for label, step in steps:
        started = time.monotonic()
        pg_restore(sink, step)
        figures[label] = time.monotonic() - started
    print(f"  pg_restore of the archive as a file in the container: {figures['whole']:.2f} s; "
          f"by section: pre-data {figures['pre-data']:.2f} s, data {figures['data']:.2f} s, "
          f"post-data (indexes, constraints) {figures['post-data']:.2f} s")
    return figures


def pg_restore(container: Any, options: list[str]) -> None:
    result = container.exec_run(["pg_restore", "--exit-on-error", *options, "-d", "appdb",
                                 "/tmp/appdb.dump"], environment=PSQL_ENV)
    if result.exit_code != 0:
        raise SystemExit(f"pg_restore {options} failed: {result.output.decode()[-500:]}")


def check_same(bench: Bench, source: dict[str, str], copy: Any, label: str) -> None:
    got = fingerprint(copy)
    if got != source:
        raise SystemExit(f"{label}: restored data differs: {got} != {source}")
    bench.remove(copy.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=70, help="pgbench scale (70: ~1.1 GB)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="holdfast.jobs of the parallel dump")
    parser.add_argument("--variants", default="2,physical",
                        help="which snapshots besides jobs 1: the parallel one (its --jobs) "
                             "and/or physical, comma-separated")
    parser.add_argument("--poll", type=float, default=0.5,
                        help="the hand script's readiness poll interval (seconds)")
    options = parser.parse_args()
    client = docker.from_env()
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, internal=True, labels={"holdfast.bench": "1"})
    bench = Bench(client, Path(tempfile.mkdtemp(prefix="holdfast-bench-restore-")))
    try:
        # holdfast.jobs=1: the sequential format, whatever the size (the default
        # dumps 1 GiB or more in parallel).
        source = bench.run_postgres(bench.name("source"), labels={"holdfast.jobs": "1"})
        subprocess.run(["docker", "exec", "-e", "PGUSER=app", "-e", "PGPASSWORD", source.name,
                        "pgbench", "-i", "-q", "-s", str(options.scale), "appdb"],
                       env={**os.environ, "PGPASSWORD": PASSWORD}, check=True,
                       capture_output=True)
        # Settled before anything is timed: hint bits set, statistics taken and
        # the load's dirty buffers written, so no backup pays for them.
        psql(source, "VACUUM (FREEZE, ANALYZE)")
        psql(source, "CHECKPOINT")
        size = int(psql(source, "SELECT pg_database_size('appdb')"))
        expected = fingerprint(source)
        print(f"pgbench scale {options.scale}: database {size / 1e9:.2f} GB, "
              f"{expected['pgbench_accounts'].split(':')[0]} accounts; "
              f"{os.cpu_count()} CPUs; commit {commit()}")
        backups = {"hand pg_dump -Fc -Z0 | zstd -3": hand_backup(source)}
        snapshots: dict[str, str] = {}
        backups["holdfast backup (jobs 1)"], snapshots["holdfast jobs 1"] = holdfast_backup(
            bench, source.name)
        # The same data under containers labelled for the other kinds of
        # snapshot, one at a time on the one volume.
        variants = {f"holdfast jobs {options.jobs}": {"holdfast.jobs": str(options.jobs)},
                    "holdfast physical": {"holdfast.mode": "physical"}}
        for label, labels in variants.items():
            if label.split()[-1] not in options.variants.split(","):
                continue
            source.stop()  # kept: restores of its snapshot read its password from it
            source = bench.run_postgres(bench.name("source-var"), labels=labels,
                                        volume=f"{bench.names[0]}-data")
            if "holdfast.mode" in labels:
                backups["hand pg_basebackup -Ft | zstd -3"] = hand_backup(source, physical=True)
            backups[label.replace("holdfast", "holdfast backup")], snapshots[label] = (
                holdfast_backup(bench, source.name))
        for label, (seconds, rss) in backups.items():
            rss_text = f", peak RSS {rss / 1024:.0f} MiB" if rss else ""
            print(f"  {label:34} {seconds:6.1f} s, {size / 2**20 / seconds:6.1f} MiB/s{rss_text}")
        results: dict[str, list[float]] = {"hand": [], **{label: [] for label in snapshots}}
        for round_ in range(1, options.rounds + 1):
            print(f"round {round_}:")
            seconds, copy = hand_restore(bench, source, options.poll)
            check_same(bench, expected, copy, "hand")
            results["hand"].append(seconds)
            for label, snapshot in snapshots.items():
                seconds, copy = holdfast_restore(bench, snapshot, label)
                check_same(bench, expected, copy, label)
                results[label].append(seconds)
        for label, snapshot in snapshots.items():
            print(f"breakdown of one restore, {label} (in this process):")
            timings, copy = breakdown_restore(bench, snapshot)
            check_same(bench, expected, copy, "breakdown")
            print_breakdown(timings)
        sequential = snapshots["holdfast jobs 1"]
        print("the parts alone (the jobs 1 snapshot):")
        parts_alone(bench, sequential)
        hand = results["hand"]
        print()
        for label, values in results.items():
            median, best = statistics.median(values), min(values)
            print(f"{label:18} median {median:6.1f} s  best {best:6.1f} s  ratio to hand: "
                  f"median {median / statistics.median(hand):.2f}, best {best / min(hand):.2f}")
    finally:
        bench.cleanup()


def commit() -> str:
    result = subprocess.run(["git", "-C", str(Path(__file__).parent), "rev-parse", "--short",
                             "HEAD"], capture_output=True, text=True)
    return result.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
