"""Figures (backup.figures) and the stream readers that gather them, without Docker.

compare() and the JSON form are checked with generated figures; the tar
reader against trees walked on disk and archived with Python's tarfile in
every format it writes; the mysqldump row counter against generated rows of
hostile strings rendered the way the dump tool escapes them; the pg_dump
custom-format reader against a real PostgreSQL 15 archive (tests/unit/data)
and a synthetic archive of the newest version; and take_snapshot records
the figures in the manifest, with the fake engine on the fake Docker engine.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import struct
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.engines import sqlscan
from backup.engines.pgscan import RoleLines, archive_reader
from backup.engines.rdbscan import rdb_reader
from backup.engines.sqlscan import RowCounter
from backup.engines.tarscan import Entry, TreeDigest, tar_reader
from backup.figures import Difference, Figures, Scanner, compare, scan
from backup.pipeline import take_snapshot
from backup.storage.memory import MemoryStorage
from backup.types import Manifest, utcnow
from tests.fakes.docker import FakeDocker
from tests.fakes.engine import SECRET, FakeEngine

DATA = Path(__file__).parent / "data"

names = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)
values = st.dictionaries(names, st.integers(0, 10**9) | st.text(max_size=70), max_size=12)
figures = st.builds(Figures, kind=st.sampled_from(["tables", "keys", "tree"]), values=values,
                    exact=st.booleans(), method=st.text(max_size=40))


def pieces(data: bytes, sizes: Sequence[int]) -> Iterator[bytes]:
    """``data`` cut at the given sizes (cycled), as a stream arrives."""
    at, index = 0, 0
    while at < len(data):
        size = sizes[index % len(sizes)]
        yield data[at:at + size]
        at, index = at + size, index + 1


chunk_sizes = st.lists(st.integers(1, 3000), min_size=1, max_size=8)


# --- Figures, compare() and Difference ----------------------------------------------


@given(figures)
def test_figures_survive_json(original: Figures) -> None:
    assert Figures.from_json(json.loads(json.dumps(original.to_json()))) == original


@given(figures)
def test_figures_equal_to_themselves_have_no_differences(recorded: Figures) -> None:
    assert compare(recorded, recorded) == []


@given(figures, st.data())
def test_each_changed_missing_or_extra_value_is_one_difference(recorded: Figures,
                                                               data: st.DataObject) -> None:
    measured = dict(recorded.values)
    expected: dict[str, Difference] = {}
    for name in data.draw(st.lists(st.sampled_from(sorted(measured)), unique=True)
                          if measured else st.just([])):
        if data.draw(st.booleans()):
            del measured[name]
            expected[name] = Difference(name, recorded.values[name], None)
        else:
            measured[name] = f"other {recorded.values[name]}"
            expected[name] = Difference(name, recorded.values[name], measured[name])
    extra = data.draw(names.filter(lambda name: name not in recorded.values))
    measured[extra] = 3
    expected[extra] = Difference(extra, None, 3)
    exact = Figures(recorded.kind, recorded.values, exact=True)
    found = compare(exact, Figures(recorded.kind, measured, exact=True))
    assert found == [expected[name] for name in sorted(expected)]


@given(st.integers(0, 10**7), st.integers(-10**6, 10**6))
def test_estimates_match_within_the_tolerance_and_exact_counts_do_not(
        rows: int, drift: int) -> None:
    after = max(0, rows + drift)
    estimate = compare(Figures("tables", {"d.s.t": rows}, exact=False),
                       Figures("tables", {"d.s.t": after}))
    assert (estimate == []) == (abs(after - rows) <= max(10, rows / 10))
    assert (compare(Figures("tables", {"d.s.t": rows}), Figures("tables", {"d.s.t": after}))
            == []) == (after == rows)


def test_an_estimate_still_needs_every_table_present() -> None:
    found = compare(Figures("tables", {"d.s.t": 5}, exact=False), Figures("tables", {}))
    assert found == [Difference("d.s.t", 5, None)]


def test_figures_of_another_kind_differ_in_kind_alone() -> None:
    assert compare(Figures("keys", {"db0": 1}), Figures("tree", {"files": 1})) == [
        Difference("kind", "keys", "tree")]


@pytest.mark.parametrize(("difference", "line"), [
    (Difference("shop.public.orders", 1200, 1199),
     "table shop.public.orders: 1200 rows recorded, 1199 restored"),
    (Difference("shop.orders", 3, None),
     "table shop.orders: 3 rows recorded, missing from the restored copy"),
    (Difference("shop.extra", None, 4),
     "table shop.extra: not in the snapshot, 4 rows in the restored copy"),
    (Difference("db3", 50, 49), "database db3: 50 keys recorded, 49 restored"),
    (Difference("role:reader", 1, None),
     "role reader: present at backup, missing from the restored copy"),
    (Difference("database:reports", None, 1),
     "database reports: not in the snapshot, present in the restored copy"),
    (Difference("files", 12, 11), "files: 12 recorded, 11 restored"),
    (Difference("tree_sha256", "a" * 64, "b" * 64),
     f"tree_sha256: {'a' * 12}… recorded, {'b' * 12}… restored"),
])
def test_a_difference_describes_itself_in_one_line(difference: Difference, line: str) -> None:
    assert difference.describe() == line


def test_a_reader_that_fails_costs_the_figures_not_the_stream() -> None:
    def broken() -> Iterator[object]:
        yield from ()
        raise ValueError("unknown format")

    scanner = Scanner(broken(), "test stream")  # type: ignore[arg-type]
    assert list(scanner.watch([b"abc", b"def"])) == [b"abc", b"def"]
    assert scanner.failed and not scanner.done


# --- the tar reader ---------------------------------------------------------------------


def make_tree(root: Path) -> None:
    """Long names and link targets, non-ASCII names, a hardlink, symlinks,
    an empty file and directory, a FIFO, odd modes."""
    deep = root / ("long-directory-name-" * 6) / "ünïcödé 🎉"
    deep.mkdir(parents=True)
    (deep / ("file-" * 30 + ".bin")).write_bytes(os.urandom(70_000))
    (root / "empty").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "text.txt").write_text("line\n" * 1000)
    (root / "text.txt").chmod(0o640)
    os.link(root / "text.txt", root / "z-hardlink.txt")
    (root / "abs-link").symlink_to("/nonexistent/" + "x" * 150)
    (root / "rel-link").symlink_to("text.txt")
    os.mkfifo(root / "pipe")
    (root / "tool").write_bytes(b"#!/bin/sh\n")
    (root / "tool").chmod(0o4755)


def walk_figures(root: Path) -> dict[str, int | str]:
    """The tree's figures computed from the files themselves, in tarfile's
    order (a directory, then its entries sorted by name)."""
    tree = TreeDigest()
    seen: dict[tuple[int, int], str] = {}

    def visit(path: Path, name: str) -> None:
        info = os.lstat(path)
        entry = Entry(kind="dir", path=name, mode=info.st_mode, uid=info.st_uid,
                      gid=info.st_gid)
        if stat.S_ISREG(info.st_mode) and (info.st_dev, info.st_ino) in seen:
            entry.kind, entry.link = "hardlink", seen[(info.st_dev, info.st_ino)]
        elif stat.S_ISREG(info.st_mode):
            seen[(info.st_dev, info.st_ino)] = name
            entry.kind, entry.size = "file", info.st_size
            entry.digest = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(info.st_mode):
            entry.kind, entry.link = "symlink", os.readlink(path)
        elif stat.S_ISFIFO(info.st_mode):
            entry.kind = "fifo"
        tree.add(entry)
        if stat.S_ISDIR(info.st_mode):
            for child in sorted(os.listdir(path)):
                visit(path / child, f"{name}/{child}")

    visit(root, root.name)
    return dict(tree.figures().values)


def tar_bytes(root: Path, archive_format: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=archive_format) as archive:
        archive.add(root, arcname=root.name)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def tree_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "data"
    root.mkdir()
    make_tree(root)
    return root


@pytest.mark.parametrize("archive_format", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT],
                         ids=["pax", "gnu"])
@settings(max_examples=25, deadline=None)
@given(sizes=chunk_sizes)
def test_the_tar_reader_sees_what_walking_the_files_sees(
        tree_root: Path, archive_format: int, sizes: list[int]) -> None:
    tree = TreeDigest()
    assert scan(tar_reader(tree), pieces(tar_bytes(tree_root, archive_format), sizes), "tar")
    walked = walk_figures(tree_root)
    assert tree.figures().values == walked
    assert walked["files"] == 4 and walked["entries"] == 12  # hardlink: a name, not a file
    assert walked["bytes"] == 70_000 + 5000 + 10


def test_a_changed_byte_a_mode_or_an_owner_changes_the_tree_checksum(tree_root: Path) -> None:
    def checksum(mutate: object = None) -> object:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
            archive.add(tree_root, arcname="data", filter=mutate)  # type: ignore[arg-type]
        tree = TreeDigest()
        assert scan(tar_reader(tree), [buffer.getvalue()], "tar")
        return tree.figures().values["tree_sha256"]

    def chmod(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if info.name == "data/text.txt":
            info.mode = 0o600
        return info

    def chown(info: tarfile.TarInfo) -> tarfile.TarInfo:
        if info.name == "data/empty":
            info.uid = 4242
        return info

    sums = {checksum(), checksum(chmod), checksum(chown)}
    assert len(sums) == 3


def test_a_pax_sparse_member_counts_its_real_size_and_hashes_what_tar_stores() -> None:
    """GNU tar's pax sparse format 1.0: the member is named GNUSparseFile.N/…,
    its real name and size are pax records, and its data is the sparse map
    (decimal lines, padded to a block) followed by the data segments."""
    stored = b"1\n1048576\n6\n".ljust(512, b"\0") + b"middle"
    info = tarfile.TarInfo("./GNUSparseFile.0/disk.img")
    info.size = len(stored)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                        "GNU.sparse.name": "var/lib/app/disk.img",
                        "GNU.sparse.realsize": str(200 * 1024 * 1024)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.addfile(info, io.BytesIO(stored))
    tree = TreeDigest()
    assert scan(tar_reader(tree), pieces(buffer.getvalue(), [100]), "tar")
    expected = TreeDigest()
    expected.add(Entry(kind="file", path="var/lib/app/disk.img", size=200 * 1024 * 1024,
                       digest=hashlib.sha256(stored).hexdigest(), mode=0o644))
    assert tree.figures() == expected.figures()
    assert tree.figures().values["bytes"] == 200 * 1024 * 1024


def test_a_truncated_tar_gives_no_figures(tree_root: Path) -> None:
    data = tar_bytes(tree_root, tarfile.PAX_FORMAT)
    assert not scan(tar_reader(TreeDigest()), [data[: len(data) // 2]], "tar")
    corrupt = bytearray(data)
    corrupt[10] ^= 0xFF  # inside the first header: its checksum no longer matches
    assert not scan(tar_reader(TreeDigest()), [bytes(corrupt)], "tar")


# --- the mysqldump row counter ----------------------------------------------------------


def sql_string(value: str | bytes) -> str:
    """A string literal as mysqldump writes one (mysql_real_escape_string)."""
    raw = value if isinstance(value, str) else value.decode("latin-1")
    escapes = {"\0": "\\0", "\n": "\\n", "\r": "\\r", "\\": "\\\\", "'": "\\'", '"': '\\"',
               "\x1a": "\\Z"}
    return "'" + "".join(escapes.get(char, char) for char in raw) + "'"


nasty = st.lists(st.sampled_from([*"()'\",;\\\n\r\0\x1a`ab ", "VALUES (", "é", "''",
                                  "INSERT INTO `t` VALUES ("]), max_size=20).map("".join)
cell = st.one_of(
    st.integers(-10**12, 10**12).map(str), st.just("NULL"), nasty.map(sql_string),
    st.binary(max_size=12).map(lambda raw: "0x" + raw.hex().upper() if raw else "''"),
    nasty.map(lambda text: "_binary " + sql_string(text)),
    # Doubled quotes, which the tools read but do not write; newlines inside
    # strings they always escape.
    nasty.map(lambda text: "'" + text.replace("\\", "\\\\").replace("'", "''")
              .replace("\n", "\\n").replace("\r", "\\r") + "'"),
)
rows = st.lists(st.lists(cell, min_size=1, max_size=4), max_size=25)


def render_dump(tables: dict[tuple[str, str], list[list[str]]], per_insert: int,
                mariadb_style: bool) -> bytes:
    """A dump as Oracle's mysqldump writes one (``VALUES (..),(..);`` on one
    line) or as MariaDB's does (``VALUES`` then a tuple per line)."""
    opening, separator = ("VALUES\n", ",\n") if mariadb_style else ("VALUES ", ",")
    lines = ["-- MariaDB dump", "/*!40101 SET NAMES utf8mb4 */;"]
    databases = sorted({db for db, _ in tables})
    for database in databases:
        lines += [f"CREATE DATABASE `{database}`;", f"USE `{database}`;"]
        for (db, table), table_rows in sorted(tables.items()):
            if db != database:
                continue
            quoted = table.replace("`", "``")
            lines += [f"DROP TABLE IF EXISTS `{quoted}`;", f"CREATE TABLE `{quoted}` (",
                      "  `id` int NOT NULL", ") ENGINE=InnoDB;"]
            for start in range(0, len(table_rows), per_insert):
                tuples = separator.join("(" + ",".join(row) + ")"
                                        for row in table_rows[start:start + per_insert])
                lines.append(f"INSERT INTO `{quoted}` {opening}{tuples};")
        lines += ["DELIMITER ;;", "CREATE TRIGGER x BEFORE INSERT ON t FOR EACH ROW",
                  "INSERT INTO `t` VALUES (1),(2);;", "DELIMITER ;"]
    lines.append("-- Dump completed")
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")


