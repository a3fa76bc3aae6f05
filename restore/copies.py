"""Copies: what a restore may add to the container it creates, and when it goes.

A restore for a script or a developer can join a Docker network under an
alias, publish the database's port on the host, carry extra labels and live
for a TTL. Everything here is pure: :func:`check_restore_options` turns the
values a user sent into :class:`CopyOptions` or raises one line
(:class:`~backup.errors.InvalidInput`); :class:`CopyRecord` is what the catalog
remembers of each container a restore created; :func:`decide_expiry` picks
which expired copies to remove and what of them, from facts the service
gathered, before anything is touched ("decide, then apply"). A copy's
container is removed only if the container now holding its name has the id
the restore recorded, and only the volumes that restore created go with it.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from backup.engines.base import Engine
from backup.errors import InvalidInput
from backup.labels import parse_duration
from backup.names import shown
from backup.ports import ContainerEndpoints, PublishedPort
from backup.types import Manifest, isoformat
from backup.volumes import LABEL_KEY_MAX, LABEL_VALUE_MAX, LABELS_MAX

TTL_MIN = 60
"""The shortest TTL, in seconds (``1m``)."""
TTL_MAX = 365 * 86400
"""The longest TTL, in seconds (``365d``)."""
TTL_RANGE = "1m to 365d"
RESERVED_LABEL_PREFIX = "holdfast."
"""Labels under this prefix are Holdfast's (``holdfast.enable`` would make a copy
a backup source): a restore's extra labels may not use it."""
PUBLISH_DEFAULT_HOST = "127.0.0.1"
# Docker's own grammar for container names, which aliases follow, and a bounded
# one for network names (Docker has none; compose makes "project_default").
_ALIAS = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{1,127}")
_NETWORK = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
_PORT = re.compile(r"[0-9]{1,5}")


def parse_ttl(text: str) -> int:
    """A TTL such as ``30m``, ``4h`` or ``7d`` -> seconds, from 1m to 365d; the
    duration grammar of ``@every`` (digits and one of s, m, h, d).
    Raises :class:`InvalidInput` with one line."""
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = None
    if seconds is None or not TTL_MIN <= seconds <= TTL_MAX:
        raise InvalidInput(f"ttl {shown(text.strip())} must be a duration from {TTL_RANGE}, "
                           "like 30m, 4h or 7d")
    return seconds


def parse_publish(value: int | str, container_port: int | None) -> PublishedPort:
    """``publish`` as a user gives it: ``0`` (a free host port), ``5433`` (that
    port), or ``HOST:PORT`` (``0.0.0.0:5433``, ``[::1]:0``) to bind another
    address than 127.0.0.1. ``container_port`` is the engine's; None (a
    ``volume`` snapshot) has nothing to publish."""
    if container_port is None:
        raise InvalidInput("this snapshot's engine serves no port; restore it without publish")
    text = str(value).strip()
    host, port = PUBLISH_DEFAULT_HOST, text
    if ":" in text:
        host, _, port = text.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            host = str(ipaddress.ip_address(host))
        except ValueError:
            raise InvalidInput(f"publish {shown(text)}: {shown(host)} is not an IP address; "
                               "write PORT, or HOST:PORT as in 0.0.0.0:5433") from None
    if not _PORT.fullmatch(port) or int(port) > 65535:
        raise InvalidInput(f"publish {shown(text)}: the host port must be 0 (a free one) "
                           "or 1 to 65535")
    return PublishedPort(container_port=container_port, host_port=int(port), host_ip=host)


def check_alias(alias: str) -> str:
    if not _ALIAS.fullmatch(alias):
        raise InvalidInput(f"alias {shown(alias)} is not a valid name: 2-128 letters, digits, "
                           "'_', '.' or '-', starting with a letter or digit")
    return alias


def check_network(network: str) -> str:
    if not _NETWORK.fullmatch(network):
        raise InvalidInput(f"network {shown(network)} is not a valid network name: 1-128 "
                           "letters, digits, '_', '.' or '-', starting with a letter or digit")
    return network


