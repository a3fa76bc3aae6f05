"""The storage interface every target implements, and the checks they share.

Modelled on restic's backend and borgstore's backends: a target stores opaque
objects under ``/``-separated keys, and four operations are enough for
snapshots: ``put`` (atomic, all or nothing), ``open`` (stream back), ``list``
(sorted) and ``delete``. Implementations translate their vendor errors into
:mod:`backup.errors` at the edge and never leak them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol

from backup.errors import InvalidName

PARTIAL_MARKER = ".partial"
_KEY_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.=+-]*")


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime | None = None


class Storage(Protocol):
    """A place where snapshot objects live.

    Keys are relative, ``/``-separated, and pass :func:`validate_key`.
    """

    scheme: ClassVar[str]
    name: str
    url: str

    def put(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        """Store the whole of ``chunks`` under ``key`` and return what was stored.

        The object becomes visible only after the last chunk is written and made
        durable. If ``chunks`` raises, or the write fails, nothing is left under
        ``key`` (or any name ``list`` shows), and the original exception
        propagates unchanged. Raises :class:`ObjectExists` if ``key`` exists,
        :class:`StoragePermissionDenied` / :class:`StorageUnavailable` on target
        failures. The caller owns ``chunks``; ``put`` consumes it fully or stops
        at the first error.
        """
        ...

    def replace(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        """Like :meth:`put`, but an object already under ``key`` is replaced
        (a manifest rewritten on pin and unpin). Atomic as ``put`` is: a reader
        sees the whole old object or the whole new one, never a mix or nothing;
        if ``chunks`` raises or the write fails, the old object stays."""
        ...

    def open(self, key: str) -> AbstractContextManager[Iterator[bytes]]:
        """Stream the object back in chunks.

        The returned context manager owns the underlying handle and closes it on
        exit; the iterator must not be used after that. Raises
        :class:`ObjectNotFound` (on entering) if the key does not exist.
        """
        ...

    def stat(self, key: str) -> ObjectInfo:
        """Size of a complete object. Raises :class:`ObjectNotFound`."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Complete objects whose key starts with ``prefix``, sorted by key.

        Objects still being written are never listed.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove an object. Raises :class:`ObjectNotFound` if it does not exist."""
        ...

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove every object in ``keys``, in as few requests as the target allows.

        Keys that do not exist are skipped, not an error (retention may race a
        manual delete). Not atomic: on the first failure it raises that storage
        error, and objects removed before it stay removed. Each key is validated
        before the request that carries it.
        """
        ...

    def discard_incomplete(self) -> int:
        """Remove what interrupted ``put`` calls left behind (temporary files,
        unfinished multipart uploads) and return how many. Only safe while no
        ``put`` to this target is in progress anywhere."""
        ...

    def check_writable(self) -> None:
        """Raise the storage error a ``put`` would meet, without storing anything
        lasting, so a backup can fail before its dump starts."""
        ...


def validate_key(key: str) -> str:
    """Refuse keys that could escape the target or collide with temporary names
    (borgstore's ``validate_name``). Pure; every target calls it before any I/O."""
    parts = key.split("/")
    if not key or any(not _KEY_PART.fullmatch(part) for part in parts):
        raise InvalidName(
            f"invalid object key {key!r}: use letters, digits and _.=+- separated by '/'"
        )
    if any(PARTIAL_MARKER in part for part in parts):
        raise InvalidName(f"invalid object key {key!r}: '{PARTIAL_MARKER}' is reserved")
    return key
