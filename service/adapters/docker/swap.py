"""What a swap-in restore needs of the engine: a container's settings, renames, restart policies.

:class:`Swap` reads what :class:`~backup.types.DatabaseContainer` does not carry
and a container created in another one's place must take over
(:class:`restore.swap.ContainerSettings`: networks with their aliases,
published ports as configured, the restart policy), renames containers and
changes their restart policy, both of which Docker allows on a running or
stopped container (``docker rename``, ``docker update --restart``). Port
bindings cannot be changed on an existing container, which is why a swap
creates the new one anew with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backup.errors import NameTaken
from backup.ports import PublishedPort
from restore.swap import ContainerSettings, RestartPolicy
from service.adapters.docker.connection import DockerConnection


class Swap:
    """Settings, renames and restart policies of one engine's containers."""

    def __init__(self, connection: DockerConnection) -> None:
        self._connection = connection

    def container_settings(self, container_id: str) -> ContainerSettings:
        data = self._connection.call(lambda: self._connection.api.inspect_container(container_id))
        return settings_of(data)

    def rename_container(self, container_id: str, new_name: str) -> None:
        # The engine's 409 here is the name in use by another container.
        self._connection.call(
            lambda: self._connection.api.rename(container_id, new_name),
            conflict=lambda _refused: NameTaken(f"a container named {new_name} already exists"))

    def set_restart_policy(self, container_id: str, policy: RestartPolicy) -> None:
        self._connection.call(lambda: self._connection.api.update_container(
            container_id, restart_policy={"Name": policy.name if policy.restarts else "no",
                                          "MaximumRetryCount": policy.retries}))


def settings_of(data: Mapping[str, Any]) -> ContainerSettings:
    """The settings in an inspect answer. The aliases are those given on each
    network: the container's own name and short id, which the engine adds
    itself, are left out. The network the container was created on
    (``HostConfig.NetworkMode``) comes first, the others by name as the engine
    lists them: a container is created on the first, and whether its ports are
    published depends on that one (none are from an ``--internal`` network)."""
    own = {str(data.get("Id", ""))[:12], str(data.get("Name", "")).lstrip("/")}
    host = data.get("HostConfig") or {}
    attached = ((data.get("NetworkSettings") or {}).get("Networks") or {}).items()
    first = host.get("NetworkMode") or ""
    networks = {
        name: tuple(a for a in (endpoint or {}).get("Aliases") or () if a not in own)
        for name, endpoint in sorted(attached, key=lambda item: item[0] != first)
    }
    bound = (data.get("NetworkSettings") or {}).get("Ports") or {}
    published = []
    for key, bindings in sorted((host.get("PortBindings") or {}).items()):
        port, _, protocol = key.partition("/")
        for binding in bindings or ():
            host_port = _host_port(binding.get("HostPort"), bound.get(key))
            published.append(PublishedPort(container_port=int(port), host_port=host_port,
                                           host_ip=binding.get("HostIp") or "",
                                           protocol=protocol or "tcp"))
    restart = host.get("RestartPolicy") or {}
    return ContainerSettings(
        networks=networks, published=tuple(published),
        restart=RestartPolicy(name=restart.get("Name") or "no",
                              retries=int(restart.get("MaximumRetryCount") or 0)))


def _host_port(configured: str | None, bound: list[Mapping[str, str]] | None) -> int:
    """The configured host port, or, for one the engine chose (empty), the one
    it is bound to now, so the address an application uses stays."""
    if configured:
        return int(configured)
    for binding in bound or ():
        if binding.get("HostPort"):
            return int(binding["HostPort"])
    return 0