def check_copy_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """At most :data:`~backup.volumes.LABELS_MAX` labels with a key of 1 to
    :data:`~backup.volumes.LABEL_KEY_MAX` characters that does not start with
    ``holdfast.`` (in any case), values of at most
    :data:`~backup.volumes.LABEL_VALUE_MAX`, no control characters."""
    if len(labels) > LABELS_MAX:
        raise InvalidInput(f"a restore takes at most {LABELS_MAX} labels, not {len(labels)}")
    for key, value in labels.items():
        if not key or len(key) > LABEL_KEY_MAX:
            raise InvalidInput(f"label key {shown(key)} must be 1 to {LABEL_KEY_MAX} characters")
        if key.lower().startswith(RESERVED_LABEL_PREFIX):
            raise InvalidInput(f"label {shown(key)}: keys starting with holdfast. are "
                               "Holdfast's own; choose another key")
        if len(value) > LABEL_VALUE_MAX:
            raise InvalidInput(f"the value of label {shown(key)} is longer than "
                               f"{LABEL_VALUE_MAX} characters")
        for text in (key, value):
            control = next((ch for ch in text if unicodedata.category(ch) == "Cc"), None)
            if control is not None:
                raise InvalidInput(f"label {shown(key)} holds the control character "
                                   f"U+{ord(control):04X}; labels are plain text")
    return dict(labels)


@dataclass(frozen=True)
class RestoreOptions:
    """What a user may ask of the container a restore creates, as sent (CLI
    options, API body fields of the same names); see :func:`check_restore_options`."""

    network: str | None = None
    alias: str | None = None
    publish: int | str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ttl: str | None = None
    warm: bool = True
    """Clone a warm copy of the snapshot when the engine has one (False: stream it)."""


