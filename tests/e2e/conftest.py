"""A real ``holdfast serve`` process for end-to-end tests, on a free port."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.daemon import Daemon

__all__ = ["Daemon", "daemon_factory"]


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Yields ``make(**env)``: a :class:`Daemon` (not started) whose every start
    gets ``env``; all of them are killed at teardown if still running."""
    made: list[Daemon] = []

    def make(**env: str) -> Daemon:
        daemon = Daemon(tmp_path / f"daemon-{len(made)}" if made else tmp_path, env)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()
