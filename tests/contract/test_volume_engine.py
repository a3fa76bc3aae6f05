"""The ``volume`` engine on real containers of ``holdfast-test/app:1``, a plain
application that appends to a log every second, so every archive is of a
live volume.

The source has two named volumes (``/var/lib/app``, ``/srv/uploads``), a third
nested in the first (``/var/lib/app/cache``) and a bind mount of a host
directory (``/srv/bind``), seeded with what file archivers get wrong: several
owners, setuid and sticky modes, absolute, relative and dangling symlinks, a
hardlink, a FIFO, an empty directory, a 200 MB sparse file and odd names. The
fingerprint lists every path of every mount with its type, owner, mode, size,
mtime, link target, content hash, hardlink group and whether a large file is
sparse, read by an independent helper container (plain ``find``, not the
engine). The shared contract runs with a created but not started target, as
the restore runner provides one to an engine that ``loads_before_start``.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import io
import itertools
import logging
import os
import secrets
import struct
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.errors import NotFound
from docker.models.containers import Container

from backup.engines import get_engine
from backup.engines.volume import META_MEMBER, TAR_MEMBER, VolumeEngine
from backup.errors import CorruptSnapshot, DumpFailed, ExecFailed, InvalidInput, RestoreFailed
from backup.framing import pack, unpack
from backup.pipeline import new_snapshot_id, take_snapshot
from backup.ports import ContainerSpec, ExecResult, HelperContainers
from backup.storage.local import LocalStorage
from backup.streams import compress, decompress
from backup.types import DatabaseContainer, Manifest, utcnow
from restore.planner import plan_restore
from restore.runner import restore_snapshot
from service.adapters.docker import DockerAdapter
from service.adapters.docker.adapter import HELPER_LABEL
from tests.contract.engine_contract import EngineContract
from tests.harness.docker_fixtures import TEST_LABEL, DockerCleanup, require_image

pytestmark = pytest.mark.docker

APP_IMAGE = "holdfast-test/app:1"
HELPER_IMAGE = "holdfast-test/base:bookworm"
DATA, UPLOADS, CACHE, BIND = "/var/lib/app", "/srv/uploads", "/var/lib/app/cache", "/srv/bind"
DESTINATIONS = (DATA, UPLOADS, CACHE, BIND)
LIVE_LOG = "app.log"  # appended every second by the app: compared as a prefix, not equal
SPARSE_SIZE = 200 * 1024 * 1024
READY_TIMEOUT_S = 30.0

SEED = r"""
set -eu
A=/var/lib/app U=/srv/uploads C=/var/lib/app/cache B=/srv/bind
# Shipped in the image and copied into every fresh volume: the source deletes
# it, so a restore that does not empty the target's volumes brings it back.
rm -f "$A/from-image.txt"
mkdir -p "$A/deep/er/est" "$A/empty-dir" "$U/public/shared" "$C/objects" "$B/conf"
printf 'root only\n' > "$A/deep/root-only.key"; chmod 600 "$A/deep/root-only.key"
printf 'owned by the app\n' > "$A/deep/er/app.txt"; chown 1000:1000 "$A/deep/er/app.txt"
printf 'odd owner\n' > "$A/deep/er/est/odd.bin"; chown 4242:77 "$A/deep/er/est/odd.bin"
chmod 640 "$A/deep/er/est/odd.bin"; chown 4242:77 "$A/deep/er/est"
printf '#!/bin/sh\necho tool\n' > "$A/tool"; chmod 4755 "$A/tool"
chmod 755 "$A/deep"; chmod 1777 "$U/public/shared"; chmod 700 "$A/empty-dir"
ln -s /var/lib/app/config.ini "$A/abs-link"
ln -s ../config.ini "$A/deep/rel-link"
ln -s /nonexistent/target "$A/dangling"; chown -h 4242:77 "$A/dangling"
ln "$A/deep/er/app.txt" "$A/hardlink-to-app.txt"
mkfifo "$A/pipe"; chown 1000:1000 "$A/pipe"
truncate -s 200M "$A/sparse.img"
printf 'middle' | dd of="$A/sparse.img" bs=1 seek=104857600 conv=notrunc 2>/dev/null
printf 'tail' | dd of="$A/sparse.img" bs=1 seek=209715000 conv=notrunc 2>/dev/null
head -c 1048576 /dev/urandom > "$U/random.bin"; chown 1000:1000 "$U/random.bin"
i=0; while [ $i -lt 20000 ]; do echo "line $i of some text"; i=$((i + 1)); done > "$U/text.txt"
printf 'spaces\n' > "$U/public/name with spaces.txt"
printf 'unicode\n' > "$U/public/ünïcödé.txt"
printf 'cached\n' > "$C/objects/1"; chown -R 1000:1000 "$C"
printf 'bind=1\n' > "$B/conf/settings"
chown 4242:77 "$B/conf/settings"; chmod 600 "$B/conf/settings"
touch -h -d '2001-02-03 04:05:06' "$A/deep/er/est/odd.bin" "$A/abs-link"
"""

# One line per path of each mount (tab-separated find -printf), then sha256
# of every regular file. Run in a throwaway container of the base image.
LISTING = r"""
set -eu
for d in "$@"; do
  cd "$d"
  echo "## $d"
  find . -printf '%p\t%y\t%U\t%G\t%m\t%s\t%T@\t%l\t%i\t%n\t%b\n'
  echo "#sha $d"
  find . -type f -print0 | xargs -0 -r sha256sum
