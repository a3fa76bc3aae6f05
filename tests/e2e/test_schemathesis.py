"""Schemathesis against the live daemon: every operation, then stateful runs along
the document's links, over real HTTP to ``holdfast serve`` on a free port.

Checks (tests/harness/contract_checks.py): no 5xx, no status the document does
not list for the operation, bodies that match the documented schema, the
documented content type, and a 405's ``Allow`` naming the path's methods.

SAFETY: schemathesis deletes what it finds (snapshots, volumes, instances,
tokens, containers it can name). The daemon under test is pointed at a PRIVATE
dockerd (:class:`~tests.harness.private_dockerd.PrivateDockerd`: its own data
root, in its own network namespace) that holds only the images this module
loads (Redis, Postgres, the helper) and the containers and volumes it creates
(a Redis, a Postgres, a raw volume), never at the shared engine;
:func:`world` asserts that before any request is made. Its catalog, target and
copies live in the module's own temporary directory. The engine is stopped and
its data root removed at the end.

Bounded and reproducible: a fixed seed with derandomized generation, a few
examples per operation (``HOLDFAST_SCHEMATHESIS_EXAMPLES``, default 12) and
stateful scenarios (``HOLDFAST_SCHEMATHESIS_STATEFUL_EXAMPLES``, default 25)
of up to ``HOLDFAST_SCHEMATHESIS_STEPS`` (10) steps; ``HOLDFAST_SCHEMATHESIS_SEED``
changes the seed. The number of requests, the time taken and the operations the
stateful runs reached are printed at the end of the module.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis import Case
from schemathesis.engine import events
from schemathesis.engine.run import PhaseName

from tests.harness.api import TEST_TOKEN
from tests.harness.contract_checks import checks
from tests.harness.daemon import Daemon
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    DEFAULT_POSTGRES_LABELS,
    HELPER_IMAGE,
    PGDATA,
    POSTGRES_IMAGE,
    TEST_LABEL,
    wait_for_postgres,
)
from tests.harness.private_dockerd import PrivateDockerd

pytestmark = pytest.mark.docker

REDIS_IMAGE = "holdfast-test/redis:7"
EXAMPLES = int(os.environ.get("HOLDFAST_SCHEMATHESIS_EXAMPLES", "12"))
STATEFUL_EXAMPLES = int(os.environ.get("HOLDFAST_SCHEMATHESIS_STATEFUL_EXAMPLES", "25"))
STEPS = int(os.environ.get("HOLDFAST_SCHEMATHESIS_STEPS", "10"))
SEED = int(os.environ.get("HOLDFAST_SCHEMATHESIS_SEED", "11"))
REQUEST_TIMEOUT = 120.0
"""Seconds a request may take: ``?wait=true`` holds one until its (short) job ends."""

CHECKS = checks()


@dataclass
class World:
    """The private engine, what the module made on it, and the daemon over it."""

    engine: PrivateDockerd
    daemon: Daemon
    redis: str
    postgres: str
    volume: str
    requests: int = 0
    steps: set[str] = field(default_factory=set)
    """The operations the stateful runs reached."""
    started: float = field(default_factory=time.monotonic)


def _assert_private(engine: PrivateDockerd, containers: set[str] | None = None,
                    daemon: Daemon | None = None) -> None:
    """The engine is the private one (its data root is under the engine's own
    directory), it holds only ``containers`` (when given), and ``daemon`` runs
    with ``DOCKER_HOST`` pointing at it."""
    client = engine.client()
    try:
        root = str(client.info()["DockerRootDir"])
        assert root.startswith(str(engine.root)), f"not the private engine: data root {root}"
        if containers is not None:
            found = {c.name for c in client.containers.list(all=True)}
            assert found == containers, f"the private engine holds other containers: {found}"
    finally:
        client.close()
    if daemon is not None:
        environ = Path(f"/proc/{daemon.pid}/environ").read_bytes().split(b"\0")
        assert f"DOCKER_HOST={engine.host}".encode() in environ, \
            "the daemon under test is not pointed at the private engine"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    engine = PrivateDockerd()
    daemon = Daemon(tmp_path_factory.mktemp("schemathesis"))
    try:
        engine.start()
        for image in (REDIS_IMAGE, POSTGRES_IMAGE, HELPER_IMAGE):
            engine.load_image(image)
        suffix = secrets.token_hex(3)
        redis, postgres = f"hf-st-redis-{suffix}", f"hf-st-pg-{suffix}"
        volume = f"hf-st-raw-{suffix}"
        client = engine.client()
        try:
            for name in (volume, f"{redis}-data", f"{postgres}-data"):
                client.volumes.create(name=name, labels={TEST_LABEL: "1"})
            client.containers.run(REDIS_IMAGE, ["redis-server", "--appendonly", "yes"],
                                  name=redis, detach=True, network_mode="none",
                                  labels={TEST_LABEL: "1", "holdfast.enable": "true"},
                                  volumes={f"{redis}-data": {"bind": "/data", "mode": "rw"}})
            wait_for_postgres(client.containers.run(
                POSTGRES_IMAGE, name=postgres, detach=True, network_mode="none",
                environment=dict(DEFAULT_POSTGRES_ENV), labels=dict(DEFAULT_POSTGRES_LABELS),
                volumes={f"{postgres}-data": {"bind": PGDATA, "mode": "rw"}}))
        finally:
            client.close()
        _assert_private(engine, {redis, postgres})
        daemon.start({"DOCKER_HOST": engine.host, "HOLDFAST_COPY_REAP_INTERVAL": "5"})
        _assert_private(engine, {redis, postgres}, daemon)
        daemon.wait_ready()
        daemon.wait_for(lambda: {redis, postgres} <= daemon.instance_names(), 30,
                        "discovery of the redis and the postgres")
        made = World(engine=engine, daemon=daemon, redis=redis, postgres=postgres,
                     volume=volume)
        _seed_state(made)
        yield made
        elapsed = time.monotonic() - made.started
        print(f"\nschemathesis: {made.requests} requests in {elapsed:.0f} s "
              f"(examples {EXAMPLES}, stateful {STATEFUL_EXAMPLES}, seed {SEED}); "
              f"stateful steps reached {len(made.steps)} operations: {sorted(made.steps)}",
              file=sys.__stderr__)
        assert daemon.alive(), daemon.log_tail()
    finally:
        daemon.close()
        engine.close()


def _seed_state(world: World) -> None:
    """A complete snapshot of each instance (tagged, pinned), a live copy of each
    with a TTL, and a token, so the listings the links start from have something
    in them."""
    daemon = world.daemon
    for instance in (world.redis, world.postgres):
        backup = daemon.post(f"/v1/instances/{instance}/backups", params={"wait": "true"},
                             json={"tags": {"release": "v1"}, "pin": True})
        assert backup.status_code == 200 and backup.json()["status"] == "succeeded", \
            backup.text
        restore = daemon.post(f"/v1/instances/{instance}/restore",
                              params={"wait": "true", "timeout": 120},
                              json={"name": f"{instance}-copy", "ttl": "2h"})
        assert restore.status_code == 200 and restore.json()["status"] == "succeeded", \
            restore.text
    token = daemon.post("/v1/tokens", json={"name": "st-seed", "scopes": ["read"]})
    assert token.status_code == 201, token.text


def _config() -> schemathesis.Config:
    generation = {"max-examples": EXAMPLES, "deterministic": True, "mode": "all",
                  "database": "none"}
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "headers": {"Authorization": f"Bearer {TEST_TOKEN}"},
        "request-timeout": REQUEST_TIMEOUT,
        "max-stream-events": 5,
        "generation": generation,
        "phases": {"stateful": {"max-steps": STEPS,
                                "generation": {**generation, "max-examples": STATEFUL_EXAMPLES}}},
    })


@pytest.fixture(scope="module")
def st_schema(world: World) -> Any:
    _assert_private(world.engine, daemon=world.daemon)
    return schemathesis.openapi.from_url(f"{world.daemon.url}/openapi.json", config=_config(),
                                         timeout=30)


schema = schemathesis.pytest.from_fixture("st_schema")


@schema.parametrize()
def test_every_operation_keeps_its_contract(case: Case[Any], world: World) -> None:
    world.requests += 1
    case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT)


def test_stateful_runs_along_the_links_keep_the_contract(world: World) -> None:
    # The engine the schemathesis CLI runs, stateful phase only: it records a
    # failing step and goes on, where Hypothesis' own state machine would replay
    # the steps against a server whose state has moved on (and call it flaky).
    config = _config()
    config.projects.default.phases.update(phases=["stateful"])
    config.projects.default.checks.update(included_check_names=[c.__name__ for c in CHECKS])
    stateful = schemathesis.openapi.from_url(f"{world.daemon.url}/openapi.json", config=config,
                                             timeout=30)
    _assert_private(world.engine, daemon=world.daemon)
    failures: list[str] = []
    scenarios = 0
    for event in schemathesis.engine.from_schema(stateful).execute():
        if isinstance(event, events.ScenarioFinished) and event.phase == PhaseName.STATEFUL_TESTING:
            scenarios += 1
            world.requests += len(event.recorder.interactions)
            world.steps.update(f"{c.value.method} {c.value.path}"
                               for c in event.recorder.cases.values())
            failures += [f"{node.failure_info.failure.title}: {node.failure_info.code_sample}"
                         for nodes in event.recorder.checks.values() for node in nodes
                         if node.failure_info is not None]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {event.value!r}" if isinstance(event, events.NonFatalError)
                            else f"fatal: {event.exception!r}")
    assert scenarios > 0, "the stateful phase ran no scenario: no links were followed"
    assert not failures, "\n\n".join(dict.fromkeys(failures))
