"""Pytest fixtures that run real database containers on the local Docker engine.

Holdfast is only worth testing against a real engine and real database servers,
so these fixtures never skip: an unreachable engine or a missing test image
fails the test with the command that fixes it. Containers run on an internal
bridge network (no route off the machine), carry the ``holdfast.test=1`` label
so leftovers can be found, and are handed to a test only once the server
accepts TCP connections, which in the official postgres image (and in
``holdfast-test/postgres:15``, which copies it) happens only after
initialisation is over. Load the module with
``pytest_plugins = ["tests.harness.docker_fixtures"]`` or ``-p``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import docker
import pytest
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container

TEST_LABEL = "holdfast.test"
TEST_NETWORK = "holdfast-test-net"
POSTGRES_IMAGE = "holdfast-test/postgres:15"
# Holdfast's helper containers (volume archives, clones) need sh and GNU tar;
# the tests use the local base image instead of pulling debian:bookworm-slim.
HELPER_IMAGE = "holdfast-test/base:bookworm"
PGDATA = "/var/lib/postgresql/data"
READY_TIMEOUT_S = 90.0

DEFAULT_POSTGRES_ENV: dict[str, str] = {
    "POSTGRES_PASSWORD": "s3cret-test-pw",
    "POSTGRES_USER": "app",
    "POSTGRES_DB": "appdb",
}
DEFAULT_POSTGRES_LABELS: dict[str, str] = {"holdfast.enable": "true", TEST_LABEL: "1"}

ENSURE_DOCKER_HINT = "bash tests/harness/ensure_docker.sh"
BUILD_IMAGES_HINT = "bash tests/harness/build_images.sh"


class PostgresFactory(Protocol):
    """Signature of the callable that ``postgres_container_factory`` yields."""

    def __call__(
        self,
        name: str | None = None,
        env: Mapping[str, str | None] | None = None,
        labels: Mapping[str, str | None] | None = None,
        volume: bool | str = True,
        command: str | list[str] | None = None,
        wait: bool = True,
    ) -> Container: ...


def _merge(
    defaults: Mapping[str, str], overrides: Mapping[str, str | None] | None
) -> dict[str, str]:
    # A None value means "leave this key out", so a test can drop a default.
    merged = dict(defaults)
    for key, value in (overrides or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def container_env(container: Container) -> dict[str, str]:
    """The container's configured environment (image defaults included) as a dict."""
    env: dict[str, str] = {}
    for item in container.attrs.get("Config", {}).get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _exec(
    container: Container, argv: list[str], environment: Mapping[str, str] | None = None
) -> tuple[int, str, str]:
    result = container.exec_run(argv, environment=dict(environment or {}), demux=True)
    out, err = result.output if result.output is not None else (None, None)
    return (
        int(result.exit_code),
        (out or b"").decode("utf-8", "replace"),
        (err or b"").decode("utf-8", "replace"),
    )


def psql(
    container: Container,
    sql: str,
    user: str | None = None,
    db: str | None = None,
    password: str | None = None,
    host: str = "127.0.0.1",
) -> str:
    """Run ``sql`` with ``psql -At`` inside ``container`` and return its stdout.

    User, database and password default to the container's own POSTGRES_*
    environment. The password travels in the exec environment (PGPASSWORD),
    never on a command line. Raises AssertionError with psql's output when psql
    exits non-zero.
    """
    env = container_env(container)
    user = user or env.get("POSTGRES_USER") or "postgres"
    db = db or env.get("POSTGRES_DB") or user
    if password is None:
        password = env.get("POSTGRES_PASSWORD", "")
    argv = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", host, "-U", user, "-d", db]
    code, out, err = _exec(container, [*argv, "-c", sql], {"PGPASSWORD": password})
    if code != 0:
        raise AssertionError(
            f"psql in {container.name} exited {code} for {sql!r}:\n{out}{err}".rstrip()
        )
    return out


def _logs_tail(container: Container, lines: int = 40) -> str:
    try:
        return str(container.logs(tail=lines).decode("utf-8", "replace"))
    except (DockerException, NotFound):
        return "<logs unavailable>"


