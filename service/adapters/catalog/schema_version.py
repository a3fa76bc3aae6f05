"""Which schema revision the migrations end at, and whether a SQLite catalog is there,
without importing SQLAlchemy or Alembic.

The head is read from the ``revision``/``down_revision`` literals of the files
in ``migrations/versions``; :mod:`service.adapters.catalog.db` uses it to skip
Alembic for a catalog already at the head, and
:mod:`service.adapters.catalog.sqlite_reader` to decide whether the CLI may read
a SQLite catalog with the standard library alone (a catalog behind the head is
left to the full path, which migrates it).
"""

from __future__ import annotations

import ast
import contextlib
import sqlite3
from functools import cache
from pathlib import Path

import migrations


def _module_literals(path: Path) -> dict[str, object]:
    """A file's module-level ``name = <literal>`` (or annotated) assignments."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            with contextlib.suppress(ValueError):
                found[target.id] = ast.literal_eval(value)
    return found


@cache
def script_heads() -> frozenset[str]:
    """The head revisions of ``migrations/versions``, read from the files'
    ``revision``/``down_revision`` literals without importing Alembic. Empty when
    a file is not that simple (``depends_on``, a computed value), which sends
    callers to Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    versions = Path(migrations.__file__).resolve().parent / "versions"
    for path in sorted(versions.glob("*.py")):
        if path.name == "__init__.py":
            continue
        values = _module_literals(path)
        revision, down = values.get("revision"), values.get("down_revision", ...)
        down = (down,) if isinstance(down, str) else (() if down is None else down)
        if not isinstance(revision, str) or values.get("depends_on") is not None or \
                not isinstance(down, tuple) or not all(isinstance(d, str) for d in down):
            return frozenset()
        revisions.add(revision)
        parents.update(str(d) for d in down)
    return frozenset(revisions - parents)


def sqlite_file_of(url: str) -> Path | None:
    """The database file of a plain ``sqlite:///PATH`` URL; None for anything else
    (PostgreSQL, in-memory, ``file:`` URIs, query options), which only the
    SQLAlchemy path handles."""
    scheme, sep, rest = url.strip().partition(":///")
    # A "%" would need SQLAlchemy's own unquoting rules: leave such paths to it.
    if not sep or scheme.lower() != "sqlite" or not rest or any(c in rest for c in "?%#"):
        return None
    if rest == ":memory:" or rest.startswith("file:"):
        return None
    return Path(rest)


def sqlite_schema_is_current(connection: sqlite3.Connection) -> bool:
    """True when the database records exactly the one head revision."""
    heads = script_heads()
    if len(heads) != 1:
        return False
    found = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                               "AND name = 'alembic_version'").fetchone()
    if found is None:
        return False
    recorded = [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
    return recorded == list(heads)
