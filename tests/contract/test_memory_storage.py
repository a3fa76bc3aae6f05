"""The ``memory://`` target runs the shared storage contract."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backup.storage import storage_from_url
from backup.storage.memory import MemoryStorage
from tests.contract.storage_contract import Leftovers, StorageContract


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        target = storage_from_url("scratch", "memory://scratch")
        assert isinstance(target, MemoryStorage)
        return target

    @pytest.fixture
    def leftovers(self, storage: MemoryStorage) -> Leftovers:
        return storage.pending_keys


def test_a_put_in_progress_is_invisible_until_its_stream_ends() -> None:
    storage = MemoryStorage("scratch", "memory://scratch")
    seen: list[list[str]] = []

    def chunks() -> Iterator[bytes]:
        yield b"first"
        seen.append([info.key for info in storage.list()])
        seen.append(storage.pending_keys())
        yield b"second"

    storage.put("a/b", chunks())
    assert seen == [[], ["a/b"]]
    assert [info.key for info in storage.list()] == ["a/b"]
    assert storage.pending_keys() == []
