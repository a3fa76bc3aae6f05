"""A Docker engine in memory: containers, named volumes, images, exec and events.

It satisfies :class:`service.ports.DockerEngine` (and so the domain's exec,
runtime and helper ports). A container's "database" is the ``content`` of the
volume mounted at :data:`DATA_PATH` (or the container's own ``content`` when
nothing is mounted there); the :class:`~tests.fakes.engine.FakeEngine` dumps
and loads it through exec, with the programs :data:`DUMP`, :data:`LOAD` and
:data:`READY`, so a backup and a restore move real bytes through the same
pipeline, storage and runner as with Docker. Knobs make the engine fail the
way a real one does (unreachable, a dump that breaks, a start that is refused,
a dump or load that stalls, as on a lock, until its stream is cut:
:attr:`FakeDocker.stall`).
Images a pull can fetch are :attr:`FakeDocker.pullable` (the helper image by
default); helper work first pulls :attr:`FakeDocker.helper_image` when it is
not in :attr:`FakeDocker.images`, as the real adapter does.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from backup.cancel import ExecHolders
from backup.errors import (
    DockerRefused,
    DockerUnavailable,
    ExecFailed,
    ImagePullFailed,
    NameTaken,
    NotFound,
    PortTaken,
    VolumeInUse,
    VolumeNotFound,
)
from backup.ports import (
    ContainerEndpoints,
    ContainerSpec,
    ExecResult,
    NetworkEndpoint,
    PublishedPort,
    VolumeCopy,
    VolumeSpec,
)
from backup.types import DatabaseContainer, Mount
from backup.volumes import VolumeInfo, VolumeUser
from restore.swap import NO_RESTART, ContainerSettings, RestartPolicy
from service.ports import in_scope

logger = logging.getLogger(__name__)

DATA_PATH = "/data"
DUMP, LOAD, READY = "fake-dump", "fake-load", "fake-ready"
COPY = "copy"
"""What :attr:`FakeDocker.stall` names to stall a volume copy (the real one runs in a helper)."""
_CHUNK = 4096
HELPER_IMAGE = "debian:bookworm-slim"
"""The real adapter's default helper image (``HOLDFAST_HELPER_IMAGE``)."""
NO_REGISTRY = ('Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
               "registry-1.docker.io: no such host")
"""The reason an engine without a registry gives for a pull (Docker 20.10's words)."""


@dataclass
class FakeVolume:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    content: bytes = b""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class FakeContainer:
    id: str
    name: str
    image: str
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)  # volume name -> destination
    networks: tuple[str, ...] = ()
    command: tuple[str, ...] = ()
    running: bool = True
    stopped_at: datetime | None = None
    content: bytes = b""
    binaries: frozenset[str] = frozenset()
    helper_of: str | None = None
    """For helper containers: the runner (``host:pid:start``) that made it."""
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    published: tuple[PublishedPort, ...] = ()
    ports: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)
    """Bound while running: ``"7777/tcp"`` -> ``((host ip, host port),)``."""
    restart: RestartPolicy = NO_RESTART


class FakeEvents:
    """A container event stream fed by :meth:`FakeDocker.emit`. Like the engine's
    label filter, it passes only events of containers in ``scope`` (the
    ``holdfast.enable`` filter is left to discovery, whose check it exercises)."""

    _CLOSED = ("", "")

    def __init__(self, scope: str | None = None) -> None:
        self._queue: queue.Queue[tuple[str, str]] = queue.Queue()
        self.scope = scope
        self.closed = False

    def put(self, action: str, container_id: str,
            labels: Mapping[str, str] | None = None) -> None:
        if in_scope(labels or {}, self.scope):
            self._queue.put((action, container_id))

    def break_stream(self) -> None:
        self._queue.put(("!", ""))

    def __iter__(self) -> Iterator[tuple[str, str]]:
        while True:
            action, container_id = self._queue.get()
            if (action, container_id) == self._CLOSED or self.closed:
                return
            if action == "!":
                raise DockerUnavailable("the Docker event stream broke: connection reset")
            yield action, container_id

    def close(self) -> None:
        self.closed = True
        self._queue.put(self._CLOSED)


