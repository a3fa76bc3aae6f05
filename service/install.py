"""Install Holdfast from this checkout into a virtual environment, needing only python3.

``python3 -m service.install [--extras test] [--venv PATH]`` is the README's install
command and the first step of ``.ci/run``. A system Python on Debian 12 or Ubuntu
24.04 refuses ``pip install`` (PEP 668, "externally-managed-environment"), so the
checkout goes into a venv (``.venv`` in the checkout unless ``--venv`` says
otherwise), created with the standard library's ``venv``. Where ``ensurepip`` is
missing (Debian and Ubuntu ship it in ``python3-venv``), the venv is made
``--without-pip`` and pip is bootstrapped from the package index instead: the
newest pip wheel is found through the index's JSON API (PEP 691; ``PIP_INDEX_URL``
if set, else PyPI), downloaded, checked against the index's sha256, and run as a
zip to install itself. Only if that is impossible does the command stop, with one
line naming the system package to install (exit 2). Re-running reuses the venv and
only re-runs pip. The venv's pip reads the machine's pip configuration
(``/etc/pip.conf``, ``PIP_*`` variables) by itself. This module imports nothing
but the standard library and must stay that way: it runs before anything is
installed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]
DEFAULT_INDEX = "https://pypi.org/simple"
MIN_PYTHON = (3, 11)
SYSTEM_PACKAGE_HINT = "apt-get install python3-venv"
# PEP 691: ask for the JSON form of the simple API (PyPI, devpi, most mirrors).
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json"
DOWNLOAD_TIMEOUT_S = 60.0
_FINAL_VERSION = re.compile(r"pip-(\d+(?:\.\d+)*)-py3-none-any\.whl")
_MIN_REQUIRES = re.compile(r">=\s*(\d+)\.(\d+)")


class InstallError(Exception):
    """A failure the user can act on; its message is the one line printed."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class WheelRef:
    """One pip wheel offered by the index: where it is and what its sha256 must be."""

    filename: str
    url: str
    sha256: str


def say(message: str, *, error: bool = False) -> None:
    """One ``holdfast install:`` line on stdout, or on stderr for a failure."""
    stream = sys.stderr if error else sys.stdout
    stream.write(f"holdfast install: {message}\n")
    stream.flush()


def venv_python(venv: Path) -> Path:
    """The venv's interpreter (``bin/python``; ``Scripts\\python.exe`` on Windows)."""
    if os.name == "nt":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _runs(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              check=False).returncode == 0
    except OSError:
        return False


def has_ensurepip() -> bool:
    """Whether this interpreter can put pip into a new venv by itself."""
    import importlib.util

    return importlib.util.find_spec("ensurepip") is not None


def create_venv(venv: Path, *, with_pip: bool) -> None:
    """Make the venv with ``python3 -m venv``; an existing healthy one is kept as it is.

    A directory that has a ``pyvenv.cfg`` but no working interpreter (the system
    Python it pointed to was upgraded or removed) is recreated; any other existing
    path that is not a venv is refused rather than written into.
    """
    if _runs([str(venv_python(venv)), "-c", "import sys"]):
        return
    args = [sys.executable, "-m", "venv"]
    if venv.exists():
        if not (venv / "pyvenv.cfg").is_file():
            raise InstallError(f"{venv} exists and is not a virtual environment; "
                               "remove it or choose another --venv", exit_code=2)
        say(f"{venv} is a broken virtual environment; recreating it")
        args.append("--clear")
    if not with_pip:
        args.append("--without-pip")
    proc = subprocess.run([*args, str(venv)], check=False)
    if proc.returncode != 0:
        raise InstallError(f"`python3 -m venv {venv}` failed (exit {proc.returncode}); "
                           f"install the system package: {SYSTEM_PACKAGE_HINT}", exit_code=2)


def _version_key(filename: str) -> tuple[int, ...] | None:
    match = _FINAL_VERSION.fullmatch(filename)
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


def _supports(requires_python: str | None, python: tuple[int, int]) -> bool:
    """Only the ``>=X.Y`` lower bound matters for pip: new releases drop old Pythons."""
    if not requires_python:
        return True
    match = _MIN_REQUIRES.search(requires_python)
    return match is None or python >= (int(match.group(1)), int(match.group(2)))


def choose_pip_wheel(page: Mapping[str, object], page_url: str,
                     python: tuple[int, int]) -> WheelRef:
    """The newest final, non-yanked, pure-Python pip wheel with a sha256 that
    supports ``python``, from a PEP 691 project page; relative URLs are resolved."""
    best: tuple[tuple[int, ...], WheelRef] | None = None
    files = page.get("files")
    for entry in files if isinstance(files, list) else []:
        if not isinstance(entry, dict) or entry.get("yanked"):
            continue
        filename = str(entry.get("filename", ""))
        version = _version_key(filename)
        hashes = entry.get("hashes")
        sha256 = hashes.get("sha256") if isinstance(hashes, dict) else None
        if version is None or not sha256 or not _supports(entry.get("requires-python"), python):
            continue
        ref = WheelRef(filename, urllib.parse.urljoin(page_url, str(entry["url"])), str(sha256))
        if best is None or version > best[0]:
            best = (version, ref)
    if best is None:
        raise InstallError(f"the package index at {page_url} offers no pip wheel for "
                           f"Python {python[0]}.{python[1]}")
    return best[1]


