"""The physical Postgres engine without Docker: its metadata, its refusals, the
checks a restore makes before it writes, and the extraction script run for real
with ``sh`` and GNU tar on a scratch directory."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backup.engines import get_engine, has_physical_mode
from backup.engines.pgphysical import (
    META_MEMBER,
    PHYSICAL_FORMAT,
    TAR_MEMBER,
    PostgresPhysicalEngine,
    check_image_major,
    check_mounted,
    extract_script,
    read_meta,
)
from backup.engines.postgres import PostgresEngine, dump_mode
from backup.errors import CorruptSnapshot, DumpFailed, RestoreFailed
from backup.framing import pack
from backup.labels import MODES, mode_problem, parse_labels, parse_mode
from backup.ports import ExecResult
from backup.types import DatabaseContainer, Mount

DATA = "/var/lib/postgresql/data"
VOLUME = Mount(DATA, "volume", "copy-data")


def _container(env: Mapping[str, str] | None = None, mounts: tuple[Mount, ...] = (VOLUME,),
               running: bool = False, labels: Mapping[str, str] | None = None
               ) -> DatabaseContainer:
    return DatabaseContainer(id="c1", name="copy", image="postgres:15", image_id="sha256:1",
                             env={"POSTGRES_PASSWORD": "pw", **(env or {})},
                             labels=labels or {}, mounts=mounts, running=running)


def _meta(**changes: object) -> bytes:
    meta: dict[str, object] = {"version": 1, "server_major": 15, "data_directory": DATA,
                               "databases": ["appdb", "postgres"]}
    meta.update(changes)
    return json.dumps(meta).encode()


def _tar(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o600, 999, 999
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class Recorder:
    """A ContainerExec and HelperContainers that answers psql with ``answer``
    and runs a helper by reading all its stdin; records what was asked."""

    def __init__(self, answer: bytes = b"", exit_code: int = 0, helper_exit: int = 0,
                 helper_stderr: str = "") -> None:
        self.answer, self.exit_code = answer, exit_code
        self.helper_exit, self.helper_stderr = helper_exit, helper_stderr
        self.calls: list[Sequence[str]] = []
        self.extracted = b""

    def run(self, container_id: str, argv: Sequence[str], *,
            env: Mapping[str, str] | None = None, user: str | None = None,
            stdin: Iterable[bytes] | None = None, check: bool = True,
            output_limit: int = 1024 * 1024) -> ExecResult:
        self.calls.append(argv)
        return ExecResult(exit_code=self.exit_code, stdout=self.answer, stderr="psql: error: no")

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        self.calls.append(argv)
        return iter(())

    def helper_stream(self, argv: Sequence[str], *, volumes_from: str | None = None,
                      volumes: Mapping[str, str] | None = None,
                      read_only: bool = True) -> Iterator[bytes]:
        raise AssertionError("a physical restore does not stream from a helper")

    def helper_run(self, argv: Sequence[str], *, volumes_from: str | None = None,
                   volumes: Mapping[str, str] | None = None, read_only: bool = False,
                   stdin: Iterable[bytes] | None = None, check: bool = True) -> ExecResult:
        self.calls.append(argv)
        self.extracted = b"".join(stdin or ())
        return ExecResult(exit_code=self.helper_exit, stdout=b"", stderr=self.helper_stderr)

    def stop_container(self, container_id: str, timeout: float = 30) -> None:
        raise AssertionError("not used")

    def start(self, container_id: str) -> DatabaseContainer:
        raise AssertionError("not used")


# --- the mode label ------------------------------------------------------------------


def test_the_mode_defaults_to_logical_and_reads_either_spelling() -> None:
    assert parse_mode(None) == parse_mode("  ") == "logical"
    assert parse_mode(" Physical ") == "physical"
    assert dump_mode(_container(labels={"holdfast.mode": "physical"})) == "physical"


def test_a_physical_mode_is_refused_for_an_engine_without_one_never_ignored() -> None:
    physical = {"holdfast.mode": "Physical"}
    problem = mode_problem("mariadb", has_physical_mode("mariadb"), physical)
    assert problem is not None and problem.startswith("holdfast.mode=physical is for Postgres")
    assert "mariadb snapshots are logical" in problem
    assert mode_problem("postgres", has_physical_mode("postgres"), physical) is None
    assert mode_problem("redis", False, {"holdfast.mode": "logical"}) is None
    assert mode_problem("redis", False, {}) is None
    assert mode_problem("redis", False, {"holdfast.mode": "bogus"}) is None  # a label error


@given(st.text(max_size=300).filter(lambda text: text.strip().lower() not in (*MODES, "")))
def test_any_other_mode_is_refused_in_one_bounded_line(raw: str) -> None:
    with pytest.raises(ValueError, match="use logical or physical") as refused:
        parse_mode(raw)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200


def test_a_bad_mode_label_is_an_instance_error_and_fails_a_dump_in_one_line() -> None:
    labels = {"holdfast.enable": "true", "holdfast.mode": "block"}
    policy = parse_labels(labels, "db", known_engines={"postgres"})
    assert "holdfast.mode 'block': use logical or physical" in policy.errors
    with pytest.raises(DumpFailed, match=r"label holdfast.mode 'block'.*container copy"):
        PostgresEngine().dump(_container(labels=labels, running=True), Recorder())


def test_a_physical_snapshot_is_read_by_the_physical_engine() -> None:
    physical = get_engine("postgres", PHYSICAL_FORMAT)
    assert isinstance(physical, PostgresPhysicalEngine) and physical.loads_before_start
    for data_format in ("holdfast-postgres-v1", "holdfast-postgres-v2", None):
        assert isinstance(get_engine("postgres", data_format), PostgresEngine)


# --- dump refusals -------------------------------------------------------------------

GOOD = b"150004 " + DATA.encode().hex().encode() + b" 0 1 10\n"


@pytest.mark.parametrize(("answer", "says"), [
    (b"150004 " + DATA.encode().hex().encode() + b" 2 1 10\n", r"2 tablespace\(s\)"),
    (b"150004 " + DATA.encode().hex().encode() + b" 0 0 10\n", "ALTER ROLE postgres"),
    (b"150004 " + DATA.encode().hex().encode() + b" 0 1 0\n", "max_wal_senders=0"),
])
def test_a_server_that_cannot_be_copied_is_refused_before_anything_streams(
        answer: bytes, says: str) -> None:
    runner = Recorder(answer)
    with pytest.raises(DumpFailed, match=says) as refused:
        PostgresPhysicalEngine().dump(_container(running=True), runner)
    assert "holdfast.mode=logical" in str(refused.value)
    assert [argv[0] for argv in runner.calls] == ["psql"]  # no pg_basebackup


def test_settings_that_cannot_be_read_are_refused() -> None:
    with pytest.raises(DumpFailed, match=r"cannot read the server settings.*psql: error: no"):
        PostgresPhysicalEngine().dump(_container(running=True), Recorder(GOOD, exit_code=2))


def test_an_answer_that_does_not_parse_is_refused_in_one_line() -> None:
    with pytest.raises(DumpFailed, match=r"psql answered 'WARNING: odd\\n'"):
        PostgresPhysicalEngine().dump(_container(running=True), Recorder(b"WARNING: odd\n"))


def test_selected_databases_are_refused_before_the_server_is_asked() -> None:
    runner = Recorder(GOOD)
    with pytest.raises(DumpFailed, match="copies the whole server"):
        PostgresPhysicalEngine().dump(_container(running=True), runner, ["appdb"])
    assert runner.calls == []


def test_a_dump_records_the_major_version_directory_and_databases() -> None:
    dump = PostgresPhysicalEngine().dump(_container(running=True), Recorder(GOOD))
    assert dump.data_format == PHYSICAL_FORMAT
    # The recorder answers the database listing with the same line as the preflight.
    assert read_meta(_meta(databases=list(dump.databases)))[:2] == (15, DATA)


# --- metadata and the checks before a restore writes ---------------------------------


def test_good_metadata_reads_back() -> None:
    assert read_meta(_meta()) == (15, DATA, ["appdb", "postgres"])


@pytest.mark.parametrize("raw", [
    b"not json", json.dumps({"version": 1}).encode(), _meta(version=2),
    _meta(data_directory="relative/data"), _meta(data_directory="/var/../etc"),
    _meta(server_major="fifteen"),
])
def test_bad_metadata_is_a_corrupt_snapshot(raw: bytes) -> None:
    with pytest.raises(CorruptSnapshot, match="physical snapshot"):
        read_meta(raw)


def test_an_image_of_another_major_version_is_refused() -> None:
    check_image_major(_container({"PG_MAJOR": "15"}), 15)
    check_image_major(_container(), 15)  # an image that does not say is tried
    check_image_major(_container({"PG_MAJOR": "latest"}), 15)
    with pytest.raises(RestoreFailed, match=r"Postgres 15 and image postgres:15 runs Postgres 16"):
        check_image_major(_container({"PG_MAJOR": "16"}), 15)


def test_the_data_directory_must_be_on_a_volume() -> None:
    check_mounted(_container(), DATA)
    check_mounted(_container(mounts=(Mount("/var/lib/postgresql", "volume", "v"),)), DATA)
    for mounts in [(), (Mount(DATA, "tmpfs"),), (Mount("/var/lib/postgresql/data2", "volume"),)]:
        with pytest.raises(RestoreFailed, match=f"no volume holding {DATA}"):
            check_mounted(_container(mounts=mounts), DATA)


# --- restore -------------------------------------------------------------------------

WHOLE_TAR = _tar({"PG_VERSION": b"15\n", "base/1/1259": b"x" * 9000})


def _archive(tar: bytes, meta: bytes | None = None) -> bytes:
    return b"".join(pack([(META_MEMBER, [meta or _meta()]), (TAR_MEMBER, [tar])]))


def test_a_whole_archive_is_extracted_and_names_its_databases() -> None:
    runner = Recorder()
    assert PostgresPhysicalEngine().restore(_container(), runner, [_archive(WHOLE_TAR)]) == [
        "appdb", "postgres"]
    assert runner.extracted == WHOLE_TAR
    assert runner.calls == [["sh", "-c", extract_script(DATA)]]


def test_a_running_container_or_a_wrong_archive_is_refused_before_extracting() -> None:
    runner = Recorder()
    with pytest.raises(RestoreFailed, match="is running"):
        PostgresPhysicalEngine().restore(_container(running=True), runner, [_archive(WHOLE_TAR)])
    with pytest.raises(CorruptSnapshot, match="does not start with its metadata"):
        PostgresPhysicalEngine().restore(_container(), runner, [b"".join(pack([(TAR_MEMBER, [
            WHOLE_TAR])]))])
    with pytest.raises(RestoreFailed, match="runs Postgres 14"):
        PostgresPhysicalEngine().restore(_container({"PG_MAJOR": "14"}), runner,
                                         [_archive(WHOLE_TAR)])
    assert runner.calls == []


def test_a_tar_without_its_end_marker_is_a_corrupt_snapshot() -> None:
    with tarfile.open(fileobj=io.BytesIO(WHOLE_TAR)) as archive:
        last = archive.getmembers()[-1]
    cut = WHOLE_TAR[:last.offset_data + -(-last.size // 512) * 512]  # whole blocks, no end
    assert len(cut) % 512 == 0 and cut[-1024:] != bytes(1024)
    with pytest.raises(CorruptSnapshot, match="end-of-archive marker"):
        PostgresPhysicalEngine().restore(_container(), Recorder(), [_archive(cut)])


def test_tar_complaining_of_a_bad_archive_is_a_corrupt_snapshot_and_others_fail() -> None:
    damaged = Recorder(helper_exit=2, helper_stderr="tar: Unexpected EOF in archive\n"
                       "tar: Error is not recoverable: exiting now\n")
    with pytest.raises(CorruptSnapshot, match="Unexpected EOF in archive"):
        PostgresPhysicalEngine().restore(_container(), damaged, [_archive(WHOLE_TAR)])
    full = Recorder(helper_exit=2, helper_stderr="tar: base/1/1259: No space left on device\n")
    with pytest.raises(RestoreFailed, match="No space left on device"):
        PostgresPhysicalEngine().restore(_container(), full, [_archive(WHOLE_TAR)])


@pytest.mark.skipif(os.geteuid() != 0, reason="tar keeps owners and chown needs root")
def test_the_extraction_script_empties_extracts_and_gives_postgres_its_directory(
        tmp_path: Path) -> None:
    directory = tmp_path / "pg data"
    directory.mkdir(mode=0o777)
    (directory / "stale.conf").write_text("from the image")
    done = subprocess.run(["sh", "-c", extract_script(str(directory))], input=WHOLE_TAR,
                          capture_output=True, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in directory.iterdir()) == ["PG_VERSION", "base"]
    assert (directory / "base" / "1" / "1259").read_bytes() == b"x" * 9000
    info = directory.stat()
    assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o700, 999, 999)
