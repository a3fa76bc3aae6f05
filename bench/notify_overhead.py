"""Benchmark: what notifications cost a backup that ``holdfast serve`` runs.

Two daemons run side by side, each with its own data directory and its own
``HOLDFAST_SCOPE``, over two Postgres containers that hold the same generated
rows (about ``--size-mb``, default 100; deterministic md5 text, so both load
the same data), each labelled with the ``holdfast.scope`` of its daemon:

- off: no notification channel;
- on: the same settings plus a signed webhook (``HOLDFAST_NOTIFY_HOOK``, with
  ``_SECRET`` and ``_EVENTS=all``, so every backup sends ``backup.succeeded``)
  to a ThreadingHTTPServer receiver on 127.0.0.1, a second webhook
  (``HOLDFAST_NOTIFY_DEAD``, ``_EVENTS=all``) to a closed port on 127.0.0.1,
  retried for the whole run (``HOLDFAST_NOTIFY_RETRY_FOR=600``), and the
  container labelled ``holdfast.ping=<receiver>/ping/<uuid>``.

Backups go through the API as the e2e tests do (``POST
/v1/instances/{name}/backups?wait=true&timeout=600`` with a bearer token),
one at a time, alternating the two daemons ``--rounds`` times (default 5; the
order flips each round), after ``--warmup`` (default 1) unmeasured backup of
each. It prints, per config, the median and best wall seconds of a backup (and
the job's own started_at -> finished_at), the on/off ratio of the medians, and
for the on daemon the delivery latency, from the job's ``finished_at`` to the
arrival (``time.time()`` in the receiver) of that run's ``backup.succeeded``
webhook and of its success ping (median and max, ms; negative when the message
arrived before the job's final status was stored), then the deliveries the on
daemon recorded per channel and status (``GET /v1/notifications``).

Everything it creates carries ``holdfast.bench=notify`` and a per-run
``holdfast.bench.run=<hex>`` label, runs on the internal network
``holdfast-bench-net`` (created if missing, never removed), and is removed,
containers one at a time, on success, error or Ctrl-C. Nothing leaves the
machine: both channels and the ping point at 127.0.0.1.

    bash tests/harness/ensure_docker.sh && bash tests/harness/build_images.sh
    python bench/notify_overhead.py [--size-mb 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import docker
import docker.errors
import psutil
import requests.exceptions
from docker.models.containers import Container
from dump_throughput import MIB, NETWORK, PASSWORD, _probe, exec_ok, wait
from scale_discovery import Interrupted, _on_sigterm, holdfast_version

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.harness

from tests.harness.daemon import Daemon
from tests.harness.receiver import Received, Receiver, closed_port

POSTGRES_IMAGE = "holdfast-test/postgres:15"
BENCH_LABEL = "holdfast.bench"
RUN_LABEL = "holdfast.bench.run"
HOOK_PATH = "/hook"
WAIT_SECONDS = 600
ARRIVAL_TIMEOUT = 60.0
"""Seconds to wait, after a backup, for its webhook and success ping to arrive."""


# --- the receiver, with arrival times ------------------------------------------------


class StampedReceiver(Receiver):
    """The test harness's receiver, with each request's arrival (``time.time()``,
    taken once its body is read, before it is answered)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: list[tuple[float, Received]] = []
        self._stamps = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, name="receiver",
                                        daemon=True)
        self._thread.start()

    def record(self, request: Received) -> None:
        arrived = time.time()
        super().record(request)
        with self._stamps:
            self.arrivals.append((arrived, request))

    def stamped(self) -> list[tuple[float, Received]]:
        with self._stamps:
            return list(self.arrivals)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(10)


# --- containers -----------------------------------------------------------------------


@dataclass
class Run:
    hex: str = field(default_factory=lambda: secrets.token_hex(4))

    def labels(self) -> dict[str, str]:
        return {BENCH_LABEL: "notify", RUN_LABEL: self.hex}


def start_postgres(client: docker.DockerClient, run: Run, name: str,
                   labels: dict[str, str]) -> Container:
    """A labelled Postgres on the bench network (``dump_throughput``'s settings),
    with a labelled volume of its own; not loaded yet."""
    volume = client.volumes.create(f"{name}-data", labels=run.labels())
    return client.containers.run(
        POSTGRES_IMAGE, name=name, detach=True, network=NETWORK,
        environment={"POSTGRES_PASSWORD": PASSWORD, "POSTGRES_USER": "app",
                     "POSTGRES_DB": "appdb"},
        labels={"holdfast.enable": "true", **run.labels(), **labels},
        volumes={volume.name: {"bind": "/var/lib/postgresql/data", "mode": "rw"}},
        command=["postgres", "-c", "max_wal_size=4GB", "-c", "synchronous_commit=off"])


