"""The ``file://`` storage target: a directory on local disk.

Writes are atomic in borgstore's ``posixfs`` manner: data goes to a temporary
``.partial`` name in the destination directory, is fsynced, renamed over the
final name and the directory is fsynced, so a crash at any moment leaves either
the whole object or no object under its key. Leftover ``.partial`` files are
invisible to ``list`` and can be swept with :meth:`LocalStorage.sweep_partials`.
"""

from __future__ import annotations

import builtins
import errno
import os
import secrets
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlparse

from backup.errors import (
    ObjectExists,
    ObjectNotFound,
    StorageError,
    StorageMisconfigured,
    StoragePermissionDenied,
    StorageUnavailable,
)
from backup.storage.base import PARTIAL_MARKER, ObjectInfo, validate_key
from backup.streams import CHUNK_SIZE


class LocalStorage:
    scheme: ClassVar[str] = "file"

    def __init__(self, name: str, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
            raise StorageMisconfigured(
                f"target {name!r}: {url!r} is not a file:// URL; use file:///absolute/path"
            )
        path = Path(unquote(parsed.path))
        if not path.is_absolute():
            raise StorageMisconfigured(f"target {name!r}: use an absolute path, file:///abs/path")
        self.name = name
        self.url = url
        self.root = path

    def __repr__(self) -> str:
        return f"LocalStorage({self.name!r}, {str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _translate(self, exc: OSError, action: str) -> StorageError:
        where = exc.filename or self.root
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
            return StoragePermissionDenied(
                f"target {self.name!r}: cannot {action} {where} ({exc.strerror}); "
                f"fix the directory's permissions or set HOLDFAST_TARGET_{self.name.upper()} "
                "to a writable file:/// path"
            )
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return StorageUnavailable(f"target {self.name!r}: no space left at {where}")
        return StorageError(f"target {self.name!r}: cannot {action} {where}: {exc.strerror}")

    def check_writable(self) -> None:
        probe = self.root / f".probe-{secrets.token_hex(4)}{PARTIAL_MARKER}"
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise self._translate(exc, "write to") from exc

    def put(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        final = self._path(key)
        if final.exists():
            raise ObjectExists(f"target {self.name!r}: object {key} already exists")
        return self._write(key, final, chunks)

    def replace(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        # os.replace over the old file is atomic on POSIX, as for a new one.
        return self._write(key, self._path(key), chunks)

    def _write(self, key: str, final: Path, chunks: Iterable[bytes]) -> ObjectInfo:
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(4)}{PARTIAL_MARKER}")
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            handle = open(temporary, "xb")  # noqa: SIM115 - closed in finally below
        except OSError as exc:
            raise self._translate(exc, "write to") from exc
        size = 0
        try:
            try:
                for chunk in chunks:
                    handle.write(chunk)
                    size += len(chunk)
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                handle.close()
            os.replace(temporary, final)
            _fsync_directory(final.parent)
        except BaseException as exc:
            temporary.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise self._translate(exc, "write to") from exc
            raise
        return ObjectInfo(key=key, size=size, modified=_mtime(final))

    def open(self, key: str) -> AbstractContextManager[Iterator[bytes]]:
        return self._open(key)

    @contextmanager
    def _open(self, key: str) -> Iterator[Iterator[bytes]]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the context manager
        except FileNotFoundError:
            raise ObjectNotFound(f"target {self.name!r}: no object {key}") from None
        except OSError as exc:
            raise self._translate(exc, "read") from exc
        with handle:
            yield iter(lambda: handle.read(CHUNK_SIZE), b"")

    def stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            return ObjectInfo(key=key, size=path.stat().st_size, modified=_mtime(path))
        except FileNotFoundError:
            raise ObjectNotFound(f"target {self.name!r}: no object {key}") from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        found: list[ObjectInfo] = []
        for directory, subdirs, files in os.walk(self.root):
            subdirs[:] = [d for d in subdirs if not d.startswith(".")]
            for filename in files:
                if filename.startswith(".") or PARTIAL_MARKER in filename:
                    continue
                path = Path(directory, filename)
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    stat = path.stat()
                    found.append(ObjectInfo(key, stat.st_size, _from_timestamp(stat.st_mtime)))
        yield from sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ObjectNotFound(f"target {self.name!r}: no object {key}") from None
        except OSError as exc:
            raise self._translate(exc, "delete") from exc
        # Snapshot directories would otherwise pile up empty after retention.
        parent = path.parent
        while parent != self.root and parent.is_relative_to(self.root):
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            with suppress(ObjectNotFound):
                self.delete(key)

    def discard_incomplete(self) -> int:
        return len(self.sweep_partials())

    def sweep_partials(self) -> builtins.list[Path]:
        """Remove temporary files left by writes that never finished (a crash)."""
        removed: builtins.list[Path] = []
        if self.root.is_dir():
            for path in self.root.rglob(f"*{PARTIAL_MARKER}"):
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _mtime(path: Path) -> datetime:
    return _from_timestamp(path.stat().st_mtime)


def _from_timestamp(stamp: float) -> datetime:
    return datetime.fromtimestamp(stamp, UTC)
