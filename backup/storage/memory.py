"""The ``memory://`` storage target: objects in a dict of this process, gone when it exits.

For tests and trials: the Docker-free use-case tier runs every use case
against it, and it passes the same storage contract as the disk and S3
targets. It holds whole objects in memory by design, so it is no place for
real snapshots. A ``put`` keeps its chunks aside until the stream has ended
cleanly and only then publishes the object, so a failing stream leaves nothing
behind, as the contract demands.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import urlparse

from backup.errors import ObjectExists, ObjectNotFound, StorageMisconfigured
from backup.storage.base import ObjectInfo, validate_key

_READ_CHUNK = 64 * 1024


class MemoryStorage:
    scheme: ClassVar[str] = "memory"

    def __init__(self, name: str, url: str) -> None:
        if urlparse(url).scheme != self.scheme:
            raise StorageMisconfigured(f"target {name!r}: {url!r} is not a memory:// URL")
        self.name = name
        self.url = url
        self._objects: dict[str, tuple[bytes, datetime]] = {}
        self._pending: dict[int, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStorage({self.name!r}, {len(self._objects)} objects)"

    def put(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        return self._store(key, chunks, replace=False)

    def replace(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        return self._store(key, chunks, replace=True)

    def _store(self, key: str, chunks: Iterable[bytes], *, replace: bool) -> ObjectInfo:
        validate_key(key)
        if key in self._objects and not replace:
            raise ObjectExists(f"target {self.name!r}: {key} already exists")
        token = id(chunks)
        with self._lock:
            self._pending[token] = key
        try:
            data = b"".join(chunks)
        finally:
            with self._lock:
                self._pending.pop(token, None)
        with self._lock:
            if key in self._objects and not replace:
                raise ObjectExists(f"target {self.name!r}: {key} already exists")
            self._objects[key] = (data, datetime.now(UTC))
        return ObjectInfo(key=key, size=len(data), modified=self._objects[key][1])

    def open(self, key: str) -> AbstractContextManager[Iterator[bytes]]:
        return self._open(validate_key(key))

    @contextmanager
    def _open(self, key: str) -> Iterator[Iterator[bytes]]:
        data = self._get(key)
        yield (data[at:at + _READ_CHUNK] for at in range(0, len(data), _READ_CHUNK))

    def stat(self, key: str) -> ObjectInfo:
        data = self._get(validate_key(key))
        return ObjectInfo(key=key, size=len(data), modified=self._objects[key][1])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        with self._lock:
            found = sorted((key, len(data), modified)
                           for key, (data, modified) in self._objects.items()
                           if key.startswith(prefix))
        for key, size, modified in found:
            yield ObjectInfo(key=key, size=size, modified=modified)

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._lock:
            if self._objects.pop(key, None) is None:
                raise ObjectNotFound(f"target {self.name!r}: no object {key}")

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            validate_key(key)
            with self._lock:
                self._objects.pop(key, None)

    def discard_incomplete(self) -> int:
        # A put in progress holds its data in its own frame; nothing is stored
        # until it completes, so there is never anything to sweep.
        return 0

    def check_writable(self) -> None:
        return None

    def pending_keys(self) -> builtins.list[str]:
        """Keys of puts still reading their stream (for tests of interrupted writes)."""
        with self._lock:
            return sorted(self._pending.values())

    def _get(self, key: str) -> bytes:
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            raise ObjectNotFound(f"target {self.name!r}: no object {key}")
        return entry[0]