done
"""


@pytest.fixture(scope="session")
def app_image(docker_client: docker.DockerClient) -> str:
    require_image(docker_client, HELPER_IMAGE)
    return require_image(docker_client, APP_IMAGE)


@pytest.fixture
def adapter() -> Iterator[DockerAdapter]:
    adapter = DockerAdapter(helper_image=HELPER_IMAGE)
    yield adapter
    adapter.close()


class Lab:
    """Makes the containers and volumes of one test and removes them after,
    including those a restore creates (registered by name)."""

    def __init__(self, client: docker.DockerClient, network: str, tmp_path: Path) -> None:
        self.client = client
        self.network = network
        self.tmp_path = tmp_path
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def name(self) -> str:
        return f"hf-test-vol-{secrets.token_hex(4)}"

    def volume(self, name: str) -> str:
        self.client.volumes.create(name=name, labels={TEST_LABEL: "1"})
        self.volumes.append(name)
        return name

    def source(self, labels: Mapping[str, str] | None = None, seed: bool = True) -> Container:
        """A running app on three named volumes (one nested) and a bind mount,
        seeded once the app has initialised its state."""
        name = self.name()
        bind_dir = self.tmp_path / f"{name}-bind"
        bind_dir.mkdir()
        mounts: dict[str, dict[str, str]] = {
            self.volume(f"{name}-data"): {"bind": DATA, "mode": "rw"},
            self.volume(f"{name}-uploads"): {"bind": UPLOADS, "mode": "rw"},
            self.volume(f"{name}-cache"): {"bind": CACHE, "mode": "rw"},
            str(bind_dir): {"bind": BIND, "mode": "rw"},
        }
        container = self.client.containers.run(
            APP_IMAGE, name=name, detach=True, network=self.network, volumes=mounts,
            labels={TEST_LABEL: "1", "holdfast.enable": "true", "holdfast.engine": "volume",
                    **(labels or {})},
        )
        self.containers.append(container.id)
        self.wait_initialised(container)
        if seed:
            code, output = container.exec_run(["sh", "-c", SEED], user="0:0")
            assert code == 0, output.decode(errors="replace")
        return container

    def wait_initialised(self, container: Container) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                pytest.fail(f"app {container.name} exited: {container.logs(tail=20)!r}")
            if container.status == "running":
                code, _ = container.exec_run(["test", "-s", f"{DATA}/{LIVE_LOG}"])
                if code == 0:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"app {container.name} did not start: {container.logs(tail=20)!r}")
            time.sleep(0.1)

    def created_target(self, adapter: DockerAdapter,
                       destinations: Sequence[str] = DESTINATIONS) -> DatabaseContainer:
        """A created, not started app container on fresh named volumes at
        ``destinations``: what the restore runner hands a loads-before-start engine."""
        name = self.name()
        volumes = {self.volume(f"{name}-v{index}"): destination
                   for index, destination in enumerate(destinations)}
        self.containers.append(name)
        return adapter.create_container(ContainerSpec(
            name=name, image=APP_IMAGE, env={}, volumes=volumes, labels={TEST_LABEL: "1"},
            networks=(self.network,)))

    def cleanup(self) -> list[str]:
        # Newest container first: a restored one before the source it came from.
        return DockerCleanup(self.client, list(reversed(self.containers)),
                             list(self.volumes)).remove_all()


@pytest.fixture
def lab(docker_client: docker.DockerClient, test_network: str, app_image: str,
        tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(docker_client, test_network, tmp_path)
    yield lab
    errors = lab.cleanup()
    if errors:
        pytest.fail("cleanup failed:\n" + "\n".join(errors), pytrace=False)


def probe(client: docker.DockerClient, argv: Sequence[str], *,
          volumes_from: str | None = None, volumes: Mapping[str, str] | None = None) -> bytes:
    """Run ``argv`` in a throwaway base-image container (independent of the
    engine and adapter under test) with read-only mounts; its stdout. Removed
    also when it cannot start."""
    # The output travels through the container's log, which is line-based
    # text: base64 keeps binary output (a tar) intact.
    wrapped = ["sh", "-c", '{ "$@"; echo $? > /tmp/rc; } | base64; exit "$(cat /tmp/rc)"',
               "sh", *argv]
    container = client.containers.create(
        HELPER_IMAGE, wrapped, entrypoint=[], network_mode="none", user="0:0",
        labels={TEST_LABEL: "1"}, volumes_from=[f"{volumes_from}:ro"] if volumes_from else None,
        volumes={name: {"bind": path, "mode": "ro"} for name, path in (volumes or {}).items()})
    try:
        container.start()
        code = container.wait(timeout=60)["StatusCode"]
        out = bytes(container.logs(stdout=True, stderr=False))
        assert code == 0, container.logs(stdout=False, stderr=True).decode(errors="replace")
        return base64.b64decode(out)
    finally:
        container.remove(force=True)


def listing(client: docker.DockerClient, container_id: str,
            destinations: Sequence[str] = DESTINATIONS) -> dict[str, Any]:
    """Every path of every mount as the app sees them (nested mounts
    included), ``{destination: {relative path: (type, uid, gid, mode, size,
    mtime, link target, sha256, hardlink group, links, sparse)}}``, plus the
    allocated 512-byte blocks of each path."""
    raw = probe(client, ["sh", "-c", LISTING, "sh", *destinations],
                volumes_from=container_id).decode()
    trees: dict[str, dict[str, Any]] = {}
    blocks: dict[str, int] = {}
    for section in raw.split("## ")[1:]:
        header, _, body = section.partition("\n")
        entries_text, _, sums_text = body.partition(f"#sha {header}\n")
        hashes = {}
        for line in sums_text.splitlines():
            digest, _, path = line.partition("  ")
            hashes[path] = digest
        rows = [line.split("\t") for line in entries_text.splitlines() if line]
        inodes: dict[str, list[str]] = {}
        for path, kind, *_, inode, links, _blocks in rows:
            if kind != "d" and int(links) > 1:
                inodes.setdefault(inode, []).append(path)
        tree: dict[str, Any] = {}
        for path, kind, uid, gid, mode, size, mtime, target, inode, links, used in rows:
            group = tuple(sorted(inodes.get(inode, ())))
            sparse = int(used) * 512 < int(size) // 2 if kind == "f" and int(size) > 2**20 \
                else None
            tree[path] = (kind, int(uid), int(gid), mode, int(size) if kind == "f" else None,
                          mtime, target, hashes.get(path), group, links, sparse)
            blocks[f"{header}/{path[2:]}"] = int(used)
        trees[header] = tree
    return {"trees": trees, "blocks": blocks}


def without_live_log(fingerprint: dict[str, Any]) -> dict[str, Any]:
    trees = {destination: dict(tree) for destination, tree in fingerprint["trees"].items()}
    trees[DATA].pop(f"./{LIVE_LOG}", None)
    return trees


def read_file(client: docker.DockerClient, container_id: str, path: str) -> bytes:
    return probe(client, ["cat", path], volumes_from=container_id)


def state(client: docker.DockerClient, container_id: str) -> dict[str, Any]:
    return client.api.inspect_container(container_id)["State"]  # type: ignore[no-any-return]


def helpers_of(client: docker.DockerClient, container_id: str) -> list[str]:
    """Helper containers still mounting the volumes of ``container_id``."""
    found = []
    for summary in client.api.containers(all=True, filters={"label": HELPER_LABEL}):
        with contextlib.suppress(NotFound):
            host = client.api.inspect_container(summary["Id"])["HostConfig"]
            if any(entry.split(":")[0] == container_id for entry in host.get("VolumesFrom") or ()):
                found.append(summary["Id"])
    return found


class BreakingHelpers:
    """The real adapter, except that helper streams break after ``limit``
    chunks, as a dying helper or a dropped connection would make them. The
    real stream is read to its end (the test data is small) rather than
    closed early, which is tested on its own."""

    def __init__(self, real: DockerAdapter, limit: int) -> None:
        self.real = real
        self.limit = limit

    def helper_stream(self, argv: Sequence[str], **kwargs: Any) -> Iterator[bytes]:
        source = self.real.helper_stream(argv, **kwargs)
        yield from itertools.islice(source, self.limit)
        for _ in source:
            pass
        raise ExecFailed(argv[0], None, "stream cut by the test")

    def helper_run(self, argv: Sequence[str], **kwargs: Any) -> ExecResult:
        return self.real.helper_run(argv, **kwargs)

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        self.real.stop_container(container_id, timeout)

    def start(self, container_id: str) -> DatabaseContainer:
        return self.real.start(container_id)

    def stream(self, *args: Any, **kwargs: Any) -> Iterator[bytes]:
        return self.real.stream(*args, **kwargs)

    def run(self, *args: Any, **kwargs: Any) -> ExecResult:
        return self.real.run(*args, **kwargs)


def tar_of(engine: VolumeEngine, source: DatabaseContainer,
           adapter: DockerAdapter) -> tuple[bytes, bytes]:
    """A dump's ``meta.json`` and its tar, as bytes (small: the test data)."""
    members = unpack(engine.dump(source, adapter).chunks)
    meta = next(members)
    assert meta.name == META_MEMBER
    meta_bytes = meta.read_small()
    data = next(members)
    assert data.name == TAR_MEMBER
    tar = b"".join(data)
    assert next(members, None) is None
    return meta_bytes, tar