@dataclass(frozen=True)
class CopyOptions:
    """:class:`RestoreOptions`, checked."""

    network: str | None = None
    aliases: tuple[str, ...] = ()
    published: tuple[PublishedPort, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    ttl_seconds: int | None = None
    warm: bool = True


def check_restore_options(options: RestoreOptions | None,
                          container_port: int | None) -> CopyOptions:
    """Validate ``options`` (one line per problem, :class:`InvalidInput`): an
    alias needs a network; ``publish`` (:func:`parse_publish`) publishes the
    engine's ``container_port``; labels (:func:`check_copy_labels`); a TTL
    (:func:`parse_ttl`). Whether the network exists is the engine's to say."""
    if options is None:
        return CopyOptions()
    if options.alias is not None and options.network is None:
        raise InvalidInput("alias needs a network: give the network the alias is for")
    return CopyOptions(
        network=None if options.network is None else check_network(options.network),
        aliases=() if options.alias is None else (check_alias(options.alias),),
        published=() if options.publish is None
        else (parse_publish(options.publish, container_port),),
        labels=check_copy_labels(options.labels),
        ttl_seconds=None if options.ttl is None else parse_ttl(options.ttl),
        warm=options.warm,
    )


@dataclass(frozen=True)
class CopyRecord:
    """A container a restore created, as the catalog keeps it. ``volumes`` are
    only those the restore created (not those ``--force`` reused). ``removed_at``
    is when the daemon was done with it (removed, or refused for good, with
    ``removal_error`` saying why); a copy without it is live."""

    name: str
    container_id: str
    snapshot_id: str
    instance: str
    created_at: datetime
    volumes: tuple[str, ...] = ()
    job_id: str | None = None
    expires_at: datetime | None = None
    removed_at: datetime | None = None
    removal_error: str | None = None

    def seconds_left(self, now: datetime) -> int | None:
        if self.expires_at is None:
            return None
        return max(0, int((self.expires_at - now).total_seconds()))

    def to_json(self, now: datetime) -> dict[str, Any]:
        return {
            "name": self.name,
            "container_id": self.container_id,
            "snapshot_id": self.snapshot_id,
            "instance": self.instance,
            "job_id": self.job_id,
            "volumes": list(self.volumes),
            "created_at": isoformat(self.created_at),
            "expires_at": isoformat(self.expires_at),
            "seconds_left": None if self.removed_at else self.seconds_left(now),
            "removed_at": isoformat(self.removed_at),
            "removal_error": self.removal_error,
        }


def expiry_after(now: datetime, ttl_seconds: int) -> datetime:
    return now + timedelta(seconds=ttl_seconds)


@dataclass(frozen=True)
class Expiry:
    """What to do with one expired copy. ``container_id`` is the container to
    remove (None: none of that name is left); ``volumes`` the volumes to remove;
    ``refused`` (with nothing to remove) why the copy is left alone."""

    copy: CopyRecord
    container_id: str | None
    volumes: tuple[str, ...]
    refused: str | None = None
    foreign: tuple[str, ...] = ()
    """Recorded volumes that exist but no longer say they came from this
    restore's snapshot: someone re-created them; they are left alone."""


def is_expired(copy: CopyRecord, now: datetime) -> bool:
    return copy.removed_at is None and copy.expires_at is not None and copy.expires_at <= now


def decide_expiry(copies: Iterable[CopyRecord], now: datetime,
                  holders: Mapping[str, str | None],
                  volume_origins: Mapping[str, str | None]) -> list[Expiry]:
    """The removals the expired copies among ``copies`` call for.

    ``holders`` maps a copy's name to the id of the container now of that name
    (None: there is none); ``volume_origins`` maps each recorded volume that
    still exists to the snapshot its ``holdfast.restored-from`` label names
    (None: no such label); a volume missing from it is gone already. A copy
    whose name a container with another id now holds is refused whole: the
    name was reused, and that container (and what it mounts) is not this
    restore's. Otherwise the recorded container goes, and each recorded volume
    that still exists and still says it was restored from the copy's snapshot
    (a volume re-created by someone else does not).
    """
    decided = []
    for copy in copies:
        if not is_expired(copy, now):
            continue
        holder = holders.get(copy.name)
        if holder is not None and holder != copy.container_id:
            decided.append(Expiry(copy, None, (), refused=(
                f"container {copy.name} is now {holder[:12]}, not the "
                f"{copy.container_id[:12]} this restore created; left alone")))
            continue
        present = [v for v in copy.volumes if v in volume_origins]
        decided.append(Expiry(
            copy, holder,
            volumes=tuple(v for v in present if volume_origins[v] == copy.snapshot_id),
            foreign=tuple(v for v in present if volume_origins[v] != copy.snapshot_id)))
    return decided


def _url_host(host: str) -> str:
    # A wildcard bind is reachable on the Docker host's loopback; an IPv6
    # address takes brackets in a URL.
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def connection_urls(engine: Engine, manifest: Manifest, endpoints: ContainerEndpoints,
                    container_name: str) -> dict[str, Any]:
    """The URL template of a restored container (``HOST:PORT`` left for the
    caller), and filled-in ones: ``published`` (the first host binding of the
    engine's port) and, per network, by the container's alias there (else its
    name) and the engine's port. Passwords stay ``{VARIABLE}`` placeholders:
    the engine sees only the names of the secrets (``secret_env``, ``secret_args``)."""
    secrets = {*manifest.secret_env, *manifest.secret_args}
    template = engine.connection_template(manifest.env, secrets)
    if template is None or engine.service_port is None:
        return {"url_template": None, "urls": {}}
    urls: dict[str, Any] = {}
    bindings = endpoints.ports.get(f"{engine.service_port}/tcp") or ()
    if bindings:
        host, port = bindings[0]
        urls["published"] = engine.connection_template(manifest.env, secrets,
                                                       host=_url_host(host), port=port)
    urls["networks"] = {
        name: engine.connection_template(
            manifest.env, secrets, port=engine.service_port,
            host=next((a for a in endpoint.aliases if a != container_name), container_name))
        for name, endpoint in endpoints.networks.items()}
    return {"url_template": template, "urls": urls}
