"""``stream(..., stdin=...)`` on a real engine: a conversation with a process.

The next line is only sent once the answer to the last one has come back, so
these pass only if input and output really flow at once; an input that raises
ends the stream with that error and kills the process; a stream closed early
closes its connection and its input."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest
from docker.models.containers import Container

from backup.errors import ExecFailed
from service.adapters.docker import DockerAdapter
from tests.harness.waiting import wait_for
from tests.integration.conftest import commands

pytestmark = pytest.mark.docker

ECHO = ["sh", "-c", 'while read -r line; do echo "got $line"; done; echo bye']


@pytest.fixture
def adapter() -> Iterator[DockerAdapter]:
    real = DockerAdapter()
    yield real
    real.close()


def _lines(outgoing: queue.Queue[bytes | None]) -> Iterator[bytes]:
    while (line := outgoing.get(timeout=30)) is not None:
        yield line


def test_each_answer_comes_back_before_the_next_line_is_sent(
        adapter: DockerAdapter, box: Container) -> None:
    outgoing: queue.Queue[bytes | None] = queue.Queue()
    answers = adapter.stream(box.id, ECHO, stdin=_lines(outgoing))
    pending = b""
    for word in ("one", "two", "three"):
        outgoing.put(word.encode() + b"\n")
        while b"\n" not in pending:
            pending += next(answers)
        line, _, pending = pending.partition(b"\n")
        assert line == b"got " + word.encode()
    outgoing.put(None)  # end of input: the loop ends, the shell says bye and exits 0
    assert (pending + b"".join(answers)).decode() == "bye\n"


def test_an_input_that_raises_ends_the_stream_with_its_error_and_kills_the_process(
        adapter: DockerAdapter, box: Container) -> None:
    def failing() -> Iterator[bytes]:
        yield b"one\n"
        raise RuntimeError("the input broke")

    with pytest.raises(RuntimeError, match="the input broke"):
        for _ in adapter.stream(box.id, ["sh", "-c", "cat; sleep 311"], stdin=failing()):
            pass
    # A moment for the kill to land; a process that escaped it lives 311 s.
    wait_for(lambda: not any("sleep 311" in line for line in commands(box)), 5,
             "the input's process to be killed")


def test_a_process_that_fails_reports_its_exit_and_stderr(
        adapter: DockerAdapter, box: Container) -> None:
    with pytest.raises(ExecFailed, match="no such thing") as raised:
        list(adapter.stream(box.id, ["sh", "-c", "read -r x; echo no such thing >&2; exit 3"],
                            stdin=[b"x\n"]))
    assert raised.value.exit_code == 3


def test_closing_the_stream_early_closes_its_input_and_output(
        adapter: DockerAdapter, box: Container) -> None:
    stop = threading.Event()

    def forever() -> Iterator[bytes]:
        while not stop.is_set():
            yield b"line\n"

    answers = adapter.stream(box.id, ["cat"], stdin=forever())
    assert next(answers).startswith(b"line")
    assert "cat" in commands(box)
    answers.close()  # type: ignore[attr-defined]
    stop.set()
    wait_for(lambda: "cat" not in commands(box), 20, "cat to end")
