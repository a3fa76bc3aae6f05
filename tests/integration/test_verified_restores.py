"""Verified restores on the real engine, one small source of each engine
(postgres, mariadb, redis, volume), backed up with the ``holdfast`` CLI and
verified through the use cases: a good snapshot passes with the known content
as its figures; a data object damaged on disk (a flipped byte, a truncation)
fails saying corrupt; figures edited in the manifest fail naming the figure;
a cancelled verification leaves nothing and records nothing; a SIGKILLed one
leaves objects that :func:`remove_verification_leftovers` removes, while a
live process's stay; an encrypted snapshot verifies with the identity and is
refused without one. After every run, the engine is asked for any container,
volume or network of the snapshot's verification (by name and by label).

Everything runs in a scope of its own (``holdfast.scope``), so the leftovers
removal never sees another test's objects on the shared engine; sources carry
``holdfast.test=1`` and run on the internal test network.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from backup.encryption import new_identity
from backup.errors import Cancelled, IdentityRequired
from backup.phases import Phase
from backup.pipeline import manifest_key
from restore.verification import NAME_PREFIX, VERIFICATION_LABEL, marks
from service.adapters.docker import DockerAdapter
from service.bootstrap import Services, bootstrap
from service.runs import current_runner
from service.settings import Settings
from service.usecases import verification
from tests.contract.test_mariadb_engine import (
    MARIADB_IMAGE,
    MARIADB_STYLE_ENV,
    ROOT_PASSWORD,
    MariaDBContainers,
    sql,
)
from tests.contract.test_redis_engine import REDIS_IMAGE, redis_cli
from tests.harness.docker_fixtures import (
    DEFAULT_POSTGRES_ENV,
    HELPER_IMAGE,
    PGDATA,
    POSTGRES_IMAGE,
    TEST_LABEL,
    psql,
    require_image,
    wait_for_postgres,
)
from tests.integration.conftest import KNOWN_SECRETS, REPO_ROOT, Holdfast

pytestmark = pytest.mark.docker

ENGINES = ("postgres", "mariadb", "redis", "volume")
VOLUME_FILES = {"a.txt": 1000, "sub/b.bin": 4096, "sub/empty": 0}
KILL_TIMEOUT_S = 120.0


@dataclass
class ScopedHoldfast(Holdfast):
    """The CLI, managing only the containers labelled with this module's scope."""

    scope: str = ""

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return super().env({"HOLDFAST_SCOPE": self.scope, "HOLDFAST_READY_TIMEOUT": "90",
                            **(extra or {})})


@dataclass(frozen=True)
class Case:
    """One engine's source and what its figures must say."""

    engine: str
    instance: str
    figures: dict[str, int]
    """The counts every snapshot of the source records (and a copy restores)."""
    edited: str
    """A figure to edit in the manifest, and the line the failure then says."""
    edited_line: str
    unstated: tuple[str, ...] = ()
    """Figures recorded whose value the test does not know in advance (a tree's digest)."""


@dataclass
class World:
    """What the module shares: the scope, the CLI, Services over the real engine."""

    client: docker.DockerClient
    network: str
    """The shared internal test network the sources run on."""
    scope: str
    holdfast: ScopedHoldfast
    services: Services
    labels: dict[str, str]
    cases: dict[str, Case] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    """Every source container started (its volume is ``<name>-data``), removed at teardown."""
    snapshots: list[str] = field(default_factory=list)
    """Every snapshot verified here: whatever a failing test left of one goes at teardown."""

    def backup(self, case: Case, env: Mapping[str, str] | None = None) -> str:
        snapshot = self.holdfast.json("backup", case.instance, env=env)
        assert snapshot["status"] == "complete", snapshot
        self.snapshots.append(str(snapshot["id"]))
        return str(snapshot["id"])

    def object_path(self, snapshot_id: str) -> Path:
        found = self.services.catalog.get_snapshot(snapshot_id)
        assert found is not None
        return self.holdfast.snapshots_dir / found.data_key

    def manifest_path(self, case: Case, snapshot_id: str) -> Path:
        return self.holdfast.snapshots_dir / manifest_key(case.instance, snapshot_id)


