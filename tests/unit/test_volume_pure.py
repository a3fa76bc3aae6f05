"""The ``volume`` engine without Docker: mount paths, the wipe command (run
for real with the host's GNU find), metadata checks, and the dump's policies
(stop/start pairing, tar exit status 1, end-of-archive marker) against a
fake helper runner that records what happens in which order."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from backup.engines.volume import (
    META_MEMBER,
    TAR_MEMBER,
    TarEnd,
    VolumeEngine,
    _read_meta,
    dump_script,
    empty_command,
    member_name,
    restore_script,
    tar_complaint,
    top_level,
)
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    ExecFailed,
    HoldfastError,
    InvalidInput,
    RestoreFailed,
)
from backup.framing import pack, unpack
from backup.ports import ExecResult
from backup.types import DatabaseContainer, Mount

MOUNTS = (Mount("/var/lib/app", "volume", "app-data"), Mount("/srv/up", "bind", "/host/up"),
          Mount("/var/lib/app/cache", "volume", "cache"), Mount("/run/tmp", "tmpfs", ""))


def container(labels: Mapping[str, str] | None = None, running: bool = True,
              mounts: tuple[Mount, ...] = MOUNTS) -> DatabaseContainer:
    return DatabaseContainer(id="c0ffee", name="app", image="app:1", image_id="sha256:1",
                             labels=dict(labels or {}), mounts=mounts, running=running)


def a_tar(*names: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 5
            archive.addfile(info, io.BytesIO(b"hello"))
    return buffer.getvalue()


class FakeHelpers:
    """A ContainerExec and HelperContainers that streams a given tar and then fails as told,
    and records the calls in order."""

    def __init__(self, tar: bytes = b"", failure: ExecFailed | None = None,
                 start_fails: bool = False, run_result: ExecResult | None = None) -> None:
        self.tar = tar
        self.failure = failure
        self.start_fails = start_fails
        self.run_result = run_result or ExecResult(0, b"", "")
        self.events: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.stdin = b""

    def helper_stream(self, argv: Sequence[str], *, volumes_from: str | None = None,
                      volumes: Mapping[str, str] | None = None,
                      read_only: bool = True) -> Iterator[bytes]:
        self.calls.append({"argv": list(argv), "volumes_from": volumes_from,
                           "read_only": read_only})
        self.events.append("helper")
        try:
            for start in range(0, len(self.tar), 4096):
                yield self.tar[start:start + 4096]
            if self.failure is not None:
                raise self.failure
        finally:
            self.events.append("helper removed")

    def helper_run(self, argv: Sequence[str], *, volumes_from: str | None = None,
                   volumes: Mapping[str, str] | None = None, read_only: bool = False,
                   stdin: Iterable[bytes] | None = None, check: bool = True) -> ExecResult:
        self.calls.append({"argv": list(argv), "volumes_from": volumes_from,
                           "read_only": read_only})
        self.stdin = b"".join(stdin or [])
        return self.run_result

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        self.events.append("stop")

    def start(self, container_id: str) -> DatabaseContainer:
        self.events.append("start")
        if self.start_fails:
            raise HoldfastError("Docker refused: cannot start")
        return container()

    # The ContainerExec half of the runner: the volume engine works only
    # through helper containers, so these are never called.

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        raise AssertionError("not used")

    def run(self, container_id: str, argv: Sequence[str], *,
            env: Mapping[str, str] | None = None, user: str | None = None,
            stdin: Iterable[bytes] | None = None, check: bool = True,
            output_limit: int = 1024 * 1024) -> ExecResult:
        raise AssertionError("not used")


# --- paths and scripts -------------------------------------------------------------


def test_member_names_are_mount_paths_without_the_leading_slash() -> None:
    assert member_name("/var/lib/app") == "var/lib/app"
    for bad in ("relative", "/", "/a/../b", "/a/", "/a//b", "/a\nb"):
        with pytest.raises(InvalidInput):
            member_name(bad)


def test_nested_mounts_are_archived_through_their_parent() -> None:
    assert top_level(["/data/sub", "/data", "/data2", "/srv/x/y", "/srv/x/y/z/w"]) == \
        ["data", "data2", "srv/x/y"]


def test_data_paths_and_check_cover_volumes_and_binds_only() -> None:
    engine = VolumeEngine()
    assert engine.data_paths(container()) == ["/srv/up", "/var/lib/app", "/var/lib/app/cache"]
    engine.check(container())
    for mounts in ((), (Mount("/run/tmp", "tmpfs", ""),)):
        with pytest.raises(InvalidInput, match="nothing to archive") as refused:
            engine.check(container(mounts=mounts))
        assert "\n" not in str(refused.value)


def test_the_wipe_keeps_nested_mounts_and_their_parents(tmp_path: Path) -> None:
    """Run the generated find for real on a tree standing in for the mounts:
    everything inside the outer mount goes except the nested mount points,
    their content (wiped by their own command) and the directories leading
    to them; glob characters in paths are taken literally."""
    outer = tmp_path / "data"
    nested = [outer / "cache", outer / "x" / "deep*"]
    for path in (outer / "cache" / "c", outer / "x" / "deep*" / "d", outer / "x" / "other",
                 outer / "x" / "deepest", outer / "y"):
        path.mkdir(parents=True)
        (path / "file").write_text("x")
    (outer / "top").write_text("x")
    (outer / "link").symlink_to("/nonexistent")
    destinations = [str(outer), *map(str, nested)]
    subprocess.run(["sh", "-c", empty_command(str(outer), destinations)], check=True)
    left = sorted(str(p.relative_to(outer)) for p in outer.rglob("*"))
    assert left == ["cache", "cache/c", "cache/c/file", "x", "x/deep*", "x/deep*/d",
                    "x/deep*/d/file"]
    for mount in nested:
        subprocess.run(["sh", "-c", empty_command(str(mount), destinations)], check=True)
        assert list(mount.iterdir()) == []
    assert outer.is_dir()


def test_scripts_quote_every_path() -> None:
    script = dump_script(["srv/it's here", "var/lib/app"])
    assert "'srv/it'\"'\"'s here'" in script
    assert "exec tar --create" in script and "--sparse" in script
    restore = restore_script(["/srv/a b"], ["srv/a b"])
    assert "find '/srv/a b' -mindepth 1 -delete" in restore
    assert restore.endswith("-- 'srv/a b'")


def test_tar_complaint_skips_the_closing_summary() -> None:
    stderr = ("tar: var/lib/app: Not found in archive\n"
              "tar: Exiting with failure status due to previous errors\n")
    assert tar_complaint(stderr) == "tar: var/lib/app: Not found in archive"
    assert tar_complaint("tar: Error is not recoverable: exiting now\n") == \
        "tar: Error is not recoverable: exiting now"


def test_metadata_must_match_its_mounts() -> None:
    good = {"version": 1, "mounts": [{"destination": "/a", "kind": "volume"},
                                     {"destination": "/a/b", "kind": "volume"}],
            "members": ["a"]}
    assert _read_meta(json.dumps(good).encode()) == (["/a", "/a/b"], ["a"])
    for bad in (b"not json", b"{}", json.dumps({**good, "version": 2}).encode(),
                json.dumps({**good, "members": ["a", "a/b"]}).encode(),
                json.dumps({**good, "members": ["etc"]}).encode(),
                json.dumps({**good, "mounts": [], "members": []}).encode(),
                json.dumps({**good, "mounts": [{"destination": "rel"}]}).encode()):
        with pytest.raises(CorruptSnapshot):
            _read_meta(bad)


def test_tar_end_marker() -> None:
    whole = a_tar("var/lib/app/a", "var/lib/app/b")
    for data, complete in ((whole, True), (whole[:1024], False), (whole[:-1], False),
                           (b"", False), (bytes(1024), True)):
        end = TarEnd()
        assert b"".join(end.watch([data[i:i + 700] for i in range(0, len(data), 700)])) == data
        assert end.complete() is complete


# --- dump policies -------------------------------------------------------------------


def consume(engine: VolumeEngine, source: DatabaseContainer, helpers: FakeHelpers) -> bytes:
    return b"".join(engine.dump(source, helpers).chunks)


def archived_tar(data: bytes) -> bytes:
    members = unpack([data])
    meta = next(members)
    assert meta.name == META_MEMBER
    json.loads(meta.read_small())
    tar = next(members)
    assert tar.name == TAR_MEMBER
    return b"".join(tar)


def test_dump_archives_read_only_from_the_containers_mounts() -> None:
    tar = a_tar("var/lib/app/a")
    helpers = FakeHelpers(tar)
    dump = VolumeEngine().dump(container(), helpers)
    assert dump.databases == ("/srv/up", "/var/lib/app", "/var/lib/app/cache")
    assert helpers.events == []  # lazy: nothing runs before the chunks are read
    assert archived_tar(b"".join(dump.chunks)) == tar
    (call,) = helpers.calls
    assert (call["volumes_from"], call["read_only"]) == ("c0ffee", True)
    assert call["argv"][:2] == ["sh", "-c"] and "-- srv/up var/lib/app" in call["argv"][2]
    assert helpers.events == ["helper", "helper removed"]


def test_dump_refuses_a_runner_without_helpers_and_selected_databases() -> None:
    with pytest.raises(DumpFailed, match="needs helper containers"):
        VolumeEngine().dump(container(), object())  # type: ignore[arg-type]
    with pytest.raises(DumpFailed, match="do not select databases"):
        VolumeEngine().dump(container(), FakeHelpers(), ["db"])
    with pytest.raises(InvalidInput, match="use true or false"):
        VolumeEngine().dump(container({"holdfast.stop-during-backup": "maybe"}), FakeHelpers())


@pytest.mark.parametrize("label", ["true", "yes", "1"])
def test_stop_label_stops_before_the_archive_and_starts_after(label: str) -> None:
    helpers = FakeHelpers(a_tar("var/lib/app/a"))
    consume(VolumeEngine(), container({"holdfast.stop-during-backup": label}), helpers)
    assert helpers.events == ["stop", "helper", "helper removed", "start"]


def test_a_container_that_was_not_running_is_not_started() -> None:
    helpers = FakeHelpers(a_tar("var/lib/app/a"))
    consume(VolumeEngine(), container({"holdfast.stop-during-backup": "true"}, running=False),
            helpers)
    assert helpers.events == ["helper", "helper removed"]


def test_an_abandoned_dump_starts_the_container_again() -> None:
    helpers = FakeHelpers(a_tar(*[f"var/lib/app/{n}" for n in range(40)]))
    chunks = VolumeEngine().dump(container({"holdfast.stop-during-backup": "true"}),
                                 helpers).chunks
    for _ in range(8):
        next(chunks)
    assert helpers.events == ["stop", "helper"]
    chunks.close()  # type: ignore[attr-defined]
    assert helpers.events == ["stop", "helper", "helper removed", "start"]


def test_live_archive_accepts_tar_exit_1_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    tar = a_tar("var/lib/app/app.log")
    helpers = FakeHelpers(tar, ExecFailed(
        "sh", 1, "tar: var/lib/app/app.log: file changed as we read it\n"))
    with caplog.at_level(logging.WARNING, logger="backup.engines.volume"):
        data = consume(VolumeEngine(), container(), helpers)
    assert archived_tar(data) == tar
    assert "file changed as we read it" in caplog.text and "live copy" in caplog.text


def test_exit_1_fails_a_dump_that_stopped_the_container() -> None:
    helpers = FakeHelpers(a_tar("var/lib/app/a"), ExecFailed(
        "sh", 1, "tar: var/lib/app/a: file changed as we read it\n"))
    with pytest.raises(DumpFailed, match=r"although the container was stopped.*file changed"):
        consume(VolumeEngine(), container({"holdfast.stop-during-backup": "true"}), helpers)
    assert helpers.events == ["stop", "helper", "helper removed", "start"]


def test_other_tar_failures_and_a_missing_end_marker_fail_the_dump() -> None:
    failing = FakeHelpers(a_tar("var/lib/app/a"), ExecFailed(
        "sh", 2, "tar: var/lib/app/x: Cannot open: Permission denied\n"
                 "tar: Exiting with failure status due to previous errors\n"))
    with pytest.raises(DumpFailed, match="exited 2: tar: var/lib/app/x: Cannot open"):
        consume(VolumeEngine(), container(), failing)
    with pytest.raises(DumpFailed, match="end-of-archive"):
        consume(VolumeEngine(), container(), FakeHelpers(a_tar("var/lib/app/a")[:1536]))


def test_a_failed_restart_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    labels = {"holdfast.stop-during-backup": "true"}
    # After a good archive, the app being down is the news: the dump fails.
    with pytest.raises(DumpFailed, match=r"could not start app again.*start it by hand"):
        consume(VolumeEngine(), container(labels),
                FakeHelpers(a_tar("var/lib/app/a"), start_fails=True))
    # After a failed archive, the archive's reason stays; the restart's is logged.
    broken = FakeHelpers(a_tar("var/lib/app/a"), ExecFailed("sh", 2, "tar: boom\n"),
                         start_fails=True)
    with caplog.at_level(logging.ERROR, logger="backup.engines.volume"), \
            pytest.raises(DumpFailed, match="boom"):
        consume(VolumeEngine(), container(labels), broken)
    assert "could not start app again" in caplog.text


# --- restore --------------------------------------------------------------------------


def snapshot(tar: bytes, mounts: Sequence[Mount] = MOUNTS[:3]) -> bytes:
    destinations = sorted(m.destination for m in mounts)
    meta = {"version": 1, "mounts": [{"destination": d, "kind": "volume"} for d in destinations],
            "members": top_level(destinations)}
    return b"".join(pack([(META_MEMBER, [json.dumps(meta).encode()]), (TAR_MEMBER, [tar])]))


def test_restore_feeds_the_tar_to_one_writable_helper() -> None:
    tar = a_tar("var/lib/app/a", "srv/up/b")
    helpers = FakeHelpers()
    restored = VolumeEngine().restore(container(running=False), helpers, [snapshot(tar)])
    assert restored == ["/srv/up", "/var/lib/app", "/var/lib/app/cache"]
    (call,) = helpers.calls
    assert (call["volumes_from"], call["read_only"]) == ("c0ffee", False)
    assert helpers.stdin == tar
    script = call["argv"][2]
    assert script.index("find /var/lib/app -mindepth 1") < script.index("exec tar --extract")


def test_restore_refusals() -> None:
    engine, data = VolumeEngine(), snapshot(a_tar("var/lib/app/a"))
    with pytest.raises(RestoreFailed, match="is running"):
        engine.restore(container(), FakeHelpers(), [data])
    with pytest.raises(RestoreFailed, match="no volume at /var/lib/app/cache"):
        engine.restore(container(running=False, mounts=MOUNTS[:2]), FakeHelpers(), [data])
    with pytest.raises(RestoreFailed, match="needs helper containers"):
        engine.restore(container(running=False), object(), [data])  # type: ignore[arg-type]
    with pytest.raises(CorruptSnapshot, match="metadata"):
        engine.restore(container(running=False), FakeHelpers(),
                       [b"".join(pack([(TAR_MEMBER, [b""])]))])


@pytest.mark.parametrize(("stderr", "error"), [
    ("tar: Unexpected EOF in archive\ntar: Error is not recoverable: exiting now\n",
     CorruptSnapshot),
    ("tar: var/lib/app: Not found in archive\n", CorruptSnapshot),
    ("tar: var/lib/app/a: Cannot open: No space left on device\n", RestoreFailed),
])
def test_restore_maps_tar_failures(stderr: str, error: type[Exception]) -> None:
    helpers = FakeHelpers(run_result=ExecResult(2, b"", stderr))
    with pytest.raises(error) as raised:
        VolumeEngine().restore(container(running=False), helpers,
                               [snapshot(a_tar("var/lib/app/a"))])
    assert type(raised.value) is error and "tar: " in str(raised.value)


def test_restore_checks_the_tar_and_the_frame_end() -> None:
    tar = a_tar("var/lib/app/a")
    with pytest.raises(CorruptSnapshot, match="end-of-archive"):
        VolumeEngine().restore(container(running=False), FakeHelpers(),
                               [snapshot(tar[:1536])])
    with pytest.raises(CorruptSnapshot, match="truncated"):
        VolumeEngine().restore(container(running=False), FakeHelpers(),
                               [snapshot(tar)[:-1]])
