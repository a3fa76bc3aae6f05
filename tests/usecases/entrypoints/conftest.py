from __future__ import annotations

from collections.abc import Iterator

import pytest

from service.usecases.jobs import JobRunner
from tests.fakes.services import FakeWorld


@pytest.fixture
def jobs(world: FakeWorld) -> Iterator[JobRunner]:
    runner = JobRunner(world.services, 2)
    yield runner
    runner.shutdown(grace=5, cancel_wait=5)
