"""``holdfast volumes``: list, create, remove and clone named volumes.

As in :mod:`.commands`, each command is one call of the backend (the Docker
engine here, or with ``--server`` the daemon's ``/v1/volumes``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from backup import errors
from service.entrypoints.cli.app import JsonFlag, backend, fail_with, volumes_app
from service.entrypoints.cli.output import human_bytes, print_json, show, table, volume_row
from service.entrypoints.cli.progress import Progress


def _parse_labels(pairs: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errors.InvalidInput(f"--label {pair!r}: write it as KEY=VALUE")
        labels[key] = value
    return labels


@volumes_app.command("ls")
def volumes_ls(
    no_size: Annotated[bool, typer.Option("--no-size", help="Skip measuring sizes (faster).")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Named volumes with their size, the containers using them, and labels."""
    with backend() as holdfast:
        found = holdfast.list_volumes(not no_size)
    if as_json:
        print_json(found)
        return
    table([volume_row(v) for v in found], ["VOLUME", "SIZE", "USED BY", "LABELS"],
          keep=("VOLUME",))


@volumes_app.command("create")
def volumes_create(
    name: Annotated[str, typer.Argument(help="Name of the new volume.")],
    label: Annotated[list[str] | None, typer.Option(
        "--label", help="KEY=VALUE label; repeat for more.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an empty named volume; an existing name is refused."""
    try:
        labels = _parse_labels(label)
    except errors.HoldfastError as exc:
        fail_with(exc)
    with backend() as holdfast:
        volume = holdfast.create_volume(name, labels)
    show(as_json, volume, f"created volume {volume['name']}")


@volumes_app.command("rm")
def volumes_rm(
    name: Annotated[str, typer.Argument(help="Volume to remove.")],
    as_json: JsonFlag = False,
) -> None:
    """Remove a volume and its data; refused while any container uses it."""
    with backend() as holdfast:
        volume = holdfast.remove_volume(name)
    show(as_json, volume, f"removed volume {volume['name']}")


@volumes_app.command("clone")
def volumes_clone(
    source: Annotated[str, typer.Argument(help="Volume to copy.")],
    target: Annotated[str, typer.Argument(help="New volume to create.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of TARGET if it exists (not while in use).")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Copy a volume into a new one through a short-lived helper container;
    owners, modes, links and sparse files are kept."""
    with backend() as holdfast:
        result = holdfast.clone_volume(source, target, force,
                                       Progress(f"clone {source} into {target}"))
    if as_json:
        print_json(result)
    else:
        typer.echo(f"cloned {result['source']} into {result['target']} "
                   f"({human_bytes(result['size_bytes'])}) in {result['seconds']:.1f}s"
                   + (" by reflinks" if result.get("method") == "reflink" else ""))