class TestVolumeEngine(EngineContract):
    @pytest.fixture
    def engine(self) -> VolumeEngine:
        return VolumeEngine()

    @pytest.fixture
    def source(self, lab: Lab, adapter: DockerAdapter) -> DatabaseContainer:
        return adapter.inspect(lab.source().id)

    @pytest.fixture
    def fresh_target(self, lab: Lab, adapter: DockerAdapter) -> DatabaseContainer:
        return lab.created_target(adapter)

    @pytest.fixture
    def fingerprint(self, docker_client: docker.DockerClient) -> Any:
        def take(container: DatabaseContainer) -> dict[str, Any]:
            return without_live_log(listing(docker_client, container.id))
        return take

    @pytest.fixture
    def still_source(self, source: DatabaseContainer, docker_client: docker.DockerClient,
                     adapter: DockerAdapter) -> DatabaseContainer:
        """The app stopped, so its live log holds still between two measurements."""
        docker_client.containers.get(source.id).stop(timeout=5)
        return adapter.inspect(source.id)

    @pytest.fixture
    def known_figures(self, still_source: DatabaseContainer,
                      docker_client: docker.DockerClient) -> dict[str, int]:
        """Counted from the independent ``find`` listing of the archived mounts
        (the nested cache is seen through its parent, as tar sees it): every
        path is an entry; a regular file counts once however many names it has."""
        trees = listing(docker_client, still_source.id, (DATA, UPLOADS, BIND))["trees"]
        entries = sum(len(tree) for tree in trees.values())
        files: dict[Any, int] = {}
        for destination, tree in trees.items():
            for path, (kind, *_, size, _, _, _, group, _, _) in tree.items():
                if kind == "f":
                    files[group or (destination, path)] = size
        return {"entries": entries, "files": len(files), "bytes": sum(files.values())}

    @pytest.fixture
    def remove_one(self, adapter: DockerAdapter) -> Any:
        def remove(container: DatabaseContainer) -> set[str]:
            adapter.helper_run(["rm", f"{UPLOADS}/text.txt"], volumes_from=container.id)
            return {"files", "bytes", "entries", "tree_sha256"}
        return remove

    # pytest passes fixtures by name, so this override needs one more fixture
    # (docker_client) than the shared test; no signature can say that.
    def test_dump_then_restore_reproduces_the_data(  # type: ignore[override]
        self, engine: Any, source: DatabaseContainer, fresh_target: DatabaseContainer,
        adapter: DockerAdapter, fingerprint: Any, tmp_path: Path,
        docker_client: docker.DockerClient,
    ) -> None:
        """The shared round trip, adapted to an engine that loads before start:
        the target is created, not started, so it is not ready until the restore
        is done and the runner starts it; then the files must be equal, the
        live log a prefix of the source's, and the app must run on them."""
        storage = LocalStorage("local", (tmp_path / "store").as_uri())
        manifest = self._snapshot(engine, source, adapter, storage)
        assert manifest.raw_bytes > manifest.size_bytes > 0
        assert sorted(manifest.databases) == sorted(DESTINATIONS)
        # Docker copied the image's file into the fresh volume: the restore
        # must remove it, as the source no longer has it. (Read through the
        # volume alone: a read-only view of the never-started container cannot
        # make the mount point of its nested volume.)
        data_volume = {m.destination: m.source for m in fresh_target.mounts}[DATA]
        probe(docker_client, ["test", "-f", "/probe/from-image.txt"],
              volumes={data_volume: "/probe"})
        assert not engine.is_ready(fresh_target, adapter)
        with storage.open(manifest.data_key) as chunks:
            restored = engine.restore(fresh_target, adapter, decompress(chunks))
        assert sorted(restored) == sorted(manifest.databases)
        assert fingerprint(fresh_target) == fingerprint(source)
        restored_log = read_file(docker_client, fresh_target.id, f"{DATA}/{LIVE_LOG}")
        assert restored_log.startswith(b"tick 1 ")
        assert read_file(docker_client, source.id, f"{DATA}/{LIVE_LOG}").startswith(restored_log)

        started = adapter.start(fresh_target.id)
        assert engine.is_ready(started, adapter)
        time.sleep(1.5)  # the app appends to its log: it runs on the restored files
        assert state(docker_client, started.id)["Running"]
        assert fingerprint(started) == fingerprint(source)
        assert len(read_file(docker_client, started.id, f"{DATA}/{LIVE_LOG}")) > \
            len(restored_log)

    def test_broken_dump_stream_fails_and_stores_nothing(
        self, engine: Any, source: DatabaseContainer, adapter: DockerAdapter, tmp_path: Path,
    ) -> None:
        """The shared test breaks ``ContainerExec.stream``, which this engine
        does not use (a runner without helper containers is refused before any
        stream); here the helper's stream breaks instead."""
        store = tmp_path / "store"
        storage = LocalStorage("local", store.as_uri())
        with pytest.raises(DumpFailed, match="lost its stream"):
            self._snapshot(engine, source, BreakingHelpers(adapter, limit=1), storage)
        assert list(storage.list()) == []
        assert [p for p in store.rglob("*") if p.is_file()] == []
        with pytest.raises(DumpFailed, match="needs helper containers"):
            engine.dump(source, object())

    def test_fingerprint_sees_every_kind_of_entry(
        self, source: DatabaseContainer, docker_client: docker.DockerClient,
    ) -> None:
        """The equality above means something only if the listing carries the
        seeded edge cases."""
        result = listing(docker_client, source.id)
        data, uploads = result["trees"][DATA], result["trees"][UPLOADS]
        kind, uid, gid, mode, size, _, target, digest, group, _, sparse = \
            data["./sparse.img"]
        assert (kind, size, sparse) == ("f", SPARSE_SIZE, True)
        assert result["blocks"][f"{DATA}/sparse.img"] * 512 < 2**20
        assert data["./deep/er/est/odd.bin"][1:4] == (4242, 77, "640")
        assert data["./deep/er/est/odd.bin"][5].startswith("981173106")
        assert data["./deep/root-only.key"][1:4] == (0, 0, "600")
        assert data["./deep/er/app.txt"][1:4] == (1000, 1000, "644")
        assert data["./tool"][3] == "4755"
        assert uploads["./public/shared"][:4] == ("d", 0, 0, "1777")
        assert data["./empty-dir"][0] == "d" and data["./empty-dir"][3] == "700"
        assert data["./abs-link"][0::6] == ("l", "/var/lib/app/config.ini")
        assert data["./deep/rel-link"][0::6] == ("l", "../config.ini")
        assert data["./dangling"][0::6] == ("l", "/nonexistent/target")
        assert data["./dangling"][1:3] == (4242, 77)
        assert data["./hardlink-to-app.txt"][8] == ("./deep/er/app.txt",
                                                    "./hardlink-to-app.txt")
        assert data["./pipe"][0] == "p"
        assert data["./config.ini"][0] == "f"  # written by the app on its first start
        assert "./from-image.txt" not in data
        assert uploads["./public/name with spaces.txt"][0] == "f"
        assert uploads["./public/ünïcödé.txt"][0] == "f"
        assert result["trees"][CACHE]["./objects/1"][1:3] == (1000, 1000)
        assert data["./cache/objects/1"] == result["trees"][CACHE]["./objects/1"]
        assert result["trees"][BIND]["./conf/settings"][1:4] == (4242, 77, "600")
        assert digest is not None and target == "" and (uid, gid, mode) == (0, 0, "644")
        assert group == ()