def wait_for_postgres(
    container: Container,
    user: str | None = None,
    db: str | None = None,
    password: str | None = None,
    timeout: float = READY_TIMEOUT_S,
) -> None:
    """Block until the server in ``container`` answers queries over TCP.

    The probe is deliberately TCP on 127.0.0.1, not the unix socket: during
    initialisation the image runs a temporary socket-only server, and a socket
    probe would report ready before the real server is up. ``pg_isready`` alone
    is not enough either (it succeeds before authentication works), so a
    ``SELECT 1`` with the password must succeed too. Fails the test, with the
    container's log tail, if the container exits or the timeout passes.
    """
    env = container_env(container)
    user = user or env.get("POSTGRES_USER") or "postgres"
    db = db or env.get("POSTGRES_DB") or user
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        container.reload()
        if container.status in ("exited", "dead"):
            code = container.attrs.get("State", {}).get("ExitCode")
            pytest.fail(
                f"container {container.name} exited ({code}) before postgres was ready:\n"
                f"{_logs_tail(container)}"
            )
        if container.status == "running":
            code, out, err = _exec(
                container, ["pg_isready", "-h", "127.0.0.1", "-U", user, "-d", db]
            )
            last = (out + err).strip()
            if code == 0:
                try:
                    if psql(container, "SELECT 1", user=user, db=db, password=password) == "1\n":
                        return
                except AssertionError as exc:
                    last = str(exc)
        if time.monotonic() > deadline:
            pytest.fail(
                f"postgres in {container.name} not ready after {timeout:.0f} s "
                f"(last probe: {last or 'none'}):\n{_logs_tail(container)}"
            )
        time.sleep(0.25)


def remove_labelled_leftovers(client: docker.DockerClient) -> tuple[int, int]:
    """Force-remove every container, then every volume, labelled ``holdfast.test=1``.

    Meant for the start of a session after an interrupted run. It does not
    know which test session created what, so never call it while another test
    session may be using the same engine. Returns (containers, volumes) removed.
    """
    selector = {"label": f"{TEST_LABEL}=1"}
    containers = 0
    for container in client.containers.list(all=True, filters=selector):
        try:
            container.remove(force=True, v=True)
            containers += 1
        except NotFound:
            pass
    volumes = 0
    for volume in client.volumes.list(filters=selector):
        try:
            volume.remove(force=True)
            volumes += 1
        except NotFound:
            pass
    return containers, volumes


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    """A client for the engine at DOCKER_HOST (or the local socket); fails if unreachable."""
    problem = ""
    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        problem = str(exc)
    # Failing outside the except block keeps docker's chained tracebacks out of
    # the report; the one line below says all that is needed.
    if problem:
        pytest.fail(
            f"cannot reach the Docker engine ({problem}). These tests need a real engine: "
            f"run `{ENSURE_DOCKER_HINT}` (as root) and try again.",
            pytrace=False,
        )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def test_network(docker_client: docker.DockerClient) -> str:
    """Name of the shared internal bridge network the test containers join.

    ``internal=True`` gives the containers no route off the machine. The
    network is reused across sessions and left in place afterwards, since other
    sessions may still have containers on it.
    """
    network = _find_network(docker_client, TEST_NETWORK)
    if network is None:
        try:
            docker_client.networks.create(
                TEST_NETWORK,
                driver="bridge",
                internal=True,
                labels={TEST_LABEL: "1"},
                check_duplicate=True,
            )
        except APIError:
            # Another session may have created it meanwhile.
            if _find_network(docker_client, TEST_NETWORK) is None:
                raise
        network = _find_network(docker_client, TEST_NETWORK)
    assert network is not None
    if not network.attrs.get("Internal"):
        pytest.fail(
            f"network {TEST_NETWORK} exists but is not internal; remove it with "
            f"`docker network rm {TEST_NETWORK}` so the tests can recreate it",
            pytrace=False,
        )
    return TEST_NETWORK


def _find_network(client: docker.DockerClient, name: str) -> Any:
    # The API's name filter matches substrings, so compare exactly.
    for network in client.networks.list(names=[name]):
        if network.name == name:
            return network
    return None


def create_test_network(client: docker.DockerClient, name: str, *, internal: bool) -> Any:
    """A labelled bridge network of the test's own, to remove when done.

    ``internal=True`` gives no route off the machine, but Docker publishes no
    port of a container on such a network. A test that needs a published port
    gets a plain bridge with IP masquerading off instead: its containers can be
    reached from this host, and their packets never leave it as this host's.
    """
    options = {} if internal else {"com.docker.network.bridge.enable_ip_masquerade": "false"}
    return client.networks.create(name, driver="bridge", internal=internal,
                                  labels={TEST_LABEL: "1"}, options=options,
                                  check_duplicate=True)


