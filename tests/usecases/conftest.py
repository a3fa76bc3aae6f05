"""The Docker-free tier: every use case against the fakes in :mod:`tests.fakes`.

These tests need no engine, network or database server; they run with
``DOCKER_HOST=unix:///nonexistent`` (see the README's Development section).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.services import FakeWorld, fake_world


@pytest.fixture
def world(tmp_path: Path) -> FakeWorld:
    return fake_world(tmp_path)