def made_for(client: docker.DockerClient, snapshot_id: str) -> list[str]:
    """Every container, volume and network on the engine that a verification of
    ``snapshot_id`` made, found by name prefix and by label alike."""
    prefix = f"{NAME_PREFIX}{snapshot_id}-"
    label = f"{VERIFICATION_LABEL}={snapshot_id}"
    listings: dict[str, Callable[[dict[str, str]], list[Any]]] = {
        "container": lambda filters: client.containers.list(all=True, filters=filters),
        "volume": lambda filters: client.volumes.list(filters=filters),
        "network": lambda filters: client.networks.list(filters=filters),
    }
    found = set()
    for kind, listing in listings.items():
        # The engine's name filter matches anywhere in the name: keep the prefixed.
        named = {o.name for o in listing({"name": prefix}) if o.name.startswith(prefix)}
        found |= {f"{kind} {name}" for name in named | {o.name for o in listing({"label": label})}}
    return sorted(found)


def remove_made_for(client: docker.DockerClient, snapshot_id: str) -> None:
    """Force-remove what :func:`made_for` finds (a failed test's leftovers)."""
    for entry in made_for(client, snapshot_id):
        kind, name = entry.split(" ", 1)
        with contextlib.suppress(NotFound):
            if kind == "container":
                client.containers.get(name).remove(force=True, v=True)
            elif kind == "volume":
                client.volumes.get(name).remove(force=True)
    for entry in made_for(client, snapshot_id):
        kind, name = entry.split(" ", 1)
        with contextlib.suppress(NotFound):
            if kind == "network":
                client.networks.get(name).remove()


def _verify(world: World, snapshot_id: str, **options: Any) -> dict[str, Any]:
    request = verification.prepare_verified_restore(world.services, snapshot_id)
    verified = verification.execute_verified_restore(world.services, request, **options)
    assert verified.verification is not None and verified.verified_at is not None
    stored = world.services.catalog.get_snapshot(snapshot_id)
    assert stored is not None and stored.verification == verified.verification
    for secret in KNOWN_SECRETS:
        assert secret not in json.dumps(verified.verification)
    return dict(verified.verification)


# --- the sources -------------------------------------------------------------------


def _start_postgres(world: World, name: str) -> Case:
    password = f"hf-vr-pw-{secrets.token_hex(8)}"
    KNOWN_SECRETS.add(password)
    world.client.volumes.create(name=f"{name}-data", labels={TEST_LABEL: "1"})
    container = world.client.containers.run(
        require_image(world.client, POSTGRES_IMAGE), name=name, detach=True,
        environment={**DEFAULT_POSTGRES_ENV, "POSTGRES_DB": "shop", "POSTGRES_PASSWORD": password},
        labels=world.labels, network=world.network,
        volumes={f"{name}-data": {"bind": PGDATA, "mode": "rw"}})
    wait_for_postgres(container)
    psql(container, "CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 1234) g;"
                    "CREATE TABLE u AS SELECT g AS id, md5(g::text) AS v "
                    "FROM generate_series(1, 56) g")
    return Case("postgres", name, figures={
        "database:postgres": 1, "database:shop": 1, "role:app": 1,
        "shop.public.t": 1234, "shop.public.u": 56},
        edited="shop.public.t", edited_line="table shop.public.t: 1235 rows recorded, "
                                            "1234 restored")


def _start_mariadb(world: World, name: str) -> Case:
    world.client.volumes.create(name=f"{name}-data", labels={TEST_LABEL: "1"})
    container = world.client.containers.run(
        require_image(world.client, MARIADB_IMAGE), name=name, detach=True,
        environment=dict(MARIADB_STYLE_ENV), labels=world.labels, network=world.network,
        volumes={f"{name}-data": {"bind": "/var/lib/mysql", "mode": "rw"}})
    adapter = DockerAdapter()
    try:
        MariaDBContainers(world.client, world.network, MARIADB_IMAGE, adapter).wait(container)
        sql(adapter, container.id, "CREATE TABLE shop.t (id INT PRIMARY KEY);"
                                   "INSERT INTO shop.t SELECT seq FROM seq_1_to_1234;"
                                   "CREATE TABLE shop.u (id INT PRIMARY KEY);"
                                   "INSERT INTO shop.u SELECT seq FROM seq_1_to_56;",
            database="shop")
    finally:
        adapter.close()
    KNOWN_SECRETS.add(ROOT_PASSWORD)
    return Case("mariadb", name, figures={"shop.t": 1234, "shop.u": 56}, edited="shop.t",
                edited_line="table shop.t: 1235 rows recorded, 1234 restored")


