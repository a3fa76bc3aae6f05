"""A client generated from the live OpenAPI document runs the deploy-checkpoint flow.

``openapi-python-client`` generates a package from ``/openapi.json`` of a real
``holdfast serve`` into the test's tmp_path (its formatter hook disabled), and
the test imports it and goes through the flow with its typed functions only:
a token with ``backup`` + ``read`` made with the bootstrap admin token; a backup
with ``wait``, a tag, a pin and an ``Idempotency-Key``, whose retry is the same
job; a restore refused to that token (403, a typed problem); the snapshots
listed by tag; a ``restore`` token restoring by tag with a TTL and a free
published port; and the result's published URL connects with psycopg.

The daemon is scoped to this test's own container (``HOLDFAST_SCOPE``) and the
database sits on a bridge network of the test's own with IP masquerading off,
since a published port needs a network that is not ``--internal``; everything
the test made is found by its unique prefix and removed at the end.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import docker
import httpx
import psycopg
import pytest
from docker.models.containers import Container

from tests.e2e.conftest import scoped_postgres
from tests.harness.api import TEST_TOKEN
from tests.harness.daemon import REPO_ROOT, Daemon
from tests.harness.waiting import wait_for

pytestmark = pytest.mark.docker

ROWS = 500
GENERATOR_CONFIG = "post_hooks: []\n"
"""The generator runs ruff on its output by default; the test needs no formatting."""


GENERATOR = "openapi-python-client>=0.29,<0.30"
GENERATOR_DIR = REPO_ROOT / ".codegen"
"""Where the generator is installed, apart from the test environment: it caps
typer and httpx below the versions Holdfast itself runs on, so installing it
there would test the CLI on older libraries than a user gets."""


@pytest.fixture(scope="session")
def generator_path() -> Path:
    """A ``pip install --target`` of the generator (made once, then reused), to
    put first on the generator's ``PYTHONPATH`` only."""
    if not (GENERATOR_DIR / "openapi_python_client").is_dir():
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             "--target", str(GENERATOR_DIR), GENERATOR],
            capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, (f"could not install {GENERATOR} into {GENERATOR_DIR}:\n"
                                      f"{proc.stdout}{proc.stderr}")
    return GENERATOR_DIR


def generate_client(document: dict[str, Any], where: Path, package: str,
                    generator: Path) -> ModuleType:
    """The package ``openapi-python-client`` makes of ``document``, imported."""
    where.mkdir(parents=True, exist_ok=True)
    spec = where / "openapi.json"
    spec.write_text(json.dumps(document))
    config = where / "generator.yaml"
    config.write_text(GENERATOR_CONFIG + f"package_name_override: {package}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(spec),
         "--config", str(config), "--meta", "none", "--output-path", str(where / package)],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(generator)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Warning" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module(package)
    finally:
        sys.path.remove(str(where))


@dataclass
class World:
    daemon: Daemon
    database: Container
    prefix: str
    password: str
    client: ModuleType

    def module(self, name: str) -> Any:
        return importlib.import_module(f"{self.client.__name__}.{name}")


@pytest.fixture
def world(tmp_path: Path, generator_path: Path, docker_client: docker.DockerClient,
          postgres_image: str) -> Iterator[World]:
    # The shortest TTL is a minute; a sweep every 2 s sees it pass soon after.
    with scoped_postgres(tmp_path, docker_client, postgres_image, "gc", ROWS,
                         {"HOLDFAST_COPY_REAP_INTERVAL": "2"}) as made:
        package = f"holdfast_client_{made.prefix}"
        document = made.daemon.get("/openapi.json").json()
        try:
            client = generate_client(document, tmp_path / "generated", package,
                                     generator_path)
            yield World(daemon=made.daemon, database=made.database, prefix=made.prefix,
                        password=made.password, client=client)
        finally:
            for name in [name for name in sys.modules if name.startswith(package)]:
                del sys.modules[name]


