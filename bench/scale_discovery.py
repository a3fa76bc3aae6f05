"""Benchmark: how ``holdfast serve`` scales with the number of labelled containers.

For each N in ``--counts`` (default 50, 100, 200), in a fresh
``HOLDFAST_DATA_DIR``, it starts N labelled ``sleep infinity`` containers, then
the daemon, and measures:

- discover+schedule: from the daemon's process start until every one of the N
  has been scheduled, three ways: by ``GET /v1/instances`` (polled every
  100 ms) listing all N with a non-null ``next_run``; by the daemon's JSON log
  saying ``scheduled <name>`` for all N in that same polled start; and by the
  log in an earlier start that nobody polls (until discovery has connected,
  each listing makes its own pass over the engine, which competes with the
  start-up discovery being measured);
- one ``GET /v1/instances`` at N (median of ``--gets``);
- event->scheduled: 10 more containers started one at a time while the daemon
  runs, each from the ``docker start`` call returning until the instance shows
  a ``next_run`` in ``GET /v1/instances`` (so that figure includes one
  listing; the API has no cheaper per-instance check) and until its
  ``scheduled <name>`` log line arrives (cheaper and more precise);
- idle CPU and RSS of the daemon over ``--idle-seconds`` (30 s) afterwards.

It prints a table and the growth ratios from the smallest to the largest N.

The containers use ``holdfast.engine=postgres`` (no binary probe) and
``holdfast.schedule=@daily``; they run on the internal network
``holdfast-bench-net`` (created if missing, never removed: other benches share
it), are labelled ``holdfast.bench=scale`` plus a per-round run label, named
``hf-scale-<n>-<hex>``, and only those of this run are removed, on success,
error or Ctrl-C. The daemon sees every ``holdfast.enable`` container on the
engine, including other people's, so their number is printed with each round.
Unless ``--allow-backups`` is given, the daemon's ``local`` target points below
a regular file, so no scheduled run that might fire during the bench (another
user's ``@every`` container) can exec a dump or store anything.

Needs the test images: ``bash tests/harness/build_images.sh``.

    python bench/scale_discovery.py --counts 50 100 200
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import psutil
import requests.exceptions

IMAGE = "holdfast-test/base:bookworm"
NETWORK = "holdfast-bench-net"
BENCH_LABEL = "holdfast.bench"
RUN_LABEL = "holdfast.bench.run"
SCHEDULE = "@daily"
EVENT_CONTAINERS = 10
POLL = 0.1
SCHEDULED = re.compile(r"^scheduled (\S+): ")
MIB = 1024 * 1024


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the finally blocks clean up."""


def _on_sigterm(signum, frame):
    raise Interrupted(f"signal {signum}")


# --- the daemon --------------------------------------------------------------------


def holdfast_version() -> str:
    """The commit of the Holdfast being measured (figures change with the code)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain",
                                "--untracked-files=no", "--", "service", "backup"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}{' + local changes' if dirty else ''}"


def holdfast_executable() -> str:
    beside = Path(sys.executable).with_name("holdfast")
    if beside.exists():
        return str(beside)  # skips a pyenv shim, whose start-up would count as discovery
    found = shutil.which("holdfast")
    if found is None:
        raise SystemExit("holdfast is not installed: pip install -e '.[test]'")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Daemon:
    """``holdfast serve`` in a subprocess, with its JSON log read line by line
    and each ``scheduled <name>`` stamped with its arrival time."""

    def __init__(self, data_dir: Path, guard: Path | None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
        env.update(HOLDFAST_DATA_DIR=str(data_dir), HOLDFAST_LOG_FORMAT="json")
        if guard is not None:
            env["HOLDFAST_TARGET_LOCAL"] = (guard / "snapshots").as_uri()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.scheduled: dict[str, float] = {}
        self.serving_at: float | None = None
        self.problems: list[str] = []
        self.lines = 0
        self._changed = threading.Condition()
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            [holdfast_executable(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, bufsize=1)
        self.ps = psutil.Process(self.process.pid)
        self._reader = threading.Thread(target=self._read, name="daemon-log", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            arrived = time.monotonic()
            self.lines += 1
            try:
                event = json.loads(line)
            except ValueError:
                self.problems.append(line.rstrip())
                continue
            message = str(event.get("message", ""))
            match = SCHEDULED.match(message)
            with self._changed:
                if match:
                    self.scheduled.setdefault(match.group(1), arrived)
                elif message.startswith("holdfast serving on"):
                    self.serving_at = arrived
                if event.get("level") in ("warning", "error", "critical"):
                    self.problems.append(message)
                self._changed.notify_all()

    def wait_scheduled(self, names: set[str], timeout: float) -> dict[str, float] | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not names <= self.scheduled.keys():
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    return None
                self._changed.wait(min(left, 0.5))
            return {name: self.scheduled[name] for name in names}

    def instances(self, timeout: float = 120.0) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/v1/instances", timeout=timeout) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)


def scheduled_in(instances: list[dict], names: set[str]) -> set[str]:
    return {i["name"] for i in instances if i["name"] in names and i.get("next_run")}


def poll_until_scheduled(daemon: Daemon, names: set[str], timeout: float) -> float | None:
    """Poll GET /v1/instances every 100 ms (start to start) until every name has a
    next_run; returns the monotonic time the satisfying response arrived."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asked = time.monotonic()
        if daemon.process.poll() is not None:
            raise SystemExit(f"the daemon exited with {daemon.process.returncode}: "
                             f"{daemon.problems[-5:]}")
        try:
            if names <= scheduled_in(daemon.instances(), names):
                return time.monotonic()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        time.sleep(max(0.0, POLL - (time.monotonic() - asked)))
    return None