def test_restore_snapshot_into_a_fresh_app_container(
    lab: Lab, adapter: DockerAdapter, docker_client: docker.DockerClient, tmp_path: Path,
) -> None:
    """The whole path: take_snapshot into local storage, plan from the real
    manifest, restore_snapshot into a fresh app container; the restored files
    equal the source's, the sparse file stays sparse, and the app runs."""
    engine = get_engine("volume")
    source = adapter.inspect(lab.source().id)
    storage = LocalStorage("local", (tmp_path / "store").as_uri())
    manifest = take_snapshot(snapshot_id=new_snapshot_id(utcnow()), instance="volume-app",
                             created_at=utcnow(), container=source, engine=engine,
                             runner=adapter, storage=storage)
    assert manifest.engine == "volume" and manifest.data_format == "holdfast-volume-v1"
    new_name = lab.name()
    plan = tagged(plan_restore(
        manifest, new_name=new_name, default_data_paths=engine.data_paths(source),
        secret_values={}, taken_container_names=adapter.container_names(),
        existing_volumes=adapter.volume_names()), lab)
    assert sorted(plan.container.volumes.values()) == sorted(DESTINATIONS)

    outcome = restore_snapshot(manifest=manifest, plan=plan, engine=engine, runtime=adapter,
                               runner=adapter, storage=storage, ready_timeout=READY_TIMEOUT_S)
    assert outcome.container.name == new_name and outcome.container.running
    assert sorted(outcome.databases) == sorted(DESTINATIONS)
    assert {m.destination: m.kind for m in outcome.container.mounts} == \
        dict.fromkeys(DESTINATIONS, "volume")
    restored = listing(docker_client, outcome.container.id)
    assert without_live_log(restored) == without_live_log(listing(docker_client, source.id))
    assert restored["blocks"][f"{DATA}/sparse.img"] * 512 < 2**20
    time.sleep(1.5)
    assert state(docker_client, outcome.container.id)["Running"]
    assert helpers_of(docker_client, outcome.container.id) == []