table_names = st.text(alphabet=st.sampled_from(list("abc`' ;(é")), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.tuples(st.sampled_from(["shop", "reports-2024"]), table_names), rows,
                       min_size=1, max_size=4),
       st.integers(1, 7), st.booleans(), chunk_sizes)
def test_the_row_counter_counts_every_row_of_generated_dumps(
        tables: dict[tuple[str, str], list[list[str]]], per_insert: int, mariadb_style: bool,
        sizes: list[int]) -> None:
    counter = RowCounter()
    dump = render_dump(tables, per_insert, mariadb_style)
    assert b"".join(counter.watch(pieces(dump, sizes))) == dump
    assert counter.complete
    assert counter.figures().values == {f"{db}.{table}": len(table_rows)
                                        for (db, table), table_rows in tables.items()}


@pytest.mark.parametrize("limit", [16, 300, 4 * 1024 * 1024])
@pytest.mark.parametrize("mariadb_style", [True, False])
def test_lines_over_the_fast_path_limit_are_counted_by_the_state_machine(
        monkeypatch: pytest.MonkeyPatch, limit: int, mariadb_style: bool) -> None:
    monkeypatch.setattr(sqlscan, "FAST_LINE_LIMIT", limit)
    table_rows = [[str(n), sql_string(f"it's ({n}); \\ \n"), "'a''b'", "0x00FF"]
                  for n in range(200)]
    dump = render_dump({("shop", "t"): table_rows, ("shop", "u"): table_rows[:3]}, 60,
                       mariadb_style)
    counter = RowCounter()
    for piece in pieces(dump, [7, 500, 64]):
        counter.feed(piece)
    assert counter.rows == {"shop.t": 200, "shop.u": 3}