class FakeDocker:
    """See the module docstring. ``unreachable`` makes every call fail as a
    stopped engine does; ``dump_error`` makes the next dumps fail after
    ``dump_error_after`` bytes; ``refuse_start`` refuses container starts."""

    def __init__(self) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.volumes: dict[str, FakeVolume] = {}
        self.images: set[str] = set()
        self.pullable: set[str] = {HELPER_IMAGE}
        """Images the fake registry has; a pull of any other fails as with no registry."""
        self.helper_image = HELPER_IMAGE
        self.pulls: list[str] = []
        self.unreachable = False
        self.dump_error: str | None = None
        self.dump_error_after = 0
        self.load_error: str | None = None
        self.refuse_start: str | None = None
        self.copy_error: str | None = None
        self.engine_name = "fake-engine"
        """What :meth:`engine_identity` names the engine."""
        self.reflinks = True
        """Whether :meth:`copy_volume` answers that it cloned with reflinks."""
        self.events: list[FakeEvents] = []
        self.execs: list[tuple[str, list[str], dict[str, str]]] = []
        self.aborted = 0
        self.aborted_holders: list[str | None] = []
        self.stall: set[str] = set()
        """Programs (:data:`DUMP`, :data:`LOAD`, :data:`COPY`) that stall after their
        first chunk until their stream is cut by :meth:`abort_streams`, as a dump
        waiting on a lock."""
        self.stalled: list[tuple[str | None, str]] = []
        """(holder, program) of each exec that stalled, in order."""
        self._cuts: dict[int, tuple[str | None, threading.Event]] = {}
        self._cut_reasons: dict[int, str] = {}
        self._holders = ExecHolders()
        self.closed = 0
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._removed_labels: dict[str, dict[str, str]] = {}
        self.networks: set[str] = set()
        """User-defined networks; a container joining another one is refused."""
        self.internal_networks: set[str] = set()
        """Those of :attr:`networks` created ``--internal``."""
        self.network_labels: dict[str, dict[str, str]] = {}
        """Labels of the networks made through :meth:`create_network`."""
        self.host_ports: set[tuple[str, int]] = set()
        """Host ports bound by processes outside the engine (a start publishing one fails)."""
        self._free_ports = itertools.count(49153)
        self.faults: list[tuple[str, str, str]] = []
        """One-shot refusals ``(action, container name, reason)``: the next
        ``start``, ``stop``, ``create``, ``rename`` or ``restart`` (policy) of the
        container then called so is refused with ``reason``, once."""

    # --- set-up for tests ----------------------------------------------------------

    def add_container(self, name: str, *, image: str = "fake/db:1", content: bytes = b"",
                      labels: Mapping[str, str] | None = None,
                      env: Mapping[str, str] | None = None, running: bool = True,
                      volume: str | None = None, command: Sequence[str] = (),
                      binaries: Iterable[str] = ()) -> FakeContainer:
        """A container whose data lives in ``volume`` (created, holding ``content``)
        mounted at :data:`DATA_PATH`, or in the container itself without one."""
        self.images.add(image)
        volumes = {}
        if volume is not None:
            self.volumes[volume] = FakeVolume(volume, content=content)
            volumes[volume] = DATA_PATH
        container = FakeContainer(
            id=self._new_id(), name=name, image=image, env=dict(env or {}),
            labels=dict(labels or {}), volumes=volumes, command=tuple(command),
            running=running, content=b"" if volume else content, binaries=frozenset(binaries),
            stopped_at=None if running else datetime.now(UTC))
        self.containers[container.id] = container
        return container

    def by_name(self, name: str) -> FakeContainer:
        return next(c for c in self.containers.values() if c.name == name)

    def data_of(self, name: str) -> bytes:
        """The "database" of container ``name``: what :data:`DUMP` would read."""
        return self._data(self.by_name(name))

    def emit(self, action: str, container_id: str) -> None:
        """An event, with the container's labels as the engine sends them (those
        it had when removed, for a container already gone)."""
        container = self.containers.get(container_id)
        labels = container.labels if container else self._removed_labels.get(container_id)
        for stream in list(self.events):
            stream.put(action, container_id, labels)

    # --- ContainerDiscovery ----------------------------------------------------------

    def ping(self) -> None:
        self._reachable()

    def engine_identity(self) -> tuple[str, str]:
        self._reachable()
        return self.engine_name, "24.0.0-fake"

    def close(self) -> None:
        self.closed += 1

    def labelled_containers(self, include_stopped: bool = True,
                            scope: str | None = None) -> list[DatabaseContainer]:
        self._reachable()
        return [self._view(c) for c in list(self.containers.values())
                if "holdfast.enable" in c.labels and (include_stopped or c.running)
                and in_scope(c.labels, scope)]

    def containers_labelled(self, label: str, value: str | None = None
                            ) -> list[DatabaseContainer]:
        self._reachable()
        return [self._view(c) for c in list(self.containers.values())
                if label in c.labels and (value is None or c.labels[label] == value)]

    def inspect(self, container_id: str) -> DatabaseContainer:
        return self._view(self._container(container_id))

    def stopped_at(self, container_id: str) -> datetime | None:
        container = self._container(container_id)
        return None if container.running else container.stopped_at

    def binaries_present(self, container_id: str, names: Sequence[str]) -> set[str]:
        return set(names) & self._container(container_id).binaries

    def container_names(self) -> set[str]:
        self._reachable()
        return {c.name for c in self.containers.values()}

    def container_events(self, scope: str | None = None) -> FakeEvents:
        self._reachable()
        stream = FakeEvents(scope)
        self.events.append(stream)
        return stream

    def abort_streams(self, holder: str | None = None) -> int:
        with self._lock:
            self.aborted += 1
            self.aborted_holders.append(holder)
            if holder is not None:
                self._holders.cut(holder)
            cut = [event for owner, event in self._cuts.values()
                   if holder is None or owner == holder]
            for event in cut:
                self._cut_reasons.setdefault(
                    id(event), "Holdfast's shutdown" if holder is None else "its job was cancelled")
        for event in cut:
            event.set()
        return len(cut)

    def exec_holder(self, holder: str) -> contextlib.AbstractContextManager[None]:
        return self._holders.holding(holder)

    def _start_exec(self, program: str, holder: str | None) -> None:
        with self._lock:
            if self._holders.is_cut(holder):
                raise ExecFailed(program, None, "not started: its job was cancelled")

    def _stall_until_cut(self, program: str, holder: str | None) -> None:
        """Block as a process waiting on a lock does, until the stream is cut."""
        cut = threading.Event()
        with self._lock:
            self._cuts[id(cut)] = (holder, cut)
            self.stalled.append((holder, program))
            if self._holders.is_cut(holder):
                cut.set()
        try:
            if not cut.wait(30):
                raise AssertionError(f"{program} stalled for 30 s and nobody cut it")
        finally:
            with self._lock:
                del self._cuts[id(cut)]
                reason = self._cut_reasons.pop(id(cut), "its job was cancelled")
        raise ExecFailed(program, None, f"stream cut off: {reason}")

    # --- ContainerExec ---------------------------------------------------------------

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        # Whose stream this is was decided when it was asked for, as the real one.
        if stdin is not None:
            raise ExecFailed(argv[0], 127, "the fake engine's dump takes no input")
        return self._stream(container_id, argv, env, self._holders.current())

    def _stream(self, container_id: str, argv: Sequence[str], env: Mapping[str, str] | None,
                holder: str | None) -> Iterator[bytes]:
        self._start_exec(argv[0], holder)
        container = self._running(container_id)
        self.execs.append((container.name, list(argv), dict(env or {})))
        if argv[0] != DUMP:
            raise ExecFailed(argv[0], 127, f"sh: {argv[0]}: not found")
        data = self._data(container)
        if self.dump_error is not None:
            data = data[: self.dump_error_after]
        for at in range(0, len(data), _CHUNK):
            yield data[at:at + _CHUNK]
            if DUMP in self.stall:
                self._stall_until_cut(DUMP, holder)
        if self.dump_error is not None:
            raise ExecFailed(argv[0], 1, self.dump_error)

    def run(self, container_id: str, argv: Sequence[str], *,
            env: Mapping[str, str] | None = None, user: str | None = None,
            stdin: Iterable[bytes] | None = None, check: bool = True,
            output_limit: int = 1024 * 1024) -> ExecResult:
        self._start_exec(argv[0], self._holders.current())
        container = self._running(container_id)
        self.execs.append((container.name, list(argv), dict(env or {})))
        code, stderr = 0, ""
        if argv[0] == READY:
            code = 0 if container.running else 1
        elif argv[0] == LOAD:
            chunks = iter(stdin or ())
            data = next(chunks, b"")
            if LOAD in self.stall:
                self._stall_until_cut(LOAD, self._holders.current())
            data += b"".join(chunks)
            if self.load_error is not None:
                code, stderr = 1, self.load_error
            else:
                self._store(container, data)
        else:
            code, stderr = 127, f"sh: {argv[0]}: not found"
        if check and code != 0:
            raise ExecFailed(argv[0], code, stderr)
        return ExecResult(exit_code=code, stdout=b"", stderr=stderr)

    # --- ContainerRuntime --------------------------------------------------------------

    def container_name_taken(self, name: str) -> bool:
        return name in self.container_names()

    def volume_exists(self, name: str) -> bool:
        self._reachable()
        return name in self.volumes

    def image_exists(self, image: str) -> bool:
        self._reachable()
        return image in self.images

    def create_volume(self, spec: VolumeSpec) -> None:
        self._reachable()
        with self._lock:
            if spec.name in self.volumes:
                raise NameTaken(f"volume {spec.name} already exists")
            self.volumes[spec.name] = FakeVolume(spec.name, labels=dict(spec.labels))

    def create_container(self, spec: ContainerSpec) -> DatabaseContainer:
        self._reachable()
        self._fault("create", spec.name)
        with self._lock:
            if self.container_name_taken(spec.name):
                raise NameTaken(f"a container named {spec.name} already exists")
            for network in spec.networks:
                if network not in self.networks:
                    raise NotFound(f"Docker refused: network {network} not found")
            for volume in spec.volumes:
                self.volumes.setdefault(volume, FakeVolume(volume))
            container = FakeContainer(
                id=self._new_id(), name=spec.name, image=spec.image, env=dict(spec.env),
                labels=dict(spec.labels), volumes=dict(spec.volumes),
                networks=tuple(spec.networks), command=tuple(spec.command or ()),
                running=False, aliases=dict(spec.aliases), published=tuple(spec.published))
            self.containers[container.id] = container
        return self._view(container)

    def start(self, container_id: str) -> DatabaseContainer:
        container = self._container(container_id)
        self._fault("start", container.name)
        if container.running:  # as the engine: starting a running container does nothing
            return self._view(container)
        if self.refuse_start is not None:
            raise DockerRefused(f"cannot start container {container_id[:12]}: "
                                f"Docker refused: {self.refuse_start}")
        with self._lock:
            container.ports = self._bind(container)
        container.running, container.stopped_at = True, None
        return self._view(container)

    def start_container(self, spec: ContainerSpec) -> DatabaseContainer:
        container = self.create_container(spec)
        try:
            return self.start(container.id)
        except BaseException:
            self.remove_container(container.id)
            raise

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        return ""

    def remove_container(self, container_id: str) -> None:
        try:
            container = self._container(container_id)  # an id or a name, as Docker takes
        except NotFound:
            return
        self.containers.pop(container.id, None)
        self._removed_labels[container.id] = dict(container.labels)

    def remove_volume(self, name: str) -> None:
        self._reachable()
        users = self._users(name)
        if users:  # Docker's force does not take a volume from under a container
            raise VolumeInUse(f"volume {name} is in use: Docker refused: remove {name}: "
                              f"volume is in use - [{', '.join(user.id for user in users)}]")
        self.volumes.pop(name, None)

    def empty_volume(self, name: str) -> None:
        volume = self._volume(name)
        self._helper_image_ready()  # the real one empties it in a helper container
        volume.content = b""

    # --- Networking --------------------------------------------------------------------

    def network_exists(self, name: str) -> bool:
        self._reachable()
        return name in self.networks

    def network_internal(self, name: str) -> bool:
        self._reachable()
        return name in self.networks and name in self.internal_networks

    def create_network(self, name: str, *, internal: bool,
                       labels: Mapping[str, str]) -> None:
        self._reachable()
        with self._lock:
            if name in self.networks:
                raise NameTaken(f"a network named {name} already exists")
            self.networks.add(name)
            if internal:
                self.internal_networks.add(name)
            self.network_labels[name] = dict(labels)

    def remove_network(self, name: str) -> None:
        self._reachable()
        with self._lock:
            users = [c.name for c in self.containers.values() if name in c.networks]
            if users:
                raise DockerRefused(f"Docker refused: network {name} has active endpoints "
                                    f"({', '.join(users)})")
            self.networks.discard(name)
            self.internal_networks.discard(name)
            self.network_labels.pop(name, None)

    def labelled_networks(self, label: str) -> dict[str, dict[str, str]]:
        self._reachable()
        return {name: dict(labels) for name, labels in self.network_labels.items()
                if label in labels}

    def published_host_ports(self) -> set[tuple[str, int]]:
        self._reachable()
        return {binding for c in self.containers.values() if c.running
                for bindings in c.ports.values() for binding in bindings}

    def container_endpoints(self, container_id: str) -> ContainerEndpoints:
        container = self._container(container_id)
        networks = {name: NetworkEndpoint(
            ip_address=f"172.18.{index}.{int(container.id[:12], 16) % 250 + 2}",
            # As Docker's inspect: the aliases given (its short id, which the
            # real adapter drops, aside), not the container's name.
            aliases=tuple(container.aliases.get(name, ())))
            for index, name in enumerate(container.networks)}
        return ContainerEndpoints(networks=networks,
                                  ports=dict(container.ports) if container.running else {})

    def _bind(self, container: FakeContainer) -> dict[str, tuple[tuple[str, int], ...]]:
        """Bind the container's published ports as Docker does at start: a
        port taken (by a running container or a host process) is refused, and
        nothing is published of one created on an internal network."""
        if container.networks and container.networks[0] in self.internal_networks:
            return {}
        taken = self.published_host_ports() | self.host_ports
        bound: dict[str, tuple[tuple[str, int], ...]] = {}
        for port in container.published:
            host_port = port.host_port or next(self._free_ports)
            if (port.host_ip, host_port) in taken or ("0.0.0.0", host_port) in taken:
                raise PortTaken(  # what the real adapter makes of Docker's refusal
                    f"cannot start container {container.id[:12]}: a host port it publishes "
                    f"is taken (Bind for {port.host_ip}:{host_port} failed: port is already "
                    "allocated); choose another, or publish 0 for a free one")
            bound[port.key] = ((port.host_ip, host_port),)
        return bound

    # --- Swapping ----------------------------------------------------------------------

    def container_settings(self, container_id: str) -> ContainerSettings:
        container = self._container(container_id)
        bound = container.ports if container.running else {}
        published = tuple(
            port if port.host_port or not bound.get(port.key)
            else replace(port, host_port=bound[port.key][0][1])
            for port in container.published)
        return ContainerSettings(
            networks={n: tuple(container.aliases.get(n, ())) for n in container.networks},
            published=published, restart=container.restart)

    def rename_container(self, container_id: str, new_name: str) -> None:
        with self._lock:
            container = self._container(container_id)
            self._fault("rename", container.name)
            if new_name != container.name and self.container_name_taken(new_name):
                raise NameTaken(f"a container named {new_name} already exists")
            container.name = new_name

    def set_restart_policy(self, container_id: str, policy: RestartPolicy) -> None:
        container = self._container(container_id)
        self._fault("restart", container.name)
        container.restart = policy

    def _fault(self, action: str, name: str) -> None:
        with self._lock:
            for fault in self.faults:
                if fault[:2] == (action, name):
                    self.faults.remove(fault)
                    raise DockerRefused(f"Docker refused: {fault[2]}")

    # --- ImageSupply -------------------------------------------------------------------

    def ensure_image(self, image: str) -> None:
        self._reachable()
        with self._lock:
            if image in self.images:
                return
            self.pulls.append(image)
            if image not in self.pullable:
                raise ImagePullFailed(image, NO_REGISTRY)
            logger.info("image %s is not on the Docker engine; pulling it", image)
            logger.info("pulling %s: layer 0001: pull complete", image)
            self.images.add(image)
            logger.info("pulled image %s", image)

    def _helper_image_ready(self) -> None:
        try:
            self.ensure_image(self.helper_image)
        except ImagePullFailed as exc:
            raise ImagePullFailed(exc.image, exc.reason, helper=True) from exc

    # --- HelperContainers ----------------------------------------------------------------

    def helper_stream(self, argv: Sequence[str], *, volumes_from: str | None = None,
                      volumes: Mapping[str, str] | None = None,
                      read_only: bool = True) -> Iterator[bytes]:
        self._helper_image_ready()
        raise ExecFailed(argv[0], 127, "the fake engine runs no helper programs")

    def helper_run(self, argv: Sequence[str], *, volumes_from: str | None = None,
                   volumes: Mapping[str, str] | None = None, read_only: bool = False,
                   stdin: Iterable[bytes] | None = None, check: bool = True) -> ExecResult:
        self._helper_image_ready()
        raise ExecFailed(argv[0], 127, "the fake engine runs no helper programs")

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        container = self._container(container_id)
        self._fault("stop", container.name)
        if container.running:  # stopping a stopped container keeps when it stopped
            container.running, container.stopped_at = False, datetime.now(UTC)

    # --- VolumeAdmin -----------------------------------------------------------------

    def volume_names(self) -> set[str]:
        self._reachable()
        return set(self.volumes)

    def list_volumes(self, sizes: bool = True) -> list[VolumeInfo]:
        self._reachable()
        return [self._volume_info(name, sizes) for name in sorted(self.volumes)]

    def get_volume(self, name: str, size: bool = False) -> VolumeInfo | None:
        self._reachable()
        return self._volume_info(name, size) if name in self.volumes else None

    def remove_unused_volume(self, name: str) -> None:
        self._volume(name)
        users = self._users(name)
        if users:
            raise VolumeInUse(f"volume {name} is in use by {users[0].name}")
        del self.volumes[name]

    def copy_volume(self, source: str, target: str) -> VolumeCopy:
        self._helper_image_ready()  # the real one copies in a helper container
        self._start_exec(COPY, self._holders.current())
        if COPY in self.stall:
            self._volume(target).content = self._volume(source).content[:1]
            self._stall_until_cut(COPY, self._holders.current())
        if self.copy_error is not None:
            self._volume(target).content = b""
            raise ExecFailed("sh", 1, self.copy_error)
        self._volume(target).content = self._volume(source).content
        return VolumeCopy(method="reflink" if self.reflinks else "copy",
                          note=None if self.reflinks else "no reflinks in the fake")

    def remove_orphan_helpers(self) -> list[str]:
        self._reachable()
        from service.runs import may_be_running

        orphans = [c.id for c in self.containers.values()
                   if c.helper_of is not None and not may_be_running(c.helper_of)]
        for container_id in orphans:
            del self.containers[container_id]
        return orphans

    # --- plumbing --------------------------------------------------------------------

    def _new_id(self) -> str:
        return f"{next(self._ids):012x}" + "0" * 52

    def _reachable(self) -> None:
        if self.unreachable:
            raise DockerUnavailable("cannot reach the Docker engine at unix:///fake.sock: "
                                    "connection refused; start Docker or set DOCKER_HOST")

    def _container(self, container_id: str) -> FakeContainer:
        self._reachable()
        found = self.containers.get(container_id)
        if found is None:
            found = next((c for c in self.containers.values() if c.name == container_id), None)
        if found is None:
            raise NotFound(f"No such container: {container_id}")
        return found

    def _running(self, container_id: str) -> FakeContainer:
        container = self._container(container_id)
        if not container.running:
            raise DockerRefused(f"Docker refused: container {container.name} is not running")
        return container

    def _volume(self, name: str) -> FakeVolume:
        self._reachable()
        volume = self.volumes.get(name)
        if volume is None:
            raise VolumeNotFound(f"no volume named {name}")
        return volume

    def _data_volume(self, container: FakeContainer) -> FakeVolume | None:
        for name, destination in container.volumes.items():
            if destination == DATA_PATH:
                return self.volumes[name]
        return None

    def _data(self, container: FakeContainer) -> bytes:
        volume = self._data_volume(container)
        return container.content if volume is None else volume.content

    def _store(self, container: FakeContainer, data: bytes) -> None:
        volume = self._data_volume(container)
        if volume is None:
            container.content = data
        else:
            volume.content = data

    def _users(self, volume: str) -> list[VolumeUser]:
        return sorted((VolumeUser(name=c.name, id=c.id, running=c.running)
                       for c in self.containers.values() if volume in c.volumes),
                      key=lambda user: user.name)

    def _volume_info(self, name: str, size: bool) -> VolumeInfo:
        volume = self.volumes[name]
        return VolumeInfo(name=name, labels=dict(volume.labels), created_at=volume.created_at,
                          size_bytes=len(volume.content) if size else None,
                          users=tuple(self._users(name)))

    def _view(self, container: FakeContainer) -> DatabaseContainer:
        return DatabaseContainer(
            id=container.id, name=container.name, image=container.image,
            image_id=f"sha256:{container.image.encode().hex():0<64}"[:71],
            env=dict(container.env), labels=dict(container.labels),
            mounts=tuple(Mount(destination=dest, kind="volume", source=name)
                         for name, dest in container.volumes.items()),
            networks=container.networks, running=container.running,
            command=container.command)
