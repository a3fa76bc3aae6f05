"""The composition root: turns :class:`Settings` into the objects the use cases need.

Called once by each entry point (CLI command, daemon). Nothing is built at
import time; the catalog is opened (and migrated) here, storage targets are
built on first use, and the Docker connection is made lazily so catalog-only
commands work while the engine is down. :class:`Services` holds only ports
(:mod:`service.ports`, :class:`backup.storage.Storage`), so the Docker-free
test tier builds one from fakes with the same constructor.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from backup.encryption import Identities, Recipients, load_identities, parse_recipients
from backup.errors import DockerUnavailable, StorageMisconfigured
from backup.storage import Storage, storage_from_url
from service.hosts import host_name_from_engine
from service.ports import CatalogPort, DaemonLock, DockerEngine, SenderRoutes
from service.runs import InstanceGate
from service.status import DaemonStatus

if TYPE_CHECKING:
    # Only for annotations: the CLI imports this module at start-up, before it
    # knows whether the command needs settings (pydantic-settings is slow to load).
    from service.settings import Settings

StorageFactory = Callable[[str, str], Storage]
"""(target name, URL) -> the storage target."""


@dataclass
class Services:
    settings: Settings
    catalog: CatalogPort
    docker: DockerEngine
    storage_factory: StorageFactory = storage_from_url
    gate: InstanceGate = field(default_factory=InstanceGate)
    """One run per instance at a time in this process."""
    verify_gate: InstanceGate = field(default_factory=InstanceGate)
    """One verified restore per instance at a time in this process, apart from
    its runs: a verification never touches the instance itself."""
    senders: SenderRoutes | None = None
    """Where notifications and pings go (None: this process sends none)."""
    status: DaemonStatus = field(default_factory=DaemonStatus)
    """The daemon's discovery and scheduler report here for readiness (empty elsewhere)."""
    _targets: dict[str, Storage] = field(default_factory=dict)
    _recipients: dict[str, Recipients | None] = field(default_factory=dict)
    _identities: list[Identities] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _host_name: list[str] = field(default_factory=list)

    def host_name(self) -> str:
        """The name of this process's Docker engine among the hosts
        (:mod:`service.hosts`): ``HOLDFAST_HOST_NAME``, else the engine's own
        name, asked once; while Docker is unreachable, this machine's hostname."""
        if self.settings.host_name:
            return self.settings.host_name
        with self._lock:
            if not self._host_name:
                try:
                    engine_name = self.docker.engine_identity()[0]
                except DockerUnavailable:
                    engine_name = socket.gethostname()
                self._host_name.append(host_name_from_engine(engine_name))
            return self._host_name[0]

    def recipients_for(self, target: str) -> Recipients | None:
        """The age recipients snapshots on ``target`` are encrypted to (its own
        setting, else ``HOLDFAST_AGE_RECIPIENTS``), or None: stored in the clear.
        Raises :class:`~backup.errors.InvalidRecipients` naming the setting."""
        with self._lock:
            if target not in self._recipients:
                setting = self.settings.recipients_setting(target)
                self._recipients[target] = (
                    None if setting is None else parse_recipients(setting[1], source=setting[0]))
            return self._recipients[target]

    def identities(self) -> Identities | None:
        """The identity file's keys (``HOLDFAST_IDENTITY_FILE``, ``--identity``),
        read on first use; None when none is configured."""
        path = self.settings.identity_file
        if path is None:
            return None
        with self._lock:
            if not self._identities:
                self._identities.append(load_identities(path))
            return self._identities[0]

    def target(self, name: str) -> Storage:
        """The configured target ``name``, built on first use and kept.
        Raises :class:`StorageMisconfigured` for a name that is not configured."""
        with self._lock:
            if name not in self._targets:
                url = self.settings.targets.get(name)
                if url is None:
                    raise unknown_target(name, self.settings.targets)
                self._targets[name] = self.storage_factory(name, url)
            return self._targets[name]

    def close(self) -> None:
        self.docker.close()
        self.catalog.close()


def unknown_target(name: str, configured: Iterable[str]) -> StorageMisconfigured:
    """The error for a target ``name`` that is not configured: one message for a
    backup that names it and for an instance whose label names it."""
    known = ", ".join(sorted(configured))
    return StorageMisconfigured(f"no storage target named {name!r}; configured: {known} "
                                f"(add one with HOLDFAST_TARGET_{name.upper()}=file:///path)")


def bootstrap(settings: Settings, docker: DockerEngine | None = None, *,
              quick_reads: bool = False) -> Services:
    """Services over the real adapters (imported here, not at module level, so
    the fast tier never loads docker-py or SQLAlchemy through this module).
    ``quick_reads`` (one-shot CLI commands) reads a local SQLite catalog with the
    standard library (:mod:`service.adapters.catalog.sqlite_reader`)."""
    from service.adapters.docker import DockerAdapter
    from service.adapters.notify.registry import Destinations

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if quick_reads:
        from service.adapters.catalog.sqlite_reader import open_quick_catalog as opener
    else:
        from service.adapters.catalog.db import open_catalog as opener
    return Services(settings=settings, catalog=opener(settings.catalog_url),
                    docker=docker or DockerAdapter(helper_image=settings.helper_image),
                    senders=Destinations(settings.notify_channels))


def daemon_lock(settings: Settings, host: str | None = None) -> DaemonLock:
    """The lock ``holdfast serve`` holds for its lifetime: its data directory's,
    and its catalog's (:func:`service.adapters.catalog.lock.daemon_lock_for`)."""
    from service.adapters.catalog.lock import daemon_lock_for

    return daemon_lock_for(settings.catalog_url, settings.data_dir, host)