def test_the_row_counter_passes_long_lines_in_bounded_memory() -> None:
    counter = RowCounter()
    body = b"-- " + b"x" * 5_000_000 + b"\nUSE `d`;\nINSERT INTO `t` VALUES (1),(2);\n"
    counter.feed(body)
    assert counter.rows == {"d.t": 2}
    assert len(counter._line) == 0


# --- the pg_dump custom-format reader ---------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(chunk_sizes)
def test_the_pg_reader_counts_the_rows_of_a_real_pg_dump_archive(sizes: list[int]) -> None:
    """pg15-custom.dump: ``pg_dump --format=custom --compress=0`` of a database
    with public.t (1234 rows, each with a newline in a value), an empty
    "Odd name", a partitioned s2.p whose one partition s2.p1 holds 100 rows,
    and a large object."""
    counts: dict[str, int] = {}
    data = (DATA / "pg15-custom.dump").read_bytes()
    assert scan(archive_reader(counts, "postgres"), pieces(data, sizes), "pg_dump")
    assert counts == {"postgres.public.t": 1234, "postgres.public.Odd name": 0,
                      "postgres.s2.p1": 100}


def test_a_truncated_pg_archive_gives_no_figures() -> None:
    data = (DATA / "pg15-custom.dump").read_bytes()
    assert not scan(archive_reader({}, "db"), [data[:-100]], "pg_dump")


