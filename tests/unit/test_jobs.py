"""The job runner: the global limit queues work, shutdown never strands a job."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.adapters.catalog import JobStatus, open_catalog
from service.adapters.docker import DockerAdapter
from service.bootstrap import Services
from service.settings import Settings
from service.usecases.jobs import JobRunner, ShuttingDown


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path)})
    services = Services(settings=settings, catalog=open_catalog(settings.catalog_url),
                        docker=DockerAdapter(factory=lambda: pytest.fail("no Docker here")))
    yield services
    services.catalog.close()


def test_at_most_the_limit_runs_at_once_and_the_rest_queue(services: Services) -> None:
    runner = JobRunner(services, workers=2)
    running, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def work() -> dict[str, Any]:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        release.wait(10)
        with lock:
            running[0] -= 1
        return {"ok": True}

    jobs = [runner.submit("backup", work, instance=f"i{n}") for n in range(5)]
    time.sleep(0.3)
    states = [services.catalog.get_job(job.id).status for job in jobs]  # type: ignore[union-attr]
    assert states.count(JobStatus.RUNNING) == 2
    assert states.count(JobStatus.QUEUED) == 3
    release.set()
    deadline = time.monotonic() + 10
    while runner.running() or any(
            services.catalog.get_job(j.id).status != JobStatus.SUCCEEDED  # type: ignore[union-attr]
            for j in jobs):
        assert time.monotonic() < deadline, "queued jobs did not run after the first ones"
        time.sleep(0.05)
    runner.shutdown(grace=10)
    assert peak[0] == 2


def test_shutdown_cancels_queued_jobs_and_refuses_new_ones(services: Services) -> None:
    runner = JobRunner(services, workers=1)
    started, release = threading.Event(), threading.Event()

    def slow() -> dict[str, Any]:
        started.set()
        release.wait(10)
        return {}

    first = runner.submit("backup", slow, instance="a")
    queued = runner.submit("backup", slow, instance="b")
    assert started.wait(5)
    stopper = threading.Thread(target=runner.shutdown, kwargs={"grace": 5})
    stopper.start()
    time.sleep(0.2)
    with pytest.raises(ShuttingDown):
        runner.submit("backup", slow, instance="c")
    release.set()
    stopper.join(10)
    assert services.catalog.get_job(first.id).status == JobStatus.SUCCEEDED  # type: ignore[union-attr]
    cancelled = services.catalog.get_job(queued.id)
    assert cancelled is not None and cancelled.status == JobStatus.FAILED
    assert cancelled.error is not None and "cancelled" in cancelled.error


def test_a_failing_job_is_recorded_with_its_reason(services: Services) -> None:
    runner = JobRunner(services, workers=1)

    def broken() -> dict[str, Any]:
        raise RuntimeError("disk on fire")

    job = runner.submit("restore", broken)
    runner.shutdown(grace=5)
    record = services.catalog.get_job(job.id)
    assert record is not None and record.status == JobStatus.FAILED
    assert record.error == "disk on fire"
