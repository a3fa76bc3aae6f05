"""Cutting one holder's exec streams on a real engine (what cancelling one job does):
its stream ends at once, its process is killed inside the container, any exec it
starts afterwards fails without starting, and another holder's stream runs on."""

from __future__ import annotations

import threading

import pytest
from docker.models.containers import Container

from backup.errors import ExecFailed
from service.adapters.docker import DockerAdapter
from tests.harness.waiting import wait_for
from tests.integration.conftest import commands

pytestmark = pytest.mark.docker


def _running(container: Container, command: str) -> bool:
    return any(line.endswith(command) for line in commands(container))


def test_cutting_one_holder_ends_its_stream_kills_its_process_and_refuses_more(
        box: Container) -> None:
    adapter = DockerAdapter()
    outcome: dict[str, list[str]] = {"job-a": [], "job-b": []}
    release_b = threading.Event()

    def job(holder: str, seconds: int, after: threading.Event | None) -> None:
        with adapter.exec_holder(holder):
            try:
                # sh stays the parent, so the kill must reach its child too.
                for _ in adapter.stream(box.id, ["sh", "-c", f"sleep {seconds}; echo done"]):
                    pass
                outcome[holder].append("ended")
            except ExecFailed as exc:
                outcome[holder].append(str(exc))
            if after is not None:
                after.wait(30)
                return
            try:  # the job goes on to its next step: that exec must not start
                adapter.run(box.id, ["sh", "-c", "sleep 303"])
                outcome[holder].append("next ran")
            except ExecFailed as exc:
                outcome[holder].append(str(exc))

    a = threading.Thread(target=job, args=("job-a", 301, None))
    b = threading.Thread(target=job, args=("job-b", 302, release_b))
    try:
        a.start()
        b.start()
        wait_for(lambda: _running(box, "sleep 301") and _running(box, "sleep 302"), 30,
                 "both execs to run")

        assert adapter.abort_streams("job-a") == 1

        a.join(20)
        assert not a.is_alive()
        assert outcome["job-a"] == ["sh lost its stream: stream cut off: its job was cancelled",
                                    "sh lost its stream: not started: its job was cancelled"]
        wait_for(lambda: not _running(box, "sleep 301"), 10, "the cut exec's process to go")
        assert not _running(box, "sleep 303")
        assert _running(box, "sleep 302") and b.is_alive() and outcome["job-b"] == []
        with adapter.exec_holder("job-a"):  # a block after the cut one starts afresh
            assert adapter.run(box.id, ["echo", "again"]).stdout == b"again\n"
    finally:
        adapter.abort_streams()  # shutdown's cut: job-b's stream too
        release_b.set()
        a.join(20)
        b.join(20)
        adapter.close()
    assert outcome["job-b"] == ["sh lost its stream: stream cut off: Holdfast's shutdown"]
    wait_for(lambda: not _running(box, "sleep 302"), 10, "shutdown's cut process to go")
