"""``holdfast warm``: warm copies, listed, refreshed and removed.

A warm copy is a stopped, restored copy of an instance that restores of the
same snapshot clone (:mod:`restore.warm`). As in :mod:`.commands`, each
command is one call of the backend (here, or with ``--server`` the daemon's
``/v1/warm``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from service.entrypoints.cli.app import JsonFlag, app, backend
from service.entrypoints.cli.output import print_json, show, table
from service.entrypoints.cli.progress import Progress

warm_app = typer.Typer(help="Warm copies: stopped copies that restores clone in seconds.",
                       no_args_is_help=True)
app.add_typer(warm_app, name="warm")


@warm_app.command("ls")
def warm_ls(
    instance: Annotated[str | None, typer.Argument(help="Only this instance's.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Warm copies, newest refresh first: the snapshot each holds."""
    with backend() as holdfast:
        found = holdfast.list_warm(instance)
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo("no warm copies: 'holdfast warm refresh INSTANCE' makes one")
        return
    table([[w["instance"], w["name"], w["snapshot_id"], w["status"], w["refreshed"]]
           for w in found], ["INSTANCE", "NAME", "SNAPSHOT", "STATUS", "REFRESHED"],
          keep=("NAME",))


@warm_app.command("refresh")
def warm_refresh(
    instance: Annotated[str, typer.Argument(help="The instance to keep a warm copy of.")],
    snapshot: Annotated[str | None, typer.Option(
        help="The snapshot it is to hold (default: the newest that passed a verified "
             "restore, else the newest complete one).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore a snapshot into a warm copy, stop it cleanly, then remove the
    older warm copies of the instance. Restores of that snapshot then clone it."""
    with backend() as holdfast:
        result = holdfast.refresh_warm(instance, snapshot, Progress(f"warm {instance}"))
    warm = result["warm"]
    said = (f"warm copy {warm['name']} holds {warm['snapshot_id']}"
            + (f" (made in {result['seconds']:.1f}s)" if result["refreshed"] else
               " already; nothing to do"))
    removed = f"; removed {', '.join(result['removed'])}" if result["removed"] else ""
    show(as_json, result, said + removed)


@warm_app.command("rm")
def warm_rm(
    instance: Annotated[str, typer.Argument(help="The instance whose warm copies to remove.")],
    as_json: JsonFlag = False,
) -> None:
    """Remove an instance's warm copies, containers and volumes."""
    with backend() as holdfast:
        removed = holdfast.remove_warm(instance)
    show(as_json, removed, f"removed {', '.join(w['name'] for w in removed)}" if removed
         else f"{instance} has no warm copy")
