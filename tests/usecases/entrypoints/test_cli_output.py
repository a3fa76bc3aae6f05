"""How the CLI prints: tables that fit the terminal, and progress that shows
when stderr is not a terminal."""

from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.cells import cell_len
from typer.testing import CliRunner, Result

import service.entrypoints.cli  # noqa: F401  (registers every command on the app)
from backup.ports import VolumeCopy
from service.entrypoints.cli import progress as progress_module
from service.entrypoints.cli.app import app
from service.entrypoints.cli.output import fit_widths
from service.entrypoints.cli.progress import Progress
from tests.fakes.docker import FakeVolume
from tests.fakes.services import FakeWorld
from tests.usecases.entrypoints.helpers import add_db, wait_until

CLI_MODULE = importlib.import_module("service.entrypoints.cli.app")

LABELS = {f"team.example.com/label-{i:03d}": f"value-{i}" for i in range(199)}
LABELS["zz.long"] = "x" * 5000


def run(world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str,
        **env: str) -> Result:
    monkeypatch.setattr(CLI_MODULE, "bootstrap", lambda settings: world.services)
    for name in ("COLUMNS", "NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner().invoke(app, list(args), env={"HOLDFAST_DATA_DIR": str(tmp_path / "cli"),
                                                    **env})


# --- tables --------------------------------------------------------------------------


def test_a_volume_with_200_labels_fits_80_columns_without_escapes(
        world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world)
    world.docker.volumes["a-volume-with-a-rather-long-name"] = FakeVolume(
        "a-volume-with-a-rather-long-name", labels=LABELS)
    result = run(world, tmp_path, monkeypatch, "volumes", "ls", COLUMNS="80")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 3  # the header and one line per volume
    assert max(cell_len(line) for line in lines) <= 80
    assert "\x1b" not in result.stdout
    assert lines[0].split()[0] == "VOLUME"
    # The name (to copy into the next command) is whole; the labels end in "…".
    assert [line.split()[0] for line in lines[1:]] == [
        "a-volume-with-a-rather-long-name", "shop-db-vol"]
    assert lines[1].endswith("…") and " team.example.com/" in lines[1]
    # --json is unchanged: every label, whole.
    json_out = run(world, tmp_path, monkeypatch, "volumes", "ls", "--json", COLUMNS="80")
    assert '"zz.long": "' + "x" * 5000 + '"' in json_out.stdout


def test_tables_follow_the_terminal_width(world: FakeWorld, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world, labels={"holdfast.schedule": "@daily"})
    for columns in (60, 80, 100, 200):
        result = run(world, tmp_path, monkeypatch, "instances", COLUMNS=str(columns))
        assert result.exit_code == 0, result.output
        header, row = result.stdout.splitlines()
        assert max(cell_len(header), cell_len(row)) <= columns
        assert row.split()[0] == "shop-db"
    assert header.split()[:4] == ["NAME", "CONTAINER", "STATUS", "ENGINE"]  # at 200


