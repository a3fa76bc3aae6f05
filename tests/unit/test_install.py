"""The installer's own parts (service/install.py), without a network.

The index is a directory served on 127.0.0.1 (PEP 691 JSON pages), and the pip
wheel in it is the one this interpreter's ensurepip bundles, so the real
bootstrap (a venv made ``--without-pip``, pip installing itself from its wheel)
runs offline. The fresh-machine run of the whole command is
tests/integration/test_fresh_install.py.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import install

PY311 = (3, 11)


def _file(filename: str, sha256: str = "ab" * 32, **extra: object) -> dict[str, object]:
    return {"filename": filename, "url": f"../../files/{filename}",
            "hashes": {"sha256": sha256}, **extra}


def test_choose_takes_the_newest_final_wheel_and_resolves_its_url() -> None:
    page = {"files": [_file("pip-9.0.1-py2.py3-none-any.whl"), _file("pip-24.0-py3-none-any.whl"),
                      _file("pip-24.10-py3-none-any.whl"), _file("pip-25.0b1-py3-none-any.whl"),
                      _file("pip-24.2.tar.gz")]}
    chosen = install.choose_pip_wheel(page, "https://example.test/simple/pip/", PY311)
    assert chosen.filename == "pip-24.10-py3-none-any.whl"
    assert chosen.url == "https://example.test/files/pip-24.10-py3-none-any.whl"


def test_choose_skips_yanked_unhashed_and_too_new_wheels() -> None:
    page = {"files": [_file("pip-30.0-py3-none-any.whl", yanked="broken"),
                      _file("pip-29.0-py3-none-any.whl", **{"requires-python": ">=3.13"}),
                      {"filename": "pip-28.0-py3-none-any.whl", "url": "x", "hashes": {}},
                      _file("pip-27.0-py3-none-any.whl", **{"requires-python": ">=3.9"})]}
    chosen = install.choose_pip_wheel(page, "https://example.test/simple/pip/", PY311)
    assert chosen.filename == "pip-27.0-py3-none-any.whl"


def test_choose_refuses_a_page_without_a_usable_wheel() -> None:
    with pytest.raises(install.InstallError, match=r"offers no pip wheel for Python 3\.11"):
        install.choose_pip_wheel({"files": [_file("pip-1.0.tar.gz")]}, "https://x/pip/", PY311)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on loopback: (its root, its base URL)."""
    root = tmp_path / "index"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def publish(root: Path, wheel_name: str, content: bytes, sha256: str) -> None:
    """A PEP 691 page for pip (index.html, which the server sends for the directory)."""
    (root / "files").mkdir(exist_ok=True)
    (root / "files" / wheel_name).write_bytes(content)
    page = root / "simple" / "pip"
    page.mkdir(parents=True, exist_ok=True)
    (page / "index.html").write_text(json.dumps({"meta": {"api-version": "1.1"}, "name": "pip",
                                                 "files": [_file(wheel_name, sha256)]}))


def test_a_wheel_whose_hash_differs_from_the_index_is_refused_and_removed(
        index: tuple[Path, str], tmp_path: Path) -> None:
    root, base = index
    publish(root, "pip-99.0-py3-none-any.whl", b"not the wheel the index describes",
            hashlib.sha256(b"the real wheel").hexdigest())
    page, url = install.fetch_pip_page(f"{base}/simple")
    wheel = install.choose_pip_wheel(page, url, PY311)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with pytest.raises(install.InstallError) as raised:
        install.download_verified(wheel, downloads)
    assert raised.value.exit_code == 2
    assert "sha256" in str(raised.value) and "not installing it" in str(raised.value)
    assert list(downloads.iterdir()) == []


def test_a_matching_wheel_is_kept(index: tuple[Path, str], tmp_path: Path) -> None:
    root, base = index
    content = b"pretend wheel"
    publish(root, "pip-99.0-py3-none-any.whl", content, hashlib.sha256(content).hexdigest())
    page, url = install.fetch_pip_page(f"{base}/simple")
    path = install.download_verified(install.choose_pip_wheel(page, url, PY311), tmp_path)
    assert path.read_bytes() == content


def test_without_ensurepip_or_an_index_it_names_the_system_package_in_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setattr(install, "has_ensurepip", lambda: False)
    # Nothing listens on port 9 of loopback: the download fails at once.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    code = install.main(["--venv", str(tmp_path / "venv")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1, err
    assert err.startswith("holdfast install: ") and "apt-get install python3-venv" in err


def test_a_path_that_is_not_a_venv_is_refused(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "keep.txt").write_text("mine")
    assert install.main(["--venv", str(tmp_path / "stuff")]) == 2
    assert "is not a virtual environment" in capsys.readouterr().err
    assert (tmp_path / "stuff" / "keep.txt").read_text() == "mine"


def _bundled_pip() -> Path:
    import ensurepip

    wheels = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    if not wheels:
        pytest.skip("this interpreter's ensurepip bundles no pip wheel")
    return wheels[-1]


def test_pip_is_bootstrapped_from_the_index_into_a_venv_made_without_it(
        index: tuple[Path, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real path of a Debian without python3-venv, offline: venv --without-pip, the
    index's checked pip wheel installs itself; a second run reuses the venv."""
    root, base = index
    wheel = _bundled_pip()
    publish(root, wheel.name, wheel.read_bytes(), hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(install, "has_ensurepip", lambda: False)
    installed: list[list[str]] = []
    monkeypatch.setattr(install, "install_checkout",
                        lambda python, checkout, extras: installed.append(extras))
    venv = tmp_path / "venv"

    python = install.install(venv, ["test"], f"{base}/simple")

    assert python == install.venv_python(venv)
    assert install._runs([str(python), "-m", "pip", "--version"])
    marker = venv / "reused"
    marker.write_text("")
    with contextlib.suppress(FileNotFoundError):
        (root / "files" / wheel.name).unlink()  # a second run must not need the index
    install.install(venv, ["test"], f"{base}/simple")
    assert marker.exists()
    assert installed == [["test"], ["test"]]
