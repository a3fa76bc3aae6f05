"""docker-py behind the domain's ports: exec with streaming, containers, volumes.

This is the only module that imports docker-py. It implements
:class:`backup.ports.ContainerExec`, :class:`backup.ports.ContainerRuntime` and
:class:`backup.ports.HelperContainers` (short-lived containers of
``HOLDFAST_HELPER_IMAGE`` for work on volumes), lists and inspects named
volumes, and discovers labelled containers. Every docker-py or connection error is
translated here into :mod:`backup.errors`.

Exec is done on the raw hijacked socket rather than through ``exec_run``:
``exec_run(stream=True)`` cannot report the exit code (docker-py PR #2181) and
cannot feed stdin (docker-py issues #983, #2255). We read the multiplexed
stdout/stderr frames ourselves, half-close the socket to signal end of stdin,
and read the exit code with ``exec_inspect`` once the stream has ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import requests.exceptions

import docker
import docker.errors
from backup.errors import (
    DockerUnavailable,
    ExecFailed,
    HoldfastError,
    NameTaken,
    NotFound,
    VolumeInUse,
    VolumeNotFound,
)
from backup.ports import ContainerSpec, ExecResult, VolumeSpec
from backup.types import DatabaseContainer, Mount
from backup.volumes import VolumeInfo, VolumeUser
from docker.utils.socket import frames_iter
from service.runs import current_runner, may_be_running

logger = logging.getLogger(__name__)

STDOUT, STDERR = 1, 2
HELPER_LABEL = "io.holdfast.helper"
# Any image with sh and GNU tar works; this one is on every registry mirror.
DEFAULT_HELPER_IMAGE = "debian:bookworm-slim"
_STDERR_TAIL = 8192
_T = TypeVar("_T")


def docker_host_description() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


def _env_dict(entries: Iterable[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries or ():
        key, _, value = entry.partition("=")
        env[key] = value
    return env


class DockerAdapter:
    """Talks to one Docker engine. Connects lazily, so commands that need only
    the catalog work while the engine is down."""

    def __init__(self, factory: Callable[[], docker.DockerClient] | None = None,
                 timeout: int = 60, helper_image: str = DEFAULT_HELPER_IMAGE) -> None:
        self._factory = factory or (lambda: docker.from_env(timeout=timeout))
        self.helper_image = helper_image
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()
        self._open_execs: set[Any] = set()
        self._aborted: set[int] = set()
        self._image_envs: dict[str, dict[str, str]] = {}

    # --- connection and error translation ------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                self._client = self._call(self._factory)
            return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    def _call(self, action: Callable[[], _T]) -> _T:
        try:
            return action()
        except docker.errors.NotFound as exc:
            raise NotFound(_explain(exc)) from exc
        except (docker.errors.DockerException, requests.exceptions.ConnectionError,
                ConnectionError, FileNotFoundError) as exc:
            if isinstance(exc, docker.errors.APIError) and exc.status_code and \
                    exc.status_code < 500:
                raise HoldfastError(f"Docker refused: {_explain(exc)}") from exc
            raise DockerUnavailable(
                f"cannot reach the Docker engine at {docker_host_description()}: "
                f"{_short(exc)}; start Docker or set DOCKER_HOST"
            ) from exc

    def ping(self) -> None:
        self._call(self.client.ping)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # --- discovery -----------------------------------------------------------

    def labelled_containers(self, include_stopped: bool = True) -> list[DatabaseContainer]:
        """Containers carrying a ``holdfast.enable`` label (any value), inspected."""
        summaries = self._call(lambda: self.api.containers(
            all=include_stopped, filters={"label": "holdfast.enable"}))
        found = []
        for summary in summaries:
            try:
                found.append(self.inspect(summary["Id"]))
            except NotFound:
                continue  # removed between the list and the inspect
        return found

    def inspect(self, container_id: str) -> DatabaseContainer:
        data = self._call(lambda: self.api.inspect_container(container_id))
        return self._to_container(data)

    def stopped_at(self, container_id: str) -> datetime | None:
        """When a stopped container last stopped; None while it runs."""
        state = self._call(lambda: self.api.inspect_container(container_id))["State"]
        if state.get("Running"):
            return None
        return _parse_docker_time(state.get("FinishedAt"))

    def _image_env(self, image_id: str) -> dict[str, str]:
        # An image id names immutable content, so its environment can be cached:
        # discovery of 200 containers of one image then inspects it once.
        cached = self._image_envs.get(image_id)
        if cached is not None:
            return dict(cached)
        try:
            image = self._call(lambda: self.api.inspect_image(image_id))
        except NotFound:
            return {}
        env = _env_dict((image.get("Config") or {}).get("Env"))
        if image_id.startswith("sha256:"):
            self._image_envs[image_id] = env
        return dict(env)

    def _to_container(self, data: Mapping[str, Any]) -> DatabaseContainer:
        config = data.get("Config") or {}
        mounts = tuple(
            Mount(destination=m["Destination"], kind=m.get("Type", "volume"),
                  source=m.get("Name") or m.get("Source", ""))
            for m in data.get("Mounts") or ()
        )
        networks = tuple(sorted((data.get("NetworkSettings") or {}).get("Networks") or {}))
        return DatabaseContainer(
            id=data["Id"],
            name=data["Name"].lstrip("/"),
            image=config.get("Image", ""),
            image_id=data.get("Image", ""),
            env=_env_dict(config.get("Env")),
            labels=dict(config.get("Labels") or {}),
            mounts=mounts,
            networks=networks,
            running=bool((data.get("State") or {}).get("Running")),
            image_env=self._image_env(data.get("Image", "")),
            command=tuple(config.get("Cmd") or ()),
        )

    def container_events(self) -> ContainerEvents:
        """Follow the engine's container lifecycle events (start, die, destroy,
        rename). Iterating blocks until an event arrives; ``close()`` from another
        thread ends the iteration. The iterator ends or raises when the engine
        goes away; the caller reconnects."""
        stream = self._call(lambda: self.api.events(
            decode=True, filters={"type": ["container"], "event": list(LIFECYCLE_EVENTS),
                                  "label": ["holdfast.enable"]}))
        return ContainerEvents(stream)

    def binaries_present(self, container_id: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are on the container's PATH (engine detection)."""
        script = 'for b in "$@"; do command -v "$b" >/dev/null 2>&1 && echo "$b"; done'
        result = self.run(container_id, ["sh", "-c", script, "sh", *names], check=False)
        return set(result.stdout.decode().split())

    # --- exec ------------------------------------------------------------------

    def _exec_socket(self, container_id: str, argv: Sequence[str], env: Mapping[str, str] | None,
                     user: str | None, stdin: bool) -> tuple[str, Any]:
        def start() -> tuple[str, Any]:
            created = self.api.exec_create(
                container_id, list(argv), stdout=True, stderr=True, stdin=stdin,
                environment=dict(env or {}), user=user or "", tty=False,
            )
            return created["Id"], self.api.exec_start(created["Id"], socket=True)
        exec_id, sock = self._call(start)
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
                info = self._call(lambda: self.api.exec_inspect(exec_id))
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

    # --- runtime -----------------------------------------------------------------

    def container_name_taken(self, name: str) -> bool:
        try:
            self._call(lambda: self.api.inspect_container(name))
        except NotFound:
            return False
        return True

    def volume_exists(self, name: str) -> bool:
        try:
            self._call(lambda: self.api.inspect_volume(name))
        except NotFound:
            return False
        return True

    def volume_names(self) -> set[str]:
        volumes = self._call(self.api.volumes).get("Volumes") or []
        return {volume["Name"] for volume in volumes}

    def container_names(self) -> set[str]:
        return {name.lstrip("/") for summary in self._call(lambda: self.api.containers(all=True))
                for name in summary.get("Names") or ()}

    def image_exists(self, image: str) -> bool:
        try:
            self._call(lambda: self.api.inspect_image(image))
        except NotFound:
            return False
        return True

    def create_volume(self, spec: VolumeSpec) -> None:
        if self.volume_exists(spec.name):
            raise NameTaken(f"volume {spec.name} already exists")
        self._call(lambda: self.api.create_volume(name=spec.name, labels=dict(spec.labels)))

    def create_container(self, spec: ContainerSpec) -> DatabaseContainer:
        if self.container_name_taken(spec.name):
            raise NameTaken(f"a container named {spec.name} already exists")
        networks = list(spec.networks)
        host_config = self.api.create_host_config(
            binds={volume: {"bind": destination, "mode": "rw"}
                   for volume, destination in spec.volumes.items()},
            network_mode=networks[0] if networks else None,
        )
        created = self._call(lambda: self.api.create_container(
            spec.image, command=list(spec.command) if spec.command else None, name=spec.name,
            environment=dict(spec.env), labels=dict(spec.labels), host_config=host_config,
            volumes=list(spec.volumes.values()), detach=True,
        ))
        container_id = created["Id"]
        try:
            for network in networks[1:]:
                self._call(lambda n=network: self.api.connect_container_to_network(  # type: ignore[misc]
                    container_id, n))
        except BaseException:
            self.remove_container(container_id)
            raise
        return self.inspect(container_id)

    def start(self, container_id: str) -> DatabaseContainer:
        try:
            self._call(lambda: self.api.start(container_id))
        except DockerUnavailable as exc:
            raise _refusal(exc, f"cannot start container {container_id[:12]}") from exc.__cause__
        return self.inspect(container_id)

    # --- named volumes -----------------------------------------------------------

    def _volume_users(self) -> dict[str, list[VolumeUser]]:
        users: dict[str, list[VolumeUser]] = {}
        for summary in self._call(lambda: self.api.containers(all=True)):
            names = summary.get("Names") or [summary["Id"][:12]]
            user = VolumeUser(name=names[0].lstrip("/"), id=summary["Id"],
                              running=summary.get("State") == "running")
            for mount in summary.get("Mounts") or ():
                if mount.get("Type") == "volume" and mount.get("Name"):
                    users.setdefault(mount["Name"], []).append(user)
        return users

    def list_volumes(self, sizes: bool = True) -> list[VolumeInfo]:
        """Every volume with its users; ``sizes`` asks Docker to measure them
        (``docker system df -v``), which walks every volume and takes a while."""
        listed = self._call(self.api.volumes).get("Volumes") or []
        measured: dict[str, int] = {}
        if sizes:
            for entry in self._call(self.api.df).get("Volumes") or []:
                size = (entry.get("UsageData") or {}).get("Size", -1)
                if size is not None and size >= 0:
                    measured[entry["Name"]] = int(size)
        users = self._volume_users()
        return sorted((_to_volume(data, users.get(data["Name"], []), measured.get(data["Name"]))
                       for data in listed), key=lambda volume: volume.name)

    def get_volume(self, name: str, size: bool = False) -> VolumeInfo | None:
        try:
            data = self._call(lambda: self.api.inspect_volume(name))
        except NotFound:
            return None
        measured = None
        if size:
            for entry in self._call(self.api.df).get("Volumes") or []:
                if entry["Name"] == name:
                    value = (entry.get("UsageData") or {}).get("Size", -1)
                    measured = int(value) if value is not None and value >= 0 else None
        return _to_volume(data, self._volume_users().get(name, []), measured)

    def empty_volume(self, name: str) -> None:
        """Delete everything inside a volume (for ``--force`` reuse)."""
        self.helper_run(["sh", "-c", "find /volume -mindepth 1 -delete"],
                        volumes={name: "/volume"})

    def copy_volume(self, source: str, target: str) -> None:
        """Make ``target`` an exact copy of ``source``: owners, modes, links,
        hard links and holes of sparse files kept; ``target`` is emptied first."""
        # cp -a keeps owners (the helper runs as root), modes, timestamps,
        # symlinks and hard links; copying "/from/." also gives the target's
        # root directory the source root's owner and mode.
        script = ("set -e; find /to -mindepth 1 -delete; "
                  "cp -a --sparse=always /from/. /to/")
        self.helper_run(["sh", "-c", script], volumes={source: "/from", target: "/to"})

    def start_container(self, spec: ContainerSpec) -> DatabaseContainer:
        container = self.create_container(spec)
        try:
            return self.start(container.id)
        except BaseException:
            self.remove_container(container.id)
            raise

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        self._call(lambda: self.api.stop(container_id, timeout=int(timeout)))

    # --- helper containers -------------------------------------------------------

    def _create_helper(self, volumes_from: str | None, volumes: Mapping[str, str] | None,
                       read_only: bool) -> str:
        """Start a helper whose main process only sleeps; the work then runs in
        it through the same exec plumbing (stdin, stderr tail, exit codes) as in
        any container. Returns its id; the caller removes it."""
        mode = "ro" if read_only else "rw"
        host_config = self.api.create_host_config(
            binds={name: {"bind": destination, "mode": mode}
                   for name, destination in (volumes or {}).items()},
            volumes_from=[f"{volumes_from}:{mode}"] if volumes_from else None,
            network_mode="none", auto_remove=False,
        )
        try:
            created = self._call(lambda: self.api.create_container(
                self.helper_image, command=["sleep", "infinity"], entrypoint=[],
                labels={HELPER_LABEL: current_runner()}, host_config=host_config, user="0:0",
                volumes=list((volumes or {}).values()) or None, detach=True,
                name=f"holdfast-helper-{uuid.uuid4().hex[:12]}",
            ))
        except NotFound as exc:
            raise HoldfastError(
                f"helper image {self.helper_image} is not on the Docker engine: pull it, or set "
                "HOLDFAST_HELPER_IMAGE to a local image that has sh and GNU tar") from exc
        helper_id: str = created["Id"]
        try:
            self._call(lambda: self.api.start(helper_id))
        except BaseException as exc:
            self._remove_helper(helper_id)
            if isinstance(exc, DockerUnavailable):
                raise _refusal(exc, "cannot start a helper container") from exc.__cause__
            raise
        return helper_id

    def remove_orphan_helpers(self) -> list[str]:
        """Remove helper containers whose Holdfast process is gone (killed
        mid-archive); those of live processes, here or on other hosts, stay."""
        removed = []
        for summary in self._call(lambda: self.api.containers(
                all=True, filters={"label": HELPER_LABEL})):
            runner = (summary.get("Labels") or {}).get(HELPER_LABEL)
            if not may_be_running(runner):
                self._remove_helper(summary["Id"])
                removed.append(summary["Id"])
        return removed

    def helper_stream(self, argv: Sequence[str], *, volumes_from: str | None = None,
                      volumes: Mapping[str, str] | None = None,
                      read_only: bool = True) -> Iterator[bytes]:
        helper_id = self._create_helper(volumes_from, volumes, read_only)
        try:
            yield from self.stream(helper_id, argv)
        finally:
            self._remove_helper(helper_id)

    def helper_run(self, argv: Sequence[str], *, volumes_from: str | None = None,
                   volumes: Mapping[str, str] | None = None, read_only: bool = False,
                   stdin: Iterable[bytes] | None = None, check: bool = True) -> ExecResult:
        helper_id = self._create_helper(volumes_from, volumes, read_only)
        try:
            return self.run(helper_id, argv, stdin=stdin, check=check)
        finally:
            self._remove_helper(helper_id)

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        try:
            raw = self._call(lambda: self.api.logs(container_id, tail=lines))
        except NotFound:
            return ""
        return bytes(raw).decode(errors="replace")

    def remove_container(self, container_id: str) -> None:
        # v=True: a restore's container may have anonymous volumes for image
        # VOLUMEs the plan did not cover; they belong to it alone.
        with contextlib.suppress(NotFound):
            self._call(lambda: self.api.remove_container(container_id, force=True, v=True))

    def _remove_helper(self, helper_id: str) -> None:
        # Never v=True: a helper mounts the user's volumes (--volumes-from),
        # anonymous ones included, and must not take them along.
        with contextlib.suppress(NotFound):
            self._call(lambda: self.api.remove_container(helper_id, force=True))

    def remove_volume(self, name: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(lambda: self.api.remove_volume(name, force=True))

    def remove_unused_volume(self, name: str) -> None:
        """Remove a volume no container uses; Docker's refusal (a container
        mounted it a moment ago) becomes :class:`VolumeInUse`."""
        try:
            self._call(lambda: self.api.remove_volume(name))
        except NotFound as exc:
            raise VolumeNotFound(f"no volume named {name}") from exc
        except HoldfastError as exc:
            if "in use" in str(exc):
                raise VolumeInUse(f"volume {name} is in use: {exc}") from exc
            raise


def _parse_docker_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times carry nanoseconds, more digits than
    ``datetime`` holds; they are cut to microseconds. The zero time means never."""
    if not text or text.startswith("0001-01-01"):
        return None
    main, _, rest = str(text).replace("Z", "+00:00").partition(".")
    if rest:
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits):]
        main = f"{main}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(main)
    except ValueError:
        return None


def _to_volume(data: Mapping[str, Any], users: list[VolumeUser],
               size: int | None) -> VolumeInfo:
    created_at = _parse_docker_time(data.get("CreatedAt"))
    return VolumeInfo(name=data["Name"], driver=data.get("Driver") or "local",
                      labels=dict(data.get("Labels") or {}), created_at=created_at,
                      size_bytes=size, users=tuple(sorted(users, key=lambda u: u.name)))


LIFECYCLE_EVENTS = ("start", "die", "destroy", "rename")


class ContainerEvents:
    """An open event stream: yields ``(action, container_id)`` pairs."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[tuple[str, str]]:
        try:
            for event in self._stream:
                actor = event.get("Actor") or {}
                container_id = actor.get("ID") or event.get("id")
                action = str(event.get("Action") or event.get("status") or "")
                if container_id and action in LIFECYCLE_EVENTS:
                    yield action, container_id
        except (requests.exceptions.RequestException, OSError, ValueError) as exc:
            raise DockerUnavailable(f"the Docker event stream broke: {_short(exc)}") from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.close()


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


def _refusal(exc: DockerUnavailable, what: str) -> HoldfastError:
    """``_call`` reads any 5xx as an unreachable engine, but a start that fails
    (a mount runc cannot make, a missing executable) comes back as a 500
    carrying the engine's own reason: the engine is reachable, retrying will
    not help, and "start Docker" would send the user to the wrong problem."""
    cause = exc.__cause__
    if isinstance(cause, docker.errors.APIError) and cause.response is not None:
        return HoldfastError(f"{what}: Docker refused: {_explain(cause)}")
    return exc


def _explain(exc: docker.errors.DockerException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc).splitlines()[0]


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