def _ssl_context() -> ssl.SSLContext:
    # pip's own CA setting, so the bootstrap trusts what pip will trust later.
    return ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)


def _open(url: str, accept: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    context = _ssl_context() if url.startswith("https:") else None
    return urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S, context=context)


def fetch_pip_page(index: str) -> tuple[dict[str, object], str]:
    """The index's JSON project page for pip, and its URL."""
    url = index.rstrip("/") + "/pip/"
    with _open(url, JSON_ACCEPT) as response:
        body = response.read()
    try:
        page = json.loads(body)
    except ValueError:
        raise InstallError(f"the package index at {url} does not offer the JSON API "
                           "(PEP 691)") from None
    if not isinstance(page, dict):
        raise InstallError(f"the package index at {url} answered something else than a "
                           "project page")
    return page, url


def download_verified(wheel: WheelRef, directory: Path) -> Path:
    """Download ``wheel`` into ``directory``; nothing is kept unless its sha256 matches."""
    target = directory / Path(urllib.parse.urlparse(wheel.url).path).name
    digest = hashlib.sha256()
    try:
        with _open(wheel.url) as response, target.open("wb") as out:
            while chunk := response.read(1 << 16):
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    if digest.hexdigest() != wheel.sha256.lower():
        target.unlink()
        raise InstallError(f"the downloaded {wheel.filename} has sha256 {digest.hexdigest()}, "
                           f"the index says {wheel.sha256}: not installing it; "
                           f"install the system package instead: {SYSTEM_PACKAGE_HINT}",
                           exit_code=2)
    return target


def bootstrap_pip(python: Path, index: str) -> None:
    """Put pip into a venv made without it: the index's newest pip wheel, checked,
    installs itself (a wheel is importable as a zip, so its own pip runs from it)."""
    try:
        page, page_url = fetch_pip_page(index)
        wheel = choose_pip_wheel(page, page_url, sys.version_info[:2])
        say(f"no ensurepip here; bootstrapping {wheel.filename} "
            f"from {urllib.parse.urlparse(page_url).netloc or page_url}")
        with tempfile.TemporaryDirectory(prefix="holdfast-pip-") as tmp:
            path = download_verified(wheel, Path(tmp))
            proc = subprocess.run([str(python), f"{path}/pip", "install", "--no-index",
                                   "--disable-pip-version-check", "-q", str(path)], check=False)
    except InstallError as error:
        if error.exit_code == 2:
            raise
        raise InstallError(f"cannot put pip into the venv ({error}); install the system "
                           f"package: {SYSTEM_PACKAGE_HINT}", exit_code=2) from None
    except (OSError, urllib.error.URLError, ssl.SSLError) as error:
        reason = getattr(error, "reason", None) or error
        raise InstallError(f"cannot put pip into the venv: ensurepip is missing and pip "
                           f"could not be downloaded from {index} ({reason}); install the "
                           f"system package: {SYSTEM_PACKAGE_HINT}", exit_code=2) from None
    if proc.returncode != 0:
        raise InstallError(f"the downloaded pip could not install itself (exit {proc.returncode}); "
                           f"install the system package: {SYSTEM_PACKAGE_HINT}", exit_code=2)


def install_checkout(python: Path, checkout: Path, extras: list[str]) -> None:
    """``pip install -e CHECKOUT[extras]`` with the venv's pip (editable, so edits to the
    checkout need no reinstall; the packaging tests check a real wheel separately)."""
    target = f"{checkout}[{','.join(extras)}]" if extras else str(checkout)
    proc = subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check",
                           "-q", "-e", target], check=False)
    if proc.returncode != 0:
        raise InstallError(f"pip could not install {target} (exit {proc.returncode}); "
                           "its messages are above")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it (for the hint)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def install(venv: Path, extras: list[str], index: str) -> Path:
    """Create or reuse ``venv``, make sure it has pip, install the checkout; its python."""
    if sys.version_info[:2] < MIN_PYTHON:
        raise InstallError(f"Holdfast needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer; "
                           f"{sys.executable} is {sys.version.split()[0]}", exit_code=2)
    create_venv(venv, with_pip=has_ensurepip())
    python = venv_python(venv)
    if not _runs([str(python), "-m", "pip", "--version"]):
        bootstrap_pip(python, index)
    install_checkout(python, CHECKOUT, extras)
    return python


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python3 -m service.install",
        description="Install Holdfast from this checkout into a virtual environment.")
    parser.add_argument("--venv", type=Path, default=CHECKOUT / ".venv",
                        help="where the venv is (default: .venv in the checkout)")
    parser.add_argument("--extras", action="append", default=[],
                        help="optional dependencies to add, e.g. `test` (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    venv = args.venv.absolute()
    extras = [name for value in args.extras for name in value.split(",") if name]
    index = os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX
    try:
        install(venv, extras, index)
    except InstallError as error:
        say(str(error), error=True)
        return error.exit_code
    bin_dir = _shown(venv_python(venv).parent)
    say(f"installed into {_shown(venv)}. "
        f"Run `{bin_dir}/holdfast serve`, or `. {bin_dir}/activate` to put holdfast on PATH.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