def _int(value: int) -> bytes:
    return bytes([1 if value < 0 else 0]) + struct.pack("<I", abs(value))


def _str(text: str | None) -> bytes:
    if text is None:
        return _int(-1)
    raw = text.encode()
    return _int(len(raw)) + raw


def synthetic_archive(tables: dict[str, bytes], compression: int = 0) -> bytes:
    """An archive of version 1.16 (PostgreSQL 17): a compression byte in the
    header and a relkind in each TOC entry."""
    out = [b"PGDMP", bytes([1, 16, 0, 4, 8, 1, compression]), *(_int(0) for _ in range(7)),
           _str("db"), _str("17.0"), _str("17.0"), _int(len(tables) + 1)]
    entries = [(1, "SCHEMA", "public", None)] + [
        (index + 2, "TABLE DATA", name, "public") for index, name in enumerate(tables)]
    for dump_id, desc, tag, namespace in entries:
        out += [_int(dump_id), _int(1), _str("0"), _str("0"), _str(tag), _str(desc), _int(2),
                _str(""), _str(""), _str(None), _str(namespace), _str(""), _str("heap"),
                _int(114), _str("owner"), _str("false"), _str("1"), _str(None), b"\x01",
                bytes(8)]
    for index, data in enumerate(tables.values()):
        out += [b"\x01", _int(index + 2), *([_int(len(data)), data] if data else []), _int(0)]
    return b"".join(out)