def tagged(plan: Any, lab: Lab) -> Any:
    """The plan with the test label on what it creates, registered for cleanup."""
    labels = {TEST_LABEL: "1"}
    lab.containers.append(plan.container.name)
    lab.volumes.extend(plan.volume_names)
    return dataclasses.replace(
        plan,
        container=dataclasses.replace(plan.container, labels={**plan.container.labels,
                                                              **labels}),
        volumes=tuple(dataclasses.replace(v, labels={**v.labels, **labels})
                      for v in plan.volumes),
    )


def test_truncated_snapshot_is_refused_and_undone(
    lab: Lab, adapter: DockerAdapter, docker_client: docker.DockerClient, tmp_path: Path,
) -> None:
    """A snapshot whose stored object matches its manifest (size and sha256 are
    those of the truncated object) but whose archive stops part way: only the
    engine can notice. The restore fails as corrupt and removes the container
    and volumes it created."""
    engine = VolumeEngine()
    source = adapter.inspect(lab.source().id)
    storage = LocalStorage("local", (tmp_path / "store").as_uri())
    manifest = take_snapshot(snapshot_id=new_snapshot_id(utcnow()), instance="volume-app",
                             created_at=utcnow(), container=source, engine=engine,
                             runner=adapter, storage=storage)
    with storage.open(manifest.data_key) as chunks:
        raw = b"".join(decompress(chunks))
    short_key = manifest.data_key.replace("data.hfa", "short.hfa")
    info = storage.put(short_key, compress([raw[: len(raw) * 3 // 5]]))
    with storage.open(short_key) as chunks:
        digest = hashlib.sha256(b"".join(chunks)).hexdigest()
    short: Manifest = dataclasses.replace(manifest, data_key=short_key, size_bytes=info.size,
                                          sha256=digest)
    new_name = lab.name()
    plan = tagged(plan_restore(
        short, new_name=new_name, default_data_paths=[], secret_values={},
        taken_container_names=adapter.container_names(),
        existing_volumes=adapter.volume_names()), lab)

    with pytest.raises(CorruptSnapshot, match="truncated"):
        restore_snapshot(manifest=short, plan=plan, engine=engine, runtime=adapter,
                         runner=adapter, storage=storage, ready_timeout=READY_TIMEOUT_S)
    assert not adapter.container_name_taken(new_name)
    assert [name for name in plan.volume_names if adapter.volume_exists(name)] == []


def test_a_tar_cut_short_inside_a_whole_frame_is_corrupt(
    lab: Lab, adapter: DockerAdapter,
) -> None:
    """The frame guards against truncated storage; the tar inside it is checked
    too. Cut inside a member, tar itself complains; cut between two members,
    the members after the cut are missing; cut just before the end-of-archive
    marker, GNU tar extracts without a word, and the engine's own check of
    the marker is what refuses it."""
    engine = VolumeEngine()
    source = adapter.inspect(lab.source().id)
    meta, tar = tar_of(engine, source, adapter)
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        boundary = archive.getmembers()[5].offset
        end_marker = archive.offset  # where tar found the two zero blocks
    assert boundary % 512 == 0 and end_marker % 512 == 0
    assert tar[end_marker:end_marker + 1024] == bytes(1024)
    cuts = ((boundary + 512 + 10, "Unexpected EOF"), (boundary, "Not found in archive"),
            (end_marker, "end-of-archive marker"))
    for cut, reason in cuts:
        target = lab.created_target(adapter)
        with pytest.raises(CorruptSnapshot, match=reason):
            engine.restore(target, adapter, pack([(META_MEMBER, [meta]),
                                                  (TAR_MEMBER, [tar[:cut]])]))
        assert helpers_of(adapter.client, target.id) == []


def posix_acl(*entries: tuple[int, int, int]) -> bytes:
    """The kernel's ``system.posix_acl_access`` value (no setfacl on the host)."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)


def test_extended_attributes_and_acls_survive(lab: Lab, adapter: DockerAdapter,
                                              docker_client: docker.DockerClient) -> None:
    """A ``user.*`` attribute and an access ACL set on a file of the bind mount
    (from this host, where the bind directory lives) are on the restored file,
    as GNU tar in an independent probe reads them back."""
    engine = VolumeEngine()
    source = adapter.inspect(lab.source(seed=False).id)
    bind_dir = Path(next(m.source for m in source.mounts if m.kind == "bind"))
    marked = bind_dir / "marked.txt"
    marked.write_text("has attributes\n")
    os.setxattr(marked, "user.holdfast", b"kept")
    anyone = 0xFFFFFFFF
    os.setxattr(marked, "system.posix_acl_access", posix_acl(
        (0x01, 6, anyone), (0x02, 4, 4242), (0x04, 4, anyone), (0x10, 4, anyone),
        (0x20, 0, anyone)))
    meta, tar = tar_of(engine, source, adapter)
    target = lab.created_target(adapter)
    engine.restore(target, adapter, pack([(META_MEMBER, [meta]), (TAR_MEMBER, [tar])]))
    out = probe(docker_client, ["tar", "--create", "--file=-", "--directory=/", "--xattrs",
                                "--acls", "--format=posix", "srv/bind/marked.txt"],
                volumes_from=target.id)
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as archive:
        (member,) = archive.getmembers()
    assert member.pax_headers.get("SCHILY.xattr.user.holdfast") == "kept"
    assert "user:4242:r--" in member.pax_headers.get("SCHILY.acl.access", "")


def test_restore_refuses_a_target_without_the_archived_mounts(
    lab: Lab, adapter: DockerAdapter,
) -> None:
    engine = VolumeEngine()
    source = adapter.inspect(lab.source(seed=False).id)
    meta, tar = tar_of(engine, source, adapter)
    target = lab.created_target(adapter, destinations=(DATA, UPLOADS, CACHE))
    with pytest.raises(RestoreFailed, match="no volume at /srv/bind"):
        engine.restore(target, adapter, pack([(META_MEMBER, [meta]), (TAR_MEMBER, [tar])]))
    running = adapter.start(lab.created_target(adapter).id)
    with pytest.raises(RestoreFailed, match="is running"):
        engine.restore(running, adapter, pack([(META_MEMBER, [meta]), (TAR_MEMBER, [tar])]))


def test_container_without_mounts_is_refused(lab: Lab, adapter: DockerAdapter) -> None:
    name = lab.name()
    lab.containers.append(name)
    bare = adapter.create_container(ContainerSpec(
        name=name, image=HELPER_IMAGE, env={}, volumes={}, labels={TEST_LABEL: "1"},
        command=("sleep", "60")))
    engine = VolumeEngine()
    assert engine.data_paths(bare) == []
    with pytest.raises(InvalidInput, match="nothing to archive"):
        engine.check(bare)
    with pytest.raises(InvalidInput, match="nothing to archive"):
        engine.dump(bare, adapter)


def test_a_single_file_bind_mount_is_refused(
    lab: Lab, adapter: DockerAdapter, docker_client: docker.DockerClient, tmp_path: Path,
) -> None:
    """A restore mounts a fresh volume (a directory) at every destination, so a
    mounted file could not be put back: the dump says so instead of pretending."""
    config = tmp_path / "app.conf"
    config.write_text("x = 1\n")
    name = lab.name()
    container = docker_client.containers.create(
        APP_IMAGE, name=name, labels={TEST_LABEL: "1"},
        volumes={lab.volume(f"{name}-data"): {"bind": DATA, "mode": "rw"},
                 lab.volume(f"{name}-up"): {"bind": UPLOADS, "mode": "rw"},
                 str(config): {"bind": "/etc/app.conf", "mode": "ro"}})
    lab.containers.append(container.id)
    with pytest.raises(DumpFailed, match=r"/etc/app\.conf is a file mount"):
        b"".join(VolumeEngine().dump(adapter.inspect(container.id), adapter).chunks)


# --- stop-during-backup ----------------------------------------------------------


def _consume_into_tar(chunks: Iterator[bytes]) -> None:
    """Pull chunks until the tar member has started (the helper is running)."""
    for chunk in chunks:
        if chunk.startswith(b"M") and TAR_MEMBER.encode() in chunk:
            next(chunks)  # the first data record of the tar
            return
    raise AssertionError("the dump ended before its tar started")


def test_stop_during_backup_stops_while_the_archive_streams(
    lab: Lab, adapter: DockerAdapter, docker_client: docker.DockerClient,
) -> None:
    engine = VolumeEngine()
    source = adapter.inspect(lab.source({"holdfast.stop-during-backup": "true"}).id)
    before = state(docker_client, source.id)
    dump = engine.dump(source, adapter)
    assert state(docker_client, source.id)["Running"]  # nothing happens until consumed
    _consume_into_tar(dump.chunks)
    during = state(docker_client, source.id)
    assert not during["Running"] and during["ExitCode"] == 0  # stopped cleanly (SIGTERM)
    assert len(helpers_of(docker_client, source.id)) == 1
    rest = b"".join(dump.chunks)
    assert rest.endswith(b"EZ")
    after = state(docker_client, source.id)
    assert after["Running"] and after["StartedAt"] > before["StartedAt"]
    assert helpers_of(docker_client, source.id) == []


def test_stop_during_backup_starts_again_when_the_archive_fails_or_is_abandoned(
    lab: Lab, adapter: DockerAdapter, docker_client: docker.DockerClient,
) -> None:
    engine = VolumeEngine()
    source = adapter.inspect(lab.source({"holdfast.stop-during-backup": "true"}).id)
    broken = engine.dump(source, BreakingHelpers(adapter, limit=1))
    with pytest.raises(DumpFailed, match="lost its stream"):
        for _ in broken.chunks:
            assert not state(docker_client, source.id)["Running"]
    assert state(docker_client, source.id)["Running"]

    abandoned = engine.dump(source, adapter).chunks
    _consume_into_tar(abandoned)
    assert not state(docker_client, source.id)["Running"]
    abandoned.close()  # type: ignore[attr-defined]
    assert state(docker_client, source.id)["Running"]
    assert helpers_of(docker_client, source.id) == []


def test_without_the_label_the_container_keeps_running(
    lab: Lab, adapter: DockerAdapter, docker_client: docker.DockerClient,
) -> None:
    engine = VolumeEngine()
    source = adapter.inspect(lab.source(seed=False).id)
    before = state(docker_client, source.id)
    chunks = engine.dump(source, adapter).chunks
    _consume_into_tar(chunks)
    assert state(docker_client, source.id)["Running"]
    b"".join(chunks)
    assert state(docker_client, source.id)["StartedAt"] == before["StartedAt"]


@pytest.mark.parametrize("stop", [False, True], ids=["live", "stop-during-backup"])
def test_files_changing_under_tar(lab: Lab, adapter: DockerAdapter,
                                  docker_client: docker.DockerClient,
                                  caplog: pytest.LogCaptureFixture, stop: bool) -> None:
    """Another container appends to a 20 MB file in the data volume without
    pause, so GNU tar sees it change as it reads it and exits 1. A live
    archive accepts that with a warning; one that stopped the container to be
    consistent cannot be, and fails."""
    engine = VolumeEngine()
    labels = {"holdfast.stop-during-backup": "true"} if stop else {}
    container = lab.source(labels, seed=False)
    data_volume = f"{container.name}-data"
    writer = docker_client.containers.run(
        HELPER_IMAGE, ["sh", "-c", "head -c 20000000 /dev/zero > /d/busy; "
                       "while :; do echo more >> /d/busy; done"],
        entrypoint=[], detach=True, network_mode="none", labels={TEST_LABEL: "1"},
        volumes={data_volume: {"bind": "/d", "mode": "rw"}}, name=lab.name())
    lab.containers.append(writer.id)
    deadline = time.monotonic() + 10
    while writer.exec_run(["sh", "-c", "test $(stat -c %s /d/busy) -gt 20000000"])[0] != 0:
        assert time.monotonic() < deadline, "the writer did not start"
        time.sleep(0.1)
    source = adapter.inspect(container.id)
    with caplog.at_level(logging.WARNING, logger="backup.engines.volume"):
        if stop:
            with pytest.raises(DumpFailed, match="although the container was stopped"):
                b"".join(engine.dump(source, adapter).chunks)
            assert state(docker_client, source.id)["Running"]
        else:
            data = b"".join(engine.dump(source, adapter).chunks)
            assert data.endswith(b"EZ")
            assert "file changed as we read it" in caplog.text


def test_a_stopped_container_is_archived_and_left_stopped(
    lab: Lab, adapter: DockerAdapter, docker_client: docker.DockerClient,
) -> None:
    engine = VolumeEngine()
    container = lab.source({"holdfast.stop-during-backup": "true"}, seed=False)
    container.stop(timeout=10)
    stopped = adapter.inspect(container.id)
    assert not stopped.running
    _, tar = tar_of(engine, stopped, adapter)
    with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as archive:
        names = set(archive.getnames())
    assert {"var/lib/app/config.ini", "srv/uploads/incoming/batch.txt",
            "var/lib/app/cache", "srv/bind"} <= names
    assert not state(docker_client, container.id)["Running"]


def test_the_adapter_is_a_helper_runner(adapter: DockerAdapter) -> None:
    assert isinstance(adapter, HelperContainers)
