"""A streaming tar reader that gathers a tree's figures as the archive passes.

It reads what GNU tar writes with ``--format=posix`` (and what Python's
tarfile writes): 512-byte ustar headers, pax extended headers (long names and
link targets, sizes and ids beyond the octal fields, ``GNU.sparse.*`` for
sparse files), GNU long-name records (``L``/``K``) and old GNU sparse
members (``S``). Member data is hashed on the way and never held.

The figures (:func:`tree_figures`): ``files`` (regular file members, hard
links not counted again), ``bytes`` (their logical sizes summed),
``entries`` (every member) and ``tree_sha256``, a sha256 over one line per
member in archive order: type, path, size, sha256 of the content, link
target, permission bits, uid and gid. Owners and modes count because a
restore must put them back; mtimes and extended attributes do not (a copy
that runs changes mtimes, and the tar restore already fails loudly on
attributes it cannot set). A sparse file's content digest is of its data as
tar stores it (the sparse map and the data segments), not of the holes
expanded, so a terabyte of holes costs nothing to hash. Both sides of a
verification run the same ``tar --sort=name``, so the order and which name
of a hard-linked file is the file are the same for the same tree.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from backup.figures import Figures, Need, Pass, Reader

BLOCK = 512
METHOD = ("file count, bytes and a sha256 over every entry (path, type, size, content "
          "sha256, link, mode, owner) of the volumes' tar, read as it streamed")
_PAX_LIMIT = 64 * 1024 * 1024
_TYPES = {b"0": "file", b"\0": "file", b"7": "file", b"S": "file", b"1": "hardlink",
          b"2": "symlink", b"3": "char", b"4": "block", b"5": "dir", b"6": "fifo"}


@dataclass
class TreeDigest:
    """The running figures of a tree, one entry at a time."""

    files: int = 0
    bytes: int = 0
    entries: int = 0
    _sha: Any = field(default_factory=hashlib.sha256)

    def add(self, entry: Entry) -> None:
        self.entries += 1
        if entry.kind == "file":
            self.files += 1
            self.bytes += entry.size
        self._sha.update(entry.line())

    def figures(self) -> Figures:
        return Figures(kind="tree", method=METHOD, values={
            "files": self.files, "bytes": self.bytes, "entries": self.entries,
            "tree_sha256": self._sha.hexdigest()})


@dataclass
class Entry:
    """One archived path, as the tree checksum sees it."""

    kind: str
    path: str
    size: int = 0
    digest: str = "-"
    link: str = ""
    mode: int = 0
    uid: int = 0
    gid: int = 0

    def line(self) -> bytes:
        fields = (self.kind, self.path, str(self.size), self.digest, self.link,
                  format(self.mode & 0o7777, "o"), str(self.uid), str(self.gid))
        return "\0".join(fields).encode("utf-8", "surrogateescape") + b"\n"


def normal_path(name: str) -> str:
    """``./var/lib/app/`` -> ``var/lib/app``: the same path however tar spelled it."""
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/") or "."


def number(raw: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if raw and raw[0] & 0x80:
        return int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
    text = raw.split(b"\0", 1)[0].strip()
    return int(text, 8) if text else 0


def pax_records(data: bytes) -> dict[str, str]:
    """``"%d key=value\\n"`` records; a later record wins."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data) and data[position:position + 1] != b"\0":
        space = data.index(b" ", position)
        length = int(data[position:space])
        if length <= 0:
            raise ValueError("pax record with a bad length")
        record = data[space + 1:position + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode()] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _padding(size: int) -> int:
    return -size % BLOCK


def tar_reader(tree: TreeDigest) -> Reader:
    """A :data:`~backup.figures.Reader` adding every member of a tar stream to ``tree``."""
    pax: dict[str, str] = {}
    long_name = long_link = None
    while True:
        header = yield Need(BLOCK)
        if header == bytes(BLOCK):
            return  # the end-of-archive marker; what follows is padding
        if sum(header[:148]) + 256 + sum(header[156:]) != number(header[148:156]):
            raise ValueError("tar header checksum mismatch")
        flag = header[156:157]
        size = number(header[124:136])
        if flag in (b"x", b"g", b"L", b"K"):
            if size > _PAX_LIMIT:
                raise ValueError("tar extended header is too large")
            data = (yield Need(size + _padding(size)))[:size]
            if flag == b"x":
                pax.update(pax_records(data))
            elif flag == b"L":
                long_name = _text(data)
            elif flag == b"K":
                long_link = _text(data)
            continue
        entry, realsize = _entry(header, pax, long_name, long_link)
        if flag == b"S":
            realsize = number(header[483:495])
            extended = header[482]
            while extended:
                block = yield Need(BLOCK)
                extended = block[504]
        size = int(pax.get("size", size))
        if entry.kind == "file" or flag not in _TYPES:
            content = hashlib.sha256()
            yield Pass(size, content.update)
            entry.digest = content.hexdigest()
            entry.size = realsize if realsize is not None else size
        else:
            yield Pass(size, _ignore)
        yield Need(_padding(size))
        tree.add(entry)
        pax, long_name, long_link = {}, None, None


def _entry(header: bytes, pax: dict[str, str], long_name: str | None,
           long_link: str | None) -> tuple[Entry, int | None]:
    flag = header[156:157]
    name = _text(header[0:100])
    prefix = _text(header[345:500]) if header[257:263] == b"ustar\0" else ""
    if prefix and flag != b"S":
        name = f"{prefix}/{name}"
    path = pax.get("GNU.sparse.name") or pax.get("path") or long_name or name
    realsize = pax.get("GNU.sparse.realsize") or pax.get("GNU.sparse.size")
    entry = Entry(
        kind=_TYPES.get(flag, "type-" + flag.decode("latin-1")), path=normal_path(path),
        link=pax.get("linkpath") or long_link or _text(header[157:257]),
        mode=number(header[100:108]), uid=int(pax.get("uid", number(header[108:116]))),
        gid=int(pax.get("gid", number(header[116:124]))))
    if entry.kind == "hardlink":
        entry.link = normal_path(entry.link)
    return entry, int(realsize) if realsize is not None else None


def _ignore(_: memoryview) -> None:
    return None