# --- containers -----------------------------------------------------------------


@dataclass
class Round:
    count: int
    run: str = field(default_factory=lambda: secrets.token_hex(4))

    def name(self, index: int) -> str:
        return f"hf-scale-{index}-{self.run}"

    def labels(self) -> dict[str, str]:
        return {"holdfast.enable": "true", "holdfast.engine": "postgres",
                "holdfast.schedule": SCHEDULE, BENCH_LABEL: "scale", RUN_LABEL: self.run}


def create(client, bench: Round, index: int, start: bool = True):
    container = client.containers.create(
        IMAGE, ["sleep", "infinity"], name=bench.name(index), labels=bench.labels(),
        network=NETWORK, detach=True)
    if start:
        container.start()
    return container


def start_many(client, bench: Round, workers: int) -> float:
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="create")
    try:
        for future in [pool.submit(create, client, bench, i) for i in range(bench.count)]:
            future.result()
    finally:
        # On an error or Ctrl-C, let running creations finish (so cleanup sees them)
        # and drop the queued ones.
        pool.shutdown(wait=True, cancel_futures=True)
    return time.monotonic() - started


def remove_round(client, bench: Round) -> int:
    """Remove this round's containers only (both labels must match), one at a time.

    Not in parallel: dockerd 20.10 (Debian's 20.10.24 here) can deadlock when
    containers on one user-defined network exit concurrently (moby/moby#46661,
    fixed in libnetwork#2679 but not in 20.10.24); a parallel removal of 100
    containers on ``holdfast-bench-net`` wedged the shared engine. If the engine
    stops answering, give up and say how to finish the job later."""
    mine = client.containers.list(all=True, filters={
        "label": [f"{BENCH_LABEL}=scale", f"{RUN_LABEL}={bench.run}"]})
    removed = 0
    for container in mine:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
            print(f"  could not remove {container.name} ({exc}); the engine may be stuck. "
                  f"{len(mine) - removed} container(s) left; remove them later with:\n"
                  f"    docker ps -aq --filter label={RUN_LABEL}={bench.run} "
                  "| xargs -r docker rm -f", flush=True)
            break
        removed += 1
        time.sleep(0.05)  # let libnetwork's watch loop finish the last endpoint first
    return removed


def foreign_labelled(client, bench: Round) -> list[str]:
    """Other labelled containers: the daemon discovers them too (and probes those
    whose engine it cannot tell from the image or a label)."""
    labelled = client.containers.list(all=True, filters={"label": "holdfast.enable"})
    return sorted(c.name for c in labelled if c.labels.get(RUN_LABEL) != bench.run)


# --- one round ------------------------------------------------------------------


