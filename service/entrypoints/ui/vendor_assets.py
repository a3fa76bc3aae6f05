"""The dashboard's vendored third-party web assets (htmx, uPlot): pinned and checked.

The dashboard must work with no network, so the scripts and styles it uses from
npm packages are copied into ``static/vendor/`` and shipped in the wheel, never
loaded from a CDN. ``static/vendor/assets.json`` lists every vendored file: the
npm package and exact version it came from, its path inside that package and its
sha256. :func:`verify_vendored` checks the directory against that list (the unit
tests call it); ``python -m service.entrypoints.ui.vendor_assets`` does the same
from a shell (exit 1 on a problem).

``python -m service.entrypoints.ui.vendor_assets --refresh`` is a maintainer's tool:
it downloads each listed ``package@version`` with ``npm pack`` into a temporary
directory, copies the listed files over the vendored ones and rewrites
``assets.json`` with their new sha256. To upgrade a package, edit its version in
``assets.json`` and refresh. It needs ``npm`` and the registry; without ``npm`` it
says so in one line and exits 2. Nothing at run time imports this module.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

VENDOR_DIR = Path(__file__).resolve().parent / "static" / "vendor"
MANIFEST = "assets.json"
_COMMENT = (
    "Vendored web assets for the dashboard (no CDN). Checked by "
    "service/entrypoints/ui/vendor_assets.py and tests/unit/test_ui_assets.py; "
    "refresh with `python -m service.entrypoints.ui.vendor_assets --refresh`."
)


@dataclass(frozen=True)
class Asset:
    """One vendored file: ``file`` in the vendor directory, copied from ``path``
    inside the npm package ``package`` at ``version``."""

    file: str
    package: str
    version: str
    path: str
    sha256: str


class ManifestError(ValueError):
    """``assets.json`` is missing or not the expected shape."""


def sha256_of(path: Path) -> str:
    """The hex sha256 of the file at ``path``."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_manifest(directory: Path | str = VENDOR_DIR) -> list[Asset]:
    """The assets listed in ``directory/assets.json``; :class:`ManifestError` if it
    is missing or malformed."""
    manifest = Path(directory) / MANIFEST
    try:
        data: Any = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ManifestError(f"{manifest}: missing") from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{manifest}: unreadable: {exc}") from exc
    entries = data.get("files") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ManifestError(f"{manifest}: no \"files\" list")
    assets: list[Asset] = []
    for number, entry in enumerate(entries):
        fields = ("file", "package", "version", "path", "sha256")
        if not isinstance(entry, dict) or not all(
            isinstance(entry.get(name), str) for name in fields
        ):
            raise ManifestError(
                f"{manifest}: files[{number}] needs string fields {', '.join(fields)}"
            )
        asset = Asset(**{name: entry[name] for name in fields})
        if PurePosixPath(asset.file).name != asset.file or asset.file in ("", ".", ".."):
            raise ManifestError(f"{manifest}: files[{number}]: {asset.file!r} is not a file name")
        assets.append(asset)
    return assets


def write_manifest(directory: Path | str, assets: list[Asset]) -> None:
    """Write ``directory/assets.json`` listing ``assets`` (sorted by file name)."""
    data = {
        "comment": _COMMENT,
        "files": [asdict(asset) for asset in sorted(assets, key=lambda a: a.file)],
    }
    text = json.dumps(data, indent=2) + "\n"
    (Path(directory) / MANIFEST).write_text(text, encoding="utf-8")


