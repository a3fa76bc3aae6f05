"""Networks and published ports: what a restore joins and where its copy can be reached.

:class:`Networks` answers the questions a restore with ``network``/``publish``
asks before it creates anything (does the network exist, is the host port
already published by a container) and, once the container runs, where it is:
its address and aliases on each network, and the host addresses its ports are
bound to (:class:`backup.ports.ContainerEndpoints`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from backup.errors import NameTaken, NotFound
from backup.ports import ContainerEndpoints, NetworkEndpoint
from service.adapters.docker.connection import DockerConnection


class Networks:
    """The networks and port bindings of one engine."""

    def __init__(self, connection: DockerConnection) -> None:
        self._connection = connection

    def network_exists(self, name: str) -> bool:
        try:
            self._connection.call(lambda: self._connection.api.inspect_network(name))
        except NotFound:
            return False
        return True

    def network_internal(self, name: str) -> bool:
        try:
            data = self._connection.call(lambda: self._connection.api.inspect_network(name))
        except NotFound:
            return False
        return bool(data.get("Internal"))

    def create_network(self, name: str, *, internal: bool,
                       labels: Mapping[str, str]) -> None:
        if self.network_exists(name):
            raise NameTaken(f"a network named {name} already exists")
        self._connection.call(lambda: self._connection.api.create_network(
            name, driver="bridge", internal=internal, labels=dict(labels)))

    def remove_network(self, name: str) -> None:
        with contextlib.suppress(NotFound):  # already gone is what was asked
            self._connection.call(lambda: self._connection.api.remove_network(name))

    def labelled_networks(self, label: str) -> dict[str, dict[str, str]]:
        found = self._connection.call(lambda: self._connection.api.networks(
            filters={"label": label}))
        return {net["Name"]: dict(net.get("Labels") or {}) for net in found}

    def published_host_ports(self) -> set[tuple[str, int]]:
        """``(host ip, host port)`` of every port a running container publishes."""
        summaries = self._connection.call(lambda: self._connection.api.containers())
        return {(port.get("IP", ""), int(port["PublicPort"]))
                for summary in summaries for port in summary.get("Ports") or ()
                if port.get("PublicPort")}

    def container_endpoints(self, container_id: str) -> ContainerEndpoints:
        data = self._connection.call(lambda: self._connection.api.inspect_container(container_id))
        return endpoints_of(data)


def endpoints_of(data: Mapping[str, Any]) -> ContainerEndpoints:
    """The endpoints in an inspect answer. Docker lists the container's short
    id among its aliases on user networks; that one is left out."""
    settings = data.get("NetworkSettings") or {}
    short_id = str(data.get("Id", ""))[:12]
    networks = {
        name: NetworkEndpoint(
            ip_address=endpoint.get("IPAddress") or "",
            aliases=tuple(alias for alias in endpoint.get("Aliases") or ()
                          if alias != short_id))
        for name, endpoint in (settings.get("Networks") or {}).items()
    }
    ports = {
        key: tuple((binding.get("HostIp") or "", int(binding["HostPort"]))
                   for binding in bindings if binding.get("HostPort"))
        for key, bindings in (settings.get("Ports") or {}).items() if bindings
    }
    return ContainerEndpoints(networks=networks, ports=ports)