def test_the_generated_client_runs_the_checkpoint_flow(world: World,
                                                       docker_client: docker.DockerClient,
                                                       ) -> None:
    api = world.client
    models = world.module("models")
    create_token = world.module("api.tokens.create_token")
    start_backup = world.module("api.backups.start_backup")
    list_snapshots = world.module("api.snapshots.list_snapshots")
    restore_latest = world.module("api.restores.restore_latest")
    instance = world.database.name

    def authenticated(token: str) -> Any:
        return api.AuthenticatedClient(base_url=world.daemon.url, token=token,
                                       timeout=httpx.Timeout(400.0))

    admin = authenticated(TEST_TOKEN)
    scopes = models.TokenBodyScopesItem
    ci_token = create_token.sync(client=admin, body=models.TokenBody(
        name="ci", scopes=[scopes.BACKUP, scopes.READ], expires="1d"))
    assert isinstance(ci_token, models.TokenCreated), ci_token
    assert sorted(str(s) for s in ci_token.scopes) == ["backup", "read"]
    ci = authenticated(ci_token.token)

    body = models.BackupBody(tags=models.BackupBodyTags.from_dict({"release": "v1.4.2"}),
                             pin=True)
    key = f"deploy-{world.prefix}"
    first = start_backup.sync_detailed(client=ci, name=instance, body=body, wait=True,
                                       timeout=300, idempotency_key=key)
    assert first.status_code == 200, first.content
    job = first.parsed
    assert isinstance(job, models.Job) and str(job.status) == "succeeded", first.content
    assert isinstance(job.result, models.BackupResult), job.result
    assert job.result.pinned and job.result.tags["release"] == "v1.4.2"
    retry = start_backup.sync_detailed(client=ci, name=instance, body=body, wait=True,
                                       timeout=300, idempotency_key=key)
    assert retry.status_code == 200 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.parsed.id == job.id and retry.parsed.snapshot_id == job.snapshot_id

    refused = restore_latest.sync_detailed(client=ci, name=instance, body=(
        models.InstanceRestoreBody(name=f"{world.prefix}-ci-db", tag="release:v1.4.2")))
    assert refused.status_code == 403, refused.content
    assert isinstance(refused.parsed, models.Problem)
    assert refused.parsed.kind == "Forbidden" and "restore" in refused.parsed.detail

    [listed] = list_snapshots.sync(client=ci, instance=instance, tag=["release:v1.4.2"])
    assert isinstance(listed, models.Snapshot) and listed.id == job.snapshot_id
    assert listed.pinned and str(listed.status) == "complete"

    restorer = create_token.sync(client=admin, body=models.TokenBody(
        name="restorer", scopes=[scopes.RESTORE]))
    restored = restore_latest.sync_detailed(
        client=authenticated(restorer.token), name=instance,
        body=models.InstanceRestoreBody(name=f"{world.prefix}-ci-db", tag="release:v1.4.2",
                                        ttl="1m", publish=0),
        wait=True, timeout=300, idempotency_key=f"copy-{world.prefix}")
    assert restored.status_code == 200, restored.content
    copy = restored.parsed
    assert str(copy.status) == "succeeded" and copy.snapshot_id == job.snapshot_id, copy
    result = copy.result
    assert isinstance(result, models.RestoreResult), result
    assert result.container == f"{world.prefix}-ci-db" and result.expires_at
    url = result.urls.published
    assert isinstance(url, str) and "{POSTGRES_PASSWORD}" in url, url
    assert world.password not in restored.content.decode()
    with psycopg.connect(url.replace("{POSTGRES_PASSWORD}", world.password),
                         connect_timeout=10) as connection:
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (ROWS,)

    # The TTL passes: the daemon removes the copy and its volumes, and nothing else.
    def copy_gone() -> bool:
        return not docker_client.containers.list(all=True, filters={"id": result.container_id})
    wait_for(copy_gone, 150, "the daemon removing the expired copy")
    volumes = [v.name for v in docker_client.volumes.list()]
    assert not set(result.volumes) & set(volumes), result.volumes
    assert f"{world.prefix}-prod-db-data" in volumes
    world.database.reload()
    assert world.database.status == "running"
    expired = wait_for(lambda: world.daemon.get(f"/v1/jobs/{copy.id}").json()["result"].get(
        "expired"), 30, "the removal recorded on the restore job")
    assert expired["container_removed"] and sorted(expired["volumes_removed"]) == sorted(
        result.volumes) and not expired["error"], expired
