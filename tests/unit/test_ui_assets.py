"""The dashboard's shipped files: the vendored htmx and uPlot are the ones
``static/vendor/assets.json`` pins, and pyproject's package data puts every file of
``static/`` and ``templates/`` in the wheel (a wheel build would take too long here)."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import pytest

from service.entrypoints.ui import vendor_assets
from service.entrypoints.ui.vendor_assets import VENDOR_DIR, verify_vendored

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "service" / "entrypoints" / "ui"


def test_the_vendored_files_match_assets_json() -> None:
    assert verify_vendored(VENDOR_DIR) == []
    manifest = json.loads((VENDOR_DIR / "assets.json").read_text())
    listed = {entry["file"] for entry in manifest["files"]}
    assert {"htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css",
            "htmx.LICENSE.txt", "uPlot.LICENSE.txt"} <= listed


def test_verify_vendored_names_a_missing_an_altered_and_an_unlisted_file(tmp_path: Path) -> None:
    copy = tmp_path / "vendor"
    shutil.copytree(VENDOR_DIR, copy)
    (copy / "htmx.min.js").unlink()
    (copy / "uPlot.min.css").write_text("/* changed */")
    (copy / "stray.js").write_text("")

    problems = verify_vendored(copy)

    assert len(problems) == 3, problems
    assert problems[0].startswith("htmx.min.js: missing")
    assert problems[1].startswith("uPlot.min.css: sha256 ")
    assert problems[2] == "stray.js: not listed in assets.json"
    (copy / "assets.json").unlink()
    assert verify_vendored(copy) == [f"{copy / 'assets.json'}: missing"]


def test_refresh_without_npm_is_one_line_and_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)

    assert vendor_assets.main(["--refresh"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "npm not found" in err


def test_package_data_ships_every_static_and_template_file() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service.entrypoints.ui"]
    files = [path for folder in ("static", "templates") if (UI / folder).is_dir()
             for path in sorted((UI / folder).rglob("*")) if path.is_file()
             and "__pycache__" not in path.parts]
    assert any(path.parent == VENDOR_DIR for path in files)

    # setuptools expands each glob as glob.glob(..., recursive=True) from the package
    # directory ("**" spans any number of directories, none included), as Path.glob does.
    shipped = {path for pattern in patterns for path in UI.glob(pattern) if path.is_file()}
    unshipped = [str(path.relative_to(UI)) for path in files if path not in shipped]

    assert unshipped == [], f"add a glob to [tool.setuptools.package-data]: {unshipped}"
