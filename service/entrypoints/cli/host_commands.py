"""``holdfast hosts``: the Docker engines of the fleet that share this catalog.

As in :mod:`.commands`, one call of the backend (the catalog here, or with
``--server`` the daemon's ``/v1/hosts``).
"""

from __future__ import annotations

import typer

from service.entrypoints.cli.app import JsonFlag, app, backend
from service.entrypoints.cli.output import moment_text, print_json, table


@app.command()
def hosts(as_json: JsonFlag = False) -> None:
    """The hosts whose daemons use this catalog: status, Docker version, instances,
    last heartbeat."""
    with backend() as holdfast:
        found = holdfast.list_hosts()
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo("no hosts: each 'holdfast serve' registers its Docker engine as one")
        return
    table([[h["name"], h["status"], h["engine_version"], str(h["instances"]),
            f"{moment_text(h['last_heartbeat'])} ({h['seconds_since_heartbeat']}s ago)",
            h["holdfast_version"]] for h in found],
          ["HOST", "STATUS", "DOCKER", "INSTANCES", "LAST HEARTBEAT", "HOLDFAST"],
          keep=("HOST",))
