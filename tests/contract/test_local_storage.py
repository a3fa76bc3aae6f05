"""The ``file://`` target runs the shared storage contract, plus its own atomicity checks."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from backup.errors import StorageError, StorageMisconfigured
from backup.storage import storage_from_url
from backup.storage.local import LocalStorage
from tests.contract.storage_contract import Leftovers, StorageContract, failing_stream


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> LocalStorage:
        target = storage_from_url("local", (tmp_path / "snapshots").as_uri())
        assert isinstance(target, LocalStorage)
        return target

    @pytest.fixture
    def leftovers(self, tmp_path: Path) -> Leftovers:
        root = tmp_path / "snapshots"
        return lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_partial_file_is_invisible_while_writing(tmp_path: Path) -> None:
    storage = LocalStorage("local", tmp_path.as_uri())
    seen: list[list[str]] = []

    def watching() -> object:
        yield b"x" * 1000
        seen.append([info.key for info in storage.list()])
        seen.append([p.name for p in tmp_path.rglob("*") if p.is_file()])
        yield b"y"

    storage.put("i/s/data", watching())  # type: ignore[arg-type]
    assert seen[0] == []  # not listed while being written
    assert len(seen[1]) == 1 and seen[1][0].endswith(".partial")  # but it is on disk
    assert [info.key for info in storage.list()] == ["i/s/data"]


def test_sweep_removes_crash_leftovers(tmp_path: Path) -> None:
    storage = LocalStorage("local", tmp_path.as_uri())
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / ".data.abcd.partial").write_bytes(b"half")
    assert list(storage.list()) == []
    assert [p.name for p in storage.sweep_partials()] == [".data.abcd.partial"]
    assert not any(tmp_path.rglob("*.partial"))


def test_unwritable_directory_gives_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    storage = LocalStorage("local", (blocker / "snapshots").as_uri())
    with pytest.raises(StorageError) as caught:
        storage.check_writable()
    assert "\n" not in str(caught.value)
    assert str(blocker) in str(caught.value)
    with pytest.raises(StorageError):
        storage.put("a/b", failing_stream(0))


@pytest.mark.parametrize("url", ["file://relative/path", "s4://x", "file://host/abs"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(StorageMisconfigured):
        storage_from_url("x", url)


def test_errno_translation_names_the_fix(tmp_path: Path) -> None:
    storage = LocalStorage("local", tmp_path.as_uri())
    error = storage._translate(PermissionError(errno.EACCES, "Permission denied", "/x"), "write to")
    assert "fix the directory's permissions" in str(error)
