"""Benchmark: what gathering figures (backup.figures) costs a backup stream.

Each reader that records a snapshot's figures runs on the dump stream as it
passes, next to zstd; this measures, on generated streams of about --mb MiB
fed in 1 MiB chunks as a dump arrives, the throughput of each reader and of
zstd level 3 (the pipeline's compression) on the same bytes, and the ratio:
a reader much slower than zstd would slow every backup of that engine.
Streams: a mysqldump in Oracle's style (one line per INSERT) and MariaDB's
(a tuple per line), with and without backslash escapes in the strings; a
pg_dump custom archive (uncompressed, one large table); a tar of random
files. Pure Python, no Docker.

    python bench/figures_readers.py --mb 64
"""

from __future__ import annotations

import argparse
import io
import os
import struct
import tarfile
import time
from collections.abc import Callable

from backup.engines.pgscan import archive_reader
from backup.engines.sqlscan import RowCounter
from backup.engines.tarscan import TreeDigest, tar_reader
from backup.figures import scan
from backup.streams import compress

CHUNK = 1024 * 1024


def mysqldump(size: int, mariadb_style: bool, escapes: bool) -> bytes:
    name = "Zo\\'e \\\\ q" if escapes else "Zoe q"
    opening, separator = ("VALUES\n", ",\n") if mariadb_style else ("VALUES ", ",")
    parts, row = ["USE `shop`;\nCREATE TABLE `c` (\n);\n"], 0
    while sum(map(len, parts)) < size:
        tuples = separator.join(f"({n},'customer {n} {name}','c{n}@example.com',"
                                f"'2020-01-01',{n % 997 / 3:.2f})" for n in range(row, row + 8000))
        parts.append(f"INSERT INTO `c` {opening}{tuples};\n")
        row += 8000
    return "".join(parts).encode()


def _int(value: int) -> bytes:
    return b"\0" + struct.pack("<I", value)


def _str(text: str | None) -> bytes:
    return b"\1" + struct.pack("<I", 1) if text is None else _int(len(text)) + text.encode()


def pg_archive(size: int) -> bytes:
    """A version 1.14 custom archive with one TABLE DATA entry, in 1 MiB chunks."""
    lines = b"".join(b"%d\tsome text value %d\t2020-01-01\n" % (n, n) for n in range(20000))
    head = [b"PGDMP", bytes([1, 14, 0, 4, 8, 1]), _int(0), *(_int(0) for _ in range(7)),
            _str("db"), _str("15"), _str("15"), _int(1), _int(1), _int(1), _str("0"), _str("0"),
            _str("t"), _str("TABLE DATA"), _int(2), _str(""), _str(""), _str(None),
            _str("public"), _str(""), _str("heap"), _str("app"), _str("false"), _str(None),
            b"\1", bytes(8), b"\1", _int(1)]
    body = [_int(len(lines)) + lines for _ in range(max(1, size // len(lines)))]
    return b"".join(head + body) + _int(0)


def tar_of_files(size: int) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for index in range(max(1, size // (256 * 1024))):
            payload = os.urandom(256 * 1024)
            info = tarfile.TarInfo(f"data/file-{index}")
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def rate(data: bytes, consume: Callable[[list[bytes]], object]) -> float:
    chunks = [data[at:at + CHUNK] for at in range(0, len(data), CHUNK)]
    started = time.perf_counter()
    consume(chunks)
    return len(data) / (time.perf_counter() - started) / 2**20


def count_rows(chunks: list[bytes]) -> None:
    counter = RowCounter()
    for chunk in chunks:
        counter.feed(chunk)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=64, help="size of each stream in MiB")
    size = parser.parse_args().mb * 2**20
    streams: list[tuple[str, bytes, Callable[[list[bytes]], object]]] = [
        ("mysqldump, one line per INSERT", mysqldump(size, False, False), count_rows),
        ("mysqldump, one line per INSERT, escapes", mysqldump(size, False, True), count_rows),
        ("mariadb-dump, a tuple per line", mysqldump(size, True, False), count_rows),
        ("mariadb-dump, a tuple per line, escapes", mysqldump(size, True, True), count_rows),
        ("pg_dump custom archive", pg_archive(size),
         lambda chunks: scan(archive_reader({}, "db"), chunks, "bench")),
        ("tar of 256 KiB random files", tar_of_files(size),
         lambda chunks: scan(tar_reader(TreeDigest()), chunks, "bench")),
    ]
    print(f"{'stream':45} {'MiB':>6} {'reader MiB/s':>13} {'zstd MiB/s':>11} {'reader/zstd':>12}")
    for label, data, reader in streams:
        ours = rate(data, reader)
        zstd = rate(data, lambda chunks: sum(len(piece) for piece in compress(chunks)))
        print(f"{label:45} {len(data) / 2**20:6.0f} {ours:13.1f} {zstd:11.1f} {ours / zstd:12.2f}")


if __name__ == "__main__":
    main()
