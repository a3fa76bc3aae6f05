"""The swap-in side of ``holdfast restore``: ``--replace NAME`` and ``--undo-replace NAME``.

``holdfast restore SNAPSHOT --replace prod-db`` is a restore (see
:func:`service.entrypoints.cli.commands.restore`) that the use case swaps in
for ``prod-db`` once it is loaded; this module holds what the command adds for
it: the checks of the arguments that cannot go together, the undo, and the
line saying where the old container is kept. As in :mod:`.commands`, the
work is one call of the backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from backup import errors
from service.entrypoints.cli.app import backend, fail_with
from service.entrypoints.cli.output import show


def check_restore_arguments(snapshot_id: str | None, name: str | None,
                            replace: str | None) -> str:
    """The container name a restore's progress is shown under. Fails with
    :class:`~backup.errors.InvalidInput`'s exit code (2) for a restore without
    a snapshot, or without ``--name`` or ``--replace``."""
    if snapshot_id is None:
        fail_with(errors.InvalidInput("give the SNAPSHOT to restore ('holdfast snapshots' lists "
                                  "them), or --undo-replace NAME to swap a replace back"))
    if name is None and replace is None:
        fail_with(errors.InvalidInput("name the fresh container with --name NEW, or swap "
                                      "the restore in for a container with --replace NAME"))
    return name or replace or ""


def undo_replace(name: str, snapshot_id: str | None, given: Mapping[str, object],
                 as_json: bool) -> None:
    """``holdfast restore --undo-replace NAME``: nothing else may be given
    (``given`` maps each other option to its value)."""
    chosen = [option for option, value in given.items() if value not in (None, False, [])]
    if snapshot_id is not None or chosen:
        fail_with(errors.InvalidInput("--undo-replace takes no SNAPSHOT and no other option "
                                      f"({', '.join(chosen) or 'SNAPSHOT'} given)"))
    with backend() as holdfast:
        undone = holdfast.undo_replace(name)
    set_aside = undone["set_aside"]
    aside = (f"; {name} until now is kept stopped as {set_aside['container']} (docker rm -v "
             "it when it is no longer wanted)" if set_aside else "")
    show(as_json, undone, f"swapped {undone['restored_from']} back in as {name} "
                          f"(container {undone['container_id'][:12]}){aside}")


def replaced_details(result: Mapping[str, Any]) -> str:
    """The line after a restore with ``--replace``: where the old container is."""
    replaced = result.get("replaced")
    if not replaced:
        return ""
    return (f"\n  the old container is kept stopped as {replaced['container']}; "
            f"'holdfast restore --undo-replace {result['container']}' swaps it back")
