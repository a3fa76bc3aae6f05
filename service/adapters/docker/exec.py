"""Exec in running containers, streamed over the raw hijacked socket.

Exec is done on the raw hijacked socket rather than through ``exec_run``:
``exec_run(stream=True)`` cannot report the exit code (docker-py PR #2181) and
cannot feed stdin (docker-py issues #983, #2255). We read the multiplexed
stdout/stderr frames ourselves, half-close the socket to signal end of stdin,
and read the exit code with ``exec_inspect`` once the stream has ended.
:class:`Exec` implements :class:`backup.ports.ContainerExec`, keeps every
connection in flight so that shutdown can cut them (:meth:`Exec.abort_streams`),
and answers engine detection's question of which binaries a container has.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from backup.errors import ExecFailed, NotFound
from backup.ports import ExecResult
from service.adapters.docker.connection import DockerConnection

logger = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
_STDERR_TAIL = 8192


class Exec:
    """Runs commands in containers of one engine; safe to use from many threads."""

    def __init__(self, connection: DockerConnection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._open_execs: set[Any] = set()
        self._aborted: set[int] = set()

    def binaries_present(self, container_id: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are on the container's PATH (engine detection)."""
        script = 'for b in "$@"; do command -v "$b" >/dev/null 2>&1 && echo "$b"; done'
        result = self.run(container_id, ["sh", "-c", script, "sh", *names], check=False)
        return set(result.stdout.decode().split())

    def _exec_socket(self, container_id: str, argv: Sequence[str], env: Mapping[str, str] | None,
                     user: str | None, stdin: bool) -> tuple[str, Any]:
        def start() -> tuple[str, Any]:
            api = self._connection.api
            created = api.exec_create(
                container_id, list(argv), stdout=True, stderr=True, stdin=stdin,
                environment=dict(env or {}), user=user or "", tty=False,
            )
            return created["Id"], api.exec_start(created["Id"], socket=True)
        exec_id, sock = self._connection.call(start)
        with self._lock:
            self._open_execs.add(sock)
        return exec_id, sock

    def _release(self, sock: Any) -> bool:
        """Close an exec connection; True if :meth:`abort_streams` had cut it."""
        with self._lock:
            self._open_execs.discard(sock)
            aborted = id(sock) in self._aborted
            self._aborted.discard(id(sock))
        _close(sock)
        return aborted

    def abort_streams(self) -> int:
        """Cut every exec connection in flight, from any thread. A reader
        blocked on a stalled process (a dump waiting on a lock) wakes with an
        error instead of waiting forever; used when shutdown cancels runs."""
        with self._lock:
            open_now = list(self._open_execs)
            self._aborted.update(id(sock) for sock in open_now)
        for sock in open_now:
            with contextlib.suppress(OSError, AttributeError):
                _raw_socket(sock).shutdown(socket.SHUT_RDWR)
        return len(open_now)

    def _exit_code(self, exec_id: str, argv0: str, stderr_tail: str) -> int:
        # The stream can end a moment before the engine records the exit.
        deadline = time.monotonic() + 30
        while True:
            try:
                info = self._connection.call(lambda: self._connection.api.exec_inspect(exec_id))
            except NotFound:
                # Docker forgets the execs of a container that stopped or was
                # removed meanwhile; how the process ended is unknown.
                raise ExecFailed(argv0, None, (stderr_tail + "\nthe container stopped or was "
                                               "removed while the command ran").strip()) from None
            if not info.get("Running"):
                code = info.get("ExitCode")
                if code is None:
                    raise ExecFailed(argv0, None, stderr_tail)
                return int(code)
            if time.monotonic() > deadline:
                raise ExecFailed(argv0, None, stderr_tail)
            time.sleep(0.05)

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None) -> Iterator[bytes]:
        from docker.utils.socket import frames_iter  # loaded by the connection already

        exec_id, sock = self._exec_socket(container_id, argv, env, user, stdin=False)
        stderr: deque[bytes] = deque()
        stderr_size = 0
        try:
            try:
                for stream_id, data in frames_iter(sock, tty=False):
                    if stream_id == STDOUT:
                        yield data
                    elif stream_id == STDERR:
                        stderr.append(data)
                        stderr_size += len(data)
                        while stderr_size > _STDERR_TAIL and len(stderr) > 1:
                            stderr_size -= len(stderr.popleft())
            except OSError as exc:
                raise ExecFailed(argv[0], None, f"connection to Docker broke: {exc}") from exc
        finally:
            aborted = self._release(sock)
        tail = b"".join(stderr).decode(errors="replace")
        if aborted:  # the process may be stalled still; do not wait for its exit
            raise ExecFailed(argv[0], None, "stream cut off by Holdfast's shutdown")
        code = self._exit_code(exec_id, argv[0], tail)
        if code != 0:
            raise ExecFailed(argv[0], code, tail)

    def run(self, container_id: str, argv: Sequence[str], *,
            env: Mapping[str, str] | None = None, user: str | None = None,
            stdin: Iterable[bytes] | None = None, check: bool = True,
            output_limit: int = 1024 * 1024) -> ExecResult:
        from docker.utils.socket import frames_iter  # loaded by the connection already

        exec_id, sock = self._exec_socket(container_id, argv, env, user, stdin=stdin is not None)
        stdout = bytearray()
        stderr: deque[bytes] = deque(maxlen=64)
        reader_error: list[BaseException] = []

        def drain() -> None:
            try:
                for stream_id, data in frames_iter(sock, tty=False):
                    if stream_id == STDOUT:
                        if len(stdout) < output_limit:
                            stdout.extend(data[: output_limit - len(stdout)])
                    else:
                        stderr.append(data)
            except (OSError, ValueError) as exc:  # ValueError: closed by the caller's abort
                reader_error.append(exc)

        reader = threading.Thread(target=drain, name=f"exec-drain-{argv[0]}", daemon=True)
        reader.start()
        try:
            if stdin is not None:
                raw = _raw_socket(sock)
                try:
                    for chunk in stdin:
                        raw.sendall(chunk)
                except OSError as exc:
                    # The process exited early (it hit an error); its exit code and
                    # stderr below say why, which beats a broken-pipe message.
                    logger.debug("stdin of %s closed early: %s", argv[0], exc)
                with contextlib.suppress(OSError):
                    raw.shutdown(socket.SHUT_WR)
            reader.join()
        except BaseException:
            self._release(sock)
            reader.join(timeout=5)
            raise
        aborted = self._release(sock)
        tail = b"".join(stderr).decode(errors="replace")[-_STDERR_TAIL:]
        if aborted:
            raise ExecFailed(argv[0], None, "stream cut off by Holdfast's shutdown")
        if reader_error:
            raise ExecFailed(argv[0], None, f"connection to Docker broke: {reader_error[0]}")
        code = self._exit_code(exec_id, argv[0], tail)
        if check and code != 0:
            raise ExecFailed(argv[0], code, tail)
        return ExecResult(exit_code=code, stdout=bytes(stdout), stderr=tail)


def _raw_socket(sock: Any) -> socket.socket:
    return getattr(sock, "_sock", sock)  # type: ignore[no-any-return]


def _close(sock: Any) -> None:
    # close() alone leaves the connection open while docker-py still references
    # the socket (a response <-> socket cycle freed only by the GC): the process
    # inside stays blocked writing, and removing its container waits 20 s.
    with contextlib.suppress(OSError, AttributeError):
        _raw_socket(sock).shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
    with contextlib.suppress(OSError, AttributeError):
        _raw_socket(sock).close()