def load(container: Container, size_mb: int) -> tuple[int, int]:
    """``dump_throughput``'s table and row count, with md5 text of the row number
    instead of random(): every container gets the same rows. Returns the
    database's size and a checksum of the rows."""
    pg = {"PGUSER": "app", "PGPASSWORD": PASSWORD, "PGDATABASE": "appdb"}
    wait(lambda: _probe(container, ["psql", "-h", "127.0.0.1", "-c", "SELECT 1"], pg),
         container.name or "postgres")

    def sql(text: str) -> str:
        return exec_ok(container, ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", text], pg)

    sql("CREATE TABLE events (id bigint PRIMARY KEY, kind text, payload text)")
    rows = size_mb * MIB // 220
    payload = " || ".join(f"md5(g::text || ':{part}')" for part in "abcde")
    for start in range(1, rows + 1, 500_000):
        stop = min(start + 499_999, rows)
        sql(f"INSERT INTO events SELECT g, 'kind-' || (g % 17), {payload} "
            f"FROM generate_series({start}, {stop}) g")
    sql("VACUUM ANALYZE events")
    return (int(sql("SELECT pg_database_size('appdb')")),
            int(sql("SELECT count(*) * 1000003 + sum(hashtext(payload)::bigint) FROM events")))


def remove_run(client: docker.DockerClient, run: Run) -> int:
    """This run's containers (one at a time: see the README on dockerd 20.10),
    then its volumes; nothing without its run label."""
    mine = client.containers.list(all=True, filters={"label": [f"{RUN_LABEL}={run.hex}"]})
    removed = 0
    for container in mine:
        try:
            container.remove(force=True)
            removed += 1
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            print(f"  could not remove {container.name} ({exc}); remove it later with:\n"
                  f"    docker ps -aq --filter label={RUN_LABEL}={run.hex} | xargs -r docker rm -f"
                  f"\n    docker volume ls -q --filter label={RUN_LABEL}={run.hex} "
                  "| xargs -r docker volume rm", flush=True)
            return removed
        time.sleep(0.05)
    for volume in client.volumes.list(filters={"label": f"{RUN_LABEL}={run.hex}"}):
        with contextlib.suppress(docker.errors.NotFound):
            volume.remove(force=True)
    return removed


# --- the daemons and one backup ------------------------------------------------------


@dataclass
class Config:
    label: str
    daemon: Daemon
    instance: str
    walls: list[float] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)


def backup(config: Config) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    answer = config.daemon.post(f"/v1/instances/{config.instance}/backups",
                                params={"wait": "true", "timeout": str(WAIT_SECONDS)},
                                json={}, timeout=WAIT_SECONDS + 60)
    wall = time.monotonic() - started
    if answer.status_code != 200:
        raise SystemExit(f"{config.label}: backup of {config.instance} answered "
                         f"{answer.status_code}: {answer.text[:300]}")
    job = dict(answer.json())
    if job["status"] != "succeeded":
        raise SystemExit(f"{config.label}: job {job['id']} {job['status']}: {job.get('error')}")
    return wall, job


def epoch(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def job_seconds(job: dict[str, Any]) -> float:
    return epoch(job["finished_at"]) - epoch(job["started_at"])


def arrivals(receiver: StampedReceiver, job: dict[str, Any], ping: str,
             secret: str) -> tuple[float, float]:
    """When this job's backup.succeeded webhook and its success ping arrived
    (the ping's body is the run's reason, which names its snapshot)."""
    snapshot = job["snapshot_id"]

    def found() -> tuple[float, float] | None:
        hook = ping_at = None
        for arrived, request in receiver.stamped():
            if request.path == HOOK_PATH and hook is None:
                payload = request.json()
                if payload.get("event") == "backup.succeeded" and payload.get("job") == job["id"]:
                    expected = "sha256=" + hmac.new(secret.encode(), request.body,
                                                    hashlib.sha256).hexdigest()
                    headers = {k.lower(): v for k, v in request.headers.items()}
                    if headers.get("x-holdfast-signature") != expected:
                        raise SystemExit(f"the webhook for {job['id']} is not signed right")
                    hook = arrived
            elif request.path == ping and ping_at is None and snapshot in request.body.decode():
                ping_at = arrived
        return None if hook is None or ping_at is None else (hook, ping_at)

    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while (seen := found()) is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job['id']}: its webhook and success ping did not arrive "
                             f"within {ARRIVAL_TIMEOUT:.0f} s")
        time.sleep(0.02)
    return seen


