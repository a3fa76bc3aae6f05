"""The contract every storage target must meet, as a reusable test mixin.

In the manner of fsspec's abstract tests: a target's test class inherits
:class:`StorageContract` and supplies two fixtures, ``storage`` (a fresh, empty
target) and ``leftovers`` (a callable listing anything the target physically
holds, temporary and hidden objects included, so "nothing left behind" is
checked below the interface, not only through ``list``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator

import pytest

from backup.errors import InvalidName, ObjectExists, ObjectNotFound
from backup.storage import Storage

Leftovers = Callable[[], list[str]]


class Boom(RuntimeError):
    """Raised by a test stream in the middle of an upload."""


def failing_stream(good_chunks: int, chunk: bytes = b"x" * 65536) -> Iterator[bytes]:
    for _ in range(good_chunks):
        yield chunk
    raise Boom("the dump broke")


def _strays(held: list[str], keys: tuple[str, ...]) -> list[str]:
    """What a target holds besides the objects ``keys`` (a target's own prefix
    allowed): temporary files, unfinished uploads."""
    return [item for item in held if item.startswith("unfinished") or not item.endswith(keys)]


class StorageContract:
    def test_round_trip_preserves_bytes(self, storage: Storage) -> None:
        chunks = [os.urandom(100_000) for _ in range(25)] + [b"", b"tail"]
        info = storage.put("inst/snap1/data.hfa.zst", iter(chunks))
        expected = b"".join(chunks)
        assert info.key == "inst/snap1/data.hfa.zst"
        assert info.size == len(expected)
        assert storage.stat("inst/snap1/data.hfa.zst").size == len(expected)
        digest = hashlib.sha256()
        with storage.open("inst/snap1/data.hfa.zst") as stream:
            for piece in stream:
                digest.update(piece)
        assert digest.hexdigest() == hashlib.sha256(expected).hexdigest()

    def test_empty_object(self, storage: Storage) -> None:
        storage.put("a/empty", iter([]))
        with storage.open("a/empty") as stream:
            assert b"".join(stream) == b""

    def test_list_is_sorted_and_filtered_by_prefix(self, storage: Storage) -> None:
        keys = ["b/2/manifest.json", "a/1/data.hfa.zst", "b/10/data.hfa.zst", "a/1/manifest.json",
                "ab/x"]
        for key in keys:
            storage.put(key, [key.encode()])
        assert [info.key for info in storage.list()] == sorted(keys)
        assert [info.key for info in storage.list("a/")] == ["a/1/data.hfa.zst",
                                                             "a/1/manifest.json"]
        assert [info.size for info in storage.list("b/2/")] == [len(b"b/2/manifest.json")]

    def test_failing_stream_leaves_nothing_behind(self, storage: Storage,
                                                  leftovers: Leftovers) -> None:
        with pytest.raises(Boom):
            storage.put("inst/snap/data.hfa.zst", failing_stream(20))
        assert list(storage.list()) == []
        assert leftovers() == []
        with pytest.raises(ObjectNotFound):
            storage.stat("inst/snap/data.hfa.zst")

    def test_existing_object_is_never_overwritten(self, storage: Storage) -> None:
        storage.put("k/one", [b"first"])
        with pytest.raises(ObjectExists):
            storage.put("k/one", [b"second"])
        with storage.open("k/one") as stream:
            assert b"".join(stream) == b"first"

    def test_replace_overwrites_or_creates(self, storage: Storage, leftovers: Leftovers) -> None:
        storage.put("k/manifest.json", [b"first"])
        info = storage.replace("k/manifest.json", [b"sec", b"ond!"])
        assert info.size == len(b"second!")
        with storage.open("k/manifest.json") as stream:
            assert b"".join(stream) == b"second!"
        storage.replace("k/new", [b"fresh"])
        assert [i.key for i in storage.list("k/")] == ["k/manifest.json", "k/new"]
        assert _strays(leftovers(), ("k/manifest.json", "k/new")) == []

    def test_failing_replace_keeps_the_old_object(self, storage: Storage,
                                                  leftovers: Leftovers) -> None:
        storage.put("k/manifest.json", [b"old"])
        with pytest.raises(Boom):
            storage.replace("k/manifest.json", failing_stream(3))
        with storage.open("k/manifest.json") as stream:
            assert b"".join(stream) == b"old"
        assert _strays(leftovers(), ("k/manifest.json",)) == []

    def test_delete_and_missing_objects(self, storage: Storage, leftovers: Leftovers) -> None:
        storage.put("k/gone", [b"data"])
        storage.delete("k/gone")
        assert list(storage.list()) == []
        assert leftovers() == []
        with pytest.raises(ObjectNotFound):
            storage.delete("k/gone")
        with pytest.raises(ObjectNotFound), storage.open("k/gone") as stream:
            next(stream)

    @pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "a/b.partial", ".hidden/x"])
    def test_bad_keys_are_refused_before_any_io(self, storage: Storage, key: str) -> None:
        with pytest.raises(InvalidName):
            storage.put(key, [b"x"])

    def test_check_writable_passes_and_leaves_nothing(self, storage: Storage,
                                                      leftovers: Leftovers) -> None:
        storage.check_writable()
        assert leftovers() == []
