"""What the dashboard's overview costs against the API calls a script would make for the same facts.

A catalog (SQLite, the default) is filled with ``--instances`` fake
instances of ``--snapshots`` snapshots each (one in ten failed); then, in
the same process and alternating ``--rounds`` times, ``GET /ui`` (the whole
overview page: health, strips, totals, rendered) is timed against the
baseline ``GET /v1/instances`` plus ``GET /v1/snapshots`` (the JSON a script
would fetch and still have to judge). Docker is the test suite's fake, so
the figures are Holdfast's own: catalog, use cases and rendering. Needs no
engine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient

from backup.types import Snapshot, SnapshotStatus, utcnow
from service.entrypoints.api import create_app
from service.usecases.instances import refresh_instances
from service.usecases.jobs import JobRunner
from tests.fakes.services import fake_world
from tests.harness.api import AUTH, TEST_TOKEN
from tests.usecases.entrypoints.helpers import add_db


def seed(world, instances: int, snapshots: int) -> None:  # type: ignore[no-untyped-def]
    start = utcnow() - timedelta(days=snapshots)
    for i in range(instances):
        name = f"bench-{i:03d}"
        add_db(world, name, size=1000)
        for j in range(snapshots):
            at = start + timedelta(days=j, minutes=i)
            failed = j % 10 == 9
            world.services.catalog.add_snapshot(Snapshot(
                id=f"{at:%Y%m%dT%H%M%SZ}-{i:03d}{j:03d}", instance=name, engine="fake",
                target="local", status=SnapshotStatus.FAILED if failed else SnapshotStatus.COMPLETE,
                created_at=at, finished_at=at + timedelta(seconds=30), data_key=f"{name}/{j}",
                size_bytes=None if failed else 10_000_000 + j,
                raw_bytes=None if failed else 40_000_000,
                error="boom" if failed else None))
    refresh_instances(world.services)


def timed(call) -> float:  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=50)
    parser.add_argument("--snapshots", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world = fake_world(Path(tmp))
        seed(world, args.instances, args.snapshots)
        jobs = JobRunner(world.services, 1)
        app = create_app(world.services, jobs)
        browser = TestClient(app)
        browser.cookies.set("holdfast_session", TEST_TOKEN, path="/ui")
        api = TestClient(app, headers=AUTH)

        def page() -> None:
            answer = browser.get("/ui")
            assert answer.status_code == 200 and "bench-000" in answer.text, answer.status_code

        def baseline() -> None:
            assert api.get("/v1/instances").status_code == 200
            assert api.get("/v1/snapshots").status_code == 200

        page(), baseline()  # warm-up
        ui, raw = [], []
        for _ in range(args.rounds):
            ui.append(timed(page))
            raw.append(timed(baseline))
        jobs.shutdown(grace=1, cancel_wait=1)
    total = args.instances * args.snapshots
    print(f"{args.instances} instances x {args.snapshots} snapshots = {total} rows, "
          f"{args.rounds} rounds")
    for label, figures in (("GET /ui (overview page)", ui),
                           ("GET /v1/instances + /v1/snapshots", raw)):
        print(f"{label:36s} median {statistics.median(figures) * 1000:7.1f} ms  "
              f"best {min(figures) * 1000:7.1f} ms")
    print(f"ratio (median): {statistics.median(ui) / statistics.median(raw):.2f}")


if __name__ == "__main__":
    main()