def sample_idle(daemon: Daemon, seconds: float) -> dict[str, float]:
    process = daemon.ps
    process.cpu_percent(None)
    peak = process.memory_info().rss
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
        peak = max(peak, process.memory_info().rss)
    cpu = process.cpu_percent(None)
    rss = process.memory_info().rss
    high_water = 0
    with contextlib.suppress(OSError), open(f"/proc/{process.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                high_water = int(line.split()[1]) * 1024
    return {"cpu_percent": cpu, "rss": rss, "peak_rss": max(peak, rss),
            "high_water_rss": high_water}


def event_latencies(client, daemon: Daemon, bench: Round, timeout: float) -> list[dict]:
    results = []
    for index in range(bench.count, bench.count + EVENT_CONTAINERS):
        name = bench.name(index)
        container = create(client, bench, index, start=False)
        container.start()
        returned = time.monotonic()
        seen = poll_until_scheduled(daemon, {name}, timeout)
        logged = daemon.wait_scheduled({name}, timeout)
        results.append({
            "api": None if seen is None else seen - returned,
            "log": None if logged is None else logged[name] - returned,
        })
        time.sleep(0.5)  # let the daemon finish with this event before the next one
    return results


def run_round(client, count: int, options, scratch: Path) -> dict:
    bench = Round(count)
    data_dir = scratch / f"data-{count}-{bench.run}"
    guard = None
    if not options.allow_backups:
        guard = scratch / f"no-backups-{bench.run}"
        guard.write_text("a file, so the daemon's local target cannot be created\n")
    daemon: Daemon | None = None
    print(f"\n== N={count} (run {bench.run})", flush=True)
    try:
        took = start_many(client, bench, options.workers)
        others = foreign_labelled(client, bench)
        load = os.getloadavg()[0]
        print(f"  started {count} containers in {took:.1f} s; load average {load:.1f}; "
              f"{len(others)} other labelled container(s) on the engine "
              f"{' '.join(others[:5])}{' ...' if len(others) > 5 else ''}", flush=True)
        names = {bench.name(i) for i in range(count)}

        # First a start nobody polls: until discovery has connected, each
        # GET /v1/instances runs a full engine pass of its own, which competes
        # with the start-up discovery it is measuring.
        daemon = Daemon(scratch / f"quiet-{count}-{bench.run}", guard)
        quiet = daemon.wait_scheduled(names, options.timeout)
        if quiet is None:
            raise SystemExit(f"N={count}: not all scheduled after {options.timeout:.0f} s; "
                             f"daemon said {daemon.problems[-5:]}")
        unpolled = max(quiet.values()) - daemon.started_at
        daemon.stop()

        daemon = Daemon(data_dir, guard)
        seen = poll_until_scheduled(daemon, names, options.timeout)
        if seen is None:
            raise SystemExit(f"N={count}: not all scheduled after {options.timeout:.0f} s; "
                             f"daemon said {daemon.problems[-5:]}")
        logged = daemon.wait_scheduled(names, options.timeout)
        assert logged is not None
        row: dict = {"n": count, "foreign": len(others), "load": load,
                     "discover_api": seen - daemon.started_at,
                     "discover_log": max(logged.values()) - daemon.started_at,
                     "discover_quiet": unpolled,
                     "startup": (daemon.serving_at or float("nan")) - daemon.started_at}
        print(f"  all scheduled: {row['discover_api']:.2f} s by the API, "
              f"{row['discover_log']:.2f} s by the log; {unpolled:.2f} s by the log "
              "when nothing polls", flush=True)

        timings, listed = [], 0
        for _ in range(options.gets):
            asked = time.monotonic()
            listed = len(daemon.instances())
            timings.append(time.monotonic() - asked)
        row["get"] = statistics.median(timings)
        row["get_max"] = max(timings)
        print(f"  GET /v1/instances ({listed} instances): median {row['get']:.3f} s "
              f"of {options.gets}", flush=True)

        events = event_latencies(client, daemon, bench, options.timeout)
        for kind in ("api", "log"):
            values = [e[kind] for e in events if e[kind] is not None]
            missed = len(events) - len(values)
            row[f"event_{kind}"] = statistics.median(values) if values else float("nan")
            row[f"event_{kind}_max"] = max(values) if values else float("nan")
            row[f"event_{kind}_missed"] = missed
        print(f"  event->scheduled: API median {row['event_api']:.3f} s "
              f"max {row['event_api_max']:.3f} s; log median {row['event_log']:.3f} s "
              f"max {row['event_log_max']:.3f} s", flush=True)

        time.sleep(2.0)
        idle = sample_idle(daemon, options.idle_seconds)
        row.update(idle)
        print(f"  idle {options.idle_seconds:.0f} s: CPU {idle['cpu_percent']:.1f} %, "
              f"RSS {idle['rss'] / MIB:.1f} MiB (window peak {idle['peak_rss'] / MIB:.1f}, "
              f"process peak {idle['high_water_rss'] / MIB:.1f})", flush=True)
        warnings = [p for p in daemon.problems if p]
        if warnings:
            print(f"  daemon warnings/errors: {len(warnings)}, last: {warnings[-1][:160]}")
        return row
    finally:
        if daemon is not None:
            daemon.stop()
        removed = remove_round(client, bench)
        print(f"  stopped the daemon, removed {removed} container(s)", flush=True)


# --- report ---------------------------------------------------------------------

COLUMNS = [
    # key, header, format, scale
    ("discover_api", "discover+schedule API s", "{:.2f}", 1),
    ("discover_log", "...by log s", "{:.2f}", 1),
    ("discover_quiet", "log unpolled s", "{:.2f}", 1),
    ("get", "GET /v1/instances s", "{:.3f}", 1),
    ("event_api", "event API med s", "{:.3f}", 1),
    ("event_api_max", "API max s", "{:.3f}", 1),
    ("event_log", "event log med s", "{:.3f}", 1),
    ("event_log_max", "log max s", "{:.3f}", 1),
    ("cpu_percent", "idle CPU %", "{:.2f}", 1),
    ("rss", "RSS MiB", "{:.1f}", MIB),
    ("peak_rss", "idle peak MiB", "{:.1f}", MIB),
    ("high_water_rss", "VmHWM MiB", "{:.1f}", MIB),
]


def report(rows: list[dict]) -> None:
    headers = ["N", "others", "load", *[header for _, header, _, _ in COLUMNS]]
    table = [[str(r["n"]), str(r["foreign"]), f"{r['load']:.1f}",
              *[fmt.format(r[key] / scale) for key, _, fmt, scale in COLUMNS]] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(headers)]
    print("\n" + "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for line in table:
        print("  ".join(c.rjust(w) for c, w in zip(line, widths, strict=True)))
    print("\n(start-up to 'holdfast serving' log line: "
          + ", ".join(f"N={r['n']} {r['startup']:.2f} s" for r in rows) + ")")
    if len(rows) < 2:
        return
    low, high = min(rows, key=lambda r: r["n"]), max(rows, key=lambda r: r["n"])
    print(f"\ngrowth {high['n']} vs {low['n']} containers ({high['n'] / low['n']:.1f}x as many):")
    for key, header, _, _ in COLUMNS:
        shown = f"{high[key] / low[key]:6.2f}x" if low[key] else "   n/a (zero at low N)"
        print(f"  {header:<26} {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--gets", type=int, default=5, help="GET /v1/instances timings per N")
    parser.add_argument("--workers", type=int, default=8, help="threads creating containers")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for discovery or one event")
    parser.add_argument("--allow-backups", action="store_true",
                        help="leave the daemon's local target usable")
    options = parser.parse_args()
    signal.signal(signal.SIGTERM, _on_sigterm)
    client = docker.from_env(timeout=60)
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, internal=True, labels={BENCH_LABEL: "1"})
    network = client.networks.get(NETWORK)
    if not network.attrs.get("Internal"):
        raise SystemExit(f"network {NETWORK} exists but is not internal; refusing to use it")
    scratch = Path(tempfile.mkdtemp(prefix="holdfast-scale-"))
    version = holdfast_version()
    print(f"holdfast {version}, {psutil.cpu_count()} CPUs, "
          f"{psutil.virtual_memory().total / 1024**3:.0f} GiB RAM", flush=True)
    rows = []
    try:
        for count in options.counts:
            rows.append(run_round(client, count, options, scratch))
    except (KeyboardInterrupt, Interrupted):
        print("\ninterrupted; this run's containers were removed", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if rows:
        report(rows)
    after = holdfast_version()
    if after != version:
        print(f"\nwarning: Holdfast changed during the run ({version} -> {after}); "
              "the rounds may have measured different code")


if __name__ == "__main__":
    main()
