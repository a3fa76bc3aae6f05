"""The CLI's checkpoint commands, ``holdfast pin ID`` and ``holdfast unpin ID``,
and the ``--tag KEY=VALUE`` parsing that ``backup``, ``snapshots`` and
``restore`` share.

Tags on the command line are ``KEY=VALUE`` (split at the first ``=``, so the
value may hold ``=`` and ``:``); the API's filter spells the same tag
``KEY:VALUE``. Bad tags fail with one line and exit 2 like any other bad input.
"""

from __future__ import annotations

from typing import Annotated

import typer

from backup import errors
from service.entrypoints.cli.app import JsonFlag, app, backend, fail_with
from service.entrypoints.cli.output import show

TagOption = Annotated[list[str] | None, typer.Option(
    "--tag", metavar="KEY=VALUE",
    help="A tag (repeatable). Keys are 1-64 letters, digits and ._/-; values up to 256 "
         "printable characters.")]


def tags_or_fail(items: list[str] | None) -> dict[str, str]:
    """``--tag`` values as tags; a malformed one fails the command with one line."""
    from backup.tags import parse_tag_args

    try:
        return parse_tag_args(items)
    except errors.HoldfastError as exc:
        fail_with(exc)


def _pin(ref: str, pinned: bool, as_json: bool) -> None:
    with backend() as holdfast:
        snapshot = holdfast.pin(ref, pinned)
    show(as_json, snapshot,
         f"snapshot {snapshot['id']} {'pinned: retention keeps it' if pinned else 'unpinned'}")


@app.command()
def pin(
    snapshot_id: Annotated[str, typer.Argument(
        metavar="SNAPSHOT", help="Snapshot id, or an unambiguous prefix of one.")],
    as_json: JsonFlag = False,
) -> None:
    """Pin a complete snapshot: retention never removes it, and 'holdfast delete'
    refuses it until it is unpinned. The pin is kept in its manifest too."""
    _pin(snapshot_id, True, as_json)


@app.command()
def unpin(
    snapshot_id: Annotated[str, typer.Argument(
        metavar="SNAPSHOT", help="Snapshot id, or an unambiguous prefix of one.")],
    as_json: JsonFlag = False,
) -> None:
    """Unpin a snapshot: its instance's retention applies to it again."""
    _pin(snapshot_id, False, as_json)
