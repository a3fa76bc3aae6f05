"""How the CLI prints: tables, sizes, progress lines and JSON.

Formatting only; every value comes from a use case's record.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import typer

from backup.types import Snapshot
from backup.volumes import VolumeInfo


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def show(as_json: bool, data: Any, line: str) -> None:
    """A command's one result: ``data`` as JSON with ``--json``, else ``line``."""
    if as_json:
        print_json(data)
    else:
        typer.echo(line)


def table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                          strict=False)]
    for row in [headers, *rows]:
        typer.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                           strict=False)).rstrip())


def human_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


def progress(label: str) -> Callable[[int, float], None]:
    """A progress line on stderr: rewritten in place on a terminal, one line
    every few seconds otherwise (logs, CI)."""
    interactive = sys.stderr.isatty()
    printed_at = [0.0]  # elapsed seconds of the last line, on the transfer's own clock

    def report(done: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else 0.0
        line = f"{label}: {human_bytes(done)} at {human_bytes(rate)}/s, {elapsed:.0f}s"
        if interactive:
            sys.stderr.write("\r" + line.ljust(70))
            sys.stderr.flush()
        elif elapsed - printed_at[0] >= 5:
            printed_at[0] = elapsed
            sys.stderr.write(line + "\n")

    return report


def end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


# --- commands ---------------------------------------------------------------------


def retention_text(retention: dict[str, int]) -> str:
    return ",".join(f"{key}={value}" for key, value in retention.items()) or "all"


def last_text(last: dict[str, Any] | None) -> str:
    return f"{last['id']} ({last['status']})" if last else "-"


def snapshot_row(snapshot: Snapshot) -> list[str]:
    status = str(snapshot.status)
    if snapshot.error:
        status += f" ({snapshot.error[:60]})"
    return [snapshot.id, snapshot.instance, snapshot.engine, status,
            human_bytes(snapshot.size_bytes), snapshot.target,
            snapshot.created_at.strftime("%Y-%m-%d %H:%M:%SZ")]


def volume_row(volume: VolumeInfo) -> list[str]:
    users = ", ".join(user.describe() for user in volume.users) or "-"
    labels = ",".join(f"{k}={v}" for k, v in sorted(volume.labels.items())) or "-"
    return [volume.name, human_bytes(volume.size_bytes), users, labels]
