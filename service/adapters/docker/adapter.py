"""docker-py behind the domain's ports: exec with streaming, containers, volumes.

This package is the only place that imports docker-py. :class:`DockerAdapter`
implements :class:`backup.ports.ContainerExec`, :class:`backup.ports.ContainerRuntime`
and :class:`backup.ports.HelperContainers` (short-lived containers of
``HOLDFAST_HELPER_IMAGE`` for work on volumes), lists and inspects named
volumes, and discovers labelled containers: all of
:class:`service.ports.DockerEngine`. It is a facade over one part per concern,
all sharing one :class:`~service.adapters.docker.connection.DockerConnection`,
where every docker-py or connection error is translated into :mod:`backup.errors`:
:mod:`.exec`, :mod:`.containers`, :mod:`.volumes`, :mod:`.images`, :mod:`.helpers`,
:mod:`.networks`, :mod:`.swap` and :mod:`.events`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from backup.ports import ContainerEndpoints, ContainerSpec, ExecResult, VolumeCopy, VolumeSpec
from backup.types import DatabaseContainer
from backup.volumes import VolumeInfo
from restore.swap import ContainerSettings, RestartPolicy
from service.adapters.docker.connection import DockerConnection, docker_host_description
from service.adapters.docker.containers import Containers
from service.adapters.docker.events import LIFECYCLE_EVENTS, ContainerEvents, follow_events
from service.adapters.docker.exec import Exec
from service.adapters.docker.helpers import DEFAULT_HELPER_IMAGE, HELPER_LABEL, Helpers
from service.adapters.docker.images import Images
from service.adapters.docker.networks import Networks
from service.adapters.docker.swap import Swap
from service.adapters.docker.volumes import Volumes

if TYPE_CHECKING:
    # docker-py is imported by the connection when it first connects, so a
    # catalog-only command never pays for it (see DockerConnection).
    import docker

__all__ = ["DEFAULT_HELPER_IMAGE", "HELPER_LABEL", "LIFECYCLE_EVENTS", "ContainerEvents",
           "DockerAdapter", "docker_host_description"]


class DockerAdapter:
    """Talks to one Docker engine. Connects lazily, so commands that need only
    the catalog work while the engine is down."""

    def __init__(self, factory: Callable[[], docker.DockerClient] | None = None,
                 timeout: int = 60, helper_image: str = DEFAULT_HELPER_IMAGE) -> None:
        self._connection = DockerConnection(factory, timeout)
        self._exec = Exec(self._connection)
        self._containers = Containers(self._connection)
        self._images = Images(self._connection)
        self._helpers = Helpers(self._connection, self._exec, helper_image, self._images)
        self._volumes = Volumes(self._connection, self._helpers)
        self._networks = Networks(self._connection)
        self._swap = Swap(self._connection)

    # --- connection ------------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        return self._connection.client

    @property
    def api(self) -> docker.APIClient:
        return self._connection.api

    @property
    def helper_image(self) -> str:
        return self._helpers.image

    @helper_image.setter
    def helper_image(self, image: str) -> None:
        self._helpers.image = image

    def ping(self) -> None:
        self._connection.ping()

    def engine_identity(self) -> tuple[str, str]:
        """The engine's own name (its machine's hostname) and its version."""
        info = self._connection.call(self._connection.api.info)
        return str(info.get("Name") or ""), str(info.get("ServerVersion") or "unknown")

    def close(self) -> None:
        self._connection.close()

    # --- discovery -------------------------------------------------------------------

    def labelled_containers(self, include_stopped: bool = True,
                            scope: str | None = None) -> list[DatabaseContainer]:
        """Containers carrying a ``holdfast.enable`` label (any value) and in
        ``scope`` (:func:`service.ports.in_scope`), inspected."""
        return self._containers.labelled_containers(include_stopped, scope)

    def containers_labelled(self, label: str, value: str | None = None
                            ) -> list[DatabaseContainer]:
        """Every container carrying ``label`` (``=value``), running or not, inspected."""
        return self._containers.containers_labelled(label, value)

    def inspect(self, container_id: str) -> DatabaseContainer:
        return self._containers.inspect(container_id)

    def stopped_at(self, container_id: str) -> datetime | None:
        """When a stopped container last stopped; None while it runs."""
        return self._containers.stopped_at(container_id)

    def container_names(self) -> set[str]:
        return self._containers.container_names()

    def container_events(self, scope: str | None = None) -> ContainerEvents:
        """Follow the lifecycle events (start, die, destroy, rename) of labelled
        containers in ``scope``. Iterating blocks until an event arrives; ``close()``
        from another thread ends the iteration. The iterator ends or raises when
        the engine goes away; the caller reconnects."""
        return follow_events(self._connection, scope)

    def binaries_present(self, container_id: str, names: Sequence[str]) -> set[str]:
        """Which of ``names`` are on the container's PATH (engine detection)."""
        return self._exec.binaries_present(container_id, names)

    # --- exec ------------------------------------------------------------------------

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        return self._exec.stream(container_id, argv, env=env, user=user, stdin=stdin)

    def run(self, container_id: str, argv: Sequence[str], *,
            env: Mapping[str, str] | None = None, user: str | None = None,
            stdin: Iterable[bytes] | None = None, check: bool = True,
            output_limit: int = 1024 * 1024) -> ExecResult:
        return self._exec.run(container_id, argv, env=env, user=user, stdin=stdin,
                              check=check, output_limit=output_limit)

    def abort_streams(self, holder: str | None = None) -> int:
        """Cut every exec connection in flight, or only ``holder``'s, from any
        thread. A reader blocked on a stalled process (a dump waiting on a
        lock) wakes with an error instead of waiting forever, and the process
        is killed in its container; used when shutdown or a job's cancel stops runs."""
        return self._exec.abort_streams(holder)

    def exec_holder(self, holder: str) -> AbstractContextManager[None]:
        """Execs (and helpers' execs) this thread starts inside the block belong
        to ``holder``, for :meth:`abort_streams`."""
        return self._exec.holding(holder)

    # --- containers ------------------------------------------------------------------

    def container_name_taken(self, name: str) -> bool:
        return self._containers.container_name_taken(name)

    def image_exists(self, image: str) -> bool:
        return self._containers.image_exists(image)

    def create_container(self, spec: ContainerSpec) -> DatabaseContainer:
        return self._containers.create_container(spec)

    def start(self, container_id: str) -> DatabaseContainer:
        return self._containers.start(container_id)

    def start_container(self, spec: ContainerSpec) -> DatabaseContainer:
        return self._containers.start_container(spec)

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        self._containers.stop_container(container_id, timeout)

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        return self._containers.logs_tail(container_id, lines)

    def remove_container(self, container_id: str) -> None:
        self._containers.remove_container(container_id)

    # --- networks and published ports ------------------------------------------------

    def network_exists(self, name: str) -> bool:
        return self._networks.network_exists(name)

    def network_internal(self, name: str) -> bool:
        return self._networks.network_internal(name)

    def create_network(self, name: str, *, internal: bool,
                       labels: Mapping[str, str]) -> None:
        self._networks.create_network(name, internal=internal, labels=labels)

    def remove_network(self, name: str) -> None:
        self._networks.remove_network(name)

    def labelled_networks(self, label: str) -> dict[str, dict[str, str]]:
        return self._networks.labelled_networks(label)

    def published_host_ports(self) -> set[tuple[str, int]]:
        return self._networks.published_host_ports()

    def container_endpoints(self, container_id: str) -> ContainerEndpoints:
        return self._networks.container_endpoints(container_id)

    # --- swapping (restore --replace) ----------------------------------------------

    def container_settings(self, container_id: str) -> ContainerSettings:
        return self._swap.container_settings(container_id)

    def rename_container(self, container_id: str, new_name: str) -> None:
        self._swap.rename_container(container_id, new_name)

    def set_restart_policy(self, container_id: str, policy: RestartPolicy) -> None:
        self._swap.set_restart_policy(container_id, policy)

    # --- named volumes ---------------------------------------------------------------

    def volume_exists(self, name: str) -> bool:
        return self._volumes.volume_exists(name)

    def volume_names(self) -> set[str]:
        return self._volumes.volume_names()

    def create_volume(self, spec: VolumeSpec) -> None:
        self._volumes.create_volume(spec)

    def list_volumes(self, sizes: bool = True) -> list[VolumeInfo]:
        """Every volume with its users; ``sizes`` asks Docker to measure them
        (``docker system df -v``), which walks every volume and takes a while."""
        return self._volumes.list_volumes(sizes)

    def get_volume(self, name: str, size: bool = False) -> VolumeInfo | None:
        return self._volumes.get_volume(name, size)

    def empty_volume(self, name: str) -> None:
        """Delete everything inside a volume (for ``--force`` reuse)."""
        self._volumes.empty_volume(name)

    def copy_volume(self, source: str, target: str) -> VolumeCopy:
        """Make ``target`` an exact copy of ``source``: owners, modes, links,
        hard links and holes of sparse files kept; ``target`` is emptied first.
        With reflinks where the data root's filesystem has them."""
        return self._volumes.copy_volume(source, target)

    def remove_volume(self, name: str) -> None:
        self._volumes.remove_volume(name)

    def remove_unused_volume(self, name: str) -> None:
        """Remove a volume no container uses; Docker's refusal (a container
        mounted it a moment ago) becomes :class:`~backup.errors.VolumeInUse`."""
        self._volumes.remove_unused_volume(name)

    # --- images ----------------------------------------------------------------------

    def ensure_image(self, image: str) -> None:
        """Pull ``image`` if the engine lacks it, logging progress; see
        :meth:`service.ports.ImageSupply.ensure_image`."""
        self._images.ensure_image(image)

    # --- helper containers -----------------------------------------------------------

    def helper_stream(self, argv: Sequence[str], *, volumes_from: str | None = None,
                      volumes: Mapping[str, str] | None = None,
                      read_only: bool = True) -> Iterator[bytes]:
        return self._helpers.helper_stream(argv, volumes_from=volumes_from, volumes=volumes,
                                           read_only=read_only)

    def helper_run(self, argv: Sequence[str], *, volumes_from: str | None = None,
                   volumes: Mapping[str, str] | None = None, read_only: bool = False,
                   stdin: Iterable[bytes] | None = None, check: bool = True) -> ExecResult:
        return self._helpers.helper_run(argv, volumes_from=volumes_from, volumes=volumes,
                                        read_only=read_only, stdin=stdin, check=check)

    def remove_orphan_helpers(self) -> list[str]:
        """Remove helper containers whose Holdfast process is gone (killed
        mid-archive); those of live processes, here or on other hosts, stay."""
        return self._helpers.remove_orphan_helpers()
