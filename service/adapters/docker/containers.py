"""Containers: discovered, inspected, created, started, stopped and removed.

:class:`Containers` is the container half of :class:`backup.ports.ContainerRuntime`
(volumes are :mod:`service.adapters.docker.volumes`) plus discovery of the
containers carrying a ``holdfast.enable`` label. It turns the engine's inspect
answer into a :class:`backup.types.DatabaseContainer`, with the environment of
the container's image alongside its own; image environments are cached by
image id, which names immutable content.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from backup.errors import DockerRefused, NameTaken, NotFound, PortTaken
from backup.ports import ContainerSpec, PublishedPort
from backup.types import DatabaseContainer, Mount
from service.adapters.docker.connection import DockerConnection, parse_docker_time
from service.ports import SCOPE_LABEL, in_scope

# Docker's words when a published host port is bound already: by another
# container ("port is already allocated") or by a host process ("address
# already in use"), in the engine's versions since 1.x.
_PORT_TAKEN = re.compile(r"port is already allocated|address already in use", re.IGNORECASE)


def _env_dict(entries: Iterable[str] | None) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries or ():
        key, _, value = entry.partition("=")
        env[key] = value
    return env


def _port_bindings(published: Iterable[PublishedPort]) -> dict[str, list[tuple[str, int | None]]]:
    """docker-py's ``port_bindings``: per container port, every host address it
    is bound to (a swap-in carries all of an old container's); ``(ip, None)``
    lets the engine pick a free host port."""
    bindings: dict[str, list[tuple[str, int | None]]] = {}
    for port in published:
        bindings.setdefault(port.key, []).append((port.host_ip, port.host_port or None))
    return bindings


class Containers:
    """The containers of one engine."""

    def __init__(self, connection: DockerConnection) -> None:
        self._connection = connection
        self._image_envs: dict[str, dict[str, str]] = {}

    # --- discovery and inspection ------------------------------------------------

    def labelled_containers(self, include_stopped: bool = True,
                            scope: str | None = None) -> list[DatabaseContainer]:
        """Containers carrying a ``holdfast.enable`` label (any value) and in
        ``scope`` (:func:`service.ports.in_scope`), inspected."""
        # The engine ANDs label filters; "has no scope label" cannot be said to
        # it, so the unscoped case is sorted out here, before any inspect.
        labels = ["holdfast.enable"] + ([f"{SCOPE_LABEL}={scope}"] if scope else [])
        summaries = self._connection.call(lambda: self._connection.api.containers(
            all=include_stopped, filters={"label": labels}))
        found = []
        for summary in summaries:
            if not in_scope(summary.get("Labels") or {}, scope):
                continue
            try:
                found.append(self.inspect(summary["Id"]))
            except NotFound:
                continue  # removed between the list and the inspect
        return found

    def containers_labelled(self, label: str, value: str | None = None
                            ) -> list[DatabaseContainer]:
        wanted = label if value is None else f"{label}={value}"
        summaries = self._connection.call(lambda: self._connection.api.containers(
            all=True, filters={"label": [wanted]}))
        found = []
        for summary in summaries:
            with contextlib.suppress(NotFound):  # removed between the list and the inspect
                found.append(self.inspect(summary["Id"]))
        return found

    def inspect(self, container_id: str) -> DatabaseContainer:
        data = self._connection.call(lambda: self._connection.api.inspect_container(container_id))
        return self._to_container(data)

    def stopped_at(self, container_id: str) -> datetime | None:
        """When a stopped container last stopped; None while it runs."""
        state = self._connection.call(
            lambda: self._connection.api.inspect_container(container_id))["State"]
        if state.get("Running"):
            return None
        return parse_docker_time(state.get("FinishedAt"))

    def container_names(self) -> set[str]:
        summaries = self._connection.call(lambda: self._connection.api.containers(all=True))
        return {name.lstrip("/") for summary in summaries for name in summary.get("Names") or ()}

    def container_name_taken(self, name: str) -> bool:
        try:
            self._connection.call(lambda: self._connection.api.inspect_container(name))
        except NotFound:
            return False
        return True

    def image_exists(self, image: str) -> bool:
        try:
            self._connection.call(lambda: self._connection.api.inspect_image(image))
        except NotFound:
            return False
        return True

    def logs_tail(self, container_id: str, lines: int = 20) -> str:
        try:
            raw = self._connection.call(
                lambda: self._connection.api.logs(container_id, tail=lines))
        except NotFound:
            return ""
        return bytes(raw).decode(errors="replace")

    def _image_env(self, image_id: str) -> dict[str, str]:
        # An image id names immutable content, so its environment can be cached:
        # discovery of 200 containers of one image then inspects it once.
        cached = self._image_envs.get(image_id)
        if cached is not None:
            return dict(cached)
        try:
            image = self._connection.call(lambda: self._connection.api.inspect_image(image_id))
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

    # --- lifecycle -----------------------------------------------------------------

    def create_container(self, spec: ContainerSpec) -> DatabaseContainer:
        taken = f"a container named {spec.name} already exists"
        if self.container_name_taken(spec.name):
            raise NameTaken(taken)
        api = self._connection.api
        networks = list(spec.networks)
        host_config = api.create_host_config(
            binds={volume: {"bind": destination, "mode": "rw"}
                   for volume, destination in spec.volumes.items()},
            network_mode=networks[0] if networks else None,
            port_bindings=_port_bindings(spec.published) or None,
        )
        networking = api.create_networking_config({networks[0]: api.create_endpoint_config(
            aliases=list(spec.aliases[networks[0]]))}) \
            if networks and spec.aliases.get(networks[0]) else None
        # A 409 here is the name taken after all, by a container created since
        # the check above.
        created = self._connection.call(lambda: api.create_container(
            spec.image, command=list(spec.command) if spec.command else None, name=spec.name,
            environment=dict(spec.env), labels=dict(spec.labels), host_config=host_config,
            volumes=list(spec.volumes.values()), detach=True, networking_config=networking,
            ports=[(p.container_port, p.protocol) for p in spec.published] or None,
        ), conflict=lambda _refused: NameTaken(taken))
        container_id = created["Id"]
        try:
            for network in networks[1:]:
                self._connection.call(lambda n=network: api.connect_container_to_network(  # type: ignore[misc]
                    container_id, n, aliases=list(spec.aliases.get(n, ())) or None))
        except BaseException:
            self.remove_container(container_id)
            raise
        return self.inspect(container_id)

    def start(self, container_id: str) -> DatabaseContainer:
        try:
            self._connection.call(lambda: self._connection.api.start(container_id))
        except DockerRefused as exc:  # a 500 of runc (a mount, a missing binary) included
            if _PORT_TAKEN.search(str(exc)):
                raise PortTaken(f"cannot start container {container_id[:12]}: a host port it "
                                f"publishes is taken ({exc}); choose another, or publish 0 "
                                "for a free one") from exc
            raise type(exc)(f"cannot start container {container_id[:12]}: {exc}") from exc
        return self.inspect(container_id)

    def start_container(self, spec: ContainerSpec) -> DatabaseContainer:
        container = self.create_container(spec)
        try:
            return self.start(container.id)
        except BaseException:
            self.remove_container(container.id)
            raise

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        self._connection.call(
            lambda: self._connection.api.stop(container_id, timeout=int(timeout)))

    def remove_container(self, container_id: str) -> None:
        # v=True: a restore's container may have anonymous volumes for image
        # VOLUMEs the plan did not cover; they belong to it alone.
        with contextlib.suppress(NotFound):
            self._connection.call(lambda: self._connection.api.remove_container(
                container_id, force=True, v=True))
