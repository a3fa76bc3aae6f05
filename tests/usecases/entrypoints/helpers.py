"""Set-up shared by the entry-point tests: a labelled database, waiting, a refusing target."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping

from backup.errors import StoragePermissionDenied
from backup.storage.memory import MemoryStorage
from tests.fakes.docker import FakeContainer
from tests.fakes.services import FakeWorld

LABELS = {"holdfast.enable": "true", "holdfast.engine": "fake"}


def add_db(world: FakeWorld, name: str = "shop-db", *, labels: Mapping[str, str] | None = None,
           running: bool = True, size: int = 100_000) -> FakeContainer:
    """A running labelled fake database on its own volume ``<name>-vol`` of random bytes."""
    return world.docker.add_container(
        name, labels={**LABELS, **(labels or {})}, env={"FAKE_PASSWORD": "s3cret"},
        volume=f"{name}-vol", content=os.urandom(size), running=running)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {condition}")
        time.sleep(0.01)


class DeniedStorage(MemoryStorage):
    """A ``memory://`` target whose credentials are refused: writes are denied."""

    def check_writable(self) -> None:
        raise StoragePermissionDenied(f"target {self.name!r}: access denied by the bucket policy")


def denying_factory(name: str, url: str) -> DeniedStorage:
    return DeniedStorage(name, url)