def verify_vendored(directory: Path | str = VENDOR_DIR) -> list[str]:
    """The problems with the vendored files in ``directory``, one line each; empty
    when every file ``assets.json`` lists is there with its sha256 and no other
    file is (an unlisted file would ship unpinned)."""
    directory = Path(directory)
    try:
        assets = load_manifest(directory)
    except ManifestError as exc:
        return [str(exc)]
    problems: list[str] = []
    for asset in assets:
        target = directory / asset.file
        if not target.is_file():
            problems.append(f"{asset.file}: missing (from {asset.package}@{asset.version})")
            continue
        actual = sha256_of(target)
        if actual != asset.sha256:
            problems.append(
                f"{asset.file}: sha256 {actual} but assets.json says {asset.sha256} "
                f"({asset.package}@{asset.version} {asset.path})"
            )
    listed = {asset.file for asset in assets} | {MANIFEST}
    problems.extend(
        f"{entry.name}: not listed in {MANIFEST}"
        for entry in sorted(directory.iterdir())
        if entry.name not in listed
    )
    return problems


class NpmMissing(RuntimeError):
    """``npm`` is not on ``PATH``."""


def _npm_pack(spec: str, into: Path) -> Path:
    """Download the npm package ``spec`` (``name@version``) as a tarball into
    ``into`` and unpack it; the package's root directory."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmMissing("npm")
    result = subprocess.run(
        [npm, "pack", "--json", "--ignore-scripts", "--pack-destination", str(into), spec],
        cwd=into, capture_output=True, text=True, check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"npm pack {spec} failed (exit {result.returncode}): {last}")
    packed: Any = json.loads(result.stdout)
    tarball = into / str(packed[0]["filename"])
    unpacked = into / f"{packed[0]['name']}-{packed[0]['version']}".replace("/", "_")
    with tarfile.open(tarball) as archive:
        archive.extractall(unpacked, filter="data")
    return unpacked / "package"


def refresh(directory: Path | str = VENDOR_DIR) -> list[Asset]:
    """Re-download every ``package@version`` listed in ``directory/assets.json`` with
    ``npm pack``, copy the listed files into ``directory`` and rewrite the manifest
    with their sha256. The refreshed assets; :class:`NpmMissing` without npm."""
    directory = Path(directory)
    assets = load_manifest(directory)
    refreshed: list[Asset] = []
    with tempfile.TemporaryDirectory(prefix="holdfast-vendor-") as temp:
        roots: dict[str, Path] = {}
        for asset in assets:
            spec = f"{asset.package}@{asset.version}"
            if spec not in roots:
                roots[spec] = _npm_pack(spec, Path(temp))
            source = roots[spec] / PurePosixPath(asset.path)
            if not source.is_file():
                raise RuntimeError(f"{spec} has no file {asset.path}")
            shutil.copyfile(source, directory / asset.file)
            refreshed.append(
                Asset(asset.file, asset.package, asset.version, asset.path,
                      sha256_of(directory / asset.file))
            )
    write_manifest(directory, refreshed)
    return refreshed


def main(argv: list[str] | None = None) -> int:
    """Check the vendored assets (exit 1 on a problem), or ``--refresh`` them."""
    parser = argparse.ArgumentParser(
        prog="python -m service.entrypoints.ui.vendor_assets",
        description="Check, or with --refresh re-download, the dashboard's vendored assets.",
    )
    parser.add_argument("--refresh", action="store_true",
                        help="re-download the versions assets.json lists (needs npm)")
    parser.add_argument("--dir", type=Path, default=VENDOR_DIR,
                        help="the vendor directory (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.refresh:
        try:
            assets = refresh(args.dir)
        except NpmMissing:
            sys.stderr.write("vendor_assets: npm not found on PATH; --refresh needs it "
                             "(apt-get install npm)\n")
            return 2
        except (ManifestError, RuntimeError, OSError, ValueError) as exc:
            sys.stderr.write(f"vendor_assets: {exc}\n")
            return 1
        for asset in assets:
            sys.stdout.write(f"{asset.file}: {asset.package}@{asset.version} "
                             f"{asset.path} sha256 {asset.sha256}\n")
        return 0
    problems = verify_vendored(args.dir)
    for problem in problems:
        sys.stderr.write(f"vendor_assets: {problem}\n")
    if not problems:
        sys.stdout.write(f"vendor_assets: {args.dir} matches {MANIFEST}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