def _start_redis(world: World, name: str) -> Case:
    password = f"hf-vr-redis-{secrets.token_hex(8)}"
    KNOWN_SECRETS.add(password)
    world.client.volumes.create(name=f"{name}-data", labels={TEST_LABEL: "1"})
    container = world.client.containers.run(
        require_image(world.client, REDIS_IMAGE),
        ["redis-server", "--appendonly", "yes", "--requirepass", password],
        name=name, detach=True, labels=world.labels, network=world.network,
        volumes={f"{name}-data": {"bind": "/data", "mode": "rw"}})
    _until(lambda: container.exec_run(["redis-cli", "PING"], environment={
        "REDISCLI_AUTH": password}).output.strip() == b"PONG", container)
    fill = "for i = 1, tonumber(ARGV[1]) do redis.call('SET', 'key:' .. i, i) end"
    redis_cli(container, password, "-n", "0", "EVAL", fill, "0", "300")
    redis_cli(container, password, "-n", "3", "EVAL", fill, "0", "7")
    return Case("redis", name, figures={"db0": 300, "db3": 7}, edited="db0",
                edited_line="database db0: 301 keys recorded, 300 restored")


def _start_volume_app(world: World, name: str) -> Case:
    world.client.volumes.create(name=f"{name}-data", labels={TEST_LABEL: "1"})
    container = world.client.containers.run(
        require_image(world.client, HELPER_IMAGE), ["sleep", "infinity"], name=name,
        detach=True, init=True, network=world.network,
        labels={**world.labels, "holdfast.engine": "volume"},
        volumes={f"{name}-data": {"bind": "/data", "mode": "rw"}})
    script = " && ".join(f"mkdir -p $(dirname /data/{path}) && head -c {size} /dev/urandom "
                         f"> /data/{path}" for path, size in VOLUME_FILES.items())
    result = container.exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output
    return Case("volume", name, figures={"files": len(VOLUME_FILES),
                                         "bytes": sum(VOLUME_FILES.values())},
                edited="files", edited_line=f"files: {len(VOLUME_FILES) + 1} recorded, "
                                            f"{len(VOLUME_FILES)} restored",
                unstated=("entries", "tree_sha256"))


STARTERS: dict[str, Callable[[World, str], Case]] = {
    "postgres": _start_postgres, "mariadb": _start_mariadb, "redis": _start_redis,
    "volume": _start_volume_app}


def _until(ready: Callable[[], bool], container: Container, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        container.reload()
        assert container.status == "running", container.logs(tail=20)
        assert time.monotonic() < deadline, container.logs(tail=20)
        time.sleep(0.2)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient,
          test_network: str) -> Iterator[World]:
    scope = f"hf-vr-{secrets.token_hex(4)}"
    holdfast = ScopedHoldfast(data_dir=tmp_path_factory.mktemp("verified") / "data", scope=scope)
    services = bootstrap(Settings.load(holdfast.env()))
    world = World(client=docker_client, network=test_network, scope=scope, holdfast=holdfast,
                  services=services,
                  labels={TEST_LABEL: "1", "holdfast.enable": "true", "holdfast.scope": scope})
    try:
        yield world
    finally:
        services.close()
        for snapshot_id in world.snapshots:
            remove_made_for(docker_client, snapshot_id)
        for name in world.sources:
            with contextlib.suppress(NotFound):
                docker_client.containers.get(name).remove(force=True, v=True)
            with contextlib.suppress(NotFound):
                docker_client.volumes.get(f"{name}-data").remove(force=True)


def source(world: World, engine: str) -> Case:
    """The module's one source of ``engine``, started (and seeded) on first use."""
    if engine not in world.cases:
        name = f"hf-vr-{engine}-{secrets.token_hex(3)}"
        world.sources.append(name)  # removed at teardown even if the start fails half-way
        world.cases[engine] = STARTERS[engine](world, name)
    return world.cases[engine]


# --- the tests ---------------------------------------------------------------------


def _copies_seen_at_verifying(world: World, snapshot_id: str,
                              seen: list[dict[str, Any]]) -> Callable[[Phase], None]:
    """A phase callback noting, as measuring begins, the verification's
    containers and whether each network they are on is internal (``_internal``)."""
    def look(phase: Phase) -> None:
        if phase != Phase.VERIFYING:
            return
        for container in world.client.containers.list(
                all=True, filters={"label": f"{VERIFICATION_LABEL}={snapshot_id}"}):
            seen.append({**container.attrs, "_internal": {
                name: world.client.networks.get(name).attrs["Internal"]
                for name in container.attrs["NetworkSettings"]["Networks"]}})
    return look