def require_image(client: docker.DockerClient, image: str) -> str:
    """``image``, after checking that the harness has built it; fails the test
    with the command that builds it otherwise."""
    try:
        client.images.get(image)
    except ImageNotFound:
        pytest.fail(f"image {image} is missing; build it with `{BUILD_IMAGES_HINT}`",
                    pytrace=False)
    return image


@pytest.fixture(scope="session")
def postgres_image(docker_client: docker.DockerClient) -> str:
    """The test image's reference, after checking that it has been built."""
    return require_image(docker_client, POSTGRES_IMAGE)


@pytest.fixture
def postgres_container_factory(
    docker_client: docker.DockerClient, test_network: str, postgres_image: str
) -> Iterator[PostgresFactory]:
    """Yields ``make(...)``, which starts a postgres container and waits for it.

    Every container gets a fresh named volume ``<name>-data`` at PGDATA;
    ``volume="NAME"`` mounts an existing volume instead (to re-create a
    container on its old data; that volume is not removed here), and
    ``volume=False`` leaves the image's anonymous volume in place. Environment
    and labels are merged over the defaults; a None value drops a default key.
    ``wait=False`` returns at once, for tests of containers that are meant to
    fail. Containers and volumes made here are force-removed at teardown.
    """
    containers: list[Container] = []
    volumes: list[str] = []

    def make(
        name: str | None = None,
        env: Mapping[str, str | None] | None = None,
        labels: Mapping[str, str | None] | None = None,
        volume: bool | str = True,
        command: str | list[str] | None = None,
        wait: bool = True,
    ) -> Container:
        cname = name or f"hf-test-pg-{secrets.token_hex(4)}"
        mounts: dict[str, dict[str, str]] = {}
        if isinstance(volume, str):
            mounts[volume] = {"bind": PGDATA, "mode": "rw"}
        elif volume:
            vname = f"{cname}-data"
            # Creating a volume that exists silently returns the old one, data
            # and all; a test asking for a fresh volume must not get that.
            try:
                docker_client.volumes.get(vname)
            except NotFound:
                pass
            else:
                pytest.fail(f"volume {vname} already exists (left over?); remove it first")
            docker_client.volumes.create(name=vname, labels={TEST_LABEL: "1"})
            volumes.append(vname)
            mounts[vname] = {"bind": PGDATA, "mode": "rw"}
        container = docker_client.containers.run(
            postgres_image,
            command=command,
            name=cname,
            detach=True,
            environment=_merge(DEFAULT_POSTGRES_ENV, env),
            labels=_merge(DEFAULT_POSTGRES_LABELS, labels),
            network=test_network,
            volumes=mounts,
        )
        containers.append(container)
        if wait:
            wait_for_postgres(container)
        container.reload()
        return container

    yield make

    errors: list[str] = []
    for container in reversed(containers):
        try:
            container.remove(force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            errors.append(f"container {container.name}: {exc}")
    for vname in volumes:
        try:
            docker_client.volumes.get(vname).remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            errors.append(f"volume {vname}: {exc}")
    if errors:
        pytest.fail("cleanup failed:\n" + "\n".join(errors), pytrace=False)


@dataclass
class DockerCleanup:
    """Containers and volumes a test caused to exist (restores, mostly); all are
    force-removed at teardown, whether or not they were ever created."""

    client: docker.DockerClient
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)

    def restored(self, name: str) -> str:
        """Track the container ``name`` and its ``name-data`` volume; returns ``name``."""
        self.containers.append(name)
        self.volumes.append(f"{name}-data")
        return name

    def remove_all(self) -> list[str]:
        errors = []
        for name in self.containers:
            try:
                self.client.containers.get(name).remove(force=True, v=True)
            except NotFound:
                pass
            except APIError as exc:
                errors.append(f"container {name}: {exc}")
        for name in self.volumes:
            try:
                self.client.volumes.get(name).remove(force=True)
            except NotFound:
                pass
            except APIError as exc:
                errors.append(f"volume {name}: {exc}")
        return errors