def wait_discovered(config: Config) -> None:
    config.daemon.wait_for(lambda: config.daemon.instance(config.instance), 120,
                           f"{config.label}: discovery of {config.instance}", interval=0.5)


def deliveries(daemon: Daemon) -> list[dict[str, Any]]:
    answer = daemon.get("/v1/notifications", params={"limit": "1000"})
    if answer.status_code != 200:
        raise SystemExit(f"GET /v1/notifications answered {answer.status_code}: {answer.text}")
    return list(answer.json())


def log_problems(daemon: Daemon) -> Counter[str]:
    """Warnings and errors in the daemon's JSON log, by the message's first words."""
    found: Counter[str] = Counter()
    for record in daemon.log_records():
        if str(record.get("level", "")).lower() in ("warning", "error", "critical"):
            message = str(record.get("message", ""))
            key = "notification ...: attempt N failed" if " attempt " in message and \
                message.startswith("notification ") else message[:100]
            found[f"{record['level']}: {key}"] += 1
    return found


# --- report -------------------------------------------------------------------------


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} / {max(values):.0f}" if values else "n/a"


def report(off: Config, on: Config, hook_ms: list[float], ping_ms: list[float],
           queued_ms: list[float], recorded: list[dict[str, Any]]) -> None:
    headers = ["config", "backups", "median s", "best s", "job median s", "ratio on/off",
               "webhook med/max ms", "ping med/max ms"]
    ratio = statistics.median(on.walls) / statistics.median(off.walls)
    rows = [[c.label, str(len(c.walls)), f"{statistics.median(c.walls):.2f}",
             f"{min(c.walls):.2f}", f"{statistics.median(job_seconds(j) for j in c.jobs):.2f}",
             "1.00" if c is off else f"{ratio:.3f}",
             "-" if c is off else spread(hook_ms), "-" if c is off else spread(ping_ms)]
            for c in (off, on)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("\n" + "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\n(latency from the job's finished_at to the receiver's arrival; from the "
          f"webhook's own queued time (its created_at) instead: {spread(queued_ms)} ms)")
    print(f"(per-round wall s, off: {' '.join(f'{w:.2f}' for w in off.walls)}; "
          f"on: {' '.join(f'{w:.2f}' for w in on.walls)})")
    print("\ndeliveries recorded by the on daemon (GET /v1/notifications, whole run):")
    by_channel: dict[str, Counter[str]] = {}
    for delivery in recorded:
        by_channel.setdefault(delivery["channel"], Counter())[delivery["status"]] += 1
    for channel, statuses in sorted(by_channel.items()):
        attempts = max(d["attempts"] for d in recorded if d["channel"] == channel)
        print(f"  {channel:<32} " + ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))
              + f"  (most attempts of one: {attempts})")


