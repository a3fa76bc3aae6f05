"""The layout's rules, checked on the source: layers, import direction, no cycles, sizes.

Read from the files with :mod:`ast` (nothing is imported), so a change that
breaks a rule fails here with the offending module named, not in review.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("backup", "restore", "service", "migrations")
HEAVY = ("docker", "fastapi", "sqlalchemy", "alembic", "apscheduler", "uvicorn", "typer",
         "prometheus_client")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _top_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports that run when the module loads: module level, including under
    ``try``/``if`` (but not ``if TYPE_CHECKING``), excluding function bodies."""
    pending: list[ast.stmt] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            pending.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend(node.body + node.orelse + node.finalbody)


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".")[: len(module.split(".")) - node.level + (
            1 if MODULES[module].name == "__init__.py" else 0)]
        base = ".".join([*package, base] if base else package)
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names]


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = {target for node in _top_level_imports(tree)
                       for target in _imported(name, node)}
    return graph


GRAPH = _graph()


def _imports_of(prefix: str) -> Iterator[tuple[str, str]]:
    for module, targets in GRAPH.items():
        if module == prefix or module.startswith(prefix + "."):
            for target in sorted(targets):
                yield module, target


def _under(target: str, roots: tuple[str, ...]) -> bool:
    return any(target == root or target.startswith(root + ".") for root in roots)


@pytest.mark.parametrize("domain", ["backup", "restore"])
def test_the_domain_has_no_heavy_imports_and_never_imports_the_service(domain: str) -> None:
    wrong = [(m, t) for m, t in _imports_of(domain) if _under(t, (*HEAVY, "service"))]
    assert wrong == []


@pytest.mark.parametrize(("layer", "forbidden"), [
    ("service.usecases", ("service.entrypoints", "service.adapters.docker")),
    ("service.adapters", ("service.usecases", "service.entrypoints")),
    ("service.ports", ("service.usecases", "service.entrypoints", "service.adapters.docker")),
    ("service.bootstrap", ("service.usecases", "service.entrypoints")),
    ("service.records", ("service.usecases", "service.entrypoints", "service.adapters")),
])
def test_layers_only_import_downwards(layer: str, forbidden: tuple[str, ...]) -> None:
    wrong = [(m, t) for m, t in _imports_of(layer) if _under(t, forbidden)]
    assert wrong == []


def test_labels_do_not_import_engines() -> None:
    assert [t for t in GRAPH["backup.labels"] if _under(t, ("backup.engines",))] == []


def test_no_import_cycles() -> None:
    project = {m: {t for t in ts if t in MODULES and t != m} for m, ts in GRAPH.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in project[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(project):
        if module not in index:
            visit(module)
    assert cycles == []


def test_every_package_directory_is_a_regular_package() -> None:
    # setuptools' find_packages skips directories without __init__.py, so a
    # non-editable install (pip install ., the Docker image) would lack them.
    missing = [str(d.relative_to(ROOT)) for package in PACKAGES
               for d in [ROOT / package, *(ROOT / package).rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
               and not (d / "__init__.py").exists()]
    assert missing == []


def test_no_service_module_is_over_the_size_limit() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()
             if name.startswith("service")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}


def test_no_function_is_over_the_length_limit() -> None:
    long = {}
    for name, path in MODULES.items():
        if not name.startswith(("service", "backup", "restore")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = length
    assert long == {}
