"""How the CLI prints: tables, sizes and JSON (progress lines: :mod:`.progress`).

Formatting only; every value comes from the JSON shapes a backend answers
(:mod:`.backend`), the same in local and remote mode.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import typer


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def show(as_json: bool, data: Any, line: str) -> None:
    """A command's one result: ``data`` as JSON with ``--json``, else ``line``."""
    if as_json:
        print_json(data)
    else:
        typer.echo(line)


def table(rows: list[list[str]], headers: list[str], keep: Collection[str] = ()) -> None:
    """Print ``rows`` under ``headers`` as a rich table as wide as the terminal
    (``COLUMNS``, else 80 when not on one): over-long cells end in an ellipsis,
    the widest columns giving way first, except those named in ``keep`` (ids and
    names to copy into the next command). Colour only on a terminal, and never
    with ``NO_COLOR``; control characters in a value are shown escaped."""
    from rich.cells import cell_len
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False, soft_wrap=False)
    cells = [[_printable(str(cell)) for cell in row] for row in rows]
    natural = [max(cell_len(cell) for cell in column)
               for column in zip(headers, *cells, strict=False)]
    # Two spaces between columns, one when that is what makes the table fit.
    gap = 2 if sum(natural) + 2 * (len(headers) - 1) <= console.width else 1
    widths = fit_widths(natural, [header in keep for header in headers],
                        [cell_len(header) for header in headers],
                        console.width - gap * (len(headers) - 1))
    grid = Table(box=None, show_edge=False, pad_edge=False, padding=(0, gap, 0, 0),
                 collapse_padding=True, header_style="bold")
    for header, width in zip(headers, widths, strict=True):
        grid.add_column(header, width=width, no_wrap=True, overflow="ellipsis")
    for row in cells:
        grid.add_row(*(Text(cell) for cell in row))
    with console.capture() as captured:
        console.print(grid)
    for line in captured.get().splitlines():
        # rich has decided on styles (a terminal, NO_COLOR, FORCE_COLOR); click
        # would strip them again whenever stdout is not a tty.
        typer.echo(line.rstrip(), color=True)


def fit_widths(natural: list[int], kept: list[bool], headers: list[int],
               room: int) -> list[int]:
    """Column widths that fit in ``room``: the natural ones if they do;
    otherwise the widest columns are cut to one common limit, a kept one never,
    the others not below their header's width or, if even that is too wide,
    not below 4 ("ab…")."""
    if sum(natural) <= room:
        return natural
    floors = [n if keep else min(n, h) for n, keep, h in zip(natural, kept, headers,
                                                            strict=True)]
    if sum(floors) > room:
        floors = [n if keep else min(n, 4) for n, keep in zip(natural, kept, strict=True)]
    limit = max(natural)
    while limit > 1 and sum(max(f, min(n, limit)) for n, f in zip(natural, floors,
                                                                  strict=True)) > room:
        limit -= 1
    return [max(f, min(n, limit)) for n, f in zip(natural, floors, strict=True)]


def _printable(value: str) -> str:
    # A label or error text may hold newlines or terminal escapes; one line per
    # row, and nothing a terminal would act on.
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode()
                   for ch in value)


def human_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


# --- commands ---------------------------------------------------------------------


def retention_text(retention: dict[str, int]) -> str:
    return ",".join(f"{key}={value}" for key, value in retention.items()) or "all"


def last_text(last: dict[str, Any] | None) -> str:
    return f"{last['id']} ({last['status']})" if last else "-"


def moment_text(moment: str | None, none: str = "-") -> str:
    """An ISO 8601 time of the JSON shapes as the tables show it,
    ``2026-12-03 06:15:00Z``; ``none`` for null."""
    if not moment:
        return none
    from datetime import datetime

    return datetime.fromisoformat(moment).strftime("%Y-%m-%d %H:%M:%SZ")


def snapshot_row(snapshot: Mapping[str, Any]) -> list[str]:
    """ID, INSTANCE, ENGINE, STATUS (``pinned`` and ``encrypted`` added), SIZE,
    TARGET, CREATED, VERIFIED (the last verified restore's result and time),
    TAGS (``k=v,k2=v2``, cut at 40 characters; ``--json`` has them whole), of a
    snapshot's JSON."""
    from backup.tags import tags_text

    status = str(snapshot["status"]) + (", pinned" if snapshot.get("pinned") else "") \
        + (", encrypted" if snapshot.get("encryption") else "")
    if snapshot.get("error"):
        status += f" ({snapshot['error'][:60]})"
    tags = tags_text(snapshot.get("tags") or {})
    return [snapshot["id"], snapshot["instance"], snapshot["engine"], status,
            human_bytes(snapshot.get("size_bytes")), snapshot["target"],
            moment_text(snapshot["created_at"]), verified_text(snapshot),
            tags if len(tags) <= 40 else tags[:39] + "…"]


def verified_text(snapshot: Mapping[str, Any]) -> str:
    """``passed 2026-12-03 05:05:41Z``, ``FAILED …``, or ``-`` never verified."""
    verification = snapshot.get("verification")
    if not verification:
        return "-"
    result = "passed" if verification.get("result") == "passed" else "FAILED"
    return f"{result} {moment_text(snapshot.get('verified_at'))}"


def volume_row(volume: Mapping[str, Any]) -> list[str]:
    """VOLUME, SIZE, USED BY, LABELS of a volume's JSON."""
    users = ", ".join(f"{user['name']} ({'running' if user['running'] else 'stopped'})"
                      for user in volume.get("users") or ()) or "-"
    labels = ",".join(f"{k}={v}" for k, v in sorted((volume.get("labels") or {}).items())) \
        or "-"
    return [volume["name"], human_bytes(volume.get("size_bytes")), users, labels]