# --- main -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating backups of each config; median and best reported")
    parser.add_argument("--warmup", type=int, default=1,
                        help="unmeasured backups of each config first")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    begun = time.monotonic()
    client = docker.from_env(timeout=600)
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, internal=True, labels={BENCH_LABEL: "1"})
    if not client.networks.get(NETWORK).attrs.get("Internal"):
        raise SystemExit(f"network {NETWORK} exists but is not internal; refusing to use it")
    version = holdfast_version()
    others = len(client.containers.list())
    print(f"holdfast {version}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 1024**3:.0f} GiB RAM, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, {others} running container(s) "
          "on the engine before this run", flush=True)

    run = Run()
    scratch = Path(tempfile.mkdtemp(prefix="holdfast-notify-"))
    token = f"hf_bench-{secrets.token_hex(16)}"
    secret = f"whsec-{secrets.token_hex(16)}"
    ping = f"/ping/{uuid.uuid4()}"
    receiver = StampedReceiver()
    dead_url = f"http://127.0.0.1:{closed_port()}/dead"
    scopes = {"off": f"nbench-off-{run.hex}", "on": f"nbench-on-{run.hex}"}
    names = {"off": f"hf-notify-off-{run.hex}", "on": f"hf-notify-on-{run.hex}"}
    base = {"HOLDFAST_API_TOKEN": token}
    notify = {"HOLDFAST_NOTIFY_HOOK": receiver.base + HOOK_PATH,
              "HOLDFAST_NOTIFY_HOOK_SECRET": secret, "HOLDFAST_NOTIFY_HOOK_EVENTS": "all",
              "HOLDFAST_NOTIFY_DEAD": dead_url, "HOLDFAST_NOTIFY_DEAD_EVENTS": "all",
              "HOLDFAST_NOTIFY_RETRY_FOR": "600"}
    daemons: list[Daemon] = []
    try:
        started = time.monotonic()
        containers = {
            "off": start_postgres(client, run, names["off"], {"holdfast.scope": scopes["off"]}),
            "on": start_postgres(client, run, names["on"], {"holdfast.scope": scopes["on"],
                                                            "holdfast.ping": receiver.base + ping}),
        }
        loaded = {key: load(container, options.size_mb) for key, container in containers.items()}
        if loaded["off"][1] != loaded["on"][1]:
            raise SystemExit(f"the two containers' rows differ: {loaded}")
        print(f"[postgres x2: loaded {loaded['off'][0] / MIB:,.0f} MiB each (same rows, "
              f"checksum {loaded['off'][1]}) in {time.monotonic() - started:.0f} s]", flush=True)

        configs = {}
        for key, extra in (("off", {}), ("on", notify)):
            daemon = Daemon(scratch / key, {**base, "HOLDFAST_SCOPE": scopes[key], **extra})
            daemons.append(daemon)
            daemon.start()
            configs[key] = Config(key, daemon, names[key])
        for config in configs.values():
            wait_discovered(config)
        channels = configs["on"].daemon.get("/v1/notifications/channels").json()
        print("[daemons up; on daemon's channels: " + ", ".join(
            f"{c['name']} ({c['kind']}, events {len(c['events'])}, signed {c['signed']})"
            for c in channels) + "]", flush=True)

        off, on = configs["off"], configs["on"]
        hook_ms: list[float] = []
        ping_ms: list[float] = []
        queued_ms: list[float] = []
        for number in range(options.warmup):
            for config in (off, on):
                wall, job = backup(config)
                if config is on:
                    arrivals(receiver, job, ping, secret)
                print(f"[warm-up {number + 1}: {config.label} {wall:.2f} s]", flush=True)
        for number in range(options.rounds):
            order = (off, on) if number % 2 == 0 else (on, off)
            said = []
            for config in order:
                wall, job = backup(config)
                config.walls.append(wall)
                config.jobs.append(job)
                said.append(f"{config.label} {wall:.2f} s")
                if config is on:
                    hook_at, ping_at = arrivals(receiver, job, ping, secret)
                    finished = epoch(job["finished_at"])
                    hook_ms.append((hook_at - finished) * 1000)
                    ping_ms.append((ping_at - finished) * 1000)
                    queued = [d for d in deliveries(on.daemon) if d["channel"] == "hook"
                              and d["event"] == "backup.succeeded"
                              and job["snapshot_id"] in (d["reason"] or "")]
                    queued_ms.append((hook_at - epoch(queued[0]["created_at"])) * 1000)
                    said.append(f"webhook {hook_ms[-1]:+.0f} ms, ping {ping_ms[-1]:+.0f} ms")
            print(f"[round {number + 1}: {', '.join(said)}; load average "
                  f"{os.getloadavg()[0]:.2f}]", flush=True)

        recorded = deliveries(on.daemon)
        report(off, on, hook_ms, ping_ms, queued_ms, recorded)
        for config in (off, on):
            problems = log_problems(config.daemon)
            print(f"\n{config.label} daemon log, warnings and errors: "
                  + ("none" if not problems else
                     "; ".join(f"{n} x {what}" for what, n in problems.most_common())))
        print(f"\nload average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"whole run {time.monotonic() - begun:.0f} s", flush=True)
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted; removing what this run created", file=sys.stderr)
    finally:
        for daemon in daemons:
            if daemon.alive():
                with contextlib.suppress(AssertionError):  # wait_exit killed it
                    daemon.stop(timeout=60)
            daemon.close()
        receiver.close()
        removed = remove_run(client, run)
        print(f"[stopped the daemons, removed {removed} container(s) and their volumes]",
              flush=True)
        shutil.rmtree(scratch, ignore_errors=True)
    after = holdfast_version()
    if after != version:
        print(f"\nwarning: Holdfast changed during the run ({version} -> {after}); "
              "the rounds may have measured different code")


if __name__ == "__main__":
    main()
