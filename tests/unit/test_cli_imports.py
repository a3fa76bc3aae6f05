"""What ``holdfast`` loads before it answers: the start-up cost, checked without timing it.

Each case runs the command in a fresh interpreter and lists the top-level
modules in ``sys.modules`` afterwards. ``--help``, ``--version`` and shell
completion must load none of the heavy libraries; ``holdfast snapshots`` on a
SQLite catalog that is already migrated needs pydantic-settings but not
SQLAlchemy (it reads with the standard library's sqlite3), Alembic, docker-py,
boto3 or the daemon's libraries. The figures themselves are
in ``bench/cli_startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("sqlalchemy", "alembic", "boto3", "botocore", "fastapi", "starlette", "docker",
         "requests", "apscheduler", "uvicorn", "pydantic_settings", "prometheus_client", "rich")
NOT_FOR_A_CATALOG_READ = ("sqlalchemy", "alembic", "boto3", "botocore", "fastapi", "starlette",
                          "docker", "requests", "apscheduler", "uvicorn", "prometheus_client")

_RUN = """
import json, sys
sys.argv = ["holdfast", *json.loads(sys.argv[1])]
from service.entrypoints.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
sys.stdout.flush()
sys.stderr.write("\\nMODULES " + json.dumps(sorted({m.split(".")[0] for m in sys.modules}))
                 + " EXIT " + json.dumps(code) + "\\n")
"""


def loaded_by(args: list[str], tmp_path: Path, **env: str) -> tuple[set[str], object, str]:
    """The top-level modules loaded by ``holdfast *args``, its exit code and stdout."""
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("HOLDFAST_", "_HOLDFAST_"))}
    environ.update(HOLDFAST_DATA_DIR=str(tmp_path / "data"),
                   DOCKER_HOST="unix:///nonexistent", **env)
    proc = subprocess.run([sys.executable, "-c", _RUN, json.dumps(args)], env=environ,
                          capture_output=True, text=True, timeout=120, check=False)
    marker = proc.stderr.rindex("MODULES ")
    modules_json, _, code_json = proc.stderr[marker + len("MODULES "):].partition(" EXIT ")
    return set(json.loads(modules_json)), json.loads(code_json), proc.stdout


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["snapshots", "--help"],
                                  ["volumes", "--help"]])
def test_help_and_version_load_no_heavy_library(args: list[str], tmp_path: Path) -> None:
    modules, code, out = loaded_by(args, tmp_path)
    assert code in (0, None), out
    assert out.strip()
    assert sorted(modules.intersection(HEAVY)) == []


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    from service.version import holdfast_version

    _, code, out = loaded_by(["--version"], tmp_path)
    assert code in (0, None)
    assert out == f"holdfast {holdfast_version()}\n"


def test_shell_completion_answers_without_loading_heavy_libraries(tmp_path: Path) -> None:
    modules, _, out = loaded_by([], tmp_path, _HOLDFAST_COMPLETE="complete_bash",
                                COMP_WORDS="holdfast volumes c", COMP_CWORD="2")
    assert out.split() == ["create", "clone"]
    assert sorted(modules.intersection(HEAVY)) == []


def test_snapshots_on_a_migrated_catalog_loads_no_sqlalchemy_alembic_docker_or_boto3(
        tmp_path: Path) -> None:
    first, code, _ = loaded_by(["snapshots"], tmp_path)  # creates and migrates the catalog
    assert code in (0, None)
    assert "alembic" in first
    modules, code, out = loaded_by(["snapshots"], tmp_path)
    assert code in (0, None), out
    assert out.split()[:2] == ["ID", "INSTANCE"]
    assert "pydantic_settings" in modules
    assert sorted(modules.intersection(NOT_FOR_A_CATALOG_READ)) == []
