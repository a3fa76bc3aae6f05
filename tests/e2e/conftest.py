"""A real ``holdfast serve`` process for end-to-end tests, on a free port, and a
Postgres of the test's own that such a daemon alone manages."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from tests.harness.daemon import Daemon
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    PGDATA,
    TEST_LABEL,
    create_test_network,
    psql,
    wait_for_postgres,
)
from tests.harness.waiting import wait_for

__all__ = ["Daemon", "ScopedPostgres", "daemon_factory", "remove_prefixed", "scoped_postgres"]


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


@dataclass
class ScopedPostgres:
    """A labelled Postgres of the test's own and a daemon that manages only it."""

    daemon: Daemon
    database: Container
    prefix: str
    """Unique to the test: every name it makes starts with it."""
    password: str


@contextlib.contextmanager
def scoped_postgres(tmp_path: Path, docker_client: docker.DockerClient, image: str,
                    kind: str, rows: int,
                    daemon_env: Mapping[str, str] | None = None) -> Iterator[ScopedPostgres]:
    """``PREFIX-prod-db`` with ``rows`` orders, on a bridge network of its own with
    IP masquerading off (a copy's published port needs a network that is not
    ``--internal``), and a started daemon scoped to it (``HOLDFAST_SCOPE``) that has
    discovered it. Everything named with the prefix is removed at the end."""
    prefix = f"{kind}{uuid.uuid4().hex[:6]}"
    scope = f"{prefix}-scope"
    password = f"{kind}-pw-{secrets.token_hex(8)}"
    network = create_test_network(docker_client, f"{prefix}-lan", internal=False)
    daemon = Daemon(tmp_path / "daemon", {"HOLDFAST_SCOPE": scope,
                                          "HOLDFAST_READY_TIMEOUT": "120",
                                          **(daemon_env or {})})
    try:
        docker_client.volumes.create(f"{prefix}-prod-db-data", labels={TEST_LABEL: "1"})
        database = docker_client.containers.run(
            image, name=f"{prefix}-prod-db", detach=True, network=network.name,
            environment={**DEFAULT_POSTGRES_ENV, "POSTGRES_PASSWORD": password},
            labels={"holdfast.enable": "true", "holdfast.scope": scope, TEST_LABEL: "1"},
            volumes={f"{prefix}-prod-db-data": {"bind": PGDATA, "mode": "rw"}})
        wait_for_postgres(database)
        psql(database, "CREATE TABLE orders AS SELECT g AS id, md5(g::text) AS ref "
                       f"FROM generate_series(1, {rows}) g")
        daemon.start()
        daemon.wait_ready(timeout=60)
        wait_for(lambda: database.name in daemon.instance_names(), 30,
                 "the daemon discovering the database")
        yield ScopedPostgres(daemon=daemon, database=database, prefix=prefix,
                             password=password)
    finally:
        daemon.close()
        remove_prefixed(docker_client, prefix)
        with contextlib.suppress(docker.errors.NotFound):
            network.remove()


def remove_prefixed(client: docker.DockerClient, prefix: str) -> None:
    """Whatever a test made, found by its unique prefix only."""
    for container in client.containers.list(all=True, filters={"name": prefix}):
        if container.name.startswith(prefix):
            container.remove(force=True, v=True)
    for volume in client.volumes.list(filters={"name": prefix}):
        if volume.name.startswith(prefix):
            with contextlib.suppress(docker.errors.APIError):
                volume.remove(force=True)