@pytest.mark.parametrize("engine", ENGINES)
def test_a_good_snapshot_passes_with_the_known_figures_on_an_internal_network(
        world: World, engine: str) -> None:
    case = source(world, engine)
    snapshot_id = world.backup(case)
    seen: list[dict[str, Any]] = []
    result = _verify(world, snapshot_id, job_id="job-real",
                     phase=_copies_seen_at_verifying(world, snapshot_id, seen))
    assert result["result"] == "passed" and result["reason"] is None, result
    assert result["differences"] == [] and result["exact"] is True
    assert result["job_id"] == "job-real"
    figures = result["figures"]
    assert {name: value for name, value in figures.items()
            if name not in case.unstated} == case.figures
    assert set(case.unstated) <= set(figures)
    recorded = json.loads(world.manifest_path(case, snapshot_id).read_text())["figures"]
    assert recorded["values"] == figures and recorded["exact"] is True

    [copy] = seen
    networks = list(copy["NetworkSettings"]["Networks"])
    assert len(networks) == 1 and networks[0].startswith(f"{NAME_PREFIX}{snapshot_id}-")
    assert copy["_internal"] == {networks[0]: True}
    assert not copy["HostConfig"].get("PortBindings")
    assert not any((copy["NetworkSettings"].get("Ports") or {}).values())
    assert copy["Config"]["Labels"].items() >= marks(
        snapshot_id, current_runner(), world.scope).items()
    assert "holdfast.enable" not in copy["Config"]["Labels"]  # never itself backed up
    assert made_for(world.client, snapshot_id) == []


