"""The README's "From a deployment script" section, run as written against a real
daemon, a real engine and a real Postgres.

Both shell blocks are read out of README.md at test time: the curl examples and
``deploy-with-checkpoint.sh``. Only what a shared test engine requires is
changed, by plain textual substitution: names get a unique prefix, and the port
is the test daemon's. The daemon is scoped to this test's own container
(``HOLDFAST_SCOPE``), and the database sits on a bridge network of the test's
own with IP masquerading off, since a copy's published port needs a network that
is not ``--internal``.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import psycopg
import pytest
from docker.models.containers import Container

from tests.e2e.conftest import scoped_postgres
from tests.harness.daemon import REPO_ROOT, Daemon
from tests.harness.docker_fixtures import psql

pytestmark = pytest.mark.docker

_SECTION = re.compile(r"^## From a deployment script\n(.*?)^## ", re.S | re.M)
_SH_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.S | re.M)
ROWS = 1000


def deploy_blocks() -> tuple[str, str]:
    """The section's curl examples and its script, in README order."""
    readme = (REPO_ROOT / "README.md").read_text()
    section = _SECTION.search(readme)
    assert section, "README.md has no '## From a deployment script' section"
    blocks = _SH_BLOCK.findall(section.group(1))
    assert len(blocks) == 2, "the section should have the curl examples and the script"
    assert blocks[1].startswith("#!/bin/sh\n"), "the second block should be the script"
    return blocks[0], blocks[1]


def adapt(script: str, prefix: str, port: int) -> str:
    """The substitutions the module docstring lists, and nothing else."""
    script = re.sub(r"\b(prod-db|ci-db)\b", rf"{prefix}-\1", script)
    return script.replace("8420", str(port))


@dataclass
class World:
    daemon: Daemon
    database: Container
    prefix: str
    token: str
    password: str

    @property
    def name(self) -> str:
        return f"{self.prefix}-prod-db"

    def run(self, args: list[str], env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOLDFAST_TOKEN": self.token,
                       **(env or {})}
        return subprocess.run(args, env=environment, cwd=cwd, capture_output=True, text=True,
                              timeout=900, check=False)

    def snapshots(self, release: str) -> list[dict[str, Any]]:
        answer = self.daemon.get("/v1/snapshots", params={"instance": self.name,
                                                          "tag": f"release:{release}"})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def rows(self, client: docker.DockerClient) -> int:
        """The row count of the container called :attr:`name` now."""
        return int(psql(client.containers.get(self.name), "SELECT count(*) FROM orders"))


@pytest.fixture
def world(tmp_path: Path, docker_client: docker.DockerClient,
          postgres_image: str) -> Iterator[World]:
    with scoped_postgres(tmp_path, docker_client, postgres_image, "dp", ROWS) as made:
        token = made.daemon.post("/v1/tokens", json={
            "name": "deploy", "scopes": ["backup", "restore", "read"]})
        assert token.status_code == 201, token.text
        yield World(daemon=made.daemon, database=made.database, prefix=made.prefix,
                    token=token.json()["token"], password=made.password)


def test_the_curl_examples_run_as_written(world: World) -> None:
    examples, _ = deploy_blocks()
    script = "set -eu\n" + adapt(examples, world.prefix, world.daemon.port)
    proc = world.run(["sh", "-c", script])
    transcript = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, transcript

    checkpoints = world.snapshots("v1.4.2")
    assert len(checkpoints) == 1 and checkpoints[0]["pinned"], checkpoints
    assert "event: end" in proc.stdout, f"the events stream should end\n{transcript}"
    copy = world.daemon.get(f"/v1/copies/{world.prefix}-ci-db")
    assert copy.status_code == 200, copy.text
    assert copy.json()["expires_at"] and 0 < copy.json()["seconds_left"] <= 4 * 3600
    job = next(job for job in world.daemon.get("/v1/jobs", params={"kind": "restore"}).json()
               if job["result"] and job["result"]["container"] == f"{world.prefix}-ci-db")
    url = job["result"]["urls"]["published"]
    assert "{POSTGRES_PASSWORD}" in url, url
    with psycopg.connect(url.replace("{POSTGRES_PASSWORD}", world.password),
                         connect_timeout=10) as connection:
        assert connection.execute("SELECT count(*) FROM orders").fetchone() == (ROWS,)


def test_the_script_deploys_or_puts_the_checkpoint_back(world: World, tmp_path: Path,
                                                        docker_client: docker.DockerClient,
                                                        ) -> None:
    _, script = deploy_blocks()
    deploy = tmp_path / "deploy-with-checkpoint.sh"
    deploy.write_text(adapt(script, world.prefix, world.daemon.port))
    deploy.chmod(0o755)
    env = {"DB": world.name}

    deployed = world.run([str(deploy), "v2", "true"], env)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert "v2 deployed" in deployed.stdout
    again = world.run([str(deploy), "v2", "true"], env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(world.snapshots("v2")) == 1, "a second run should reuse the checkpoint"

    # A migration that changes the data, then fails.
    migrate = (f"docker exec -e PGPASSWORD={world.password} {world.name} psql -q -U app "
               f"-d appdb -h 127.0.0.1 -c 'DELETE FROM orders WHERE id > 10'; exit 3")
    old_id = docker_client.containers.get(world.name).id
    failed = world.run([str(deploy), "v3", "sh", "-c", migrate], env)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert f"{world.name} is back at" in failed.stderr
    assert world.rows(docker_client) == ROWS, "the checkpoint's rows should be back"
    kept = [c for c in docker_client.containers.list(all=True, filters={"name": world.name})
            if c.name.startswith(f"{world.name}-replaced-")]
    assert [(c.id, c.status) for c in kept] == [(old_id, "exited")], kept