def test_control_characters_in_a_value_cannot_break_the_table_or_the_terminal(
        world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world.docker.volumes["odd"] = FakeVolume("odd", labels={"note": "two\nlines\x1b[31m red"})
    result = run(world, tmp_path, monkeypatch, "volumes", "ls", COLUMNS="200")
    assert result.exit_code == 0, result.output
    _, row = result.stdout.splitlines()
    assert "\x1b" not in result.stdout
    assert row.split()[-2:] == ["note=two\\nlines\\x1b[31m", "red"]


def test_colour_only_on_a_terminal(world: FakeWorld, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world)
    plain = run(world, tmp_path, monkeypatch, "volumes", "ls", COLUMNS="100")
    assert "\x1b[" not in plain.stdout
    # FORCE_COLOR makes rich treat the output as a terminal: the header is bold.
    styled = run(world, tmp_path, monkeypatch, "volumes", "ls", COLUMNS="100", FORCE_COLOR="1")
    assert "\x1b[1m" in styled.stdout
    assert styled.stdout.count("\n") == plain.stdout.count("\n")


@given(st.lists(st.tuples(st.integers(1, 300), st.booleans(), st.integers(1, 14)),
                min_size=1, max_size=12), st.integers(20, 300))
def test_fit_widths_fits_when_it_can_and_never_cuts_a_kept_column(
        columns: list[tuple[int, bool, int]], room: int) -> None:
    natural = [n for n, _, _ in columns]
    kept = [k for _, k, _ in columns]
    headers = [min(h, n) for n, _, h in columns]
    widths = fit_widths(natural, kept, headers, room)
    assert all(1 <= w <= n for w, n in zip(widths, natural, strict=True))
    assert all(w == n for w, n, k in zip(widths, natural, kept, strict=True) if k)
    floor = sum(n if k else min(n, 4) for n, k in zip(natural, kept, strict=True))
    if floor <= room:
        assert sum(widths) <= room
    if sum(natural) <= room:
        assert widths == natural


# --- progress ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_line_every_interval_with_bytes_and_rate() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("backup shop-db", stream=out, interactive=False, interval=5,
                        clock=clock)
    for second in range(1, 13):  # the byte counter reports twice a second
        for half in (0.0, 0.5):
            clock.now = 100 + second + half
            progress(second * 2 * 1024 * 1024, second + half)
    assert out.getvalue().splitlines() == [
        "backup shop-db: 10.0 MiB at 2.0 MiB/s, 5s",
        "backup shop-db: 20.0 MiB at 2.0 MiB/s, 10s",
    ]


def test_off_a_terminal_lines_keep_coming_while_no_bytes_move() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress("restore copy", stream=out, interactive=False, interval=5, clock=clock)
    progress(3 * 1024, 0.5)
    clock.now += 1
    progress.tick()  # too soon after the start
    for _ in range(3):  # the database takes its time to accept connections
        clock.now += 5
        progress.tick()
    assert out.getvalue().splitlines() == [
        "restore copy: 3.0 KiB at 512 B/s, 6s",
        "restore copy: 3.0 KiB at 279 B/s, 11s",
        "restore copy: 3.0 KiB at 192 B/s, 16s",
    ]


def test_on_a_terminal_one_line_rewritten_and_ended() -> None:
    clock, out = Clock(), io.StringIO()
    with Progress("backup shop-db", stream=out, interactive=True, interval=3600,
                  clock=clock) as progress:
        clock.now += 2
        progress(1024, 2)
        clock.now += 2
        progress(4096, 4)
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert text.split("\r")[-1].strip() == "backup shop-db: 4.0 KiB at 1.0 KiB/s, 4s"


def test_the_heartbeat_writes_without_any_byte_report() -> None:
    out = io.StringIO()
    with Progress("clone a into b", stream=out, interactive=False, interval=0.01):
        wait_until(lambda: out.getvalue().count("\n") >= 3)
    assert all(line.startswith("clone a into b: running for ")
               for line in out.getvalue().splitlines())


def test_volume_clone_reports_progress_off_a_terminal(
        world: FakeWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_db(world)
    monkeypatch.setattr(progress_module, "INTERVAL", 0.01)
    real_copy = world.docker.copy_volume

    def slow_copy(source: str, target: str) -> VolumeCopy:
        captured: Any = sys.stderr.buffer  # the runner's BytesIO, while the command runs
        wait_until(lambda: captured.getvalue().count(b"running for") >= 2)
        return real_copy(source, target)

    monkeypatch.setattr(world.docker, "copy_volume", slow_copy)
    result = run(world, tmp_path, monkeypatch, "volumes", "clone", "shop-db-vol", "copy-vol")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("clone shop-db-vol into copy-vol: running for ") for line in lines)
    assert result.stdout.startswith("cloned shop-db-vol into copy-vol")