@pytest.mark.parametrize("damage", ["flipped", "truncated"])
@pytest.mark.parametrize("engine", ENGINES)
def test_a_damaged_object_fails_saying_it_is_corrupt(
        world: World, engine: str, damage: str) -> None:
    case = source(world, engine)
    snapshot_id = world.backup(case)
    path = world.object_path(snapshot_id)
    data = bytearray(path.read_bytes())
    stored = len(data)
    if damage == "flipped":
        data[stored // 2] ^= 0x01
        said = "sha256 "
    else:
        del data[stored // 2:]
        said = f"snapshot data is {len(data)} bytes, its manifest says {stored}"
    path.write_bytes(bytes(data))

    result = _verify(world, snapshot_id)
    assert result["result"] == "failed", result
    reason = result["reason"]
    assert reason.startswith(f"the restore failed: snapshot {snapshot_id} is corrupt in "
                             "target local: "), reason
    assert said in reason, reason
    assert result["figures"] == {} and result["differences"] == []
    assert made_for(world.client, snapshot_id) == []


@pytest.mark.parametrize("engine", ENGINES)
def test_recorded_figures_that_disagree_fail_naming_the_figure(
        world: World, engine: str) -> None:
    case = source(world, engine)
    snapshot_id = world.backup(case)
    path = world.manifest_path(case, snapshot_id)
    manifest = json.loads(path.read_text())
    manifest["figures"]["values"][case.edited] += 1
    path.write_text(json.dumps(manifest))

    result = _verify(world, snapshot_id)
    assert result["result"] == "failed", result
    assert result["reason"] == case.edited_line
    truth = case.figures[case.edited]
    assert result["differences"] == [{"name": case.edited, "recorded": truth + 1,
                                      "measured": truth}]
    assert result["figures"][case.edited] == truth
    assert made_for(world.client, snapshot_id) == []


def test_a_verification_cancelled_mid_load_leaves_nothing_and_records_nothing(
        world: World) -> None:
    case = source(world, "postgres")
    snapshot_id = world.backup(case)
    request = verification.prepare_verified_restore(world.services, snapshot_id)
    stop = threading.Event()
    existed: list[str] = []

    def cancel_once_loading(phase: Phase) -> None:
        if phase == Phase.LOADING:
            existed.extend(made_for(world.client, snapshot_id))
            stop.set()

    with pytest.raises(Cancelled):
        verification.execute_verified_restore(world.services, request, cancelled=stop.is_set,
                                              phase=cancel_once_loading)
    kinds = sorted({entry.split(" ")[0] for entry in existed})
    assert kinds == ["container", "network", "volume"]  # it was cancelled with all made
    assert made_for(world.client, snapshot_id) == []
    found = world.services.catalog.get_snapshot(snapshot_id)
    assert found is not None and found.verification is None and found.verified_at is None
    assert world.services.verify_gate.holder(case.instance) is None


# A verification in a process of its own that stalls once the load has begun
# (the server in the copy is reading the dump) and tells the test so.
STALLING_VERIFICATION = """
import os, sys, time
from service.bootstrap import bootstrap
from service.settings import Settings
from service.usecases import verification

services = bootstrap(Settings.load(os.environ))
request = verification.prepare_verified_restore(services, sys.argv[1])

def stall(done, seconds):
    print("loading", flush=True)
    time.sleep(600)

verification.execute_verified_restore(services, request, progress=stall)
"""


def _first_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The process's first line of output, or "" if none came within ``timeout``."""
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


def _plant_live_verification(world: World, snapshot_id: str) -> list[str]:
    """A container, volume and network as a verification by this (live) process makes them."""
    name = f"{NAME_PREFIX}{snapshot_id}-live01"
    labels = {**marks(snapshot_id, current_runner(), world.scope), TEST_LABEL: "1"}
    world.client.networks.create(name, driver="bridge", internal=True, labels=labels)
    world.client.volumes.create(name=f"{name}-data", labels=labels)
    world.client.containers.run(
        require_image(world.client, HELPER_IMAGE), ["sleep", "infinity"], name=name,
        detach=True, init=True, labels=labels, network=name,
        volumes={f"{name}-data": {"bind": "/data", "mode": "rw"}})
    return sorted([f"container {name}", f"network {name}", f"volume {name}-data"])


def test_a_sigkilled_verification_is_cleaned_up_and_a_live_ones_objects_kept(
        world: World) -> None:
    case = source(world, "postgres")
    snapshot_id = world.backup(case)
    process = subprocess.Popen([sys.executable, "-c", STALLING_VERIFICATION, snapshot_id],
                               env=world.holdfast.env(), cwd=REPO_ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = _first_line(process, KILL_TIMEOUT_S)
        if line != "loading\n":
            process.kill()
            pytest.fail(f"the verification never reached its load ({line!r}):\n"
                        f"{process.communicate(timeout=30)[1]}")
        killed = made_for(world.client, snapshot_id)
        assert sorted({entry.split(" ")[0] for entry in killed}) == [
            "container", "network", "volume"], killed
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)  # reaped: its pid no longer names a live process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    live = _plant_live_verification(world, snapshot_id)

    removed = verification.remove_verification_leftovers(world.services)
    assert sorted(removed) == sorted(entry.split(" ", 1)[1] for entry in killed)
    assert made_for(world.client, snapshot_id) == live
    found = world.services.catalog.get_snapshot(snapshot_id)
    assert found is not None and found.verification is None and found.verified_at is None
    assert verification.remove_verification_leftovers(world.services) == []
    remove_made_for(world.client, snapshot_id)


def test_an_encrypted_snapshot_verifies_with_the_identity_and_is_refused_without(
        world: World, tmp_path: Path) -> None:
    case = source(world, "postgres")
    text, recipient = new_identity()
    identity = tmp_path / "ops.key"
    identity.write_text(text)
    os.chmod(identity, 0o600)
    encrypting = {"HOLDFAST_AGE_RECIPIENTS": recipient}
    snapshot_id = world.backup(case, env=encrypting)
    assert world.object_path(snapshot_id).read_bytes().startswith(b"age-encryption.org/v1\n")

    locked = bootstrap(Settings.load(world.holdfast.env(encrypting)))
    try:
        with pytest.raises(IdentityRequired):
            verification.prepare_verified_restore(locked, snapshot_id)
    finally:
        locked.close()
    assert made_for(world.client, snapshot_id) == []

    keyed = bootstrap(Settings.load(world.holdfast.env(
        {**encrypting, "HOLDFAST_IDENTITY_FILE": str(identity)})))
    try:
        request = verification.prepare_verified_restore(keyed, snapshot_id)
        result = verification.execute_verified_restore(keyed, request).verification
    finally:
        keyed.close()
    assert result is not None and result["result"] == "passed", result
    assert result["figures"] == case.figures
    assert "AGE-SECRET-KEY-" not in json.dumps(result)
    assert made_for(world.client, snapshot_id) == []
