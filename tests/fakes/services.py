"""Services built from the fakes: what every Docker-free use-case test starts from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from backup.storage import Storage, storage_from_url
from service.bootstrap import Services
from service.settings import Settings
from tests.fakes.catalog import InMemoryCatalog
from tests.fakes.docker import FakeDocker
from tests.fakes.engine import register_fake_engine
from tests.fakes.notify import FakeSenders
from tests.harness.api import TEST_TOKEN


@dataclass
class FakeWorld:
    """The fakes behind one :class:`Services`, kept typed for the tests' set-up."""

    services: Services
    docker: FakeDocker
    catalog: InMemoryCatalog
    senders: FakeSenders

    def storage(self, name: str = "local") -> Storage:
        return self.services.target(name)


def fake_world(tmp_path: Path, env: Mapping[str, str] | None = None) -> FakeWorld:
    """Services over a fake engine, an in-memory catalog, recording notification
    senders and ``memory://`` targets
    (``local`` and ``offsite``, plus any ``HOLDFAST_TARGET_*`` in ``env``); the
    bootstrap API token is :data:`~tests.harness.api.TEST_TOKEN` unless ``env``
    sets another."""
    register_fake_engine()
    settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path),
                              "HOLDFAST_API_TOKEN": TEST_TOKEN,
                              "HOLDFAST_TARGET_LOCAL": "memory://local",
                              "HOLDFAST_TARGET_OFFSITE": "memory://offsite",
                              "HOLDFAST_READY_TIMEOUT": "5", **(env or {})})
    docker, catalog, senders = FakeDocker(), InMemoryCatalog(), FakeSenders()
    services = Services(settings=settings, catalog=catalog, docker=docker,
                        storage_factory=storage_from_url, senders=senders)
    return FakeWorld(services=services, docker=docker, catalog=catalog, senders=senders)
