"""Exec in running containers, streamed over the raw hijacked socket.

Exec is done on the raw hijacked socket rather than through ``exec_run``:
``exec_run(stream=True)`` cannot report the exit code (docker-py PR #2181) and
cannot feed stdin (docker-py issues #983, #2255). We read the multiplexed
stdout/stderr frames ourselves, half-close the socket to signal end of stdin,
and read the exit code with ``exec_inspect`` once the stream has ended.
:class:`Exec` implements :class:`backup.ports.ContainerExec`, keeps every
connection in flight so that shutdown, or the cancel of one job, can cut them
(:meth:`Exec.abort_streams`; the execs a thread opens inside
:meth:`Exec.holding` belong to that holder), and answers engine detection's
question of which binaries a container has. A cut exec's processes are killed
inside the container, found by a marker in their environment: a dump stalled on
a lock would otherwise go on waiting (and queueing its lock) after Holdfast
gave up on it.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from backup.cancel import ExecHolders
from backup.errors import ExecFailed, HoldfastError, NotFound
from backup.ports import ExecResult
from service.adapters.docker.connection import DockerConnection

logger = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
_STDERR_TAIL = 8192

MARKER_ENV = "HOLDFAST_EXEC"
"""Set in every exec's environment (inherited by its children) to a token of
that exec, so a cut one's processes can be found and killed in the container."""
# Only sh, tr, grep and kill: in every official database image (Debian or
# busybox). Run as root so it may read every process's environ and kill it.
# Passes repeat until one finds nothing: a process forked while a pass ran
# (sh starting its next command) is not in that pass's list of /proc. A killed
# process's environ reads empty once it is a zombie, so the passes end.
_KILL_MARKED = ('n=0; while [ "$n" -lt 50 ]; do n=$((n+1)); found=0; '
                'for p in /proc/[0-9]*; do '
                'if tr "\\000" "\\n" < "$p/environ" 2>/dev/null | grep -qxF "$1"; '
                'then kill -9 "${p#/proc/}" 2>/dev/null; found=1; fi; done; '
                '[ "$found" = 0 ] && exit 0; done; exit 0')

@dataclass(frozen=True)
class _OpenExec:
    container_id: str
    marker: str
    holder: str | None


