"""The composition root: turns :class:`Settings` into the objects the use cases need.

Called once by each entry point (CLI command, daemon). Nothing is built at
import time; the catalog is opened (and migrated) here, storage targets are
built on first use, and the Docker connection is made lazily so catalog-only
commands work while the engine is down.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from backup.errors import StorageMisconfigured
from backup.storage import Storage, storage_from_url
from service.catalog import Catalog, open_catalog
from service.docker import DockerAdapter
from service.runs import InstanceGate
from service.settings import Settings


@dataclass
class Services:
    settings: Settings
    catalog: Catalog
    docker: DockerAdapter
    _targets: dict[str, Storage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    gate: InstanceGate = field(default_factory=InstanceGate)
    """One run per instance at a time in this process."""

    def target(self, name: str) -> Storage:
        with self._lock:
            if name not in self._targets:
                url = self.settings.targets.get(name)
                if url is None:
                    known = ", ".join(sorted(self.settings.targets))
                    raise StorageMisconfigured(
                        f"no storage target named {name!r}; configured: {known} "
                        f"(add one with HOLDFAST_TARGET_{name.upper()}=file:///path)"
                    )
                self._targets[name] = storage_from_url(name, url)
            return self._targets[name]

    def close(self) -> None:
        self.docker.close()
        self.catalog.close()


def bootstrap(settings: Settings, docker: DockerAdapter | None = None) -> Services:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Services(settings=settings, catalog=open_catalog(settings.catalog_url),
                    docker=docker or DockerAdapter(helper_image=settings.helper_image))
