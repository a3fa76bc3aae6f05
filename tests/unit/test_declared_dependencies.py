"""Every library the shipped packages import is one that installing Holdfast brings.

The test environment holds the test extras too (selenium, hypothesis, moto and
what they pull in), so a module can import fine here and still be missing from
a user's install: jinja2 was, once, and the Docker image's daemon died at start.
This reads every ``import`` in service/, backup/, restore/ and migrations/ with
``ast``, maps each top-level name to the distribution that provides it, and
requires that distribution to be a runtime dependency in pyproject.toml or a
requirement of one (its extras aside). No network, no Docker.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("service", "backup", "restore", "migrations")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_canonical(Requirement(r).name) for r in project["dependencies"]}


def _closure(names: set[str]) -> set[str]:
    """The distributions installing ``names`` brings here: requirements whose markers hold."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(_canonical(requirement.name))
    return seen


def _imported_top_levels() -> Iterator[tuple[str, Path]]:
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        yield alias.name.split(".")[0], path
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    yield node.module.split(".")[0], path


def test_every_third_party_import_is_a_runtime_dependency_or_one_of_theirs() -> None:
    installed = _closure(_declared())
    providers = metadata.packages_distributions()
    missing: dict[str, set[str]] = {}
    for module, path in _imported_top_levels():
        if module in sys.stdlib_module_names or module in SHIPPED:
            continue
        distributions = {_canonical(d) for d in providers.get(module, ())}
        assert distributions, f"{path.relative_to(ROOT)} imports {module}, which nothing provides"
        if not distributions & installed:
            missing.setdefault(module, set()).add(str(path.relative_to(ROOT)))
    assert not missing, f"imported but not a runtime dependency (pyproject.toml): {missing}"


def test_the_check_sees_a_library_only_the_test_extras_bring() -> None:
    # selenium is a test extra: were the check blind, it would pass this too.
    assert "selenium" not in _closure(_declared())
    assert "jinja2" in _closure(_declared())