class Exec:
    """Runs commands in containers of one engine; safe to use from many threads."""

    def __init__(self, connection: DockerConnection) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._open_execs: dict[Any, _OpenExec] = {}
        self._aborted: dict[int, str] = {}  # id(sock) -> why it was cut
        self._holders = ExecHolders()

    def holding(self, holder: str) -> contextlib.AbstractContextManager[None]:
        """Execs this thread starts inside the block belong to ``holder`` (a
        job id): ``abort_streams(holder)`` cuts them, and any it starts after
        that cut fail at once instead of starting."""
        return self._holders.holding(holder)

    def binaries_present(self, container_id: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are on the container's PATH (engine detection)."""
        script = 'for b in "$@"; do command -v "$b" >/dev/null 2>&1 && echo "$b"; done'
        result = self.run(container_id, ["sh", "-c", script, "sh", *names], check=False)
        return set(result.stdout.decode().split())

    def _exec_socket(self, container_id: str, argv: Sequence[str], env: Mapping[str, str] | None,
                     user: str | None, stdin: bool,
                     holder: str | None) -> tuple[str, Any, _OpenExec]:
        marker = f"{MARKER_ENV}={secrets.token_hex(8)}"
        if self._holders.is_cut(holder):
            raise ExecFailed(argv[0], None, "not started: its job was cancelled")

        def start() -> tuple[str, Any]:
            api = self._connection.api
            created = api.exec_create(
                container_id, list(argv), stdout=True, stderr=True, stdin=stdin,
                environment={**dict(env or {}), MARKER_ENV: marker.partition("=")[2]},
                user=user or "", tty=False,
            )
            return created["Id"], api.exec_start(created["Id"], socket=True)
        exec_id, sock = self._connection.call(start)
        opened = _OpenExec(container_id, marker, holder)
        with self._lock:
            self._open_execs[sock] = opened
            cut_already = self._holders.is_cut(holder)
            if cut_already:  # cancelled while it was being created
                self._aborted[id(sock)] = "its job was cancelled"
        if cut_already:
            with contextlib.suppress(OSError, AttributeError):
                _raw_socket(sock).shutdown(socket.SHUT_RDWR)
        return exec_id, sock, opened

    def _release(self, sock: Any) -> str | None:
        """Close an exec connection; why :meth:`abort_streams` cut it, if it did."""
        with self._lock:
            self._open_execs.pop(sock, None)
            reason = self._aborted.pop(id(sock), None)
        _close(sock)
        return reason

    def abort_streams(self, holder: str | None = None) -> int:
        """Cut the exec connections in flight: every one (shutdown), or only
        ``holder``'s (a cancelled job; it starts no more either), from any
        thread. A reader blocked on a stalled process (a dump waiting on a
        lock) wakes with an error instead of waiting forever, and kills the
        process in its container. Returns how many were cut."""
        reason = "Holdfast's shutdown" if holder is None else "its job was cancelled"
        if holder is not None:
            self._holders.cut(holder)  # first: an exec registered after it sees the cut
        with self._lock:
            open_now = [sock for sock, opened in self._open_execs.items()
                        if holder is None or opened.holder == holder]
            self._aborted.update((id(sock), reason) for sock in open_now)
        for sock in open_now:
            with contextlib.suppress(OSError, AttributeError):
                _raw_socket(sock).shutdown(socket.SHUT_RDWR)
        return len(open_now)

    def _kill(self, opened: _OpenExec, argv0: str, reason: str) -> ExecFailed:
        """Kill what a cut exec left running in its container (a closed socket
        does not stop it) and return the error to raise for it."""
        try:
            with self._holders.unheld():  # not the cut job's: that one may start no exec
                self.run(opened.container_id, ["sh", "-c", _KILL_MARKED, "sh", opened.marker],
                         user="0", check=True)
        except HoldfastError as exc:  # a removed container took its processes along
            logger.info("could not kill the cut %s in %s: %s", argv0,
                        opened.container_id[:12], exc)
        return ExecFailed(argv0, None, f"stream cut off: {reason}")

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
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        return self._stream(container_id, argv, env, user, self._holders.current(), stdin)

    def _stream(self, container_id: str, argv: Sequence[str], env: Mapping[str, str] | None,
                user: str | None, holder: str | None,
                stdin: Iterable[bytes] | None) -> Iterator[bytes]:
        # A generator runs its body on the first next(), maybe in another
        # thread; the holder was taken when stream() was called.
        from docker.utils.socket import frames_iter  # loaded by the connection already

        exec_id, sock, opened = self._exec_socket(container_id, argv, env, user,
                                                  stdin is not None, holder)
        stderr: deque[bytes] = deque()
        stderr_size = 0
        writer = None if stdin is None else _StdinWriter(sock, stdin, argv[0])
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
                if writer is None or writer.error is None:
                    raise ExecFailed(argv[0], None, f"connection to Docker broke: {exc}") \
                        from exc
        finally:
            aborted = self._release(sock)
            if writer is not None:
                writer.join()
        if writer is not None and writer.error is not None:
            self._kill(opened, argv[0], "its input failed")  # it may wait for more input
            raise writer.error
        tail = b"".join(stderr).decode(errors="replace")
        if aborted:  # the process may be stalled still; do not wait for its exit
            raise self._kill(opened, argv[0], aborted)
        code = self._exit_code(exec_id, argv[0], tail)
        if code != 0:
            raise ExecFailed(argv[0], code, tail)

    def run(self, container_id: str, argv: Sequence[str], *,
            env: Mapping[str, str] | None = None, user: str | None = None,
            stdin: Iterable[bytes] | None = None, check: bool = True,
            output_limit: int = 1024 * 1024) -> ExecResult:
        from docker.utils.socket import frames_iter  # loaded by the connection already

        exec_id, sock, opened = self._exec_socket(container_id, argv, env, user,
                                                  stdin is not None, self._holders.current())
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
            if self._release(sock):
                self._kill(opened, argv[0], "")
            reader.join(timeout=5)
            raise
        aborted = self._release(sock)
        tail = b"".join(stderr).decode(errors="replace")[-_STDERR_TAIL:]
        if aborted:
            raise self._kill(opened, argv[0], aborted)
        if reader_error:
            raise ExecFailed(argv[0], None, f"connection to Docker broke: {reader_error[0]}")
        code = self._exit_code(exec_id, argv[0], tail)
        if check and code != 0:
            raise ExecFailed(argv[0], code, tail)
        return ExecResult(exit_code=code, stdout=bytes(stdout), stderr=tail)


class _StdinWriter:
    """Writes a stream's ``stdin`` to its exec in a thread, then half-closes the
    socket (end of input). If ``stdin`` raises, the exception is kept in
    :attr:`error` and the connection is cut, which ends the reader too; a
    process that exits before reading all of it just ends the writing."""

    def __init__(self, sock: Any, stdin: Iterable[bytes], program: str) -> None:
        self.error: BaseException | None = None
        self._sock = sock
        self._stdin = stdin
        self._program = program
        self._thread = threading.Thread(target=self._write, name=f"exec-stdin-{program}",
                                        daemon=True)
        self._thread.start()

    def _write(self) -> None:
        raw = _raw_socket(self._sock)
        try:
            for chunk in self._stdin:
                raw.sendall(chunk)
        except OSError as exc:
            logger.debug("stdin of %s closed early: %s", self._program, exc)
        except BaseException as exc:  # raised to the stream's consumer
            self.error = exc
            with contextlib.suppress(OSError):
                raw.shutdown(socket.SHUT_RDWR)
            return
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_WR)

    def join(self) -> None:
        # A stdin that blocks (a session waiting for its next statement) must
        # be ended by its owner; the connection is closed already, so the
        # thread ends at its next write.
        self._thread.join(timeout=5)


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