def test_the_pg_reader_reads_the_newest_archive_version() -> None:
    """Empty lines are rows (an empty string in a one-column table); the
    ``\\.`` line and what follows it are not."""
    archive = synthetic_archive({"words": b"a\n\nb\\\\.\n\\.\n\n\n", "none": b""})
    counts: dict[str, int] = {}
    assert scan(archive_reader(counts, "db"), pieces(archive, [3]), "pg_dump")
    assert counts == {"db.public.words": 3, "db.public.none": 0}
    assert not scan(archive_reader({}, "db"), [synthetic_archive({}, compression=1)], "pg")


def row_chunked_archive(rows: list[bytes]) -> bytes:
    """As pg_dump writes COPY data: a chunk per row, then one of ``\\.`` and newlines."""
    archive = synthetic_archive({"t": b"X"})
    one_chunk = _int(1) + b"X" + _int(0)
    assert archive.endswith(one_chunk)
    chunks = b"".join(_int(len(row)) + row for row in [*rows, b"\\.\n\n\n"])
    return archive[:-len(one_chunk)] + chunks + _int(0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([b"\n", b"a\tb\n", b"\\\\.\n", b"\\N\n", b"x" * 300 + b"\n",
                                 b"\\.x\n"]), max_size=40), chunk_sizes)
def test_rows_written_a_chunk_each_are_counted_however_the_stream_is_cut(
        rows: list[bytes], sizes: list[int]) -> None:
    counts: dict[str, int] = {}
    assert scan(archive_reader(counts, "db"), pieces(row_chunked_archive(rows), sizes), "pg")
    assert counts == {"db.public.t": len(rows)}


def test_roles_come_from_the_create_role_lines_of_the_globals() -> None:
    script = (b"CREATE ROLE app;\nALTER ROLE app WITH SUPERUSER;\n"
              b'CREATE ROLE "we ""ird"" one";\n-- CREATE ROLE nobody;\n')
    roles = RoleLines()
    assert b"".join(roles.watch(pieces(script, [5]))) == script
    assert roles.complete and roles.roles == ["app", 'we "ird" one']


# --- the RDB reader -------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(chunk_sizes)
def test_the_rdb_reader_counts_the_keys_without_a_ttl_of_a_real_rdb(sizes: list[int]) -> None:
    """redis7.rdb: ``redis-cli --rdb`` of a Redis 7 with, in db0, strings (one
    of 100 kB), small and large lists, sets (intset, listpack, hashtable),
    hashes, sorted sets, a stream with a consumer group and a pending entry,
    and a key with a TTL; in db2, one string."""
    keys: dict[str, int] = {}
    data = (DATA / "redis7.rdb").read_bytes()
    assert scan(rdb_reader(keys), pieces(data, sizes), "rdb")
    assert keys == {"db0": 12, "db2": 1}


