"""Readiness: the catalog and the Docker engine, each named when it fails."""

from __future__ import annotations

from service.usecases import health
from tests.fakes.services import FakeWorld


def test_ready_when_both_answer(world: FakeWorld) -> None:
    result = health.readiness(world.services)
    assert result.to_json() == {"ready": True, "checks": {"catalog": "ok", "docker": "ok"}}


def test_an_unreachable_docker_engine_is_named(world: FakeWorld) -> None:
    world.docker.unreachable = True
    result = health.readiness(world.services)
    assert not result.ready and result.checks["catalog"] == "ok"
    assert result.checks["docker"].startswith("cannot reach the Docker engine")


def test_a_catalog_that_is_down_is_named(world: FakeWorld) -> None:
    world.catalog.down = True
    result = health.readiness(world.services)
    assert not result.ready and result.checks["docker"] == "ok"
    assert "catalog database memory:// cannot be reached" in result.checks["catalog"]


def test_both_failures_are_reported_at_once(world: FakeWorld) -> None:
    world.docker.unreachable = world.catalog.down = True
    result = health.readiness(world.services)
    assert result.to_json()["ready"] is False
    assert all(value != "ok" for value in result.checks.values())