def _rdb_length(value: int) -> bytes:
    return bytes([value]) if value < 64 else b"\x80" + value.to_bytes(4, "big")


def _rdb_string(raw: bytes) -> bytes:
    return _rdb_length(len(raw)) + raw


def test_the_rdb_reader_reads_the_encodings_a_small_rdb_does_not_show() -> None:
    """Integer and LZF-compressed strings, the old sorted set with its
    textual scores, a module value, expiry in seconds, LFU and idle hints."""
    records = [
        b"REDIS0011", b"\xfa", _rdb_string(b"redis-ver"), _rdb_string(b"7.2.0"),
        b"\xfe\x05", b"\xfb\x04\x01",
        b"\x00", b"\xc0\x07", b"\xc1\x01\x02",  # key: int8 7, value: int16
        b"\x00", _rdb_string(b"lzf"), b"\xc3\x03\x0a", b"abc",  # LZF: 3 of 10 bytes
        b"\x03", _rdb_string(b"old-zset"), b"\x02", _rdb_string(b"a"), b"\x031.5",
        _rdb_string(b"b"), b"\xfd",  # score +inf
        b"\xf9\x05", b"\xf8\x03",
        b"\x07", _rdb_string(b"module"), b"\x81" + (42).to_bytes(8, "big"),
        b"\x02\x09", b"\x05", _rdb_string(b"state"), b"\x04", bytes(8), b"\x00",
        b"\xfd", bytes(4), b"\x00", _rdb_string(b"expires"), _rdb_string(b"soon"),
        b"\xff", bytes(8),
    ]
    keys: dict[str, int] = {}
    assert scan(rdb_reader(keys), pieces(b"".join(records), [1]), "rdb")
    assert keys == {"db5": 4}
    unknown = b"REDIS0012\xfe\x00\x63" + _rdb_string(b"k") + b"\xff" + bytes(8)
    assert not scan(rdb_reader({}), [unknown], "rdb")


# --- the pipeline records them ----------------------------------------------------------


def test_take_snapshot_records_the_figures_the_dump_gathered() -> None:
    docker = FakeDocker()
    content = b"rows of the fake database\n" * 1000
    container = docker.add_container("db", content=content, env={SECRET: "pw"})
    storage = MemoryStorage("memory", "memory://figures")
    engine = FakeEngine()
    manifest = take_snapshot(snapshot_id="s1", instance="db", created_at=utcnow(),
                             container=docker.inspect(container.id), engine=engine,
                             runner=docker, storage=storage)
    expected = {"files": 1, "bytes": len(content),
                "tree_sha256": hashlib.sha256(content).hexdigest()}
    assert manifest.figures is not None and manifest.figures["values"] == expected
    with storage.open("db/s1/manifest.json") as chunks:
        stored = Manifest.from_bytes(b"".join(chunks))
    assert stored.figures == manifest.figures
    measured = engine.measure(docker.inspect(container.id), docker)
    assert compare(Figures.from_json(stored.figures), measured) == []


def test_a_manifest_written_before_figures_has_none() -> None:
    manifest = Manifest.from_bytes(json.dumps({
        "snapshot_id": "s", "instance": "i", "engine": "postgres", "data_key": "k",
        "data_format": "f", "compression": "zstd", "image": "x", "image_id": "",
        "created_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:01Z",
        "size_bytes": 1, "raw_bytes": 1, "sha256": "0" * 64}).encode())
    assert manifest.figures is None


def test_a_reader_asking_for_an_implausible_record_fails_instead_of_buffering(
        caplog: pytest.LogCaptureFixture) -> None:
    archive = bytearray((DATA / "pg15-custom.dump").read_bytes())
    # After the 11-byte start, the compression and the 7 time fields (5 bytes
    # each) comes the length of the database name: make it 2 GiB.
    archive[51:56] = b"\x00\xff\xff\xff\x7f"
    scanner = Scanner(archive_reader({}, "db"), "pg_dump")
    scanner.feed(bytes(archive))
    assert scanner.failed and not scanner.finish()
    assert "2147483647 bytes is not plausible" in caplog.text
